// Activations: values against Python's math module, gradients by gradcheck (first and
// second order), finite values and gradients at extremes, the registry, and the modules.
#include "helpers.hpp"

#include <cmath>
#include <map>

namespace F = cr::nn::functional;

namespace {
const std::vector<double> kPoints = {-2.0, -0.5, 0.0, 0.5, 3.0};
// Reference values computed with Python's math module (independent of chainrule).
const std::map<std::string, std::vector<double>> kReference = {
    {"leaky_relu", {-0.02, -0.005, 0.0, 0.5, 3.0}},
    {"elu", {-0.8646647167633873, -0.3934693402873666, 0.0, 0.5, 3.0}},
    {"selu", {-1.520166468595695, -0.6917581878028713, 0.0, 0.5253504936777402, 3.1521029620664414}},
    {"gelu", {-0.04550026389635842, -0.15426876936299344, 0.0, 0.34573123063700656, 2.99595030590511}},
    {"gelu_tanh", {-0.04540230591222494, -0.15428599017485606, 0.0, 0.34571400982514394, 2.996362607918227}},
    {"silu", {-0.2384058440442351, -0.1887703343990727, 0.0, 0.3112296656009273, 2.8577223804673}},
    {"softplus", {0.1269280110429725, 0.4740769841801067, 0.6931471805599453, 0.9740769841801067, 3.048587351573742}},
    {"mish", {-0.2525014826957089, -0.22074377465173, 0.0, 0.3752452113048951, 2.9865350049679575}},
    {"hardtanh", {-1, -0.5, 0.0, 0.5, 1}},
    {"softsign", {-0.6666666666666666, -0.3333333333333333, 0.0, 0.3333333333333333, 0.75}},
    {"log_sigmoid",
     {-2.1269280110429727, -0.9740769841801067, -0.6931471805599453, -0.4740769841801067, -0.04858735157374206}},
    // python3-torch 1.13's (x - tanh(x) also Python's math)
    {"relu6", {0.0, 0.0, 0.0, 0.5, 3.0}},
    {"hardsigmoid", {0.16666666666666666, 0.4166666666666667, 0.5, 0.5833333333333334, 1.0}},
    {"hardswish", {-0.3333333333333333, -0.20833333333333334, 0.0, 0.2916666666666667, 3.0}},
    {"celu", {-0.8646647167633873, -0.3934693402873666, 0.0, 0.5, 3.0}},
    {"softshrink", {-1.5, 0.0, 0.0, 0.0, 2.5}},
    {"hardshrink", {-2.0, 0.0, 0.0, 0.0, 3.0}},
    {"tanhshrink", {-1.035972419924183, -0.03788284273999026, 0.0, 0.03788284273999026, 2.0049452463132695}},
    {"prelu", {-0.5, -0.125, 0.0, 0.5, 3.0}},
};
const std::vector<std::string> kAll = {"sigmoid",  "tanh",     "relu",     "leaky_relu", "elu",
                                       "selu",     "gelu",     "gelu_tanh", "silu",      "softplus",
                                       "mish",     "hardtanh", "softsign", "log_sigmoid", "softmax",
                                       "log_softmax", "swish", "identity", "relu6", "hardsigmoid",
                                       "hardswish", "celu", "softshrink", "hardshrink", "tanhshrink",
                                       "softmin", "prelu"};
}  // namespace

TEST_CASE("activation values match an independent reference") {
  const cr::Tensor x = cr::tensor(std::vector<double>(kPoints), {5}, cr::float64);
  for (const auto& reference : kReference) {
    const std::string& name = reference.first;  // (references, not a structured binding: CAPTURE captures them)
    const std::vector<double>& want = reference.second;
    CAPTURE(name);
    const auto got = values(cr::nn::make_activation(name)->forward(x));
    for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
  }
}

TEST_CASE("every activation passes first- and second-order gradcheck (away from kinks)") {
  // points avoid the kinks of relu-like functions at 0 and of hardtanh at +-1
  const cr::Tensor x = cr::tensor({-2.3, -1.2, -0.4, 0.3, 0.8, 2.1}, {2, 3}, cr::float64).requires_grad_();
  for (const auto& name : kAll) {
    CAPTURE(name);
    auto act = cr::nn::make_activation(name);
    check_gradients([&](const std::vector<cr::Tensor>& v) { return act->forward(v[0]); }, {x});
  }
}

TEST_CASE("activations are finite in value and gradient up to +-1e4, float32 and float64") {
  for (auto dtype : {cr::float32, cr::float64}) {
    CAPTURE(dtype);
    for (const auto& name : kAll) {
      CAPTURE(name);
      cr::Tensor x = cr::tensor({-1e4, -710, -88, -20, -1, -1e-8, 0, 1e-8, 1, 20, 88, 710, 1e4}, dtype).requires_grad_();
      const cr::Tensor y = cr::nn::make_activation(name)->forward(x);
      cr::sum(y).backward();
      for (double v : values(y)) CHECK(std::isfinite(v));
      for (double g : values(x.grad())) CHECK(std::isfinite(g));
    }
  }
}

TEST_CASE("softplus: threshold and beta as in PyTorch; log_sigmoid at extremes") {
  cr::Tensor x = cr::tensor({-30, 0, 25}, cr::float64).requires_grad_();
  const auto y = values(F::softplus(x, 2.0, 20.0));
  CHECK(y[1] == doctest::Approx(std::log(2.0) / 2));
  CHECK(y[2] == 25.0);  // beta x = 50 > threshold: linear
  CHECK(values(F::log_sigmoid(cr::tensor({-1e4}, cr::float64)))[0] == -1e4);
  F::softplus(x).sum().backward();
  CHECK(values(x.grad())[1] == doctest::Approx(0.5));
}

TEST_CASE("the kinks: leaky_relu'(0) = slope, elu'(0) = alpha, hardtanh's gradient is 0 on the boundary") {
  cr::Tensor x = cr::tensor({0.0}, cr::float64).requires_grad_();
  F::leaky_relu(x, 0.2).sum().backward();
  CHECK(x.grad().item<double>() == doctest::Approx(0.2));
  x.set_grad({});
  F::elu(x, 1.5).sum().backward();
  CHECK(x.grad().item<double>() == doctest::Approx(1.5));
  // hardtanh passes the gradient strictly inside (min, max), as PyTorch's: hardtanh(x, 0, 6)
  // is ReLU6, whose derivative at 0 is relu's, 0. It was clamp's (1 on the boundary).
  cr::Tensor h = cr::tensor({-2.0, -1.0, -0.5, 0.0, 1.0, 3.0}, cr::float64).requires_grad_();
  const cr::Tensor y = F::hardtanh(h);
  CHECK(values(y) == std::vector<double>{-1, -1, -0.5, 0, 1, 1});
  y.sum().backward();
  CHECK(values(h.grad()) == std::vector<double>{0, 0, 1, 1, 0, 0});
  h.set_grad({});
  F::hardtanh(h, 0.0, 6.0).sum().backward();
  CHECK(values(h.grad()) == std::vector<double>{0, 0, 0, 0, 1, 1});
  // clamp keeps its own rule: the boundary passes (PyTorch's clamp)
  h.set_grad({});
  cr::clamp(h, -1.0, 1.0).sum().backward();
  CHECK(values(h.grad()) == std::vector<double>{0, 1, 1, 1, 1, 0});
}

TEST_CASE("every activation passes a NaN through, as PyTorch's do") {
  // relu alone made NaN 0, so a diverged layer's NaN vanished after it.
  for (const auto& name : cr::nn::activation_names()) {
    for (const cr::Dtype dt : {cr::float32, cr::float64}) {
      CAPTURE(name);
      CAPTURE(dt);
      const cr::Tensor x = cr::tensor({NAN, -1.0, 0.0, 2.0}, dt).reshape({1, 4});
      const auto y = values((*cr::nn::make_activation(name))(x));
      CHECK(std::isnan(y[0]));
      if (name != "softmax" && name != "log_softmax" && name != "softmin") {  // those mix the row, so the NaN spreads
        CHECK(std::isfinite(y[1]));
        CHECK(std::isfinite(y[3]));
      }
    }
  }
  CHECK(values(cr::relu(cr::tensor({-1.0, 0.0, 2.0}, cr::float64))) == std::vector<double>{0, 0, 2});
}

TEST_CASE("hardtanh of int64 stays int64, its bounds truncated toward zero, as PyTorch's (it went float32)") {
  // the values python3-torch 1.13 prints for F.hardtanh(torch.tensor([-3, 0, 3]), lo, hi)
  const cr::Tensor x = cr::tensor({-3, 0, 3}, cr::int64);
  CHECK(F::hardtanh(x).dtype() == cr::int64);
  CHECK(F::hardtanh(x).to_vector<int64_t>() == std::vector<int64_t>{-1, 0, 1});
  CHECK(F::hardtanh(x, -0.5, 0.5).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0});
  CHECK(F::hardtanh(x, -1.5, 2.5).to_vector<int64_t>() == std::vector<int64_t>{-1, 0, 2});
  CHECK(F::hardtanh(x, -INFINITY, 1.0).to_vector<int64_t>() == std::vector<int64_t>{-3, 0, 1});
  const cr::Tensor big = cr::tensor({-0x1p63, 0x1p62}, cr::int64);  // infinite bounds saturate
  CHECK(F::hardtanh(big, -INFINITY, INFINITY).to_vector<int64_t>() == std::vector<int64_t>{INT64_MIN, int64_t{1} << 62});
  check_error([&] { (void)F::hardtanh(x, NAN, 1.0); }, {"hardtanh", "NaN", "int64"});
}

TEST_CASE("the registry: user activations by name, in an MLP; unknown names list the known ones") {
  cr::nn::register_activation("squareplus", [](const cr::Tensor& x) { return (x + cr::sqrt(x * x + 4.0)) * 0.5; });
  CHECK(cr::nn::has_activation("squareplus"));
  cr::nn::MLP mlp({2, 3, 1}, {.activation = std::string("squareplus"), .dtype = cr::float64});
  CHECK(fmt::format("{}", mlp).find("squareplus()") != std::string::npos);
  const cr::Tensor x = input({4, 2});
  check_gradients([&](const std::vector<cr::Tensor>& v) { return mlp.forward(v[0]); }, {x});
  check_error([] { (void)cr::nn::make_activation("nope"); }, {"nope", "relu", "tanh", "register_activation"});
  const auto names = cr::nn::activation_names();
  CHECK(std::find(names.begin(), names.end(), "gelu") != names.end());
}

TEST_CASE("activation modules print like PyTorch") {
  CHECK(cr::nn::ReLU()->repr() == "ReLU()");
  CHECK(cr::nn::LeakyReLU(0.1)->repr() == "LeakyReLU(negative_slope=0.1)");
  CHECK(cr::nn::Softmax(1)->repr() == "Softmax(dim=1)");
}

TEST_CASE("relu6, hardsigmoid, hardswish, softshrink, hardshrink, threshold, celu: derivatives at the kinks as PyTorch's") {
  // python3-torch 1.13's first derivatives at these points (and hardswish's second)
  const std::vector<double> at = {-3.5, -3.0, -0.5, 0.0, 0.5, 3.0, 6.0, 7.0};
  const auto derivative = [&](const std::function<cr::Tensor(const cr::Tensor&)>& f, bool second = false) {
    cr::Tensor x = cr::tensor(at, {8}, cr::float64).requires_grad_();
    const cr::Tensor g = cr::autograd::grad({f(x).sum()}, {x}, {}, true, true)[0];
    return second ? values(cr::autograd::grad({g.sum()}, {x})[0]) : values(g);
  };
  const double sixth = 1.0 / 6.0, third = 1.0 / 3.0;
  CHECK(derivative(F::relu6) == std::vector<double>{0, 0, 0, 0, 1, 1, 0, 0});
  CHECK(derivative(F::hardsigmoid) == std::vector<double>{0, 0, sixth, sixth, sixth, 0, 0, 0});
  // x / 3 + 1/2 from -3 to 3, both included (PyTorch's scalar loop; its vectorised one gives 1 at 3)
  const auto hs = derivative(F::hardswish);
  const std::vector<double> hs_want = {0, -0.5, 1.0 / 3, 0.5, 2.0 / 3, 1.5, 1, 1};
  for (size_t i = 0; i < at.size(); ++i) CHECK(hs[i] == doctest::Approx(hs_want[i]).epsilon(1e-15));
  CHECK(derivative(F::hardswish, true) == std::vector<double>{0, 0, third, third, third, 0, 0, 0});
  const auto shrink = std::vector<double>{1, 1, 0, 0, 0, 1, 1, 1};
  CHECK(derivative([](const cr::Tensor& x) { return F::softshrink(x); }) == shrink);
  CHECK(derivative([](const cr::Tensor& x) { return F::hardshrink(x); }) == shrink);
  CHECK(derivative([](const cr::Tensor& x) { return F::threshold(x, 0.5, -2.0); }) ==
        std::vector<double>{0, 0, 0, 0, 0, 1, 1, 1});
  const auto celu_h = derivative([](const cr::Tensor& x) { return F::celu(x, 0.7); }, true);
  CHECK(celu_h[3] == 0);  // at 0 the linear side's, as PyTorch's (elu'' at 0 takes the other)
  CHECK(celu_h[2] == doctest::Approx(std::exp(-0.5 / 0.7) / 0.7).epsilon(1e-14));
  check_error([] { (void)F::celu(cr::ones({2}), 0.0); }, {"celu", "alpha"});
  check_error([] { (void)F::softshrink(cr::ones({2}), -1.0); }, {"softshrink", "-1"});
}

TEST_CASE("glu halves a dim, softmin is softmax of -x, threshold replaces what is not above it") {
  const cr::Tensor x = cr::tensor({1.0, 2.0, 0.5, -1.0}, {1, 4}, cr::float64);
  const auto g = values(F::glu(x));  // [1, 2] * sigmoid([0.5, -1])
  CHECK(g[0] == doctest::Approx(1 / (1 + std::exp(-0.5))).epsilon(1e-15));
  CHECK(g[1] == doctest::Approx(2 / (1 + std::exp(1.0))).epsilon(1e-15));
  CHECK(F::glu(x).shape() == cr::Shape{1, 2});
  check_error([&] { (void)F::glu(x, 0); }, {"glu", "dim 0", "1"});  // an odd size cannot be halved
  check_error([&] { (void)F::glu(cr::ones({3, 3})); }, {"glu", "3"});
  check_error([&] { (void)F::glu(cr::tensor(2.0)); }, {"glu", "0-d"});
  CHECK(values(F::softmin(x, 1)) == values(cr::softmax(-x, 1)));
  CHECK(values(F::threshold(x, 0.75, 9.0)) == std::vector<double>{1, 2, 9, 9});
  // int64 stays int64, threshold and value truncated toward zero (python3-torch 1.13's values)
  const cr::Tensor i = cr::tensor({3, 0, -1, -4}, cr::int64);
  CHECK(F::threshold(i, 0.1, -0.5).dtype() == cr::int64);
  CHECK(F::threshold(i, 0.1, -0.5).to_vector<int64_t>() == std::vector<int64_t>{3, 0, 0, 0});
  CHECK(F::threshold(i, 1, 7).to_vector<int64_t>() == std::vector<int64_t>{3, 7, 7, 7});
  check_error([&] { (void)F::threshold(i, NAN, 1.0); }, {"threshold", "NaN", "int64"});
  check_gradients([](const std::vector<cr::Tensor>& v) { return F::glu(v[0], 0); }, {input({4, 3})});
  check_gradients([](const std::vector<cr::Tensor>& v) { return F::softmin(v[0], 1); }, {input({2, 3})});
}

TEST_CASE("PReLU: a learned slope per channel (dim 1) or one for all, initialised to 0.25") {
  cr::nn::PReLU one;
  CHECK(one.weight.shape() == cr::Shape{1});
  CHECK(values(one.weight) == std::vector<double>{0.25});
  CHECK(one.repr() == "PReLU(num_parameters=1)");
  cr::nn::PReLU per_channel(3, 0.1, cr::float64);
  CHECK(per_channel.named_parameters().size() == 1);
  const cr::Tensor x = cr::tensor({-1.0, 2.0, -3.0, 4.0, -5.0, -6.0}, {2, 3}, cr::float64);
  CHECK(values(per_channel.forward(x)) == std::vector<double>{-0.1, 2, -0.30000000000000004, 4, -0.5, -0.6000000000000001});
  per_channel.forward(x).sum().backward();
  // d/dw_c = the sum of x over the negative elements of channel c
  CHECK(values(per_channel.weight.grad()) == std::vector<double>{-1, -5, -9});
  cr::Tensor w = cr::tensor({0.2, 0.3}, cr::float64);
  check_gradients([](const std::vector<cr::Tensor>& v) { return F::prelu(v[0], v[1]); },
                  {input({3, 2, 2}), w.requires_grad_()}, false);  // piecewise linear: second order is 0
  CHECK(values(F::prelu(cr::tensor({-2.0, 2.0}, cr::float64), cr::tensor({0.5}, cr::float64))) ==
        std::vector<double>{-1, 2});
  check_error([] { (void)F::prelu(cr::ones({2, 3}), cr::ones({2})); }, {"prelu", "[2]", "3"});
}

TEST_CASE("the new activation modules print like PyTorch") {
  CHECK(cr::nn::ReLU6()->repr() == "ReLU6()");
  CHECK(cr::nn::Hardswish()->repr() == "Hardswish()");
  CHECK(cr::nn::CELU(0.5)->repr() == "CELU(alpha=0.5)");
  CHECK(cr::nn::Softshrink(0.5)->repr() == "Softshrink(0.5)");
  CHECK(cr::nn::Threshold(0.1, 20)->repr() == "Threshold(threshold=0.1, value=20)");
  CHECK(cr::nn::GLU()->repr() == "GLU(dim=-1)");
  CHECK(cr::nn::Softmin(1)->repr() == "Softmin(dim=1)");
}
