// Extending chainrule with new activations, three ways, each verified:
//   1. by composition (squareplus): differentiable with no extra code;
//   2. with a hand-written derivative (bent identity): make_unary turns f, f', f'' into an op;
//   3. registered by name, so an MLP can be built with it.
// Then an MLP is trained with each, and a deliberately wrong derivative is caught, node named.
#include "../common/cli.hpp"

#include <chainrule.hpp>

#include <cmath>

namespace cr = chainrule;
namespace A = cr::autograd;

namespace {

// 1. composition: squareplus(x) = (x + sqrt(x^2 + 4)) / 2
cr::Tensor squareplus(const cr::Tensor& x) { return (x + cr::sqrt(x * x + 4.0)) * 0.5; }

// 2. a hand-written derivative: bent identity, f = (sqrt(x^2 + 1) - 1) / 2 + x
const auto bent_identity = A::make_unary({
    .name = "bent_identity",
    .f = [](double x) { return (std::sqrt(x * x + 1) - 1) / 2 + x; },
    .df = [](double x) { return x / (2 * std::sqrt(x * x + 1)) + 1; },  // as a function of the input
    .derivative_of = A::DerivativeOf::input,
    .d2f = [](double x) { return 1 / (2 * std::pow(x * x + 1, 1.5)); },
});

// A slip of the pen: the derivative of the bent identity without its "+ 1".
const auto bent_identity_wrong = A::make_unary({
    .name = "bent_identity_wrong",
    .f = [](double x) { return (std::sqrt(x * x + 1) - 1) / 2 + x; },
    .df = [](double x) { return x / (2 * std::sqrt(x * x + 1)); },
    .d2f = [](double x) { return 1 / (2 * std::pow(x * x + 1, 1.5)); },
});

// Fit y = sin(3x) on [-1, 1] with a 1-32-32-1 MLP and Adam; returns the final mean squared error.
double train(const std::string& activation) {
  cr::Generator gen(0);
  const cr::Tensor x = cr::linspace(-1, 1, 64, cr::float64).reshape({64, 1});
  const cr::Tensor y = cr::sin(x * 3.0);
  cr::nn::MLP mlp({1, 32, 32, 1}, {.activation = activation, .dtype = cr::float64, .generator = &gen});
  cr::optim::Adam adam(mlp.parameters(), {.lr = 0.01});
  double loss = 0;
  for (int step = 0; step < 1500; ++step) {
    adam.zero_grad();
    const cr::Tensor l = cr::nn::functional::mse_loss(mlp(x), y);
    l.backward();
    adam.step();
    loss = l.item<double>();
  }
  return loss;
}

}  // namespace

int run_example() {
  fmt::print("1-2. Verifying the two new activations (derivatives vs finite differences, float32 vs float64)\n\n");
  const auto r1 = A::verify_activation("squareplus", squareplus);
  const auto r2 = A::verify_activation("bent_identity", bent_identity);
  fmt::print("{}\n{}\n", r1.to_string(), r2.to_string());

  fmt::print("3. Registered by name and trained: MLP 1-32-32-1 on sin(3x), Adam, 1500 steps\n");
  cr::nn::register_activation("squareplus", squareplus);
  cr::nn::register_activation("bent_identity", bent_identity);
  for (const char* name : {"squareplus", "bent_identity", "tanh", "relu"})
    fmt::print("   {:<14} final MSE {:.2e}\n", name, train(name));

  fmt::print("\n4. A wrong derivative is caught, and the node is named\n");
  const auto bad = A::verify_activation("bent_identity_wrong", bent_identity_wrong, {.second_order = false});
  fmt::print("   verify_activation: {} ({} of {} points fail)\n", bad.ok ? "passed" : "FAILED",
             std::count_if(bad.points.begin(), bad.points.end(), [](const auto& p) { return !p.problems.empty(); }),
             bad.points.size());
  cr::Generator gen(1);
  const cr::Tensor X = cr::randn({4, 3}, cr::float64, &gen);
  const cr::Tensor W = cr::randn({3, 2}, cr::float64, &gen).requires_grad_();
  const auto report = A::gradcheck(
      [&](const std::vector<cr::Tensor>& v) { return cr::sum(cr::tanh(bent_identity_wrong(cr::matmul(X, v[0])))); }, {W});
  fmt::print("   gradcheck of sum(tanh(bent_identity_wrong(X W))):\n   {}\n", report.to_string());
  return bad.ok || report.ok ? 1 : 0;  // the demonstration expects both checks to fail
}

int main() { return cli::run("custom_activation", run_example); }
