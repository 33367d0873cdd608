/// \file
/// The gradient doctor: tells a user whether the gradients they derived by hand are right,
/// and if not, *how* they are wrong.
///
/// Given a scalar loss built as a chainrule expression, its parameters and the user's hand
/// gradients (one per parameter, in the user's sign convention), it compares each with
/// autodiff and, on a mismatch, tests hypotheses by recomputing the gradients under each one
/// and checking which reproduces the user's numbers:
///   - scaled by a constant: sign flipped (the ascent direction), a factor 2 from a squared
///     error, a missing 1/N from a mean, ...;
///   - transposed;
///   - an activation's derivative evaluated at its output (sigma'(sigma(z)), the seed's bug),
///     its formula applied to the pre-activation (1 - z^2 for tanh), or its factor missing —
///     at one node or at every node of that op;
///   - any structural hypothesis combined with a scale or sign flip.
/// The report names the node (op, its place in forward order, output shape) and the bug in
/// plain words; when nothing fits it says so and shows where the gradients differ most.
#pragma once

#include "tensor.hpp"

#include <string>

namespace chainrule::autograd {

/// Tolerances and names for gradient_doctor.
struct DoctorOptions {
  double rtol = 1e-6;  ///< relative to the largest hand-gradient element
  double atol = 1e-10;  ///< absolute tolerance
  std::vector<std::string> names = {};  ///< parameter names for the report (default "param 0", ...)
};

/// gradient_doctor's verdict on one parameter's hand gradient.
struct ParamDiagnosis {
  std::string name;  ///< the parameter's name (DoctorOptions::names, or "param i")
  Shape shape;  ///< its shape
  bool match = false;      ///< the hand gradient equals autodiff's
  bool diagnosed = false;  ///< a hypothesis reproduces the hand gradient
  double max_abs_error = 0;  ///< hand vs autodiff
  double max_rel_error = 0;  ///< hand vs autodiff, relative to the largest hand-gradient element
  double scale = 1;        ///< hand = scale * (gradient under the hypothesis)
  bool transposed = false;  ///< the hand gradient is the transpose of the hypothesis's
  std::string bug;         ///< the structural hypothesis, in words ("" for none)
  std::string node;        ///< where it applies ("sigmoid #2 of 2 in forward order, output [4, 1] float64")
  std::string verdict;     ///< one plain sentence
  int64_t worst_element = -1;  ///< where hand and autodiff differ most (row-major)
  double yours = 0;     ///< the hand gradient at worst_element
  double autodiff = 0;  ///< autodiff's gradient at worst_element
};

/// What gradient_doctor returns: one diagnosis per parameter.
struct DoctorReport {
  std::vector<ParamDiagnosis> params;  ///< in the order of the parameters passed
  bool all_match() const;  ///< every hand gradient equals autodiff's
  std::string to_string() const;  ///< the verdicts, one paragraph per parameter
};

/// Compares hand_gradients (one per parameter of `loss`) with autodiff and, where they differ,
/// names the bug that reproduces them (see the file's description).
DoctorReport gradient_doctor(const Tensor& loss, const std::vector<Tensor>& params,
                             const std::vector<Tensor>& hand_gradients, DoctorOptions options = {});

}  // namespace chainrule::autograd

// fmt::formatter specialisation (printing with fmt), hidden from the API reference.
/// \cond
template <>
struct fmt::formatter<chainrule::autograd::DoctorReport> : fmt::formatter<std::string_view> {
  auto format(const chainrule::autograd::DoctorReport& r, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(r.to_string(), ctx);
  }
};
/// \endcond
