/// \file
/// Learning-rate schedulers (PyTorch's closed forms). Call step() once per epoch (or per
/// iteration, for warmup), after optimizer.step(). `epoch` counts those calls.
///   StepLR:            lr = base * gamma^floor(epoch / step_size)
///   ExponentialLR:     lr = base * gamma^epoch
///   CosineAnnealingLR: lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2
///   LinearLR (warmup): lr = base * (start + (end - start) min(epoch, total_iters) / total_iters)
///   MultiStepLR:       lr = base * gamma^(number of milestones <= epoch)
///   LambdaLR:          lr = base * lr_lambda(epoch)
///   ReduceLROnPlateau: lr *= factor after `patience` epochs without improvement of a metric
#pragma once

#include "optimizer.hpp"

#include <functional>

namespace chainrule::optim {

/// The base of the epoch-indexed schedulers: each sets every group's lr to a closed form of its
/// base lr and the epoch.
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);  ///< remembers each group's current lr as its base lr
  virtual ~LRScheduler() = default;  ///< virtual: schedulers are used through base pointers
  void step();  ///< advances the epoch and sets the optimizer's learning rates
  int64_t epoch() const { return epoch_; }  ///< how many times step() was called
  std::vector<double> get_last_lr() const;  ///< the learning rate of each group now

 protected:
  /// The schedule: the lr for a group of base lr `base_lr` at `epoch`.
  virtual double lr_at(double base_lr, int64_t epoch) const = 0;
  /// Sets every group's lr to lr_at(its base, epoch), computing all before setting any (a
  /// schedule that throws changes nothing); constructors whose lr at epoch 0 is not the base call it.
  void apply(int64_t epoch);
  Optimizer& optimizer_;  ///< the optimizer whose learning rates are set
  std::vector<double> base_lrs_;  ///< each group's lr when the scheduler was made
  int64_t epoch_ = 0;  ///< step() calls so far
};

/// Multiplies the lr by gamma every step_size epochs.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);  ///< lr = base * gamma^floor(epoch / step_size)

 private:
  double lr_at(double base, int64_t epoch) const override;
  int64_t step_size_;
  double gamma_;
};

/// Multiplies the lr by gamma every epoch.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);  ///< lr = base * gamma^epoch

 private:
  double lr_at(double base, int64_t epoch) const override;
  double gamma_;
};

/// Anneals the lr from base to eta_min along a half cosine over T_max epochs.
class CosineAnnealingLR : public LRScheduler {
 public:
  /// Lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2.
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);

 private:
  double lr_at(double base, int64_t epoch) const override;
  int64_t t_max_;
  double eta_min_;
};

/// Linear warmup: scales the lr from start_factor to end_factor over total_iters steps.
class LinearLR : public LRScheduler {
 public:
  /// Lr = base * (start + (end - start) min(epoch, total_iters) / total_iters).
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0, int64_t total_iters = 5);

 private:
  double lr_at(double base, int64_t epoch) const override;
  double start_, end_;
  int64_t total_;
};

/// Multiplies the lr by gamma at each milestone epoch.
class MultiStepLR : public LRScheduler {
 public:
  /// Lr = base * gamma^(number of milestones <= epoch); milestones in any order, >= 0 (one listed
  /// twice counts twice, as in PyTorch).
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);

 private:
  double lr_at(double base, int64_t epoch) const override;
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

/// Any schedule: the lr is each group's base lr times lr_lambda(epoch), from epoch 0 (set when
/// the scheduler is made, as PyTorch's). A factor that is negative or not finite is an Error
/// naming the epoch, and leaves the learning rates as they were.
class LambdaLR : public LRScheduler {
 public:
  /// Lr = base * lr_lambda(epoch).
  LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> lr_lambda);

 private:
  double lr_at(double base, int64_t epoch) const override;
  std::function<double(int64_t)> lambda_;
};

/// ReduceLROnPlateau's options, PyTorch's names and defaults (mode "min" unless maximize).
struct ReduceLROnPlateauOptions {
  bool maximize = false;    ///< mode "max": higher metric is better
  double factor = 0.1;  ///< the lr is multiplied by this on a plateau
  int64_t patience = 10;  ///< epochs without improvement before the lr drops
  double threshold = 1e-4;  ///< relative improvement needed
  int64_t cooldown = 0;  ///< epochs to wait after a drop before counting again
  double min_lr = 0.0;  ///< the lr never drops below this
};

/// Drops the lr by `factor` when a metric (validation loss, say) stops improving for `patience`
/// epochs.
class ReduceLROnPlateau {
 public:
  /// Watches the metric given to step() for `optimizer`.
  ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  void step(double metric);  ///< records this epoch's metric; lowers every group's lr on a plateau
  int64_t bad_epochs() const { return bad_epochs_; }  ///< epochs since the metric last improved

 private:
  Optimizer& optimizer_;  ///< the optimizer whose learning rates are set
  ReduceLROnPlateauOptions options_;
  double best_;
  int64_t bad_epochs_ = 0, cooldown_left_ = 0;
};

}  // namespace chainrule::optim
