/// \file
/// Gradient clipping, as torch::nn::utils: call between backward() and the optimizer's step().
#pragma once

#include "../autograd/autograd.hpp"

#include <vector>

namespace chainrule::nn::utils {

/// Scales the gradients of `parameters` together so that their total norm is at most
/// max_norm, and returns the total norm before clipping. The total is the norm_type-norm of the
/// per-parameter norms (2: Euclidean, INFINITY: the largest |g|, any p > 0), computed in
/// double; when it exceeds max_norm every gradient is multiplied, in place, by
/// max_norm / (total + 1e-6). Parameters without a gradient are skipped (none: returns 0).
/// A non-finite total is an Error with error_if_nonfinite, else the gradients are scaled by it
/// (to NaN, as PyTorch does).
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient of `parameters` to [-clip_value, clip_value], in place (NaN stays NaN).
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

}  // namespace chainrule::nn::utils
