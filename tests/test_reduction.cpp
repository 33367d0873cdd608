// Reductions: values against hand-computed numbers, gradients against finite differences
// (first and second order) over dims with and without keepdim, and the tie rules of max/min (split by
// max(x) and amax, to the indexed element by max(x, dim)).
#include "helpers.hpp"

#include <cmath>
#include <numbers>

TEST_CASE("sum and mean: values over all dims, one dim, several dims, keepdim") {
  cr::Tensor x = cr::arange(24, cr::float64).reshape({2, 3, 4});
  CHECK(cr::sum(x).item<double>() == 276);
  CHECK(cr::sum(x).dim() == 0);
  CHECK(cr::mean(x).item<double>() == 11.5);
  CHECK(values(cr::sum(x, 2)) == std::vector<double>{6, 22, 38, 54, 70, 86});
  CHECK(cr::sum(x, 1, true).shape() == cr::Shape{2, 1, 4});
  CHECK(values(cr::sum(x, cr::Shape{0, 2})) == std::vector<double>{60, 92, 124});
  CHECK(values(cr::mean(x, -1)) == std::vector<double>{1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  CHECK(cr::sum(cr::tensor(3.0)).item<double>() == 3);
  CHECK(cr::sum(cr::zeros({0, 3})).item<double>() == 0);
}

TEST_CASE("a whole-tensor sum counts every element, the last few past a multiple of eight too") {
  // Sums of quarters are exact in float64 at these sizes, whatever order the elements are added
  // in: every length from 0 to 19 (the running sums' lengths and their remainders), a
  // million and three float32 elements, int64, and a transposed (non-contiguous) view.
  for (int64_t n = 0; n < 20; ++n) {
    CAPTURE(n);
    const cr::Tensor x = cr::arange(static_cast<double>(n), cr::float64) * 0.25 + 1;
    CHECK(cr::sum(x).item<double>() == static_cast<double>(n) * (n - 1) / 8 + static_cast<double>(n));
  }
  const int64_t big = 1000003;
  std::vector<double> quarters;
  double exact = 0;  // one element at a time, in order
  for (int64_t i = 0; i < big; ++i) {
    quarters.push_back(static_cast<double>(i % 7) * 0.25);
    exact += quarters.back();
  }
  const cr::Tensor q = cr::tensor(quarters, {big}, cr::float64);
  CHECK(cr::sum(q).item<double>() == exact);
  CHECK(cr::sum(q.to(cr::float32)).item<float>() == static_cast<float>(exact));
  CHECK(cr::sum(cr::arange(static_cast<double>(big), cr::int64)).item<int64_t>() == big * (big - 1) / 2);
  CHECK(cr::sum(q.reshape({1000003, 1}).expand({1000003, 2}).t()).item<double>() == 2 * exact);
}

TEST_CASE("sum over every set of dims equals a plain loop (runs of summed and kept dims, size-1 dims)") {
  // Integers in float64, so every order of addition gives the same sums; float32 and int64 too,
  // and the same sums of a transposed copy (the strided path).
  for (const cr::Shape& shape : {cr::Shape{3, 4, 5, 6}, cr::Shape{2, 1, 7, 1, 9}, cr::Shape{5, 17}}) {
    const int64_t rank = static_cast<int64_t>(shape.size());
    const cr::Tensor x = cr::arange(static_cast<double>(shape.numel()), cr::float64).reshape(shape) - 50;
    const auto xv = values(x);
    for (int64_t mask = 1; mask < (int64_t{1} << rank); ++mask) {
      cr::Shape dims;
      for (int64_t d = 0; d < rank; ++d)
        if (mask >> d & 1) dims.push_back(d);
      CAPTURE(shape);
      CAPTURE(dims);
      // the plain loop: each element added to the output position of its kept indices
      cr::Shape out_shape;
      for (int64_t d = 0; d < rank; ++d)
        if (!(mask >> d & 1)) out_shape.push_back(shape[static_cast<size_t>(d)]);
      std::vector<double> expected(static_cast<size_t>(out_shape.numel()), 0.0);
      for (int64_t e = 0; e < shape.numel(); ++e) {
        int64_t rest = e, at = 0, scale = 1;
        for (int64_t d = rank - 1; d >= 0; --d) {
          const int64_t size = shape[static_cast<size_t>(d)], i = rest % size;
          rest /= size;
          if (!(mask >> d & 1)) at += i * scale, scale *= size;
        }
        expected[static_cast<size_t>(at)] += xv[static_cast<size_t>(e)];
      }
      CHECK(values(cr::sum(x, dims)) == expected);
      CHECK(values(cr::sum(x.to(cr::float32), dims)) == expected);
      CHECK(values(cr::sum(x.to(cr::int64), dims)) == expected);
      CHECK(values(cr::sum(x.transpose(0, rank - 1).contiguous().transpose(0, rank - 1), dims)) == expected);
    }
  }
  // summing over an empty dim gives zeros
  CHECK(values(cr::sum(cr::zeros({3, 0}), 1)) == std::vector<double>(3, 0.0));
  CHECK(values(cr::sum(cr::zeros({2, 0, 3}), 1)) == std::vector<double>(6, 0.0));
}

TEST_CASE("reduction gradients at several shapes, keepdim, non-contiguous") {
  const std::vector<cr::Tensor> xs = {input({5}, -2, 2, 1), input({3, 4}, -2, 2, 2),
                                      input({2, 3, 4}, -2, 2, 3).detach().permute({2, 0, 1}).requires_grad_()};
  for (const auto& x : xs) {
    CAPTURE(x.shape());
    auto f = [](auto g) { return [g](const std::vector<cr::Tensor>& v) { return g(v[0]); }; };
    check_gradients(f([](const cr::Tensor& v) { return cr::sum(v * v); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::mean(v * v, 0, true); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::sum(v, -1) * cr::sum(v, -1); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::max(v); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::min(v, 0).values; }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::max(v, -1, true).values * 2.0; }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::var(v); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::var(v, cr::Shape{0}, 0, true); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::logsumexp(v, -1); }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::softmax(v, -1) * v; }), {x});
    check_gradients(f([](const cr::Tensor& v) { return cr::log_softmax(v, 0) * v; }), {x});
  }
}

TEST_CASE("max and min: values, indices; ties share the gradient of max(x) and amax") {
  cr::Tensor x = cr::tensor({1, 5, 2, 5, 0, -3}, {2, 3}, cr::float64).requires_grad_();
  auto [v, i] = cr::max(x, 1);
  CHECK(values(v) == std::vector<double>{5, 5});
  CHECK(i.dtype() == cr::int64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(cr::argmax(x).item<int64_t>() == 1);  // first of the tied maxima
  CHECK(cr::argmin(x, 0).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
  CHECK(cr::min(x).item<double>() == -3);
  cr::max(x).backward();  // the two 5s tie: each gets half
  CHECK(values(x.grad()) == std::vector<double>{0, 0.5, 0, 0.5, 0, 0});
  x.set_grad({});
  cr::amax(x, cr::Shape{0, 1}).backward();  // amax splits too (PyTorch's amax)
  CHECK(values(x.grad()) == std::vector<double>{0, 0.5, 0, 0.5, 0, 0});
  check_error([] { (void)cr::max(cr::zeros({0})); }, {"max", "empty", "[0]"});
  // each names itself (argmax, argmin and min over an empty dim said "max")
  check_error([] { (void)cr::argmax(cr::zeros({0, 3})); }, {"argmax", "empty", "[0]"});
  check_error([] { (void)cr::argmin(cr::zeros({0, 3}), 0); }, {"argmin", "empty", "[0, 3]"});
  check_error([] { (void)cr::min(cr::zeros({0, 3}), 0); }, {"min:", "empty"});
  CHECK(cr::max(cr::zeros({0, 3}), 1).values.shape() == cr::Shape{0});  // an empty dim not reduced is fine
}

TEST_CASE("max(x, dim) and min(x, dim) give the gradient to the element their indices name, as PyTorch's") {
  // a tie: the index is the first of the tied elements, and only it gets the gradient (they
  // split it evenly, so that values and indices disagreed about which element was picked)
  cr::Tensor x = cr::tensor({1, 5, 2, 5, 0, -3, 0, 0}, {2, 4}, cr::float64).requires_grad_();
  auto [v, i] = cr::max(x, 1);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  cr::sum(v * cr::tensor({1.0, 10.0}, cr::float64)).backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 1, 0, 0, 10, 0, 0, 0});
  x.set_grad({});
  auto [mv, mi] = cr::min(x, 1, true);
  CHECK(mi.to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  cr::sum(mv).backward();
  CHECK(values(x.grad()) == std::vector<double>{1, 0, 0, 0, 0, 1, 0, 0});
  x.set_grad({});
  cr::sum(cr::max(x, 0).values).backward();  // along dim 0: each column's winner
  CHECK(values(x.grad()) == std::vector<double>{1, 1, 1, 1, 0, 0, 0, 0});
  // a 0-d input: the value and index 0, the gradient passes
  cr::Tensor s = cr::tensor(3.0, cr::float64).requires_grad_();
  auto [sv, si] = cr::max(s, 0);
  CHECK(si.item<int64_t>() == 0);
  sv.backward();
  CHECK(s.grad().item<double>() == 1);
  // second order through the selection (the Hessian of max(x, 1)^2 is 2 at the picked element)
  cr::Tensor y = cr::tensor({1, 4, 2, 3}, {2, 2}, cr::float64).requires_grad_();
  const auto g = cr::autograd::grad({cr::sum(cr::pow(cr::max(y, 1).values, 2.0))}, {y}, {}, true, true)[0];
  CHECK(values(g) == std::vector<double>{0, 8, 0, 6});
  cr::sum(g).backward();
  CHECK(values(y.grad()) == std::vector<double>{0, 2, 0, 2});
  CHECK(std::string(cr::max(y, 1).values.grad_fn()->name) == "max");
  // the indices are saved: changing the returned ones in place before backward is an Error
  auto max = cr::max(y, 1);
  const cr::Tensor yv = max.values;  // (not a structured binding: the lambda below captures it)
  max.indices.add_(1);
  check_error([&] { cr::sum(yv).backward(); }, {"backward of 'max'", "modified by an in-place operation"});
}

TEST_CASE("logsumexp over an empty dim is -inf, as PyTorch's (it failed naming max)") {
  cr::Tensor e = cr::zeros({0, 3}, cr::float64).requires_grad_();
  const cr::Tensor l = cr::logsumexp(e, 0);
  CHECK(l.shape() == cr::Shape{3});
  for (double v : values(l)) CHECK(v == -INFINITY);
  CHECK(cr::logsumexp(e, 0, true).shape() == cr::Shape{1, 3});
  CHECK(cr::logsumexp(e, 1).shape() == cr::Shape{0});
  cr::sum(cr::logsumexp(e, 1)).backward();
  CHECK(e.grad().shape() == cr::Shape{0, 3});
  // -inf depends on no element, so a second derivative through it is 0: written as
  // log(sum(exp(x))), its backward divided by the empty sum, and a Hessian-vector product
  // through it read 0 / 0 = NaN (PyTorch: 0; found by the random differential test)
  const cr::Tensor a = cr::tensor({2.0, 3.0, 4.0}, cr::float64).requires_grad_();
  const cr::Tensor ge = cr::autograd::grad({cr::sum(cr::exp(cr::logsumexp(e, 0)) * a)}, {e}, {}, true, true)[0];
  const cr::Tensor ha = cr::autograd::grad({cr::sum(ge) + cr::sum(a * a)}, {a})[0];
  CHECK(values(ha) == std::vector<double>{4, 6, 8});
}

TEST_CASE("mean over an empty dim is NaN, and a second derivative through it is 0") {
  // As sum / 0, its backward divided by 0 before the gradient reached the (empty) input, so a
  // Hessian-vector product through it read 0 / 0 = NaN (PyTorch, which divides after expanding
  // to the empty input: 0; found by the random differential test in float32)
  const cr::Tensor e = cr::zeros({0, 3}, cr::float64).requires_grad_();
  const cr::Tensor m = cr::mean(e, 0);
  REQUIRE(m.shape() == cr::Shape{3});
  for (double v : values(m)) CHECK(std::isnan(v));
  const cr::Tensor a = cr::tensor({2.0, 3.0, 4.0}, cr::float64).requires_grad_();
  const cr::Tensor ge = cr::autograd::grad({cr::sum(cr::mean(e, 0) * a * a)}, {e}, {}, true, true)[0];
  CHECK(ge.shape() == cr::Shape{0, 3});
  const cr::Tensor ha = cr::autograd::grad({cr::sum(ge) + cr::sum(a * a)}, {a})[0];
  CHECK(values(ha) == std::vector<double>{4, 6, 8});
  CHECK(std::isnan(cr::mean(cr::zeros({0})).item<double>()));
}

TEST_CASE("softmax and log_softmax over an empty dim give an empty tensor, as PyTorch's") {
  // softmax shifted by amax over the dim, which an empty dim has not: it failed naming "max"
  cr::Tensor e = cr::zeros({0, 3}, cr::float64).requires_grad_();
  for (int64_t d : {0, 1}) {
    const cr::Tensor s = cr::softmax(e, d);
    CHECK(s.shape() == cr::Shape{0, 3});
    CHECK(cr::log_softmax(e, d).shape() == cr::Shape{0, 3});
    cr::sum(s * 2.0).backward();
    CHECK(e.grad().shape() == cr::Shape{0, 3});
  }
  CHECK(cr::softmax(cr::zeros({0}), 0).shape() == cr::Shape{0});
}

TEST_CASE("var: unbiased by default, correction=0 is the population variance") {
  cr::Tensor x = cr::tensor({1, 2, 3, 4}, cr::float64);
  CHECK(cr::var(x).item<double>() == doctest::Approx(5.0 / 3.0));
  CHECK(cr::var(x, cr::Shape{0}, 0).item<double>() == doctest::Approx(1.25));
}

TEST_CASE("logsumexp, softmax, log_softmax are stable") {
  CHECK(cr::logsumexp(cr::tensor({1000.0, 1000.0}, cr::float64), 0).item<double>() ==
        doctest::Approx(1000 + std::numbers::ln2).epsilon(1e-15));
  CHECK(cr::logsumexp(cr::tensor({-1000.0, -1000.0}, cr::float64), 0).item<double>() ==
        doctest::Approx(-1000 + std::numbers::ln2).epsilon(1e-15));
  CHECK(cr::logsumexp(cr::tensor({-INFINITY, -INFINITY}, cr::float64), 0).item<double>() == -INFINITY);
  for (auto dtype : {cr::float32, cr::float64}) {
    cr::Tensor x = cr::tensor({-1e4, -710, -88, -20, -1, 0, 1, 20, 88, 710, 1e4}, dtype).requires_grad_();
    const auto s = values(cr::softmax(x, 0));
    const auto ls = values(cr::log_softmax(x, 0));
    CHECK(s[10] == doctest::Approx(1.0));
    CHECK(ls[10] == doctest::Approx(0.0));
    CHECK(ls[0] == doctest::Approx(-2e4));
    (cr::log_softmax(x, 0).sum() + cr::logsumexp(x, 0)).backward();
    for (double g : values(x.grad())) CHECK(std::isfinite(g));
  }
  cr::Tensor rows = cr::tensor({1, 2, 3, 1, 1, 1}, {2, 3}, cr::float64);
  const auto sm = values(cr::softmax(rows, 1));
  const double z = std::exp(1) + std::exp(2) + std::exp(3);
  CHECK(sm[0] == doctest::Approx(std::exp(1) / z));
  CHECK(sm[4] == doctest::Approx(1.0 / 3));
}

TEST_CASE("sum's first-order backward spreads its gradient into a buffer of its own, which the next rule reuses") {
  // A loss's sum(pow(y - a, 2)): the gradient arriving at pow's output is a contiguous tensor
  // nobody else holds (not a broadcast view of the 0-d seed), so pow's fused rule writes into it
  // and the leaf takes that same buffer as its .grad; over one dim, likewise.
  for (const bool whole : {true, false}) {
    CAPTURE(whole);
    cr::Tensor x = cr::tensor({1.0, -2.0, 3.0, 0.5, 4.0, -1.0}, {2, 3}, cr::float64).requires_grad_();
    cr::Tensor h = cr::pow(x, 2);
    const cr::TensorImpl* arriving = nullptr;
    bool contiguous = false;
    h.register_hook([&](const cr::Tensor& g) {  // keeps no reference
      arriving = g.impl();
      contiguous = g.is_contiguous();
      return cr::Tensor();
    });
    cr::Tensor s = whole ? cr::sum(h) : cr::sum(h, 1);
    s.backward(whole ? cr::tensor(1.5, cr::float64) : cr::tensor({1.5, -0.5}, cr::float64));
    CHECK(contiguous);
    CHECK(x.grad().impl() == arriving);
    const std::vector<double> scale =
        whole ? std::vector<double>(6, 1.5) : std::vector<double>{1.5, 1.5, 1.5, -0.5, -0.5, -0.5};
    const std::vector<double> xs = values(x.detach());
    std::vector<double> expected(6);
    for (size_t i = 0; i < 6; ++i) expected[i] = 2 * xs[i] * scale[i];
    CHECK(values(x.grad()) == expected);
  }
  // with create_graph the spread is recorded: the gradient differentiates again (d/dx of
  // sum(d sum(x^3)/dx) = 6x)
  cr::Tensor x = cr::tensor({1.0, -2.0, 3.0}, cr::float64).requires_grad_();
  const cr::Tensor g = cr::autograd::grad({cr::sum(cr::pow(x, 3))}, {x}, {}, false, true)[0];
  REQUIRE(g.requires_grad());
  CHECK(values(cr::autograd::grad({cr::sum(g)}, {x})[0]) == std::vector<double>{6, -12, 18});
}

TEST_CASE("sum_to is the adjoint of expand") {
  cr::Tensor x = cr::ones({2, 3, 4}, cr::float64);
  CHECK(values(cr::sum_to(x, {3, 1})) == std::vector<double>{8, 8, 8});
  CHECK(cr::sum_to(x, {}).item<double>() == 24);
  check_error([&] { (void)cr::sum_to(x, {5}); }, {"sum_to", "[2, 3, 4]", "[5]"});
  const cr::Tensor v = input({2, 3, 4});
  check_gradients([](const std::vector<cr::Tensor>& a) { return cr::sum_to(a[0] * a[0], {3, 1}); }, {v});
}

TEST_CASE("reduction dims are validated") {
  const cr::Tensor x = cr::zeros({2, 3});
  check_error([&] { (void)cr::sum(x, 2); }, {"sum", "dimension 2", "rank 2"});
  check_error([&] { (void)cr::sum(x, cr::Shape{0, -2}); }, {"sum", "twice"});
  check_error([&] { (void)cr::softmax(x, 3); }, {"softmax", "dimension 3"});
}

TEST_CASE("norm: p-norms over all dims or some, as torch.linalg.vector_norm") {
  const cr::Tensor x = cr::tensor({3.0, -4, 0, 12}, {2, 2}, cr::float64);
  CHECK(cr::norm(x).item<double>() == doctest::Approx(13));
  CHECK(cr::norm(x).dim() == 0);
  CHECK(cr::norm(x, 1).item<double>() == 19);
  CHECK(cr::norm(x, INFINITY).item<double>() == 12);
  CHECK(cr::norm(x, -INFINITY).item<double>() == 0);
  CHECK(cr::norm(x, 0).item<double>() == 3);  // the number of non-zero elements
  CHECK(cr::norm(x, 3).item<double>() == doctest::Approx(std::cbrt(27 + 64 + 1728.0)));
  CHECK(cr::norm(x, 0.5).item<double>() == doctest::Approx(std::pow(std::sqrt(3.0) + 2 + std::sqrt(12.0), 2)));
  CHECK(values(cr::norm(x, 2, {1})) == std::vector<double>{5, 12});
  CHECK(cr::norm(x, 2, {0}, true).shape() == cr::Shape{1, 2});
  CHECK(values(cr::norm(x, INFINITY, {0})) == std::vector<double>{3, 12});
  CHECK(cr::norm(cr::zeros({0}, cr::float64)).item<double>() == 0);
  CHECK(cr::norm(x.to(cr::float32)).dtype() == cr::float32);
  check_error([] { cr::norm(cr::ones({2}, cr::int64)); }, {"norm", "int64"});
  check_error([] { cr::norm(cr::zeros({0}), INFINITY); }, {"norm", "inf", "[0]"});
  check_error([] { cr::norm(cr::zeros({2}), -1); }, {"norm", "-1"});
  check_error([&] { cr::norm(x, 2, {2}); }, {"norm", "2"});
}

TEST_CASE("norm: gradcheck and gradgradcheck for p = 1, 1.5, 2, 3, inf over dims") {
  const cr::Tensor x = input({3, 4});
  for (double p : std::vector<double>{1.0, 1.5, 2.0, 3.0, INFINITY, -INFINITY}) {
    CAPTURE(p);
    check_gradients([p](const std::vector<cr::Tensor>& v) { return cr::norm(v[0], p); }, {x});
    check_gradients([p](const std::vector<cr::Tensor>& v) { return cr::norm(v[0], p, {1}, true); }, {x});
  }
}

TEST_CASE("norm: at the zero vector the gradient is 0 (PyTorch's subgradient), ties of max |x| share it") {
  cr::Tensor z = cr::zeros({3}, cr::float64).requires_grad_();
  for (double p : std::vector<double>{1.0, 1.5, 2.0, 3.0, 0.5, INFINITY}) {
    CAPTURE(p);
    const cr::Tensor g = cr::autograd::grad({cr::norm(z, p)}, {z})[0];
    CHECK(values(g) == std::vector<double>{0, 0, 0});  // sqrt(sum(x * x)) would give NaN
  }
  // max |x| reached by two elements: each gets half, with x's sign
  cr::Tensor t = cr::tensor({3.0, -3, 1}, cr::float64).requires_grad_();
  cr::norm(t, INFINITY).backward();
  CHECK(values(t.grad()) == std::vector<double>{0.5, -0.5, 0});
  // p = 0 counts, and has no gradient (as PyTorch's: its result does not require grad)
  CHECK(!cr::norm(t, 0).requires_grad());
  // p = 1: the sign, 0 at 0
  cr::Tensor s = cr::tensor({-2.0, 0, 5}, cr::float64).requires_grad_();
  cr::norm(s, 1).backward();
  CHECK(values(s.grad()) == std::vector<double>{-1, 0, 1});
}

TEST_CASE("norm and std of a zero slice times another tensor: the mixed second derivative is 0, not 0 / 0") {
  // d2/(ds dz) of s * norm(z) at z = 0: the gradient s * z / |z| is 0 whatever s, so its derivative
  // by s is 0 (PyTorch's for the 2-norm); the backward divided s by |z| = 0 before masking, NaN
  // (random program 5734, float32)
  for (double p : std::vector<double>{2.0, 3.0, 1.5, -1.0}) {  // -1: std
    CAPTURE(p);
    cr::Tensor z = cr::zeros({1, 3}, cr::float64).requires_grad_();
    cr::Tensor s = cr::tensor({2.0}, cr::float64).requires_grad_();
    const cr::Tensor r = p > 0 ? cr::norm(z, p, {1}) : cr::std(z, cr::Shape{1});
    const cr::Tensor gz = cr::autograd::grad({cr::sum(r * s)}, {z}, {}, true, true)[0];
    CHECK(values(gz) == std::vector<double>{0, 0, 0});
    CHECK(values(cr::autograd::grad({cr::sum(gz)}, {s})[0]) == std::vector<double>{0});
  }
}

TEST_CASE("std: the square root of var, with correction and dims") {
  const cr::Tensor x = cr::tensor({1.0, 2, 3, 4, 6, 8}, {2, 3}, cr::float64);
  CHECK(cr::std(x).item<double>() == doctest::Approx(std::sqrt(cr::var(x).item<double>())));
  CHECK(values(cr::std(x, cr::Shape{1})) == std::vector<double>{1, 2});
  const auto population = values(cr::std(x, cr::Shape{1}, 0));
  CHECK(population[0] == doctest::Approx(std::sqrt(2.0 / 3)));
  CHECK(population[1] == doctest::Approx(std::sqrt(8.0 / 3)));
  CHECK(cr::std(x, cr::Shape{0}, 1, true).shape() == cr::Shape{1, 3});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::std(v[0], cr::Shape{0}); }, {input({4, 3})});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::std(v[0], 0); }, {input({4, 3})});
  // a constant slice: std 0 with gradient 0, as PyTorch's (sqrt(var) gives inf * 0 = NaN)
  cr::Tensor c = cr::tensor({2.0, 2, 2, 1, 3, 5}, {2, 3}, cr::float64).requires_grad_();
  cr::sum(cr::std(c, cr::Shape{1})).backward();
  CHECK(values(c.grad()) == std::vector<double>{0, 0, 0, -0.5, 0, 0.5});
  // equal values whose sum / n misses them by an ulp ((0.1 + 0.1 + 0.1) / 3 = 0.10000000000000002):
  // still exactly 0, with gradient 0
  cr::Tensor e = cr::full({3}, 0.1, cr::float64).requires_grad_();
  CHECK(cr::var(e).item<double>() == 0);
  const cr::Tensor s = cr::std(e);
  CHECK(s.item<double>() == 0);
  s.backward();
  CHECK(values(e.grad()) == std::vector<double>{0, 0, 0});
}

TEST_CASE("cumsum: running sums along a dim, gradient the reversed running sum") {
  const cr::Tensor x = cr::arange(6, cr::float64).reshape({2, 3});
  CHECK(values(cr::cumsum(x, 1)) == std::vector<double>{0, 1, 3, 3, 7, 12});
  CHECK(values(cr::cumsum(x, 0)) == std::vector<double>{0, 1, 2, 3, 5, 7});
  CHECK(values(cr::cumsum(x, -1)) == values(cr::cumsum(x, 1)));
  CHECK(values(cr::cumsum(x.t(), 0)) == std::vector<double>{0, 3, 1, 7, 3, 12});  // a non-contiguous input
  CHECK(values(cr::cumsum(cr::tensor(2.5), 0)) == std::vector<double>{2.5});
  CHECK(cr::cumsum(cr::zeros({0, 3}), 0).shape() == cr::Shape{0, 3});
  const cr::Tensor i = cr::cumsum(cr::tensor({1.0, 2, 3}, {3}, cr::int64), 0);
  CHECK(i.dtype() == cr::int64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 3, 6});
  cr::Tensor w = cr::tensor({1.0, 2, 3}, cr::float64).requires_grad_();
  cr::sum(cr::cumsum(w, 0) * cr::tensor({1.0, 10, 100}, cr::float64)).backward();
  CHECK(values(w.grad()) == std::vector<double>{111, 110, 100});
  const cr::Tensor y = input({3, 4, 2});
  for (int64_t d : {0, 1, 2})
    check_gradients([d](const std::vector<cr::Tensor>& v) { return cr::cumsum(v[0] * v[0], d); }, {y});
  check_error([&] { cr::cumsum(x, 2); }, {"cumsum", "2"});
}

TEST_CASE("prod and cumprod: values as torch's, gradients exact with zeros (none, one, two in a slice)") {
  const cr::Tensor x = cr::tensor({1.0, 2, 3, 4, 5, 6}, {2, 3}, cr::float64);
  CHECK(cr::prod(x).item<double>() == 720);
  CHECK(values(cr::prod(x, 1)) == std::vector<double>{6, 120});
  CHECK(cr::prod(x, 0, true).shape() == cr::Shape{1, 3});
  CHECK(values(cr::prod(x, 0, true)) == std::vector<double>{4, 10, 18});
  CHECK(values(cr::prod(x.t(), 1)) == std::vector<double>{4, 10, 18});  // a non-contiguous input
  CHECK(cr::prod(cr::zeros({0})).item<double>() == 1);  // the empty product
  CHECK(values(cr::prod(cr::zeros({2, 0}), 1)) == std::vector<double>{1, 1});
  CHECK(cr::prod(cr::tensor({3, -2, 5}, cr::int64)).item<int64_t>() == -30);  // int64 stays int64
  CHECK(cr::prod(cr::tensor({3, -2, 5}, cr::int64)).dtype() == cr::int64);
  CHECK(values(cr::cumprod(x, 1)) == std::vector<double>{1, 2, 6, 4, 20, 120});
  CHECK(values(cr::cumprod(x, 0)) == std::vector<double>{1, 2, 3, 4, 10, 18});
  CHECK(values(cr::cumprod(cr::tensor(2.5), 0)) == std::vector<double>{2.5});
  // the gradient of a product is the product of the others: exact where x has zeros, without
  // dividing by them
  cr::Tensor z = cr::tensor({2.0, 0.0, 3.0, 0.5}, cr::float64).requires_grad_();
  cr::prod(z).backward();
  CHECK(values(z.grad()) == std::vector<double>{0, 3, 0, 0});
  cr::Tensor zz = cr::tensor({0.0, 2.0, 0.0}, cr::float64).requires_grad_();
  cr::prod(zz).backward();
  CHECK(values(zz.grad()) == std::vector<double>{0, 0, 0});
  cr::Tensor c = cr::tensor({2.0, 0.0, 3.0}, cr::float64).requires_grad_();
  cr::sum(cr::cumprod(c, 0)).backward();  // y = (c0, c0 c1, c0 c1 c2): d/dc1 = c0 + c0 c2 = 8
  CHECK(values(c.grad()) == std::vector<double>{1, 8, 0});
  // first and second derivatives against finite differences, zeros included
  const std::vector<cr::Tensor> inputs = {input({3, 4}, 0.5, 2, 41), input({3, 4}, -2, 2, 42),
                                          cr::tensor({1.5, 0.0, -2.0, 0.7, 0.0, 1.2, 0.0, 3.0, -1.0, 0.0, 0.0, 0.5},
                                                     {3, 4}, cr::float64)
                                              .requires_grad_()};
  for (const auto& in : inputs) {
    check_gradients([](const std::vector<cr::Tensor>& v) { return cr::prod(v[0]); }, {in});
    for (int64_t d : {0, 1}) {
      CAPTURE(d);
      check_gradients([d](const std::vector<cr::Tensor>& v) { return cr::prod(v[0], d); }, {in});
      check_gradients([d](const std::vector<cr::Tensor>& v) { return cr::cumprod(v[0], d); }, {in});
    }
  }
  check_error([&] { (void)cr::prod(x, 2); }, {"prod", "2"});
  check_error([&] { (void)cr::cumprod(x, -3); }, {"cumprod", "-3"});
}

TEST_CASE("sort, argsort, topk: values and indices as torch.sort(stable=True) and torch.topk; NaN above every number") {
  const double N = NAN;
  // the expected numbers are python3-torch 1.13's for the same input
  const cr::Tensor x = cr::tensor({3, N, 1, N, 2, 5, 1, 1, 4, 0}, {2, 5}, cr::float64);
  auto [v, i] = cr::sort(x);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{2, 4, 0, 1, 3, 4, 1, 2, 3, 0});  // ties keep their order
  CHECK(v.shape() == cr::Shape{2, 5});
  const std::vector<double> sv = values(v);
  CHECK(std::vector<double>(sv.begin(), sv.begin() + 3) == std::vector<double>{1, 2, 3});
  CHECK((std::isnan(sv[3]) && std::isnan(sv[4])));
  CHECK(std::vector<double>(sv.begin() + 5, sv.end()) == std::vector<double>{0, 1, 1, 4, 5});
  auto [dv, di] = cr::sort(x, 1, true);
  CHECK(di.to_vector<int64_t>() == std::vector<int64_t>{1, 3, 0, 4, 2, 0, 3, 1, 2, 4});
  CHECK(values(dv)[9] == 0);
  CHECK(cr::argsort(x, -1, true).to_vector<int64_t>() == di.to_vector<int64_t>());
  // along dim 0 of a non-contiguous input, and int64 (which sorts too, without gradient)
  const cr::Tensor m = cr::tensor({4, 1, 3, 2, 6, 5}, {3, 2}, cr::int64).t();  // [[4, 3, 6], [1, 2, 5]]
  CHECK(cr::sort(m, 0).values.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 5, 4, 3, 6});
  CHECK(cr::sort(m, 0).indices.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 0, 0, 0});
  CHECK(cr::sort(m).values.dtype() == cr::int64);
  auto [tv, ti] = cr::topk(x, 2);
  CHECK(ti.to_vector<int64_t>() == std::vector<int64_t>{1, 3, 0, 3});
  CHECK(values(tv)[2] == 5);
  CHECK(values(tv)[3] == 4);
  auto [lv, li] = cr::topk(x, 2, 1, false);
  CHECK(values(lv) == std::vector<double>{1, 2, 0, 1});
  CHECK(li.to_vector<int64_t>() == std::vector<int64_t>{2, 4, 4, 1});  // the first of the tied 1s
  CHECK(cr::topk(x, 0).values.shape() == cr::Shape{2, 0});
  CHECK(cr::topk(m, 1, 0).values.to_vector<int64_t>() == std::vector<int64_t>{4, 3, 6});
  // a 0-d input is one element (dims 0 and -1)
  auto [zv, zi] = cr::sort(cr::tensor(3.0));
  CHECK(zv.dim() == 0);
  CHECK(zv.item<double>() == 3);
  CHECK(zi.dim() == 0);
  CHECK(zi.item<int64_t>() == 0);
  CHECK(cr::topk(cr::tensor(3.0), 1, 0).values.item<double>() == 3);
  CHECK(cr::sort(cr::zeros({2, 0}), 1).values.shape() == cr::Shape{2, 0});  // an empty row is fine
  check_error([&] { (void)cr::topk(x, 6); }, {"topk", "k (6)", "size 5", "[2, 5] float64"});
  check_error([&] { (void)cr::topk(x, -1); }, {"topk", "k (-1)"});
  check_error([&] { (void)cr::sort(x, 2); }, {"sort", "dimension 2"});
}

TEST_CASE("kthvalue and median: values and indices as torch's; a row with NaN has its first NaN as median") {
  const double N = NAN;
  const cr::Tensor x = cr::tensor({3, N, 1, N, 2, 5, 1, 7, 4, 0}, {2, 5}, cr::float64);
  auto [kv, ki] = cr::kthvalue(x, 2);
  CHECK(values(kv) == std::vector<double>{2, 1});
  CHECK(ki.to_vector<int64_t>() == std::vector<int64_t>{4, 1});
  auto [k4, k4i] = cr::kthvalue(x, 4, 1, true);
  CHECK(k4.shape() == cr::Shape{2, 1});
  CHECK(std::isnan(values(k4)[0]));
  CHECK(values(k4)[1] == 5);
  CHECK(k4i.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  auto [mv, mi] = cr::median(x, 1);
  CHECK(std::isnan(values(mv)[0]));
  CHECK(values(mv)[1] == 4);
  CHECK(mi.to_vector<int64_t>() == std::vector<int64_t>{1, 3});
  CHECK(std::isnan(cr::median(x).item<double>()));
  // an even count: the lower of the two middle ones
  CHECK(cr::median(cr::tensor({4.0, 1, 3, 2})).item<double>() == 2);
  auto [ev, ei] = cr::median(cr::tensor({4.0, 1, 3, 2}, {2, 2}), 0);
  CHECK(values(ev) == std::vector<double>{3, 1});
  CHECK(ei.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(cr::median(cr::tensor({5, 2, 9}, {3}, cr::int64)).item<int64_t>() == 5);
  auto [sv, si] = cr::median(cr::tensor(3.0), 0);
  CHECK((sv.item<double>() == 3 && si.item<int64_t>() == 0 && sv.dim() == 0));
  check_error([&] { (void)cr::kthvalue(x, 0); }, {"kthvalue", "k (0)", "size 5"});
  check_error([&] { (void)cr::kthvalue(x, 3, 0); }, {"kthvalue", "k (3)", "size 2"});
  check_error([] { (void)cr::median(cr::zeros({0})); }, {"median", "empty", "[0]"});
  check_error([] { (void)cr::median(cr::zeros({2, 0}), 1); }, {"median", "empty", "[2, 0]"});
}

TEST_CASE("sorting ops: each value's gradient goes back to where it came from, at both orders") {
  const cr::Tensor x = input({3, 4});
  auto f = [](auto g) { return [g](const std::vector<cr::Tensor>& v) { return g(v[0]); }; };
  check_gradients(f([](const cr::Tensor& v) { return cr::sort(v * v).values; }), {x});
  check_gradients(f([](const cr::Tensor& v) { return cr::sort(v, 0, true).values * v; }), {x});
  check_gradients(f([](const cr::Tensor& v) { return cr::topk(v * v, 2).values; }), {x});
  check_gradients(f([](const cr::Tensor& v) { return cr::kthvalue(v * v, 2, 0, true).values; }), {x});
  check_gradients(f([](const cr::Tensor& v) { return cr::median(v * v, 1).values; }), {x});
  check_gradients(f([](const cr::Tensor& v) { return cr::median(v * v); }), {x});
  // by hand: the gradient lands on the sorted-from positions; median(x) splits it between ties
  cr::Tensor y = cr::tensor({3.0, 1, 2}, cr::float64).requires_grad_();
  cr::sum(cr::sort(y).values * cr::tensor({1.0, 10, 100}, cr::float64)).backward();
  CHECK(values(y.grad()) == std::vector<double>{100, 1, 10});
  cr::Tensor t = cr::tensor({1.0, 2, 2, 5}, cr::float64).requires_grad_();
  cr::median(t).backward();
  CHECK(values(t.grad()) == std::vector<double>{0, 0.5, 0.5, 0});  // python3-torch 1.13's
  CHECK(std::string(cr::median(t).grad_fn()->name) == "median");
}
