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

struct GradcheckReport;

// A custom-function call (autograd::Function, make_unary) whose own backward disagrees with
// finite differences of its own forward: where a failed gradcheck's error comes from.
struct NodeReport {
  std::string name;        // the function's name
  size_t call = 0;         // its place among custom-function calls, in forward order (1-based)
  std::vector<Shape> input_shapes;
  std::shared_ptr<GradcheckReport> check;
};

struct GradcheckReport {
  bool ok = true;
  GradcheckOptions options;
  std::vector<InputReport> inputs;
  std::vector<NodeReport> nodes;  // filled when the check fails: the custom nodes that are wrong
  explicit operator bool() const { return ok; }
  std::string to_string() const;
};

GradcheckReport gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

// Checks second derivatives: gradcheck of x -> grad(fn(x), x, v, create_graph=true) for a
// fixed random v, so every backward rule's own backward is verified too.
GradcheckReport gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

// ---------------------------------------------------------------- activations

struct ActivationCheckOptions {
  std::vector<double> kinks = {};  // where f is not differentiable: finite differences are skipped there
  std::vector<double> extra_points = {};
  double atol = 1e-5, rtol = 1e-3;        // first derivative vs finite differences
  double atol2 = 1e-4, rtol2 = 1e-3;      // second derivative
  double f32_rtol = 1e-4, f32_atol = 1e-5;  // float32 vs float64
  bool second_order = true;
};

struct ActivationPoint {
  double x;
  double y, dy, dy_numeric, d2y, d2y_numeric;  // float64
  double y32, dy32;                            // float32
  bool at_kink = false;
  std::vector<std::string> problems;
};

struct ActivationReport {
  std::string name;
  bool ok = true;
  std::vector<ActivationPoint> points;
  std::string to_string() const;  // a table, one row per point, problems spelled out
};

// The contract test for a new activation: on a grid with kinks and extremes (0, +-1e-8,
// +-0.5, +-1, +-2.5, +-20, +-88, +-710, and extra_points), first derivatives against central
// differences of f, second derivatives against central differences of f' (both in float64),
// float32 against float64, and every value and derivative finite in both dtypes.
ActivationReport verify_activation(const std::string& name, const std::function<Tensor(const Tensor&)>& f,
                                   ActivationCheckOptions options = {});

}  // namespace chainrule::autograd

template <>
struct fmt::formatter<chainrule::autograd::GradcheckReport> : fmt::formatter<std::string_view> {
  auto format(const chainrule::autograd::GradcheckReport& r, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(r.to_string(), ctx);
  }
};
