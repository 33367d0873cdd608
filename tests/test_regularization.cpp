// Dropout (functional and module, switched by train/eval) and gradient clipping
// (nn::utils::clip_grad_norm_ and clip_grad_value_), as PyTorch defines them; the numbers of
// clipping are also compared against torch by tests/torch_parity.
#include "helpers.hpp"

#include <algorithm>
#include <cmath>

namespace F = cr::nn::functional;

TEST_CASE("dropout: zeroes each element with probability p, scales the others by 1 / (1 - p)") {
  cr::Generator gen(3);
  cr::Tensor x = cr::ones({2000}, cr::float64).requires_grad_();
  const cr::Tensor y = F::dropout(x, 0.3, true, &gen);
  CHECK(y.dtype() == cr::float64);
  const double kept = 1.0 / (1.0 - 0.3);  // PyTorch's mask value: 1 / (1 - p) in the input's dtype
  int64_t zeros = 0;
  for (double v : values(y)) {
    CHECK((v == 0.0 || v == kept));
    zeros += v == 0.0;
  }
  CHECK(zeros > 540);  // 600 expected; the binomial's standard deviation is 20.5
  CHECK(zeros < 660);
  // the gradient is the mask: dy/dx = 0 or 1 / (1 - p), the same elements as the forward's
  cr::sum(y * 2.0).backward();
  const auto g = values(x.grad()), v = values(y);
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == 2.0 * v[i]);
  // float32 keeps its dtype, and its mask value is float(1) / float(1 - p)
  cr::Generator gen32(3);
  const cr::Tensor y32 = F::dropout(cr::ones({100}, cr::float32), 0.3, true, &gen32);
  CHECK(y32.dtype() == cr::float32);
  for (float v32 : y32.to_vector<float>()) CHECK((v32 == 0.0f || v32 == 1.0f / (1.0f - 0.3f)));
}

TEST_CASE("dropout: reproducible with a Generator; gradcheck with a fixed mask") {
  const cr::Tensor x = input({4, 5});
  cr::Generator a(11), b(11), c(12);
  CHECK(values(F::dropout(x, 0.5, true, &a)) == values(F::dropout(x, 0.5, true, &b)));
  CHECK(values(F::dropout(x, 0.5, true, &a)) != values(F::dropout(x, 0.5, true, &c)));
  // the same generator seed on every call: the same mask, so finite differences see one function
  check_gradients(
      [](const std::vector<cr::Tensor>& in) {
        cr::Generator g(5);
        return F::dropout(in[0], 0.4, true, &g);
      },
      {x});
  // without a generator, the global one (manual_seed makes it repeat)
  cr::manual_seed(9);
  const auto first = values(F::dropout(x, 0.5));
  cr::manual_seed(9);
  CHECK(values(F::dropout(x, 0.5)) == first);
}

TEST_CASE("dropout: the identity in eval mode and at p = 0, zeros at p = 1, errors name the op") {
  cr::Tensor x = input({3, 4});
  // not training, or p = 0: the input itself, as PyTorch returns it
  CHECK(F::dropout(x, 0.5, false).impl() == x.impl());
  CHECK(F::dropout(x, 0.0, true).impl() == x.impl());
  // p = 1: x * 0 (a NaN stays NaN, as in PyTorch), with a zero gradient
  const cr::Tensor y = F::dropout(x, 1.0);
  CHECK(values(y) == std::vector<double>(12, 0.0));
  cr::sum(y).backward();
  CHECK(values(x.grad()) == std::vector<double>(12, 0.0));
  CHECK(std::isnan(F::dropout(cr::tensor({NAN, 1.0}, cr::float64), 1.0).to_vector<double>()[0]));
  // an empty tensor is fine
  CHECK(F::dropout(cr::zeros({0, 3}), 0.5).shape() == cr::Shape{0, 3});
  check_error([&] { (void)F::dropout(x, -0.1); }, {"dropout", "probability", "-0.1", "between 0 and 1"});
  check_error([&] { (void)F::dropout(x, 1.5); }, {"dropout", "1.5"});
  check_error([&] { (void)F::dropout(x, NAN); }, {"dropout", "nan"});
  check_error([] { (void)F::dropout(cr::zeros({2}, cr::int64), 0.5); }, {"dropout", "int64", "floating"});
  // the errors come first, in eval mode too
  check_error([&] { (void)F::dropout(x, 2.0, false); }, {"dropout", "2"});
}

TEST_CASE("Dropout module: follows train()/eval(), prints its p, rejects a bad p") {
  cr::Generator gen(4);
  auto drop = std::make_shared<cr::nn::Dropout>(0.5, &gen);
  CHECK(drop->repr() == "Dropout(p=0.5)");
  CHECK(cr::nn::Dropout().repr() == "Dropout(p=0.5)");
  const cr::Tensor x = cr::ones({200}, cr::float64);
  const auto trained = values((*drop)(x));
  CHECK(std::count(trained.begin(), trained.end(), 0.0) > 60);
  CHECK(std::count(trained.begin(), trained.end(), 2.0) > 60);
  cr::nn::Sequential net({std::make_shared<cr::nn::Linear>(200, 3, cr::nn::LinearOptions{.dtype = cr::float64}), drop});
  net.eval();  // reaches the Dropout inside
  CHECK_FALSE(drop->is_training());
  CHECK((*drop)(x).impl() == x.impl());
  const cr::Tensor batch = cr::rand({5, 200}, cr::float64);
  CHECK(values(net(batch)) == values(net(batch)));  // deterministic in eval
  net.train();
  CHECK(values((*drop)(x)) != values(x));
  CHECK(fmt::format("{}", net).find("(1): Dropout(p=0.5)") != std::string::npos);
  check_error([] { cr::nn::Dropout bad(1.2); }, {"Dropout", "1.2", "between 0 and 1"});
}

namespace {
// Parameters of float64 with the given gradients.
std::vector<cr::Tensor> with_grads(const std::vector<std::vector<double>>& grads) {
  std::vector<cr::Tensor> params;
  for (const auto& g : grads) {
    const auto n = static_cast<int64_t>(g.size());
    params.push_back(cr::zeros({n}, cr::float64).requires_grad_());
    params.back().set_grad(cr::tensor(g, {n}, cr::float64));
  }
  return params;
}
}  // namespace

TEST_CASE("clip_grad_norm_: scales every gradient by max_norm / (total norm + 1e-6) when above, returns the norm") {
  using cr::nn::utils::clip_grad_norm_;
  // norms of (3, 4) and (12): 5 and 12; total 2-norm 13
  auto p = with_grads({{3, 4}, {12}});
  CHECK(clip_grad_norm_(p, 6.5) == 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  CHECK(values(p[0].grad()) == std::vector<double>{3 * coef, 4 * coef});
  CHECK(values(p[1].grad()) == std::vector<double>{12 * coef});
  // below max_norm: unchanged
  p = with_grads({{3, 4}, {12}});
  CHECK(clip_grad_norm_(p, 20.0) == 13.0);
  CHECK(values(p[0].grad()) == std::vector<double>{3, 4});
  // other norms, each the norm of the per-parameter norms (PyTorch's two levels)
  p = with_grads({{3, -4}, {-12}});
  CHECK(clip_grad_norm_(p, 100.0, INFINITY) == 12.0);
  CHECK(clip_grad_norm_(p, 100.0, 1.0) == 19.0);
  CHECK(clip_grad_norm_(p, 100.0, 3.0) == doctest::Approx(std::cbrt(27.0 + 64.0 + 1728.0)).epsilon(1e-15));
  CHECK(clip_grad_norm_(p, 6.0, INFINITY) == 12.0);
  CHECK(values(p[1].grad())[0] == doctest::Approx(-12 * 6.0 / (12.0 + 1e-6)).epsilon(1e-15));
  // parameters without a gradient are skipped; none at all: 0
  auto q = with_grads({{1, 1}});
  q.push_back(cr::zeros({3}, cr::float64).requires_grad_());
  CHECK(clip_grad_norm_(q, 1.0) == doctest::Approx(std::sqrt(2.0)).epsilon(1e-15));
  CHECK_FALSE(q[1].grad().defined());
  CHECK(clip_grad_norm_({cr::zeros({2}).requires_grad_()}, 1.0) == 0.0);
  CHECK(clip_grad_norm_({}, 1.0) == 0.0);
  // float32 gradients stay float32
  cr::Tensor f = cr::zeros({2}).requires_grad_();
  f.set_grad(cr::tensor({30, 40}, cr::float32));
  CHECK(clip_grad_norm_({f}, 5.0) == doctest::Approx(50.0));
  CHECK(f.grad().dtype() == cr::float32);
  CHECK(f.grad().to_vector<float>()[1] == doctest::Approx(4.0).epsilon(1e-6));
}

TEST_CASE("clip_grad_norm_: gradients of a real backward; non-finite norms; bad arguments") {
  using cr::nn::utils::clip_grad_norm_;
  cr::manual_seed(2);
  cr::nn::MLP mlp({3, 8, 2}, {.dtype = cr::float64});
  cr::sum(mlp(cr::rand({16, 3}, cr::float64)) * 100.0).backward();
  double before = 0;
  for (const auto& prm : mlp.parameters())
    for (double v : values(prm.grad())) before += v * v;
  CHECK(clip_grad_norm_(mlp.parameters(), 1.0) == doctest::Approx(std::sqrt(before)).epsilon(1e-12));
  double after = 0;
  for (const auto& prm : mlp.parameters())
    for (double v : values(prm.grad())) after += v * v;
  CHECK(std::sqrt(after) == doctest::Approx(1.0).epsilon(1e-5));
  // a NaN gradient: NaN norm, every gradient scaled by NaN (PyTorch's default) ...
  auto p = with_grads({{NAN, 1}, {2}});
  CHECK(std::isnan(clip_grad_norm_(p, 1.0)));
  CHECK(std::isnan(values(p[1].grad())[0]));
  // ... or an Error naming the norm, with error_if_nonfinite, and nothing scaled
  p = with_grads({{INFINITY, 1}, {2}});
  check_error([&] { (void)clip_grad_norm_(p, 1.0, 2.0, true); }, {"clip_grad_norm_", "non-finite", "inf", "error_if_nonfinite"});
  CHECK(values(p[1].grad()) == std::vector<double>{2});
  check_error([&] { (void)clip_grad_norm_(p, -1.0); }, {"clip_grad_norm_", "max_norm", "-1"});
  check_error([&] { (void)clip_grad_norm_(p, NAN); }, {"clip_grad_norm_", "max_norm", "nan"});
  check_error([&] { (void)clip_grad_norm_(p, 1.0, 0.0); }, {"clip_grad_norm_", "norm_type", "0"});
  check_error([&] { (void)clip_grad_norm_(p, 1.0, -2.0); }, {"clip_grad_norm_", "norm_type", "-2"});
}

TEST_CASE("clip_grad_value_: clamps every gradient to [-clip_value, clip_value] in place") {
  using cr::nn::utils::clip_grad_value_;
  auto p = with_grads({{-3, 0.5, 2}, {NAN, -0.25}});
  p.push_back(cr::zeros({1}, cr::float64).requires_grad_());  // no gradient: skipped
  cr::Tensor g0 = p[0].grad();
  clip_grad_value_(p, 1.0);
  CHECK(values(g0) == std::vector<double>{-1, 0.5, 1});  // the same tensor, changed in place
  const auto g1 = values(p[1].grad());
  CHECK(std::isnan(g1[0]));  // NaN stays NaN, as clamp keeps it
  CHECK(g1[1] == -0.25);
  CHECK_FALSE(p[2].grad().defined());
  check_error([&] { clip_grad_value_(p, -1.0); }, {"clip_grad_value_", "clip_value", "-1"});
  check_error([&] { clip_grad_value_(p, NAN); }, {"clip_grad_value_", "clip_value", "nan"});
}
