// Custom functions (class and lambda forms), per-node gradcheck, hand-written activations
// (make_unary), and verify_activation — the ways to extend chainrule, each with its checks.
#include "helpers.hpp"

#include <cmath>

namespace A = cr::autograd;

namespace {

struct Cube : A::Function<Cube> {
  static constexpr const char* name = "cube";
  static cr::Tensor forward(A::FunctionContext& ctx, const cr::Tensor& x) {
    ctx.save_for_backward({x});
    return x * x * x;
  }
  static std::vector<cr::Tensor> backward(A::FunctionContext& ctx, const cr::Tensor& g) {
    const cr::Tensor x = ctx.saved()[0];
    return {g * 3.0 * x * x};
  }
};

// A wrong rule on purpose: forward x^2, backward 3x.
struct WrongSquare : A::Function<WrongSquare> {
  static constexpr const char* name = "wrong_square";
  static cr::Tensor forward(A::FunctionContext& ctx, const cr::Tensor& x) {
    ctx.save_for_backward({x});
    return x * x;
  }
  static std::vector<cr::Tensor> backward(A::FunctionContext& ctx, const cr::Tensor& g) {
    return {g * 3.0 * ctx.saved()[0]};
  }
};

// x * y with broadcasting, written by hand, with a scale passed through ctx.data.
cr::Tensor scaled_mul(const cr::Tensor& x, const cr::Tensor& y, double scale) {
  return A::apply_function(
      "scaled_mul",
      [scale](A::FunctionContext& ctx, const std::vector<cr::Tensor>& in) {
        ctx.save_for_backward({in[0], in[1]});
        ctx.data = scale;
        return in[0] * in[1] * scale;
      },
      [](A::FunctionContext& ctx, const cr::Tensor& g) -> std::vector<cr::Tensor> {
        const auto s = ctx.saved();
        const double k = std::any_cast<double>(ctx.data);
        return {ctx.needs_input_grad(0) ? g * s[1] * k : cr::Tensor(), ctx.needs_input_grad(1) ? g * s[0] * k : cr::Tensor()};
      },
      {x, y});
}

}  // namespace

TEST_CASE("Function, class form: value, first and second derivatives") {
  const cr::Tensor x = input({2, 3});
  CHECK(cr::allclose(Cube::apply(x), x * x * x, 1e-15, 0));
  CHECK(Cube::apply(x).grad_fn()->name == std::string("cube"));
  check_gradients([](const std::vector<cr::Tensor>& v) { return Cube::apply(v[0]); }, {x});
  cr::Tensor s = cr::tensor(2.0, cr::float64).requires_grad_();
  auto d1 = A::grad({Cube::apply(s)}, {s}, {}, false, true)[0];
  CHECK(d1.item<double>() == 12.0);
  CHECK(A::grad({d1}, {s})[0].item<double>() == 12.0);  // d2/dx2 x^3 = 6x
}

TEST_CASE("Function, lambda form: broadcasting, ctx.data, needs_input_grad") {
  const cr::Tensor x = input({3, 1}), y = input({4});
  check_gradients([](const std::vector<cr::Tensor>& v) { return scaled_mul(v[0], v[1], 0.5); }, {x, y});
  cr::Tensor c = cr::ones({4}, cr::float64);  // needs no gradient
  scaled_mul(x, c, 2.0).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{8, 8, 8});
}

TEST_CASE("Function: no graph under NoGradGuard; saved tensors are version-checked; wrong arity is an error") {
  cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  {
    cr::NoGradGuard g;
    CHECK(Cube::apply(x).grad_fn() == nullptr);
  }
  cr::Tensor h = x * 1.0;
  cr::Tensor y = Cube::apply(h).sum();
  h.mul_(2.0);
  check_error([&] { y.backward(); }, {"'cube'", "in-place"});
  cr::Tensor z = A::apply_function(
      "two_grads", [](A::FunctionContext&, const std::vector<cr::Tensor>& in) { return in[0] * 1.0; },
      [](A::FunctionContext&, const cr::Tensor& g) -> std::vector<cr::Tensor> { return {g, g}; }, {x});
  check_error([&] { z.sum().backward(); }, {"two_grads", "2 gradients", "1 inputs"});
}

TEST_CASE("per-node gradcheck names the custom node whose backward is wrong") {
  const cr::Tensor x = input({3}, 0.5, 2);
  auto fn = [](const std::vector<cr::Tensor>& v) {
    const cr::Tensor cube = Cube::apply(v[0]);  // call #1 (sequenced: operands of + are not)
    const cr::Tensor square = WrongSquare::apply(v[0] * 2.0);  // call #2
    return cr::tanh(cube + square);
  };
  const auto r = A::gradcheck(fn, {x});
  CHECK_FALSE(r.ok);
  REQUIRE(r.nodes.size() == 1);
  CHECK(r.nodes[0].name == "wrong_square");
  CHECK(r.nodes[0].call == 2);
  CHECK(r.nodes[0].input_shapes[0] == cr::Shape{3});
  const std::string text = r.to_string();
  CHECK(text.find("node 'wrong_square' (custom function call #2") != std::string::npos);
  CHECK(A::gradcheck([](const std::vector<cr::Tensor>& v) { return Cube::apply(v[0]); }, {x}).nodes.empty());
}

TEST_CASE("make_unary: a hand-written derivative, of the input or of the output") {
  // bent identity: f = (sqrt(x^2 + 1) - 1) / 2 + x, f' = x / (2 sqrt(x^2 + 1)) + 1, f'' = 1 / (2 (x^2 + 1)^1.5)
  auto bent = A::make_unary({.name = "bent_identity",
                             .f = [](double x) { return (std::sqrt(x * x + 1) - 1) / 2 + x; },
                             .df = [](double x) { return x / (2 * std::sqrt(x * x + 1)) + 1; },
                             .derivative_of = A::DerivativeOf::input,
                             .d2f = [](double x) { return 1 / (2 * std::pow(x * x + 1, 1.5)); }});
  check_gradients([&](const std::vector<cr::Tensor>& v) { return bent(v[0]); }, {input({2, 3})});
  // sigmoid with its derivative written from the output: y (1 - y)
  auto sig = A::make_unary({.name = "my_sigmoid",
                            .f = [](double x) { return 1 / (1 + std::exp(-x)); },
                            .df = [](double y) { return y * (1 - y); },
                            .derivative_of = A::DerivativeOf::output,
                            .d2f = [](double y) { return y * (1 - y) * (1 - 2 * y); }});
  const cr::Tensor x = input({5});
  check_gradients([&](const std::vector<cr::Tensor>& v) { return sig(v[0]); }, {x});
  CHECK(cr::allclose(sig(x), cr::sigmoid(x), 1e-15, 0));
  CHECK(sig(cr::ones({2})).dtype() == cr::float32);
  // an int64 operand goes to the default dtype, as the built-in sigmoid's (it was an Error)
  CHECK(values(sig(cr::tensor({0, 2}, cr::int64))) == values(sig(cr::tensor({0, 2}, cr::float32))));
  auto no_second = A::make_unary({.name = "no_d2", .f = [](double x) { return x * x; }, .df = [](double x) { return 2 * x; }});
  cr::Tensor s = cr::tensor(1.0, cr::float64).requires_grad_();
  CHECK(A::grad({no_second(s)}, {s})[0].item<double>() == 2.0);
  check_error([&] { (void)A::grad({no_second(s)}, {s}, {}, false, true); }, {"no_d2", "d2f", "composition"});
}

TEST_CASE("verify_activation: passes good activations, catches wrong derivatives and overflow") {
  const auto good = A::verify_activation("softplus", [](const cr::Tensor& x) { return cr::nn::functional::softplus(x); });
  INFO(good.to_string());
  CHECK(good.ok);
  CHECK(good.points.size() == 15);
  const auto relu = A::verify_activation("relu", [](const cr::Tensor& x) { return cr::relu(x); }, {.kinks = {0}});
  CHECK(relu.ok);
  CHECK(relu.to_string().find("kink") != std::string::npos);
  // a wrong derivative: f = x^2 / 2 (f' should be x), df says 1.1 x
  auto wrong = A::make_unary({.name = "wrong", .f = [](double x) { return x * x / 2; },
                              .df = [](double x) { return 1.1 * x; }, .d2f = [](double) { return 1.1; }});
  const auto bad = A::verify_activation("wrong", wrong, {.second_order = false});
  CHECK_FALSE(bad.ok);
  CHECK(bad.to_string().find("but finite differences give") != std::string::npos);
  // the naive softplus overflows at 710 in float64 (and at 88 in float32)
  const auto naive = A::verify_activation("naive_softplus", [](const cr::Tensor& x) { return cr::log(1.0 + cr::exp(x)); });
  CHECK_FALSE(naive.ok);
  CHECK(naive.to_string().find("not finite") != std::string::npos);
  // composition: squareplus needs no code beyond its formula
  const auto sq = A::verify_activation("squareplus", [](const cr::Tensor& x) { return (x + cr::sqrt(x * x + 4.0)) * 0.5; });
  CHECK(sq.ok);
}
