// Optimizers with PyTorch's semantics and defaults, plus the exponential-moving-average
// momentum many courses (and the seed program) use. Options are plain structs taken by
// designated initialisers; constructors reject invalid options with the bad value quoted.
//
// SGD, for each parameter p with gradient g (PyTorch's torch.optim.SGD):
//   g <- -g                                   if maximize
//   g <- g + weight_decay * p                 weight decay (L2), before momentum
//   momentum convention `pytorch` (momentum != 0):
//     b <- g                                  on the first step (no dampening)
//     b <- momentum * b + (1 - dampening) * g afterwards
//     g <- g + momentum * b   if nesterov,    else g <- b
//   momentum convention `ema` (exponential moving average; beta = momentum):
//     b <- 0 before the first step
//     b <- beta * b + (1 - beta) * g;  g <- b
//   p <- p - lr * g
//
// Adam (torch.optim.Adam), step t = 1, 2, ...:
//   g <- g + weight_decay * p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   v_hat <- max(v_hat, v) if amsgrad, else v
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v_hat) / sqrt(1 - b2^t) + eps)
// AdamW: p <- p * (1 - lr * weight_decay) first, then Adam without weight decay in g.
// RMSprop (torch.optim.RMSprop):
//   s <- alpha s + (1 - alpha) g^2;  a <- alpha a + (1 - alpha) g (centered)
//   d <- sqrt(s - a^2) + eps (centered) or sqrt(s) + eps
//   b <- momentum b + g / d; p <- p - lr b (momentum > 0), else p <- p - lr g / d
#pragma once

#include "../autograd/autograd.hpp"

#include <array>
#include <map>
#include <unordered_map>

namespace chainrule::optim {

// Per-parameter state: named buffers ("momentum_buffer", "exp_avg", ...) and a step count.
struct ParamState {
  std::map<std::string, Tensor> buffers;
  int64_t step = 0;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();  // drops every parameter's .grad

  virtual size_t group_count() const = 0;
  virtual const std::vector<Tensor>& group_params(size_t group) const = 0;
  virtual double lr(size_t group = 0) const = 0;
  virtual void set_lr(size_t group, double lr) = 0;
  void set_lr(double lr);  // every group

  // State as named tensors: "state.<i>.<buffer>", "state.<i>.step", "group.<g>.lr", where i
  // counts parameters across groups in order. load_state_dict validates before it changes
  // anything and throws CheckpointError listing every mismatch.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);
  const std::string& name() const { return name_; }

 protected:
  explicit Optimizer(std::string name) : name_(std::move(name)) {}
  ParamState& state(const Tensor& p) { return state_[p.impl()]; }
  static void check_params(const std::vector<Tensor>& params, const std::string& optimizer);

 private:
  std::vector<Tensor> all_params() const;
  std::unordered_map<const TensorImpl*, ParamState> state_;
  std::string name_;
};

// save/load of an optimizer's state (same file format as nn::save).
void save(const Optimizer& optimizer, const std::string& path);
void load(Optimizer& optimizer, const std::string& path);

// Parameter groups with per-group options.
template <class Options>
class GroupedOptimizer : public Optimizer {
 public:
  struct Group {
    std::vector<Tensor> params;
    Options options;
  };
  void add_param_group(std::vector<Tensor> params, const Options& options) {
    validate(options);
    check_params(params, name());
    groups_.push_back({std::move(params), options});
  }
  size_t group_count() const override { return groups_.size(); }
  const std::vector<Tensor>& group_params(size_t g) const override { return groups_.at(g).params; }
  double lr(size_t g = 0) const override { return groups_.at(g).options.lr; }
  void set_lr(size_t g, double lr) override {
    if (lr < 0) fail("{}: invalid learning rate {}", name(), lr);
    groups_.at(g).options.lr = lr;
  }
  using Optimizer::set_lr;
  Options& options(size_t g = 0) { return groups_.at(g).options; }

 protected:
  explicit GroupedOptimizer(std::string name) : Optimizer(std::move(name)) {}
  virtual void validate(const Options& options) const = 0;
  // Calls f(p, options of p's group) for every parameter that has a gradient, under no-grad:
  // the loop every step() runs.
  template <class F>
  void for_each_param_with_grad(F&& f) {
    NoGradGuard no_grad;
    for (auto& group : groups_)
      for (Tensor& p : group.params)
        if (p.grad().defined()) f(p, group.options);
  }
  std::vector<Group> groups_;
};

// ---------------------------------------------------------------- SGD

enum class MomentumConvention {
  pytorch,  // b = g on the first step, then b = momentum b + (1 - dampening) g
  ema,      // b starts at 0, b = beta b + (1 - beta) g (beta = momentum): the seed's form
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
  MomentumConvention convention = MomentumConvention::pytorch;
};

class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options) : GroupedOptimizer("SGD") {
    add_param_group(std::move(params), options);
  }
  void step() override;

 protected:
  void validate(const SGDOptions& o) const override;
};

// ---------------------------------------------------------------- Adam, AdamW

struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool maximize = false;
};

class Adam : public GroupedOptimizer<AdamOptions> {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options) : Adam("Adam", std::move(params), options, false) {}
  void step() override;

 protected:
  Adam(std::string name, std::vector<Tensor> params, const AdamOptions& options, bool decoupled)
      : GroupedOptimizer(std::move(name)), decoupled_(decoupled) {
    add_param_group(std::move(params), options);
  }
  void validate(const AdamOptions& o) const override;

 private:
  bool decoupled_;
};

struct AdamWOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
};

// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's defaults (weight_decay 1e-2).
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& o)
      : Adam("AdamW", std::move(params),
             AdamOptions{.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay,
                         .amsgrad = o.amsgrad, .maximize = o.maximize},
             true) {}
};

// ---------------------------------------------------------------- RMSprop

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
  bool maximize = false;
};

class RMSprop : public GroupedOptimizer<RMSpropOptions> {
 public:
  RMSprop(std::vector<Tensor> params, const RMSpropOptions& options)
      : GroupedOptimizer("RMSprop") {
    add_param_group(std::move(params), options);
  }
  void step() override;

 protected:
  void validate(const RMSpropOptions& o) const override;
};

}  // namespace chainrule::optim
