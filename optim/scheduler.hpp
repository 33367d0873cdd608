// Learning-rate schedulers (PyTorch's closed forms). Call step() once per epoch (or per
// iteration, for warmup), after optimizer.step(). `epoch` counts those calls.
//   StepLR:            lr = base * gamma^floor(epoch / step_size)
//   ExponentialLR:     lr = base * gamma^epoch
//   CosineAnnealingLR: lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2
//   LinearLR (warmup): lr = base * (start + (end - start) min(epoch, total_iters) / total_iters)
//   ReduceLROnPlateau: lr *= factor after `patience` epochs without improvement of a metric
#pragma once

#include "optimizer.hpp"

namespace chainrule::optim {

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  void step();
  int64_t epoch() const { return epoch_; }
  std::vector<double> get_last_lr() const;

 protected:
  virtual double lr_at(double base_lr, int64_t epoch) const = 0;
  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t epoch_ = 0;
};

class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 private:
  double lr_at(double base, int64_t epoch) const override;
  int64_t step_size_;
  double gamma_;
};

class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 private:
  double lr_at(double base, int64_t epoch) const override;
  double gamma_;
};

class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);

 private:
  double lr_at(double base, int64_t epoch) const override;
  int64_t t_max_;
  double eta_min_;
};

// Linear warmup: scales the lr from start_factor to end_factor over total_iters steps.
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0, int64_t total_iters = 5);

 private:
  double lr_at(double base, int64_t epoch) const override;
  double start_, end_;
  int64_t total_;
};

struct ReduceLROnPlateauOptions {
  bool maximize = false;    // mode "max": higher metric is better
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;  // relative improvement needed
  int64_t cooldown = 0;
  double min_lr = 0.0;
};

class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  void step(double metric);
  int64_t bad_epochs() const { return bad_epochs_; }

 private:
  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;
  double best_;
  int64_t bad_epochs_ = 0, cooldown_left_ = 0;
};

}  // namespace chainrule::optim
