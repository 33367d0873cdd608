#include "xor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <cmath>
#include <thread>

namespace xorseed {

// One shared tensor each (read-only), so printed graphs can name them X and y.
cr::Tensor inputs() {
  static const cr::Tensor X = cr::tensor({0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1}, {4, 3}, cr::float64);
  return X;
}
cr::Tensor targets() {
  static const cr::Tensor y = cr::tensor({0, 1, 1, 0}, {4, 1}, cr::float64);
  return y;
}
cr::Tensor seed_W1() {
  return cr::tensor({0.5488135039273248, 0.7151893663724195, 0.6027633760716439, 0.5448831829968969,
                     0.4236547993389047, 0.6458941130666561, 0.4375872112626925, 0.8917730007820798,
                     0.9636627605010293, 0.3834415188257777, 0.7917250380826646, 0.5288949197529045},
                    {3, 4}, cr::float64);
}
cr::Tensor seed_W2() {
  return cr::tensor({0.5680445610939323, 0.925596638292661, 0.07103605819788694, 0.08712929970154071}, {4, 1},
                    cr::float64);
}

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::seed_gradient: return "seed's gradient";
    case Variant::autodiff: return "correct gradient";
    case Variant::autodiff_bias: return "correct + output bias";
    case Variant::autodiff_pytorch_init: return "correct + PyTorch init";
  }
  return "?";
}

Forward forward(const cr::Tensor& W1, const cr::Tensor& W2, const cr::Tensor& b2) {
  Forward f;
  f.hidden = cr::sigmoid(cr::matmul(inputs(), W1));
  cr::Tensor z2 = cr::matmul(f.hidden, W2);
  if (b2.defined()) z2 = z2 + b2;
  f.output = cr::sigmoid(z2);
  f.loss = cr::sum(cr::pow(targets() - f.output, 2));
  return f;
}

namespace {
// The seed's sigmoid_derivative(x): sigmoid(x) * (1 - sigmoid(x)), called on sigmoid outputs.
cr::Tensor seed_sigmoid_derivative(const cr::Tensor& x) {
  const cr::Tensor s = cr::sigmoid(x);
  return s * (1.0 - s);
}
cr::Tensor derivative_at_output(const cr::Tensor& x, bool corrected) {
  return corrected ? x * (1.0 - x) : seed_sigmoid_derivative(x);
}
}  // namespace

std::pair<cr::Tensor, cr::Tensor> hand_gradients(const Forward& f, const cr::Tensor& W2, bool corrected) {
  cr::NoGradGuard no_grad;
  const cr::Tensor hidden = f.hidden.detach(), output = f.output.detach();
  // the seed, term by term: d2 = 2 (y - out) * sd(out); dW2 = h^T d2; dW1 = X^T ((d2 W2^T) * sd(h))
  const cr::Tensor d2 = (targets() - output) * 2.0 * derivative_at_output(output, corrected);
  const cr::Tensor dW2 = cr::matmul(hidden.t(), d2);
  const cr::Tensor dW1 = cr::matmul(inputs().t(), cr::matmul(d2, W2.detach().t()) * derivative_at_output(hidden, corrected));
  return {dW1, dW2};
}

Run train(Variant v, const cr::Tensor& W1_0, const cr::Tensor& W2_0, double lr, double beta, int steps) {
  cr::Tensor W1 = W1_0.detach().clone().requires_grad_(), W2 = W2_0.detach().clone().requires_grad_();
  std::vector<cr::Tensor> params = {W1, W2};
  cr::Tensor b2;
  if (v == Variant::autodiff_bias) {
    b2 = cr::zeros({1}, cr::float64).requires_grad_();
    params.push_back(b2);
  }
  cr::optim::SGD sgd(params, {.lr = lr, .momentum = beta, .convention = cr::optim::MomentumConvention::ema});
  Run run;
  for (int step = 0; step < steps; ++step) {
    const Forward f = forward(W1, W2, b2);
    sgd.zero_grad();
    if (v == Variant::seed_gradient) {
      auto [dW1, dW2] = hand_gradients(f, W2, false);
      W1.set_grad(-dW1);  // the seed adds its "d_weights": they are the negative gradient
      W2.set_grad(-dW2);
    } else {
      f.loss.backward();
    }
    sgd.step();
    run.loss.push_back(f.loss.item<double>());
    if (step + 1 == steps) run.outputs = f.output.to_vector<double>();
  }
  return run;
}

std::vector<Probe> probe_seed_run(const std::vector<int>& steps) {
  cr::Tensor W1 = seed_W1().requires_grad_(), W2 = seed_W2().requires_grad_();
  cr::optim::SGD sgd({W1, W2}, {.lr = 0.5, .momentum = 0.5, .convention = cr::optim::MomentumConvention::ema});
  auto cosine = [](const cr::Tensor& a, const cr::Tensor& b) {
    return (cr::sum(a * b) / cr::sqrt(cr::sum(a * a) * cr::sum(b * b))).item<double>();
  };
  std::vector<Probe> out;
  const int last = steps.empty() ? 0 : *std::max_element(steps.begin(), steps.end());
  for (int step = 1; step <= last; ++step) {
    const Forward f = forward(W1, W2);
    auto [d1, d2] = hand_gradients(f, W2, false);
    if (std::find(steps.begin(), steps.end(), step) != steps.end()) {
      const auto g = cr::autograd::grad({f.loss}, {W1, W2}, {}, true);
      // the seed moves along +d, the true descent direction is -g
      out.push_back({step, f.loss.item<double>(), cosine(d1, -g[0]), cosine(d2, -g[1]),
                     std::sqrt((cr::sum(g[0] * g[0]) + cr::sum(g[1] * g[1])).item<double>()),
                     f.output.to_vector<double>()});
    }
    W1.set_grad(-d1);
    W2.set_grad(-d2);
    sgd.step();
  }
  return out;
}

// ---------------------------------------------------------------- the sweep

namespace {

// One task: a variant and a momentum, with all learning rates x initialisations as one batch
// of B networks. W1 is stored as [3, B*4] (network b owns columns 4b..4b+3) so the first layer
// is one matrix product; W2 as [B, 4]; the second layer is a broadcast multiply and a sum.
std::vector<double> run_task(const SweepConfig& c, Variant v, double beta, std::atomic<long>& done) {
  const int64_t L = static_cast<int64_t>(c.lrs.size()), S = c.seeds, B = L * S;
  std::vector<double> w1(static_cast<size_t>(3 * B * 4)), w2(static_cast<size_t>(B * 4)), lr1(static_cast<size_t>(B * 4)),
      lr2(static_cast<size_t>(B));
  for (int64_t s = 0; s < S; ++s) {
    // the same initialisation for seed index s in every cell and variant: a paired comparison
    cr::Generator gen(c.seed * 1000003 + static_cast<uint64_t>(s));
    const auto u1 = cr::rand({3, 4}, cr::float64, &gen).to_vector<double>();
    const auto u2 = cr::rand({4}, cr::float64, &gen).to_vector<double>();
    const bool torch_init = v == Variant::autodiff_pytorch_init;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t b = l * S + s;
      for (int64_t k = 0; k < 3; ++k)
        for (int64_t j = 0; j < 4; ++j)  // PyTorch's Linear(3, 4): U(-1/sqrt(3), 1/sqrt(3))
          w1[k * B * 4 + b * 4 + j] = torch_init ? (2 * u1[k * 4 + j] - 1) / std::sqrt(3.0) : u1[k * 4 + j];
      for (int64_t j = 0; j < 4; ++j) {  // Linear(4, 1): U(-1/2, 1/2)
        w2[b * 4 + j] = torch_init ? (2 * u2[j] - 1) / 2 : u2[j];
        lr1[b * 4 + j] = c.lrs[l];
      }
      lr2[b] = c.lrs[l];
    }
  }
  cr::Tensor W1 = cr::tensor(w1, {3, B * 4}, cr::float64).requires_grad_();
  cr::Tensor W2 = cr::tensor(w2, {B, 4}, cr::float64).requires_grad_();
  cr::Tensor b2 = cr::zeros({B}, cr::float64).requires_grad_();
  const cr::Tensor lr_W1 = cr::tensor(lr1, {1, B * 4}, cr::float64), lr_W2 = cr::tensor(lr1, {B, 4}, cr::float64),
                   lr_b2 = cr::tensor(lr2, {B}, cr::float64);
  const bool bias = v == Variant::autodiff_bias, hand = v == Variant::seed_gradient;
  std::vector<cr::Tensor> params = {W1, W2};
  if (bias) params.push_back(b2);
  // lr is folded into the gradient (g <- lr g), so one optimizer with lr = 1 serves every
  // learning rate in the batch: b <- beta b + (1 - beta) lr g; w <- w - b.
  cr::optim::SGD sgd(params, {.lr = 1.0, .momentum = beta, .convention = cr::optim::MomentumConvention::ema});
  const cr::Tensor X = inputs(), Xt = inputs().t(), y = targets();
  cr::Tensor per_net;
  for (int step = 0; step < c.steps; ++step) {
    std::optional<cr::NoGradGuard> no_grad;
    if (hand) no_grad.emplace();
    const cr::Tensor h = cr::sigmoid(cr::matmul(X, W1)).reshape({4, B, 4});
    cr::Tensor z2 = cr::sum(h * W2, -1);
    if (bias) z2 = z2 + b2;
    const cr::Tensor out = cr::sigmoid(z2);  // [4, B]
    per_net = cr::sum(cr::pow(y - out, 2), 0);
    sgd.zero_grad();
    if (hand) {
      const cr::Tensor d = (y - out) * 2.0 * seed_sigmoid_derivative(out);  // the seed's (negative) gradient
      const cr::Tensor dW2 = cr::sum(h * d.unsqueeze(-1), 0);
      const cr::Tensor delta1 = (d.unsqueeze(-1) * W2 * seed_sigmoid_derivative(h)).reshape({4, B * 4});
      W1.set_grad(-cr::matmul(Xt, delta1) * lr_W1);
      W2.set_grad(-dW2 * lr_W2);
    } else {
      cr::sum(per_net).backward();
      cr::NoGradGuard g;
      W1.set_grad(W1.grad() * lr_W1);
      W2.set_grad(W2.grad() * lr_W2);
      if (bias) b2.set_grad(b2.grad() * lr_b2);
    }
    sgd.step();
    if ((step + 1) % 250 == 0) done += 250;
  }
  done += c.steps % 250;
  return per_net.to_vector<double>();
}

}  // namespace

SweepResult sweep(const SweepConfig& c, const std::function<void(long, long)>& progress) {
  if (c.lrs.empty() || c.momenta.empty() || c.seeds < 1 || c.steps < 1 || c.threads < 1)
    cr::fail("sweep: needs learning rates, momenta, seeds >= 1, steps >= 1 and threads >= 1");
  const auto start = std::chrono::steady_clock::now();
  struct Task {
    size_t variant, momentum;
  };
  std::vector<Task> tasks;
  for (size_t v = 0; v < 4; ++v)
    for (size_t m = 0; m < c.momenta.size(); ++m) tasks.push_back({v, m});
  SweepResult result;
  result.rate.assign(4, std::vector<std::vector<double>>(c.lrs.size(), std::vector<double>(c.momenta.size(), 0.0)));
  std::atomic<size_t> next{0};
  std::atomic<long> done{0};
  const long total = static_cast<long>(tasks.size()) * c.steps;
  const int blas_threads = cr::get_num_threads();
  if (c.threads > 1) cr::set_num_threads(1);  // our threads, not BLAS's, use the cores
  std::exception_ptr error;
  std::mutex error_mutex;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    try {
      for (size_t t; (t = next++) < tasks.size();) {
        const Task task = tasks[t];
        const auto losses = run_task(c, kVariants[task.variant], c.momenta[task.momentum], done);
        for (size_t l = 0; l < c.lrs.size(); ++l) {
          int solved = 0;
          for (int s = 0; s < c.seeds; ++s) {
            const double loss = losses[l * static_cast<size_t>(c.seeds) + static_cast<size_t>(s)];
            solved += std::isfinite(loss) && loss < c.solved_below;
          }
          result.rate[task.variant][l][task.momentum] = static_cast<double>(solved) / c.seeds;
        }
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      error = std::current_exception();
      failed = true;
      next = tasks.size();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < c.threads; ++i) threads.emplace_back(worker);
  while (progress && done < total && !failed) {
    progress(done, total);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& t : threads) t.join();
  cr::set_num_threads(blas_threads);
  if (error) std::rethrow_exception(error);
  if (progress) progress(total, total);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.net_steps = static_cast<long>(tasks.size()) * static_cast<long>(c.lrs.size()) * c.seeds * c.steps;
  return result;
}

}  // namespace xorseed
