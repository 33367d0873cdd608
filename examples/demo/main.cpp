// A first look at chainrule: fit y = 3x - 1 with gradient descent, printing the gradients
// the engine computes next to the ones derived by hand.
#include "../common/cli.hpp"

#include <chainrule.hpp>

namespace cr = chainrule;

int run_example() {
  cr::manual_seed(0);
  const cr::Tensor x = cr::linspace(-1, 1, 20, cr::float64).reshape({20, 1});
  const cr::Tensor y = x * 3.0 - 1.0 + cr::randn({20, 1}, cr::float64) * 0.05;
  cr::Tensor w = cr::zeros({1, 1}, cr::float64).requires_grad_();
  cr::Tensor b = cr::zeros({1}, cr::float64).requires_grad_();
  for (int step = 0; step <= 200; ++step) {
    const cr::Tensor pred = cr::matmul(x, w) + b;
    const cr::Tensor loss = cr::mean(cr::pow(pred - y, 2));
    loss.backward();
    if (step % 50 == 0) {
      // by hand: dL/dw = mean(2 (pred - y) x), dL/db = mean(2 (pred - y))
      const cr::Tensor r = (pred - y).detach();
      fmt::print("step {:3}  loss {:.6f}  dL/dw {:+.6f} (by hand {:+.6f})  dL/db {:+.6f} (by hand {:+.6f})\n", step,
                 loss.item<double>(), w.grad().item<double>(), cr::mean(r * x * 2.0).item<double>(),
                 b.grad().item<double>(), cr::mean(r * 2.0).item<double>());
    }
    cr::NoGradGuard no_grad;
    w.sub_(w.grad() * 0.5);
    b.sub_(b.grad() * 0.5);
    w.grad().zero_();
    b.grad().zero_();
  }
  fmt::print("fitted w = {:.4f}, b = {:.4f} (true 3, -1)\n", w.item<double>(), b.item<double>());
  return 0;
}

int main() { return cli::run("demo", run_example); }
