// Engine overhead per op: a chain of small (16-element) ops, forward plus backward and freeing
// the graph, in ns/op, next to a hand-written loop computing the same values and gradients
// (the floor).
// Three chains: y = tanh(y * a + b) (tanh's arithmetic dominates the loop), y = y * a + b
// (almost no arithmetic: the engine's bookkeeping alone), and y * a + b with b requiring a
// gradient too. With a and b constants, y * a + b is one node (the constant b joins the
// product's node, join_constant, and tanh joins that); with b requiring a gradient, each op
// keeps a node of its own, so the third chain shows what a node costs.
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

enum class Chain { tanh, mul_add, mul_add_b_grad };
constexpr const char* kChainNames[] = {"tanh(y * a + b)", "y * a + b", "b needs grad"};
// mul, add (, tanh) per link, plus the sum
double ops_in(Chain c, int chain) { return (c == Chain::tanh ? 3.0 : 2.0) * chain + 1; }

// y = tanh(y * a + b) repeated (or y * a + b without tanh); forward and backward through the
// engine, then the graph freed (backward without retain_graph frees what the nodes saved; the
// nodes themselves go with the last handle to the output).
EngineTimes engine_ns_per_op(int chain, int reps, int64_t n, Chain c) {
  cr::Tensor a = cr::full({n}, 0.9, cr::float32), b = cr::full({n}, 0.1, cr::float32);
  if (c == Chain::mul_add_b_grad) b.requires_grad_();
  double best = 1e30, best_freeing = 1e30;
  for (int r = 0; r < reps; ++r) {
    cr::Tensor x = cr::full({n}, 0.5, cr::float32).requires_grad_();
    b.set_grad(cr::Tensor());  // (b's gradient accumulates otherwise)
    const auto t0 = std::chrono::steady_clock::now();
    cr::Tensor y = x;
    for (int i = 0; i < chain; ++i) y = c == Chain::tanh ? cr::tanh(y * a + b) : y * a + b;
    cr::sum(y).backward();
    const auto t1 = std::chrono::steady_clock::now();
    y = cr::Tensor();
    best_freeing = std::min(best_freeing, seconds_since(t1));
    best = std::min(best, seconds_since(t0));
  }
  return {best * 1e9 / ops_in(c, chain), best_freeing * 1e9 / ops_in(c, chain)};
}

// The same values and gradients by hand (for b requiring grad, b's gradient summed as well).
double loop_ns_per_op(int chain, int reps, int64_t n, Chain c) {
  const bool with_tanh = c == Chain::tanh, b_grad = c == Chain::mul_add_b_grad;
  std::vector<float> ys(static_cast<size_t>((chain + 1) * n)), g(static_cast<size_t>(n)), gb(g.size());
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
    for (int64_t j = 0; j < n; ++j) g[j] = 1, gb[j] = 0;
    for (int i = chain; i > 0; --i)
      for (int64_t j = 0; j < n; ++j) {
        const float y = ys[i * n + j];
        if (b_grad) gb[j] += g[j];
        g[j] *= with_tanh ? (1 - y * y) * 0.9f : 0.9f;
      }
    sink = sink + g[0] + gb[0];
    best = std::min(best, seconds_since(t0));
  }
  return best * 1e9 / ops_in(c, chain);
}

}  // namespace

int main(int argc, char** argv) {
  // The gradient along a long chain shrinks geometrically (0.9 per link) into subnormal floats,
  // whose arithmetic is ~100x slower on x86 and would dominate both columns: flush them to zero.
  _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ | DAZ
  const int chain = argc > 1 ? std::atoi(argv[1]) : 10000;
  // enough runs that the best is not a slow one: 20 of a long chain (10,000 links: about 2 ms
  // each), more of a short one (100 links: about 20 us each, run 200 times)
  const int reps = std::max(20, 20000 / std::max(chain, 1));
  fmt::print("Target 2: a chain of {} links on 16 floats, forward + backward + freeing the graph, best of {}\n", chain,
             reps);
  fmt::print("{:<34} {:>16} {:>16} {:>16}\n", "", kChainNames[0], kChainNames[1], kChainNames[2]);
  EngineTimes engine[3];
  double loop[3];
  for (int k = 0; k < 3; ++k) {
    engine[k] = engine_ns_per_op(chain, reps, 16, static_cast<Chain>(k));
    loop[k] = loop_ns_per_op(chain, reps, 16, static_cast<Chain>(k));
  }
  const auto row = [](const char* what, auto value, bool ratio) {
    fmt::print("{:<34}", what);
    for (int k = 0; k < 3; ++k) fmt::print(fmt::runtime(ratio ? " {:>15.1f}x" : " {:>10.1f} ns/op"), value(k));
    fmt::print("\n");
  };
  row("chainrule", [&](int k) { return engine[k].all; }, false);
  row("  of which freeing the graph", [&](int k) { return engine[k].freeing; }, false);
  row("hand-written loop", [&](int k) { return loop[k]; }, false);
  row("ratio chainrule / loop", [&](int k) { return engine[k].all / loop[k]; }, true);
}
