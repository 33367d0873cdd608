// Indexing: gather / scatter_add and index_select / index_add, each pair the other's adjoint.
// Backward rules see `g`, `c.shape(i)`, and the int64 index captured by the rule.
// Every index is range-checked; an out-of-range one names the op, the value and the shapes.
#include "engine.hpp"
#include "kernels.hpp"

namespace chainrule {

namespace {

void check_index_tensor(const Tensor& index, const char* op) {
  if (index.dtype() != Dtype::int64) fail("{}: index must be int64, got {}", op, describe(index));
}

[[noreturn, gnu::cold]] void out_of_range(int64_t v, int64_t n, const char* op, const Tensor& x, int64_t dim,
                                          const Tensor& index) {
  fail("{}: index {} is out of range for dimension {} of size {} (input {}, index {})", op, v, dim, n, describe(x),
       describe(index));
}
inline void check_range(int64_t v, int64_t n, const char* op, const Tensor& x, int64_t dim, const Tensor& index) {
  if (v < 0 || v >= n) [[unlikely]]
    out_of_range(v, n, op, x, dim, index);
}

// Checks gather/scatter shapes: same rank, index no larger than x outside `dim`.
void check_gather_shapes(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  check_index_tensor(index, op);
  bool ok = index.dim() == x.dim();
  for (int64_t k = 0; ok && k < x.dim(); ++k) ok = k == dim || index.shape()[k] <= x.shape()[k];
  if (!ok)
    fail("{}: index {} does not fit input {} (same rank needed, and no larger outside dimension {})", op,
         describe(index), describe(x), dim);
}

// Calls f(x_offset, position) for each element of index, where x_offset points into x at the
// indexed position along dim (strides of x) and position is the element's row-major number.
// A 0-d x (with a 0-d index) is one element along its one dimension, as in index_select and
// in PyTorch: index 0 is its only valid one.
template <class F>
void for_each_gathered(const Tensor& x, int64_t dim, const Tensor& index, const char* op, F&& f) {
  const int64_t* idx = kernels::ptr<int64_t>(index);
  const bool scalar = x.dim() == 0;
  Shape xs = x.strides();
  const int64_t step = scalar ? 0 : xs[dim], size = scalar ? 1 : x.shape()[dim];
  if (!scalar) xs[dim] = 0;
  int64_t pos = 0;
  kernels::for_each_offset<2>(index.shape(), {&index.strides(), &xs}, [&](const auto& o) {
    const int64_t v = idx[o[0]];
    check_range(v, size, op, x, dim, index);
    f(o[1] + v * step, pos++);
  });
}

// out (contiguous, not shared) += src at the positions index names along dim: scatter_add's loop.
void add_at(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op) {
  const Tensor s = src.contiguous();
  dispatch(out.dtype(), [&]<class T>() {
    const T* ps = kernels::ptr<T>(s);
    T* po = kernels::ptr<T>(out);
    for_each_gathered(out, dim, index, op, [&](int64_t off, int64_t pos) { po[off] += ps[pos]; });
  });
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  check_gather_shapes(x, d, index, "gather");
  Tensor out = kernels::empty(index.shape(), x.dtype());
  dispatch(x.dtype(), [&]<class T>() {
    const T* px = kernels::ptr<T>(x);
    T* po = kernels::ptr<T>(out);
    for_each_gathered(x, d, index, "gather", [&](int64_t off, int64_t pos) { po[pos] = px[off]; });
  });
  return record(out, "gather", {x}, {}, [d, index](const Tensor& g, const BackwardContext& c) -> Grads {
    Tensor zero = zeros(c.shape(0), g.dtype());  // the adjoint of gather: g added where it was read
    if (grad_mode_enabled()) return {scatter_add(zero, d, index, g)};  // recorded (create_graph)
    add_at(zero, d, index, g, "scatter_add");  // in place: no copy of the zeros, no node
    return {std::move(zero)};
  });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  check_gather_shapes(x, d, index, "scatter_add");
  if (src.shape() != index.shape())
    fail("scatter_add: src {} must have the shape of index {}", describe(src), describe(index));
  if (src.dtype() != x.dtype()) fail("scatter_add: src {} and input {} differ in dtype", describe(src), describe(x));
  Tensor out = kernels::empty(x.shape(), x.dtype());
  kernels::copy_into(out, x);
  add_at(out, d, index, src, "scatter_add");
  return record(out, "scatter_add", {x, src}, {}, [d, index](const Tensor& g, const BackwardContext& c) -> Grads {
    return {g, c.needs(1) ? gather(g, d, index) : Tensor()};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  check_index_tensor(index, "index_select");
  if (index.dim() > 1) fail("index_select: index must be 1-d, got {}", describe(index));
  const auto idx = index.to_vector<int64_t>();
  Shape shape = x.shape();
  if (x.dim() > 0) shape[d] = static_cast<int64_t>(idx.size());
  for (const int64_t v : idx) check_range(v, x.dim() == 0 ? 1 : x.shape()[d], "index_select", x, d, index);
  Tensor out = kernels::empty(shape, x.dtype());
  kernels::index_select_into(out, x, d, idx);
  return record(out, "index_select", {x}, {}, [d, index](const Tensor& g, const BackwardContext& c) -> Grads {
    return {index_add(zeros(c.shape(0), g.dtype()), d, index, g)};  // adjoint of index_select
  });
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source) {
  const int64_t d = wrap_dim(dim, x.dim(), "index_add");
  check_index_tensor(index, "index_add");
  const auto idx = index.to_vector<int64_t>();
  Shape expected = x.shape();
  if (x.dim() > 0) expected[d] = static_cast<int64_t>(idx.size());
  if (source.shape() != expected || source.dtype() != x.dtype())
    fail("index_add: source {} must be {} {} for input {} and {} indices", describe(source), expected, x.dtype(),
         describe(x), idx.size());
  Tensor out = kernels::empty(x.shape(), x.dtype());
  kernels::copy_into(out, x);
  for (const int64_t v : idx) check_range(v, x.dim() ? x.shape()[d] : 1, "index_add", x, d, index);
  kernels::index_add_into(out, d, idx, source);
  return record(out, "index_add", {x, source}, {}, [d, index](const Tensor& g, const BackwardContext& c) -> Grads {
    return {g, c.needs(1) ? index_select(g, d, index) : Tensor()};
  });
}

}  // namespace chainrule
