#include "module.hpp"

#include "activation.hpp"
#include "functional.hpp"
#include "init.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <typeinfo>

#include <fmt/ranges.h>

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

void Module::check_tensor(const std::string& name, const Tensor& t, const char* op) const {
  check_name(name, op, *this);
  if (!t.defined()) fail("{}: {} got an undefined tensor for '{}'", op, repr(), name);
  for (const auto* list : {&params_, &buffers_})
    for (const auto& [n, p] : *list)
      if (n == name)
        fail("{}: {} already has a {} named '{}'", op, repr(), list == &params_ ? "parameter" : "buffer", name);
}

Tensor& Module::register_parameter(std::string name, Tensor t, bool requires_grad) {
  check_tensor(name, t, "register_parameter");
  if (requires_grad && !t.requires_grad()) t.requires_grad_();
  params_.emplace_back(std::move(name), t);
  return params_.back().second;
}

Tensor& Module::register_buffer(std::string name, Tensor t) {
  check_tensor(name, t, "register_buffer");
  buffers_.emplace_back(std::move(name), t);
  return buffers_.back().second;
}

void Module::check_child(const std::string& name, const Module* m) const {
  check_name(name, "register_module", *this);
  if (!m) fail("register_module: {} got a null module for '{}'", repr(), name);
  for (const auto& [n, c] : children_)
    if (n == name) fail("register_module: {} already has a submodule named '{}'", repr(), name);
}

void Module::collect(const std::string& prefix, bool buffers, NamedTensors& out,
                     std::set<const TensorImpl*>& seen) const {
  for (const auto& [name, p] : buffers ? buffers_ : params_)
    if (seen.insert(p.impl()).second) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out, seen);
}

NamedTensors Module::named_parameters() const {
  // A parameter reached twice (a shared submodule, a tied weight) is listed once, under the
  // first name, as PyTorch's named_parameters does: an optimizer given it twice would update
  // it twice a step (and now refuses), a checkpoint would store it twice.
  NamedTensors out;
  std::set<const TensorImpl*> seen;
  collect("", false, out, seen);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  std::set<const TensorImpl*> seen;
  collect("", true, out, seen);
  return out;
}

std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> out;
  for (auto& [name, b] : named_buffers()) out.push_back(b);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters(), buffers = named_buffers();
  out.insert(out.end(), buffers.begin(), buffers.end());
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
  for (auto& b : buffers())
    if (is_floating(b.dtype())) b.set_data(b.detach().to(dtype));  // a counter stays int64, as in PyTorch
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

void save(const Module& m, const std::string& path) { save_tensors(m.state_dict(), path); }

void load(Module& m, const std::string& path) { assign_tensors(m.state_dict(), load_tensors(path), m.repr()); }

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

Tensor Linear::forward(const Tensor& x) { return forward(x, LinearActivation::none); }

Tensor Linear::forward(const Tensor& x, LinearActivation activation) {
  if (x.dim() == 0 || x.shape().back() != in_features)
    fail("Linear: input {} does not end in in_features={} ({})", describe(x), in_features, repr());
  return linear(x, weight, bias, activation);
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

// ---------------------------------------------------------------- Flatten

std::string Flatten::repr() const { return fmt::format("Flatten(start_dim={}, end_dim={})", start_dim, end_dim); }

// ---------------------------------------------------------------- convolution and pooling

using functional::to_string;

Conv::Conv(const char* name, int64_t in, int64_t out, const Shape& kernel, const std::string& kernel_shown,
           int64_t groups, bool with_bias, std::optional<Dtype> dtype)
    : in_channels(in), out_channels(out) {
  if (in <= 0 || out <= 0 || std::ranges::any_of(kernel, [](int64_t k) { return k <= 0; }))
    fail("{}: in_channels ({}), out_channels ({}) and kernel_size {} must be positive", name, in, out, kernel_shown);
  if (groups <= 0 || in % groups != 0 || out % groups != 0)
    fail("{}: groups ({}) must divide in_channels ({}) and out_channels ({})", name, groups, in, out);
  Shape shape{out, in / groups};
  for (int64_t k : kernel) shape.push_back(k);
  const Dtype t = dtype.value_or(default_dtype());
  weight = register_parameter("weight", empty(shape, t));
  if (with_bias) bias = register_parameter("bias", empty({out}, t));
}

void Conv::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", generator());
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.numel() / out_channels));  // 1 / sqrt(fan_in)
    init::uniform_(bias, -bound, bound, generator());
  }
}

Conv1d::Conv1d(int64_t in, int64_t out, int64_t kernel, Conv1dOptions options)
    : Conv("Conv1d", in, out, {kernel}, std::to_string(kernel), options.groups, options.bias, options.dtype),
      kernel_size(kernel), options(options) {
  reset_parameters();
}

Tensor Conv1d::forward(const Tensor& x) {
  return functional::conv1d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv1d::repr() const {
  return fmt::format("Conv1d({}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={})",
                     in_channels, out_channels, kernel_size, options.stride, options.padding, options.dilation,
                     options.groups, bias.defined());
}

Conv2d::Conv2d(int64_t in, int64_t out, functional::Size2 kernel, Conv2dOptions options)
    : Conv("Conv2d", in, out, {kernel[0], kernel[1]}, to_string(kernel), options.groups, options.bias, options.dtype),
      kernel_size(kernel), options(options) {
  reset_parameters();
}

Tensor Conv2d::forward(const Tensor& x) {
  return functional::conv2d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv2d::repr() const {
  return fmt::format("Conv2d({}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={})",
                     in_channels, out_channels, to_string(kernel_size), to_string(options.stride),
                     to_string(options.padding), to_string(options.dilation), options.groups, bias.defined());
}

namespace {
// A pooling module's size as its printout shows it: "2" (1-d) or "[2, 2]".
std::string show(int64_t s) { return std::to_string(s); }
std::string show(functional::Size2 s) { return to_string(s); }
}  // namespace

template <class Size>
std::string Pool<Size>::repr() const {
  return fmt::format("{}(kernel_size={}, stride={}, padding={}{}{})", name_, show(kernel_size), show(stride),
                     show(padding), ceil_mode ? ", ceil_mode=true" : "",
                     count_include_pad ? "" : ", count_include_pad=false");
}
template class Pool<int64_t>;
template class Pool<functional::Size2>;

Pad::Pad(const char* name, std::vector<int64_t> padding, functional::PadMode mode, double value)
    : padding(std::move(padding)), mode(mode), value(value), name_(name) {}

Tensor Pad::forward(const Tensor& x) {
  const auto dims = static_cast<int64_t>(padding.size() / 2);
  if (x.dim() != dims + 1 && x.dim() != dims + 2)
    fail("{}: input {} must be {} ({})", name_, describe(x),
         dims == 1 ? "[C, L] or [N, C, L]" : "[C, H, W] or [N, C, H, W]", repr());
  return functional::pad(x, padding, mode, value);
}

std::string Pad::repr() const {
  return mode == functional::PadMode::constant ? fmt::format("{}(padding={}, value={})", name_, padding, value)
                                                : fmt::format("{}(padding={})", name_, padding);
}

std::string Upsample::repr() const {
  const std::string size = options.size.empty() ? fmt::format("scale_factor={}", options.scale_factor)
                                                 : fmt::format("size={}", options.size);
  return fmt::format("Upsample({}, mode={}{})", size, functional::to_string(options.mode),
                     options.align_corners ? ", align_corners=true" : "");
}

template <class Size>
std::string AdaptivePool<Size>::repr() const {
  return fmt::format("{}(output_size={})", name_, show(output_size));
}
template class AdaptivePool<int64_t>;
template class AdaptivePool<functional::Size2>;

// ---------------------------------------------------------------- Embedding

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, EmbeddingOptions options)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim), generator_(options.generator) {
  if (num_embeddings <= 0 || embedding_dim <= 0)
    fail("Embedding: num_embeddings ({}) and embedding_dim ({}) must be positive", num_embeddings, embedding_dim);
  if (options.padding_idx) {
    if (*options.padding_idx < -num_embeddings || *options.padding_idx >= num_embeddings)
      fail("Embedding: padding_idx {} is out of range for {} embeddings", *options.padding_idx, num_embeddings);
    padding_idx = (*options.padding_idx + num_embeddings) % num_embeddings;
  }
  const Dtype dtype = options.dtype.value_or(default_dtype());
  weight = register_parameter("weight", empty({num_embeddings, embedding_dim}, dtype));
  reset_parameters();
}

void Embedding::reset_parameters() {
  init::normal_(weight, 0.0, 1.0, generator_);
  if (!padding_idx) return;
  NoGradGuard no_grad;
  weight.select(0, *padding_idx).zero_();
}

Tensor Embedding::forward(const Tensor& indices) { return functional::embedding(indices, weight, padding_idx); }

std::string Embedding::repr() const {
  return padding_idx ? fmt::format("Embedding({}, {}, padding_idx={})", num_embeddings, embedding_dim, *padding_idx)
                     : fmt::format("Embedding({}, {})", num_embeddings, embedding_dim);
}

// ---------------------------------------------------------------- normalisation

namespace {
// LayerNorm's, GroupNorm's and BatchNorm's affine part starts as the identity (nothing without one)
void reset_affine(Tensor& weight, Tensor& bias) {
  if (!weight.defined()) return;
  NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}
}  // namespace

LayerNorm::LayerNorm(Shape normalized_shape, LayerNormOptions options)
    : normalized_shape(std::move(normalized_shape)), eps(options.eps) {
  if (this->normalized_shape.empty() ||
      std::any_of(this->normalized_shape.begin(), this->normalized_shape.end(), [](int64_t d) { return d <= 0; }))
    fail("LayerNorm: normalized_shape {} must have at least one dimension, each positive", this->normalized_shape);
  if (options.elementwise_affine) {
    const Dtype dtype = options.dtype.value_or(default_dtype());
    weight = register_parameter("weight", empty(this->normalized_shape, dtype));
    bias = register_parameter("bias", empty(this->normalized_shape, dtype));
  }
  reset_parameters();
}

void LayerNorm::reset_parameters() { reset_affine(weight, bias); }

Tensor LayerNorm::forward(const Tensor& x) { return functional::layer_norm(x, normalized_shape, weight, bias, eps); }

std::string LayerNorm::repr() const {
  return fmt::format("LayerNorm(normalized_shape={}, eps={}, elementwise_affine={})", normalized_shape, eps,
                     weight.defined());
}

GroupNorm::GroupNorm(int64_t num_groups, int64_t num_channels, GroupNormOptions options)
    : num_groups(num_groups), num_channels(num_channels), eps(options.eps) {
  if (num_groups <= 0 || num_channels <= 0 || num_channels % num_groups != 0)
    fail("GroupNorm: num_groups {} must be positive and divide num_channels {}", num_groups, num_channels);
  if (options.affine) {
    const Dtype dtype = options.dtype.value_or(default_dtype());
    weight = register_parameter("weight", empty({num_channels}, dtype));
    bias = register_parameter("bias", empty({num_channels}, dtype));
  }
  reset_parameters();
}

void GroupNorm::reset_parameters() { reset_affine(weight, bias); }

Tensor GroupNorm::forward(const Tensor& x) {
  if (x.dim() < 2 || x.size(1) != num_channels)
    fail("GroupNorm: input {} must be [N, C, ...] with C = {} ({})", describe(x), num_channels, repr());
  return functional::group_norm(x, num_groups, weight, bias, eps);
}

std::string GroupNorm::repr() const {
  return fmt::format("GroupNorm({}, {}, eps={}, affine={})", num_groups, num_channels, eps, weight.defined());
}

BatchNorm::BatchNorm(const char* name, const char* layout, std::pair<int64_t, int64_t> ranks, int64_t num_features,
                     BatchNormOptions options)
    : num_features(num_features), options(options), name_(name), layout_(layout), ranks_(ranks) {
  if (num_features <= 0) fail("{}: num_features must be positive, got {}", name, num_features);
  const Dtype dtype = options.dtype.value_or(default_dtype());
  if (options.affine) {
    weight = register_parameter("weight", empty({num_features}, dtype));
    bias = register_parameter("bias", empty({num_features}, dtype));
  }
  if (options.track_running_stats) {
    running_mean = register_buffer("running_mean", empty({num_features}, dtype));
    running_var = register_buffer("running_var", empty({num_features}, dtype));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, int64));
  }
  reset_parameters();
}

void BatchNorm::reset_running_stats() {
  if (!running_mean.defined()) return;
  NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

void BatchNorm::reset_parameters() {
  reset_running_stats();
  reset_affine(weight, bias);
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (x.dim() < ranks_.first || x.dim() > ranks_.second || x.size(1) != num_features)
    fail("{}: input {} must be {} with C = {} ({})", name_, describe(x), layout_, num_features, repr());
  const bool update = is_training() && running_mean.defined();
  double factor = options.momentum.value_or(0.0);
  if (update && !options.momentum) factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>() + 1);
  // without running statistics, batch statistics in either mode (as PyTorch's)
  const bool batch_statistics = is_training() || !running_mean.defined();
  Tensor y = functional::batch_norm(x, running_mean, running_var, weight, bias, batch_statistics, factor, options.eps);
  if (update) {  // counted once the batch is accepted
    NoGradGuard no_grad;
    num_batches_tracked.add_(1.0);
  }
  return y;
}

std::string BatchNorm::repr() const {
  return fmt::format("{}({}, eps={}, momentum={}, affine={}, track_running_stats={})", name_, num_features,
                     options.eps, options.momentum ? fmt::format("{}", *options.momentum) : "None", weight.defined(),
                     running_mean.defined());
}

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
  // The classes exactly: a subclass may override forward.
  const auto linear_at = [&](size_t i) {
    Module& m = *modules_[i];
    return typeid(m) == typeid(Linear) ? static_cast<Linear*>(&m) : nullptr;
  };
  const auto fused_at = [&](size_t i) {
    if (i == modules_.size()) return LinearActivation::none;
    const Module& m = *modules_[i];
    return typeid(m) == typeid(Activation) ? static_cast<const Activation&>(m).fused() : LinearActivation::none;
  };
  Tensor h = x;
  for (size_t i = 0; i < modules_.size(); ++i) {
    Linear* l = linear_at(i);
    const LinearActivation a = l ? fused_at(i + 1) : LinearActivation::none;
    h = a != LinearActivation::none ? l->forward(h, a) : modules_[i]->forward(h);
    i += a != LinearActivation::none;  // the activation ran inside the Linear's op
  }
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
