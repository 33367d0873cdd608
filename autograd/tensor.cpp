#include "tensor.hpp"

#include "engine.hpp"
#include "kernels.hpp"
#include "pool.hpp"
#include "random.hpp"

#include <cmath>
#include <cstdlib>
#include <numbers>

namespace chainrule {

// ---------------------------------------------------------------- storage, shapes, dtypes

Storage::Storage(size_t n) : nbytes(n) {
  if (n <= kInlineBytes) {
    data = inline_bytes;
    return;
  }
  try {
    data = pool::allocate(n);
  } catch (const std::bad_alloc&) {
    fail("out of memory allocating {} bytes", n);
  }
}
Storage::~Storage() { release_buffer(); }

void Storage::release_buffer() noexcept {
  if (data != inline_bytes) pool::deallocate(data, nbytes);
  data = inline_bytes;
  nbytes = 0;
}

// A tensor made with its storage: one pool block, the tensor first, the storage at the next
// 64-byte boundary (the pool's blocks are 64-byte aligned). The block is 64 bytes longer than
// the two need, so that it is not in the pool class of the graph's nodes: at 384 bytes, the
// class of FunctionNode, the 10,000-link chains of bench/ops_overhead ran at 196-204 ns/op
// instead of 111-118 (a destroyed graph leaves both kinds of block on one free list, and the
// next graph takes them in an order that scatters its memory).
namespace {
constexpr size_t kStorageOffset = (sizeof(TensorImpl) + alignof(Storage) - 1) / alignof(Storage) * alignof(Storage);
constexpr size_t kBlockBytes = kStorageOffset + sizeof(Storage) + 64;
static_assert(pool::detail::small_class(kBlockBytes) != pool::detail::small_class(sizeof(FunctionNode)));
}  // namespace

Ref<TensorImpl> TensorImpl::make() {
  refcount::merge_pending();
  return Ref<TensorImpl>::adopt(::new (pool::allocate(sizeof(TensorImpl))) TensorImpl());
}

Ref<TensorImpl> TensorImpl::make(size_t nbytes) {
  refcount::merge_pending();
  void* block = pool::allocate(kBlockBytes);
  Storage* storage = nullptr;
  try {
    storage = ::new (static_cast<char*>(block) + kStorageOffset) Storage(nbytes);
  } catch (...) {
    pool::deallocate(block, kBlockBytes);
    throw;
  }
  auto* impl = ::new (block) TensorImpl();
  impl->has_block_storage_ = true;
  impl->storage = Ref<Storage>::adopt(storage);
  Ref<Storage>(impl->storage).release_counted();  // the block's hold, dropped when the tensor goes
  return Ref<TensorImpl>::adopt(impl);
}

Storage* TensorImpl::own_storage() const noexcept {
  if (!has_block_storage_) return nullptr;
  return std::launder(reinterpret_cast<Storage*>(reinterpret_cast<uintptr_t>(this) + kStorageOffset));
}

bool TensorImpl::storage_unshared() const noexcept {
  return storage->has_exactly(storage.get() == own_storage() ? 2 : 1);  // 2: its reference and the block's hold
}

void TensorImpl::operator delete(TensorImpl* p, std::destroying_delete_t) noexcept {
  // Here rather than in a destructor of its own, which the compiler no longer inlined below (15
  // more instructions an op on the 100-link tanh chain). A plain load: most tensors have none.
  if (p->grad_accumulator.load(std::memory_order_relaxed)) p->drop_accumulator();
  Storage* own = p->own_storage();
  if (!own) {
    p->~TensorImpl();
    pool::deallocate(p, sizeof(TensorImpl));
    return;
  }
  if (p->storage.get() == own && p->storage_unshared()) {  // nobody else has the storage: both go now
    p->storage.release_counted();
    p->~TensorImpl();
    own->~Storage();
    pool::deallocate(p, kBlockBytes);
    return;
  }
  p->~TensorImpl();
  Ref<Storage>::adopt(own).reset();  // the block's hold: the storage's last reference frees the block
}

void Storage::operator delete(Storage* p, std::destroying_delete_t) noexcept {
  p->~Storage();
  pool::deallocate(reinterpret_cast<char*>(p) - kStorageOffset, kBlockBytes);
}

namespace {
thread_local Dtype g_default_dtype = Dtype::float32;
}
Dtype default_dtype() { return g_default_dtype; }
void set_default_dtype(Dtype d) {
  if (!is_floating(d)) fail("set_default_dtype: expected float32 or float64, got {}", d);
  g_default_dtype = d;
}

std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape) {
  Shape out;
  out.resize(new_shape.size());
  if (shape.numel() == 0 || shape.empty()) {  // no elements to lay out, or one: any strides do
    if (shape == new_shape) return strides;
    contiguous_strides_into(new_shape, out);
    return out;
  }
  // Walk both shapes from the last dim: each run of old dims contiguous within itself (ending
  // where the next dim up does not step over the run) takes new dims of the same element count.
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t base_stride = strides.back(), run_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    run_numel *= shape[d];
    if (d > 0 && (shape[d - 1] == 1 || strides[d - 1] == run_numel * base_stride)) continue;  // the run goes on
    while (view_d >= 0 && (view_numel < run_numel || new_shape[view_d] == 1)) {
      out[view_d] = view_numel * base_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != run_numel) return std::nullopt;
    if (d > 0) {
      base_stride = strides[d - 1];
      run_numel = view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

int64_t wrap_dim(int64_t dim, int64_t rank, std::string_view op) {
  const int64_t r = std::max<int64_t>(rank, 1);  // a 0-d tensor accepts dims 0 and -1
  if (dim < -r || dim >= r)
    fail("{}: dimension {} is out of range for a tensor of rank {} (expected [{}, {}])", op, dim, rank, -r, r - 1);
  return dim < 0 ? dim + r : dim;
}

int64_t wrap_new_dim(int64_t dim, int64_t rank, std::string_view op, std::string_view what) {
  if (dim < -(rank + 1) || dim > rank)
    fail("{}: dimension {} is out of range for {} of rank {} (a new dimension goes at [{}, {}])", op, dim, what, rank,
         -(rank + 1), rank);
  return dim < 0 ? dim + rank + 1 : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  if (a == b) return a;  // most elementwise ops: a third of the general loop's cost
  const size_t n = std::max(a.size(), b.size());
  Shape out;
  out.resize(n, 1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail("{}: shapes {} and {} cannot be broadcast together (dimension {}: {} vs {})", op, a, b, i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

bool is_expandable_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  const size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1 && from[i] != to[lead + i]) return false;
  return true;
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return fmt::format("{} {}", t.shape(), t.dtype());
}

// ---------------------------------------------------------------- Tensor basics

void Tensor::undefined_error() { fail("Tensor: this tensor is undefined (default-constructed or an unused gradient)"); }

int64_t Tensor::size(int64_t dim) const {
  // wrap_dim lets a 0-d tensor take dims 0 and -1 (reductions over "all" of a scalar), but a
  // scalar has no size to return (PyTorch: "dimension specified as 0 but tensor has no dimensions")
  if (this->dim() == 0) fail("size: {} has no dimensions, so it has no size along dimension {}", describe(*this), dim);
  return shape()[wrap_dim(dim, this->dim(), "size")];
}

void* Tensor::raw_data() const {
  const auto& s = checked();
  return static_cast<char*>(s.storage->data) + s.offset * static_cast<int64_t>(dtype_size(s.dtype));
}

template <class T>
T Tensor::item() const {
  if (numel() != 1) fail("item: expected a tensor with one element, got {}", describe(*this));
  return dispatch(dtype(), [&]<class S>() { return convert<T>(*kernels::ptr<S>(*this), "item"); });
}

template <class T>
T* Tensor::data() const {
  if (dtype() != dtype_of<T>())
    fail("data: tensor is {}, but data<{}>() was asked for", describe(*this), dtype_of<T>());
  if (!is_contiguous()) fail("data: tensor {} is not contiguous; call contiguous() first", describe(*this));
  return kernels::ptr<T>(*this);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out(static_cast<size_t>(numel()));
  dispatch(dtype(), [&]<class S>() {
    kernels::map_into<S>(*this, out.data(), [](S v) { return convert<T>(v, "to_vector"); });
  });
  return out;
}

template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int64_t* Tensor::data<int64_t>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

Tensor& Tensor::requires_grad_(bool requires_grad) {
  auto& s = const_cast<TensorImpl&>(checked());
  if (requires_grad && !is_floating(s.dtype))
    fail("requires_grad_: only floating tensors can require gradients, got {} (labels and indices are int64)",
         describe(*this));
  if (!requires_grad && s.grad_fn)
    fail("requires_grad_(false): {} is not a leaf (it was produced by '{}'); use detach() instead", describe(*this),
         s.grad_fn->name);
  s.requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const {
  const TensorImpl& s = checked();
  return Tensor(s.retained ? s.retained->grad : s.grad);
}

Tensor& Tensor::set_grad(const Tensor& grad) {
  if (grad.defined() && (grad.shape() != shape() || grad.dtype() != dtype()))
    fail("set_grad: gradient {} does not match tensor {}", describe(grad), describe(*this));
  (impl_->retained ? impl_->retained->grad : impl_->grad) = grad.impl_ptr();
  return *this;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  autograd::backward(std::span<const Tensor>(this, 1),
                     gradient.defined() ? std::span<const Tensor>(&gradient, 1) : std::span<const Tensor>(),
                     retain_graph, create_graph);
}

const Ref<Node>& Tensor::grad_fn() const {
  const TensorImpl& s = checked();
  if (s.history_out_of_date()) (void)gradient_edge(*this);  // as the engine would on use
  return s.grad_fn;
}

Tensor Tensor::detach() const {
  auto impl = TensorImpl::make();
  const auto& s = checked();
  impl->storage = s.storage;
  impl->shape = s.shape;
  impl->strides = s.strides;
  impl->offset = s.offset;
  impl->dtype = s.dtype;
  // Not a view for autograd (PyTorch's detach: _is_view() is false): it shares the storage but
  // has no base, so an in-place op on it is recorded as on any tensor and its views have it as
  // their base.
  return Tensor(std::move(impl));
}

void Tensor::set_data(const Tensor& data) const {
  auto& s = const_cast<TensorImpl&>(checked());
  if (!data.defined()) fail("set_data: the new data for {} is undefined", describe(*this));
  if (s.grad_fn) fail("set_data: {} is not a leaf; only leaves (parameters) can have their data replaced", describe(*this));
  if (s.requires_grad && !is_floating(data.dtype()))
    fail("set_data: {} requires grad, so its data cannot become {}", describe(*this), describe(data));
  // A .grad of the old shape made the next backward fail in its accumulation ("add_: shapes [2]
  // and [3] cannot be broadcast"), far from the cause.
  // The accumulator checks gradients against the old shape and dtype: the next op makes another.
  if (data.dtype() != s.dtype || data.shape() != s.shape) {
    s.grad = nullptr;
    s.drop_accumulator();
  }
  Storage* const own = s.own_storage();
  const bool unread = s.storage.get() == own && s.storage_unshared();  // nothing else reads the old buffer
  s.storage = data.impl()->storage;
  if (unread) own->release_buffer();
  s.shape = data.shape();
  s.strides = data.strides();
  s.offset = data.storage_offset();
  s.dtype = data.dtype();
}

void Tensor::register_hook(TensorHook hook) const {
  if (!requires_grad()) fail("register_hook: {} does not require grad, so no gradient will reach a hook", describe(*this));
  TensorHooks& hooks = impl_->grad_fn ? impl_->grad_fn->pre_hooks : impl_->hooks;
  if (!hooks) hooks = std::make_unique<std::vector<TensorHook>>();
  hooks->push_back(std::move(hook));
}

void Tensor::retain_grad() const {
  if (!requires_grad()) fail("retain_grad: {} does not require grad, so no gradient will reach it", describe(*this));
  if (is_leaf() || impl_->retained) return;  // leaves keep their gradient anyway; retained already
  impl_->retained = make_ref<GradSlot>();
  register_hook(RetainGradHook{impl_->retained});
}

Tensor Tensor::to(Dtype dtype) const { return to_dtype(*this, dtype); }
Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = kernels::empty(shape(), dtype());
  kernels::copy_into(out, *this);
  return record(out, "clone", {*this}, {}, [](const Tensor& g, const BackwardContext&) -> Grads { return {g}; });
}

Tensor Tensor::reshape(const Shape& s) const { return chainrule::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return chainrule::view(*this, s); }
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  const int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  if (dim() == 0) return reshape({1});
  Shape out;
  for (int64_t i = 0; i < s; ++i) out.push_back(shape()[i]);
  int64_t n = 1;
  for (int64_t i = s; i <= e; ++i) n *= shape()[i];
  out.push_back(n);
  for (int64_t i = e + 1; i < dim(); ++i) out.push_back(shape()[i]);
  return reshape(out);
}
Tensor Tensor::t() const {
  if (dim() > 2) fail("t: expects a tensor of rank <= 2, got {}; use transpose(dim0, dim1)", describe(*this));
  return dim() < 2 ? *this : transpose(0, 1);
}
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return chainrule::transpose(*this, d0, d1); }
Tensor Tensor::permute(const Shape& dims) const { return chainrule::permute(*this, dims); }
Tensor Tensor::expand(const Shape& s) const { return chainrule::expand(*this, s); }
Tensor Tensor::squeeze() const { return chainrule::squeeze(*this); }
Tensor Tensor::squeeze(int64_t d) const { return chainrule::squeeze(*this, d); }
Tensor Tensor::unsqueeze(int64_t d) const { return chainrule::unsqueeze(*this, d); }
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  // Strict, as PyTorch's narrow: slice clips its bounds (Python's rule), narrow does not.
  if (dim() == 0) fail("narrow: cannot narrow a 0-d tensor");
  const int64_t n = shape()[static_cast<size_t>(wrap_dim(d, dim(), "narrow"))];  // size(d) named "size"
  if (start < -n || start > n)
    fail("narrow: start {} is out of range for dimension {} of size {} (input {})", start, d, n, describe(*this));
  const int64_t first = start < 0 ? start + n : start;
  if (length < 0 || first + length > n)
    fail("narrow: start {} and length {} do not fit dimension {} of size {} (input {})", start, length, d, n,
         describe(*this));
  return chainrule::slice(*this, d, first, first + length);
}
Tensor Tensor::slice(int64_t d, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step) const {
  return chainrule::slice(*this, d, start, end, step);
}
Tensor Tensor::select(int64_t d, int64_t index) const { return chainrule::select(*this, d, index); }
Tensor Tensor::sum() const { return chainrule::sum(*this); }
Tensor Tensor::mean() const { return chainrule::mean(*this); }

// ---------------------------------------------------------------- in place
//
// Without autograd, an in-place op writes through the view and bumps the version counter.
// When the op must be recorded, the result is computed out of place from a clone of the old
// value (so whatever backward reads stays intact) and then written into this tensor's storage,
// whose grad_fn becomes the new node.

namespace {

void write_in_place(Tensor& self, const Tensor& result, const char* op, bool recording) {
  if (is_floating(result.dtype()) && !is_floating(self.dtype()))  // copy_'s result is already self's dtype
    fail("{}: the result is {} and cannot be written into the int64 tensor {} in place (it would be truncated); "
         "use the out-of-place op, or convert with to()",
         op, result.dtype(), describe(self));
  if (result.shape() != self.shape())
    fail("{}: the result shape {} does not match the in-place target {}; broadcasting may only expand the "
         "other operand",
         op, result.shape(), describe(self));
  kernels::copy_into(self, result);
  auto* impl = self.impl();
  ++impl->storage->version;
  if (recording) {  // the tensor's history is now the result's (views taken before keep the old one)
    move_retain_hook(*impl, impl->grad_fn.get(), result.grad_fn().get());
    impl->grad_fn = result.grad_fn();
    impl->requires_grad = false;
    ++impl->storage->history;
  }
}

// Not recorded, contiguous, same dtype: f(self, other) written straight into self's buffer in
// one pass (elementwise, so reading and writing the same element is safe).
template <class F>
bool fused_in_place(Tensor& self, const Tensor& other, const char* op, F f) {
  if (!self.is_contiguous() || self.dtype() != other.dtype()) return false;
  if (broadcast_shapes(self.shape(), other.shape(), op) != self.shape())
    fail("{}: the result shape {} does not match the in-place target {}; broadcasting may only expand the "
         "other operand",
         op, broadcast_shapes(self.shape(), other.shape(), op), describe(self));
  dispatch(self.dtype(), [&]<class T>() {
    kernels::zip_into<T>(self, other, self.shape(), kernels::ptr<T>(self), [&](T a, T b) { return static_cast<T>(f(a, b)); });
  });
  ++self.impl()->storage->version;
  return true;
}

// The same with a scalar operand (rounded to the element type, as PyTorch does): no 0-d
// tensor is made for it.
template <class F>
bool fused_in_place(Tensor& self, double scalar, F f) {
  if (!self.is_contiguous() || !is_floating(self.dtype())) return false;
  dispatch_floating(self.dtype(), "in-place", [&]<class T>() {
    T* p = kernels::ptr<T>(self);
    const T v = static_cast<T>(scalar);
    kernels::parallel_for(self.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) p[i] = static_cast<T>(f(p[i], v));
    });
  });
  ++self.impl()->storage->version;
  return true;
}

// `other` reads memory that `self` writes, and not element for element (a shifted slice of the
// same buffer): the one-pass loop would read elements it had already overwritten (t[1:].add_(t[:-1])
// summed cumulatively). The same view, or disjoint memory, is safe.
bool overlaps_partially(const Tensor& self, const Tensor& other) {
  const TensorImpl* a = self.impl();
  const TensorImpl* b = other.impl();
  if (a->storage.get() != b->storage.get() || self.numel() == 0 || other.numel() == 0) return false;
  if (a->offset == b->offset && a->shape == b->shape && a->strides == b->strides && a->dtype == b->dtype) return false;
  auto span = [](const TensorImpl* t) {  // first and one-past-last byte the view touches
    int64_t lo = t->offset, hi = t->offset;
    for (size_t d = 0; d < t->shape.size(); ++d) {
      const int64_t extent = (t->shape[d] - 1) * t->strides[d];
      (extent < 0 ? lo : hi) += extent;
    }
    const auto size = static_cast<int64_t>(dtype_size(t->dtype));
    return std::pair{lo * size, (hi + 1) * size};
  };
  const auto [alo, ahi] = span(a);
  const auto [blo, bhi] = span(b);
  return alo < bhi && blo < ahi;
}

bool recording_in_place(const Tensor& self, const Tensor& other) {
  return grad_mode_enabled() && (self.requires_grad() || (other.defined() && other.requires_grad()));
}

// An in-place op on a view, recorded (PyTorch's CopySlices): the result is written through the
// view, and the base's history becomes a node taking the gradient of the view's positions to
// the result and that of the others to the base's old history. Every view of the base, this
// one included, then takes its history from the base's (gradient_edge).
Tensor& in_place_through_view(Tensor& self, const char* op, const Tensor& result) {
  Tensor base = view_base_of(self, op);
  if (base.is_leaf() && base.requires_grad())
    fail("{}: {} is a view of a leaf that requires grad and cannot be modified in place while recording; wrap the "
         "update in NoGradGuard or use the out-of-place op",
         op, describe(self));
  write_in_place(self, result, op, false);
  // Only the view's positions are kept: the forward costs the view, not the base (PyTorch's
  // CopySlices likewise). The mask of what the base kept is made in backward, and only when
  // the old values want a gradient (made here, a buffer filled row by row held n masks of n rows).
  record(base, "copy_slices", {base, result}, {},
         [positions = view_positions(self, base)](const Tensor& g, const BackwardContext& c) -> Grads {
           Tensor kept;
           if (c.needs(0)) {
             Tensor written;  // 1 where the view wrote (each position once: an expanded view cannot
             {                // be written in place), 0 where the base kept its old value
               NoGradGuard no_grad;
               written = index_add(zeros({g.numel()}, g.dtype()), 0, positions, ones({positions.numel()}, g.dtype()))
                             .reshape(g.shape());
             }
             kept = zero_where(written, g);
           }
           return {std::move(kept),
                   c.needs(1) ? index_select(g.reshape({-1}), 0, positions).reshape(c.shape(1)) : Tensor()};
         });
  ++self.impl()->storage->history;
  (void)gradient_edge(self);  // self's own history now, so that grad_fn() shows it
  return self;
}

// Recorded: computed out of place from a clone of the old value (so whatever backward reads
// stays intact), then written back.
template <class Op>
Tensor& recorded_in_place(Tensor& self, const char* op, Op compute) {
  if (self.is_leaf() && self.requires_grad())
    fail("{}: {} is a leaf that requires grad and cannot be modified in place while recording; wrap the update "
         "in NoGradGuard (as optimizers do) or use the out-of-place op",
         op, describe(self));
  if (self.impl()->is_view) return in_place_through_view(self, op, compute(self.clone()));
  write_in_place(self, compute(self.clone()), op, true);
  return self;
}

// The result of copy_ or fill_, which overwrite every element with `value` (copied from
// `source`, if any). As in PyTorch the old values stay the node's first input, with a zero
// gradient: the tensor still requires grad after fill_, and what reached only the old values
// gets zeros from autograd::grad rather than "not reachable".
Tensor overwrite(const Tensor& old, const Tensor& value, const char* op, const Tensor& source = Tensor()) {
  if (!recording_in_place(old, source)) return value;
  // a new handle on the values, so that the node is the result's own (value may be the source)
  return record(value.detach(), op, {old, source}, {}, [](const Tensor& g, const BackwardContext& c) -> Grads {
    return {c.needs(0) ? zeros_like(g) : Tensor(), c.needs(1) ? g : Tensor()};
  });
}

// `compute` gives the result as a tensor expression (recorded when autograd must see it);
// `elementwise`, when given, is the same op on two elements, for the one-pass path.
// `compute(s, o)` takes the operand as `o`: a copy of `other` when it partially overlaps self.
template <class Op, class F = std::nullptr_t>
Tensor& in_place(Tensor& self, const Tensor& other, const char* op, Op compute, F elementwise = nullptr) {
  kernels::check_no_internal_overlap(self, op);
  Tensor copy;
  if (overlaps_partially(self, other)) copy = other.clone();
  const Tensor& o = copy.defined() ? copy : other;
  auto with_o = [&](const Tensor& s) { return compute(s, o); };
  if (recording_in_place(self, o)) return recorded_in_place(self, op, with_o);
  if constexpr (!std::is_same_v<F, std::nullptr_t>)
    if (fused_in_place(self, o, op, elementwise)) return self;
  write_in_place(self, with_o(self), op, false);
  return self;
}

// The same with a scalar operand. `compute` takes the scalar with scalar_like, by its value: a
// whole one keeps an int64 tensor int64 (i.mul_(2.0)), any other is refused by write_in_place.
template <class Op, class F>
Tensor& scalar_in_place(Tensor& self, double scalar, const char* op, Op compute, F elementwise) {
  kernels::check_no_internal_overlap(self, op);
  if (recording_in_place(self, Tensor())) return recorded_in_place(self, op, compute);
  if (fused_in_place(self, scalar, elementwise)) return self;
  write_in_place(self, compute(self), op, false);
  return self;
}

}  // namespace

Tensor& Tensor::add_(const Tensor& o, double alpha) {
  // A large update (an optimizer step of a big layer) is split over chainrule's threads by the
  // elementwise loop, every element rounded as on one thread; not BLAS's axpy, whose bits
  // depend on its thread count on some CPUs (OpenBLAS's Haswell kernel, its choice on AMD
  // Zen 4, rounds the elements at the edges of its threads' chunks differently).
  if (!is_floating(dtype()) && alpha != std::trunc(alpha))
    fail("add_: alpha {} is not a whole number, so it cannot scale an addition into the int64 tensor {}", alpha,
         describe(*this));
  return in_place(*this, o, "add_", [&](const Tensor& s, const Tensor& v) { return alpha == 1.0 ? s + v : s + v * scalar_like(alpha, v); },
                  // alpha in the element type, as PyTorch: float math for float tensors (twice the
                  // vector width of a detour through double)
                  [alpha](auto a, auto b) { return a + b * static_cast<decltype(b)>(alpha); });
}
Tensor& Tensor::add_(double o) {
  return scalar_in_place(*this, o, "add_", [&](const Tensor& s) { return add(s, scalar_like(o, s)); }, [](auto a, auto b) { return a + b; });
}
Tensor& Tensor::sub_(const Tensor& o) {
  return in_place(*this, o, "sub_", [](const Tensor& s, const Tensor& v) { return s - v; }, [](auto a, auto b) { return a - b; });
}
Tensor& Tensor::sub_(double o) {
  return scalar_in_place(*this, o, "sub_", [&](const Tensor& s) { return sub(s, scalar_like(o, s)); }, [](auto a, auto b) { return a - b; });
}
Tensor& Tensor::mul_(const Tensor& o) {
  return in_place(*this, o, "mul_", [](const Tensor& s, const Tensor& v) { return s * v; }, [](auto a, auto b) { return a * b; });
}
Tensor& Tensor::mul_(double o) {
  return scalar_in_place(*this, o, "mul_", [&](const Tensor& s) { return mul(s, scalar_like(o, s)); }, [](auto a, auto b) { return a * b; });
}
Tensor& Tensor::div_(const Tensor& o) {
  return in_place(*this, o, "div_", [](const Tensor& s, const Tensor& v) { return s / v; });
}
Tensor& Tensor::div_(double o) {
  return scalar_in_place(*this, o, "div_", [&](const Tensor& s) { return div(s, scalar_like(o, s)); }, [](auto a, auto b) { return a / b; });
}
Tensor& Tensor::zero_() { return fill_(0.0); }
Tensor& Tensor::fill_(double value) {
  return scalar_in_place(*this, value, "fill_",
                         [&](const Tensor& s) { return overwrite(s, full(s.shape(), value, s.dtype()), "fill_"); },
                         [](auto, auto v) { return v; });
}
Tensor& Tensor::copy_(const Tensor& src) {
  if (!is_expandable_to(src.shape(), shape()))
    fail("copy_: source {} cannot be broadcast to destination {}", describe(src), describe(*this));
  return in_place(*this, src, "copy_", [](const Tensor& s, const Tensor& v) {
    Tensor value;
    {
      NoGradGuard no_grad;  // the node below takes v's gradient to v itself
      value = v.to(s.dtype()).expand(s.shape()).contiguous();
    }
    return overwrite(s, value, "copy_", v);
  });
}

// ---------------------------------------------------------------- factories

namespace {
Dtype float_or_default(std::optional<Dtype> d) { return d.value_or(default_dtype()); }

Tensor from_doubles(const double* values, size_t count, const Shape& shape, Dtype dtype) {
  if (static_cast<int64_t>(count) != shape.numel())
    fail("tensor: {} values do not fill shape {} ({} elements)", count, shape, shape.numel());
  Tensor out = kernels::empty(shape, dtype);
  dispatch(dtype, [&]<class T>() {
    T* p = kernels::ptr<T>(out);
    for (size_t i = 0; i < count; ++i) p[i] = convert<T>(values[i], "tensor");
  });
  return out;
}
}  // namespace

Tensor tensor(const std::vector<double>& values, const Shape& shape, std::optional<Dtype> dtype) {
  return from_doubles(values.data(), values.size(), shape, float_or_default(dtype));
}
Tensor tensor(std::initializer_list<double> values, const Shape& shape, std::optional<Dtype> dtype) {
  return from_doubles(values.begin(), values.size(), shape, float_or_default(dtype));
}
Tensor tensor(std::initializer_list<double> values, std::optional<Dtype> dtype) {
  return from_doubles(values.begin(), values.size(), {static_cast<int64_t>(values.size())}, float_or_default(dtype));
}
Tensor tensor(double value, std::optional<Dtype> dtype) { return from_doubles(&value, 1, {}, float_or_default(dtype)); }

Tensor empty(const Shape& shape, std::optional<Dtype> dtype) { return kernels::empty(shape, float_or_default(dtype)); }
Tensor zeros(const Shape& shape, std::optional<Dtype> dtype) {
  Tensor out = kernels::empty(shape, float_or_default(dtype), "zeros");
  std::memset(out.raw_data(), 0, static_cast<size_t>(out.numel()) * dtype_size(out.dtype()));
  return out;
}
namespace {
Tensor filled(const Shape& shape, double value, std::optional<Dtype> dtype, const char* op) {
  Tensor out = kernels::empty(shape, float_or_default(dtype), op);
  dispatch(out.dtype(), [&]<class T>() { std::fill_n(kernels::ptr<T>(out), out.numel(), convert<T>(value, op)); });
  return out;
}
}  // namespace
Tensor ones(const Shape& shape, std::optional<Dtype> dtype) { return filled(shape, 1.0, dtype, "ones"); }
Tensor full(const Shape& shape, double value, std::optional<Dtype> dtype) { return filled(shape, value, dtype, "full"); }
Tensor zeros_like(const Tensor& t, std::optional<Dtype> dtype) { return zeros(t.shape(), dtype.value_or(t.dtype())); }
Tensor ones_like(const Tensor& t, std::optional<Dtype> dtype) { return ones(t.shape(), dtype.value_or(t.dtype())); }
Tensor full_like(const Tensor& t, double value, std::optional<Dtype> dtype) {
  return full(t.shape(), value, dtype.value_or(t.dtype()));
}

Tensor arange(double end, std::optional<Dtype> dtype) { return arange(0, end, 1, dtype); }
Tensor arange(double start, double end, double step, std::optional<Dtype> dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    fail("arange: invalid range start={} end={} step={}", start, end, step);
  const double count = std::ceil((end - start) / step);  // arange(1e30) cast this to int64 unchecked
  if (count >= 0x1p48) fail("arange: start={} end={} step={} make {} elements, too many", start, end, step, count);
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(count));
  Tensor out = kernels::empty({n}, float_or_default(dtype));
  dispatch(out.dtype(), [&]<class T>() {
    T* p = kernels::ptr<T>(out);
    for (int64_t i = 0; i < n; ++i) p[i] = convert<T>(start + static_cast<double>(i) * step, "arange");
  });
  return out;
}
Tensor linspace(double start, double end, int64_t steps, std::optional<Dtype> dtype) {
  if (steps < 0) fail("linspace: steps must be non-negative, got {}", steps);
  Tensor out = kernels::empty({steps}, float_or_default(dtype));
  dispatch(out.dtype(), [&]<class T>() {
    T* p = kernels::ptr<T>(out);
    for (int64_t i = 0; i < steps; ++i)
      p[i] = convert<T>(steps == 1 ? start : start + (end - start) * static_cast<double>(i) / double(steps - 1),
                        "linspace");
  });
  return out;
}
Tensor eye(int64_t n, std::optional<Dtype> dtype) {
  if (n < 0) fail("eye: n must be non-negative, got {}", n);  // zeros would name itself
  Tensor out = zeros({n, n}, dtype);
  dispatch(out.dtype(), [&]<class T>() {
    for (int64_t i = 0; i < n; ++i) kernels::ptr<T>(out)[i * n + i] = 1;
  });
  return out;
}

// ---------------------------------------------------------------- random

double Generator::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_normal_ = r * std::sin(2.0 * std::numbers::pi * u2);
  has_spare_normal_ = true;
  return r * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t Generator::integer(int64_t low, int64_t high) {
  const uint64_t range = static_cast<uint64_t>(high - low);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % range;  // reject the biased tail
  uint64_t r = next_u64();
  while (r >= limit) r = next_u64();
  return low + static_cast<int64_t>(r % range);
}

Generator& default_generator() {
  static Generator g;
  return g;
}
std::mutex& default_generator_mutex() {
  static std::mutex m;
  return m;
}
void manual_seed(uint64_t seed) {
  with_generator(nullptr, [&](Generator& g) { g.manual_seed(seed); });
}

Tensor rand(const Shape& shape, std::optional<Dtype> dtype, Generator* gen) {
  Tensor out = kernels::empty(shape, float_or_default(dtype), "rand");
  dispatch_floating(out.dtype(), "rand", [&]<class T>() {
    T* p = kernels::ptr<T>(out);
    with_generator(gen, [&](Generator& g) {
      for (int64_t i = 0; i < out.numel(); ++i) {
        if constexpr (std::is_same_v<T, float>)
          p[i] = g.uniform_float();
        else
          p[i] = g.uniform();
      }
    });
  });
  return out;
}

Tensor randn(const Shape& shape, std::optional<Dtype> dtype, Generator* gen) {
  Tensor out = kernels::empty(shape, float_or_default(dtype), "randn");
  dispatch_floating(out.dtype(), "randn", [&]<class T>() {
    T* p = kernels::ptr<T>(out);
    with_generator(gen, [&](Generator& g) {
      for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<T>(g.normal());
    });
  });
  return out;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, std::optional<Dtype> dtype, Generator* gen) {
  if (high <= low) fail("randint: expected low < high, got low={} high={}", low, high);
  Tensor out = kernels::empty(shape, dtype.value_or(Dtype::int64), "randint");
  dispatch(out.dtype(), [&]<class T>() {
    T* p = kernels::ptr<T>(out);
    with_generator(gen, [&](Generator& g) {
      for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<T>(g.integer(low, high));
    });
  });
  return out;
}

// ---------------------------------------------------------------- helpers

Tensor integer_scalar_like(int64_t value, const Tensor& like) {
  Tensor out = kernels::empty({}, like.dtype());  // written directly: int64 values beyond 2^53 stay exact
  dispatch(out.dtype(), [&]<class T>() { *kernels::ptr<T>(out) = static_cast<T>(value); });
  return out;
}

Tensor floating_scalar_like(double value, const Tensor& like) {
  return tensor(value, is_floating(like.dtype()) ? like.dtype() : default_dtype());
}

Tensor scalar_like(double value, const Tensor& like) {
  Dtype d = like.dtype();
  // an int64 tensor keeps int64 with a whole scalar that int64 holds (i * 2.0), else goes floating
  if (d == Dtype::int64 && !(value == std::floor(value) && fits_int64(value))) d = default_dtype();
  return tensor(value, d);
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) || std::isnan(vb[i])) return false;
    if (va[i] == vb[i]) continue;  // equal infinities
    if (std::abs(va[i] - vb[i]) > atol + rtol * std::abs(vb[i])) return false;
  }
  return true;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, floating_scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, floating_scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, floating_scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, floating_scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(floating_scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(floating_scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(floating_scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(floating_scalar_like(a, b), b); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator==(const Tensor& a, double b) { return eq(a, scalar_like(b, a)); }
Tensor operator!=(const Tensor& a, double b) { return ne(a, scalar_like(b, a)); }
Tensor operator<(const Tensor& a, double b) { return lt(a, scalar_like(b, a)); }
Tensor operator<=(const Tensor& a, double b) { return le(a, scalar_like(b, a)); }
Tensor operator>(const Tensor& a, double b) { return gt(a, scalar_like(b, a)); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, scalar_like(b, a)); }

}  // namespace chainrule

// ---------------------------------------------------------------- printing

namespace {

// PyTorch's print format (torch/_tensor_str.py): one format for every element, chosen from the
// finite non-zero magnitudes of those printed; scientific notation when they span more than a
// factor 1000 or reach 1e8 or (unless all are integers) go below 1e-4; all-integer floats as
// "3."; every element padded to the widest, so that columns line up.
struct ElementFormat {
  const std::vector<double>& v;  // the elements as doubles (floating dtypes)
  const std::vector<int64_t>& iv;  // or as int64 (exact beyond 2^53)
  bool integer, int_mode = true, scientific = false;
  int precision = 4;
  size_t width = 1;

  ElementFormat(const std::vector<double>& v_, const std::vector<int64_t>& iv_, bool integer_,
                const std::vector<int64_t>& shown, int precision_)
      : v(v_), iv(iv_), integer(integer_), precision(precision_) {
    if (integer) {
      for (int64_t k : shown) width = std::max(width, bare(k).size());
      return;
    }
    double lo = INFINITY, hi = 0;
    for (int64_t k : shown)
      if (const double x = v[static_cast<size_t>(k)]; std::isfinite(x) && x != 0) {
        lo = std::min(lo, std::abs(x));
        hi = std::max(hi, std::abs(x));
        int_mode = int_mode && x == std::ceil(x);
      }
    if (hi == 0) return;  // nothing finite and non-zero: "0.", "nan", "inf"
    scientific = hi / lo > 1000 || hi > 1e8 || (!int_mode && lo < 1e-4);
    for (int64_t k : shown)
      if (const double x = v[static_cast<size_t>(k)]; std::isfinite(x) && x != 0)
        width = std::max(width, bare(k).size());
  }
  std::string bare(int64_t k) const {  // element k without padding
    if (integer) return fmt::format("{}", iv[static_cast<size_t>(k)]);
    const double x = v[static_cast<size_t>(k)];
    if (scientific) return fmt::format("{:.{}e}", x, precision);
    if (int_mode) return fmt::format("{:.0f}{}", x, std::isfinite(x) ? "." : "");
    return fmt::format("{:.{}f}", x, precision);
  }
  std::string operator()(int64_t k) const {
    const std::string s = bare(k);
    return std::string(width > s.size() ? width - s.size() : 0, ' ') + s;
  }
};

constexpr int64_t kEdgeItems = 3;  // a summarised dim shows 3 entries at each end
constexpr size_t kLineWidth = 80;

// The indices (along one dim) that are printed: all, or the ends around "...".
std::vector<int64_t> shown_indices(int64_t n, bool summarize) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i)
    if (!summarize || n <= 2 * kEdgeItems || i < kEdgeItems || i >= n - kEdgeItems) idx.push_back(i);
  return idx;
}

// The flat indices of the elements printed.
void collect_shown(const chainrule::Shape& shape, const chainrule::Shape& strides, size_t dim, int64_t offset,
                   bool summarize, std::vector<int64_t>& out) {
  if (dim == shape.size()) {
    out.push_back(offset);
    return;
  }
  for (int64_t i : shown_indices(shape[dim], summarize))
    collect_shown(shape, strides, dim + 1, offset + i * strides[dim], summarize, out);
}

// PyTorch's layout: a vector wraps at 80 columns; the blocks of a k-dim tensor are separated by
// k - 1 newlines; "..." stands for the elided middle.
std::string format_values(const chainrule::Shape& shape, const chainrule::Shape& strides, size_t dim, int64_t offset,
                          bool summarize, const ElementFormat& f, size_t indent) {
  if (dim == shape.size()) return f(offset);
  const int64_t n = shape[dim];
  const bool elided = summarize && n > 2 * kEdgeItems;
  std::vector<std::string> items;
  for (int64_t i : shown_indices(n, summarize)) {
    if (elided && i == n - kEdgeItems) items.push_back(dim + 1 == shape.size() ? " ..." : "...");
    items.push_back(format_values(shape, strides, dim + 1, offset + i * strides[dim], summarize, f, indent + 1));
  }
  std::string out = "[";
  if (dim + 1 == shape.size()) {
    const size_t per_line = std::max<size_t>(1, (kLineWidth - std::min(indent, kLineWidth)) / (f.width + 2));
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += i % per_line == 0 ? ",\n" + std::string(indent + 1, ' ') : ", ";
      out += items[i];
    }
  } else {
    const std::string sep = "," + std::string(shape.size() - dim - 1, '\n') + std::string(indent + 1, ' ');
    for (size_t i = 0; i < items.size(); ++i) out += (i > 0 ? sep : "") + items[i];
  }
  return out + "]";
}

}  // namespace

fmt::format_context::iterator fmt::formatter<chainrule::Tensor>::format(const chainrule::Tensor& t,
                                                                        format_context& ctx) const {
  using namespace chainrule;
  if (!t.defined()) return fmt::format_to(ctx.out(), "tensor(undefined)");
  const bool integer = t.dtype() == Dtype::int64;
  const auto v = integer ? std::vector<double>() : t.to_vector<double>();
  const auto iv = integer ? t.to_vector<int64_t>() : std::vector<int64_t>();
  const Shape strides = contiguous_strides(t.shape());
  const bool summarize = t.numel() > 1000;
  std::vector<int64_t> shown;
  collect_shown(t.shape(), strides, 0, 0, summarize, shown);
  const ElementFormat f(v, iv, integer, shown, t.dtype() == Dtype::float64 ? 6 : 4);
  const std::string values = format_values(t.shape(), strides, 0, 0, summarize, f, 7);
  std::string extra;
  if (t.numel() == 0 && t.dim() != 1) extra += fmt::format(", size={}", t.shape());  // "[]" alone hides the shape
  if (t.dtype() != default_dtype() && t.dtype() != Dtype::int64) extra += fmt::format(", dtype={}", t.dtype());
  if (t.dtype() == Dtype::int64) extra += ", dtype=int64";
  if (t.grad_fn())
    extra += fmt::format(", grad_fn=<{}>", t.grad_fn()->display_name());
  else if (t.requires_grad())
    extra += ", requires_grad=true";
  return fmt::format_to(ctx.out(), "tensor({}{})", values, extra);
}
