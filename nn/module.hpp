/// \file
/// Modules: named parameters and submodules, train/eval, dtype conversion, and a readable
/// printout of the tree. Linear, Dropout, Flatten, Embedding, LayerNorm, GroupNorm,
/// BatchNorm1d/2d, Conv1d/2d, Upsample, the padding and pooling modules, Sequential and MLP are
/// defined here; activations (Identity among them) in activation.hpp, recurrent layers in rnn.hpp.
#pragma once

#include "../autograd/autograd.hpp"
#include "functional.hpp"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <variant>

namespace chainrule::nn {

class Module;
/// Modules are held by shared pointer (a submodule can be shared, as in PyTorch).
using ModulePtr = std::shared_ptr<Module>;

/// The base of every network part: parameters and submodules registered by name, train/eval mode,
/// dtype conversion and a printout. Subclasses implement forward() and repr().
class Module {
 public:
  virtual ~Module() = default;  ///< virtual: modules are used through base pointers
  Module() = default;  ///< an empty module
  Module(const Module&) = delete;  ///< modules own parameters; share them through ModulePtr instead of copying
  Module& operator=(const Module&) = delete;  ///< not copyable

  virtual Tensor forward(const Tensor& x) = 0;  ///< the module's computation
  Tensor operator()(const Tensor& x) { return forward(x); }  ///< forward(x)

  /// "Linear(in=3, out=4, bias=false)": the one-line description of this module alone.
  virtual std::string repr() const = 0;
  /// Re-draws the parameters from their default initialisation.
  virtual void reset_parameters() {}

  /// Every parameter of this module and its submodules, in registration order, each once (a
  /// shared submodule's under its first name).
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;  ///< "layers.0.weight"-style names, registration order, each parameter once
  /// Every buffer (state that is not learned, as BatchNorm1d's running statistics) of this module
  /// and its submodules, with "bn.running_mean"-style names, each once. Not in parameters().
  NamedTensors named_buffers() const;
  std::vector<Tensor> buffers() const;  ///< the tensors of named_buffers()
  /// named_parameters() then named_buffers(): what a checkpoint holds (save, load).
  NamedTensors state_dict() const;
  /// The direct submodules with their names.
  const std::vector<std::pair<std::string, ModulePtr>>& named_children() const { return children_; }

  void zero_grad();  ///< drops every parameter's .grad
  /// Sets training mode here and in every submodule (Dropout-style behaviour switches on it).
  void train(bool on = true);
  void eval() { train(false); }  ///< train(false)
  bool is_training() const { return training_; }  ///< in training mode
  /// Converts every parameter and floating buffer in place (identity and requires_grad kept).
  void to(Dtype dtype);

 protected:
  /// Adds a parameter under `name` and returns it.
  Tensor& register_parameter(std::string name, Tensor t, bool requires_grad = true);
  /// Adds a buffer under `name` and returns it: saved and loaded, converted by to(), never
  /// handed to an optimizer.
  Tensor& register_buffer(std::string name, Tensor t);
  template <class M>
  /// Adds a submodule under `name` and returns it.
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    check_child(name, m.get());
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void check_child(const std::string& name, const Module* m) const;  ///< unique name, non-null
  /// unique among parameters and buffers, defined
  void check_tensor(const std::string& name, const Tensor& t, const char* op) const;
  void collect(const std::string& prefix, bool buffers, NamedTensors& out, std::set<const TensorImpl*>& seen) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  bool training_ = true;
};

/// The whole tree, PyTorch style, one module per line.
std::string to_string(const Module& m);

/// Checkpoints of a module's parameters (format and guarantees in autograd/serialize.hpp).
/// load validates everything first: on any error (CheckpointError, listing every missing,
/// unexpected or mis-shaped key) the module is left untouched.
void save(const Module& m, const std::string& path);
void load(Module& m, const std::string& path);  ///< reads `path` into m's parameters (all or nothing)

// ---------------------------------------------------------------- Linear

/// Linear's options.
struct LinearOptions {
  bool bias = true;  ///< learn an additive bias
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// y = x W^T + b with W of shape [out, in]. Default initialisation as PyTorch: W from
/// kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and b from the same range.
class Linear : public Module {
 public:
  /// A layer from in_features to out_features, PyTorch-initialised.
  Linear(int64_t in_features, int64_t out_features, LinearOptions options = {});
  Tensor forward(const Tensor& x) override;  ///< x W^T + b for x of shape [..., in_features]
  /// activation(x W^T + b) in one op (cr::linear with the activation): Sequential's call for a
  /// Linear followed by ReLU, Sigmoid or Tanh.
  Tensor forward(const Tensor& x, LinearActivation activation);
  std::string repr() const override;  ///< "Linear(in=3, out=4, bias=true)"
  void reset_parameters() override;  ///< re-draws W and b from PyTorch's default initialisation

  Tensor weight;  ///< [out_features, in_features]
  Tensor bias;  ///< undefined when options.bias is false
  int64_t in_features;   ///< the size of the input's last dimension
  int64_t out_features;  ///< the size of the output's last dimension

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- Dropout

/// functional::dropout while training (train(), the default), the identity after eval().
class Dropout : public Module {
 public:
  /// Zeroes elements with probability p (in [0, 1]), drawing from `generator` (default: the global one).
  explicit Dropout(double p = 0.5, Generator* generator = nullptr);
  Tensor forward(const Tensor& x) override;  ///< dropout(x, p, is_training(), generator)
  std::string repr() const override;  ///< "Dropout(p=0.5)"

  double p;  ///< the probability of an element to be zeroed

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- Flatten

/// x.flatten(start_dim, end_dim): [N, 1, 28, 28] -> [N, 784] with the defaults, as PyTorch's.
class Flatten : public Module {
 public:
  /// Merges dimensions start_dim ... end_dim (negative count from the end).
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim, end_dim); }  ///< x.flatten(start_dim, end_dim)
  std::string repr() const override;  ///< "Flatten(start_dim=1, end_dim=-1)"

  int64_t start_dim;  ///< the first dimension merged
  int64_t end_dim;  ///< the last dimension merged
};

// ---------------------------------------------------------------- convolution and pooling

/// Conv1d's options (PyTorch's defaults).
struct Conv1dOptions {
  int64_t stride = 1;  ///< steps between windows
  int64_t padding = 0;  ///< zeros added on each side
  int64_t dilation = 1;  ///< spacing between kernel elements
  int64_t groups = 1;  ///< channel groups, each with its own filters (in_channels: depthwise)
  bool bias = true;  ///< learn a bias per output channel
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// Conv2d's options (PyTorch's defaults).
struct Conv2dOptions {
  functional::Size2 stride = {1, 1};  ///< steps between windows (height, width)
  functional::Size2 padding = {0, 0};  ///< zeros added on each side
  functional::Size2 dilation = {1, 1};  ///< spacing between kernel elements
  int64_t groups = 1;  ///< channel groups, each with its own filters (in_channels: depthwise)
  bool bias = true;  ///< learn a bias per output channel
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// What Conv1d and Conv2d share: a learned weight [out, in / groups, kernel...] and bias [out],
/// initialised as PyTorch's: kaiming_uniform(a = sqrt(5)) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
/// fan_in = in / groups times the kernel's elements.
class Conv : public Module {
 public:
  void reset_parameters() override;  ///< re-draws weight and bias from PyTorch's default initialisation

  Tensor weight;  ///< [out_channels, in_channels / groups, kernel...]
  Tensor bias;  ///< [out_channels]; undefined without the options' bias
  int64_t in_channels;  ///< the input's channels (dim 1)
  int64_t out_channels;  ///< the output's channels

 protected:
  /// Checks the sizes (errors name `name` and show the kernel as `kernel_shown`) and registers
  /// the parameters, drawn by the derived class's constructor (reset_parameters).
  Conv(const char* name, int64_t in, int64_t out, const Shape& kernel, const std::string& kernel_shown, int64_t groups,
       bool bias, std::optional<Dtype> dtype);
  /// The options' generator.
  virtual Generator* generator() const = 0;
};

/// functional::conv1d as a module: weight [out, in / groups, k].
class Conv1d : public Conv {
 public:
  /// A layer from in_channels to out_channels with a kernel_size window.
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv1dOptions options = {});
  Tensor forward(const Tensor& x) override;  ///< conv1d(x, weight, bias, stride, padding, dilation, groups)
  /// "Conv1d(4, 6, kernel_size=3, stride=1, padding=1, dilation=1, groups=2, bias=true)"
  std::string repr() const override;

  int64_t kernel_size;  ///< the window
  Conv1dOptions options;  ///< stride, padding, dilation, groups (and the initialisation's generator)

 private:
  Generator* generator() const override { return options.generator; }
};

/// functional::conv2d as a module: weight [out, in / groups, kh, kw].
class Conv2d : public Conv {
 public:
  /// A layer from in_channels to out_channels with a kernel_size window.
  Conv2d(int64_t in_channels, int64_t out_channels, functional::Size2 kernel_size, Conv2dOptions options = {});
  Tensor forward(const Tensor& x) override;  ///< conv2d(x, weight, bias, stride, padding, dilation, groups)
  /// "Conv2d(3, 8, kernel_size=[3, 3], stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1, bias=true)"
  std::string repr() const override;

  functional::Size2 kernel_size;  ///< the window (height, width)
  Conv2dOptions options;  ///< stride, padding, dilation, groups (and the initialisation's generator)

 private:
  Generator* generator() const override { return options.generator; }
};

/// What the pooling modules share (no parameters): the window's size, stride and padding, each
/// an int64_t for the 1-d ones and a Size2 (height, width) for the 2-d ones, and the options.
template <class Size>
class Pool : public Module {
 public:
  /// Windows of kernel_size, stride kernel_size unless given, padding at most half the kernel.
  Pool(const char* name, Size kernel_size, std::optional<Size> stride, Size padding, bool ceil_mode,
       bool count_include_pad = true)
      : kernel_size(kernel_size), stride(stride.value_or(kernel_size)), padding(padding), ceil_mode(ceil_mode),
        count_include_pad(count_include_pad), name_(name) {}
  /// "MaxPool2d(kernel_size=[2, 2], stride=[2, 2], padding=[0, 0])", with ", ceil_mode=true" and
  /// ", count_include_pad=false" where set
  std::string repr() const override;

  Size kernel_size;  ///< the window
  Size stride;  ///< steps between windows
  Size padding;  ///< added on each side (-inf for max, zeros for avg)
  bool ceil_mode;  ///< keep a last window that overhangs the input (functional::max_pool2d)
  bool count_include_pad;  ///< average pooling: the padding counts in a window's size (max pooling: always true)

 private:
  const char* name_;
};
using Pool1d = Pool<int64_t>;  ///< the 1-d pooling modules' base
using Pool2d = Pool<functional::Size2>;  ///< the 2-d pooling modules' base
extern template class Pool<int64_t>;
extern template class Pool<functional::Size2>;

/// functional::max_pool1d as a module.
class MaxPool1d : public Pool1d {
 public:
  /// Windows of kernel_size, stride kernel_size unless given, padding at most half the kernel.
  explicit MaxPool1d(int64_t kernel_size, std::optional<int64_t> stride = std::nullopt, int64_t padding = 0,
                     bool ceil_mode = false)
      : Pool1d("MaxPool1d", kernel_size, stride, padding, ceil_mode) {}
  /// functional::max_pool1d(x, kernel_size, stride, padding, ceil_mode)
  Tensor forward(const Tensor& x) override {
    return functional::max_pool1d(x, kernel_size, stride, padding, ceil_mode);
  }
};

/// functional::avg_pool1d as a module.
class AvgPool1d : public Pool1d {
 public:
  /// Windows of kernel_size, stride kernel_size unless given, padding at most half the kernel.
  explicit AvgPool1d(int64_t kernel_size, std::optional<int64_t> stride = std::nullopt, int64_t padding = 0,
                     bool ceil_mode = false, bool count_include_pad = true)
      : Pool1d("AvgPool1d", kernel_size, stride, padding, ceil_mode, count_include_pad) {}
  /// functional::avg_pool1d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
  Tensor forward(const Tensor& x) override {
    return functional::avg_pool1d(x, kernel_size, stride, padding, ceil_mode, count_include_pad);
  }
};

/// What the adaptive pooling modules share (no parameters): the output's size, an int64_t
/// length for the 1-d ones and a Size2 (height, width) for the 2-d ones.
template <class Size>
class AdaptivePool : public Module {
 public:
  /// "AdaptiveAvgPool2d(output_size=[1, 1])"
  std::string repr() const override;

  Size output_size;  ///< the output's length, or height and width

 protected:
  /// `name` for the printout.
  AdaptivePool(const char* name, Size output_size) : output_size(output_size), name_(name) {}

 private:
  const char* name_;
};
extern template class AdaptivePool<int64_t>;
extern template class AdaptivePool<functional::Size2>;

/// functional::adaptive_avg_pool1d as a module.
class AdaptiveAvgPool1d : public AdaptivePool<int64_t> {
 public:
  /// pools to output_size positions
  explicit AdaptiveAvgPool1d(int64_t output_size) : AdaptivePool("AdaptiveAvgPool1d", output_size) {}
  /// functional::adaptive_avg_pool1d(x, output_size)
  Tensor forward(const Tensor& x) override { return functional::adaptive_avg_pool1d(x, output_size); }
};

/// functional::adaptive_avg_pool2d as a module (AdaptiveAvgPool2d({1, 1}): global average pooling).
class AdaptiveAvgPool2d : public AdaptivePool<functional::Size2> {
 public:
  /// Pools to output_size (height, width).
  explicit AdaptiveAvgPool2d(functional::Size2 output_size) : AdaptivePool("AdaptiveAvgPool2d", output_size) {}
  /// functional::adaptive_avg_pool2d(x, output_size)
  Tensor forward(const Tensor& x) override { return functional::adaptive_avg_pool2d(x, output_size); }
};

/// functional::adaptive_max_pool1d as a module.
class AdaptiveMaxPool1d : public AdaptivePool<int64_t> {
 public:
  /// pools to output_size positions
  explicit AdaptiveMaxPool1d(int64_t output_size) : AdaptivePool("AdaptiveMaxPool1d", output_size) {}
  /// functional::adaptive_max_pool1d(x, output_size)
  Tensor forward(const Tensor& x) override { return functional::adaptive_max_pool1d(x, output_size); }
};

/// functional::adaptive_max_pool2d as a module (AdaptiveMaxPool2d({1, 1}): global max pooling).
class AdaptiveMaxPool2d : public AdaptivePool<functional::Size2> {
 public:
  /// Pools to output_size (height, width).
  explicit AdaptiveMaxPool2d(functional::Size2 output_size) : AdaptivePool("AdaptiveMaxPool2d", output_size) {}
  /// functional::adaptive_max_pool2d(x, output_size)
  Tensor forward(const Tensor& x) override { return functional::adaptive_max_pool2d(x, output_size); }
};

/// What the padding modules share: functional::pad with fixed amounts, mode and fill, of inputs
/// [C, ...] or [N, C, ...] with padding.size() / 2 padded dimensions after C.
class Pad : public Module {
 public:
  /// functional::pad(x, padding, mode, value)
  Tensor forward(const Tensor& x) override;
  /// "ReflectionPad2d(padding=[1, 1, 2, 0])"; the constant ones (ZeroPad2d too) add the value:
  /// "ConstantPad1d(padding=[1, 2], value=0.5)"
  std::string repr() const override;

  std::vector<int64_t> padding;  ///< (before, after) for the last dimension, then the one before it
  functional::PadMode mode;  ///< how the new positions are filled
  double value;  ///< the fill of the constant mode

 protected:
  /// `name` for printouts and errors; padding.size() / 2 dimensions are padded.
  Pad(const char* name, std::vector<int64_t> padding, functional::PadMode mode, double value);

 private:
  const char* name_;
};

/// The padding module of `Mode` over the last `Dims` dimensions (1: [C, L] or [N, C, L]; 2:
/// [C, H, W] or [N, C, H, W]), as PyTorch's ReflectionPad1d and its kin. Amounts are given
/// as one for every side or as (before, after) pairs, the last dimension's first.
template <functional::PadMode Mode, int Dims>
class PadNd : public Pad {
 public:
  using Amounts = std::array<int64_t, 2 * Dims>;  ///< (left, right) or (left, right, top, bottom)
  /// `padding` on every side
  explicit PadNd(int64_t padding) requires(Mode != functional::PadMode::constant) : PadNd(same(padding)) {}
  /// (before, after) pairs, the last dimension's first
  explicit PadNd(Amounts padding) requires(Mode != functional::PadMode::constant) : PadNd(name(), padding, 0.0) {}
  /// `padding` on every side, filled with value
  PadNd(int64_t padding, double value) requires(Mode == functional::PadMode::constant)
      : PadNd(same(padding), value) {}
  /// (before, after) pairs, filled with value
  PadNd(Amounts padding, double value) requires(Mode == functional::PadMode::constant)
      : PadNd(name(), padding, value) {}

 protected:
  /// A module printed as `name` (ZeroPad2d's)
  PadNd(const char* name, Amounts padding, double value) : Pad(name, {padding.begin(), padding.end()}, Mode, value) {}
  /// `padding` for every side
  static Amounts same(int64_t padding) {
    Amounts amounts;
    amounts.fill(padding);
    return amounts;
  }

 private:
  static constexpr const char* name() {
    constexpr const char* names[][2] = {{"ConstantPad1d", "ConstantPad2d"}, {"ReflectionPad1d", "ReflectionPad2d"},
                                        {"ReplicationPad1d", "ReplicationPad2d"}, {"CircularPad1d", "CircularPad2d"}};
    return names[static_cast<int>(Mode)][Dims - 1];
  }
};
using ConstantPad1d = PadNd<functional::PadMode::constant, 1>;  ///< pads [C, L] or [N, C, L] with a value
using ConstantPad2d = PadNd<functional::PadMode::constant, 2>;  ///< pads [C, H, W] or [N, C, H, W] with a value
using ReflectionPad1d = PadNd<functional::PadMode::reflect, 1>;  ///< mirrors [C, L] or [N, C, L] at its ends
using ReflectionPad2d = PadNd<functional::PadMode::reflect, 2>;  ///< mirrors [C, H, W] or [N, C, H, W] at its edges
using ReplicationPad1d = PadNd<functional::PadMode::replicate, 1>;  ///< repeats the end elements of [C, L] or [N, C, L]
using ReplicationPad2d = PadNd<functional::PadMode::replicate, 2>;  ///< repeats the edges of [C, H, W] or [N, C, H, W]
using CircularPad1d = PadNd<functional::PadMode::circular, 1>;  ///< wraps [C, L] or [N, C, L] around
using CircularPad2d = PadNd<functional::PadMode::circular, 2>;  ///< wraps [C, H, W] or [N, C, H, W] around

/// ConstantPad2d with zeros.
class ZeroPad2d : public PadNd<functional::PadMode::constant, 2> {
 public:
  explicit ZeroPad2d(int64_t padding) : PadNd("ZeroPad2d", same(padding), 0.0) {}  ///< on every side
  explicit ZeroPad2d(Amounts padding) : PadNd("ZeroPad2d", padding, 0.0) {}  ///< (left, right, top, bottom)
};

/// functional::interpolate as a module: Upsample({.scale_factor = {2}}) doubles the length of
/// [N, C, L] or the height and width of [N, C, H, W] (nearest), or with mode bilinear interpolates.
class Upsample : public Module {
 public:
  explicit Upsample(functional::InterpolateOptions options) : options(std::move(options)) {}  ///< the resize
  Tensor forward(const Tensor& x) override { return functional::interpolate(x, options); }  ///< interpolate(x, options)
  /// "Upsample(scale_factor=[2], mode=nearest)"; "Upsample(size=[3, 4], mode=bilinear, align_corners=true)"
  std::string repr() const override;

  functional::InterpolateOptions options;  ///< the output's size or scale factor, the mode
};

/// functional::max_pool2d as a module.
class MaxPool2d : public Pool2d {
 public:
  /// Windows of kernel_size, stride kernel_size unless given, padding at most half the kernel.
  explicit MaxPool2d(functional::Size2 kernel_size, std::optional<functional::Size2> stride = std::nullopt,
                     functional::Size2 padding = {0, 0}, bool ceil_mode = false)
      : Pool2d("MaxPool2d", kernel_size, stride, padding, ceil_mode) {}
  /// functional::max_pool2d(x, kernel_size, stride, padding, ceil_mode)
  Tensor forward(const Tensor& x) override {
    return functional::max_pool2d(x, kernel_size, stride, padding, ceil_mode);
  }
};

/// functional::avg_pool2d as a module.
class AvgPool2d : public Pool2d {
 public:
  /// Windows of kernel_size, stride kernel_size unless given, padding at most half the kernel.
  explicit AvgPool2d(functional::Size2 kernel_size, std::optional<functional::Size2> stride = std::nullopt,
                     functional::Size2 padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true)
      : Pool2d("AvgPool2d", kernel_size, stride, padding, ceil_mode, count_include_pad) {}
  /// functional::avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)
  Tensor forward(const Tensor& x) override {
    return functional::avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad);
  }
};

// ---------------------------------------------------------------- Embedding

/// Embedding's options.
struct EmbeddingOptions {
  /// A row that stays zero: initialised to 0 and given no gradient (negative counts from the end).
  std::optional<int64_t> padding_idx = {};
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// A lookup table: functional::embedding(indices, weight, padding_idx), weight drawn from N(0, 1)
/// as PyTorch's.
class Embedding : public Module {
 public:
  /// num_embeddings rows of embedding_dim values (both positive).
  Embedding(int64_t num_embeddings, int64_t embedding_dim, EmbeddingOptions options = {});
  Tensor forward(const Tensor& indices) override;  ///< int64 indices [...] -> [..., embedding_dim]
  std::string repr() const override;  ///< "Embedding(10, 3)" or "Embedding(10, 3, padding_idx=0)"
  void reset_parameters() override;  ///< N(0, 1), the padding row 0

  Tensor weight;  ///< [num_embeddings, embedding_dim]
  int64_t num_embeddings;  ///< rows
  int64_t embedding_dim;  ///< values per row
  std::optional<int64_t> padding_idx;  ///< the row that stays zero, wrapped to [0, num_embeddings)

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- normalisation

/// LayerNorm's options.
struct LayerNormOptions {
  double eps = 1e-5;  ///< added to the variance
  bool elementwise_affine = true;  ///< learn a weight (starting at 1) and a bias (at 0) of normalized_shape
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
};

/// functional::layer_norm over the trailing normalized_shape, with learned weight and bias.
class LayerNorm : public Module {
 public:
  /// Normalises the last normalized_shape.size() dimensions (of positive sizes).
  explicit LayerNorm(Shape normalized_shape, LayerNormOptions options = {});
  Tensor forward(const Tensor& x) override;  ///< layer_norm(x, normalized_shape, weight, bias, eps)
  std::string repr() const override;  ///< "LayerNorm(normalized_shape=[4], eps=1e-05, elementwise_affine=true)"
  void reset_parameters() override;  ///< weight 1, bias 0

  Tensor weight;  ///< normalized_shape; undefined without elementwise_affine
  Tensor bias;  ///< normalized_shape; undefined without elementwise_affine
  Shape normalized_shape;  ///< the trailing dimensions normalised
  double eps;  ///< added to the variance
};

/// GroupNorm's options.
struct GroupNormOptions {
  double eps = 1e-5;  ///< added to the variance
  bool affine = true;  ///< learn a weight (starting at 1) and a bias (at 0) per channel
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
};

/// functional::group_norm with learned per-channel weight and bias: statistics per example and
/// group of channels, the same in training and evaluation (no running statistics), so it works
/// at any batch size. GroupNorm(1, C) normalises each example's channels together; GroupNorm(C, C)
/// each channel alone (instance normalisation).
class GroupNorm : public Module {
 public:
  /// num_groups (positive) must divide num_channels (positive).
  GroupNorm(int64_t num_groups, int64_t num_channels, GroupNormOptions options = {});
  Tensor forward(const Tensor& x) override;  ///< group_norm(x, num_groups, weight, bias, eps), x [N, C, ...]
  std::string repr() const override;  ///< "GroupNorm(2, 4, eps=1e-05, affine=true)"
  void reset_parameters() override;  ///< weight 1, bias 0

  Tensor weight;  ///< [C]; undefined without affine
  Tensor bias;  ///< [C]; undefined without affine
  int64_t num_groups;  ///< groups of num_channels / num_groups consecutive channels
  int64_t num_channels;  ///< C
  double eps;  ///< added to the variance
};

/// BatchNorm1d's and BatchNorm2d's options.
struct BatchNormOptions {
  double eps = 1e-5;  ///< added to the variance
  /// The running statistics' step towards each batch's; nullopt: the average of every batch so
  /// far (a factor of 1 / num_batches_tracked), PyTorch's momentum=None.
  std::optional<double> momentum = 0.1;
  bool affine = true;  ///< learn a weight (starting at 1) and a bias (at 0) per channel
  /// Keep running statistics (buffers), used after eval(); without them batch statistics are
  /// used in both modes.
  bool track_running_stats = true;
  std::optional<Dtype> dtype = {};  ///< parameter and statistics dtype (default: the default dtype)
};

/// What BatchNorm1d and BatchNorm2d share: functional::batch_norm with batch statistics while
/// training (which update the running ones, counted in num_batches_tracked), the running
/// statistics after eval().
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;  ///< x of shape [N, C, ...] as the derived class takes, C = num_features
  /// "BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)"
  std::string repr() const override;
  void reset_parameters() override;  ///< weight 1, bias 0, and reset_running_stats()
  void reset_running_stats();  ///< running_mean 0, running_var 1, num_batches_tracked 0

  Tensor weight;  ///< [C]; undefined without affine
  Tensor bias;  ///< [C]; undefined without affine
  Tensor running_mean;  ///< buffer [C]; undefined without track_running_stats
  Tensor running_var;  ///< buffer [C] (unbiased batch variances averaged); undefined without track_running_stats
  Tensor num_batches_tracked;  ///< buffer, int64 scalar: training batches seen; undefined without track_running_stats
  int64_t num_features;  ///< C
  BatchNormOptions options;  ///< as constructed

 protected:
  /// Normalises num_features (positive) channels of inputs of rank `ranks` (first to second);
  /// `name` and `layout` ("[N, C] or [N, C, L]") name them in errors.
  BatchNorm(const char* name, const char* layout, std::pair<int64_t, int64_t> ranks, int64_t num_features,
            BatchNormOptions options);

 private:
  const char* name_;
  const char* layout_;
  std::pair<int64_t, int64_t> ranks_;
};

/// Batch normalisation of [N, C] or [N, C, L] inputs (statistics per channel over N and L).
class BatchNorm1d : public BatchNorm {
 public:
  /// Normalises num_features (positive) channels.
  explicit BatchNorm1d(int64_t num_features, BatchNormOptions options = {})
      : BatchNorm("BatchNorm1d", "[N, C] or [N, C, L]", {2, 3}, num_features, options) {}
};

/// Batch normalisation of [N, C, H, W] images (statistics per channel over N, H and W).
class BatchNorm2d : public BatchNorm {
 public:
  /// Normalises num_features (positive) channels.
  explicit BatchNorm2d(int64_t num_features, BatchNormOptions options = {})
      : BatchNorm("BatchNorm2d", "[N, C, H, W]", {4, 4}, num_features, options) {}
};

// ---------------------------------------------------------------- Sequential

/// Modules applied one after another.
class Sequential : public Module {
 public:
  Sequential() = default;  ///< empty; add modules with push_back
  explicit Sequential(std::vector<ModulePtr> modules);  ///< the modules in order (registered as "0", "1", ...)
  void push_back(ModulePtr m);  ///< appends a module (registered under its index)
  /// Each module applied to the previous one's output; a Linear followed by ReLU, Sigmoid or Tanh
  /// (those classes exactly, not subclasses) as one op, Linear::forward(x, activation).
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "Sequential"; }  ///< "Sequential"
  size_t size() const { return modules_.size(); }  ///< the number of modules
  const ModulePtr& operator[](size_t i) const { return modules_.at(i); }  ///< the i-th module

 private:
  std::vector<ModulePtr> modules_;
};

// ---------------------------------------------------------------- MLP

/// An activation given by registry name ("relu", "tanh", ...) or as a module factory.
using ActivationSpec = std::variant<std::string, std::function<ModulePtr()>>;
/// Initialises one Linear layer; nullptr (or "default") keeps Linear's PyTorch default.
using Initializer = std::function<void(Linear&)>;

/// MLP's options.
struct MLPOptions {
  ActivationSpec activation = std::string("relu");  ///< between layers
  ActivationSpec output_activation = std::string("");  ///< after the last layer; "" for none
  bool bias = true;  ///< every Linear learns a bias
  Initializer init = nullptr;  ///< applied to every Linear after construction
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// sizes = {in, hidden..., out}: Linear layers with the activation between them.
class MLP : public Module {
 public:
  /// Linear layers sizes[0] -> sizes[1] -> ... with the activation between them.
  explicit MLP(const std::vector<int64_t>& sizes, MLPOptions options = {});
  Tensor forward(const Tensor& x) override { return layers->forward(x); }  ///< layers->forward(x)
  std::string repr() const override;  ///< "MLP(sizes=[3, 4, 1])"
  void reset_parameters() override;  ///< re-initialises every layer (with options.init if given)

  std::shared_ptr<Sequential> layers;  ///< the Linear and activation modules in order
  std::vector<std::shared_ptr<Linear>> linears;  ///< the Linear layers alone

 private:
  std::vector<int64_t> sizes_;
  MLPOptions options_;
};

}  // namespace chainrule::nn

// Formats any module (Linear, MLP, user modules) as its tree.
// fmt::formatter specialisation (printing with fmt), hidden from the API reference.
/// \cond
template <class M>
struct fmt::formatter<M, char, std::enable_if_t<std::is_base_of_v<chainrule::nn::Module, M>>>
    : fmt::formatter<std::string_view> {
  auto format(const chainrule::nn::Module& m, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(chainrule::nn::to_string(m), ctx);
  }
};
/// \endcond
