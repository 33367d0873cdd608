// Elementwise ops: values against std:: references, gradients against finite differences
// (first and second order) at several shapes including broadcasting, size-1 dims and
// non-contiguous inputs, and the subgradients chosen at kinks.
#include "helpers.hpp"

#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>

namespace {

using Fn = cr::Tensor (*)(const cr::Tensor&);

struct Unary {
  const char* name;
  Fn fn;
  double (*reference)(double);
  double lo, hi;  // domain sampled for gradcheck
};

const Unary kUnary[] = {
    {"neg", cr::neg, [](double v) { return -v; }, -2, 2},
    {"exp", cr::exp, [](double v) { return std::exp(v); }, -2, 2},
    {"log", cr::log, [](double v) { return std::log(v); }, 0.2, 3},
    {"log1p", cr::log1p, [](double v) { return std::log1p(v); }, -0.5, 3},
    {"expm1", cr::expm1, [](double v) { return std::expm1(v); }, -2, 2},
    {"sqrt", cr::sqrt, [](double v) { return std::sqrt(v); }, 0.2, 3},
    {"abs", cr::abs, [](double v) { return std::abs(v); }, -2, 2},
    {"sin", cr::sin, [](double v) { return std::sin(v); }, -3, 3},
    {"cos", cr::cos, [](double v) { return std::cos(v); }, -3, 3},
    {"tanh", cr::tanh, [](double v) { return std::tanh(v); }, -2, 2},
    {"sigmoid", cr::sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }, -3, 3},
    {"relu", cr::relu, [](double v) { return v > 0 ? v : 0; }, -2, 2},
    {"erf", cr::erf, [](double v) { return std::erf(v); }, -2, 2},
    {"tan", cr::tan, [](double v) { return std::tan(v); }, -1.2, 1.2},
    {"asin", cr::asin, [](double v) { return std::asin(v); }, -0.9, 0.9},
    {"acos", cr::acos, [](double v) { return std::acos(v); }, -0.9, 0.9},
    {"atan", cr::atan, [](double v) { return std::atan(v); }, -3, 3},
    {"sinh", cr::sinh, [](double v) { return std::sinh(v); }, -2, 2},
    {"cosh", cr::cosh, [](double v) { return std::cosh(v); }, -2, 2},
    {"asinh", cr::asinh, [](double v) { return std::asinh(v); }, -3, 3},
    {"acosh", cr::acosh, [](double v) { return std::acosh(v); }, 1.1, 3},
    {"atanh", cr::atanh, [](double v) { return std::atanh(v); }, -0.9, 0.9},
    {"reciprocal", cr::reciprocal, [](double v) { return 1 / v; }, 0.5, 2},
    {"rsqrt", cr::rsqrt, [](double v) { return 1 / std::sqrt(v); }, 0.3, 3},
    {"log2", cr::log2, [](double v) { return std::log2(v); }, 0.2, 3},
    {"log10", cr::log10, [](double v) { return std::log10(v); }, 0.2, 3},
    {"exp2", cr::exp2, [](double v) { return std::exp2(v); }, -2, 2},
    {"square", cr::square, [](double v) { return v * v; }, -2, 2},
    // piecewise constant (gradient 0) or x minus one (gradient 1); the sampled points are not integers
    {"floor", cr::floor, [](double v) { return std::floor(v); }, -2, 2},
    {"ceil", cr::ceil, [](double v) { return std::ceil(v); }, -2, 2},
    {"round", cr::round, [](double v) { return std::nearbyint(v); }, -2, 2},
    {"trunc", cr::trunc, [](double v) { return std::trunc(v); }, -2, 2},
    {"frac", cr::frac, [](double v) { return v - std::trunc(v); }, -2, 2},
};

// Three shapes: 0-d, a matrix, and a non-contiguous (transposed) 3-d view.
std::vector<cr::Tensor> unary_inputs(double lo, double hi) {
  return {input({}, lo, hi, 1), input({3, 4}, lo, hi, 2),
          input({4, 2, 3}, lo, hi, 3).detach().transpose(0, 2).requires_grad_()};
}

}  // namespace

TEST_CASE("unary ops: values match std:: and gradients match finite differences") {
  for (const auto& op : kUnary) {
    CAPTURE(op.name);
    for (const auto& x : unary_inputs(op.lo, op.hi)) {
      CAPTURE(x.shape());
      const auto got = values(op.fn(x));
      const auto in = values(x);
      for (size_t i = 0; i < in.size(); ++i) CHECK(got[i] == doctest::Approx(op.reference(in[i])).epsilon(1e-14));
      check_gradients([&](const std::vector<cr::Tensor>& v) { return op.fn(v[0]); }, {x});
    }
  }
}

TEST_CASE("unary ops keep float32 as float32") {
  cr::Tensor x = cr::tensor({0.5, 1.5}, cr::float32);
  for (const auto& op : kUnary) {
    CAPTURE(op.name);
    CHECK(op.fn(x).dtype() == cr::float32);
  }
}

TEST_CASE("the floating unary ops take int64 in the default dtype, as PyTorch's; the others keep int64") {
  // exp(arange(3, int64)) was an Error ("expected a floating dtype"); torch.exp gives float32
  const cr::Tensor i = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::int64);
  const cr::Tensor it = i.t();  // a non-contiguous int64 operand
  const char* floating[] = {"exp",   "log",  "log1p", "expm1", "sqrt",  "sin",        "cos",   "tanh",
                            "sigmoid", "erf", "tan", "asin",  "acos",  "atan", "sinh",       "cosh",  "asinh",
                            "acosh", "atanh", "reciprocal", "rsqrt", "log2", "log10", "exp2"};
  struct RestoreDefault {  // float32 again even if an op throws
    ~RestoreDefault() { cr::set_default_dtype(cr::float32); }
  } restore;
  for (const auto& op : kUnary) {
    CAPTURE(op.name);
    const bool promotes = std::find_if(std::begin(floating), std::end(floating), [&](const char* n) {
                            return std::string_view(n) == op.name;
                          }) != std::end(floating);
    for (const cr::Dtype d : {cr::float32, cr::float64}) {
      cr::set_default_dtype(d);
      const cr::Tensor y = op.fn(it);
      CHECK(y.dtype() == (promotes ? d : cr::int64));
      CHECK(y.shape() == cr::Shape{2, 2});
      const std::vector<double> got = values(y), in = {1, 3, 2, 4};
      for (size_t k = 0; k < in.size(); ++k) {
        // computed in d: the float32 result is the float64 reference rounded once (within 1 ulp)
        const double want = op.reference(in[k]);
        if (std::isnan(want)) CHECK(std::isnan(got[k]));  // asin(3): NaN, as std's
        else if (std::isinf(want)) CHECK(got[k] == want);  // atanh(1)
        else CHECK(got[k] == doctest::Approx(want).epsilon(d == cr::float32 ? 2e-7 : 1e-15));
      }
    }
    cr::set_default_dtype(cr::float32);
  }
  // pow with a double exponent went floating already (pow's own conversion, now the shared one)
  CHECK(cr::pow(i, 0.5).dtype() == cr::float32);
  // as a float tensor's: no graph (an int64 tensor cannot require grad), values equal
  CHECK(values(cr::exp(i)) == values(cr::exp(i.to(cr::float32))));
  CHECK(!cr::tanh(i).requires_grad());
}

TEST_CASE("binary ops: broadcasting values and gradients") {
  using Bin = cr::Tensor (*)(const cr::Tensor&, const cr::Tensor&);
  struct Case {
    const char* name;
    Bin fn;
    double (*reference)(double, double);
    double lo, hi;
  };
  const Case cases[] = {
      {"add", cr::add, [](double a, double b) { return a + b; }, -2, 2},
      {"sub", cr::sub, [](double a, double b) { return a - b; }, -2, 2},
      {"mul", cr::mul, [](double a, double b) { return a * b; }, -2, 2},
      {"div", cr::div, [](double a, double b) { return a / b; }, 0.5, 2},
      {"pow", static_cast<Bin>(cr::pow), [](double a, double b) { return std::pow(a, b); }, 0.5, 2},
      {"maximum", cr::maximum, [](double a, double b) { return std::max(a, b); }, -2, 2},
      {"minimum", cr::minimum, [](double a, double b) { return std::min(a, b); }, -2, 2},
      {"atan2", cr::atan2, [](double a, double b) { return std::atan2(a, b); }, -2, 2},
  };
  // (a shape, b shape): same, row broadcast, column vs row, size-1 dims, scalar, non-contiguous.
  const std::vector<std::pair<cr::Shape, cr::Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 1}, {1, 4}}, {{2, 1, 3}, {4, 1}}, {{3, 4}, {}}};
  for (const auto& op : cases) {
    CAPTURE(op.name);
    for (const auto& pair : shapes) {
      const cr::Shape &sa = pair.first, &sb = pair.second;  // (not a structured binding: CAPTURE captures it)
      CAPTURE(sa);
      CAPTURE(sb);
      const cr::Tensor a = input(sa, op.lo, op.hi, 11), b = input(sb, op.lo, op.hi, 12);
      const cr::Tensor out = op.fn(a, b);
      CHECK(out.shape() == cr::broadcast_shapes(sa, sb, "test"));
      // value check through explicit expansion
      const auto va = values(a.expand(out.shape())), vb = values(b.expand(out.shape())), vo = values(out);
      for (size_t i = 0; i < vo.size(); ++i) CHECK(vo[i] == doctest::Approx(op.reference(va[i], vb[i])).epsilon(1e-14));
      check_gradients([&](const std::vector<cr::Tensor>& v) { return op.fn(v[0], v[1]); }, {a, b});
    }
    // non-contiguous operands
    const cr::Tensor at = input({4, 3}, op.lo, op.hi, 13).detach().t().requires_grad_();
    const cr::Tensor bt = input({4, 3}, op.lo, op.hi, 14).detach().t().requires_grad_();
    check_gradients([&](const std::vector<cr::Tensor>& v) { return op.fn(v[0], v[1]); }, {at, bt});
  }
}

TEST_CASE("scalar operands: x * 2.0, 1.0 - x, x / 4, pow(x, 3), 2^x") {
  const cr::Tensor x = input({3}, 0.5, 2);
  check_gradients([](const std::vector<cr::Tensor>& v) { return v[0] * 2.0 + (1.0 - v[0]) / 4.0; }, {x});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::pow(v[0], 3) - 3.0 / v[0]; }, {x});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::pow(2.0, v[0]) + cr::pow(v[0], 0.5); }, {x});
  const auto y = values(cr::pow(x, 3.0));
  const auto xv = values(x);
  for (size_t i = 0; i < 3; ++i) CHECK(y[i] == doctest::Approx(xv[i] * xv[i] * xv[i]));
  CHECK(values(x * 2.0)[0] == doctest::Approx(2 * xv[0]));
  CHECK(values(1.0 - x)[1] == doctest::Approx(1 - xv[1]));
}

TEST_CASE("rounding ops: half to even, int64 unchanged, gradient 0 (frac: 1), as PyTorch's") {
  const cr::Tensor x = cr::tensor({-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.7, 1.2}, cr::float64);
  CHECK(values(cr::round(x)) == std::vector<double>{-2, -2, -0, 0, 2, 2, -2, 1});
  CHECK(std::signbit(values(cr::round(x))[2]));  // round(-0.5) = -0, as nearbyint's
  CHECK(values(cr::floor(x)) == std::vector<double>{-3, -2, -1, 0, 1, 2, -2, 1});
  CHECK(values(cr::ceil(x)) == std::vector<double>{-2, -1, -0, 1, 2, 3, -1, 2});
  CHECK(values(cr::trunc(x)) == std::vector<double>{-2, -1, -0, 0, 1, 2, -1, 1});
  const auto fr = values(cr::frac(x));
  const std::vector<double> fr_want = {-0.5, -0.5, -0.5, 0.5, 0.5, 0.5, -0.7, 0.2};
  for (size_t i = 0; i < fr.size(); ++i) CHECK(fr[i] == doctest::Approx(fr_want[i]).epsilon(1e-15));
  const cr::Tensor i = cr::tensor({-3, 0, 7}, cr::int64);
  for (auto op : {cr::floor, cr::ceil, cr::round, cr::trunc}) {
    CHECK(op(i).dtype() == cr::int64);
    CHECK(op(i).to_vector<int64_t>() == std::vector<int64_t>{-3, 0, 7});
  }
  CHECK(cr::frac(i).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0});
  // at the jumps too: the gradient is 0 everywhere (PyTorch's zeros_like), frac's 1
  cr::Tensor v = cr::tensor({-1.0, 0.0, 0.5, 2.0}, cr::float64).requires_grad_();
  (cr::floor(v) + cr::ceil(v) * 2.0 + cr::round(v) * 3.0 + cr::trunc(v) * 4.0).sum().backward();
  CHECK(values(v.grad()) == std::vector<double>{0, 0, 0, 0});
  v.set_grad({});
  cr::frac(v).sum().backward();
  CHECK(values(v.grad()) == std::vector<double>{1, 1, 1, 1});
}

TEST_CASE("atan2 covers the four quadrants and the axes as std::atan2; reciprocal, rsqrt at 0 give inf") {
  const cr::Tensor a = cr::tensor({1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 2.0}, cr::float64);
  const cr::Tensor b = cr::tensor({1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 0.0}, cr::float64);
  const auto got = values(cr::atan2(a, b));
  const auto va = values(a), vb = values(b);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == std::atan2(va[i], vb[i]));
  // d/da atan2(a, b) = b / (a^2 + b^2), d/db = -a / (a^2 + b^2): at (3, 4) 4/25 and -3/25
  cr::Tensor p = cr::tensor({3.0}, cr::float64).requires_grad_(), q = cr::tensor({4.0}, cr::float64).requires_grad_();
  cr::atan2(p, q).sum().backward();
  CHECK(p.grad().item<double>() == doctest::Approx(0.16).epsilon(1e-15));
  CHECK(q.grad().item<double>() == doctest::Approx(-0.12).epsilon(1e-15));
  CHECK(cr::atan2(cr::tensor({1}, cr::int64), cr::tensor({1}, cr::int64)).dtype() == cr::float32);
  const cr::Tensor z = cr::zeros({1}, cr::float64);
  CHECK(std::isinf(cr::reciprocal(z).item<double>()));
  CHECK(std::isinf(cr::rsqrt(z).item<double>()));
  CHECK(cr::square(cr::tensor({-3}, cr::int64)).item<int64_t>() == 9);
}

TEST_CASE("an infinite gradient where an op passes none gives 0 there, not inf * 0 = NaN, as PyTorch's") {
  // sqrt(relu(x)) at x < 0: relu passes no gradient, sqrt'(0) = inf. With create_graph (and always
  // for clamp, maximum, minimum and max) the rules multiplied by a 0/1 mask and gave NaN.
  using Fn1 = std::function<cr::Tensor(const cr::Tensor&)>;
  const std::vector<std::pair<const char*, Fn1>> cases = {
      {"relu", [](const cr::Tensor& x) { return cr::relu(x); }},
      {"clamp", [](const cr::Tensor& x) { return cr::clamp(x, 0.0, 1.0); }},
      {"maximum", [](const cr::Tensor& x) { return cr::maximum(x, cr::zeros_like(x)); }},
      {"minimum", [](const cr::Tensor& x) { return -cr::minimum(-x, cr::zeros_like(x)); }},
      {"max", [](const cr::Tensor& x) { return cr::max(cr::stack({x, cr::zeros_like(x)}), 0).values; }},
      {"amax", [](const cr::Tensor& x) { return cr::amax(cr::stack({x, cr::zeros_like(x)}), cr::Shape{0}); }},
  };
  for (const auto& c : cases) {
    const auto& name = c.first;  // (not a structured binding: CAPTURE captures it)
    const auto& f = c.second;
    CAPTURE(name);
    for (bool create_graph : {false, true}) {
      cr::Tensor x = cr::tensor({-2.0, 0.25}, cr::float64).requires_grad_();
      const cr::Tensor g = cr::autograd::grad({cr::sqrt(f(x)).sum()}, {x}, {}, true, create_graph)[0];
      CHECK(values(g) == std::vector<double>{0, 1.0});  // 0.5 / sqrt(0.25) at the second
    }
  }
  cr::Tensor x = cr::tensor({-1.0, 4.0}, cr::float64).requires_grad_();  // max over all elements
  cr::sqrt(cr::max(x) - 4.0).backward();
  CHECK(values(x.grad())[0] == 0);
  CHECK(std::isinf(values(x.grad())[1]));
}

TEST_CASE("subgradients at kinks are chosen on purpose") {
  SUBCASE("relu'(0) = 0") {
    cr::Tensor x = cr::tensor({-1.0, 0.0, 2.0}, cr::float64).requires_grad_();
    cr::relu(x).sum().backward();
    CHECK(values(x.grad()) == std::vector<double>{0, 0, 1});
  }
  SUBCASE("abs'(0) = 0") {
    cr::Tensor x = cr::tensor({-1.0, 0.0, 2.0}, cr::float64).requires_grad_();
    cr::abs(x).sum().backward();
    CHECK(values(x.grad()) == std::vector<double>{-1, 0, 1});
  }
  SUBCASE("maximum and minimum split ties evenly") {
    cr::Tensor a = cr::tensor({1.0, 2.0, 3.0}, cr::float64).requires_grad_();
    cr::Tensor b = cr::tensor({3.0, 2.0, 1.0}, cr::float64).requires_grad_();
    cr::maximum(a, b).sum().backward();
    CHECK(values(a.grad()) == std::vector<double>{0, 0.5, 1});
    CHECK(values(b.grad()) == std::vector<double>{1, 0.5, 0});
    a.set_grad({});
    b.set_grad({});
    cr::minimum(a, b).sum().backward();
    CHECK(values(a.grad()) == std::vector<double>{1, 0.5, 0});
  }
  SUBCASE("clamp passes the gradient on the boundary, not outside") {
    cr::Tensor x = cr::tensor({-2.0, -1.0, 0.0, 1.0, 2.0}, cr::float64).requires_grad_();
    cr::clamp(x, -1.0, 1.0).sum().backward();
    CHECK(values(x.grad()) == std::vector<double>{0, 1, 1, 1, 0});
  }
  SUBCASE("pow with a zero base: d/db 0^b = 0 for b >= 0") {
    cr::Tensor a = cr::tensor({0.0, 0.0}, cr::float64).requires_grad_();
    cr::Tensor b = cr::tensor({2.0, 0.0}, cr::float64).requires_grad_();
    cr::pow(a, b).sum().backward();
    CHECK(values(b.grad()) == std::vector<double>{0, 0});
    CHECK(values(a.grad()) == std::vector<double>{0, 0});
  }
}

TEST_CASE("pow on int64 tensors is an exact integer power, as PyTorch's; a double exponent goes floating") {
  const cr::Tensor i = cr::tensor({2, -3, 0, 7}, cr::int64);
  const cr::Tensor sq = cr::pow(i, 2);  // an integer exponent keeps int64 (it was an Error)
  CHECK(sq.dtype() == cr::int64);
  CHECK(sq.to_vector<int64_t>() == std::vector<int64_t>{4, 9, 0, 49});
  CHECK(cr::pow(i, 3).to_vector<int64_t>() == std::vector<int64_t>{8, -27, 0, 343});
  CHECK(cr::pow(i, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1});
  // exact beyond 2^53, where a detour through double would round: 3^39 = 4052555153018976267
  CHECK(cr::pow(cr::tensor({3}, cr::int64), 39).item<int64_t>() == 4052555153018976267);
  // overflow wraps modulo 2^64, as PyTorch's (3^40 prints as -6289078614652622815 there)
  CHECK(cr::pow(cr::tensor({3}, cr::int64), 40).item<int64_t>() == -6289078614652622815);
  check_error([&] { (void)cr::pow(i, -1); }, {"pow", "negative", "[4] int64", "-1"});
  // a double exponent gives the default floating dtype, whatever its value (the scalar rule)
  const cr::Tensor f = cr::pow(i, 2.0);
  CHECK(f.dtype() == cr::default_dtype());
  CHECK(values(f) == std::vector<double>{4, 9, 0, 49});
  CHECK(values(cr::pow(cr::tensor({4}, cr::int64), 0.5)) == std::vector<double>{2});
  // tensor ^ tensor in int64, negative exponents with integer semantics (1, -1 by parity, else 0)
  const cr::Tensor b = cr::tensor({1, -1, -1, 2, 0, 5}, cr::int64), e = cr::tensor({-1, -3, -2, -1, -1, 2}, cr::int64);
  CHECK(cr::pow(b, e).dtype() == cr::int64);
  CHECK(cr::pow(b, e).to_vector<int64_t>() == std::vector<int64_t>{1, -1, 1, 0, 0, 25});
  // an integer base over an int64 exponent stays int64; over a floating one, floating
  CHECK(cr::pow(2, cr::tensor({0, 3, 10}, cr::int64)).to_vector<int64_t>() == std::vector<int64_t>{1, 8, 1024});
  CHECK(cr::pow(2, cr::tensor({3.0}, cr::float64)).dtype() == cr::float64);
  // int64 mixed with a floating tensor promotes, as before
  CHECK(cr::pow(i, cr::tensor({2.0}, cr::float64)).dtype() == cr::float64);
  // an integer exponent on a floating tensor is the floating power, with its gradient
  const cr::Tensor x = cr::tensor({1.5, -2.0}, cr::float64).requires_grad_();
  const cr::Tensor y = cr::pow(x, 2);
  CHECK(y.dtype() == cr::float64);
  y.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{3, -4});
}

TEST_CASE("clamp on int64: double bounds go floating (it truncated them), integer bounds stay int64") {
  const cr::Tensor i = cr::tensor({-7, -2, 0, 3, 9}, cr::int64);
  const cr::Tensor f = cr::clamp(i, -2.5, 4.5);  // int64 gave -2 and 4 where -2.5 and 4.5 belong
  CHECK(f.dtype() == cr::default_dtype());
  CHECK(values(f) == std::vector<double>{-2.5, -2, 0, 3, 4.5});
  CHECK(cr::clamp(i, -3.0, std::nullopt).dtype() == cr::default_dtype());
  const cr::Tensor k = cr::clamp(i, -3, 4);  // PyTorch's torch.clamp(i, -3, 4): int64
  CHECK(k.dtype() == cr::int64);
  CHECK(k.to_vector<int64_t>() == std::vector<int64_t>{-3, -2, 0, 3, 4});
  CHECK(cr::clamp(i, 5, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1, 1});  // max wins, as PyTorch
  // on a floating x the integer bounds are clamp's own (its gradient passes on the boundary)
  cr::Tensor x = cr::tensor({-1.0, 0.5, 2.0}, cr::float64).requires_grad_();
  cr::clamp(x, -1, 1).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{1, 1, 0});
}

TEST_CASE("sign is recorded with a zero gradient, as PyTorch's SignBackward") {
  cr::Tensor x = cr::tensor({-2.0, 0.0, 3.0}, cr::float64).requires_grad_();
  const cr::Tensor s = cr::sign(x);
  CHECK(values(s) == std::vector<double>{-1, 0, 1});
  CHECK(s.requires_grad());
  REQUIRE(s.grad_fn());
  CHECK(std::string(s.grad_fn()->name) == "sign");
  cr::sum(s * x).backward();  // d/dx (sign(x) x) = sign(x): the sign's own derivative is 0
  CHECK(values(x.grad()) == std::vector<double>{-1, 0, 1});
  x.set_grad({});
  cr::sum(cr::sign(x)).backward();  // it was an Error (nothing to differentiate)
  CHECK(values(x.grad()) == std::vector<double>{0, 0, 0});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::sign(v[0]) * v[0] * v[0]; }, {input({4}, 0.5, 2)});
  CHECK(cr::sign(cr::tensor({-5, 0, 7}, cr::int64)).to_vector<int64_t>() == std::vector<int64_t>{-1, 0, 1});
}

TEST_CASE("div's gradient in the divisor is (a / b) / b, as PyTorch's: no underflow of b * b") {
  // -a / b^2 with b * b underflowing to 0 gave -inf where the true value is finite
  const cr::Tensor a = cr::tensor({1e-300}, cr::float64);
  cr::Tensor b = cr::tensor({1e-170}, cr::float64).requires_grad_();
  cr::div(a, b).sum().backward();
  CHECK(values(b.grad())[0] == doctest::Approx(-1e40).epsilon(1e-12));
  // at b = 0 the second derivative 2a/b^3 is inf (it was NaN, 0 * inf inside the old form)
  cr::Tensor z = cr::tensor({0.0}, cr::float64).requires_grad_();
  const cr::Tensor g = cr::autograd::grad({cr::sum(1.0 / z)}, {z}, {}, true, true)[0];
  CHECK(values(g)[0] == -INFINITY);
  cr::sum(g).backward();
  CHECK(values(z.grad())[0] == INFINITY);
}

TEST_CASE("a NaN input: the gradient goes where PyTorch's goes (checked against python3-torch)") {
  namespace F = cr::nn::functional;
  const std::vector<double> w = {1, 2, 3, 4};
  auto grad_of = [&](const std::function<cr::Tensor(const cr::Tensor&)>& f, std::vector<double> xs) {
    cr::Tensor x = cr::tensor(xs, {static_cast<int64_t>(xs.size())}, cr::float64).requires_grad_();
    const cr::Tensor y = f(x);
    cr::sum(y * cr::tensor(std::vector<double>(w.begin(), w.begin() + y.numel()), y.shape(), cr::float64)).backward();
    return values(x.grad());
  };
  // relu and hardtanh pass the gradient through a NaN (PyTorch: zero only where x <= the bound);
  // they gave 0, as if a NaN were clipped
  CHECK(same_values(grad_of([](const cr::Tensor& x) { return cr::relu(x); }, {1, NAN, -3, 0}), {1, 2, 0, 0}));
  CHECK(same_values(grad_of([](const cr::Tensor& x) { return F::hardtanh(x); }, {0.5, NAN, -3, 1}), {1, 2, 0, 0}));
  // clamp stops it (PyTorch's: the gradient passes where min <= x <= max, false for a NaN)
  CHECK(same_values(grad_of([](const cr::Tensor& x) { return cr::clamp(x, -1.0, 1.0); }, {0.5, NAN, -3, 1}),
                    {1, 0, 0, 4}));
  // maximum/minimum give a NaN position's gradient to both inputs (PyTorch's), not to neither
  const cr::Tensor other = cr::tensor({NAN, 0.0, 5.0, 2.0}, cr::float64);
  CHECK(same_values(grad_of([&](const cr::Tensor& x) { return cr::maximum(x, other); }, {1, NAN, 3, 2}), {1, 2, 0, 2}));
  CHECK(same_values(grad_of([&](const cr::Tensor& x) { return cr::minimum(x, other); }, {1, NAN, 3, 2}), {1, 2, 3, 2}));
  CHECK(same_values(grad_of([&](const cr::Tensor& x) { return cr::maximum(other, x); }, {1, NAN, 3, 2}), {1, 2, 0, 2}));
  // max(x) of a tensor holding a NaN is NaN, and the gradient goes to the NaN (PyTorch's); it was
  // NaN for every element (0 / 0: no element equals a NaN), poisoning every weight upstream
  CHECK(same_values(grad_of([](const cr::Tensor& x) { return cr::max(x); }, {1, NAN, 3, 2}), {0, 1, 0, 0}));
  CHECK(same_values(grad_of([](const cr::Tensor& x) { return cr::min(x); }, {1, NAN, 3, NAN}), {0, 0.5, 0, 0.5}));
  const auto amax_rows = [](const cr::Tensor& x) { return cr::amax(x.reshape({2, 2}), cr::Shape{1}); };
  CHECK(same_values(grad_of(amax_rows, {1, NAN, 3, 2}), {0, 1, 2, 0}));
  CHECK(same_values(grad_of([](const cr::Tensor& x) { return cr::max(x.reshape({2, 2}), 1).values; }, {1, NAN, 3, 2}),
             {0, 1, 2, 0}));
}

TEST_CASE("tanh and sigmoid at extremes: finite values, finite gradients") {
  for (auto dtype : {cr::float32, cr::float64}) {
    cr::Tensor x = cr::tensor({-1e4, -710, -88, -20, -1, -1e-8, 0, 1e-8, 1, 20, 88, 710, 1e4}, dtype).requires_grad_();
    (cr::sigmoid(x).sum() + cr::tanh(x).sum()).backward();
    for (double v : values(cr::sigmoid(x))) CHECK(std::isfinite(v));
    for (double v : values(x.grad())) CHECK(std::isfinite(v));
    CHECK(values(cr::sigmoid(x))[0] == 0.0);
    CHECK(values(cr::sigmoid(x))[12] == 1.0);
  }
}

namespace {
// op in T against `reference` (computed in the wider type R, rounded to T) on every step-th bit
// pattern of the positive T up to `top`, both signs (subnormals included): never more than
// max_ulps off, and off at all in at most off_per_100k of 100,000 inputs. Strided input gives
// the same bits (the same kernel), and NaN stays NaN.
template <class T, class R>
void check_rounding(cr::Tensor (*op)(const cr::Tensor&), R (*reference)(R), T top, uint64_t step, int64_t max_ulps,
                    int64_t off_per_100k) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  using SignedBits = std::make_signed_t<Bits>;
  const cr::Dtype dtype = sizeof(T) == 4 ? cr::float32 : cr::float64;
  std::vector<double> in;
  for (Bits bits = 0; bits < std::bit_cast<Bits>(top); bits += static_cast<Bits>(step)) {
    in.push_back(std::bit_cast<T>(bits));
    in.push_back(-std::bit_cast<T>(bits));
  }
  const auto n = static_cast<int64_t>(in.size());
  const auto out = op(cr::tensor(in, {n}, dtype)).template to_vector<T>();
  int64_t off = 0, worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const T ref = static_cast<T>(reference(static_cast<R>(in[i])));
    const int64_t ulps = std::abs(int64_t(std::bit_cast<SignedBits>(out[i])) - int64_t(std::bit_cast<SignedBits>(ref)));
    off += ulps != 0;
    worst = std::max(worst, ulps);
  }
  CHECK(n > 1000000);
  CHECK(worst <= max_ulps);
  CHECK(off * 100000 <= off_per_100k * n);
  const cr::Tensor m = cr::tensor(std::vector<double>(in.begin(), in.begin() + 600), {20, 30}, dtype);
  CHECK(op(m.t()).contiguous().template to_vector<T>() == op(m.t().contiguous()).template to_vector<T>());
  CHECK(std::isnan(op(cr::tensor({std::nan("")}, dtype)).template item<T>()));
}
}  // namespace

TEST_CASE("float32 tanh and sigmoid are within 1 ulp of the correctly rounded value over float's range, exact at the edges") {
  // Every 101st float: 2.2 million inputs up to 12 for tanh (1 in float from ~9.01), 2.6 million up
  // to 110 for sigmoid (0 below -103.3); off at all in at most 1 of 100,000 (glibc's tanhf: 18%).
  check_rounding<float, double>(cr::tanh, [](double v) { return std::tanh(v); }, 12.0f, 101, 1, 1);
  check_rounding<float, double>(
      cr::sigmoid, [](double v) { return v >= 0 ? 1 / (1 + std::exp(-v)) : std::exp(v) / (1 + std::exp(v)); }, 110.0f,
      101, 1, 1);
  const float inf = std::numeric_limits<float>::infinity(), big = std::numeric_limits<float>::max();
  const cr::Tensor edge = cr::tensor({0.0, -0.0, inf, -inf, big, -big, 9.5, 1e-30, -1e-30, 104, -104}, cr::float32);
  const auto t = cr::tanh(edge).to_vector<float>(), s = cr::sigmoid(edge).to_vector<float>();
  CHECK(std::bit_cast<uint32_t>(t[0]) == 0u);
  CHECK(std::bit_cast<uint32_t>(t[1]) == 0x80000000u);  // tanh(-0) = -0
  CHECK(t == std::vector<float>{0.0f, -0.0f, 1, -1, 1, -1, 1, 1e-30f, -1e-30f, 1, -1});
  CHECK(s == std::vector<float>{0.5f, 0.5f, 1, 0, 1, 0, static_cast<float>(1 / (1 + std::exp(-9.5))), 0.5f, 0.5f, 1, 0});
}

TEST_CASE("float64 tanh and sigmoid are within 2 ulp of the correctly rounded value, exact at the edges") {
  // Every 2^42 + 1 th double: 2.1 million inputs up to 40 for tanh, 2.1 million up to 750 for
  // sigmoid, against long double references; off at all in at most 2.5% (1.6% and 1.1% here).
  check_rounding<double, long double>(cr::tanh, [](long double v) { return std::tanh(v); }, 40.0, (uint64_t(1) << 42) + 1,
                                      2, 2500);
  check_rounding<double, long double>(cr::sigmoid, [](long double v) { return 1 / (1 + std::exp(-v)); }, 750.0,
                                      (uint64_t(1) << 42) + 1, 2, 2500);
  const double inf = std::numeric_limits<double>::infinity(), big = std::numeric_limits<double>::max();
  const cr::Tensor edge = cr::tensor({0.0, -0.0, inf, -inf, big, -big, 19.5, 1e-300, -1e-300, 710, -710}, cr::float64);
  const auto t = cr::tanh(edge).to_vector<double>(), s = cr::sigmoid(edge).to_vector<double>();
  CHECK(std::bit_cast<uint64_t>(t[1]) == 0x8000000000000000u);  // tanh(-0) = -0
  CHECK(t == std::vector<double>{0.0, -0.0, 1, -1, 1, -1, 1, 1e-300, -1e-300, 1, -1});
  CHECK(s == std::vector<double>{0.5, 0.5, 1, 0, 1, 0, 1 / (1 + std::exp(-19.5)), 0.5, 0.5, 1, std::exp(-710.0)});
  CHECK(std::fpclassify(s[10]) == FP_SUBNORMAL);  // below exp's normal range, still not flushed to 0
  // int64 goes to the default dtype (it was an Error), as PyTorch's tanh and sigmoid
  CHECK(values(cr::tanh(cr::tensor({1, 2}, cr::int64))) == values(cr::tanh(cr::tensor({1, 2}, cr::float32))));
}

TEST_CASE("clamp and where: gradients") {
  const cr::Tensor x = input({3, 4}, -2, 2, 5);
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::clamp(v[0], -0.5, std::nullopt) * 3.0; }, {x});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::clamp(v[0], -1.0, 1.0); }, {x});
  const cr::Tensor a = input({3, 4}, -2, 2, 6), b = input({4}, -2, 2, 7);
  const cr::Tensor cond = a.detach() > 0.0;
  check_gradients([&](const std::vector<cr::Tensor>& v) { return cr::where(cond, v[0] * v[0], v[1]); }, {a, b});
  const auto w = values(cr::where(cond, a, b));
  const auto av = values(a), bv = values(b.expand({3, 4})), cv = values(cond);
  for (size_t i = 0; i < w.size(); ++i) CHECK(w[i] == (cv[i] != 0 ? av[i] : bv[i]));
}

TEST_CASE("comparisons return 0/1 masks and carry no gradient") {
  cr::Tensor a = cr::tensor({1.0, 2.0, 3.0}).requires_grad_();
  cr::Tensor b = cr::tensor({2.0, 2.0, 2.0});
  CHECK(values(a < b) == std::vector<double>{1, 0, 0});
  CHECK(values(a <= b) == std::vector<double>{1, 1, 0});
  CHECK(values(a > b) == std::vector<double>{0, 0, 1});
  CHECK(values(a >= b) == std::vector<double>{0, 1, 1});
  CHECK(values(a == b) == std::vector<double>{0, 1, 0});
  CHECK(values(a != b) == std::vector<double>{1, 0, 1});
  CHECK(values(a > 1.5) == std::vector<double>{0, 1, 1});
  CHECK_FALSE((a < b).requires_grad());
  CHECK(values(cr::isfinite(cr::tensor({1.0, INFINITY, NAN}))) == std::vector<double>{1, 0, 0});
}

TEST_CASE("dtype promotion: float32 with float64 gives float64, and gradients come back in each input's dtype") {
  cr::Tensor a = cr::tensor({1.0, 2.0}, cr::float32).requires_grad_();
  cr::Tensor b = cr::tensor({3.0, 4.0}, cr::float64).requires_grad_();
  cr::Tensor y = a * b;
  CHECK(y.dtype() == cr::float64);
  y.sum().backward();
  CHECK(a.grad().dtype() == cr::float32);
  CHECK(values(a.grad()) == std::vector<double>{3, 4});
  CHECK(b.grad().dtype() == cr::float64);
  cr::Tensor i = cr::tensor({1.0, 2.0}, cr::int64);
  CHECK((i + i).dtype() == cr::int64);
  CHECK((i / i).dtype() == cr::default_dtype());
  CHECK((i * 0.5).dtype() == cr::default_dtype());
}

TEST_CASE("dtype promotion: a 0-d tensor decides the dtype only when it is floating and the other operand is not (PyTorch's result_type)") {
  // float32 data times a float64 0-d tensor was float64 here (float32 in PyTorch), so one
  // float64 constant turned a float32 network's activations, and every op after, into float64
  const cr::Tensor f32 = cr::tensor({1.5, 2.5, 3.5}, cr::float32), f64 = f32.to(cr::float64);
  const cr::Tensor i64 = cr::tensor({0, 1, 2}, cr::int64);
  const cr::Tensor s64 = cr::tensor(std::vector<double>{2.0}, {}, cr::float64);
  const cr::Tensor s32 = s64.to(cr::float32), si = s64.to(cr::int64);
  // each expected dtype printed by python3-torch 1.13 for the same operands
  CHECK(cr::result_type(f32, s64) == cr::float32);
  CHECK(cr::result_type(s64, f32) == cr::float32);
  CHECK(cr::result_type(f64, s32) == cr::float64);
  CHECK(cr::result_type(i64, s64) == cr::float64);  // a higher category: the 0-d tensor's dtype
  CHECK(cr::result_type(i64, s32) == cr::float32);
  CHECK(cr::result_type(f32, si) == cr::float32);
  CHECK(cr::result_type(i64, si) == cr::int64);
  CHECK(cr::result_type(s64, s32) == cr::float64);  // both 0-d: promoted as usual
  CHECK(cr::result_type(f32, f64) == cr::float64);  // both with dims: likewise
  CHECK((f32 + s64).dtype() == cr::float32);
  CHECK(values(s64 - f32) == std::vector<double>{0.5, -0.5, -1.5});
  CHECK((s64 - f32).dtype() == cr::float32);
  CHECK((f32 * s64).dtype() == cr::float32);
  CHECK((f32 / s64).dtype() == cr::float32);
  CHECK((i64 / si).dtype() == cr::default_dtype());  // true division goes floating
  CHECK((i64 / s64).dtype() == cr::float64);
  CHECK(cr::pow(f32, s64).dtype() == cr::float32);
  CHECK(values(cr::pow(f32, s64)) == std::vector<double>{2.25, 6.25, 12.25});
  CHECK(cr::maximum(f32, s64).dtype() == cr::float32);
  CHECK(cr::minimum(s64, f32).dtype() == cr::float32);
  CHECK(cr::where(f32, f32, s64).dtype() == cr::float32);
  CHECK((f32 < s64).dtype() == cr::float32);  // the mask's dtype follows the same rule
  CHECK((i64 + si).dtype() == cr::int64);
  // in place: an int64 tensor cannot take a floating 0-d tensor's result, as in PyTorch
  cr::Tensor j = i64.clone();
  check_error([&] { j.add_(s32); }, {"add_", "float32", "int64"});
  cr::Tensor c = f32.clone();
  c.add_(s64);
  CHECK(c.dtype() == cr::float32);
  CHECK(values(c) == std::vector<double>{3.5, 4.5, 5.5});
  // gradients come back in each input's dtype: the 0-d float64 gets sum(a) as float64
  cr::Tensor a = f32.clone().requires_grad_();
  cr::Tensor s = s64.clone().requires_grad_();
  cr::Tensor y = a * s;
  CHECK(y.dtype() == cr::float32);
  y.sum().backward();
  CHECK(a.grad().dtype() == cr::float32);
  CHECK(values(a.grad()) == std::vector<double>{2, 2, 2});
  CHECK(s.grad().dtype() == cr::float64);
  CHECK(s.grad().item<double>() == 7.5);
}

TEST_CASE("binary op shape mismatch names the op and both shapes") {
  const cr::Tensor a = cr::zeros({2, 3}), b = cr::zeros({4});
  check_error([&] { (void)(a + b); }, {"add", "[2, 3]", "[4]"});
  check_error([&] { (void)(a - b); }, {"sub", "[2, 3]", "[4]"});
  check_error([&] { (void)(a * b); }, {"mul", "[2, 3]", "[4]"});
  check_error([&] { (void)(a / b); }, {"div", "[2, 3]", "[4]"});
  check_error([&] { (void)cr::pow(a, b); }, {"pow", "[2, 3]", "[4]"});
  check_error([&] { (void)cr::maximum(a, b); }, {"maximum", "[2, 3]", "[4]"});
  check_error([&] { (void)cr::minimum(a, b); }, {"minimum", "[2, 3]", "[4]"});
  check_error([&] { (void)(a < b); }, {"lt", "[2, 3]", "[4]"});
  check_error([&] { (void)cr::where(a, a, b); }, {"where", "[2, 3]", "[4]"});
  // (exp of int64 was checked here as an Error; it is float32 now, as PyTorch's: see "the floating unary ops ...")
  CHECK(cr::exp(cr::tensor({1.0}, cr::int64)).dtype() == cr::float32);
}

TEST_CASE("a first-order backward writes into the incoming gradient when nobody else holds it, and only then") {
  // The engine hands a rule its gradient; tanh, sigmoid, relu, pow, mul, sub and neg compute theirs in
  // that buffer when no one else has it (docs/performance.md, item 16).
  const cr::Tensor x = cr::tensor({0.1, 0.2, 0.3, 0.4}, cr::float64).requires_grad_();
  const cr::Tensor a = cr::tensor({1.5, -2.0, 0.5, 3.0}, cr::float64).requires_grad_();
  cr::Tensor t = cr::tanh(x * 2.0);
  const void* incoming = nullptr;
  t.register_hook([&](const cr::Tensor& g) {  // notes the buffer, keeps no reference
    incoming = g.impl()->storage->data;
    return cr::Tensor();
  });
  cr::sum(cr::sigmoid(t)).backward();
  CHECK(incoming != nullptr);
  // tanh's rule wrote into sigmoid's gradient; mul's (x * 2.0) into tanh's; the leaf took it
  CHECK(x.grad().impl()->storage->data == incoming);
  const auto xs = values(x), gx = values(x.grad());
  for (size_t i = 0; i < xs.size(); ++i) {
    const double th = std::tanh(2 * xs[i]), s = 1 / (1 + std::exp(-th));
    CHECK(gx[i] == doctest::Approx(s * (1 - s) * (1 - th * th) * 2).epsilon(1e-14));
  }
  // mul with both inputs needing a gradient: the first product must leave g intact
  const cr::Tensor z = x * a;
  cr::sum(cr::tanh(z)).backward();
  const auto zs = values(z), av = values(a), ga = values(a.grad()), gx2 = values(x.grad());
  for (size_t i = 0; i < zs.size(); ++i) {
    const double g = 1 - std::tanh(zs[i]) * std::tanh(zs[i]);
    CHECK(gx2[i] == doctest::Approx(gx[i] + g * av[i]).epsilon(1e-14));  // accumulated onto the first backward
    CHECK(ga[i] == doctest::Approx(g * xs[i]).epsilon(1e-14));
  }
  // sub's gradient for its second input and neg's are g negated, in that buffer too
  for (const bool through_neg : {false, true}) {
    CAPTURE(through_neg);
    const cr::Tensor x2 = cr::tensor({0.1, 0.2, 0.3, 0.4}, cr::float64).requires_grad_();
    const cr::Tensor c = cr::tensor({1.0, 2.0, 3.0, 4.0}, cr::float64);
    cr::Tensor d = through_neg ? -(x2 * 3.0) : c - x2 * 3.0;
    const void* noted = nullptr;
    d.register_hook([&](const cr::Tensor& g) {
      noted = g.impl()->storage->data;
      return cr::Tensor();
    });
    cr::sum(cr::tanh(d)).backward();
    CHECK(x2.grad().impl()->storage->data == noted);
    const auto ds = values(d), gx3 = values(x2.grad());
    for (size_t i = 0; i < ds.size(); ++i)
      CHECK(gx3[i] == doctest::Approx(-3 * (1 - std::tanh(ds[i]) * std::tanh(ds[i]))).epsilon(1e-14));
  }
  // a retained gradient and a gradient passed in are someone else's: never overwritten
  const cr::Tensor u = x * a;
  u.retain_grad();
  const cr::Tensor seed = cr::tensor({1.0, 2.0, 3.0, 4.0}, cr::float64);
  cr::tanh(u).backward(seed);
  const auto gu = values(u.grad()), us = values(u);
  for (size_t i = 0; i < us.size(); ++i) CHECK(gu[i] == doctest::Approx((i + 1.0) * (1 - std::tanh(us[i]) * std::tanh(us[i]))).epsilon(1e-14));
  CHECK(values(seed) == std::vector<double>{1, 2, 3, 4});
}

TEST_CASE("fused first-order backward equals the differentiable expression bit for bit (sigmoid, tanh, relu, pow)") {
  const std::vector<std::pair<const char*, std::function<cr::Tensor(const cr::Tensor&)>>> ops = {
      {"sigmoid", [](const cr::Tensor& x) { return cr::sigmoid(x); }},
      {"tanh", [](const cr::Tensor& x) { return cr::tanh(x); }},
      {"relu", [](const cr::Tensor& x) { return cr::relu(x); }},
      {"pow 2", [](const cr::Tensor& x) { return cr::pow(x, 2.0); }},
      {"pow 3.5", [](const cr::Tensor& x) { return cr::pow(cr::abs(x), 3.5); }},
  };
  for (const cr::Dtype dtype : {cr::float32, cr::float64})
    for (const auto& [name, f] : ops) {
      const std::string op = name;
      CAPTURE(op);
      CAPTURE(dtype);
      cr::Generator gen(3);
      const cr::Tensor x = (cr::randn({1000}, dtype, &gen) * 3.0).detach().requires_grad_();
      const cr::Tensor w = cr::randn({1000}, dtype, &gen);
      const cr::Tensor fused = cr::autograd::grad({cr::sum(f(x) * w)}, {x})[0];  // no graph: one loop
      const cr::Tensor expr = cr::autograd::grad({cr::sum(f(x) * w)}, {x}, {}, true, true)[0];  // recorded ops
      if (op != "relu") CHECK(expr.grad_fn() != nullptr);  // relu's gradient does not depend on x smoothly
      CHECK(values(fused) == values(expr));
    }
}
