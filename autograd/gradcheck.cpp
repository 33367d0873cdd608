#include "gradcheck.hpp"

#include "engine.hpp"
#include "function.hpp"
#include "random.hpp"

#include <cmath>

namespace chainrule::autograd {

namespace {

std::vector<Tensor> working_copies(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> xs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (t.requires_grad() && t.dtype() != Dtype::float64)
      fail("gradcheck: input {} is {}; finite differences need float64, convert it with .to(cr::float64)", i,
           describe(t));
    Tensor copy = t.detach().clone();
    if (t.requires_grad()) copy.requires_grad_();
    xs.push_back(copy);
  }
  return xs;
}

std::vector<double> evaluate(const TensorFn& fn, const std::vector<Tensor>& xs) {
  NoGradGuard no_grad;
  return fn(xs).to_vector<double>();
}

}  // namespace

namespace {
GradcheckReport check(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options);

// Re-runs fn recording its custom-function calls, and checks each call on its own.
std::vector<NodeReport> localize(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  std::vector<RecordedCall> calls;
  {
    CallRecorder recorder;  // only while fn runs: the per-node checks below must not record
    const std::vector<Tensor> xs = working_copies(inputs);
    (void)fn(xs);
    calls = std::move(recorder.calls);
  }
  std::vector<NodeReport> bad;
  for (size_t k = 0; k < calls.size(); ++k) {
    const RecordedCall& call = calls[k];
    std::vector<Tensor> xs;
    bool checkable = false;
    for (size_t i = 0; i < call.inputs.size(); ++i) {
      Tensor x = call.inputs[i];
      if (call.requires_grad[i] && x.dtype() == Dtype::float64) {
        x.requires_grad_();
        checkable = true;
      }
      xs.push_back(x);
    }
    if (!checkable) continue;
    const TensorFn node_fn = [&call](const std::vector<Tensor>& v) {
      return apply_function(call.name, call.forward, call.backward, v);
    };
    auto r = std::make_shared<GradcheckReport>(check(node_fn, xs, options));
    if (r->ok) continue;
    NodeReport n{call.name, k + 1, {}, r};
    for (const auto& x : call.inputs) n.input_shapes.push_back(x.defined() ? x.shape() : Shape{});
    bad.push_back(std::move(n));
  }
  return bad;
}
}  // namespace

GradcheckReport gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  // A NaN tolerance made every comparison pass (err - NaN > 0 is false), so a wrong gradient
  // was reported correct; a zero step divides by zero.
  if (!(options.eps > 0 && std::isfinite(options.eps)) || !(options.atol >= 0) || !(options.rtol >= 0))
    fail("gradcheck: need eps > 0 (finite), atol >= 0 and rtol >= 0, got eps={:g}, atol={:g}, rtol={:g}", options.eps,
         options.atol, options.rtol);
  GradcheckReport report = check(fn, inputs, options);
  if (!report.ok) report.nodes = localize(fn, inputs, options);
  return report;
}

namespace {
GradcheckReport check(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  GradcheckReport report;
  report.options = options;
  std::vector<Tensor> xs = working_copies(inputs);
  std::vector<Tensor> checked;
  for (const auto& x : xs)
    if (x.requires_grad()) checked.push_back(x);
  if (checked.empty()) fail("gradcheck: no input requires grad, so there is nothing to check");

  const Tensor y = fn(xs);
  if (!y.defined()) fail("gradcheck: the function returned an undefined tensor");
  const int64_t ny = y.numel();
  // Finite differences of a function that changes between calls measure its noise, reported
  // as a wrong gradient of any size: refuse it with the reason.
  {
    const auto first = y.to_vector<double>(), again = evaluate(fn, xs);
    for (size_t j = 0; j < first.size() && j < again.size(); ++j)
      if (!(first[j] == again[j] || (std::isnan(first[j]) && std::isnan(again[j])) ||
            std::abs(first[j] - again[j]) <= 1e-12 * std::max(std::abs(first[j]), std::abs(again[j]))))
        fail("gradcheck: the function is not deterministic: output element {} was {} and then {} for the same inputs, "
             "so finite differences would measure its randomness; give its random ops (dropout, rand) a Generator "
             "made inside the function, so that every call draws the same values",
             j, first[j], again[j]);
  }
  // analytic[c][j * nx + k] = d y_j / d x_k for checked input c
  std::vector<std::vector<double>> analytic(checked.size());
  for (size_t c = 0; c < checked.size(); ++c) analytic[c].assign(static_cast<size_t>(ny * checked[c].numel()), 0.0);
  if (y.requires_grad()) {
    for (int64_t j = 0; j < ny; ++j) {
      Tensor seed = zeros(y.shape(), y.dtype());
      dispatch(seed.dtype(), [&]<class T>() { seed.data<T>()[j] = 1; });
      const auto gs = grad({y}, checked, {seed}, /*retain_graph=*/true, false, /*allow_unused=*/true);
      for (size_t c = 0; c < checked.size(); ++c) {
        if (!gs[c].defined()) continue;
        const auto row = gs[c].to_vector<double>();
        std::copy(row.begin(), row.end(), analytic[c].begin() + j * checked[c].numel());
      }
    }
  }

  size_t c = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!xs[i].requires_grad()) continue;
    InputReport r;
    r.input = i;
    r.shape = xs[i].shape();
    double* p = xs[i].data<double>();
    const int64_t nx = xs[i].numel();
    double worst_excess = -INFINITY;
    for (int64_t k = 0; k < nx; ++k) {
      const double saved = p[k];
      p[k] = saved + options.eps;
      const auto plus = evaluate(fn, xs);
      p[k] = saved - options.eps;
      const auto minus = evaluate(fn, xs);
      p[k] = saved;
      for (int64_t j = 0; j < ny; ++j) {
        const double numeric = (plus[j] - minus[j]) / (2 * options.eps);
        const double a = analytic[c][j * nx + k];
        const double err = std::abs(a - numeric);
        const double excess = std::isnan(err) ? INFINITY : err - (options.atol + options.rtol * std::abs(numeric));
        if (larger_error(err, r.max_abs_error)) r.max_abs_error = err;  // (std::max skipped a NaN)
        if (std::abs(numeric) > 0 && larger_error(err / std::abs(numeric), r.max_rel_error))
          r.max_rel_error = err / std::abs(numeric);
        if (excess > worst_excess) {
          worst_excess = excess;
          r.worst_input_element = k;
          r.worst_output_element = j;
          r.analytic = a;
          r.numeric = numeric;
        }
        if (excess > 0) r.ok = false;
      }
    }
    report.ok = report.ok && r.ok;
    report.inputs.push_back(r);
    ++c;
  }
  return report;
}
}  // namespace

GradcheckReport gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  std::vector<size_t> wanted;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) wanted.push_back(i);
  const TensorFn first_order = [&](const std::vector<Tensor>& xs) {
    const Tensor y = fn(xs);
    Generator gen(1234);
    const Tensor v = randn(y.shape(), y.dtype(), &gen);
    std::vector<Tensor> wrt;
    for (size_t i : wanted) wrt.push_back(xs[i]);
    std::vector<Tensor> gs(wrt.size());
    if (y.requires_grad()) gs = grad({y}, wrt, {v}, true, true, true);
    std::vector<Tensor> flat;
    for (size_t k = 0; k < wrt.size(); ++k)
      flat.push_back(gs[k].defined() ? gs[k].reshape({-1}) : zeros({wrt[k].numel()}, wrt[k].dtype()));
    return cat(flat, 0);
  };
  // The numeric pass runs fn under no-grad; the first-order gradient needs grad mode inside.
  const TensorFn with_grad = [&](const std::vector<Tensor>& xs) {
    EnableGradGuard enable;
    return first_order(xs);
  };
  return gradcheck(with_grad, inputs, options);
}

std::string GradcheckReport::to_string() const {
  std::string out = fmt::format("gradcheck {} (eps={:g}, atol={:g}, rtol={:g})", ok ? "passed" : "FAILED", options.eps,
                                options.atol, options.rtol);
  for (const auto& r : inputs) {
    out += fmt::format("\n  input {} {}: {}  max abs err {:.3g}, max rel err {:.3g}", r.input, r.shape,
                       r.ok ? "ok  " : "BAD ", r.max_abs_error, r.max_rel_error);
    if (r.worst_input_element >= 0)
      out += fmt::format("; worst at input element {} / output element {}: analytic {:.9g} vs numeric {:.9g}",
                         r.worst_input_element, r.worst_output_element, r.analytic, r.numeric);
  }
  for (const auto& n : nodes) {
    const InputReport* worst = nullptr;
    for (const auto& r : n.check->inputs)
      if (!r.ok) worst = &r;
    out += fmt::format("\n  the wrong gradient comes from node '{}' (custom function call #{} in forward order, inputs {})",
                       n.name, n.call, fmt::join(n.input_shapes, ", "));
    if (worst)
      out += fmt::format(": for its input {}, analytic {:.9g} vs numeric {:.9g} at element {}", worst->input,
                         worst->analytic, worst->numeric, worst->worst_input_element);
  }
  return out;
}

// ---------------------------------------------------------------- verify_activation

namespace {

struct Derivs {
  double y = NAN, dy = NAN, d2y = NAN;
};

// f, f' and (optionally) f'' at one point by autograd, in the given dtype.
Derivs derivatives(const std::function<Tensor(const Tensor&)>& f, double x, Dtype dtype, bool second) {
  Derivs d;
  Tensor t = tensor(x, dtype).requires_grad_();
  const Tensor y = f(t);
  d.y = y.item<double>();
  if (!y.requires_grad()) return {d.y, 0.0, 0.0};
  const Tensor g = grad({y}, {t}, {}, second, second, true)[0];
  d.dy = g.defined() ? g.item<double>() : 0.0;
  if (second && g.defined() && g.requires_grad()) {
    const Tensor g2 = grad({g}, {t}, {}, false, false, true)[0];
    d.d2y = g2.defined() ? g2.item<double>() : 0.0;
  } else if (second) {
    d.d2y = 0.0;
  }
  return d;
}

double value_at(const std::function<Tensor(const Tensor&)>& f, double x) {
  NoGradGuard no_grad;
  return f(tensor(x, Dtype::float64)).item<double>();
}

bool close(double a, double b, double atol, double rtol) { return std::abs(a - b) <= atol + rtol * std::abs(b); }

}  // namespace

ActivationReport verify_activation(const std::string& name, const std::function<Tensor(const Tensor&)>& f,
                                   ActivationCheckOptions o) {
  ActivationReport report;
  report.name = name;
  std::vector<double> grid = {0, 1e-8, 0.5, 1, 2.5, 20, 88, 710};
  for (double v : std::vector<double>(grid)) if (v != 0) grid.push_back(-v);
  for (double v : o.extra_points) grid.push_back(v);
  for (double k : o.kinks) grid.push_back(k);
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  for (double x : grid) {
    ActivationPoint p{};
    p.x = x;
    const double h = 1e-6 * std::max(1.0, std::abs(x));
    for (double k : o.kinks) p.at_kink = p.at_kink || std::abs(x - k) <= 2 * h;
    const Derivs d64 = derivatives(f, x, Dtype::float64, o.second_order);
    const Derivs d32 = derivatives(f, x, Dtype::float32, false);
    p.y = d64.y;
    p.dy = d64.dy;
    p.d2y = d64.d2y;
    p.y32 = d32.y;
    p.dy32 = d32.dy;
    p.dy_numeric = (value_at(f, x + h) - value_at(f, x - h)) / (2 * h);
    if (o.second_order)
      p.d2y_numeric = (derivatives(f, x + h, Dtype::float64, false).dy - derivatives(f, x - h, Dtype::float64, false).dy) /
                      (2 * h);
    for (auto [v, what] : {std::pair{p.y, "f"}, {p.dy, "f'"}, {p.y32, "f (float32)"}, {p.dy32, "f' (float32)"}})
      if (!std::isfinite(v)) p.problems.push_back(fmt::format("{} is not finite", what));
    if (o.second_order && !std::isfinite(p.d2y)) p.problems.push_back("f'' is not finite");
    if (!p.at_kink) {
      if (!close(p.dy, p.dy_numeric, o.atol, o.rtol))
        p.problems.push_back(fmt::format("f' = {:.9g} but finite differences give {:.9g}", p.dy, p.dy_numeric));
      if (o.second_order && !close(p.d2y, p.d2y_numeric, o.atol2, o.rtol2))
        p.problems.push_back(fmt::format("f'' = {:.9g} but finite differences of f' give {:.9g}", p.d2y, p.d2y_numeric));
    }
    if (std::isfinite(p.y32) && !close(p.y32, p.y, o.f32_atol, o.f32_rtol))
      p.problems.push_back(fmt::format("float32 f = {:.7g} differs from float64 {:.9g}", p.y32, p.y));
    if (std::isfinite(p.dy32) && !close(p.dy32, p.dy, o.f32_atol, o.f32_rtol))
      p.problems.push_back(fmt::format("float32 f' = {:.7g} differs from float64 {:.9g}", p.dy32, p.dy));
    report.ok = report.ok && p.problems.empty();
    report.points.push_back(p);
  }
  return report;
}

std::string ActivationReport::to_string() const {
  std::string out = fmt::format("verify_activation '{}': {}\n", name, ok ? "passed" : "FAILED");
  out += fmt::format("  {:>9} {:>13} {:>13} {:>13} {:>13} {:>13}  {}\n", "x", "f(x)", "f'(x)", "numeric f'", "f''(x)",
                     "numeric f''", "status");
  for (const auto& p : points) {
    std::string status = p.problems.empty() ? (p.at_kink ? "ok (kink: no finite differences)" : "ok")
                                            : fmt::format("{}", fmt::join(p.problems, "; "));
    out += fmt::format("  {:>9.3g} {:>13.6g} {:>13.6g} {:>13.6g} {:>13.6g} {:>13.6g}  {}\n", p.x, p.y, p.dy,
                       p.dy_numeric, p.d2y, p.d2y_numeric, status);
  }
  return out;
}

}  // namespace chainrule::autograd
