// The update rules. Each runs under NoGradGuard on the parameters' data; the formulas are in
// optimizer.hpp.
#include "optimizer.hpp"

#include "../autograd/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

namespace chainrule::optim {

void Optimizer::check_params(const std::vector<Tensor>& params) const {
  const std::string& optimizer = name();
  if (params.empty()) fail("{}: got an empty parameter list", optimizer);
  std::set<const TensorImpl*> seen;
  for (size_t g = 0; g < group_count(); ++g)
    for (const Tensor& p : group_params(g)) seen.insert(p.impl());
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    if (!p.defined()) fail("{}: parameter {} is undefined", optimizer, i);
    // A leaf that does not require grad is allowed, as in PyTorch: a frozen layer among
    // model.parameters(), left alone while it has no gradient.
    if (!is_floating(p.dtype())) fail("{}: parameter {} ({}) must be a floating tensor", optimizer, i, describe(p));
    if (!p.is_leaf())
      fail("{}: parameter {} ({}) must be a leaf (a tensor made by the user, not an op's result)", optimizer, i,
           describe(p));
    if (!seen.insert(p.impl()).second)
      fail("{}: parameter {} ({}) appears twice (in this list or in an earlier group); step would update it twice",
           optimizer, i, describe(p));
  }
}

void Optimizer::zero_grad() {
  for (size_t g = 0; g < group_count(); ++g)
    for (const Tensor& p : group_params(g)) p.impl()->grad = nullptr;
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < group_count(); ++g) set_lr(g, lr);
}

std::vector<Tensor> Optimizer::all_params() const {
  std::vector<Tensor> out;
  for (size_t g = 0; g < group_count(); ++g)
    for (const Tensor& p : group_params(g)) out.push_back(p);
  return out;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  for (size_t g = 0; g < group_count(); ++g) out.emplace_back(fmt::format("group.{}.lr", g), tensor(lr(g), Dtype::float64));
  const auto params = all_params();
  for (size_t i = 0; i < params.size() && i < state_.size(); ++i) {
    const ParamState& s = state_[i];
    if (s.empty()) continue;
    out.emplace_back(fmt::format("state.{}.step", i), tensor(static_cast<double>(s.step), Dtype::int64));
    for (const auto& [name, buf] : s.buffers)
      out.emplace_back(fmt::format("state.{}.{}", i, name), buf.detach().clone());
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  const auto params = all_params();
  std::vector<std::string> problems;
  std::map<size_t, ParamState> loaded;
  std::vector<double> lrs(group_count(), -1);
  // A value read from a one-element tensor, or why it cannot be used.
  auto scalar = [&](const std::string& key, const Tensor& t, bool whole) -> std::optional<double> {
    const double v = t.numel() == 1 ? t.to(Dtype::float64).item<double>() : NAN;
    if (std::isfinite(v) && v >= 0 && (!whole || v == std::floor(v))) return v;
    problems.push_back(fmt::format("invalid value for '{}': {} (need one {} >= 0)", key, describe(t),
                                   whole ? "whole number" : "finite number"));
    return std::nullopt;
  };
  for (const auto& [key, t] : state) {
    size_t index = 0;
    char field[64] = {};
    if (std::sscanf(key.c_str(), "group.%zu.%63s", &index, field) == 2 && std::string(field) == "lr") {
      if (index >= lrs.size())
        problems.push_back(fmt::format("unexpected key '{}': {} has {} parameter groups", key, name_, lrs.size()));
      else if (auto lr = scalar(key, t, false))
        lrs[index] = *lr;
      else
        lrs[index] = 0;  // reported; not also "missing"
    } else if (std::sscanf(key.c_str(), "state.%zu.%63s", &index, field) == 2) {
      if (index >= params.size()) {
        problems.push_back(fmt::format("unexpected key '{}': {} has {} parameters", key, name_, params.size()));
      } else if (std::string(field) == "step") {
        if (auto step = scalar(key, t, true)) loaded[index].step = static_cast<int64_t>(*step);
      } else if (std::find(buffers_.begin(), buffers_.end(), field) == buffers_.end()) {
        problems.push_back(fmt::format("unexpected key '{}': {} keeps no buffer '{}' (its buffers: {})", key, name_,
                                       field, fmt::join(buffers_, ", ")));
      } else if (t.shape() != params[index].shape()) {
        problems.push_back(fmt::format("shape mismatch for '{}': checkpoint has {}, parameter {} is {}", key,
                                       t.shape(), index, describe(params[index])));
      } else {
        loaded[index].buffers[field] = t.to(params[index].dtype()).clone();
      }
    } else {
      problems.push_back(fmt::format("unexpected key '{}'", key));
    }
  }
  for (size_t g = 0; g < lrs.size(); ++g)
    if (lrs[g] < 0) problems.push_back(fmt::format("missing key 'group.{}.lr'", g));
  if (!problems.empty())
    throw CheckpointError(fmt::format("load: the state does not fit this {} ({} problems):\n  {}", name_,
                                      problems.size(), fmt::join(problems, "\n  ")));
  state_.clear();
  for (auto& [i, s] : loaded) {
    if (i >= state_.size()) state_.resize(i + 1);
    state_[i] = std::move(s);
  }
  for (size_t g = 0; g < lrs.size(); ++g) set_lr(g, lrs[g]);
}

void save(const Optimizer& optimizer, const std::string& path) { save_tensors(optimizer.state_dict(), path); }
void load(Optimizer& optimizer, const std::string& path) { optimizer.load_state_dict(load_tensors(path)); }

namespace {
// Options are checked in constructors, quoting the bad value.
void require_non_negative(const std::string& optimizer, const char* what, double value) {
  if (!(value >= 0)) fail("{}: invalid {} {} (must be >= 0)", optimizer, what, value);
}

// The gradient after maximize and (coupled) weight decay.
Tensor effective_grad(const Tensor& p, bool maximize, double weight_decay) {
  Tensor g = p.grad();
  if (maximize) g = -g;
  if (weight_decay != 0) g = g + p * weight_decay;
  return g;
}
}  // namespace

// ---------------------------------------------------------------- SGD

void SGD::validate(const SGDOptions& o) const {
  require_non_negative("SGD", "learning rate", o.lr);
  require_non_negative("SGD", "momentum", o.momentum);
  require_non_negative("SGD", "weight_decay", o.weight_decay);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail("SGD: nesterov momentum requires momentum > 0 and dampening = 0 (got momentum {}, dampening {})", o.momentum,
         o.dampening);
  if (o.convention == MomentumConvention::ema) {
    if (o.momentum >= 1) fail("SGD: the ema convention needs momentum (beta) in [0, 1), got {}", o.momentum);
    if (o.nesterov || o.dampening != 0)
      fail("SGD: the ema convention takes neither nesterov nor dampening (its (1 - beta) factor is the dampening)");
  }
}

void Optimizer::convert_buffers(ParamState& s, Dtype dtype) {
  for (auto& [name, buffer] : s.buffers)
    if (buffer.defined() && buffer.dtype() != dtype) buffer = buffer.to(dtype);
  s.dtype = dtype;
}

namespace {
// The momentum update in one pass: the three in-place passes below (buf *= m; buf += a g;
// p += -lr buf) element by element, with the same operations in the same order, so the same
// bits, for a parameter, gradient and buffer contiguous in one floating dtype. Large
// parameters are split over threads (kernels::parallel_for). One pass instead of three: the
// seed's XOR net 185 -> ~110 ns a step (each call cost more than its arithmetic); the
// 784-1024-1024-10 MLP's update 1.73-1.83 -> 1.31-1.70 ms on 1 thread and 1.03-1.08 ->
// 0.75-1.06 ms on 2 (its 7 MB of buffers come from memory; three passes read them thrice).
bool fused_momentum_step(const Tensor& p, const Tensor& g, const Tensor& buf, double momentum, double a, double lr) {
  const Dtype d = p.dtype();
  // (g and buf laid out as a contiguous p are contiguous: one layout walk, not three)
  if (!is_floating(d) || g.dtype() != d || buf.dtype() != d || g.shape() != p.shape() || buf.shape() != p.shape() ||
      g.strides() != p.strides() || buf.strides() != p.strides() || !p.is_contiguous())
    return false;
  dispatch_floating(d, "SGD", [&]<class T>() {
    T* pp = kernels::ptr<T>(p);
    T* pb = kernels::ptr<T>(buf);
    const T* pg = kernels::ptr<T>(g);
    const T m = static_cast<T>(momentum), ta = static_cast<T>(a), step = static_cast<T>(-lr);
    // captured by value: by reference, the compiler checked at run time that the stores leave the
    // factors alone (18 instructions a call)
    kernels::parallel_for(p.numel(), [pp, pb, pg, m, ta, step](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        pb[i] = pb[i] * m;
        pb[i] = pb[i] + pg[i] * ta;
        pp[i] = pp[i] + pb[i] * step;
      }
    });
  });
  ++buf.impl()->storage->version;
  ++p.impl()->storage->version;
  return true;
}
}  // namespace

void SGD::step() {
  for_each_param_with_grad([&](Tensor& p, const SGDOptions& o, ParamState& s) {
    Tensor g = effective_grad(p, o.maximize, o.weight_decay);
    if (o.momentum != 0) {
      Tensor& buf = s.buffer("momentum_buffer");
      const bool ema = o.convention == MomentumConvention::ema;
      const double a = ema ? 1 - o.momentum : 1 - o.dampening;  // the new gradient's factor
      if (buf.defined() && !o.nesterov && fused_momentum_step(p, g, buf, o.momentum, a, o.lr)) {
        ++s.step;
        return;
      }
      // buffers are updated in place: one pass each, no temporaries
      if (buf.defined())
        buf.mul_(o.momentum).add_(g, a);
      else
        buf = ema ? g * (1 - o.momentum) : g.clone();
      g = o.nesterov ? g + buf * o.momentum : buf;  // nesterov: PyTorch's convention only (validate)
    }
    ++s.step;
    p.add_(g, -o.lr);
  });
}

// ---------------------------------------------------------------- Adam, AdamW

void Adam::validate(const AdamOptions& o) const {
  require_non_negative(name(), "learning rate", o.lr);
  require_non_negative(name(), "eps", o.eps);
  for (int i = 0; i < 2; ++i)
    if (!(o.betas[i] >= 0 && o.betas[i] < 1))
      fail("{}: invalid beta parameter at index {}: {} (must be in [0, 1))", name(), i, o.betas[i]);
  require_non_negative(name(), "weight_decay", o.weight_decay);
}

void Adam::step() {
  for_each_param_with_grad([&](Tensor& p, const AdamOptions& o, ParamState& s) {
    const auto [b1, b2] = o.betas;
    if (decoupled_ && o.weight_decay != 0) p.mul_(1 - o.lr * o.weight_decay);
    const Tensor g = effective_grad(p, o.maximize, decoupled_ ? 0.0 : o.weight_decay);
    Tensor& m = s.buffer("exp_avg");
    Tensor& v = s.buffer("exp_avg_sq");
    if (!m.defined()) {
      m = zeros_like(p);
      v = zeros_like(p);
    }
    const int64_t t = ++s.step;
    m = m * b1 + g * (1 - b1);
    v = v * b2 + g * g * (1 - b2);
    Tensor v_hat = v;
    if (o.amsgrad) {
      Tensor& vmax = s.buffer("max_exp_avg_sq");
      vmax = vmax.defined() ? maximum(vmax, v) : v.clone();
      v_hat = vmax;
    }
    const double bias1 = 1 - std::pow(b1, static_cast<double>(t)), bias2 = 1 - std::pow(b2, static_cast<double>(t));
    const Tensor denom = sqrt(v_hat) / std::sqrt(bias2) + o.eps;
    p.add_(m / denom, -o.lr / bias1);
  });
}

// ---------------------------------------------------------------- RMSprop

void RMSprop::validate(const RMSpropOptions& o) const {
  for (auto [what, value] : {std::pair{"learning rate", o.lr}, {"alpha", o.alpha}, {"eps", o.eps},
                             {"momentum", o.momentum}, {"weight_decay", o.weight_decay}})
    require_non_negative("RMSprop", what, value);
}

void RMSprop::step() {
  for_each_param_with_grad([&](Tensor& p, const RMSpropOptions& o, ParamState& s) {
    const Tensor g = effective_grad(p, o.maximize, o.weight_decay);
    ++s.step;
    Tensor& sq = s.buffer("square_avg");
    sq = sq.defined() ? sq * o.alpha + g * g * (1 - o.alpha) : g * g * (1 - o.alpha);
    Tensor avg;
    if (o.centered) {
      Tensor& ga = s.buffer("grad_avg");
      ga = ga.defined() ? ga * o.alpha + g * (1 - o.alpha) : g * (1 - o.alpha);
      avg = sqrt(sq - ga * ga) + o.eps;
    } else {
      avg = sqrt(sq) + o.eps;
    }
    if (o.momentum > 0) {
      Tensor& buf = s.buffer("momentum_buffer");
      buf = buf.defined() ? buf * o.momentum + g / avg : g / avg;
      p.add_(buf, -o.lr);
    } else {
      p.add_(g / avg, -o.lr);
    }
  });
}

void Adagrad::validate(const AdagradOptions& o) const {
  for (auto [what, value] : {std::pair{"learning rate", o.lr}, {"lr_decay", o.lr_decay},
                             {"weight_decay", o.weight_decay},
                             {"initial_accumulator_value", o.initial_accumulator_value}, {"eps", o.eps}})
    require_non_negative("Adagrad", what, value);
}

void Adagrad::step() {
  for_each_param_with_grad([&](Tensor& p, const AdagradOptions& o, ParamState& s) {
    const Tensor g = effective_grad(p, o.maximize, o.weight_decay);
    ++s.step;
    Tensor& sum = s.buffer("sum");
    sum = (sum.defined() ? sum : full_like(p, o.initial_accumulator_value)) + g * g;
    const double rate = o.lr / (1 + static_cast<double>(s.step - 1) * o.lr_decay);
    p.add_(g / (sqrt(sum) + o.eps), -rate);
  });
}

}  // namespace chainrule::optim
