// Engine overhead per op: a chain of small (16-element) ops, forward plus backward and freeing
// the graph, in ns/op, next to a hand-written loop computing the same values and gradients
// (the floor).
// Two chains: y = tanh(y * a + b) (tanh's arithmetic dominates the loop) and y = y * a + b
// (almost no arithmetic: the engine's bookkeeping alone).
#include <chainrule.hpp>

#include <xmmintrin.h>

#include <chrono>
#include <cmath>

namespace cr = chainrule;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// An engine chain's best time per op: in all (forward, backward, and freeing the graph when the
// chain's output goes, as a training loop pays for each step), and of that the freeing alone.
struct EngineTimes {
  double all, freeing;
};

// y = tanh(y * a + b) repeated (or y * a + b without tanh); forward and backward through the
// engine, then the graph freed (backward without retain_graph frees what the nodes saved; the
// nodes themselves go with the last handle to the output).
EngineTimes engine_ns_per_op(int chain, int reps, int64_t n, bool with_tanh) {
  cr::Tensor a = cr::full({n}, 0.9, cr::float32), b = cr::full({n}, 0.1, cr::float32);
  double best = 1e30, best_freeing = 1e30;
  for (int r = 0; r < reps; ++r) {
    cr::Tensor x = cr::full({n}, 0.5, cr::float32).requires_grad_();
    const auto t0 = std::chrono::steady_clock::now();
    cr::Tensor y = x;
    for (int i = 0; i < chain; ++i) y = with_tanh ? cr::tanh(y * a + b) : y * a + b;
    cr::sum(y).backward();
    const auto t1 = std::chrono::steady_clock::now();
    y = cr::Tensor();
    best_freeing = std::min(best_freeing, seconds_since(t1));
    best = std::min(best, seconds_since(t0));
  }
  const double ops = (with_tanh ? 3.0 : 2.0) * chain + 1;  // mul, add (, tanh) per link, plus the sum
  return {best * 1e9 / ops, best_freeing * 1e9 / ops};
}

double loop_ns_per_op(int chain, int reps, int64_t n, bool with_tanh) {
  std::vector<float> ys(static_cast<size_t>((chain + 1) * n)), g(static_cast<size_t>(n));
  double best = 1e30;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t j = 0; j < n; ++j) ys[j] = 0.5f;
    for (int i = 0; i < chain; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const float z = ys[i * n + j] * 0.9f + 0.1f;
        ys[(i + 1) * n + j] = with_tanh ? std::tanh(z) : z;
      }
    for (int64_t j = 0; j < n; ++j) g[j] = 1;
    for (int i = chain; i > 0; --i)
      for (int64_t j = 0; j < n; ++j) {
        const float y = ys[i * n + j];
        g[j] *= with_tanh ? (1 - y * y) * 0.9f : 0.9f;
      }
    sink = sink + g[0];
    best = std::min(best, seconds_since(t0));
  }
  return best * 1e9 / ((with_tanh ? 3.0 : 2.0) * chain + 1);
}

}  // namespace

int main(int argc, char** argv) {
  // The gradient along a long chain shrinks geometrically (0.9 per link) into subnormal floats,
  // whose arithmetic is ~100x slower on x86 and would dominate both columns: flush them to zero.
  _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ | DAZ
  const int chain = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int reps = 5;
  fmt::print("Target 2: a chain of {} links on 16 floats, forward + backward + freeing the graph, best of {}\n", chain,
             reps);
  fmt::print("{:<34} {:>16} {:>16}\n", "", "tanh(y * a + b)", "y * a + b");
  EngineTimes engine[2];
  double loop[2];
  for (int k = 0; k < 2; ++k) {
    engine[k] = engine_ns_per_op(chain, reps, 16, k == 0);
    loop[k] = loop_ns_per_op(chain, reps, 16, k == 0);
  }
  fmt::print("{:<34} {:>10.1f} ns/op {:>10.1f} ns/op\n", "chainrule", engine[0].all, engine[1].all);
  fmt::print("{:<34} {:>10.1f} ns/op {:>10.1f} ns/op\n", "  of which freeing the graph", engine[0].freeing,
             engine[1].freeing);
  fmt::print("{:<34} {:>10.1f} ns/op {:>10.1f} ns/op\n", "hand-written loop", loop[0], loop[1]);
  fmt::print("{:<34} {:>15.1f}x {:>15.1f}x\n", "ratio chainrule / loop", engine[0].all / loop[0],
             engine[1].all / loop[1]);
}
