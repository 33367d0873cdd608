/// \file
/// Optimizers with PyTorch's semantics and defaults, plus the exponential-moving-average
/// momentum many courses (and the seed program) use. Options are plain structs taken by
/// designated initialisers; constructors reject invalid options with the bad value quoted.
///
/// SGD, for each parameter p with gradient g (PyTorch's torch.optim.SGD):
///   g <- -g                                   if maximize
///   g <- g + weight_decay * p                 weight decay (L2), before momentum
///   momentum convention `pytorch` (momentum != 0):
///     b <- g                                  on the first step (no dampening)
///     b <- momentum * b + (1 - dampening) * g afterwards
///     g <- g + momentum * b   if nesterov,    else g <- b
///   momentum convention `ema` (exponential moving average; beta = momentum):
///     b <- 0 before the first step
///     b <- beta * b + (1 - beta) * g;  g <- b
///   p <- p - lr * g
///
/// Adam (torch.optim.Adam), step t = 1, 2, ...:
///   g <- g + weight_decay * p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
///   v_hat <- max(v_hat, v) if amsgrad, else v
///   p <- p - lr / (1 - b1^t) * m / (sqrt(v_hat) / sqrt(1 - b2^t) + eps)
/// AdamW: p <- p * (1 - lr * weight_decay) first, then Adam without weight decay in g.
/// RMSprop (torch.optim.RMSprop):
///   s <- alpha s + (1 - alpha) g^2;  a <- alpha a + (1 - alpha) g (centered)
///   d <- sqrt(s - a^2) + eps (centered) or sqrt(s) + eps
///   b <- momentum b + g / d; p <- p - lr b (momentum > 0), else p <- p - lr g / d
/// Adagrad (torch.optim.Adagrad), step t = 1, 2, ...:
///   s <- s + g^2 (s starts at initial_accumulator_value);  p <- p - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)
#pragma once

#include "../autograd/autograd.hpp"

#include <array>
#include <map>
#include <string_view>

namespace chainrule::optim {

/// Per-parameter state: named buffers ("momentum_buffer", "exp_avg", ...) and a step count.
struct ParamState {
  /// Named buffers of this parameter, created on its first step (found by name without making a string).
  std::map<std::string, Tensor, std::less<>> buffers;
  int64_t step = 0;  ///< steps taken for this parameter
  Dtype dtype = Dtype::float32;  ///< the dtype the buffers are in (the parameter's when state() last saw it)
  /// The buffer `name`, an undefined tensor until a step makes it.
  Tensor& buffer(std::string_view name) {
    auto it = buffers.find(name);
    return it != buffers.end() ? it->second : buffers.emplace(name, Tensor()).first->second;
  }
  bool empty() const { return step == 0 && buffers.empty(); }  ///< no step taken and nothing loaded
};

/// The base of every optimizer: parameter groups, zero_grad, the learning rate, state save/load.
/// Subclasses implement step() (one update of every parameter that has a gradient).
class Optimizer {
 public:
  virtual ~Optimizer() = default;  ///< virtual: optimizers are used through base pointers
  virtual void step() = 0;  ///< one update of every parameter that has a gradient
  void zero_grad();  ///< drops every parameter's .grad

  virtual size_t group_count() const = 0;  ///< the number of parameter groups
  virtual const std::vector<Tensor>& group_params(size_t group) const = 0;  ///< the parameters of a group
  virtual double lr(size_t group = 0) const = 0;  ///< a group's learning rate
  virtual void set_lr(size_t group, double lr) = 0;  ///< sets a group's learning rate (schedulers call it)
  void set_lr(double lr);  ///< every group

  /// State as named tensors: "state.<i>.<buffer>", "state.<i>.step", "group.<g>.lr", where i
  /// counts parameters across groups in order. load_state_dict validates before it changes
  /// anything and throws CheckpointError listing every mismatch.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);  ///< restores what state_dict() returned (all or nothing)
  const std::string& name() const { return name_; }  ///< "SGD", "Adam", ...: how messages name the optimizer

 protected:
  /// `name` appears in error messages; `buffers` names every per-parameter buffer step() may
  /// keep, which load_state_dict accepts (an SGD state loaded into Adam is an Error).
  Optimizer(std::string name, std::vector<std::string> buffers) : name_(std::move(name)), buffers_(std::move(buffers)) {}
  /// The state of parameter p, the i-th counted across groups in order (state_dict's index).
  /// Buffers in another dtype than p (the model was moved with to(dtype) after some steps) are
  /// converted to p's, as load_state_dict converts what it loads: the update then runs in the
  /// parameter's precision. Kept by index, not looked up by tensor: a step read a hash map and
  /// a map of strings per parameter.
  ParamState& state(size_t i, const Tensor& p) {
    if (i >= state_.size()) [[unlikely]]
      state_.resize(i + 1);
    ParamState& s = state_[i];
    if (s.dtype != p.dtype()) [[unlikely]]
      convert_buffers(s, p.dtype());
    return s;
  }
  /// Fails unless every tensor is a defined floating leaf (one that does not require grad, a
  /// frozen parameter, is allowed and skipped while it has no gradient) and none appears twice,
  /// in the list or in a group already added (step would update it twice).
  void check_params(const std::vector<Tensor>& params) const;
  static void convert_buffers(ParamState& s, Dtype dtype);  ///< state()'s conversion

 private:
  std::vector<Tensor> all_params() const;
  std::vector<ParamState> state_;  // by parameter index (see state()); empty() ones have none
  std::string name_;
  std::vector<std::string> buffers_;
};

/// save/load of an optimizer's state (same file format as nn::save).
void save(const Optimizer& optimizer, const std::string& path);
void load(Optimizer& optimizer, const std::string& path);  ///< reads `path` into optimizer.load_state_dict()

/// Parameter groups with per-group options.
template <class Options>
class GroupedOptimizer : public Optimizer {
 public:
  /// A list of parameters that share options.
  struct Group {
    std::vector<Tensor> params;  ///< the parameters of the group
    Options options;  ///< their options (lr, momentum, ...)
  };
  /// Adds parameters with their own options (validated).
  void add_param_group(std::vector<Tensor> params, const Options& options) {
    validate(options);
    check_params(params);
    groups_.push_back({std::move(params), options});
  }
  size_t group_count() const override { return groups_.size(); }  ///< the number of parameter groups
  /// The parameters of group g.
  const std::vector<Tensor>& group_params(size_t g) const override { return groups_.at(g).params; }
  double lr(size_t g = 0) const override { return groups_.at(g).options.lr; }  ///< group g's learning rate
  void set_lr(size_t g, double lr) override {  ///< sets group g's learning rate
    if (!(lr >= 0)) fail("{}: invalid learning rate {}", name(), lr);
    groups_.at(g).options.lr = lr;
  }
  using Optimizer::set_lr;  ///< set_lr(lr) sets every group
  /// Group g's options, to read or change between steps.
  Options& options(size_t g = 0) { return groups_.at(g).options; }

 protected:
  /// `name` appears in error messages; `buffers` are the per-parameter buffers step() keeps.
  GroupedOptimizer(std::string name, std::vector<std::string> buffers)
      : Optimizer(std::move(name), std::move(buffers)) {}
  virtual void validate(const Options& options) const = 0;  ///< throws Error quoting any invalid option
  /// Calls f(p, options of p's group, state of p) for every parameter that has a gradient, under
  /// no-grad: the loop every step() runs.
  template <class F>
  void for_each_param_with_grad(F&& f) {
    NoGradGuard no_grad;
    size_t i = 0;
    for (auto& group : groups_)
      for (Tensor& p : group.params) {
        if (p.impl()->grad) f(p, group.options, state(i, p));  // (p.grad() would copy the handle just to test it)
        ++i;
      }
  }
  std::vector<Group> groups_;  ///< the parameter groups, in the order they were added
};

// ---------------------------------------------------------------- SGD

/// How SGD accumulates momentum; see docs/optimizers.md for which reproduces which course or library.
enum class MomentumConvention {
  pytorch,  ///< b = g on the first step, then b = momentum b + (1 - dampening) g
  ema,      ///< b starts at 0, b = beta b + (1 - beta) g (beta = momentum): the seed's form
};

/// SGD's options, fields in PyTorch's order and with its defaults (lr 1e-3 here, as PyTorch requires one).
struct SGDOptions {
  double lr = 1e-3;  ///< learning rate
  double momentum = 0.0;  ///< momentum factor (0: plain SGD)
  double dampening = 0.0;  ///< scales the new gradient in the momentum buffer by (1 - dampening) (PyTorch convention)
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  bool nesterov = false;  ///< Nesterov momentum (needs momentum > 0 and dampening 0)
  bool maximize = false;  ///< ascend instead of descend
  /// Which momentum recurrence (PyTorch's or the EMA form).
  MomentumConvention convention = MomentumConvention::pytorch;
};

/// Stochastic gradient descent with momentum in PyTorch's or the EMA convention, Nesterov, weight decay.
class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  /// Optimizes `params` (one group) with `options`.
  SGD(std::vector<Tensor> params, const SGDOptions& options) : GroupedOptimizer("SGD", {"momentum_buffer"}) {
    add_param_group(std::move(params), options);
  }
  void step() override;  ///< one update of every parameter with a gradient

 protected:
  /// Rejects negative lr, momentum, weight decay; Nesterov without momentum.
  void validate(const SGDOptions& o) const override;
};

// ---------------------------------------------------------------- Adam, AdamW

/// Adam's options, PyTorch's names and defaults.
struct AdamOptions {
  double lr = 1e-3;  ///< learning rate
  std::array<double, 2> betas = {0.9, 0.999};  ///< decay rates of the first and second moment estimates
  double eps = 1e-8;  ///< added to the denominator for stability
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  bool amsgrad = false;  ///< use the running maximum of the second moment (AMSGrad)
  bool maximize = false;  ///< ascend instead of descend
};

/// Adam (Kingma & Ba) with PyTorch's bias correction; AMSGrad optional; L2 weight decay in the gradient.
class Adam : public GroupedOptimizer<AdamOptions> {
 public:
  /// Optimizes `params` (one group) with `options`.
  Adam(std::vector<Tensor> params, const AdamOptions& options) : Adam("Adam", std::move(params), options, false) {}
  void step() override;  ///< one update of every parameter with a gradient

 protected:
  /// For AdamW: `decoupled` applies weight decay to the parameters, not the gradient.
  Adam(std::string name, std::vector<Tensor> params, const AdamOptions& options, bool decoupled)
      : GroupedOptimizer(std::move(name), {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}), decoupled_(decoupled) {
    add_param_group(std::move(params), options);
  }
  void validate(const AdamOptions& o) const override;  ///< rejects negative lr or eps, betas outside [0, 1)

 private:
  bool decoupled_;
};

/// AdamW's options: Adam's with PyTorch's AdamW default weight_decay 1e-2.
struct AdamWOptions {
  double lr = 1e-3;  ///< learning rate
  std::array<double, 2> betas = {0.9, 0.999};  ///< decay rates of the first and second moment estimates
  double eps = 1e-8;  ///< added to the denominator for stability
  double weight_decay = 1e-2;  ///< decoupled: p <- p * (1 - lr * weight_decay) each step
  bool amsgrad = false;  ///< use the running maximum of the second moment (AMSGrad)
  bool maximize = false;  ///< ascend instead of descend
};

/// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's defaults (weight_decay 1e-2).
class AdamW : public Adam {
 public:
  /// Optimizes `params` (one group) with `o`.
  AdamW(std::vector<Tensor> params, const AdamWOptions& o)
      : Adam("AdamW", std::move(params),
             AdamOptions{.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay,
                         .amsgrad = o.amsgrad, .maximize = o.maximize},
             true) {}
};

// ---------------------------------------------------------------- RMSprop

/// RMSprop's options, PyTorch's names and defaults.
struct RMSpropOptions {
  double lr = 1e-2;  ///< learning rate
  double alpha = 0.99;  ///< decay rate of the squared-gradient average
  double eps = 1e-8;  ///< added to the denominator for stability
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  double momentum = 0.0;  ///< momentum factor (0: plain SGD)
  bool centered = false;  ///< divide by the estimated variance instead of the raw second moment
  bool maximize = false;  ///< ascend instead of descend
};

/// RMSprop (Hinton's lecture 6e) as torch.optim.RMSprop: centered and momentum variants.
class RMSprop : public GroupedOptimizer<RMSpropOptions> {
 public:
  /// Optimizes `params` (one group) with `options`.
  RMSprop(std::vector<Tensor> params, const RMSpropOptions& options)
      : GroupedOptimizer("RMSprop", {"square_avg", "grad_avg", "momentum_buffer"}) {
    add_param_group(std::move(params), options);
  }
  void step() override;  ///< one update of every parameter with a gradient

 protected:
  void validate(const RMSpropOptions& o) const override;  ///< rejects negative lr, alpha, eps, momentum, weight decay
};

// ---------------------------------------------------------------- Adagrad

/// Adagrad's options, PyTorch's names and defaults.
struct AdagradOptions {
  double lr = 1e-2;  ///< learning rate
  double lr_decay = 0.0;  ///< the rate at step t is lr / (1 + (t - 1) lr_decay)
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  double initial_accumulator_value = 0.0;  ///< where the sum of squared gradients starts
  double eps = 1e-10;  ///< added to the denominator for stability
  bool maximize = false;  ///< ascend instead of descend
};

/// Adagrad (Duchi et al., 2011) as torch.optim.Adagrad: each parameter's rate divided by the root
/// of its summed squared gradients.
class Adagrad : public GroupedOptimizer<AdagradOptions> {
 public:
  /// Optimizes `params` (one group) with `options`.
  Adagrad(std::vector<Tensor> params, const AdagradOptions& options) : GroupedOptimizer("Adagrad", {"sum"}) {
    add_param_group(std::move(params), options);
  }
  void step() override;  ///< one update of every parameter with a gradient

 protected:
  /// rejects negative lr, lr_decay, weight decay, initial accumulator value, eps
  void validate(const AdagradOptions& o) const override;
};

}  // namespace chainrule::optim
