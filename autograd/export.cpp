#include "export.hpp"

#include "engine.hpp"

#include <cmath>
#include <map>
#include <set>

namespace chainrule::autograd {

namespace {

std::map<const TensorImpl*, std::string> name_map(const TensorNames& names) {
  std::map<const TensorImpl*, std::string> m;
  for (const auto& [t, n] : names) m[t.impl()] = n;
  return m;
}

// Nodes reachable from root, children before parents (iterative post-order).
std::vector<Node*> post_order(Node* root) {
  std::vector<Node*> order;
  std::set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack;
  if (root) {
    stack.push_back({root, 0});
    seen.insert(root);
  }
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (i < n->next.size()) {
      Node* c = n->next[i++].node.get();
      if (c && seen.insert(c).second) stack.push_back({c, 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  return order;
}

std::string summary(const Tensor& t) {
  const auto v = t.detach().to_vector<double>();
  if (v.size() <= 4) return fmt::format("[{:.4g}]", fmt::join(v, ", "));
  double lo = INFINITY, hi = -INFINITY, mean = 0;
  for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x), mean += x / static_cast<double>(v.size());
  return fmt::format("mean {:.4g}, min {:.4g}, max {:.4g}", mean, lo, hi);
}

// A node's op and the activation fused into it, if any: "matmul" and "sigmoid" for the node
// sigmoid(matmul(x, w)) makes ("matmul_sigmoid"), as the user wrote them. A square joined into
// a - b's node, and its sum ("sub_pow_sum", pow of a temporary): "sub", squared and summed. An
// op with a constant joined after it (join_constant: "mul_add" of y * a + b): "mul", then "add".
struct OpParts {
  std::string_view op;
  const char* activation = nullptr;
  bool squared = false, summed = false;
  std::string_view joined = {};  // the op whose constant is the node's last input, if any
};
OpParts op_parts(const Node& n) {
  const std::string_view name = n.name;
  for (std::string_view joined : {"add_pow", "sub_pow", "add_pow_sum", "sub_pow_sum"})
    if (name == joined) return {name.substr(0, 3), nullptr, true, name.ends_with("_sum")};
  OpParts parts{name};
  if (const LinearActivation a = fused_activation(n); a != LinearActivation::none) {
    const std::string suffix = fmt::format("_{}", activation_name(a));
    if (name.ends_with(suffix)) {
      parts.op = name.substr(0, name.size() - suffix.size());
      parts.activation = activation_name(a);
    }
  }
  const size_t cut = parts.op.rfind('_');  // join_constant named it "<op>_<joined op>"
  if (!n.is_accumulator && static_cast<const FunctionNode&>(n).joined_inputs && cut != std::string_view::npos) {
    parts.joined = parts.op.substr(cut + 1);
    parts.op = parts.op.substr(0, cut);
  }
  return parts;
}

}  // namespace

std::string to_string(const Tensor& expr, const TensorNames& names) {
  if (!expr.defined()) fail("to_string: the tensor is undefined");
  const auto named = name_map(names);
  if (!expr.grad_fn()) {
    auto it = named.find(expr.impl());
    return it != named.end() ? it->second : fmt::format("tensor{}", expr.shape());
  }
  const std::vector<Node*> order = post_order(expr.grad_fn().get());
  std::map<const Node*, int> uses;
  for (Node* n : order)
    for (const auto& e : n->next)
      if (e.node) ++uses[e.node.get()];
  std::map<const Node*, std::string> text;
  std::map<const TensorImpl*, std::string> leaf_names;
  std::vector<std::string> definitions;
  int unnamed = 0, shared = 0;
  for (Node* n : order) {
    if (const AccumulateGrad* acc = as_accumulator(n)) {  // a leaf (null leaf: it let go of it)
      auto it = acc->leaf ? named.find(acc->leaf) : named.end();
      text[n] = it != named.end() ? it->second : fmt::format("t{}", unnamed++);
      continue;
    }
    auto* f = static_cast<FunctionNode*>(n);
    std::vector<std::string> args;
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      if (e.node) {
        args.push_back(text[e.node.get()]);
      } else if (auto it = named.find(e.input); it != named.end()) {
        args.push_back(it->second);
      } else if (!std::isnan(e.constant)) {
        args.push_back(fmt::format("{:g}", e.constant));
      } else {
        args.push_back(fmt::format("const{}", f->input_shape(i)));
      }
    }
    const OpParts parts = op_parts(*n);
    std::vector<std::string> joined(args.end() - f->joined_inputs, args.end());  // join_constant's
    args.resize(args.size() - joined.size());
    if (!std::isnan(f->attribute) && !parts.squared) args.push_back(fmt::format("{:g}", f->attribute));
    std::string call = fmt::format("{}({})", parts.op, fmt::join(args, ", "));
    if (!joined.empty()) call = fmt::format("{}({}, {})", parts.joined, call, fmt::join(joined, ", "));
    if (parts.activation) call = fmt::format("{}({})", parts.activation, call);
    if (parts.squared) call = fmt::format("pow({}, {:g})", call, f->attribute);
    if (parts.summed) call = fmt::format("sum({})", call);
    if (uses[n] > 1 && n != expr.grad_fn().get()) {  // shared: define once, refer by name
      const std::string name = fmt::format("h{}", ++shared);
      definitions.push_back(fmt::format("{} = {}", name, call));
      call = name;
    }
    text[n] = call;
  }
  definitions.push_back(text[expr.grad_fn().get()]);
  return fmt::format("{}", fmt::join(definitions, "\n"));
}

namespace {
// A user's text inside a DOT string: a quote ended the label early and made the file invalid.
std::string dot_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

std::string to_dot(const Tensor& expr, const DotOptions& options) {
  if (!expr.defined()) fail("to_dot: the tensor is undefined");
  auto named = name_map(options.names);
  for (auto& [impl, name] : named) name = dot_escape(name);
  std::map<const TensorImpl*, Tensor> numeric;
  for (const auto& [leaf, g] : options.numeric_gradients) numeric[leaf.impl()] = g;
  std::string out = "digraph chainrule {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  const std::vector<Node*> order = post_order(expr.grad_fn().get());
  std::map<const Node*, int> id;
  for (Node* n : order) id[n] = static_cast<int>(id.size());
  // where a node's output leaves it: its activation's ellipse when one is fused into it, else
  // that of the op joined after it with a constant
  const auto dot_id = [&id](const Node* n) {
    const OpParts parts = op_parts(*n);
    return fmt::format("n{}{}", id[n], parts.activation ? "a" : parts.joined.empty() ? "" : "j");
  };
  int constants = 0;
  for (Node* n : order) {
    if (const AccumulateGrad* acc = as_accumulator(n)) {  // a leaf (null leaf: it let go of it)
      if (!acc->leaf) {
        out += fmt::format("  n{} [shape=box, label=\"leaf (let go)\\n{} {}\"];\n", id[n], n->shape, n->dtype);
        continue;
      }
      const Tensor t(Ref<TensorImpl>::share(acc->leaf));
      auto it = named.find(acc->leaf);
      std::string label = fmt::format("{}\\n{} {}\\nvalue {}", it != named.end() ? it->second : "leaf", t.shape(),
                                      t.dtype(), summary(t));
      if (t.grad().defined()) label += fmt::format("\\ngrad {}", summary(t.grad()));
      if (auto g = numeric.find(acc->leaf); g != numeric.end())
        label += fmt::format("\\nfinite diff {}", summary(g->second));
      out += fmt::format("  n{} [shape=box, style=filled, fillcolor=\"#dbe9f6\", label=\"{}\"];\n", id[n], label);
      continue;
    }
    auto* f = static_cast<FunctionNode*>(n);
    const OpParts parts = op_parts(*n);
    // (a joined square shows its whole name, "sub_pow_sum", and pow's exponent below)
    std::string label = fmt::format("{}\\n{} {}", dot_escape(parts.squared ? n->name : parts.op), n->shape, n->dtype);
    if (!std::isnan(f->attribute)) label += fmt::format("\\n({:g})", f->attribute);
    out += fmt::format("  n{} [shape=ellipse, label=\"{}\"];\n", id[n], label);
    const size_t own = n->next.size() - f->joined_inputs;
    if (!parts.joined.empty())  // the op joined with a constant: an ellipse of its own above the op's
      out += fmt::format("  n{}j [shape=ellipse, label=\"{}\\n{} {}\"];\n  n{} -> n{}j;\n", id[n], parts.joined,
                         n->shape, n->dtype, id[n], id[n]);
    if (parts.activation)  // the activation fused into the node: an ellipse of its own above the ops'
      out += fmt::format("  n{}a [shape=ellipse, label=\"{}\\n{} {}\"];\n  n{}{} -> n{}a;\n", id[n], parts.activation,
                         n->shape, n->dtype, id[n], parts.joined.empty() ? "" : "j", id[n]);
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      if (e.node) {
        out += fmt::format("  {} -> n{};\n", dot_id(e.node.get()), id[n]);
        continue;
      }
      std::string clabel;
      if (auto it = named.find(e.input); it != named.end())
        clabel = fmt::format("{}\\n{}", it->second, f->input_shape(i));
      else if (!std::isnan(e.constant))
        clabel = fmt::format("{:g}", e.constant);
      else
        clabel = fmt::format("const\\n{}", f->input_shape(i));
      out += fmt::format("  c{} [shape=plaintext, label=\"{}\"];\n  c{} -> n{}{};\n", constants, clabel, constants,
                         id[n], i < own ? "" : "j");  // a joined constant goes into its op's ellipse
      ++constants;
    }
  }
  if (!order.empty())
    out += fmt::format("  out [shape=doubleoctagon, label=\"output\\n{} {}\\nvalue {}\"];\n  {} -> out;\n",
                       expr.shape(), expr.dtype(), summary(expr), dot_id(order.back()));
  return out + "}\n";
}

std::string to_dot(const TensorFn& fn, const std::vector<Tensor>& inputs, TensorNames names) {
  std::vector<Tensor> xs;
  for (const auto& x : inputs) {
    Tensor c = x.detach().clone();
    if (x.requires_grad()) c.requires_grad_();
    xs.push_back(c);
  }
  // keep the caller's names on the copies
  for (auto& [t, n] : names)
    for (size_t i = 0; i < inputs.size(); ++i)
      if (t.same(inputs[i])) t = xs[i];
  const Tensor y = fn(xs);
  sum(y).backward({}, /*retain_graph=*/true);
  DotOptions options{names, {}};
  const double eps = 1e-6;
  for (auto& x : xs) {
    if (!x.requires_grad() || x.dtype() != Dtype::float64) continue;
    Tensor numeric = zeros_like(x);
    double* p = x.data<double>();
    double* g = numeric.data<double>();
    for (int64_t k = 0; k < x.numel(); ++k) {
      NoGradGuard no_grad;
      const double saved = p[k];
      p[k] = saved + eps;
      const double plus = sum(fn(xs)).item<double>();
      p[k] = saved - eps;
      const double minus = sum(fn(xs)).item<double>();
      p[k] = saved;
      g[k] = (plus - minus) / (2 * eps);
    }
    options.numeric_gradients.emplace_back(x, numeric);
  }
  return to_dot(y, options);
}

}  // namespace chainrule::autograd
