// Engine overhead per op: a chain of small (16-element) ops, forward plus backward, in
// ns/op, next to a hand-written loop computing the same values and gradients (the floor).
#include <chainrule.hpp>

#include <chrono>
#include <cmath>

namespace cr = chainrule;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// y = tanh(y * a + b) repeated; forward and backward through the engine.
double engine_ns_per_op(int chain, int reps, int64_t n) {
  cr::Tensor a = cr::full({n}, 0.9, cr::float32), b = cr::full({n}, 0.1, cr::float32);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    cr::Tensor x = cr::full({n}, 0.5, cr::float32).requires_grad_();
    const auto t0 = std::chrono::steady_clock::now();
    cr::Tensor y = x;
    for (int i = 0; i < chain; ++i) y = cr::tanh(y * a + b);
    cr::sum(y).backward();
    best = std::min(best, seconds_since(t0));
  }
  return best * 1e9 / (3.0 * chain + 1);  // mul, add, tanh per link, plus the sum
}

double loop_ns_per_op(int chain, int reps, int64_t n) {
  std::vector<float> ys(static_cast<size_t>((chain + 1) * n)), g(static_cast<size_t>(n));
  double best = 1e30;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t j = 0; j < n; ++j) ys[j] = 0.5f;
    for (int i = 0; i < chain; ++i)
      for (int64_t j = 0; j < n; ++j) ys[(i + 1) * n + j] = std::tanh(ys[i * n + j] * 0.9f + 0.1f);
    for (int64_t j = 0; j < n; ++j) g[j] = 1;
    for (int i = chain; i > 0; --i)
      for (int64_t j = 0; j < n; ++j) {
        const float y = ys[i * n + j];
        g[j] *= (1 - y * y) * 0.9f;
      }
    sink = sink + g[0];
    best = std::min(best, seconds_since(t0));
  }
  return best * 1e9 / (3.0 * chain + 1);
}

}  // namespace

int main(int argc, char** argv) {
  const int chain = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int reps = 5;
  fmt::print("chain of {} links (mul, add, tanh on 16 floats), forward + backward, best of {}\n", chain, reps);
  fmt::print("{:<28} {:>10}\n", "", "ns/op");
  const double engine = engine_ns_per_op(chain, reps, 16), loop = loop_ns_per_op(chain, reps, 16);
  fmt::print("{:<28} {:>10.1f}\n", "chainrule", engine);
  fmt::print("{:<28} {:>10.1f}\n", "hand-written loop", loop);
  fmt::print("{:<28} {:>10.1f}x\n", "ratio chainrule / loop", engine / loop);
}
