#include "module.hpp"

#include "activation.hpp"
#include "functional.hpp"
#include "init.hpp"

#include <cmath>
#include <set>

namespace chainrule::nn {

// ---------------------------------------------------------------- Module

namespace {
// Names join with '.' into checkpoint keys ("layers.0.weight"): an empty name or one with a dot
// would make two different trees print the same keys (PyTorch refuses both too).
// (repr() only on failure: a subclass's repr may read members its constructor sets later.)
void check_name(const std::string& name, const char* op, const Module& owner) {
  if (name.empty() || name.find('.') != std::string::npos)
    fail("{}: {} got the name '{}'; a name must be non-empty and contain no '.'", op, owner.repr(), name);
}
}  // namespace

Tensor& Module::register_parameter(std::string name, Tensor t, bool requires_grad) {
  check_name(name, "register_parameter", *this);
  if (!t.defined()) fail("register_parameter: {} got an undefined tensor for '{}'", repr(), name);
  for (const auto& [n, p] : params_)
    if (n == name) fail("register_parameter: {} already has a parameter named '{}'", repr(), name);
  if (requires_grad && !t.requires_grad()) t.requires_grad_();
  params_.emplace_back(std::move(name), t);
  return params_.back().second;
}

void Module::check_child(const std::string& name, const Module* m) const {
  check_name(name, "register_module", *this);
  if (!m) fail("register_module: {} got a null module for '{}'", repr(), name);
  for (const auto& [n, c] : children_)
    if (n == name) fail("register_module: {} already has a submodule named '{}'", repr(), name);
}

void Module::collect(const std::string& prefix, NamedTensors& out, std::set<const TensorImpl*>& seen) const {
  for (const auto& [name, p] : params_)
    if (seen.insert(p.impl()).second) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out, seen);
}

NamedTensors Module::named_parameters() const {
  // A parameter reached twice (a shared submodule, a tied weight) is listed once, under the
  // first name, as PyTorch's named_parameters does: an optimizer given it twice would update
  // it twice a step (and now refuses), a checkpoint would store it twice.
  NamedTensors out;
  std::set<const TensorImpl*> seen;
  collect("", out, seen);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.set_grad({});
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Dtype dtype) {
  if (!is_floating(dtype)) fail("Module::to: parameters must be floating, got {}", dtype);
  for (auto& p : parameters()) p.set_data(p.detach().to(dtype));
}

namespace {
void print_tree(const Module& m, const std::string& indent, std::string& out) {
  const auto& children = m.named_children();
  if (children.empty()) {
    out += m.repr();
    return;
  }
  out += m.repr() + "(\n";
  for (const auto& [name, child] : children) {
    out += indent + "  (" + name + "): ";
    print_tree(*child, indent + "  ", out);
    out += "\n";
  }
  out += indent + ")";
}
}  // namespace

std::string to_string(const Module& m) {
  std::string out;
  print_tree(m, "", out);
  return out;
}

void save(const Module& m, const std::string& path) { save_tensors(m.named_parameters(), path); }

void load(Module& m, const std::string& path) {
  assign_tensors(m.named_parameters(), load_tensors(path), m.repr());
}

// ---------------------------------------------------------------- Linear

Linear::Linear(int64_t in, int64_t out, LinearOptions options)
    : in_features(in), out_features(out), generator_(options.generator) {
  if (in <= 0 || out <= 0) fail("Linear: in ({}) and out ({}) features must be positive", in, out);
  const Dtype dtype = options.dtype.value_or(default_dtype());
  weight = register_parameter("weight", empty({out, in}, dtype));
  if (options.bias) bias = register_parameter("bias", empty({out}, dtype));
  reset_parameters();
}

void Linear::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", generator_);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    init::uniform_(bias, -bound, bound, generator_);
  }
}

Tensor Linear::forward(const Tensor& x) {
  if (x.dim() == 0 || x.size(-1) != in_features)
    fail("Linear: input {} does not end in in_features={} ({})", describe(x), in_features, repr());
  return linear(x, weight, bias);
}

std::string Linear::repr() const {
  return fmt::format("Linear(in={}, out={}, bias={})", in_features, out_features, bias.defined());
}

// ---------------------------------------------------------------- Dropout

Dropout::Dropout(double p, Generator* generator) : p(p), generator_(generator) {
  if (!(p >= 0 && p <= 1))
    fail("Dropout: the probability of an element to be zeroed must be between 0 and 1, got {}", p);
}

Tensor Dropout::forward(const Tensor& x) { return functional::dropout(x, p, is_training(), generator_); }

std::string Dropout::repr() const { return fmt::format("Dropout(p={:g})", p); }

// ---------------------------------------------------------------- Sequential

Sequential::Sequential(std::vector<ModulePtr> modules) {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(ModulePtr m) {
  if (!m) fail("Sequential: cannot add a null module");
  register_module(std::to_string(modules_.size()), m);
  modules_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& m : modules_) h = m->forward(h);
  return h;
}

// ---------------------------------------------------------------- MLP

namespace {
ModulePtr build_activation(const ActivationSpec& spec) {
  if (const auto* name = std::get_if<std::string>(&spec)) return name->empty() ? nullptr : make_activation(*name);
  const auto& factory = std::get<std::function<ModulePtr()>>(spec);
  return factory ? factory() : nullptr;
}
}  // namespace

MLP::MLP(const std::vector<int64_t>& sizes, MLPOptions options) : sizes_(sizes), options_(std::move(options)) {
  if (sizes.size() < 2) fail("MLP: needs at least input and output sizes, got {} sizes", sizes.size());
  layers = register_module("layers", std::make_shared<Sequential>());
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    auto linear = std::make_shared<Linear>(
        sizes[i], sizes[i + 1], LinearOptions{.bias = options_.bias, .dtype = options_.dtype, .generator = options_.generator});
    linears.push_back(linear);
    layers->push_back(linear);
    const bool last = i + 2 == sizes.size();
    if (ModulePtr act = build_activation(last ? options_.output_activation : options_.activation))
      layers->push_back(act);
  }
  // With no hidden layer the activation goes unused, but a misspelt name is still an Error (a
  // factory is not called: it may count its calls)
  if (sizes.size() == 2 && std::holds_alternative<std::string>(options_.activation))
    (void)build_activation(options_.activation);
  if (options_.init)
    for (auto& l : linears) options_.init(*l);
}

void MLP::reset_parameters() {
  for (auto& l : linears) options_.init ? options_.init(*l) : l->reset_parameters();
}

std::string MLP::repr() const { return fmt::format("MLP(sizes=[{}])", fmt::join(sizes_, ", ")); }

}  // namespace chainrule::nn
