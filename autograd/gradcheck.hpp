// gradcheck: compares the engine's gradients with central finite differences in float64.
//
// For y = fn(inputs), it builds the full Jacobian of y with respect to every input that
// requires grad, once by backward passes (analytic) and once by (f(x+eps) - f(x-eps)) / 2eps
// (numeric), and reports per input the largest absolute and relative error, the worst
// element, and both values there. An element passes when |analytic - numeric| <= atol +
// rtol * |numeric| (PyTorch's defaults: eps 1e-6, atol 1e-5, rtol 1e-3).
#pragma once

#include "tensor.hpp"

#include <functional>
#include <string>

namespace chainrule::autograd {

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

struct InputReport {
  size_t input = 0;
  Shape shape;
  bool ok = true;
  double max_abs_error = 0;
  double max_rel_error = 0;
  int64_t worst_input_element = -1;   // row-major index into the input
  int64_t worst_output_element = -1;  // row-major index into the output
  double analytic = 0;                // d output / d input at the worst element
  double numeric = 0;
};

struct GradcheckReport {
  bool ok = true;
  GradcheckOptions options;
  std::vector<InputReport> inputs;
  explicit operator bool() const { return ok; }
  std::string to_string() const;
};

GradcheckReport gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

// Checks second derivatives: gradcheck of x -> grad(fn(x), x, v, create_graph=true) for a
// fixed random v, so every backward rule's own backward is verified too.
GradcheckReport gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace chainrule::autograd

template <>
struct fmt::formatter<chainrule::autograd::GradcheckReport> : fmt::formatter<std::string_view> {
  auto format(const chainrule::autograd::GradcheckReport& r, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(r.to_string(), ctx);
  }
};
