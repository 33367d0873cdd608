#include "scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace chainrule::optim {

// Schedule parameters checked with require_finite_non_negative: a negative or NaN one made a
// learning rate the optimizer refuses, epochs into training, or counted worse metrics as better.

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.group_count(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::step() {
  apply(epoch_ + 1);
  ++epoch_;
}

void LRScheduler::apply(int64_t epoch) {
  std::vector<double> lrs;  // all first: a schedule that fails changes nothing
  for (double base : base_lrs_) lrs.push_back(lr_at(base, epoch));
  for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, lrs[g]);
}

std::vector<double> LRScheduler::get_last_lr() const {
  std::vector<double> out;
  for (size_t g = 0; g < optimizer_.group_count(); ++g) out.push_back(optimizer_.lr(g));
  return out;
}

StepLR::StepLR(Optimizer& o, int64_t step_size, double gamma) : LRScheduler(o), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) fail("StepLR: step_size must be positive, got {}", step_size);
  require_finite_non_negative("StepLR", "gamma", gamma);
}
double StepLR::lr_at(double base, int64_t epoch) const {
  return base * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

ExponentialLR::ExponentialLR(Optimizer& o, double gamma) : LRScheduler(o), gamma_(gamma) {
  if (!(gamma > 0 && std::isfinite(gamma))) fail("ExponentialLR: gamma must be finite and positive, got {}", gamma);
}
double ExponentialLR::lr_at(double base, int64_t epoch) const { return base * std::pow(gamma_, static_cast<double>(epoch)); }

CosineAnnealingLR::CosineAnnealingLR(Optimizer& o, int64_t t_max, double eta_min)
    : LRScheduler(o), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0) fail("CosineAnnealingLR: T_max must be positive, got {}", t_max);
  require_finite_non_negative("CosineAnnealingLR", "eta_min", eta_min);
}
double CosineAnnealingLR::lr_at(double base, int64_t epoch) const {
  return eta_min_ + (base - eta_min_) * (1 + std::cos(std::numbers::pi * static_cast<double>(epoch) / t_max_)) / 2;
}

LinearLR::LinearLR(Optimizer& o, double start, double end, int64_t total)
    : LRScheduler(o), start_(start), end_(end), total_(total) {
  if (!(start > 0 && start <= 1) || !(end >= 0 && end <= 1) || total <= 0)
    fail("LinearLR: need 0 < start_factor <= 1, 0 <= end_factor <= 1, total_iters > 0 (got {}, {}, {})", start, end,
         total);
  apply(0);  // base * start_factor
}
double LinearLR::lr_at(double base, int64_t epoch) const {
  const double t = static_cast<double>(std::min(epoch, total_)) / static_cast<double>(total_);
  return base * (start_ + (end_ - start_) * t);
}

MultiStepLR::MultiStepLR(Optimizer& o, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(o), milestones_(std::move(milestones)), gamma_(gamma) {
  for (int64_t m : milestones_)
    if (m < 0) fail("MultiStepLR: milestones must be epochs >= 0, got {} in [{}]", m, fmt::join(milestones_, ", "));
  require_finite_non_negative("MultiStepLR", "gamma", gamma);
  std::sort(milestones_.begin(), milestones_.end());
  apply(0);  // a milestone at 0
}
double MultiStepLR::lr_at(double base, int64_t epoch) const {
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
  return base * std::pow(gamma_, static_cast<double>(passed));
}

LambdaLR::LambdaLR(Optimizer& o, std::function<double(int64_t)> lr_lambda)
    : LRScheduler(o), lambda_(std::move(lr_lambda)) {
  if (!lambda_) fail("LambdaLR: lr_lambda is empty; pass a function of the epoch giving the factor of the base lr");
  apply(0);
}
double LambdaLR::lr_at(double base, int64_t epoch) const {
  const double factor = lambda_(epoch);
  if (!(factor >= 0 && std::isfinite(factor)))
    fail("LambdaLR: lr_lambda({}) gave {}; the factor of the base lr must be finite and >= 0", epoch, factor);
  return base * factor;
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : optimizer_(optimizer), options_(options),
      best_(options.maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity()) {
  if (!(options.factor > 0 && options.factor < 1))
    fail("ReduceLROnPlateau: factor must be in (0, 1), got {}", options.factor);
  if (options.patience < 0) fail("ReduceLROnPlateau: patience must be >= 0, got {}", options.patience);
  if (options.cooldown < 0) fail("ReduceLROnPlateau: cooldown must be >= 0, got {}", options.cooldown);
  require_finite_non_negative("ReduceLROnPlateau", "threshold", options.threshold);
  if (!(options.min_lr >= 0)) fail("ReduceLROnPlateau: min_lr must be >= 0, got {}", options.min_lr);
}

void ReduceLROnPlateau::step(double metric) {
  const bool better = options_.maximize ? metric > best_ * (1 + (best_ >= 0 ? options_.threshold : -options_.threshold))
                                        : metric < best_ * (1 - (best_ >= 0 ? options_.threshold : -options_.threshold));
  if (better) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > options_.patience) {
    for (size_t g = 0; g < optimizer_.group_count(); ++g)
      optimizer_.set_lr(g, std::max(optimizer_.lr(g) * options_.factor, options_.min_lr));
    cooldown_left_ = options_.cooldown;
    bad_epochs_ = 0;
  }
}

}  // namespace chainrule::optim
