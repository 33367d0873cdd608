#include "doctor.hpp"

#include "engine.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

namespace chainrule::autograd {

namespace {

// An alternative local derivative for one op: what a hand derivation commonly gets wrong.
// `local(x, y)` returns the wrong d(out)/d(in) from the node's input x (when the node saved
// it) and output y.
struct Mistake {
  const char* op;
  const char* bug;
  Tensor (*local)(const Tensor& x, const Tensor& y);
};

Tensor logit(const Tensor& y) { return log(y) - log(1.0 - y); }
Tensor atanh_(const Tensor& y) { return (log(1.0 + y) - log(1.0 - y)) * 0.5; }

const Mistake kMistakes[] = {
    {"sigmoid", "the derivative of sigmoid is evaluated at its output: sigma'(sigma(z)) instead of sigma'(z) = y(1 - y)",
     [](const Tensor&, const Tensor& y) { const Tensor s = sigmoid(y); return s * (1.0 - s); }},
    {"sigmoid", "the formula y(1 - y) is applied to the pre-activation z instead of the output y = sigma(z)",
     [](const Tensor&, const Tensor& y) { const Tensor z = logit(y); return z * (1.0 - z); }},
    {"sigmoid", "the derivative factor of sigmoid is missing", [](const Tensor&, const Tensor& y) { return ones_like(y); }},
    {"tanh", "the derivative of tanh is evaluated at its output: tanh'(tanh(z)) instead of 1 - tanh(z)^2",
     [](const Tensor&, const Tensor& y) { const Tensor t = tanh(y); return 1.0 - t * t; }},
    {"tanh", "1 - z^2 is computed from the pre-activation z instead of 1 - y^2 from the output y = tanh(z)",
     [](const Tensor&, const Tensor& y) { const Tensor z = atanh_(y); return 1.0 - z * z; }},
    {"tanh", "the derivative factor of tanh is missing", [](const Tensor&, const Tensor& y) { return ones_like(y); }},
    {"softplus", "the derivative of softplus is evaluated at its output: sigmoid(softplus(z)) instead of sigmoid(z)",
     [](const Tensor&, const Tensor& y) { return sigmoid(y); }},
    {"softplus", "the derivative factor of softplus is missing", [](const Tensor&, const Tensor& y) { return ones_like(y); }},
    {"exp", "the derivative of exp is evaluated at its output: exp(exp(z)) instead of exp(z)",
     [](const Tensor&, const Tensor& y) { return exp(y); }},
    {"exp", "the derivative factor of exp is missing", [](const Tensor&, const Tensor& y) { return ones_like(y); }},
    {"relu", "the derivative factor of relu is missing (the gradient also flows where z < 0)",
     [](const Tensor&, const Tensor& y) { return ones_like(y); }},
};

struct Hypothesis {
  const Mistake* mistake;
  std::vector<FunctionNode*> nodes;  // where it applies
  std::string where;
};

// Every node reachable from the loss, in forward (creation) order.
std::vector<FunctionNode*> graph_nodes(const Tensor& loss) {
  std::vector<FunctionNode*> out;
  std::vector<Node*> stack = {loss.grad_fn().get()};
  std::vector<Node*> seen;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!n || std::find(seen.begin(), seen.end(), n) != seen.end()) continue;
    seen.push_back(n);
    if (auto* f = dynamic_cast<FunctionNode*>(n)) out.push_back(f);
    for (const auto& e : n->next) stack.push_back(e.node.get());
  }
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->sequence < b->sequence; });
  return out;
}

// The op whose derivative a node applies to its output: its own, or the activation fused into
// it ("linear_sigmoid", "matmul_sigmoid" are a sigmoid's nodes too: nn::Sequential makes the
// first, sigmoid of a temporary the second).
std::string_view activation_op(const FunctionNode& n) {
  const LinearActivation a = fused_activation(n);
  return a == LinearActivation::none ? std::string_view(n.name) : activation_name(a);
}

std::vector<Hypothesis> hypotheses(const std::vector<FunctionNode*>& nodes) {
  std::vector<Hypothesis> singles, everywhere;
  for (const Mistake& m : kMistakes) {
    std::vector<FunctionNode*> of_op;
    for (auto* n : nodes)
      if (activation_op(*n) == m.op && n->saves_result()) of_op.push_back(n);
    for (size_t k = 0; k < of_op.size(); ++k)
      singles.push_back({&m, {of_op[k]},
                         fmt::format("at {} #{} of {} in forward order ({}output {} {})", m.op, k + 1, of_op.size(),
                                     of_op[k]->name == std::string_view(m.op) ? ""
                                                                              : fmt::format("in {}, ", of_op[k]->name),
                                     of_op[k]->shape, of_op[k]->dtype)});
    if (of_op.size() > 1) {
      std::vector<std::string> shapes;
      for (auto* n : of_op) shapes.push_back(fmt::format("{}", n->shape));
      everywhere.push_back({&m, of_op, fmt::format("at every {} node ({} nodes, outputs {})", m.op, of_op.size(),
                                                   fmt::join(shapes, ", "))});
    }
  }
  singles.insert(singles.end(), everywhere.begin(), everywhere.end());
  return singles;
}

std::vector<Tensor> gradients_under(const Tensor& loss, const std::vector<Tensor>& params, const Hypothesis* h) {
  std::optional<BackwardOverride> guard;
  if (h)
    guard.emplace([h](Node& n, const Tensor& g) -> std::optional<Grads> {
      if (std::find(h->nodes.begin(), h->nodes.end(), &n) == h->nodes.end()) return std::nullopt;
      auto& f = static_cast<FunctionNode&>(n);
      if (fused_activation(f) != LinearActivation::none)  // the wrong derivative, then the op's own rule
        return f.fn(g * h->mistake->local(Tensor(), f.saved_result()), BackwardContext(f, true, false));
      const Tensor x = f.saved.empty() ? Tensor() : f.saved[0].tensor;
      return Grads{g * h->mistake->local(x, f.saved_result())};
    });
  auto gs = grad({loss}, params, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
  for (size_t i = 0; i < gs.size(); ++i)
    if (!gs[i].defined()) gs[i] = zeros_like(params[i]);
  return gs;
}

// The simple number (an integer or one over an integer, not 0) within 1e-9 of c, relative, if any.
std::optional<double> simple_near(double c) {
  for (double nice : {1.0, -1.0, 2.0, -2.0, 0.5, -0.5})
    if (std::abs(c - nice) < 1e-9 * std::abs(nice)) return nice;
  const double r = std::round(c);
  if (r != 0 && std::abs(c - r) < 1e-9 * std::abs(r)) return r;
  const double inv = std::round(1 / c);
  if (inv != 0 && std::abs(1 / c - inv) < 1e-9 * std::abs(inv)) return 1 / inv;
  return std::nullopt;
}

// The best c with hand ~ c * a (least squares), snapped to a simple value when one is that close.
double fit_scale(const std::vector<double>& hand, const std::vector<double>& a) {
  double ha = 0, aa = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ha += hand[i] * a[i];
    aa += a[i] * a[i];
  }
  if (aa == 0) return 1;
  const double c = ha / aa;
  return simple_near(c).value_or(c);
}

// A scale fit_scale snapped: 1, 2, 4, 1/2, 1/4, ... or their negatives.
bool simple_scale(double c) { return simple_near(c).has_value(); }

bool fits(const std::vector<double>& hand, const std::vector<double>& a, double c, const DoctorOptions& o) {
  double scale = 0;
  for (double h : hand) scale = std::max(scale, std::abs(h));
  for (size_t i = 0; i < hand.size(); ++i)
    if (!(std::abs(hand[i] - c * a[i]) <= o.atol + o.rtol * scale)) return false;
  return true;
}

std::string describe_scale(double c) {
  if (c == 1) return "";
  std::string s = c < 0 ? "the sign flipped (it is the ascent direction, -dL/dw)" : "";
  const double m = std::abs(c);
  if (m == 1) return s;
  if (!s.empty()) s += " and ";
  const double inv = 1 / m;
  if (m == std::round(m))
    s += fmt::format("{:g} times too large (a missing 1/{:g}, as from a mean over {:g} items)", m, m, m);
  else if (inv == std::round(inv))
    s += fmt::format("{:g} times too small (a missing factor {:g}{})", inv, inv,
                     inv == 2 ? ", as from d(e^2)/de = 2e" : "");
  else
    s += fmt::format("scaled by {:.6g}", m);
  return s;
}

}  // namespace

DoctorReport gradient_doctor(const Tensor& loss, const std::vector<Tensor>& params, const std::vector<Tensor>& hand,
                             DoctorOptions options) {
  if (!loss.requires_grad() || loss.numel() != 1)
    fail("gradient_doctor: the loss must be a one-element tensor that requires grad, got {}", describe(loss));
  if (params.size() != hand.size())
    fail("gradient_doctor: {} parameters but {} hand gradients", params.size(), hand.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (!hand[i].defined()) fail("gradient_doctor: hand gradient {} is undefined", i);
    const bool t_shape = params[i].dim() == 2 && hand[i].dim() == 2 && hand[i].size(0) == params[i].size(1) &&
                         hand[i].size(1) == params[i].size(0);
    if (hand[i].shape() != params[i].shape() && !t_shape)
      fail("gradient_doctor: hand gradient {} is {} but parameter {} is {}", i, describe(hand[i]), i,
           describe(params[i]));
  }

  const std::vector<Tensor> truth = gradients_under(loss, params, nullptr);
  const auto hyps = hypotheses(graph_nodes(loss));
  std::vector<std::vector<Tensor>> under(hyps.size());  // computed on first use

  DoctorReport report;
  for (size_t i = 0; i < params.size(); ++i) {
    ParamDiagnosis d;
    d.name = i < options.names.size() ? options.names[i] : fmt::format("param {}", i);
    d.shape = params[i].shape();
    const auto t = truth[i].to_vector<double>();
    const bool transposed_shape = hand[i].shape() != params[i].shape();
    const auto h = (transposed_shape ? hand[i].t() : hand[i]).to_vector<double>();
    for (size_t k = 0; k < t.size(); ++k) {
      const double err = std::abs(h[k] - t[k]);
      if (d.worst_element < 0 || larger_error(err, d.max_abs_error)) {
        d.max_abs_error = err;
        d.worst_element = static_cast<int64_t>(k);
        d.yours = h[k];
        d.autodiff = t[k];
      }
      if (t[k] != 0 && larger_error(err / std::abs(t[k]), d.max_rel_error)) d.max_rel_error = err / std::abs(t[k]);
    }
    auto try_fit = [&](const std::vector<double>& hv, const std::vector<double>& a) -> std::optional<double> {
      const double c = fit_scale(hv, a);
      if (fits(hv, a, c, options)) return c;
      return std::nullopt;
    };
    if (!transposed_shape && fits(h, t, 1.0, options)) {
      d.match = true;
      d.verdict = fmt::format("matches autodiff (max abs error {:.2g}, max rel error {:.2g})", d.max_abs_error,
                              d.max_rel_error);
      report.params.push_back(d);
      continue;
    }
    auto conclude = [&](double c, bool transposed, const Hypothesis* hyp) {
      d.diagnosed = true;
      d.scale = c;
      d.transposed = transposed;
      std::vector<std::string> parts;
      if (transposed) parts.push_back("transposed");
      if (c != 1) parts.push_back(describe_scale(c));
      if (hyp) {
        d.bug = hyp->mistake->bug;
        d.node = hyp->where;
        parts.push_back(fmt::format("{} {}", d.bug, d.node));
      }
      d.verdict = fmt::format("MISMATCH, explained: your gradient is the true gradient with {}", fmt::join(parts, "; and "));
    };
    // 1. a scale or sign flip of the true gradient, possibly transposed. A scale that is no
    // simple number (0.937, not -1, 2 or 1/4) is kept for last: a structural hypothesis that
    // gives the numbers with a simple one says more (a one-element gradient is always some
    // scale of the true one).
    std::optional<std::pair<double, bool>> odd;  // that scale, and whether transposed
    auto scaled = [&](double c, bool transposed) {
      if (simple_scale(c)) conclude(c, transposed, nullptr);
      else odd = {c, transposed};
    };
    if (auto c = try_fit(h, t); c && !transposed_shape) {
      scaled(*c, false);
    } else if (params[i].dim() == 2 && params[i].size(0) == params[i].size(1) && !transposed_shape) {
      if (auto ct = try_fit(hand[i].t().to_vector<double>(), t)) scaled(*ct, true);
    } else if (transposed_shape) {
      if (auto ct = try_fit(h, t)) scaled(*ct, true);
    }
    // 2. a structural mistake at one node or every node of an op, with any scale (a simple one
    // when step 1 found an odd scale)
    for (size_t k = 0; k < hyps.size() && !d.diagnosed; ++k) {
      if (under[k].empty()) under[k] = gradients_under(loss, params, &hyps[k]);
      const auto a = under[k][i].to_vector<double>();
      if (fits(a, t, 1.0, options)) continue;  // this hypothesis does not touch this parameter
      if (auto c = try_fit(h, a); c && (!odd || simple_scale(*c))) conclude(*c, transposed_shape, &hyps[k]);
    }
    if (!d.diagnosed && odd) conclude(odd->first, odd->second, nullptr);
    if (!d.diagnosed) {
      d.verdict = fmt::format(
          "MISMATCH, not explained by any hypothesis (scale, sign, transpose, activation-derivative mistakes); the "
          "largest difference is at element {}: yours {:.9g} vs autodiff {:.9g} (max abs error {:.3g})",
          d.worst_element, d.yours, d.autodiff, d.max_abs_error);
      if (!std::isfinite(d.yours))
        d.verdict += fmt::format("; your gradient is {} there: look for a division by zero or an overflow in the "
                                 "formula",
                                 d.yours);
      else if (!std::isfinite(d.autodiff))
        d.verdict += fmt::format("; autodiff's gradient is {} there: the loss is not differentiable at this point "
                                 "(sqrt or log at 0, say) or overflows",
                                 d.autodiff);
    }
    report.params.push_back(d);
  }
  return report;
}

bool DoctorReport::all_match() const {
  return std::all_of(params.begin(), params.end(), [](const ParamDiagnosis& d) { return d.match; });
}

std::string DoctorReport::to_string() const {
  std::string out = all_match() ? "gradient doctor: every hand gradient matches autodiff"
                                : "gradient doctor: some hand gradients are wrong";
  for (const auto& d : params) out += fmt::format("\n  {} {}: {}", d.name, d.shape, d.verdict);
  return out;
}

}  // namespace chainrule::autograd
