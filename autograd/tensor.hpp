/// \file
/// Tensor: a strided view of shared storage plus the autograd state that links it into the
/// graph. Scalars are 0-d tensors; there is one graph for scalars and tensors alike.
#pragma once

#include "dtype.hpp"
#include "ref.hpp"
#include "shape.hpp"

#include <concepts>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <vector>

namespace chainrule {

class Tensor;
struct Node;
struct AccumulateGrad;
struct GradSlot;
class Generator;

/// A contiguous, 64-byte aligned buffer shared by a tensor and all its views. The version
/// counter lives here because an in-place write through any view changes every view.
///
/// A storage is made only with the tensor that first holds it (TensorImpl::make(nbytes)), in
/// the same pool block: one allocation per new tensor instead of two (docs/performance.md,
/// item 13). The tensor keeps a reference to it for as long as the tensor lives (the block's
/// hold), so that the block is freed by the storage's last reference, after the tensor.
struct alignas(64) Storage final : RefCounted {
  static constexpr size_t kInlineBytes = 64;  ///< buffers up to this size live inside the Storage
  explicit Storage(size_t nbytes);  ///< allocates nbytes (64-byte aligned; inline or from the pool)
  ~Storage() override;  ///< returns the buffer to the pool
  Storage(const Storage&) = delete;  ///< shared, never copied
  Storage& operator=(const Storage&) = delete;  ///< not copyable
  /// Destroys the storage and frees its tensor's block (the tensor has gone before it).
  static void operator delete(Storage* p, std::destroying_delete_t) noexcept;
  /// Returns a pooled buffer early, when no tensor uses this storage any more but the block's
  /// hold keeps it (Tensor::set_data replaced it).
  void release_buffer() noexcept;

  void* data = nullptr;  ///< the first byte
  size_t nbytes = 0;  ///< the buffer's size in bytes
  uint32_t version = 0;  ///< bumped by every in-place write; saved tensors compare it at backward
  /// Bumped by every recorded in-place write, which gives the written tensor a new history: a
  /// view taken before it still has the old one (see TensorImpl::history_seen).
  uint32_t history = 0;
  /// The buffer of a small tensor (scalars, biases of small layers): one allocation fewer per op.
  alignas(64) unsigned char inline_bytes[kInlineBytes];
};

/// A gradient hook: gets the gradient flowing into a tensor; an undefined return keeps it, a
/// defined one replaces it (same shape and dtype, else an Error).
using TensorHook = std::function<Tensor(const Tensor&)>;
/// The hooks of a tensor or node, allocated on the first registration (most have none; an
/// empty std::vector inline cost 24 bytes in every tensor and node).
using TensorHooks = std::unique_ptr<std::vector<TensorHook>>;

/// What a Tensor handle points to: the view (storage, shape, strides, offset, dtype) and the
/// autograd state. Users go through Tensor.
struct TensorImpl final : RefCounted {
  /// A tensor without storage, for a view or alias to share another's.
  static Ref<TensorImpl> make();
  /// A tensor with a new storage of nbytes, both in one pool block.
  static Ref<TensorImpl> make(size_t nbytes);
  /// Destroys the tensor (dropping its accumulator, if any: drop_accumulator) and frees its
  /// memory: at once, or with its storage (see Storage).
  static void operator delete(TensorImpl* p, std::destroying_delete_t) noexcept;
  TensorImpl(const TensorImpl&) = delete;  ///< shared through Ref, never copied (a copy would share the accumulator pointer)
  TensorImpl& operator=(const TensorImpl&) = delete;  ///< not copyable
  /// The storage made with this tensor, in its block (null for a view or alias); `storage` is
  /// another one after set_data.
  Storage* own_storage() const noexcept;
  /// No other tensor shares the storage (false when that cannot be known for certain).
  bool storage_unshared() const noexcept;

  Ref<Storage> storage;  ///< the buffer, shared with every view
  Shape shape;  ///< sizes per dimension
  Shape strides;  ///< elements to step per dimension
  int64_t offset = 0;  ///< in elements
  Dtype dtype = Dtype::float32;  ///< element type
  bool is_view = false;  ///< shares storage with the tensor it was made from
  /// A view's storage's history when its grad_fn was made: when they differ, an in-place op has
  /// since recorded a new history for the values the view shows, and the engine makes its
  /// grad_fn again from the base's (gradient_edge), as PyTorch does.
  uint32_t history_seen = 0;
  /// A view whose storage has had a recorded in-place write since its grad_fn was made.
  bool history_out_of_date() const { return is_view && history_seen != storage->history; }

  /// autograd: a leaf that requires grad has requires_grad set and no grad_fn; a non-leaf has a
  /// grad_fn (the node that produced it).
  bool requires_grad = false;
  Ref<Node> grad_fn;  ///< the node that produced this tensor (null for leaves)
  /// A leaf's AccumulateGrad node, made when the first op on the leaf is recorded and held (one
  /// reference) until the leaf goes; atomic, so that two threads recording on one leaf make one.
  std::atomic<AccumulateGrad*> grad_accumulator{nullptr};
  /// Lets go of the accumulator, which forgets the leaf: a graph still holding it sends the leaf
  /// no gradient (after set_data to another shape or dtype; a graph reached only through a node
  /// taken from it once the leaf is gone). In engine.cpp.
  void drop_accumulator() noexcept;
  /// For a view made by a view op (select, slice, reshape, t, ...): the tensor that is not such
  /// a view whose elements it shows. An in-place op on the view records a new history for the
  /// base; a view whose history is out of date takes the base's.
  Ref<TensorImpl> view_base;
  Ref<TensorImpl> grad;  ///< .grad, filled by backward
  Ref<GradSlot> retained;  ///< where retain_grad keeps a non-leaf's gradient (null: not retained)
  TensorHooks hooks;  ///< leaf hooks (null: none); a non-leaf's hooks live on its grad_fn

 private:
  /// User-provided, so that value-initialisation does not zero the whole object before the
  /// member initialisers run (a `rep stos` of 248 bytes on every op, in `perf annotate`).
  TensorImpl() noexcept {}  // NOLINT: not `= default` on purpose
  bool has_block_storage_ = false;  // made by make(nbytes): own_storage() is in the block
};

/// The gradient retain_grad keeps for a non-leaf, shared by the tensor and the hook that fills
/// it (the hook lives in the graph and may outlive the tensor, or the tensor the graph).
struct GradSlot : RefCounted {
  Ref<TensorImpl> grad;  ///< the accumulated gradient (null until a backward reaches it)
};

/// A view whose history is out of date (see TensorImpl::history_seen) requires grad when its base
/// does (out of line: Tensor::requires_grad asks it only for views without a grad_fn).
bool stale_view_requires_grad(const TensorImpl& view);

/// A handle to a strided, typed, reference-counted array that can take part in autograd. Copying a
/// Tensor copies the handle (both see the same data), as in PyTorch; clone() copies the data.
/// Scalars are 0-d tensors.
class Tensor {
 public:
  Tensor() = default;  ///< an undefined tensor (defined() is false)
  /// Wraps an implementation (used by ops).
  explicit Tensor(Ref<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }  ///< false for a default-constructed Tensor
  TensorImpl* impl() const { return impl_.get(); }  ///< the implementation, for ops and the engine
  const Ref<TensorImpl>& impl_ptr() const { return impl_; }  ///< the counted implementation pointer
  bool same(const Tensor& other) const { return impl_ == other.impl_; }  ///< both handles point to the same tensor

  /// @name metadata
  /// @{
  const Shape& shape() const { return checked().shape; }  ///< sizes per dimension
  const Shape& strides() const { return checked().strides; }  ///< elements to step per dimension
  int64_t size(int64_t dim) const;  ///< size of dimension dim (negative counts from the end); an Error for a 0-d tensor
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }  ///< number of dimensions (0 for a scalar)
  int64_t numel() const { return shape().numel(); }  ///< number of elements
  Dtype dtype() const { return checked().dtype; }  ///< element type
  /// Offset of the first element in the storage, in elements.
  int64_t storage_offset() const { return checked().offset; }
  /// Row-major without gaps, or without elements (inline: every elementwise op and rule asks,
  /// several times).
  bool is_contiguous() const {
    const TensorImpl& s = checked();
    int64_t expected = 1;
    for (size_t i = s.shape.size(); i-- > 0;) {
      // a tensor without elements is contiguous whatever its strides, as in PyTorch
      if (s.shape[i] != 1 && s.strides[i] != expected) return s.shape.numel() == 0;
      expected *= s.shape[i];
    }
    return true;
  }
  uint32_t version() const { return checked().storage->version; }  ///< the storage's in-place version counter
  /// @}

  /// @name element access
  /// @{
  template <class T> T item() const;  ///< the single element of a one-element tensor, converted to T
  template <class T> T* data() const;                 ///< contiguous tensors of dtype T only
  template <class T> std::vector<T> to_vector() const;  ///< a copy in row-major order, any layout
  void* raw_data() const;                              ///< first element, any dtype
  /// @}

  /// @name autograd
  /// @{
  /// A leaf that asked for gradients, or a result computed from one.
  [[gnu::always_inline]] bool requires_grad() const {
    const TensorImpl& s = checked();
    return s.requires_grad || s.grad_fn != nullptr || (s.is_view && stale_view_requires_grad(s));
  }
  Tensor& requires_grad_(bool requires_grad = true);  ///< makes a leaf record gradients (PyTorch's requires_grad_)
  bool is_leaf() const { return checked().grad_fn == nullptr; }  ///< created by the user, not by an op (no grad_fn)
  Tensor grad() const;  ///< the accumulated gradient (undefined until a backward reaches this tensor)
  Tensor& set_grad(const Tensor& grad);  ///< replace (or clear, with an undefined Tensor) .grad
  /// The node that produced this tensor (null for leaves); for a view whose base was modified in
  /// place since it was taken, its new history (as the engine would take it on use).
  const Ref<Node>& grad_fn() const;
  /// Backpropagates from this tensor (a scalar, or pass `gradient` of its shape) into the .grad of
  /// every leaf; frees the graph unless retain_graph; create_graph records the backward pass
  /// itself.
  void backward(const Tensor& gradient = {}, bool retain_graph = false, bool create_graph = false) const;
  Tensor detach() const;  ///< a tensor sharing the data but cut from the graph
  /// Replaces this tensor's data (storage, shape, dtype) with `data`'s, keeping its identity
  /// and requires_grad (as PyTorch's `param.data = ...`); clears .grad if the dtype or shape
  /// changes (a gradient of the old shape would fail the next accumulation), and a graph
  /// recorded before such a change sends the tensor no gradient.
  /// The old buffer is returned at once when nothing else reads it; one that a view still
  /// reads stays until this tensor goes (its storage shares the tensor's pool block).
  void set_data(const Tensor& data) const;
  /// Registers a hook called with this tensor's gradient during backward; a defined return
  /// value replaces the gradient (it must have the gradient's shape and dtype).
  void register_hook(TensorHook hook) const;
  void retain_grad() const;  ///< keep .grad on a non-leaf after backward
  /// @}

  /// @name conversion and copies
  /// @{
  Tensor to(Dtype dtype) const;  ///< a copy in another dtype (differentiable; itself when the dtype matches)
  Tensor contiguous() const;  ///< itself if contiguous, else a row-major copy
  Tensor clone() const;  ///< a copy of the data (differentiable)
  /// @}

  /// @name shape ops (views where possible)
  /// @{
  /// The same elements in another shape (a view when the strides allow; one size may be -1).
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;  ///< a view with another shape; an Error if the strides do not allow one
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;  ///< merges dimensions start_dim..end_dim into one
  Tensor t() const;  ///< transpose of a 2-D tensor (a view)
  Tensor transpose(int64_t dim0, int64_t dim1) const;  ///< swaps two dimensions (a view)
  Tensor permute(const Shape& dims) const;  ///< reorders the dimensions (a view)
  Tensor expand(const Shape& shape) const;  ///< broadcasts size-1 dimensions to `shape` without copying (a view)
  Tensor squeeze() const;  ///< drops every size-1 dimension (a view)
  Tensor squeeze(int64_t dim) const;  ///< drops dimension dim if its size is 1 (a view)
  Tensor unsqueeze(int64_t dim) const;  ///< inserts a size-1 dimension at dim (a view)
  /// Elements start..start+length-1 along dim (a view; a negative start counts from the end). Unlike
  /// slice it does not clip: a range that does not fit the dimension is an Error, as in PyTorch.
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  /// Python's x[start:end:step] along dim (a view; negative bounds count from the end).
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  ///< index along dim, dropping that dimension (a view)
  Tensor operator[](int64_t index) const { return select(0, index); }  ///< select(0, index)
  /// @}

  /// @name reductions as methods, for readability
  /// @{
  Tensor sum() const;  ///< the sum of all elements (0-d)
  Tensor mean() const;  ///< the mean of all elements (0-d)
  /// @}

  /// @name in place (bump the version counter)
  /// @{
  Tensor& add_(const Tensor& other, double alpha = 1.0);  ///< this += alpha * other, in place (broadcasting other)
  Tensor& add_(double other);  ///< this += other, in place
  Tensor& sub_(const Tensor& other);  ///< this -= other, in place
  Tensor& sub_(double other);  ///< this -= other, in place
  Tensor& mul_(const Tensor& other);  ///< this *= other, in place
  Tensor& mul_(double other);  ///< this *= other, in place
  Tensor& div_(const Tensor& other);  ///< this /= other, in place
  Tensor& div_(double other);  ///< this /= other, in place
  Tensor& zero_();  ///< sets every element to 0, in place
  Tensor& fill_(double value);  ///< sets every element to value, in place
  Tensor& copy_(const Tensor& src);  ///< copies src's values (broadcast, converted) into this tensor, in place
  /// @}
 private:
  const TensorImpl& checked() const {
    if (!impl_) [[unlikely]]
      undefined_error();
    return *impl_;
  }
  [[noreturn]] static void undefined_error();
  Ref<TensorImpl> impl_;
};

// ---------------------------------------------------------------- factories

/// A tensor of `shape` holding `values` in row-major order (dtype: the default dtype unless given).
Tensor tensor(const std::vector<double>& values, const Shape& shape, std::optional<Dtype> dtype = {});
/// A tensor of `shape` holding `values` in row-major order.
Tensor tensor(std::initializer_list<double> values, const Shape& shape, std::optional<Dtype> dtype = {});
Tensor tensor(std::initializer_list<double> values, std::optional<Dtype> dtype = {});  ///< 1-d
Tensor tensor(double value, std::optional<Dtype> dtype = {});                           ///< 0-d
Tensor empty(const Shape& shape, std::optional<Dtype> dtype = {});  ///< a tensor of `shape` with uninitialised contents
Tensor zeros(const Shape& shape, std::optional<Dtype> dtype = {});  ///< a tensor of `shape` filled with 0
Tensor ones(const Shape& shape, std::optional<Dtype> dtype = {});  ///< a tensor of `shape` filled with 1
/// A tensor of `shape` filled with `value`.
Tensor full(const Shape& shape, double value, std::optional<Dtype> dtype = {});
Tensor zeros_like(const Tensor& t, std::optional<Dtype> dtype = {});  ///< zeros of t's shape (and dtype unless given)
Tensor ones_like(const Tensor& t, std::optional<Dtype> dtype = {});  ///< ones of t's shape (and dtype unless given)
/// `value` in t's shape (and dtype unless given).
Tensor full_like(const Tensor& t, double value, std::optional<Dtype> dtype = {});
Tensor arange(double end, std::optional<Dtype> dtype = {});  ///< 0, 1, ..., up to but not including end
/// Start, start+step, ..., up to but not including end.
Tensor arange(double start, double end, double step = 1.0, std::optional<Dtype> dtype = {});
/// `steps` evenly spaced values from start to end inclusive.
Tensor linspace(double start, double end, int64_t steps, std::optional<Dtype> dtype = {});
Tensor eye(int64_t n, std::optional<Dtype> dtype = {});  ///< the n x n identity matrix
Tensor rand(const Shape& shape, std::optional<Dtype> dtype = {}, Generator* gen = nullptr);   ///< U[0, 1)
Tensor randn(const Shape& shape, std::optional<Dtype> dtype = {}, Generator* gen = nullptr);  ///< N(0, 1)
Tensor randint(int64_t low, int64_t high, const Shape& shape, std::optional<Dtype> dtype = {},
               Generator* gen = nullptr);  ///< U{low, ..., high-1}, int64 unless asked otherwise

// ---------------------------------------------------------------- elementwise
/// The dtype of a binary op on a and b, as PyTorch's torch.result_type: the promoted dtype
/// (int64 < float32 < float64), except that a 0-d tensor beside one with dimensions counts only
/// when it is floating and the other is not (float32 data times a float64 0-d tensor stays
/// float32; int64 data plus a float64 0-d tensor is float64).
Dtype result_type(const Tensor& a, const Tensor& b);
/// A + b elementwise, broadcasting as NumPy; the result has result_type(a, b).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);  ///< a - b elementwise, broadcasting
Tensor mul(const Tensor& a, const Tensor& b);  ///< a * b elementwise, broadcasting
Tensor div(const Tensor& a, const Tensor& b);  ///< a / b elementwise, broadcasting
/// A ^ b elementwise, broadcasting (d/db uses log a; 0 where a = 0 and b > 0).
Tensor pow(const Tensor& a, const Tensor& b);
/// a ^ exponent elementwise; an int64 a gives the default floating dtype (a double scalar's rule).
Tensor pow(const Tensor& a, double exponent);
Tensor pow(double base, const Tensor& exponent);  ///< base ^ exponent elementwise (floating)
/// x ^ exponent for an integer exponent: exact in int64 for an int64 x (wrapping on overflow; a
/// negative exponent is an Error, as in PyTorch), pow(x, double(exponent)) for a floating x.
Tensor integer_pow(const Tensor& x, int64_t exponent);
/// pow(x, 2): integer_pow, so that an int64 x stays int64 (pow(x, 2.0) goes floating).
template <std::integral I>
Tensor pow(const Tensor& x, I exponent) {
  return integer_pow(x, static_cast<int64_t>(exponent));
}
/// pow(x, 2) of a temporary x that a - b or a + b made joins that op's node ("sub_pow"), as the
/// activations join theirs, and sum of that joins it too ("sub_pow_sum": sum(pow(y - a, 2)) is
/// one node); the values and gradients are the separate ops'. Other exponents: pow(x, exponent).
Tensor pow(Tensor&& x, double exponent);
Tensor integer_pow(Tensor&& x, int64_t exponent);  ///< integer_pow of a temporary (pow(Tensor&&, double)'s join)
/// pow(x, 2) of a temporary: integer_pow(Tensor&&).
template <std::integral I>
Tensor pow(Tensor&& x, I exponent) {
  return integer_pow(std::move(x), static_cast<int64_t>(exponent));
}
/// The larger of a and b elementwise (a tie splits the gradient evenly).
Tensor maximum(const Tensor& a, const Tensor& b);
/// The smaller of a and b elementwise (a tie splits the gradient evenly).
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);  ///< -x
Tensor exp(const Tensor& x);  ///< e^x
Tensor log(const Tensor& x);  ///< natural logarithm
Tensor log1p(const Tensor& x);  ///< log(1 + x), accurate for small x
Tensor expm1(const Tensor& x);  ///< e^x - 1, accurate for small x
Tensor sqrt(const Tensor& x);  ///< square root
Tensor abs(const Tensor& x);  ///< |x| (derivative 0 at 0)
Tensor sign(const Tensor& x);  ///< -1, 0 or 1; its gradient is 0 (recorded, so that sign(x) * x differentiates)
Tensor erf(const Tensor& x);  ///< the error function
Tensor sin(const Tensor& x);  ///< sine
Tensor cos(const Tensor& x);  ///< cosine
Tensor tan(const Tensor& x);  ///< tangent; d tan = 1 + y^2
Tensor asin(const Tensor& x);  ///< arcsine (NaN outside [-1, 1])
Tensor acos(const Tensor& x);  ///< arccosine (NaN outside [-1, 1])
Tensor atan(const Tensor& x);  ///< arctangent
Tensor sinh(const Tensor& x);  ///< hyperbolic sine
Tensor cosh(const Tensor& x);  ///< hyperbolic cosine
Tensor asinh(const Tensor& x);  ///< inverse hyperbolic sine
Tensor acosh(const Tensor& x);  ///< inverse hyperbolic cosine (NaN below 1)
Tensor atanh(const Tensor& x);  ///< inverse hyperbolic tangent (NaN outside [-1, 1])
Tensor reciprocal(const Tensor& x);  ///< 1 / x; d = -y^2
Tensor rsqrt(const Tensor& x);  ///< 1 / sqrt(x); d = -y^3 / 2
Tensor log2(const Tensor& x);  ///< base-2 logarithm
Tensor log10(const Tensor& x);  ///< base-10 logarithm
Tensor exp2(const Tensor& x);  ///< 2^x
Tensor square(const Tensor& x);  ///< x * x (pow(x, 2): an int64 x stays int64)
/// The rounding ops keep int64 as it is; their gradient is 0 everywhere (PyTorch's convention,
/// also at the jumps), frac's (x - trunc(x)) is 1. round rounds halves to even, as PyTorch's.
Tensor floor(const Tensor& x);
Tensor ceil(const Tensor& x);  ///< the smallest integer not below x (see floor)
Tensor round(const Tensor& x);  ///< the nearest integer, halves to even (see floor)
Tensor trunc(const Tensor& x);  ///< x rounded towards 0 (see floor)
Tensor frac(const Tensor& x);  ///< x - trunc(x), gradient 1 (see floor)
/// The angle of the point (b, a) in (-pi, pi], elementwise with broadcasting, as std::atan2;
/// d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2).
Tensor atan2(const Tensor& a, const Tensor& b);
Tensor tanh(const Tensor& x);  ///< hyperbolic tangent; d tanh = 1 - y^2
Tensor sigmoid(const Tensor& x);  ///< 1 / (1 + e^-x); d sigmoid = y (1 - y)
Tensor relu(const Tensor& x);  ///< max(x, 0) (derivative 0 at 0); a NaN stays NaN, as in PyTorch
/// tanh of a temporary (`tanh(y * a + b)`): the same values and gradients, but when nothing else
/// can see the temporary it is activated in its own buffer, and its op's node takes tanh's
/// derivative ("add_tanh"): one node, not two (fused_activation, activate_temporary).
Tensor tanh(Tensor&& x);
Tensor sigmoid(Tensor&& x);  ///< sigmoid of a temporary, joining its op's node as tanh's does ("matmul_sigmoid")
Tensor relu(Tensor&& x);  ///< relu of a temporary, joining its op's node as tanh's does ("linear_relu")
/// X limited to [min, max] (either bound optional); gradient 1 inside, 0 where clamped. The
/// bounds are doubles: an int64 x gives the default floating dtype (clamp(i, 0, 3) keeps int64).
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);  ///< condition != 0 picks a

/// Comparisons return masks (1 where true, 0 elsewhere) in result_type(a, b); no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);  ///< mask of a != b
Tensor lt(const Tensor& a, const Tensor& b);  ///< mask of a < b
Tensor le(const Tensor& a, const Tensor& b);  ///< mask of a <= b
Tensor gt(const Tensor& a, const Tensor& b);  ///< mask of a > b
Tensor ge(const Tensor& a, const Tensor& b);  ///< mask of a >= b
Tensor isfinite(const Tensor& x);  ///< mask of the elements that are neither infinite nor NaN

// ---------------------------------------------------------------- reductions
/// What max(x, dim) and min(x, dim) return.
struct ValuesIndices {
  Tensor values;  ///< the extreme values
  Tensor indices;  ///< where they are along the reduced dimension (int64)
};
Tensor sum(const Tensor& x);  ///< the sum of all elements (0-d)
/// The sum of a temporary: joins the node of a square that joined a - b or a + b (pow(Tensor&&, double)).
Tensor sum(Tensor&& x);
Tensor mean(Tensor&& x);  ///< sum(Tensor&&) / numel: mean(pow(y - a, 2)) is two nodes, "sub_pow_sum" and "div"
/// The sum over `dims`, which are dropped unless keepdim.
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);  ///< the sum over dim, which is dropped unless keepdim
Tensor mean(const Tensor& x);  ///< the mean of all elements (0-d)
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);  ///< the mean over `dims`
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);  ///< the mean over dim
Tensor max(const Tensor& x);  ///< the largest element (0-d; ties share the gradient evenly)
/// The largest elements along dim and their indices.
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x);  ///< the smallest element (0-d; ties share the gradient evenly)
/// The smallest elements along dim and their indices.
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim = false);  ///< the largest elements over `dims`
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim = false);  ///< the smallest elements over `dims`
Tensor argmax(const Tensor& x);  ///< the flat index of the largest element (int64, 0-d)
/// The indices of the largest elements along dim (int64).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x);  ///< the flat index of the smallest element (int64, 0-d)
/// The indices of the smallest elements along dim (int64).
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
/// X sorted along dim and where each value came from (int64), as torch.sort(stable=True): equal
/// elements keep their order, NaN sorts above every number (last, or first when descending).
/// The gradient goes back to where each value came from.
ValuesIndices sort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The positions that sort x along dim: sort(x, dim, descending).indices.
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The k largest (or smallest) elements along dim, in that order, and their indices (torch.topk;
/// of equal elements, the first ones).
ValuesIndices topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
/// The k-th smallest element along dim (k from 1) and its index (torch.kthvalue; NaN above
/// every number; of equal elements, the first).
ValuesIndices kthvalue(const Tensor& x, int64_t k, int64_t dim = -1, bool keepdim = false);
/// The median of all elements: for an even count the lower of the two middle ones, NaN when
/// any is NaN (torch.median). Its gradient is shared evenly between the elements equal to it.
Tensor median(const Tensor& x);
/// The median along dim and its index: the lower middle element, or a row's first NaN (the
/// gradient goes to that index).
ValuesIndices median(const Tensor& x, int64_t dim, bool keepdim = false);
/// The variance of all elements, dividing by N - correction (1: unbiased).
Tensor var(const Tensor& x, int64_t correction = 1);
/// The variance over `dims`, dividing by N - correction.
Tensor var(const Tensor& x, const Shape& dims, int64_t correction = 1, bool keepdim = false);
/// The standard deviation of all elements: sqrt(var(x, correction)).
Tensor std(const Tensor& x, int64_t correction = 1);
/// The standard deviation over `dims`: sqrt(var(x, dims, correction, keepdim)).
Tensor std(const Tensor& x, const Shape& dims, int64_t correction = 1, bool keepdim = false);
/// The p-norm over `dims` (all of them when empty), as torch.linalg.vector_norm: (sum |x|^p)^(1/p)
/// for p > 0, max |x| for INFINITY, min |x| for -INFINITY, the number of non-zeros for 0 (which
/// has no gradient). The gradient is PyTorch's: 0 where the norm is 0 (the composition
/// sqrt(sum(x * x)) gives NaN there), split between the ties of max |x| for INFINITY.
Tensor norm(const Tensor& x, double p = 2, const Shape& dims = {}, bool keepdim = false);
/// Running sums along dim: y_i = x_0 + ... + x_i (int64 stays int64).
Tensor cumsum(const Tensor& x, int64_t dim);
/// Running products along dim: y_i = x_0 * ... * x_i (int64 stays int64). Its gradient is exact
/// where x has zeros (PyTorch's rule, differentiable again).
Tensor cumprod(const Tensor& x, int64_t dim);
/// The product of all elements (1 for none); the gradient is the product of the others, exact
/// with zeros, as PyTorch's.
Tensor prod(const Tensor& x);
/// The product over dim (kept as size 1 when keepdim).
Tensor prod(const Tensor& x, int64_t dim, bool keepdim = false);
/// Log(sum(exp(x))) over `dims`, computed without overflow.
Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim = false);
/// Log(sum(exp(x))) over dim, computed without overflow.
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);  ///< exp(x) / sum(exp(x)) along dim, computed without overflow
Tensor log_softmax(const Tensor& x, int64_t dim);  ///< x - logsumexp(x, dim), stable
/// Sums `x` over the dimensions along which `shape` was broadcast to x.shape() (the adjoint of
/// expand).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---------------------------------------------------------------- linear algebra
/// Matrix product as numpy.matmul: 1-D vectors, 2-D matrices, batched (broadcast) stacks; CBLAS
/// underneath.
Tensor matmul(const Tensor& a, const Tensor& b);
/// x @ weight^T + bias, as torch.nn.functional.linear: x [..., in], weight [out, in], bias [out]
/// (optional); one BLAS call with the bias as its beta = 1 term (no separate add pass).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
/// The activations linear can apply inside its own op: those whose derivative is written with
/// their output.
enum class LinearActivation : uint8_t { none, relu, sigmoid, tanh };
/// activation(x @ weight^T + bias) as one op: one node ("linear_relu", ...) and one output, the
/// activation applied in place to the product. The same values and gradients, bit for bit, as
/// linear followed by relu, sigmoid or tanh; nn::Sequential (and so nn::MLP) uses it for a Linear
/// followed by one of those activation modules.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation activation);

// ---------------------------------------------------------------- shape and indexing
Tensor reshape(const Tensor& x, const Shape& shape);  ///< x.reshape(shape)
Tensor view(const Tensor& x, const Shape& shape);  ///< x.view(shape)
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);  ///< x.transpose(dim0, dim1)
Tensor permute(const Tensor& x, const Shape& dims);  ///< x.permute(dims)
Tensor expand(const Tensor& x, const Shape& shape);  ///< x.expand(shape)
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim = {});  ///< drops size-1 dimensions (all, or only dim)
Tensor unsqueeze(const Tensor& x, int64_t dim);  ///< x.unsqueeze(dim)
/// X.slice(dim, start, end, step).
Tensor slice(const Tensor& x, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);  ///< x.select(dim, index)
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);  ///< joins tensors along an existing dimension (dtypes promoted)
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);  ///< joins same-shaped tensors along a new dimension (dtypes promoted)
/// Out[i][j] = x[index[i][j]][j] (dim 0; likewise for other dims), as torch.gather.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// X with src added at the positions index names along dim (torch.scatter_add).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
/// The slices of x along dim listed in index (int64, 1-D).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// X with source's slices added at the positions index lists along dim.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source);
Tensor to_dtype(const Tensor& x, Dtype dtype);  ///< x.to(dtype)
/// X with the order of its elements reversed along each of dims (a copy, as torch.flip).
Tensor flip(const Tensor& x, const Shape& dims);
/// X's elements shifted by shifts[i] places along dims[i], wrapping around (torch.roll); without
/// dims, one shift over the flattened tensor.
Tensor roll(const Tensor& x, const Shape& shifts, const Shape& dims = {});
/// X tiled repeats[i] times along dim i (torch.repeat); more repeats than dims add leading dims.
Tensor repeat(const Tensor& x, const Shape& repeats);
/// The lower triangle of the last two dims: elements with column - row <= diagonal, 0 elsewhere.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
/// The upper triangle of the last two dims: elements with column - row >= diagonal, 0 elsewhere.
Tensor triu(const Tensor& x, int64_t diagonal = 0);
/// X with `value` where mask (broadcast against x) is nonzero; no gradient reaches those places.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
/// Views of x's consecutive pieces of split_size along dim (the last may be shorter).
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
/// Views of x's consecutive pieces of the given sizes along dim (they must add up to its size;
/// any number of pieces).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
/// At most `chunks` views of ceil(size / chunks) along dim, as torch.chunk.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// Every slice of x along dim, as views (torch.unbind).
std::vector<Tensor> unbind(const Tensor& x, int64_t dim = 0);

// ---------------------------------------------------------------- operators
Tensor operator+(const Tensor& a, const Tensor& b);  ///< add(a, b)
Tensor operator-(const Tensor& a, const Tensor& b);  ///< sub(a, b)
Tensor operator*(const Tensor& a, const Tensor& b);  ///< mul(a, b)
Tensor operator/(const Tensor& a, const Tensor& b);  ///< div(a, b)
Tensor operator-(const Tensor& x);  ///< neg(x)
/// a + b with a a temporary (`y * w + b`): the same values and gradient, written into a's buffer
/// when nothing else can see it (the result is a's tensor, recorded as add's output).
Tensor operator+(Tensor&& a, const Tensor& b);
Tensor operator-(Tensor&& a, const Tensor& b);  ///< a - b with a a temporary, into a's buffer as operator+'s
// With a scalar, the scalar's C++ type decides the result's dtype, as in PyTorch's C++
// frontend: a double makes an int64 tensor's result the default floating dtype (i * 2.0 is
// float32, whatever the value), an integer keeps int64 (i * 2); a floating tensor keeps its dtype.
Tensor operator+(const Tensor& a, double b);  ///< a + b, b a scalar: a's dtype if floating, else the default floating dtype
Tensor operator-(const Tensor& a, double b);  ///< a - b
Tensor operator*(const Tensor& a, double b);  ///< a * b
Tensor operator/(const Tensor& a, double b);  ///< a / b
Tensor operator+(double a, const Tensor& b);  ///< a + b, a a scalar: b's dtype if floating, else the default floating dtype
Tensor operator-(double a, const Tensor& b);  ///< a - b
Tensor operator*(double a, const Tensor& b);  ///< a * b
Tensor operator/(double a, const Tensor& b);  ///< a / b
/// A 0-d tensor holding an integer scalar: in like's dtype (int64 stays int64).
Tensor integer_scalar_like(int64_t value, const Tensor& like);
/// A 0-d tensor holding a double scalar: in like's dtype if floating, else the default floating dtype.
Tensor floating_scalar_like(double value, const Tensor& like);
/// clamp(x, 0, 3) with integer bounds: an int64 x stays int64 (exact; max wins when min > max, as
/// in PyTorch), a floating x is clamp(x, 0.0, 3.0).
template <std::integral I>
Tensor clamp(const Tensor& x, I min, I max) {
  if (is_floating(x.dtype())) return clamp(x, static_cast<double>(min), static_cast<double>(max));
  return minimum(maximum(x, integer_scalar_like(static_cast<int64_t>(min), x)),
                 integer_scalar_like(static_cast<int64_t>(max), x));
}
/// pow(2, e): an int64 e gives an int64 power, a floating one pow(2.0, e).
template <std::integral I>
Tensor pow(I base, const Tensor& exponent) {
  return pow(integer_scalar_like(static_cast<int64_t>(base), exponent), exponent);
}
template <std::integral I>
Tensor operator+(const Tensor& a, I b) {  ///< a + b, b an integer scalar in a's dtype
  return add(a, integer_scalar_like(static_cast<int64_t>(b), a));
}
template <std::integral I>
Tensor operator-(const Tensor& a, I b) {  ///< a - b
  return sub(a, integer_scalar_like(static_cast<int64_t>(b), a));
}
template <std::integral I>
Tensor operator*(const Tensor& a, I b) {  ///< a * b
  return mul(a, integer_scalar_like(static_cast<int64_t>(b), a));
}
template <std::integral I>
Tensor operator/(const Tensor& a, I b) {  ///< a / b, true division (an int64 a gives a floating result)
  return div(a, integer_scalar_like(static_cast<int64_t>(b), a));
}
template <std::integral I>
Tensor operator+(I a, const Tensor& b) {  ///< a + b, a an integer scalar in b's dtype
  return add(integer_scalar_like(static_cast<int64_t>(a), b), b);
}
template <std::integral I>
Tensor operator-(I a, const Tensor& b) {  ///< a - b
  return sub(integer_scalar_like(static_cast<int64_t>(a), b), b);
}
template <std::integral I>
Tensor operator*(I a, const Tensor& b) {  ///< a * b
  return mul(integer_scalar_like(static_cast<int64_t>(a), b), b);
}
template <std::integral I>
Tensor operator/(I a, const Tensor& b) {  ///< a / b
  return div(integer_scalar_like(static_cast<int64_t>(a), b), b);
}
Tensor operator==(const Tensor& a, const Tensor& b);  ///< eq(a, b)
Tensor operator!=(const Tensor& a, const Tensor& b);  ///< ne(a, b)
Tensor operator<(const Tensor& a, const Tensor& b);  ///< lt(a, b)
Tensor operator<=(const Tensor& a, const Tensor& b);  ///< le(a, b)
Tensor operator>(const Tensor& a, const Tensor& b);  ///< gt(a, b)
Tensor operator>=(const Tensor& a, const Tensor& b);  ///< ge(a, b)
Tensor operator==(const Tensor& a, double b);  ///< mask of a == b
Tensor operator!=(const Tensor& a, double b);  ///< mask of a != b
Tensor operator<(const Tensor& a, double b);  ///< mask of a < b
Tensor operator<=(const Tensor& a, double b);  ///< mask of a <= b
Tensor operator>(const Tensor& a, double b);  ///< mask of a > b
Tensor operator>=(const Tensor& a, double b);  ///< mask of a >= b

/// A 0-d tensor holding `value` in the dtype an op with `like` should use.
Tensor scalar_like(double value, const Tensor& like);

/// True when every element of a and b (same shape) satisfies |a-b| <= atol + rtol*|b|.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

/// Threads for matrix products (OpenBLAS's) and for large elementwise loops, sums and optimizer
/// updates (chainrule's own helpers, which sleep between loops); default: all cores. Set it to
/// 1 when the program runs its own worker threads.
void set_num_threads(int n);
int get_num_threads();  ///< the thread count in use

/// "[2, 3] float64" — how error messages name a tensor.
std::string describe(const Tensor& t);

}  // namespace chainrule

// Prints a tensor as PyTorch does: `tensor([[1, 2], [3, 4]], dtype=float64)`.
/// \cond
template <>
struct fmt::formatter<chainrule::Tensor> {
  constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
  format_context::iterator format(const chainrule::Tensor& t, format_context& ctx) const;
};
/// \endcond
