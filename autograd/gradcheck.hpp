/// \file
/// gradcheck: compares the engine's gradients with central finite differences in float64.
///
/// For y = fn(inputs), it builds the full Jacobian of y with respect to every input that
/// requires grad, once by backward passes (analytic) and once by (f(x+eps) - f(x-eps)) / 2eps
/// (numeric), and reports per input the largest absolute and relative error, the worst
/// element, and both values there. An element passes when |analytic - numeric| <= atol +
/// rtol * |numeric| (PyTorch's defaults: eps 1e-6, atol 1e-5, rtol 1e-3).
#pragma once

#include "tensor.hpp"

#include <functional>
#include <string>

namespace chainrule::autograd {

/// The function gradcheck differentiates: inputs to one output tensor.
using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Step and tolerances of gradcheck (PyTorch's defaults).
struct GradcheckOptions {
  double eps = 1e-6;  ///< finite-difference step
  double atol = 1e-5;  ///< absolute tolerance
  double rtol = 1e-3;  ///< relative tolerance (to the numeric value)
};

/// gradcheck's findings for one input.
struct InputReport {
  size_t input = 0;  ///< which input (its position in the list)
  Shape shape;  ///< its shape
  bool ok = true;  ///< every element within tolerance
  double max_abs_error = 0;  ///< the largest |analytic - numeric|
  double max_rel_error = 0;  ///< the largest |analytic - numeric| / |numeric|
  int64_t worst_input_element = -1;   ///< row-major index into the input
  int64_t worst_output_element = -1;  ///< row-major index into the output
  double analytic = 0;                ///< d output / d input at the worst element
  double numeric = 0;  ///< the finite-difference value there
};

struct GradcheckReport;

/// A custom-function call (autograd::Function, make_unary) whose own backward disagrees with
/// finite differences of its own forward: where a failed gradcheck's error comes from.
struct NodeReport {
  std::string name;        ///< the function's name
  size_t call = 0;         ///< its place among custom-function calls, in forward order (1-based)
  std::vector<Shape> input_shapes;  ///< the shapes of its inputs in that call
  std::shared_ptr<GradcheckReport> check;  ///< gradcheck of that call alone
};

/// What gradcheck and gradgradcheck return: ok, and per input where and how much the gradients
/// differ.
struct GradcheckReport {
  bool ok = true;  ///< every element within tolerance
  GradcheckOptions options;  ///< the step and tolerances used
  std::vector<InputReport> inputs;  ///< one per input that requires grad
  std::vector<NodeReport> nodes;  ///< filled when the check fails: the custom nodes that are wrong
  explicit operator bool() const { return ok; }  ///< ok
  std::string to_string() const;  ///< a readable report: per input, the worst element with both values
};

/// Compares fn's backward with central differences at `inputs` (float64 recommended); on failure,
/// names the wrong custom nodes.
GradcheckReport gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

/// Checks second derivatives: gradcheck of x -> grad(fn(x), x, v, create_graph=true) for a
/// fixed random v, so every backward rule's own backward is verified too.
GradcheckReport gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

// ---------------------------------------------------------------- activations

/// Where and how strictly verify_activation checks.
struct ActivationCheckOptions {
  std::vector<double> kinks = {};  ///< where f is not differentiable: finite differences are skipped there
  std::vector<double> extra_points = {};  ///< more points to check besides the standard grid
  double atol = 1e-5;      ///< first derivative vs finite differences: absolute tolerance
  double rtol = 1e-3;      ///< first derivative vs finite differences: relative tolerance
  double atol2 = 1e-4;     ///< second derivative: absolute tolerance
  double rtol2 = 1e-3;     ///< second derivative: relative tolerance
  double f32_rtol = 1e-4;  ///< float32 vs float64: relative tolerance
  double f32_atol = 1e-5;  ///< float32 vs float64: absolute tolerance
  bool second_order = true;  ///< check the second derivative too
};

/// verify_activation's findings at one point.
struct ActivationPoint {
  double x;  ///< the point
  double y;            ///< f(x) in float64
  double dy;           ///< f'(x) from autograd, float64
  double dy_numeric;   ///< f'(x) from central differences of f
  double d2y;          ///< f''(x) from autograd (double backward)
  double d2y_numeric;  ///< f''(x) from central differences of f'
  double y32;          ///< f(x) in float32
  double dy32;         ///< f'(x) in float32
  bool at_kink = false;  ///< x is one of the kinks (finite differences skipped)
  std::vector<std::string> problems;  ///< what failed here, in words
};

/// What verify_activation returns: one row per point.
struct ActivationReport {
  std::string name;  ///< the activation's name
  bool ok = true;  ///< every element within tolerance
  std::vector<ActivationPoint> points;  ///< the grid, in order
  std::string to_string() const;  ///< a table, one row per point, problems spelled out
};

/// The contract test for a new activation: on a grid with kinks and extremes (0, +-1e-8,
/// +-0.5, +-1, +-2.5, +-20, +-88, +-710, and extra_points), first derivatives against central
/// differences of f, second derivatives against central differences of f' (both in float64),
/// float32 against float64, and every value and derivative finite in both dtypes.
ActivationReport verify_activation(const std::string& name, const std::function<Tensor(const Tensor&)>& f,
                                   ActivationCheckOptions options = {});

}  // namespace chainrule::autograd

// fmt::formatter specialisation (printing with fmt), hidden from the API reference.
/// \cond
template <>
struct fmt::formatter<chainrule::autograd::GradcheckReport> : fmt::formatter<std::string_view> {
  auto format(const chainrule::autograd::GradcheckReport& r, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(r.to_string(), ctx);
  }
};
/// \endcond
