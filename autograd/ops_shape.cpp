// Shape ops: views that share storage (reshape where the strides allow, transpose, permute,
// expand, squeeze, unsqueeze, slice, select, split, chunk, unbind) and the copying ones (cat,
// stack, to, flip, roll, repeat, tril, triu, masked_fill).
// Backward rules see `g` and `c.shape(i)` (input i's shape); each maps g back onto the
// input's layout.
#include "engine.hpp"
#include "kernels.hpp"

namespace chainrule {

namespace {

Tensor view_of(const Tensor& x, const Shape& shape, const Shape& strides, int64_t offset) {
  return kernels::alias(x, shape, strides, offset);
}

// Writes g into a zero tensor of `shape` at the slice (dim, start, step): the adjoint of slice.
Tensor slice_backward(const Tensor& g, const Shape& shape, int64_t dim, int64_t start, int64_t step) {
  Tensor out = zeros(shape, g.dtype());
  const Tensor g_values = g.detach();
  Shape strides = out.strides();
  const int64_t offset = start * strides[dim];
  strides[dim] *= step;
  kernels::copy_into(view_of(out, g.shape(), strides, offset), g_values);
  return record(out, "slice_backward", {g}, {}, [dim, start, step](const Tensor& gg, const BackwardContext& c) -> Grads {
    // the n elements from start, n * step past it (slice clips the end; never negative, which
    // would count from the end: (n - 1) * step + 1 was, for n = 0)
    return {slice(gg, dim, start, start + c.shape(0)[dim] * step, step)};
  });
}

}  // namespace

namespace {
// The requested shape with its -1 inferred, checked against x's element count.
Shape full_shape(const Tensor& x, const Shape& requested, const char* op) {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail("{}: only one dimension can be -1, got {}", op, requested);
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      fail("{}: invalid size {} in shape {}", op, shape[i], requested);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      fail("{}: shape {} is invalid for input {} ({} elements)", op, requested, describe(x), x.numel());
    shape[infer] = x.numel() / known;
  }
  if (shape.numel() != x.numel())
    fail("{}: shape {} is invalid for input {} ({} elements)", op, requested, describe(x), x.numel());
  return shape;
}

// x's elements as `shape`: a view when x's strides allow one (view_strides), else a copy when
// `may_copy` (reshape), else an Error (view).
Tensor reshaped(const Tensor& x, const Shape& requested, const char* op, bool may_copy) {
  const Shape shape = full_shape(x, requested, op);
  Tensor out;
  if (x.is_contiguous()) {
    out = view_of(x, shape, contiguous_strides(shape), x.storage_offset());
  } else if (const std::optional<Shape> strides = view_strides(x.shape(), x.strides(), shape)) {
    out = view_of(x, shape, *strides, x.storage_offset());
  } else {
    if (!may_copy)
      fail("view: {} cannot be viewed as {} (its strides do not allow it); use reshape(), which copies when it must",
           describe(x), requested);
    out = kernels::empty(shape, x.dtype());
    kernels::copy_into(view_of(out, x.shape(), contiguous_strides(x.shape()), 0), x);
  }
  return record(out, "reshape", {x}, {}, [](const Tensor& g, const BackwardContext& c) -> Grads {
    return {g.reshape(c.shape(0))};
  });
}
}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) { return reshaped(x, shape, "reshape", true); }

Tensor view(const Tensor& x, const Shape& shape) { return reshaped(x, shape, "view", false); }

Tensor permute(const Tensor& x, const Shape& dims) {
  if (static_cast<int64_t>(dims.size()) != x.dim())
    fail("permute: {} dims given for a tensor of rank {} ({})", dims.size(), x.dim(), describe(x));
  Shape shape, strides, inverse;
  inverse.resize(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    if (inverse[d] != -1) fail("permute: dimension {} repeats in {}", d, dims);
    inverse[d] = static_cast<int64_t>(i);
    shape.push_back(x.shape()[d]);
    strides.push_back(x.strides()[d]);
  }
  return record(view_of(x, shape, strides, x.storage_offset()), "permute", {x}, {},
                [inverse](const Tensor& g, const BackwardContext&) -> Grads { return {g.permute(inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  const int64_t d0 = wrap_dim(dim0, x.dim(), "transpose"), d1 = wrap_dim(dim1, x.dim(), "transpose");
  if (x.dim() == 0) return x;  // dims 0 and -1 of a scalar: nothing to swap
  Shape dims;
  for (int64_t i = 0; i < x.dim(); ++i) dims.push_back(i);
  std::swap(dims[d0], dims[d1]);
  return permute(x, dims);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  if (shape.size() < x.shape().size())
    fail("expand: target shape {} has fewer dimensions than input {}", shape, describe(x));
  const size_t lead = shape.size() - x.shape().size();
  Shape out_shape, strides;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t have = i < lead ? 1 : x.shape()[i - lead];
    const int64_t want = shape[i] == -1 && i >= lead ? have : shape[i];
    if (want < 0)  // -1 keeps an existing dimension; a new leading one needs its size
      fail("expand: input {} cannot be expanded to {} (dimension {}: size {} is not allowed{})", describe(x), shape, i,
           shape[i], shape[i] == -1 ? " for a new leading dimension" : "");
    if (have != want && have != 1)
      fail("expand: input {} cannot be expanded to {} (dimension {}: {} vs {})", describe(x), shape, i, have, want);
    out_shape.push_back(want);
    strides.push_back(i < lead || have != want ? 0 : x.strides()[i - lead]);
  }
  if (out_shape == x.shape()) return x;
  return record(view_of(x, out_shape, strides, x.storage_offset()), "expand", {x}, {},
                [](const Tensor& g, const BackwardContext& c) -> Grads { return {sum_to(g, c.shape(0))}; });
}

Tensor squeeze(const Tensor& x, std::optional<int64_t> dim) {
  Shape shape;
  const int64_t d = dim ? wrap_dim(*dim, x.dim(), "squeeze") : -1;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!(x.shape()[i] == 1 && (d < 0 || d == i))) shape.push_back(x.shape()[i]);
  return shape == x.shape() ? x : reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_new_dim(dim, x.dim(), "unsqueeze");
  Shape shape = x.shape();
  shape.insert(static_cast<size_t>(d), 1);
  return reshape(x, shape);
}

Tensor slice(const Tensor& x, int64_t dim, std::optional<int64_t> start_, std::optional<int64_t> end_, int64_t step) {
  if (x.dim() == 0) fail("slice: cannot slice a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "slice");
  if (step <= 0) fail("slice: step must be positive, got {}", step);
  const int64_t n = x.shape()[d];
  auto clip = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  const int64_t start = clip(start_.value_or(0)), end = std::max(start, clip(end_.value_or(n)));
  Shape shape = x.shape(), strides = x.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  return record(view_of(x, shape, strides, x.storage_offset() + start * x.strides()[d]), "slice", {x}, {},
                [d, start, step](const Tensor& g, const BackwardContext& c) -> Grads {
                  return {slice_backward(g, c.shape(0), d, start, step)};
                });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  if (x.dim() == 0) fail("select: cannot index a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "select");
  const int64_t n = x.shape()[d];
  if (index < -n || index >= n)
    fail("select: index {} is out of range for dimension {} of size {} (input {})", index, d, n, describe(x));
  const int64_t i = index < 0 ? index + n : index;
  Shape shape = x.shape(), strides = x.strides();
  shape.erase(static_cast<size_t>(d));
  strides.erase(static_cast<size_t>(d));
  return record(view_of(x, shape, strides, x.storage_offset() + i * x.strides()[d]), "select", {x}, {},
                [d, i](const Tensor& g, const BackwardContext& c) -> Grads {
                  return {slice_backward(g.unsqueeze(d), c.shape(0), d, i, 1)};
                });
}

namespace {
// PyTorch's legacy rule: cat skips a 1-d empty tensor whatever the others' shape, so that
// `out = cat({out, x})` can start from `empty({0})`.
bool skipped_by_cat(const Shape& s) { return s.size() == 1 && s[0] == 0; }
}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) fail("cat: expected at least one tensor");
  size_t ref = 0;  // the tensor the others are checked against: the first one not skipped
  while (ref < tensors.size() && skipped_by_cat(tensors[ref].shape())) ++ref;
  if (ref == tensors.size()) ref = 0;
  const Tensor& first = tensors[ref];
  if (first.dim() == 0) fail("cat: zero-dimensional tensor {} cannot be concatenated; use stack", describe(first));
  const int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[d] = 0;
  Dtype dtype = first.dtype();  // all of them promoted, skipped ones included (PyTorch's)
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    dtype = promote(dtype, t.dtype());
    if (skipped_by_cat(t.shape())) continue;
    bool ok = t.dim() == first.dim();
    for (int64_t k = 0; ok && k < t.dim(); ++k) ok = k == d || t.shape()[k] == first.shape()[k];
    if (!ok)
      fail("cat: tensor {} has shape {} but tensor {} has {}; all must match except in dimension {}", i, t.shape(),
           ref, first.shape(), d);
    shape[d] += t.shape()[d];
  }
  Tensor out = kernels::empty(shape, dtype);
  std::vector<int64_t> offsets;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    offsets.push_back(offset);
    if (skipped_by_cat(t.shape())) continue;
    kernels::copy_into(view_of(out, t.shape(), out.strides(), offset * out.strides()[d]), t);
    offset += t.shape()[d];
  }
  return record(out, "cat", std::span<const Tensor>(tensors), {},
                [d, offsets](const Tensor& g, const BackwardContext& c) -> Grads {
                  Grads grads;
                  for (size_t i = 0; i < offsets.size(); ++i)
                    grads.push_back(!c.needs(i)                      ? Tensor()
                                    : skipped_by_cat(c.shape(i)) ? zeros({0}, g.dtype())
                                                                 : g.narrow(d, offsets[i], c.shape(i)[d]));
                  return grads;
                });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) fail("stack: expected at least one tensor");
  const int64_t d = wrap_new_dim(dim, tensors[0].dim(), "stack", "tensors");
  std::vector<Tensor> expanded;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].shape() != tensors[0].shape())
      fail("stack: tensor {} has shape {} but tensor 0 has {}", i, tensors[i].shape(), tensors[0].shape());
    expanded.push_back(tensors[i].unsqueeze(d));
  }
  return cat(expanded, d);
}

// ---------------------------------------------------------------- flip, roll, repeat, bands, pieces
// Compositions of views, index_select, cat and where: their gradients, and the gradients of
// those, are the ones of the ops they are made of.

Tensor flip(const Tensor& x, const Shape& dims) {
  Shape done;
  Tensor out = x;
  for (int64_t dim : dims) {
    const int64_t d = wrap_dim(dim, x.dim(), "flip");
    if (std::find(done.begin(), done.end(), d) != done.end())
      fail("flip: dim {} appears twice in {} (input {})", d, dims, describe(x));
    done.push_back(d);
    if (x.dim() > 0) out = index_select(out, d, arange(static_cast<double>(x.shape()[d]) - 1, -1, -1, Dtype::int64));
  }
  return out.impl() == x.impl() ? x.clone() : out;  // a new tensor, as torch.flip's, also for no dims
}

Tensor roll(const Tensor& x, const Shape& shifts, const Shape& dims) {
  if (dims.empty()) {
    if (shifts.size() != 1)
      fail("roll: {} shifts and no dims; without dims roll takes one shift, over the flattened tensor", shifts.size());
    return roll(x.reshape({x.numel()}), shifts, {0}).reshape(x.shape());
  }
  if (shifts.size() != dims.size())
    fail("roll: {} shifts for {} dims {}; give one shift per dim", shifts.size(), dims.size(), dims);
  Tensor out = x;
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], x.dim(), "roll"), n = x.dim() > 0 ? x.shape()[d] : 1;
    const int64_t s = n > 0 ? (shifts[i] % n + n) % n : 0;  // the last s elements come first
    if (s > 0) out = cat({out.narrow(d, n - s, s), out.narrow(d, 0, n - s)}, d);
  }
  return out.impl() == x.impl() ? x.clone() : out;  // a new tensor, also when nothing moves
}

Tensor repeat(const Tensor& x, const Shape& repeats) {
  const auto rank = static_cast<size_t>(x.dim());
  if (repeats.size() < rank)
    fail("repeat: {} has fewer entries than the dims of {}; give one per dim (more add leading dims)", repeats,
         describe(x));
  Shape shape(std::vector<int64_t>(repeats.size() - rank, 1));
  for (int64_t n : x.shape()) shape.push_back(n);
  Tensor out = x.reshape(shape);
  bool copied = false;
  for (size_t i = 0; i < repeats.size(); ++i) {  // copies side by side, dim by dim (no extra dims)
    const auto d = static_cast<int64_t>(i);
    if (repeats[i] < 0) fail("repeat: the count {} in {} is negative", repeats[i], repeats);
    if (repeats[i] == 0) out = out.narrow(d, 0, 0);
    if (repeats[i] > 1) out = cat(std::vector<Tensor>(static_cast<size_t>(repeats[i]), out), d), copied = true;
  }
  return copied ? out : out.clone();  // a new tensor, as torch.repeat's, also when nothing repeats
}

namespace {
// x where column - row of its last two dims is at most (lower) or at least `diagonal`, else 0.
Tensor band(const Tensor& x, int64_t diagonal, bool lower, const char* op) {
  if (x.dim() < 2) fail("{}: expected a matrix or a batch of them (2 or more dims), got {}", op, describe(x));
  const Tensor rows = arange(static_cast<double>(x.shape()[x.dim() - 2]), Dtype::int64).unsqueeze(1);
  const Tensor offset = arange(static_cast<double>(x.shape()[x.dim() - 1]), Dtype::int64) - rows;
  const Tensor k = integer_scalar_like(diagonal, offset);
  return zero_where(lower ? gt(offset, k) : lt(offset, k), x);  // a select: 0 outside, not inf * 0
}
}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) { return band(x, diagonal, true, "tril"); }
Tensor triu(const Tensor& x, int64_t diagonal) { return band(x, diagonal, false, "triu"); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  (void)broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  if (!is_floating(x.dtype()) && !fits_int64(value))
    fail("masked_fill: the value {} does not fit the int64 tensor {}", value, describe(x));
  return where(mask, tensor(value, x.dtype()), x);
}

namespace {
// The dim an op cuts x along: x must have one (a 0-d tensor's dims 0 and -1 are no size to cut).
int64_t cut_dim(const Tensor& x, int64_t dim, const char* op) {
  if (x.dim() == 0) fail("{}: a 0-d tensor has no dim to cut ({})", op, describe(x));
  return wrap_dim(dim, x.dim(), op);
}
}  // namespace

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = cut_dim(x, dim, "split");
  const std::string listed = fmt::format("[{}]", fmt::join(sizes, ", "));
  int64_t total = 0;
  for (int64_t n : sizes) {
    if (n < 0) fail("split: the size {} in {} is negative", n, listed);
    total += n;
  }
  if (total != x.shape()[d])
    fail("split: the sizes {} add up to {}, but dim {} of {} has {}", listed, total, d, describe(x), x.shape()[d]);
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t n : sizes) pieces.push_back(x.narrow(d, start, n)), start += n;
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  const int64_t n = x.shape()[cut_dim(x, dim, "split")];
  if (split_size < 0 || (split_size == 0 && n > 0))
    fail("split: split_size {} for dim {} of size {}; it must be positive (0 only for an empty dim)", split_size, dim,
         n);
  std::vector<int64_t> sizes;  // (not a Shape: there may be more pieces than a tensor has dims)
  for (int64_t start = 0; start < n; start += split_size) sizes.push_back(std::min(split_size, n - start));
  if (sizes.empty()) sizes.push_back(0);  // as torch.split: one empty piece of an empty dim
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  if (chunks <= 0) fail("chunk: the number of chunks must be positive, got {}", chunks);
  const int64_t n = x.shape()[cut_dim(x, dim, "chunk")];
  if (n == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), dim);  // torch's
  return split(x, (n + chunks - 1) / chunks, dim);
}

std::vector<Tensor> unbind(const Tensor& x, int64_t dim) {
  const int64_t d = cut_dim(x, dim, "unbind");
  std::vector<Tensor> slices;
  for (int64_t i = 0; i < x.shape()[d]; ++i) slices.push_back(x.select(d, i));
  return slices;
}

Tensor to_dtype(const Tensor& x, Dtype dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = kernels::cast(x, dtype);
  if (!is_floating(dtype)) return out;  // integers carry no gradient
  return record(out, "to", {x}, {}, [](const Tensor& g, const BackwardContext&) -> Grads { return {g}; });
}

}  // namespace chainrule
