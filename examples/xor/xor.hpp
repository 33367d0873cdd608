// The seed program, as chainrule expressions: its network, its hand-derived gradients, its
// optimizer, and the sweep that answers its question about local optima.
#pragma once

#include <chainrule.hpp>

#include <functional>

namespace xorseed {

namespace cr = chainrule;

cr::Tensor inputs();   // [[0,0,1],[0,1,1],[1,0,1],[1,1,1]]: the third column is constant 1
cr::Tensor targets();  // [[0],[1],[1],[0]]
cr::Tensor seed_W1();  // np.random.seed(0): the seed's initial weights, [3, 4]
cr::Tensor seed_W2();  // [4, 1]

struct Forward {
  cr::Tensor hidden, output, loss;  // loss = sum of squared errors
};
// sigmoid(sigmoid(X W1) W2 + b2); b2 may be undefined (the seed has no bias).
Forward forward(const cr::Tensor& W1, const cr::Tensor& W2, const cr::Tensor& b2 = {});

// The seed's hand-derived gradients for W1 and W2 (the *negative* gradient, since the seed
// adds them). `corrected` uses x (1 - x) for sigmoid's derivative at an output x; otherwise
// the seed's sigmoid_derivative, which applies sigmoid again.
std::pair<cr::Tensor, cr::Tensor> hand_gradients(const Forward& f, const cr::Tensor& W2, bool corrected);

enum class Variant { seed_gradient, autodiff, autodiff_bias, autodiff_pytorch_init };
inline constexpr Variant kVariants[] = {Variant::seed_gradient, Variant::autodiff, Variant::autodiff_bias,
                                        Variant::autodiff_pytorch_init};
const char* variant_name(Variant v);

struct Run {
  std::vector<double> loss;     // loss of step k, from its forward pass before its update
  std::vector<double> outputs;  // after the last step's forward pass
};
// Trains one network from (W1, W2) with optim::SGD in the EMA momentum convention
// (w -= lr * b, b = beta b + (1 - beta) g), as the seed does.
Run train(Variant v, const cr::Tensor& W1, const cr::Tensor& W2, double lr, double beta, int steps);

// Along the seed's own run (seed's gradient, alpha 0.5, beta 0.5): at the given steps, the
// loss, the cosine between the seed's update direction and the true descent direction for
// each layer, the true gradient's norm, and the outputs.
struct Probe {
  int step;
  double loss, cos_W1, cos_W2, grad_norm;
  std::vector<double> outputs;
};
std::vector<Probe> probe_seed_run(const std::vector<int>& steps);

struct SweepConfig {
  std::vector<double> lrs = {0.05, 0.1, 0.25, 0.5, 1, 2, 4};
  std::vector<double> momenta = {0, 0.5, 0.9, 0.95, 0.99};
  int seeds = 100;  // random initialisations per cell (the same ones in every cell)
  int steps = 10000;
  int threads = 2;
  double solved_below = 0.05;
  uint64_t seed = 1;
};
struct SweepResult {
  std::vector<std::vector<std::vector<double>>> rate;  // [variant][lr][momentum]: fraction solved
  double seconds = 0;
  long net_steps = 0;  // networks x steps trained
};
// Trains every (variant, lr, momentum, initialisation). Each task is one variant and one
// momentum with all learning rates and initialisations batched into one expression; the
// tasks run on `threads` threads. `progress(done, total)` is called as steps complete.
SweepResult sweep(const SweepConfig& config, const std::function<void(long, long)>& progress = {});

}  // namespace xorseed
