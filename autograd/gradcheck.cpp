#include "gradcheck.hpp"

#include "engine.hpp"
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

GradcheckReport gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  GradcheckReport report;
  report.options = options;
  std::vector<Tensor> xs = working_copies(inputs);
  std::vector<Tensor> checked;
  for (const auto& x : xs)
    if (x.requires_grad()) checked.push_back(x);
  if (checked.empty()) fail("gradcheck: no input requires grad, so there is nothing to check");

  const Tensor y = fn(xs);
  const int64_t ny = y.numel();
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
        r.max_abs_error = std::max(r.max_abs_error, err);
        if (std::abs(numeric) > 0) r.max_rel_error = std::max(r.max_rel_error, err / std::abs(numeric));
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
  return out;
}

}  // namespace chainrule::autograd
