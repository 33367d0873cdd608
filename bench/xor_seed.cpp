// Target 1: the seed's XOR training (3-4-1 sigmoid, float64, 10,000 steps, EMA momentum,
// alpha 0.5, beta 0.5) with autodiff gradients, written as the seed's expression and as an
// nn::MLP with mse_loss, against a hand-written fused C++ loop (the floor) and, when built with
// -Dtorch=enabled, libtorch's C++ frontend at 1 thread (the seed's expression, and its nn modules
// with mse_loss).
#include "common.hpp"

#include <chainrule.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#ifdef CHAINRULE_BENCH_TORCH
#include <torch/torch.h>
#endif

namespace cr = chainrule;

namespace {

const double kX[12] = {0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1}, kY[4] = {0, 1, 1, 0};
const double kW1[12] = {0.5488135039273248, 0.7151893663724195, 0.6027633760716439, 0.5448831829968969,
                        0.4236547993389047, 0.6458941130666561, 0.4375872112626925, 0.8917730007820798,
                        0.9636627605010293, 0.3834415188257777, 0.7917250380826646, 0.5288949197529045};
const double kW2[4] = {0.5680445610939323, 0.925596638292661, 0.07103605819788694, 0.08712929970154071};
constexpr int kSteps = 10000;

// The seed's network in `copies` independent copies (2: whether a step's costs amortise when
// its code runs twice; docs/performance.md, item 20), trained on the sum of their losses. With
// `mse`, each loss is mse_loss(sum), one op, instead of the seed's sum(pow(y - out, 2)): what the
// seed's loss written as three ops costs (docs/performance.md, "What is left").
struct Seed {
  cr::Tensor X = cr::tensor(std::vector<double>(kX, kX + 12), {4, 3}, cr::float64);
  cr::Tensor y = cr::tensor(std::vector<double>(kY, kY + 4), {4, 1}, cr::float64);
  bool mse;
  std::vector<cr::Tensor> params;
  cr::optim::SGD sgd;

  explicit Seed(int copies, bool mse_loss = false)
      : mse(mse_loss),
        params(weights(copies)),
        sgd(params, {.lr = 0.5, .momentum = 0.5, .convention = cr::optim::MomentumConvention::ema}) {}
  static std::vector<cr::Tensor> weights(int copies) {
    std::vector<cr::Tensor> w;
    for (int c = 0; c < copies; ++c) {
      w.push_back(cr::tensor(std::vector<double>(kW1, kW1 + 12), {3, 4}, cr::float64).requires_grad_());
      w.push_back(cr::tensor(std::vector<double>(kW2, kW2 + 4), {4, 1}, cr::float64).requires_grad_());
    }
    return w;
  }
  cr::Tensor loss() const {
    auto out = [&](size_t c) {  // copy c's output
      return cr::sigmoid(cr::matmul(cr::sigmoid(cr::matmul(X, params[2 * c])), params[2 * c + 1]));
    };
    auto loss_of = [&](size_t c) {  // copy c's loss
      return mse ? cr::nn::functional::mse_loss(out(c), y, cr::nn::functional::Reduction::sum)
                 : cr::sum(cr::pow(y - out(c), 2));
    };
    cr::Tensor l = loss_of(0);
    for (size_t c = 1; 2 * c < params.size(); ++c) l = l + loss_of(c);
    return l;
  }
};

double chainrule_run(int copies = 1, bool mse = false, int steps = kSteps) {
  Seed net(copies, mse);
  double loss = 0;
  for (int s = 0; s < steps; ++s) {
    cr::Tensor l = net.loss();
    net.sgd.zero_grad();
    l.backward();
    net.sgd.step();
    loss = l.item<double>();
  }
  return loss;
}

// The same network and loss as the nn API writes them: MLP({3, 4, 1}) with sigmoids and no
// biases, whose Sequential runs each Linear and its Sigmoid as one op (linear with
// LinearActivation::sigmoid), and mse_loss(sum), one op too; the weights are the seed's,
// transposed into Linear's [out, in] layout.
double mlp_run(int steps = kSteps) {
  cr::nn::MLP mlp({3, 4, 1}, {.activation = std::string("sigmoid"), .output_activation = std::string("sigmoid"),
                              .bias = false, .dtype = cr::float64});
  {
    const cr::NoGradGuard no_grad;  // writing into leaves that require grad
    mlp.linears[0]->weight.copy_(cr::tensor(std::vector<double>(kW1, kW1 + 12), {3, 4}, cr::float64).t());
    mlp.linears[1]->weight.copy_(cr::tensor(std::vector<double>(kW2, kW2 + 4), {4, 1}, cr::float64).t());
  }
  const cr::Tensor X = cr::tensor(std::vector<double>(kX, kX + 12), {4, 3}, cr::float64),
                   y = cr::tensor(std::vector<double>(kY, kY + 4), {4, 1}, cr::float64);
  cr::optim::SGD sgd(mlp.parameters(), {.lr = 0.5, .momentum = 0.5, .convention = cr::optim::MomentumConvention::ema});
  double loss = 0;
  for (int s = 0; s < steps; ++s) {
    cr::Tensor l = cr::nn::functional::mse_loss(mlp(X), y, cr::nn::functional::Reduction::sum);
    sgd.zero_grad();
    l.backward();
    sgd.step();
    loss = l.item<double>();
  }
  return loss;
}

// A cheap clock for splitting a 2 us step: the time-stamp counter on x86 (a constant rate, not
// the core's cycles), steady_clock elsewhere. Only ratios of its readings are printed.
uint64_t ticks() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

// Where a step's time goes (docs/performance.md, item 21): the forward pass that records the
// graph, the same forward without recording (NoGradGuard, run first in each step and not part
// of the training), backward, the optimizer (zero_grad and step), and freeing the graph.
void print_phases() {
  Seed net(1);
  uint64_t unrecorded = 0, forward = 0, backward = 0, optimizer = 0, freeing = 0;
  for (int s = 0; s < 5 * kSteps; ++s) {
    const uint64_t t0 = ticks();
    {
      cr::NoGradGuard no_grad;
      (void)net.loss();
    }
    const uint64_t t1 = ticks();
    cr::Tensor l = net.loss();
    const uint64_t t2 = ticks();
    net.sgd.zero_grad();
    const uint64_t t3 = ticks();
    l.backward();
    const uint64_t t4 = ticks();
    net.sgd.step();
    const uint64_t t5 = ticks();
    l = cr::Tensor();
    const uint64_t t6 = ticks();
    unrecorded += t1 - t0, forward += t2 - t1, optimizer += (t3 - t2) + (t5 - t4), backward += t4 - t3;
    freeing += t6 - t5;
  }
  const double step = static_cast<double>(forward + backward + optimizer + freeing) / 100;
  fmt::print("a step's time: forward {:.0f}% (the same forward without recording the graph: {:.0f}%), backward {:.0f}%, "
             "optimizer {:.0f}%, freeing the graph {:.0f}%\n",
             forward / step, unrecorded / step, backward / step, optimizer / step, freeing / step);
}

// The same training, fused by hand: forward, the correct backward and the update in plain loops.
double hand_run() {
  double w1[12], w2[4], v1[12] = {}, v2[4] = {}, loss = 0;
  std::copy(kW1, kW1 + 12, w1);
  std::copy(kW2, kW2 + 4, w2);
  for (int s = 0; s < kSteps; ++s) {
    double h[4][4], out[4], g1[12] = {}, g2[4] = {};
    loss = 0;
    for (int i = 0; i < 4; ++i) {
      double z2 = 0;
      for (int j = 0; j < 4; ++j) {
        double z = 0;
        for (int k = 0; k < 3; ++k) z += kX[i * 3 + k] * w1[k * 4 + j];
        h[i][j] = 1 / (1 + std::exp(-z));
        z2 += h[i][j] * w2[j];
      }
      out[i] = 1 / (1 + std::exp(-z2));
      const double e = out[i] - kY[i];
      loss += e * e;
      const double d2 = 2 * e * out[i] * (1 - out[i]);
      for (int j = 0; j < 4; ++j) {
        g2[j] += h[i][j] * d2;
        const double d1 = d2 * w2[j] * h[i][j] * (1 - h[i][j]);
        for (int k = 0; k < 3; ++k) g1[k * 4 + j] += kX[i * 3 + k] * d1;
      }
    }
    for (int k = 0; k < 12; ++k) w1[k] -= 0.5 * (v1[k] = 0.5 * v1[k] + 0.5 * g1[k]);
    for (int k = 0; k < 4; ++k) w2[k] -= 0.5 * (v2[k] = 0.5 * v2[k] + 0.5 * g2[k]);
  }
  return loss;
}

#ifdef CHAINRULE_BENCH_TORCH
// The seed's network in libtorch, trained `steps` more steps each call (the same weights and
// updates as the other sides): the seed's expression, or (as_nn) torch::nn::Sequential's Linear
// and Sigmoid modules with mse_loss(sum), as the chainrule nn::MLP side.
struct TorchSeed {
  torch::TensorOptions opts = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor X = from(kX, {4, 3}), y = from(kY, {4, 1});
  torch::Tensor W1 = from(kW1, {3, 4}).requires_grad_(), W2 = from(kW2, {4, 1}).requires_grad_();
  bool as_nn;
  torch::nn::Sequential net;
  std::vector<torch::Tensor> w, buf;  // the trained weights and their momentum buffers

  explicit TorchSeed(bool nn = false) : as_nn(nn) {
    if (as_nn) {
      net = torch::nn::Sequential(torch::nn::Linear(torch::nn::LinearOptions(3, 4).bias(false)), torch::nn::Sigmoid(),
                                  torch::nn::Linear(torch::nn::LinearOptions(4, 1).bias(false)), torch::nn::Sigmoid());
      net->to(torch::kFloat64);
      w = net->parameters();
      torch::NoGradGuard g;
      w[0].copy_(W1.t());
      w[1].copy_(W2.t());
    } else {
      w = {W1, W2};
    }
    for (const auto& t : w) buf.push_back(torch::zeros_like(t));
  }
  torch::Tensor from(const double* p, std::vector<int64_t> shape) const {
    return torch::from_blob(const_cast<double*>(p), shape, opts).clone();
  }
  double steps(int n) {
    double loss = 0;
    for (int s = 0; s < n; ++s) {
      auto l = as_nn ? torch::mse_loss(net->forward(X), y, at::Reduction::Sum)
                     : torch::sum(torch::pow(
                           y - torch::sigmoid(torch::matmul(torch::sigmoid(torch::matmul(X, W1)), W2)), 2));
      if (w[0].grad().defined())
        for (auto& t : w) t.mutable_grad().zero_();
      l.backward();
      {
        torch::NoGradGuard g;
        for (size_t i = 0; i < w.size(); ++i) {
          buf[i].mul_(0.5).add_(w[i].grad(), 0.5);
          w[i].sub_(buf[i], 0.5);
        }
      }
      loss = l.item<double>();
    }
    return loss;
  }
};
#endif

}  // namespace

int main(int argc, char** argv) {
  cr::set_num_threads(1);
  // `xor_seed profile FORM STEPS`: FORM's training alone for STEPS steps (expression, mse or nn),
  // for a profiler (scripts/hot-code).
  if (argc == 4 && std::string_view(argv[1]) == "profile") {
    const std::string_view form = argv[2];
    const int steps = std::atoi(argv[3]);
    if (steps > 0 && form == "nn") return mlp_run(steps) > 0 ? 0 : 1;
    if (steps > 0 && (form == "expression" || form == "mse")) return chainrule_run(1, form == "mse", steps) > 0 ? 0 : 1;
    fmt::print(stderr, "usage: xor_seed [profile expression|mse|nn STEPS], STEPS >= 1\n");
    return 2;
  }
  // Each side is timed in windows of about the same length, in turn, for kRounds rounds, and
  // keeps its best window (per step): the seed's 10,000 steps for the hand-written loop (about
  // 3 ms) and for chainrule (about 25), kTorchWindow steps for libtorch. A shared machine's
  // quick and slow spells last seconds; a window of a second (libtorch's 10,000 steps) always
  // straddles both, one of 25 ms often falls in one, so windows of equal length give each side
  // the same chance of a quick one.
  constexpr int kRounds = 20;
  double l_cr = 0, l_hand = 0, l_mlp = 0;
  std::vector<std::function<void()>> sides{[&] { l_hand = hand_run(); }, [&] { l_cr = chainrule_run(); },
                                           [&] { l_mlp = mlp_run(); }};
  std::vector<int> window{kSteps, kSteps, kSteps};
#ifdef CHAINRULE_BENCH_TORCH
  constexpr int kTorchWindow = 300;  // about 25 ms
  torch::set_num_threads(1);
  const double l_torch = TorchSeed().steps(kSteps);  // the seed's 10,000 steps, for the final loss
  const double l_torch_nn = TorchSeed(true).steps(kSteps);
  TorchSeed torch_net, torch_nn(true);  // trained on from window to window (a step's work does not change)
  sides.push_back([&] { (void)torch_net.steps(kTorchWindow); });
  sides.push_back([&] { (void)torch_nn.steps(kTorchWindow); });
  window.push_back(kTorchWindow);
  window.push_back(kTorchWindow);
#endif
  const std::vector<double> best = bench::best_of_each(kRounds, sides);
  std::vector<double> t;  // each side's time for the seed's 10,000 steps, from its best window
  for (size_t i = 0; i < best.size(); ++i) t.push_back(best[i] / window[i] * kSteps);
  std::vector<bench::Row> rows;
  const double t_hand = t[0], t_cr = t[1], t_mlp = t[2];
  rows.push_back({"hand-written fused loop", t_hand, fmt::format("{:.2f} us/step", t_hand * 1e6 / kSteps)});
  rows.push_back({"chainrule (autodiff)", t_cr, fmt::format("{:.2f} us/step", t_cr * 1e6 / kSteps)});
  rows.push_back({"chainrule, as nn::MLP", t_mlp, fmt::format("{:.2f} us/step", t_mlp * 1e6 / kSteps)});
#ifdef CHAINRULE_BENCH_TORCH
  const double t_torch = t[3], t_torch_nn = t[4];
  rows.push_back({"libtorch (autograd, 1 thread)", t_torch, fmt::format("{:.2f} us/step", t_torch * 1e6 / kSteps)});
  rows.push_back({"libtorch, as torch::nn", t_torch_nn, fmt::format("{:.2f} us/step", t_torch_nn * 1e6 / kSteps)});
#endif
  bench::print_table("Target 1: the seed's XOR, 10,000 steps, float64", rows, "hand-written fused loop");
  fmt::print("final losses: chainrule {:.10f}, as nn::MLP {:.10f}, hand {:.10f}", l_cr, l_mlp, l_hand);
#ifdef CHAINRULE_BENCH_TORCH
  fmt::print(", libtorch {:.10f}, as torch::nn {:.10f}\nchainrule is {:.1f}x faster than libtorch (the seed's "
             "expression on both sides); {:.1f}x written with each one's nn API",
             l_torch, l_torch_nn, t_torch / t_cr, t_torch_nn / t_mlp);
#endif
  fmt::print("\n");
  double l_two = 0;
  const double t_two = bench::best_of(3, [&] { l_two = chainrule_run(2); });
  fmt::print("chainrule with two networks a step: {:.2f} us/step, {:.2f}x one network's time\n", t_two * 1e6 / kSteps,
             t_two / t_cr);
  // After the table, not in its rounds, so that the table's sides run as they always have.
  double l_mse = 0;
  const double t_mse = bench::best_of(kRounds, [&] { l_mse = chainrule_run(1, true); });
  fmt::print("the seed's network with mse_loss(sum) as its loss (one op instead of three): {:.2f} us/step, {:.2f}x "
             "the expression's time\n",
             t_mse * 1e6 / kSteps, t_mse / t_cr);
  print_phases();
  return std::abs(l_cr - l_hand) < 1e-9 && std::abs(l_mlp - l_hand) < 1e-9 && l_mse == l_cr && l_two == 2 * l_cr
             ? 0
             : 1;
}
