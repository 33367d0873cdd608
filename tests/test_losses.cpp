// Losses: values against hand-computed numbers, gradients by gradcheck, the exact gradient of
// bce_with_logits, stability at extremes, and shape/target errors.
#include "helpers.hpp"

#include <cmath>
#include <functional>
#include <tuple>

namespace F = cr::nn::functional;
using R = F::Reduction;

TEST_CASE("regression losses: values and reductions") {
  const cr::Tensor x = cr::tensor({1, 2, 4}, cr::float64), y = cr::tensor({1, 0, 1}, cr::float64);
  CHECK(F::mse_loss(x, y).item<double>() == doctest::Approx(13.0 / 3));
  CHECK(F::mse_loss(x, y, R::sum).item<double>() == 13.0);  // the seed's sum of squares
  CHECK(values(F::mse_loss(x, y, R::none)) == std::vector<double>{0, 4, 9});
  CHECK(F::l1_loss(x, y).item<double>() == doctest::Approx(5.0 / 3));
  CHECK(values(F::smooth_l1_loss(cr::tensor({0.5, 3}, cr::float64), cr::zeros({2}, cr::float64), R::none)) ==
        std::vector<double>{0.125, 2.5});
  CHECK(values(F::huber_loss(cr::tensor({0.5, 3}, cr::float64), cr::zeros({2}, cr::float64), R::none, 2.0)) ==
        std::vector<double>{0.125, 4.0});
}

TEST_CASE("mse_loss with mean or sum is one op, as PyTorch's MseLossBackward, with the composed formula's bits") {
  cr::Generator gen(5);
  for (auto dtype : {cr::float32, cr::float64})
    for (R r : {R::mean, R::sum})
      for (const cr::Shape& shape : {cr::Shape{}, cr::Shape{0}, cr::Shape{4, 1}, cr::Shape{3, 5}, cr::Shape{6, 7}}) {
        const cr::Tensor x = cr::randn(shape, dtype, &gen).requires_grad_(),
                         y = cr::randn(shape, dtype, &gen).requires_grad_();
        const cr::Tensor loss = F::mse_loss(x, y, r);
        const cr::Tensor d = x - y, composed = r == R::mean ? cr::mean(d * d) : cr::sum(d * d);
        REQUIRE(loss.grad_fn() != nullptr);
        CHECK(std::string(loss.grad_fn()->name) == "mse_loss");
        CHECK(loss.grad_fn()->next.size() == 2);  // straight to x's and y's accumulators
        CHECK(loss.grad_fn()->next[0].node->is_accumulator);
        CHECK(same_values(values(loss), values(composed)));
        const auto g = cr::autograd::grad({loss}, {x, y}), gc = cr::autograd::grad({composed}, {x, y});
        CHECK(same_values(values(g[0]), values(gc[0])));
        CHECK(same_values(values(g[1]), values(gc[1])));
      }
  // a transposed (non-contiguous) input reads as it lies
  const cr::Tensor xt = cr::randn({5, 3}, cr::float64, &gen).requires_grad_(),
                   yt = cr::randn({3, 5}, cr::float64, &gen);
  const cr::Tensor dt = xt.t() - yt;
  CHECK(same_values(values(F::mse_loss(xt.t(), yt, R::sum)), values(cr::sum(dt * dt))));
  CHECK(same_values(values(cr::autograd::grad({F::mse_loss(xt.t(), yt, R::mean)}, {xt})[0]),
                    values(cr::autograd::grad({cr::mean(dt * dt)}, {xt})[0])));
  // none stays elementwise; a target that needs no gradient gets none; first and second
  // derivatives of both inputs against finite differences.
  CHECK(F::mse_loss(cr::ones({2}).requires_grad_(), cr::zeros({2}), R::none).shape() == cr::Shape{2});
  const cr::Tensor x = input({3, 4}, -2, 2, 11), y = input({3, 4}, -2, 2, 12);
  CHECK(cr::autograd::grad({F::mse_loss(x, y.detach(), R::sum)}, {x})[0].shape() == cr::Shape{3, 4});
  using V = const std::vector<cr::Tensor>&;
  check_gradients([](V v) { return F::mse_loss(v[0], v[1], R::sum); }, {x, y});
  check_gradients([](V v) { return F::mse_loss(v[0], v[1], R::mean); }, {x, y});
  // mixed dtypes promote, and the gradient comes back in each input's own dtype
  const cr::Tensor x32 = cr::randn({3}, cr::float32, &gen).requires_grad_(), y64 = cr::randn({3}, cr::float64, &gen);
  const cr::Tensor l = F::mse_loss(x32, y64, R::sum);
  CHECK(l.dtype() == cr::float64);
  CHECK(cr::autograd::grad({l}, {x32})[0].dtype() == cr::float32);
}

TEST_CASE("smooth_l1 and huber keep their curvature where input == target (checked against PyTorch)") {
  // Both were written in |d|, whose second derivative (d * d through abs) is 0 at d = 0: a
  // Hessian-vector product at an exact fit read 0 where the quadratic piece has 1/beta (delta 1).
  for (const auto& c :
       std::vector<std::tuple<const char*, std::function<cr::Tensor(const cr::Tensor&)>, double>>{
           {"smooth_l1 beta 0.5", [](const cr::Tensor& x) { return F::smooth_l1_loss(x, cr::zeros_like(x), R::sum, 0.5); }, 2.0},
           {"huber delta 3", [](const cr::Tensor& x) { return F::huber_loss(x, cr::zeros_like(x), R::sum, 3.0); }, 1.0}}) {
    const char* name = std::get<0>(c);  // (not a structured binding: CAPTURE captures it)
    const auto& loss = std::get<1>(c);
    const double curvature = std::get<2>(c);
    CAPTURE(name);
    cr::Tensor x = cr::tensor({0.0, 0.25, -0.1, 7.0}, cr::float64).requires_grad_();
    const cr::Tensor g = cr::autograd::grad({loss(x)}, {x}, {}, true, true)[0];
    cr::sum(g).backward();  // the Hessian's diagonal: the curvature inside, 0 on the linear piece
    CHECK(values(x.grad()) == std::vector<double>{curvature, curvature, curvature, 0});
  }
}

TEST_CASE("loss gradients") {
  using V = const std::vector<cr::Tensor>&;
  const cr::Tensor x = input({3, 4}, -2, 2, 1), y = input({3, 4}, -2, 2, 2);
  check_gradients([](V v) { return F::mse_loss(v[0], v[1]); }, {x, y});
  check_gradients([](V v) { return F::l1_loss(v[0], v[1], R::sum); }, {x, y});
  check_gradients([](V v) { return F::smooth_l1_loss(v[0], v[1], R::none, 0.5); }, {x, y});
  check_gradients([](V v) { return F::huber_loss(v[0], v[1], R::mean, 1.5); }, {x, y});
  const cr::Tensor p = input({3, 4}, 0.1, 0.9, 3), t = input({3, 4}, 0, 1, 4);
  check_gradients([](V v) { return F::binary_cross_entropy(v[0], v[1]); }, {p, t}, false);
  check_gradients([](V v) { return F::binary_cross_entropy_with_logits(v[0], v[1]); }, {x, t});
  const cr::Tensor target = cr::tensor({0, 3, 1}, cr::int64);
  check_gradients([&](V v) { return F::cross_entropy(v[0], target); }, {x});
  check_gradients([&](V v) { return F::cross_entropy(v[0], target, R::sum, 0.1); }, {x});
  check_gradients([&](V v) { return F::nll_loss(cr::log_softmax(v[0], 1), target, R::none); }, {x});
}

TEST_CASE("bce_with_logits: gradient is sigmoid(x) - y to 1e-12, finite at every extreme") {
  for (auto dtype : {cr::float32, cr::float64}) {
    cr::Tensor x = cr::tensor({-1e4, -710, -88, -20, -1, -1e-8, 0, 1e-8, 1, 20, 88, 710, 1e4}, dtype).requires_grad_();
    const cr::Tensor y = cr::full({13}, 0.3, dtype);
    const cr::Tensor loss = F::binary_cross_entropy_with_logits(x, y, R::sum);
    CHECK(std::isfinite(loss.item<double>()));
    loss.backward();
    const auto g = values(x.grad()), s = values(cr::sigmoid(x.detach()));
    for (size_t i = 0; i < g.size(); ++i) CHECK(std::abs(g[i] - (s[i] - 0.3)) <= (dtype == cr::float64 ? 1e-12 : 1e-6));
  }
  // value: log(1 + e^x) - x y at x = 2, y = 1
  CHECK(F::binary_cross_entropy_with_logits(cr::tensor({2.0}, cr::float64), cr::tensor({1.0}, cr::float64)).item<double>() ==
        doctest::Approx(std::log1p(std::exp(-2.0))));
}

TEST_CASE("bce on probabilities clamps its logs at -100, as PyTorch") {
  const cr::Tensor p = cr::tensor({0.0, 1.0, 0.25}, cr::float64), y = cr::tensor({1.0, 1.0, 0.0}, cr::float64);
  const auto l = values(F::binary_cross_entropy(p, y, R::none));
  CHECK(l[0] == 100.0);
  CHECK(l[1] == 0.0);
  CHECK(l[2] == doctest::Approx(-std::log(0.75)));
  check_error([] { (void)F::binary_cross_entropy(cr::tensor({1.5}), cr::tensor({1.0})); },
              {"binary_cross_entropy", "[0, 1]", "1.5"});
}

TEST_CASE("cross_entropy: value by hand, label smoothing, stability") {
  const cr::Tensor logits = cr::tensor({1, 2, 3, 1, 1, 1}, {2, 3}, cr::float64);
  const cr::Tensor target = cr::tensor({2, 0}, cr::int64);
  const double l0 = -3 + std::log(std::exp(1) + std::exp(2) + std::exp(3)), l1 = std::log(3.0);
  CHECK(F::cross_entropy(logits, target).item<double>() == doctest::Approx((l0 + l1) / 2));
  CHECK(F::nll_loss(cr::log_softmax(logits, 1), target, R::sum).item<double>() == doctest::Approx(l0 + l1));
  // smoothing e: (1 - e) nll + e * mean_c(-log p_c)
  const double lse = std::log(std::exp(1) + std::exp(2) + std::exp(3));
  const double smooth0 = ((lse - 1) + (lse - 2) + (lse - 3)) / 3;
  CHECK(values(F::cross_entropy(logits, target, R::none, 0.2))[0] == doctest::Approx(0.8 * l0 + 0.2 * smooth0));
  cr::Tensor big = cr::tensor({1e4, -1e4, 0}, {1, 3}, cr::float32).requires_grad_();
  const cr::Tensor l = F::cross_entropy(big, cr::tensor({1}, cr::int64));
  CHECK(l.item<double>() == doctest::Approx(2e4));
  l.backward();
  for (double g : values(big.grad())) CHECK(std::isfinite(g));
}

TEST_CASE("loss errors: shapes, target dtype and range") {
  check_error([] { (void)F::mse_loss(cr::zeros({4, 1}), cr::zeros({4})); }, {"mse_loss", "[4, 1]", "[4]"});
  check_error([] { (void)F::cross_entropy(cr::zeros({2, 3}), cr::tensor({0, 3}, cr::int64)); },
              {"cross_entropy", "target 3", "3 classes", "[2, 3]"});
  check_error([] { (void)F::cross_entropy(cr::zeros({2, 3}), cr::tensor({0, -1}, cr::int64)); },
              {"cross_entropy", "target -1"});
  check_error([] { (void)F::cross_entropy(cr::zeros({2, 3}), cr::tensor({0, 1})); }, {"cross_entropy", "int64"});
  check_error([] { (void)F::nll_loss(cr::zeros({2, 3}), cr::tensor({0}, cr::int64)); }, {"nll_loss", "[1]", "[2]"});
  check_error([] { (void)F::cross_entropy(cr::zeros({2, 3}), cr::tensor({0, 1}, cr::int64), R::mean, 1.0); },
              {"label_smoothing"});
  check_error([] { (void)F::cross_entropy(cr::zeros({2, 3}), cr::tensor({0, 1}, cr::int64), R::mean, NAN); },
              {"label_smoothing", "nan"});
}

TEST_CASE("cross_entropy and nll_loss: class weights and ignore_index, as PyTorch") {
  const cr::Tensor logits = cr::tensor({1, 2, 3, 1, 1, 1, 0, 2, -1}, {3, 3}, cr::float64);
  const cr::Tensor lp = cr::log_softmax(logits, 1);
  const auto l = values(lp);  // l[3 n + c] = log p_c of example n
  const cr::Tensor w = cr::tensor({0.5, 2.0, 1.5}, cr::float64);
  const cr::Tensor target = cr::tensor({2, 0, 1}, cr::int64);
  // weighted: loss_n = -w[y_n] log p_{y_n}; the mean divides by the sum of the weights used
  const std::vector<double> weighted = {-1.5 * l[2], -0.5 * l[3], -2.0 * l[7]};
  CHECK(values(F::nll_loss(lp, target, R::none, w)) == weighted);
  CHECK(F::nll_loss(lp, target, R::sum, w).item<double>() == doctest::Approx(weighted[0] + weighted[1] + weighted[2]).epsilon(1e-15));
  CHECK(F::cross_entropy(logits, target, R::mean, 0.0, w).item<double>() ==
        doctest::Approx((weighted[0] + weighted[1] + weighted[2]) / 4.0).epsilon(1e-15));
  // an ignored target (the default ignore_index is PyTorch's -100) adds nothing, to the loss or the count
  const cr::Tensor ignoring = cr::tensor({2, -100, 1}, cr::int64);
  CHECK(values(F::nll_loss(lp, ignoring, R::none)) == std::vector<double>{-l[2], 0.0, -l[7]});
  CHECK(F::nll_loss(lp, ignoring).item<double>() == doctest::Approx((-l[2] - l[7]) / 2).epsilon(1e-15));
  CHECK(F::cross_entropy(logits, ignoring, R::mean, 0.0, w).item<double>() ==
        doctest::Approx((weighted[0] + weighted[2]) / 3.5).epsilon(1e-15));
  CHECK(F::cross_entropy(logits, cr::tensor({2, 0, 0}, cr::int64), R::none, 0.0, {}, 0)
            .to_vector<double>() == std::vector<double>{-l[2], 0.0, 0.0});  // any class can be the ignored one
  // every target ignored: the mean is 0 / 0, NaN (PyTorch's too); the sum is 0
  cr::Tensor all = logits.detach().requires_grad_();
  const cr::Tensor nan_loss = F::cross_entropy(all, cr::full({3}, -100, cr::int64));
  CHECK(std::isnan(nan_loss.item<double>()));
  cr::sigmoid(nan_loss).backward();  // no logit took part: a zero gradient, as PyTorch's (not inf * 0), even
  CHECK(values(all.grad()) == std::vector<double>(9, 0.0));  // when the gradient flowing in is NaN
  CHECK(F::cross_entropy(logits, cr::full({3}, -100, cr::int64), R::sum).item<double>() == 0.0);
  // no classes at all (every target ignored): as PyTorch, NaN, 0 and zeros (it named gather)
  const cr::Tensor none = cr::zeros({2, 0}, cr::float64), ignored = cr::full({2}, -100, cr::int64);
  CHECK(std::isnan(F::cross_entropy(none, ignored, R::mean, 0.0, cr::ones({0}, cr::float64)).item<double>()));
  CHECK(F::nll_loss(none, ignored, R::sum).item<double>() == 0.0);
  CHECK(values(F::cross_entropy(none, ignored, R::none)) == std::vector<double>{0, 0});
  // smoothing with weights: (1 - e) nll + e / C * sum_c(-w_c log p_c), normalised by the same weights
  const double e = 0.3;
  double smooth0 = 0, smooth2 = 0;
  for (int c = 0; c < 3; ++c) smooth0 -= values(w)[c] * l[c], smooth2 -= values(w)[c] * l[6 + c];
  const auto per = values(F::cross_entropy(logits, ignoring, R::none, e, w));
  CHECK(per[0] == doctest::Approx((1 - e) * weighted[0] + e / 3 * smooth0).epsilon(1e-15));
  CHECK(per[1] == 0.0);
  CHECK(per[2] == doctest::Approx((1 - e) * weighted[2] + e / 3 * smooth2).epsilon(1e-15));
  CHECK(F::cross_entropy(logits, ignoring, R::mean, e, w).item<double>() == doctest::Approx((per[0] + per[2]) / 3.5).epsilon(1e-15));
  // gradients: the ignored row gets none
  cr::Tensor x = logits.detach().requires_grad_();
  F::cross_entropy(x, ignoring, R::mean, 0.1, w).backward();
  for (int c = 0; c < 3; ++c) CHECK(values(x.grad())[3 + c] == 0.0);
  using V = const std::vector<cr::Tensor>&;
  check_gradients([&](V v) { return F::cross_entropy(v[0], ignoring, R::mean, 0.2, w); }, {input({3, 3})});
  check_gradients([&](V v) { return F::nll_loss(v[0], ignoring, R::sum, w); }, {input({3, 3})});
  // float32 logits with float64 weights: the loss stays float32
  CHECK(F::cross_entropy(logits.to(cr::float32), target, R::mean, 0.0, w).dtype() == cr::float32);
  check_error([&] { (void)F::cross_entropy(logits, target, R::mean, 0.0, cr::ones({2}, cr::float64)); },
              {"cross_entropy", "weight", "[2]", "3 classes"});
  check_error([&] { (void)F::nll_loss(lp, target, R::mean, cr::ones({3}, cr::int64)); }, {"nll_loss", "weight", "int64", "floating"});
  check_error([&] { (void)F::cross_entropy(logits, cr::tensor({2, -100, 5}, cr::int64)); }, {"cross_entropy", "target 5"});
  check_error([&] { (void)F::cross_entropy(logits, cr::tensor({2, -1, 1}, cr::int64)); }, {"cross_entropy", "target -1", "ignore_index -100"});
}

// Each value of t within a relative 1e-12 of expected (or exactly 0 where expected is).
void check_near(const cr::Tensor& t, const std::vector<double>& expected, double eps = 1e-12) {
  const auto v = values(t);
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    CAPTURE(i);
    CHECK(v[i] == doctest::Approx(expected[i]).epsilon(eps));
  }
}

TEST_CASE("more losses: values by hand, as PyTorch defines them") {
  const auto t = [](std::vector<double> v, cr::Shape s = {}) {
    if (s.empty()) s = {static_cast<int64_t>(v.size())};
    return cr::tensor(v, s, cr::float64);
  };
  // kl_div: sum p (log p - input), a zero p adds 0; batchmean divides by the batch, mean by the elements
  const cr::Tensor lq = cr::log(t({0.25, 0.75, 0.5, 0.5}, {2, 2})), p = t({0.5, 0.5, 1.0, 0.0}, {2, 2});
  const double kl0 = 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3), kl1 = std::log(2.0);
  check_near(F::kl_div(lq, p, R::none), {0.5 * std::log(2.0), 0.5 * std::log(2.0 / 3), kl1, 0.0});
  CHECK(F::kl_div(lq, p, R::batchmean).item<double>() == doctest::Approx((kl0 + kl1) / 2));
  CHECK(F::kl_div(lq, p, R::mean).item<double>() == doctest::Approx((kl0 + kl1) / 4));
  CHECK(F::kl_div(lq, cr::log(t({0.5, 0.5, 1.0, 1e-300}, {2, 2})), R::sum, true).item<double>() ==
        doctest::Approx(kl0 + kl1));
  // margin ranking: max(0, -y (x1 - x2) + margin)
  CHECK(values(F::margin_ranking_loss(t({1, 2, 3}), t({2, 2, 1}), t({1, -1, 1}), 0.5, R::none)) ==
        std::vector<double>{1.5, 0.5, 0.0});
  // hinge embedding: x where y = 1, max(0, margin - x) where y = -1
  CHECK(values(F::hinge_embedding_loss(t({0.3, 2, 0.5}), t({1, -1, -1}), 1.0, R::none)) ==
        std::vector<double>{0.3, 0.0, 0.5});
  check_near(F::soft_margin_loss(t({0, 2}), t({1, -1}), R::none), {std::log(2.0), std::log1p(std::exp(2.0))});
  CHECK(std::isfinite(F::soft_margin_loss(t({-1e4}), t({1})).item<double>()));  // 1e4, not inf
  // multilabel soft margin: the mean over classes of the two-sided logistic loss
  check_near(F::multilabel_soft_margin_loss(t({0, 0, 2, -1}, {2, 2}), t({1, 0, 1, 1}, {2, 2}), {}, R::none),
             {std::log(2.0), (std::log1p(std::exp(-2.0)) + std::log1p(std::exp(1.0))) / 2});
  // multi margin: PyTorch's documented example, then p = 2 and a class weight
  const cr::Tensor scores = t({0.1, 0.2, 0.4, 0.8}, {1, 4});
  const cr::Tensor three = cr::tensor({3}, cr::int64);
  CHECK(F::multi_margin_loss(scores, three).item<double>() == doctest::Approx(0.325));
  CHECK(F::multi_margin_loss(scores, three, 2).item<double>() == doctest::Approx((0.09 + 0.16 + 0.36) / 4));
  CHECK(F::multi_margin_loss(scores, three, 1, 1.0, t({1, 1, 1, 2})).item<double>() == doctest::Approx(0.65));
  // cosine embedding: 1 - cos where y = 1, max(0, cos - margin) where y = -1
  const auto ce = values(F::cosine_embedding_loss(t({1, 0, 1, 1}, {2, 2}), t({1, 0, 1, 0}, {2, 2}), t({1, -1}), 0.5, R::none));
  CHECK(ce[0] == doctest::Approx(0.0));
  CHECK(ce[1] == doctest::Approx(std::sqrt(0.5) - 0.5));
  // triplet: max(0, margin + d(a, p) - d(a, n)); swap takes d(p, n) when smaller
  const cr::Tensor a = t({0, 0}, {1, 2}), pos = t({3, 4}, {1, 2}), neg = t({6, 8}, {1, 2});
  CHECK(F::triplet_margin_loss(a, pos, neg, 1.0).item<double>() == 0.0);
  CHECK(F::triplet_margin_loss(a, pos, neg, 6.0).item<double>() == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(F::triplet_margin_loss(a, pos, neg, 1.0, 2.0, 1e-6, true).item<double>() == doctest::Approx(1.0).epsilon(1e-5));
  // gaussian nll: 0.5 (log v + d^2 / v), + 0.5 log 2 pi with full; one variance per row broadcast
  check_near(F::gaussian_nll_loss(t({1, 2}), t({0, 0}), t({1, 4}), false, 1e-6, R::none), {0.5, 0.5 * (std::log(4.0) + 1)});
  CHECK(F::gaussian_nll_loss(t({1, 2}), t({0, 0}), t({1, 4}), true, 1e-6, R::sum).item<double>() ==
        doctest::Approx(0.5 + 0.5 * (std::log(4.0) + 1) + std::log(2 * M_PI)));
  const cr::Tensor rows = t({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(values(F::gaussian_nll_loss(rows, cr::zeros({2, 3}, cr::float64), t({1, 2}), false, 1e-6, R::none)) ==
        values(F::gaussian_nll_loss(rows, cr::zeros({2, 3}, cr::float64), t({1, 1, 1, 2, 2, 2}, {2, 3}), false, 1e-6, R::none)));
  // poisson nll: e^x - t x (log input) or x - t log(x + eps); full adds Stirling where t > 1
  check_near(F::poisson_nll_loss(t({0, 1}), t({1, 2}), true, false, 1e-8, R::none), {1.0, std::exp(1.0) - 2});
  check_near(F::poisson_nll_loss(t({1, 2}), t({1, 2}), false, true, 0.0, R::none),  // Stirling only where t > 1
             {1.0, 2 - 2 * std::log(2.0) + 2 * std::log(2.0) - 2 + 0.5 * std::log(4 * M_PI)});
}

TEST_CASE("normalize, cosine_similarity, pairwise_distance and one_hot") {
  const cr::Tensor x = cr::tensor({3, 4, 0, 0}, {2, 2}, cr::float64);
  CHECK(values(F::normalize(x)) == std::vector<double>{0.6, 0.8, 0.0, 0.0});  // a zero row stays zero
  CHECK(values(F::normalize(x, 1.0, 0)) == std::vector<double>{1.0, 1.0, 0.0, 0.0});
  check_near(F::cosine_similarity(cr::tensor({1, 0, 3, 4, 0, 0}, {3, 2}, cr::float64),
                                  cr::tensor({0, 1, 3, 4, 1, 1}, {3, 2}, cr::float64)),
             {0.0, 1.0, 0.0});
  check_near(F::cosine_similarity(cr::tensor({1, 1}, cr::float64), cr::tensor({2, 0}, cr::float64), 0), {std::sqrt(0.5)});
  // int64 operands in the default dtype (in int64, the clamp at eps^2 truncated to 0 and gave 0 / 0)
  const cr::Tensor ints = F::cosine_similarity(cr::tensor({0, 3}, {2, 1}, cr::int64), cr::tensor({2.0, 1.0}, {2, 1}, cr::float64));
  CHECK(ints.dtype() == cr::float64);
  CHECK(values(ints) == std::vector<double>{0.0, 1.0});
  check_near(F::pairwise_distance(cr::zeros({1, 2}, cr::float64), cr::tensor({3, 4}, {1, 2}, cr::float64)), {5.0}, 1e-6);
  CHECK(F::pairwise_distance(cr::zeros({2, 3}), cr::zeros({2, 3}), 2.0, 1e-6, true).shape() == cr::Shape{2, 1});
  const cr::Tensor oh = F::one_hot(cr::tensor({0, 2, 1, 2}, {2, 2}, cr::int64));
  CHECK(oh.dtype() == cr::int64);
  CHECK(oh.shape() == cr::Shape{2, 2, 3});
  CHECK(oh.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1});
  CHECK(F::one_hot(cr::tensor({1}, cr::int64), 4).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 0});
}

TEST_CASE("more losses and distances: gradients (gradcheck, first and second order)") {
  using V = const std::vector<cr::Tensor>&;
  const cr::Tensor x = input({3, 4}, -2, 2, 1), y = input({3, 4}, -2, 2, 2), z = input({3, 4}, -2, 2, 5);
  const cr::Tensor sign = cr::tensor({1, -1, -1, 1, 1, -1, 1, 1, -1, -1, 1, -1}, {3, 4}, cr::float64);
  const cr::Tensor prob = input({3, 4}, 0.1, 1, 3), pos = input({3, 4}, 0.5, 2, 4);
  check_gradients([](V v) { return F::kl_div(cr::log_softmax(v[0], 1), cr::softmax(v[1], 1), R::batchmean); }, {x, y});
  check_gradients([](V v) { return F::kl_div(v[0], v[1], R::sum, true); }, {x, y});
  check_gradients([&](V v) { return F::kl_div(v[0], v[1], R::none); }, {x, prob});
  check_gradients([&](V v) { return F::margin_ranking_loss(v[0], v[1], sign, 0.3); }, {x, y});
  check_gradients([&](V v) { return F::hinge_embedding_loss(v[0], sign, 1.5, R::sum); }, {x});
  check_gradients([&](V v) { return F::soft_margin_loss(v[0], sign); }, {x});
  check_gradients([&](V v) { return F::multilabel_soft_margin_loss(v[0], (sign + 1.0) * 0.5, v[1], R::none); }, {x, pos.narrow(0, 0, 1).reshape({4})});
  const cr::Tensor classes = cr::tensor({0, 3, 1}, cr::int64);
  check_gradients([&](V v) { return F::multi_margin_loss(v[0], classes, 1, 2.0); }, {x});
  check_gradients([&](V v) { return F::multi_margin_loss(v[0], classes, 2, 1.0, v[1], R::sum); }, {x, pos.narrow(0, 0, 1).reshape({4})});
  check_gradients([&](V v) { return F::cosine_embedding_loss(v[0], v[1], sign.narrow(1, 0, 1).reshape({3}), 0.1); }, {x, y});
  check_gradients([](V v) { return F::triplet_margin_loss(v[0], v[1], v[2], 2.0); }, {x, y, z});
  check_gradients([](V v) { return F::triplet_margin_loss(v[0], v[1], v[2], 2.0, 3.0, 1e-6, true, R::sum); }, {x, y, z});
  check_gradients([](V v) { return F::gaussian_nll_loss(v[0], v[1], v[2]); }, {x, y, pos});
  check_gradients([](V v) { return F::gaussian_nll_loss(v[0], v[1], v[2].narrow(1, 0, 1), true, 1e-6, R::none); }, {x, y, pos});
  check_gradients([](V v) { return F::poisson_nll_loss(v[0], v[1]); }, {x, pos});
  check_gradients([](V v) { return F::poisson_nll_loss(v[0], v[1], false, true, 1e-8, R::sum); }, {pos, prob * 3.0});
  check_gradients([](V v) { return F::normalize(v[0], 2.0, 1); }, {x});
  check_gradients([](V v) { return F::normalize(v[0], 3.0, 0); }, {x});
  check_gradients([](V v) { return F::cosine_similarity(v[0], v[1], 1); }, {x, y});
  check_gradients([](V v) { return F::cosine_similarity(v[0], v[1].narrow(0, 0, 1), 1); }, {x, y});  // broadcast
  check_gradients([](V v) { return F::pairwise_distance(v[0], v[1], 1.5); }, {x, y});
}

TEST_CASE("gaussian_nll_loss and cosine_similarity clamp without blocking the gradient, as PyTorch") {
  // a zero variance is clamped to eps in the value; its gradient is d/dv 0.5 (log v + d^2 / v) at
  // v = eps, passed through the clamp as PyTorch's no-grad in-place clamp does
  cr::Tensor var = cr::tensor({0.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor d = cr::tensor({0.0, 1.0}, cr::float64);
  F::gaussian_nll_loss(d, cr::zeros({2}, cr::float64), var, false, 1e-6, R::sum).backward();
  check_near(var.grad(), {0.5 / 1e-6, 0.5 * (0.5 - 0.25)});
  // a zero vector x1 divided by its norm clamped at eps: the cosine is 0, its gradient x2 / (|x2| eps)
  cr::Tensor a = cr::zeros({1, 2}, cr::float64).requires_grad_();
  cr::sum(F::cosine_similarity(a, cr::tensor({3, 4}, {1, 2}, cr::float64), 1)).backward();
  check_near(a.grad(), {0.6 / 1e-8, 0.8 / 1e-8});
}

TEST_CASE("more losses: errors name the op and the shapes") {
  const cr::Tensor x = cr::zeros({2, 3});
  check_error([&] { (void)F::kl_div(x, cr::zeros({3, 2})); }, {"kl_div", "[2, 3]", "[3, 2]"});
  check_error([&] { (void)F::mse_loss(x, x, R::batchmean); }, {"mse_loss", "batchmean", "kl_div"});
  check_error([&] { (void)F::margin_ranking_loss(x, x, cr::zeros({2})); }, {"margin_ranking_loss", "[2]", "[2, 3]"});
  check_error([&] { (void)F::gaussian_nll_loss(x, x, cr::ones({3})); }, {"gaussian_nll_loss", "var", "[3]", "[2, 3]"});
  check_error([&] { (void)F::gaussian_nll_loss(x, x, -cr::ones({2, 3})); }, {"gaussian_nll_loss", "negative"});
  check_error([&] { (void)F::multi_margin_loss(x, cr::tensor({0, 3}, cr::int64)); }, {"multi_margin_loss", "target 3"});
  check_error([&] { (void)F::multi_margin_loss(x, cr::tensor({0, 1}, cr::int64), 3); }, {"multi_margin_loss", "p", "3"});
  check_error([&] { (void)F::cosine_embedding_loss(x, x, cr::zeros({3})); }, {"cosine_embedding_loss", "[3]"});
  check_error([&] { (void)F::triplet_margin_loss(x, x, cr::zeros({2, 4})); }, {"triplet_margin_loss", "[2, 4]"});
  check_error([] { (void)F::one_hot(cr::tensor({0, 3}, cr::int64), 3); }, {"one_hot", "3", "3 classes"});
  check_error([] { (void)F::one_hot(cr::tensor({-1}, cr::int64)); }, {"one_hot", "-1"});
  check_error([] { (void)F::one_hot(cr::tensor({1.0})); }, {"one_hot", "int64"});
  check_error([&] { (void)F::normalize(x, 2.0, 2); }, {"normalize", "dimension 2", "rank 2"});
}
