#include "clip_grad.hpp"

#include <cmath>
#include <span>

namespace chainrule::nn::utils {

namespace {

// The p-norm of v in double (INFINITY: the largest |v|); a NaN anywhere gives NaN.
double p_norm(std::span<const double> v, double p) {
  double acc = 0;
  for (double x : v) {
    const double a = std::abs(x);
    if (std::isinf(p)) acc = std::isnan(a) || a > acc ? a : acc;
    else acc += p == 1 ? a : p == 2 ? a * a : std::pow(a, p);
  }
  return std::isinf(p) || p == 1 ? acc : p == 2 ? std::sqrt(acc) : std::pow(acc, 1 / p);
}

// The gradients of the parameters that have one (detached aliases: scaling them in place
// changes .grad, without recording).
std::vector<Tensor> gradients_of(const std::vector<Tensor>& parameters) {
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad().detach());
  return grads;
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  if (!(max_norm >= 0)) fail("clip_grad_norm_: max_norm must be >= 0, got {}", max_norm);
  if (!(norm_type > 0))
    fail("clip_grad_norm_: norm_type must be > 0 (2 for the Euclidean norm, INFINITY for the largest element), got {}",
         norm_type);
  NoGradGuard no_grad;
  std::vector<Tensor> grads = gradients_of(parameters);
  std::vector<double> norms;
  for (const Tensor& g : grads) norms.push_back(p_norm(g.to_vector<double>(), norm_type));
  const double total = p_norm(norms, norm_type);
  if (error_if_nonfinite && !std::isfinite(total))
    fail("clip_grad_norm_: the total norm of order {} of the gradients is non-finite ({}), so it cannot be clipped; "
         "pass error_if_nonfinite = false to scale the gradients by it anyway",
         norm_type, total);
  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1))  // NaN too: the gradients become NaN, as PyTorch's
    for (Tensor& g : grads) g.mul_(coef);
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  if (!(clip_value >= 0)) fail("clip_grad_value_: clip_value must be >= 0, got {}", clip_value);
  NoGradGuard no_grad;
  for (Tensor& g : gradients_of(parameters)) g.copy_(clamp(g, -clip_value, clip_value));
}

}  // namespace chainrule::nn::utils
