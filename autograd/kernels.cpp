#include "kernels.hpp"

#include "pool.hpp"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <utility>
#include <vector>

namespace chainrule {
namespace {
// The thread count asked for (OpenBLAS's own at first: all cores, or OPENBLAS_NUM_THREADS), and
// how many kernels::SerialBlas sections are running, during which OpenBLAS runs on one thread.
std::mutex g_blas_threads;
int g_serial_sections = 0;
std::atomic<int>& wanted_threads() {
  static std::atomic<int> wanted{openblas_get_num_threads()};
  return wanted;
}
}  // namespace

void set_num_threads(int n) {
  if (n < 1) fail("set_num_threads: need at least 1 thread, got {}", n);
  const std::lock_guard lock(g_blas_threads);
  wanted_threads().store(n, std::memory_order_relaxed);
  if (g_serial_sections == 0) openblas_set_num_threads(n);
}
int get_num_threads() { return wanted_threads().load(std::memory_order_relaxed); }

namespace kernels {
SerialBlas::SerialBlas() {
  const std::lock_guard lock(g_blas_threads);
  if (g_serial_sections++ == 0) openblas_set_num_threads(1);
}
SerialBlas::~SerialBlas() {
  const std::lock_guard lock(g_blas_threads);
  if (--g_serial_sections == 0) openblas_set_num_threads(get_num_threads());
}
}  // namespace kernels
}  // namespace chainrule

namespace chainrule::kernels {

namespace {
[[gnu::noinline]] void check_extent(const Shape& shape, const char* op) {
  int64_t extent = 1;  // the product of max(d, 1): what strides are made of
  for (int64_t d : shape) {
    if (d < 0) fail("{}: negative dimension in shape {}", op, shape);
    if (__builtin_mul_overflow(extent, std::max<int64_t>(d, 1), &extent) || extent > (int64_t(1) << 48))
      fail("{}: shape {} is too large (more than 2^48 elements along its strides)", op, shape);
  }
}
}  // namespace

Tensor empty(const Shape& shape, Dtype dtype, const char* op) {
  // The product of max(d, 1) is below 2^(sum of their bit widths): when that sum is at most 48
  // (every shape a tensor of real data has) no dimension is negative and nothing overflows,
  // so the exact check runs only for the rest (a negative d counts 64 bits).
  int bits = 0;
  for (int64_t d : shape) bits += std::bit_width(static_cast<uint64_t>(d) | 1);
  if (bits > 48) [[unlikely]]
    check_extent(shape, op);
  auto impl = TensorImpl::make(static_cast<size_t>(shape.numel()) * dtype_size(dtype));
  impl->shape = shape;
  contiguous_strides_into(shape, impl->strides);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

void check_no_internal_overlap(const Tensor& t, const char* op) {
  if (t.is_contiguous()) return;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.strides()[d] == 0 && t.shape()[d] > 1)
      fail("{}: {} is expanded (dimension {} has stride 0), so several of its elements are one memory "
           "location; clone() it before writing in place",
           op, describe(t), d);
}

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape s;
  s.resize(shape.size(), 0);
  const size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    s[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return s;
}

Tensor alias(const Tensor& x, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = TensorImpl::make();
  impl->storage = x.impl()->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = x.dtype();
  impl->is_view = true;
  impl->history_seen = impl->storage->history;
  impl->view_base = x.impl()->view_base ? x.impl()->view_base : x.impl_ptr();
  return Tensor(std::move(impl));
}

Tensor cast(const Tensor& x, Dtype dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = empty(x.shape(), dtype);
  copy_into(out, x);
  return out;
}

namespace {
constexpr int64_t kTransposeTile = 32;

// The dim p (not the last) along which src (strides ss, seen in dst's shape) has unit stride,
// when dst's last dim has unit stride and src's does not, both at least a tile long: a
// transposing copy. -1 otherwise (smaller planes stay cached walked element by element).
int64_t transposed_dim(const Tensor& dst, const Shape& ss) {
  const Shape& shape = dst.shape();
  const size_t nd = shape.size();
  if (nd < 2 || dst.strides()[nd - 1] != 1 || ss[nd - 1] == 1 || shape[nd - 1] < kTransposeTile) return -1;
  for (size_t p = 0; p + 1 < nd; ++p)
    if (ss[p] == 1 && shape[p] >= kTransposeTile) return static_cast<int64_t>(p);
  return -1;
}
}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  dispatch(dst.dtype(), [&]<class D>() {
    dispatch(src.dtype(), [&]<class S>() {
      D* out = ptr<D>(dst);
      const S* in = ptr<S>(src);
      if (dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
        const int64_t n = dst.numel();
        for (int64_t i = 0; i < n; ++i) out[i] = convert<D>(in[i], "to");
        return;
      }
      if (dst.is_contiguous() && src.dim() == 0) {  // one value spread (sum's backward): a fill
        if (const int64_t n = dst.numel(); n > 0) std::fill_n(out, n, convert<D>(*in, "to"));
        return;
      }
      const Shape ss = broadcast_strides(src, dst.shape());
      if (const int64_t p = transposed_dim(dst, ss); p >= 0) {
        // A transposing copy: dst's rows are walked along the source's columns. Tile by tile
        // over dim p (unit stride in src) and dst's last, so that each cache line read or
        // written is used whole while it is cached (element by element, each read was a new
        // line and often a new page).
        constexpr int64_t kTile = kTransposeTile;
        const size_t last = dst.shape().size() - 1, pd = static_cast<size_t>(p);
        Shape outer = dst.shape();
        outer[pd] = outer[last] = 1;
        for_each_offset<2>(outer, {&dst.strides(), &ss}, [&, rows = dst.shape()[pd], cols = dst.shape()[last],
                                                          row_step = dst.strides()[pd], col_step = ss[last]](const auto& o) {
          // (the sizes by value: through the closure's references they were reloaded from the
          // stack for every element, as the stores might have changed them)
          for (int64_t i0 = 0; i0 < rows; i0 += kTile)
            for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
              const int64_t i_end = std::min(i0 + kTile, rows), j_end = std::min(j0 + kTile, cols);
              for (int64_t i = i0; i < i_end; ++i) {
                D* to = out + o[0] + i * row_step;
                const S* from = in + o[1] + i;
                for (int64_t j = j0; j < j_end; ++j) to[j] = convert<D>(from[j * col_step], "to");
              }
            }
        });
        return;
      }
      for_each_offset<2>(dst.shape(), {&dst.strides(), &ss},
                         [&](const auto& o) { out[o[0]] = convert<D>(in[o[1]], "to"); });
    });
  });
}

namespace {
// x itself if contiguous, else a row-major copy (no graph).
Tensor dense(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = empty(x.shape(), x.dtype());
  copy_into(out, x);
  return out;
}

// A tensor of `shape` as [outer, shape[dim], inner] (a 0-d one as [1, 1, 1]).
struct AroundDim {
  int64_t outer = 1, n = 1, inner = 1;
};
AroundDim around(const Shape& shape, int64_t dim) {
  AroundDim a;
  for (int64_t k = 0; k < static_cast<int64_t>(shape.size()); ++k)
    (k < dim ? a.outer : k == dim ? a.n : a.inner) *= shape[static_cast<size_t>(k)];
  return a;
}

// fn(q, begin, end) for the rows (q, i), begin <= i < end, of an [outer, m, inner] output (row
// q m + i), every row once, in runs within one q split between threads.
template <class F>
void for_rows(int64_t outer, int64_t m, int64_t inner, const F& fn) {
  parallel_for(
      outer * m,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end;) {
          const int64_t q = r / m, i = r - q * m, stop = std::min(m, i + (end - r));
          fn(q, i, stop);
          r += stop - i;
        }
      },
      inner);
}
}  // namespace

void index_select_into(const Tensor& out, const Tensor& x, int64_t dim, const std::vector<int64_t>& index) {
  // a 0-d x is one element along its one dimension, out too: every index copies it there
  const auto m = static_cast<int64_t>(x.dim() == 0 ? std::min<size_t>(index.size(), 1) : index.size());
  if (m == 0) return;  // out has no elements
  if (!x.is_contiguous() && m < x.size(dim)) {
    // fewer slices than x has, from a strided x: each read where it is, one walk over the
    // other dimensions per index (not a copy of all of x first)
    Shape rest = x.shape(), x_strides = x.strides(), out_strides = out.strides();
    for (Shape* s : {&rest, &x_strides, &out_strides}) s->erase(static_cast<size_t>(dim));
    const int64_t x_step = x.strides()[static_cast<size_t>(dim)], out_step = out.strides()[static_cast<size_t>(dim)];
    dispatch(x.dtype(), [&]<class T>() {
      const T* in = ptr<T>(x);
      T* o = ptr<T>(out);
      parallel_for(
          m,
          [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              const T* from = in + index[static_cast<size_t>(i)] * x_step;
              T* to = o + i * out_step;
              for_each_offset<2>(rest, {&out_strides, &x_strides}, [&](const auto& k) { to[k[0]] = from[k[1]]; });
            }
          },
          rest.numel());
    });
    return;
  }
  const Tensor src = dense(x);
  const AroundDim a = around(x.shape(), dim);
  dispatch(x.dtype(), [&]<class T>() {
    const T* in = ptr<T>(src);
    T* o = ptr<T>(out);
    for_rows(a.outer, m, a.inner, [&, n = a.n, inner = a.inner](int64_t q, int64_t begin, int64_t end) {
      const T* rows = in + q * n * inner;
      T* to = o + q * m * inner;
      if (inner == 1) {  // a gather (unfold's)
        for (int64_t i = begin; i < end; ++i) to[i] = rows[index[static_cast<size_t>(i)]];
        return;
      }
      for (int64_t i = begin; i < end; ++i) std::copy_n(rows + index[static_cast<size_t>(i)] * inner, inner, to + i * inner);
    });
  });
}

void mix_rows_into(const Tensor& out, const Tensor& x, int64_t dim, const std::vector<int64_t>& low,
                   const std::vector<int64_t>& high, const std::vector<double>& weight) {
  const Tensor src = dense(x);
  const AroundDim a = around(x.shape(), dim);
  dispatch_floating(x.dtype(), "interpolate", [&]<class T>() {
    const T* in = ptr<T>(src);
    T* o = ptr<T>(out);
    const auto m = static_cast<int64_t>(weight.size());
    for_rows(a.outer, m, a.inner, [&, n = a.n, inner = a.inner](int64_t q, int64_t begin, int64_t end) {
      const T* rows = in + q * n * inner;
      for (int64_t i = begin; i < end; ++i) {
        const auto u = static_cast<size_t>(i);
        const T w = static_cast<T>(weight[u]), v = static_cast<T>(1) - w;
        const T* lo = rows + low[u] * inner;
        const T* hi = rows + high[u] * inner;
        T* row = o + (q * m + i) * inner;
        for (int64_t k = 0; k < inner; ++k) row[k] = lo[k] * v + hi[k] * w;
      }
    });
  });
}

namespace {
// The outputs o in [lo, hi), within [0, out), whose position o stride + start along a dim of
// `size` falls inside it: a window's offset `start` (kernel index times dilation, minus padding).
std::pair<int64_t, int64_t> inside(int64_t out, int64_t size, int64_t stride, int64_t start) {
  const auto ceil_div = [stride](int64_t a) { return a >= 0 ? (a + stride - 1) / stride : -(-a / stride); };
  const int64_t lo = std::clamp<int64_t>(ceil_div(-start), 0, out);
  return {lo, std::clamp<int64_t>(ceil_div(size - start), lo, out)};
}

// Where the row for kernel row i and column j of unfold's columns reads a plane: output (y, x)
// reads position (y sy + r0, x sx + q0), inside the plane for y in [y_lo, y_hi), x in [x_lo, x_hi).
struct WindowRow {
  int64_t y_lo, y_hi, x_lo, x_hi, r0, q0;
};
WindowRow window_row(const Window2& w, int64_t h, int64_t wd, int64_t i, int64_t j) {
  const int64_t r0 = i * w.dilation[0] - w.padding[0], q0 = j * w.dilation[1] - w.padding[1];
  const auto [y_lo, y_hi] = inside(w.out[0], h, w.stride[0], r0);
  const auto [x_lo, x_hi] = inside(w.out[1], wd, w.stride[1], q0);
  return {y_lo, y_hi, x_lo, x_hi, r0, q0};
}
}  // namespace

void unfold_into(const Tensor& cols, const Tensor& x, const Window2& w, double pad_value) {
  const Tensor src = dense(x);
  const int64_t h = x.size(2), wd = x.size(3), kh = w.kernel[0], kw = w.kernel[1], oh = w.out[0], ow = w.out[1];
  const int64_t sy = w.stride[0], sx = w.stride[1];
  dispatch_floating(x.dtype(), "unfold", [&]<class T>() {
    const T* in = ptr<T>(src);
    T* o = ptr<T>(cols);
    const auto pad = static_cast<T>(pad_value);
    parallel_for(
        x.size(0) * x.size(1) * kh * kw,
        [&](int64_t begin, int64_t end) {
          for (int64_t row = begin; row < end; ++row) {
            const WindowRow b = window_row(w, h, wd, row / kw % kh, row % kw);
            const T* plane = in + row / (kh * kw) * h * wd;
            T* to = o + row * oh * ow;
            for (int64_t y = 0; y < oh; ++y, to += ow) {
              if (y < b.y_lo || y >= b.y_hi) {
                std::fill_n(to, ow, pad);
                continue;
              }
              const T* first = plane + (y * sy + b.r0) * wd + b.x_lo * sx + b.q0;  // output x_lo's element
              std::fill_n(to, b.x_lo, pad);
              if (sx == 1)  // a contiguous run (the common stride): one copy
                std::copy_n(first, b.x_hi - b.x_lo, to + b.x_lo);
              else
                for (int64_t k = 0; k < b.x_hi - b.x_lo; ++k) to[b.x_lo + k] = first[k * sx];
              std::fill_n(to + b.x_hi, ow - b.x_hi, pad);
            }
          }
        },
        oh * ow);
  });
}

void fold_add_into(const Tensor& x, const Tensor& cols, const Window2& w) {
  const Tensor src = dense(cols);
  const int64_t h = x.size(2), wd = x.size(3), kh = w.kernel[0], kw = w.kernel[1], oh = w.out[0], ow = w.out[1];
  const int64_t sy = w.stride[0], sx = w.stride[1];
  dispatch_floating(x.dtype(), "fold", [&]<class T>() {
    T* out = ptr<T>(x);
    const T* in = ptr<T>(src);
    parallel_for(  // a plane's kernel rows add to the same positions: one thread per plane
        x.size(0) * x.size(1),
        [&](int64_t begin, int64_t end) {
          for (int64_t p = begin; p < end; ++p)
            for (int64_t k = 0; k < kh * kw; ++k) {
              const WindowRow b = window_row(w, h, wd, k / kw, k % kw);
              const T* from = in + (p * kh * kw + k) * oh * ow;
              for (int64_t y = b.y_lo; y < b.y_hi; ++y) {
                T* first = out + p * h * wd + (y * sy + b.r0) * wd + b.x_lo * sx + b.q0;  // output x_lo's position
                const T* g = from + y * ow + b.x_lo;
                if (sx == 1)
                  for (int64_t e = 0; e < b.x_hi - b.x_lo; ++e) first[e] += g[e];
                else
                  for (int64_t e = 0; e < b.x_hi - b.x_lo; ++e) first[e * sx] += g[e];
              }
            }
        },
        kh * kw * oh * ow);
  });
}

void index_add_into(const Tensor& out, int64_t dim, const std::vector<int64_t>& index, const Tensor& source) {
  const Tensor src = dense(source);
  const AroundDim a = around(out.shape(), dim);
  const auto m = static_cast<int64_t>(index.size());
  const int64_t step = out.dim() == 0 ? 0 : a.inner;  // a 0-d source is one row that every index adds
  dispatch(out.dtype(), [&]<class T>() {
    T* o = ptr<T>(out);
    const T* s = ptr<T>(src);
    parallel_for(
        a.outer,
        [&](int64_t begin, int64_t end) {
          for (int64_t q = begin; q < end; ++q)
            for (int64_t i = 0; i < m; ++i) {
              T* to = o + (q * a.n + index[static_cast<size_t>(i)]) * a.inner;
              const T* from = s + (q * m + i) * step;
              for (int64_t k = 0; k < a.inner; ++k) to[k] += from[k];
            }
        },
        m * a.inner);
  });
}

Tensor sum_keepdim(const Tensor& x, DimFlags reduce) {
  Shape out_shape = x.shape();
  for (size_t d = 0; d < reduce.size(); ++d)
    if (reduce[d]) out_shape[d] = 1;
  Tensor out = empty(out_shape, x.dtype());
  dispatch(x.dtype(), [&]<class T>() {
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    const T* in = ptr<T>(x);
    T* o = ptr<T>(out);
    const int64_t n_out = out.numel();
    if (n_out == 1) {  // full reduction
      Acc acc = 0;
      if (x.is_contiguous()) {
        acc = run_sum<Acc>(in, x.numel());
      } else {
        for_each_offset<1>(x.shape(), {&x.strides()}, [&](const auto& off) { acc += in[off[0]]; });
      }
      o[0] = static_cast<T>(acc);
      return;
    }
    std::vector<Acc> acc(static_cast<size_t>(n_out), Acc(0));
    size_t lead = 0;  // reduced leading dimensions
    while (lead < reduce.size() && reduce[lead]) ++lead;
    bool leading_only = lead > 0 && n_out > 0;
    for (size_t d = lead; d < reduce.size(); ++d) leading_only = leading_only && !reduce[d];
    if (leading_only && x.is_contiguous()) {  // column sums of a [rows, n_out] matrix (a bias gradient)
      const int64_t rows = x.numel() / n_out;
      parallel_for(
          n_out,
          [&](int64_t begin, int64_t end) {
            for (int64_t r = 0; r < rows; ++r) {
              const T* row = in + r * n_out;
              for (int64_t c = begin; c < end; ++c) acc[c] += row[c];
            }
            for (int64_t c = begin; c < end; ++c) o[c] = static_cast<T>(acc[c]);
          },
          rows);
      return;
    }
    if (x.is_contiguous()) {  // runs of reduced and kept dims, the last one contiguous in memory
      Shape sizes, reduced;  // each run's element count, and whether it is summed (1) or kept (0)
      for (size_t d = 0; d < reduce.size(); ++d) {
        if (x.shape()[d] == 1) continue;  // either way, nothing to add or to index
        if (!sizes.empty() && reduced.back() == int64_t{reduce[d]}) {
          sizes[sizes.size() - 1] *= x.shape()[d];
        } else {
          sizes.push_back(x.shape()[d]);
          reduced.push_back(reduce[d]);
        }
      }
      // (n_out > 1, so some kept run has more than one element; with none, acc stays zeros)
      const int64_t run = sizes.back(), outer = x.numel() == 0 ? 0 : x.numel() / run;
      const size_t blocks = sizes.size() - 1;
      Shape index, out_step;  // each leading run's position, and its step in out
      index.resize(blocks, 0);
      out_step.resize(blocks, 0);
      int64_t step = reduced.back() ? 1 : run;
      for (size_t b = blocks; b-- > 0;)
        if (!reduced[b]) out_step[b] = step, step *= sizes[b];
      int64_t at = 0;  // out's offset for the current leading position
      for (int64_t r = 0; r < outer; ++r) {
        const T* row = in + r * run;
        if (reduced.back()) {
          acc[static_cast<size_t>(at)] += run_sum<Acc>(row, run);
        } else {
          Acc* to = acc.data() + at;
          for (int64_t i = 0; i < run; ++i) to[i] += row[i];
        }
        for (size_t b = blocks; b-- > 0;) {  // the next leading position (an odometer)
          at += out_step[b];
          if (++index[b] < sizes[b]) break;
          at -= out_step[b] * sizes[b];
          index[b] = 0;
        }
      }
    } else {
      Shape os = contiguous_strides(out_shape);
      for (size_t d = 0; d < reduce.size(); ++d)
        if (reduce[d]) os[d] = 0;
      for_each_offset<2>(x.shape(), {&x.strides(), &os}, [&](const auto& off) { acc[off[1]] += in[off[0]]; });
    }
    for (int64_t i = 0; i < n_out; ++i) o[i] = static_cast<T>(acc[i]);
  });
  return out;
}

ValuesIndices max_min_keepdim(const Tensor& x, int64_t dim, bool is_max) {
  const char* op = is_max ? "max" : "min";
  const int64_t n = x.shape()[dim];
  Shape out_shape = x.shape();
  out_shape[dim] = 1;
  if (n == 0) fail("{}: cannot reduce over dimension {} of size 0 (input {} {})", op, dim, x.shape(), x.dtype());
  Tensor values = empty(out_shape, x.dtype());
  Tensor indices = empty(out_shape, Dtype::int64);
  dispatch(x.dtype(), [&]<class T>() {
    const T* in = ptr<T>(x);
    T* vo = ptr<T>(values);
    int64_t* io = ptr<int64_t>(indices);
    // Iterate over the output; for each, scan along `dim`. NaN wins (propagates), first index on ties.
    Shape os = x.strides();
    const int64_t step = os[dim];
    os[dim] = 0;
    Shape outer = x.shape();
    outer[dim] = 1;
    int64_t i = 0;
    for_each_offset<1>(outer, {&os}, [&](const auto& off) {
      T best = in[off[0]];
      int64_t best_j = 0;
      for (int64_t j = 1; j < n; ++j) {
        const T v = in[off[0] + j * step];
        bool better = is_max ? v > best : v < best;
        if constexpr (std::is_floating_point_v<T>) better = better || (std::isnan(v) && !std::isnan(best));
        if (better) {
          best = v;
          best_j = j;
        }
      }
      vo[i] = best;
      io[i] = best_j;
      ++i;
    });
  });
  return {values, indices};
}

Tensor sort_indices(const Tensor& x, int64_t dim, bool descending) {
  Tensor indices = empty(x.shape(), Dtype::int64);
  const int64_t n = x.shape()[dim];
  if (indices.numel() == 0) return indices;
  dispatch(x.dtype(), [&]<class T>() {
    const T* in = ptr<T>(x);
    int64_t* io = ptr<int64_t>(indices);
    Shape xs = x.strides(), os = indices.strides();
    const int64_t x_step = xs[dim], o_step = os[dim];
    xs[dim] = os[dim] = 0;
    Shape outer = x.shape();
    outer[dim] = 1;
    // NaN compares above every number, so that a sort is a strict weak order and NaN goes last
    // (first when descending), as PyTorch's.
    const auto above = [](T a, T b) {
      if constexpr (std::is_floating_point_v<T>) return std::isnan(a) ? !std::isnan(b) : a > b;
      else return a > b;
    };
    std::vector<int64_t> order(static_cast<size_t>(n));
    for_each_offset<2>(outer, {&xs, &os}, [&](const auto& off) {
      const T* row = in + off[0];
      std::iota(order.begin(), order.end(), int64_t{0});
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return descending ? above(row[a * x_step], row[b * x_step]) : above(row[b * x_step], row[a * x_step]);
      });
      for (int64_t j = 0; j < n; ++j) io[off[1] + j * o_step] = order[static_cast<size_t>(j)];
    });
  });
  return indices;
}

namespace {

struct BlasMatrix {
  bool trans;
  int64_t ld;
};

// How a rows x cols matrix with strides (rs, cs) can be handed to row-major BLAS without a copy.
std::optional<BlasMatrix> blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (cols == 1 || cs == 1) {
    const int64_t ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    if (ld >= std::max<int64_t>(1, cols)) return BlasMatrix{false, ld};
  }
  if (rows == 1 || rs == 1) {
    const int64_t ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    if (ld >= std::max<int64_t>(1, rows)) return BlasMatrix{true, ld};
  }
  return std::nullopt;
}

// Below this many multiply-adds a plain loop beats a BLAS call: OpenBLAS's interface and
// dispatch cost about 50 ns, more than a 4x3x4 product itself (the seed's XOR network).
constexpr int64_t kSmallGemm = 1024;

// The tiny product as one dot product per output element: independent short chains, no
// store-to-load round trip through the output (the axpy form measured 30 ns slower on 4x3x4).
// K > 0 is the inner dimension known at compile time, its loop unrolled (the seed's products
// have k = 1, 3 and 4); K == 0 reads it from k. The same sums in the same order either way.
template <int K, class T>
void dot_products(int64_t n, int64_t m, int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* __restrict b,
                  int64_t b_row, int64_t b_col, T* __restrict c, bool accumulate) {
  const int64_t depth = K > 0 ? K : k;
  for (int64_t i = 0; i < n; ++i, a += a_row)
    for (int64_t j = 0; j < m; ++j) {
      const T* pb = b + j * b_col;
      T acc = 0;
      for (int64_t p = 0; p < depth; ++p) acc += a[p * a_col] * pb[p * b_row];
      *c = accumulate ? *c + acc : acc;
      ++c;
    }
}

// Independent products (a batch's, a convolution's parts) shared between threads, each running
// its GEMMs on one OpenBLAS thread (SerialBlas): OpenBLAS splits a small product between its
// threads poorly. Shared when there are two threads and two tasks, and `per_task` elements of
// work each come to two parallel_for grains (the test parallel_for makes, so that it does split).
bool shares_products(int64_t tasks, int64_t per_task) {
  return get_num_threads() > 1 && tasks > 1 && tasks * per_task >= 2 * kParallelGrain;
}
// Calls f(begin, end) over the tasks [0, tasks): here, or in pieces on threads (shares_products).
template <class F>
void for_each_task(int64_t tasks, int64_t per_task, F&& f) {
  if (!shares_products(tasks, per_task)) return f(int64_t{0}, tasks);
  const SerialBlas one_thread;
  parallel_for(tasks, f, per_task, 1);
}

// The dot products for any strides, their inner loop unrolled for the small inner dims.
template <class T>
void strided_products(int64_t n, int64_t m, int64_t k, const T* a, int64_t a_row, int64_t a_col, const T* b,
                      int64_t b_row, int64_t b_col, T* c, bool accumulate) {
  switch (k) {
    case 1: return dot_products<1>(n, m, k, a, a_row, a_col, b, b_row, b_col, c, accumulate);
    case 2: return dot_products<2>(n, m, k, a, a_row, a_col, b, b_row, b_col, c, accumulate);
    case 3: return dot_products<3>(n, m, k, a, a_row, a_col, b, b_row, b_col, c, accumulate);
    case 4: return dot_products<4>(n, m, k, a, a_row, a_col, b, b_row, b_col, c, accumulate);
    default: return dot_products<0>(n, m, k, a, a_row, a_col, b, b_row, b_col, c, accumulate);
  }
}

// c = a b, or c += a b when `accumulate` (BLAS's beta = 1: a bias already in c).
template <class T>
void gemm(bool ta, bool tb, int64_t n, int64_t m, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
          bool accumulate) {
  if (!std::is_floating_point_v<T> || n * m * k <= kSmallGemm)  // int64 (labels, indices), or tiny
    return strided_products(n, m, k, a, ta ? 1 : lda, ta ? lda : 1, b, tb ? 1 : ldb, tb ? ldb : 1, c, accumulate);
  const auto TA = ta ? CblasTrans : CblasNoTrans;
  const auto TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, TA, TB, int(n), int(m), int(k), 1.0f, a, int(lda), b, int(ldb), accumulate ? 1.0f : 0.0f,
                c, int(m));
  } else if constexpr (std::is_same_v<T, double>) {
    cblas_dgemm(CblasRowMajor, TA, TB, int(n), int(m), int(k), 1.0, a, int(lda), b, int(ldb), accumulate ? 1.0 : 0.0, c,
                int(m));
  }
}

}  // namespace

namespace {
constexpr double factorial(int n) { return n <= 1 ? 1.0 : n * factorial(n - 1); }  // exact up to 18!
constexpr double inverse_factorial(int n) { return 1.0 / factorial(n); }

// t = k ln2 + r with |r| <= ln2 / 2, for |t| <= 708: exp(t) = 2^k (expm1(r) + 1) and
// expm1(t) = 2^k expm1(r) + (2^k - 1). expm1(r) = r + r^2 (1/2 + r/6 + ... + r^(N-2)/N!): with
// N = 10 within 1e-11 of it relative, enough for a float result rounded once; with N = 13
// within 2e-17, for a double. Branch-free, so the loops that inline it vectorise.
struct ExpParts {
  double two_k, expm1_r;
};
template <int N>
[[gnu::always_inline]] inline ExpParts exp_parts(double t) {
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: t + kRound keeps round(t) in the low bits
  constexpr double kLn2Hi = 0.6931471803691238, kLn2Lo = 1.9082149292705877e-10;  // kLn2Hi * k is exact
  const double k_rounded = std::fma(t, 1.4426950408889634, kRound);
  const double k = k_rounded - kRound;
  const double r = std::fma(-k, kLn2Lo, std::fma(-k, kLn2Hi, t));
  double p = inverse_factorial(N);
  [&]<int... I>(std::integer_sequence<int, I...>) {  // Horner's rule, 1/(N-1)! down to 1/2
    ((p = std::fma(p, r, inverse_factorial(N - 1 - I))), ...);
  }(std::make_integer_sequence<int, N - 2>());
  const int64_t k_bits = std::bit_cast<int64_t>(k_rounded) - std::bit_cast<int64_t>(kRound);
  return {std::bit_cast<double>((k_bits + 1023) << 52), std::fma(r * r, p, r)};
}

// Computed in double either way; a float result keeps a shorter polynomial.
template <class T>
constexpr int kExpDegree = std::is_same_v<T, float> ? 10 : 13;

// tanh(v) = e / (e + 2), e = expm1(2|v|), with |v| clamped where tanh rounds to 1 in T.
template <class T>
[[gnu::always_inline]] inline void tanh_loop(const T* x, T* y, int64_t n) {
  constexpr double kOne = std::is_same_v<T, float> ? 9.5 : 19.5;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i], magnitude = std::fabs(v);
    const auto [two_k, expm1_r] = exp_parts<kExpDegree<T>>(2 * (magnitude < kOne ? magnitude : kOne));
    const double e = std::fma(two_k, expm1_r, two_k - 1);  // expm1(2|v|)
    const T result = static_cast<T>(std::copysign(e / (e + 2), v));
    y[i] = v == v ? result : x[i];  // NaN stays NaN
  }
}

// sigmoid(v) = 1 / (1 + e) for v >= 0 and e / (1 + e) below, e = exp(-|v|) (never an overflow).
// |v| is clamped where sigmoid rounds to 0 in float; in double exp(-|v|) stays a normal number
// up to 708, and sigmoid_double redoes the rare larger |v| (down to subnormal results).
template <class T>
[[gnu::always_inline]] inline void sigmoid_loop(const T* x, T* y, int64_t n) {
  constexpr double kZero = std::is_same_v<T, float> ? 104 : 708;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i], magnitude = std::fabs(v);
    const auto [two_k, expm1_r] = exp_parts<kExpDegree<T>>(-(magnitude < kZero ? magnitude : kZero));
    const double e = std::fma(two_k, expm1_r, two_k);  // exp(-|v|), in (0, 1]
    const T result = static_cast<T>((v >= 0 ? 1 : e) / (1 + e));
    y[i] = v == v ? result : x[i];
  }
}

// Each loop twice: for AVX2 with FMA, where the multiply-adds are single instructions (the
// 100-link tanh chain: see docs/performance.md, item 14), and for any x86-64, where std::fma
// is glibc's (the same bits, much slower). The version is chosen when the library is loaded
// (an ifunc). Not under ThreadSanitizer: ifunc resolvers run while the program is relocated,
// before its runtime is up (the process crashed there).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
#define CHAINRULE_VERSIONS(name, T)                                                                            \
  [[gnu::target("avx2,fma")]] void name##_version(const T* x, T* y, int64_t n) { name##_loop(x, y, n); } \
  [[gnu::target("default")]] void name##_version(const T* x, T* y, int64_t n) { name##_loop(x, y, n); }
#else
#define CHAINRULE_VERSIONS(name, T) \
  void name##_version(const T* x, T* y, int64_t n) { name##_loop(x, y, n); }
#endif
CHAINRULE_VERSIONS(tanh, float)
CHAINRULE_VERSIONS(tanh, double)
CHAINRULE_VERSIONS(sigmoid, float)
CHAINRULE_VERSIONS(sigmoid, double)
#undef CHAINRULE_VERSIONS
}  // namespace

void tanh_float(const float* x, float* y, int64_t n) { tanh_version(x, y, n); }
void sigmoid_float(const float* x, float* y, int64_t n) { sigmoid_version(x, y, n); }
void tanh_double(const double* x, double* y, int64_t n) { tanh_version(x, y, n); }
void sigmoid_double(const double* x, double* y, int64_t n) {
  bool below = false;  // some x < -708: exp(x) below the normal range, rare
  for (int64_t i = 0; i < n; ++i) below |= x[i] < -708;
  if (!below) return sigmoid_version(x, y, n);
  for (int64_t i = 0; i < n; ++i)  // element by element, so that y may be x
    if (x[i] < -708)
      y[i] = std::exp(x[i]) / (1 + std::exp(x[i]));
    else
      sigmoid_version(x + i, y + i, 1);
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool transpose_a, bool transpose_b, const Tensor& bias) {
  // The last two dims of an operand as the product sees them (swapped when transposed).
  auto rows = [](const Tensor& t, bool tr) { return t.shape()[t.dim() - (tr ? 1 : 2)]; };
  auto cols = [](const Tensor& t, bool tr) { return t.shape()[t.dim() - (tr ? 2 : 1)]; };
  const int64_t n = rows(a_in, transpose_a), k = cols(a_in, transpose_a), m = cols(b_in, transpose_b);
  const bool batched = a_in.dim() > 2 || b_in.dim() > 2;  // plain matrices skip the batch shapes
  Shape batch;
  Tensor out;
  if (batched) {
    batch = broadcast_shapes(Shape(a_in.shape().begin(), a_in.shape().end() - 2),
                             Shape(b_in.shape().begin(), b_in.shape().end() - 2), "matmul");
    Shape out_shape = batch;
    out_shape.push_back(n);
    out_shape.push_back(m);
    out = empty(out_shape, a_in.dtype());
  } else {
    out = empty({n, m}, a_in.dtype());
  }
  if (out.numel() == 0) return out;
  if (bias.defined()) {  // every row of out starts as the bias; the product is added onto it
    const Tensor b = bias.contiguous();  // itself when contiguous
    const size_t row = static_cast<size_t>(m) * dtype_size(out.dtype());
    auto* p = static_cast<unsigned char*>(out.raw_data());
    for (int64_t r = 0, count = out.numel() / m; r < count; ++r) std::memcpy(p + r * row, b.raw_data(), row);
  }
  if (!batched && k > 0 && n * m * k <= kSmallGemm) {
    // Tiny matrices are read as they lie, whatever their strides: gemm's own dot products,
    // without its layouts (a copy for a layout BLAS cannot read) and the batch's bookkeeping.
    const Shape &sa = a_in.strides(), &sb = b_in.strides();
    dispatch(out.dtype(), [&]<class T>() {
      strided_products(n, m, k, ptr<T>(a_in), sa[transpose_a ? 1 : 0], sa[transpose_a ? 0 : 1], ptr<T>(b_in),
                       sb[transpose_b ? 1 : 0], sb[transpose_b ? 0 : 1], ptr<T>(out), bias.defined());
    });
    return out;
  }
  if (k == 0) {
    if (!bias.defined()) std::memset(out.raw_data(), 0, static_cast<size_t>(out.numel()) * dtype_size(out.dtype()));
    return out;
  }
  auto layout = [](const Tensor& t, bool tr, int64_t r, int64_t c) {
    const int64_t rs = t.strides()[t.dim() - 2], cs = t.strides()[t.dim() - 1];
    return tr ? blas_layout(r, c, cs, rs) : blas_layout(r, c, rs, cs);
  };
  Tensor a_copy, b_copy;  // only when BLAS cannot read an operand as it lies (no handle copies otherwise)
  std::optional<BlasMatrix> la = layout(a_in, transpose_a, n, k), lb = layout(b_in, transpose_b, k, m);
  if (!la) la = layout(a_copy = a_in.contiguous(), transpose_a, n, k);
  if (!lb) lb = layout(b_copy = b_in.contiguous(), transpose_b, k, m);
  const Tensor& a = a_copy.defined() ? a_copy : a_in;
  const Tensor& b = b_copy.defined() ? b_copy : b_in;

  // Batch strides of a and b as seen from the broadcast batch shape.
  auto batch_strides = [&](const Tensor& t) {
    Shape s;
    s.resize(batch.size(), 0);
    const size_t lead = batch.size() - (t.dim() - 2);
    for (size_t i = 0; i + 2 < static_cast<size_t>(t.dim()); ++i)
      s[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
    return s;
  };
  dispatch(out.dtype(), [&]<class T>() {
    const T* pa = ptr<T>(a);
    const T* pb = ptr<T>(b);
    T* pc = ptr<T>(out);
    if (!batched) return gemm<T>(la->trans, lb->trans, n, m, k, pa, la->ld, pb, lb->ld, pc, bias.defined());
    const Shape sa = batch_strides(a), sb = batch_strides(b);
    std::vector<std::array<int64_t, 2>> at;  // each product's operands
    at.reserve(static_cast<size_t>(batch.numel()));
    for_each_offset<2>(batch, {&sa, &sb}, [&](const auto& off) { at.push_back({off[0], off[1]}); });
    // a product's multiply-adds count 1/32 of an element each: on one thread OpenBLAS does 50-80
    // a ns, and a copy or scale, which kParallelGrain is measured by, one or two elements
    for_each_task(batch.numel(), std::max<int64_t>(n * m * k / 32, 1), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const auto [oa, ob] = at[static_cast<size_t>(i)];
        gemm<T>(la->trans, lb->trans, n, m, k, pa + oa, la->ld, pb + ob, lb->ld, pc + i * n * m, bias.defined());
      }
    });
  });
  return out;
}

namespace {
// A loop compiled twice, for AVX2 and for any x86-64, chosen when the library is loaded (as
// tanh's, above): name##_version(job, begin, end) runs name##_loop. Without FMA, so that nothing
// is contracted: the same bits either way.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
#define CHAINRULE_AVX2_VERSIONS(name, Job)                                                       \
  [[gnu::target("avx2")]] void name##_version(const Job& job, int64_t begin, int64_t end) {    \
    name##_loop(job, begin, end);                                                              \
  }                                                                                            \
  [[gnu::target("default")]] void name##_version(const Job& job, int64_t begin, int64_t end) { \
    name##_loop(job, begin, end);                                                              \
  }
#else
#define CHAINRULE_AVX2_VERSIONS(name, Job) \
  void name##_version(const Job& job, int64_t begin, int64_t end) { name##_loop(job, begin, end); }
#endif

// A pooling window along one dim: its first element's position (maybe in the padding) and the
// range of its elements inside x, [first, last).
struct Span {
  int64_t start, first, last;
};

// The versioned loops below take plain pointers and make no containers: clang (the fuzz
// build's compiler) left the library templates a multiversioned function instantiates
// undefined at link time.
template <class T>
struct MaxPoolJob {
  const T* x;
  int64_t* indices;
  Window2 w;
  int64_t height, width;
  const Span* rows;     // the windows along each dim: w.out[0] and w.out[1] of them
  const Span* columns;
  int64_t inner, outer;  // the windows whose columns are all inside x
  T* best;               // scratch for a row of windows, w.out[1] each (one piece's own)
  std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>* rel;
};

// Planes [begin, end) of max_pool2d_indices. A row of windows whose columns are all inside x
// goes through its elements column by column for all of them at once: independent steps, not
// one chain per window, each window's choice kept as an offset from its start in T's width
// (vectorised). Masks rather than branches: the data decide, so a branch would be mispredicted
// about half the time. The windows at the edges go one at a time.
template <class T>
[[gnu::always_inline]] inline void max_pool_loop(const MaxPoolJob<T>& job, int64_t begin, int64_t end) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;  // T's bits
  const Window2& w = job.w;
  const int64_t width = job.width, l = w.out[0] * w.out[1];
  T* b = job.best;
  U* r_at = job.rel;
  for (int64_t p = begin; p < end; ++p) {
    const T* plane = job.x + p * job.height * width;
    int64_t* out = job.indices + p * l;
    for (int64_t row = 0; row < w.out[0]; ++row) {
      const Span& r = job.rows[row];
      const int64_t start = r.start * width - w.padding[1];  // where window 0 of the row starts
      for (int64_t o = 0; o < w.out[1]; ++o) {
        b[o] = -std::numeric_limits<T>::infinity();
        const int64_t first_column = job.columns[o].first;
        r_at[o] = static_cast<U>(r.first * w.dilation[0] * width + first_column * w.dilation[1]);
      }
      // the windows' step along a row: 2 (the usual 2x2 pooling) as a constant, which lets the
      // compiler vectorise its loads, else as it is
      const auto inner_windows = [&]<int64_t Step>(int64_t step) {
        const int64_t stride = Step ? Step : step;
        for (int64_t ky = r.first; ky < r.last; ++ky)
          for (int64_t kx = 0; kx < w.kernel[1]; ++kx) {
            const int64_t offset = ky * w.dilation[0] * width + kx * w.dilation[1];
            const T* from = plane + start + offset;
            for (int64_t o = job.inner; o < job.outer; ++o) {
              const T v = from[o * stride];
              const U take = -static_cast<U>((v > b[o]) | (v != v));  // larger, or NaN (a later NaN too)
              b[o] = std::bit_cast<T>(static_cast<U>((std::bit_cast<U>(v) & take) | (std::bit_cast<U>(b[o]) & ~take)));
              r_at[o] = static_cast<U>((static_cast<U>(offset) & take) | (r_at[o] & ~take));
            }
          }
      };
      if (w.stride[1] == 2)
        inner_windows.template operator()<2>(2);
      else
        inner_windows.template operator()<0>(w.stride[1]);
      for (int64_t o = 0; o < w.out[1]; ++o) {
        if (o == job.inner) o = std::max(job.outer, job.inner);
        if (o >= w.out[1]) break;
        const Span& c = job.columns[o];
        for (int64_t ky = r.first; ky < r.last; ++ky)
          for (int64_t kx = c.first; kx < c.last; ++kx) {
            const int64_t offset = ky * w.dilation[0] * width + kx * w.dilation[1];
            const T v = plane[start + o * w.stride[1] + offset];
            const bool take = v > b[o] || v != v;
            b[o] = take ? v : b[o];
            r_at[o] = take ? static_cast<U>(offset) : r_at[o];
          }
      }
      for (int64_t o = 0; o < w.out[1]; ++o) out[o] = start + o * w.stride[1] + static_cast<int64_t>(r_at[o]);
      out += w.out[1];
    }
  }
}
CHAINRULE_AVX2_VERSIONS(max_pool, MaxPoolJob<float>)
CHAINRULE_AVX2_VERSIONS(max_pool, MaxPoolJob<double>)
}  // namespace

Tensor max_pool2d_indices(const Tensor& x_in, const Window2& w) {
  const Tensor x = dense(x_in);
  Tensor indices = empty({x.size(0), x.size(1), w.out[0] * w.out[1]}, Dtype::int64);
  std::array<std::vector<Span>, 2> spans;  // the windows along each dim
  for (int k = 0; k < 2; ++k)
    for (int64_t o = 0; o < w.out[k]; ++o) {
      const int64_t start = o * w.stride[k] - w.padding[k], d = w.dilation[k];
      spans[k].push_back({start, start < 0 ? (-start + d - 1) / d : 0,
                          std::min(w.kernel[k], (x.size(2 + k) - start + d - 1) / d)});
    }
  int64_t inner = 0, outer = w.out[1];
  while (inner < outer && spans[1][static_cast<size_t>(inner)].first > 0) ++inner;
  while (outer > inner && spans[1][static_cast<size_t>(outer - 1)].last < w.kernel[1]) --outer;
  dispatch_floating(x.dtype(), "max_pool2d", [&]<class T>() {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    // offsets within a window kept in T's width: a float32 plane of 2^31 elements or more goes window by window
    const bool narrow = sizeof(T) == 4 && x.size(2) * x.size(3) >= int64_t{1} << 31;
    const MaxPoolJob<T> job{ptr<T>(x), ptr<int64_t>(indices), w, x.size(2), x.size(3), spans[0].data(),
                            spans[1].data(), narrow ? 0 : inner, narrow ? 0 : outer, nullptr, nullptr};
    parallel_for(
        x.size(0) * x.size(1),
        [&](int64_t begin, int64_t end) {
          std::vector<T> best(static_cast<size_t>(w.out[1]));
          std::vector<U> rel(best.size());
          MaxPoolJob<T> own = job;
          own.best = best.data();
          own.rel = rel.data();
          max_pool_version(own, begin, end);
        },
        w.out[0] * w.out[1] * w.kernel[0] * w.kernel[1], 1);
  });
  return indices;
}

namespace {
// y as normalize makes it and normalize_backward makes it again: one expression, so the same bits.
template <class T>
[[gnu::always_inline]] inline T standardized(T v, T mean, T invstd) {
  return (v - mean) * invstd;
}

// weight and bias for normalize's affine, both or neither: a missing one as 1 or 0
std::pair<Tensor, Tensor> affine_pair(const Tensor& weight, const Tensor& bias, const NormLayout& l, Dtype dtype) {
  if (!weight.defined() && !bias.defined()) return {};
  const Shape shape{l.groups * l.per_group};
  return {weight.defined() ? dense(weight) : full(shape, 1.0, dtype),
          bias.defined() ? dense(bias) : zeros(shape, dtype)};
}

// What the normalisation loops read and write (null where a pass has none).
template <class T>
struct NormJob {
  NormLayout l;
  double eps;
  const T* x;
  const T* g;          // backward: the output's gradient
  const T* w;          // weight and shift (bias): both or neither
  const T* shift;
  T* out;              // y, or x's gradient (null: not needed)
  T* mean;             // per c: written forward, read backward
  T* var;
  double* invstd;
  double* run_sums;    // backward, per (c, weight) when runs share a weight: the sums of g y and of g
  T* gw;               // the column pass's weight and bias gradients
  T* gb;
  double* dots;        // the column pass's scratch: a piece's own sums, one per weight of the piece
  double* sums;
};

// Channels [begin, end): their statistics and output.
template <class T>
[[gnu::always_inline]] inline void normalize_loop(const NormJob<T>& job, int64_t begin, int64_t end) {
  const auto& l = job.l;
  const int64_t a = l.a, c = l.c, b = l.b, run = l.run();
  const auto count = static_cast<double>(a * b);
  for (int64_t k = begin; k < end; ++k) {
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < a; ++i) sum += run_sum<double>(job.x + (i * c + k) * b, b);
    const double mean = sum / count;
    for (int64_t i = 0; i < a; ++i) {
      const T* row = job.x + (i * c + k) * b;
      squares += run_sum<double>(b, [&](int64_t j) { return (row[j] - mean) * (row[j] - mean); });
    }
    const double var = squares / count, invstd = 1 / std::sqrt(var + job.eps);
    job.mean[k] = static_cast<T>(mean);
    job.var[k] = static_cast<T>(var);
    job.invstd[k] = invstd;
    const auto m = static_cast<T>(mean), s = static_cast<T>(invstd);
    const T* w = job.w ? job.w + k % l.groups * l.per_group : nullptr;
    const T* shift = job.w ? job.shift + k % l.groups * l.per_group : nullptr;
    for (int64_t i = 0; i < a; ++i) {
      const T* row = job.x + (i * c + k) * b;
      T* out = job.out + (i * c + k) * b;
      if (!w)
        for (int64_t j = 0; j < b; ++j) out[j] = standardized(row[j], m, s);
      else if (run == 1)  // a weight per position (layer norm)
        for (int64_t j = 0; j < b; ++j) out[j] = standardized(row[j], m, s) * w[j] + shift[j];
      else  // runs of positions sharing a weight (batch and group norm)
        for (int64_t q = 0; q < l.per_group; ++q) {
          const T wq = w[q], sq = shift[q];  // held, so that out (which might alias them) can be vectorised
          for (int64_t j = q * run; j < (q + 1) * run; ++j) out[j] = standardized(row[j], m, s) * wq + sq;
        }
    }
  }
}

// Channels [begin, end) backward: y's gradient is g w, and x's s (g w - mean(g w) - y mean(g w y)).
// Where runs of positions share a weight, the sums of g and g y per run go to run_sums.
template <class T>
[[gnu::always_inline]] inline void normalize_backward_loop(const NormJob<T>& job, int64_t begin, int64_t end) {
  const auto& l = job.l;
  const int64_t a = l.a, c = l.c, b = l.b, run = l.run();
  const auto count = static_cast<double>(a * b);
  const T* pg = job.g;
  const T* px = job.x;
  for (int64_t k = begin; k < end; ++k) {
    const T m = job.mean[k], s = static_cast<T>(job.invstd[k]);
    const auto y = [&](int64_t at) { return standardized(px[at], m, s); };
    const T* w = job.w ? job.w + k % l.groups * l.per_group : nullptr;
    double sum = 0, dot = 0;  // of g w, and of g w y
    if (w && run == 1) {
      for (int64_t i = 0; i < a; ++i) {
        const int64_t at = (i * c + k) * b;
        sum += run_sum<double>(b, [&](int64_t j) { return static_cast<double>(pg[at + j] * w[j]); });
        dot += run_sum<double>(b, [&](int64_t j) { return static_cast<double>(pg[at + j] * w[j]) * y(at + j); });
      }
    } else {  // runs of positions sharing a weight (without one, the channel's positions are one run)
      const int64_t runs = (w && run != 1) || job.run_sums ? l.per_group : 1;
      const int64_t span = runs == 1 ? b : run;
      for (int64_t q = 0; q < runs; ++q) {
        double run_g = 0, run_gy = 0;
        for (int64_t i = 0; i < a; ++i) {
          const int64_t at = (i * c + k) * b + q * span;
          run_g += run_sum<double>(pg + at, span);
          run_gy += run_sum<double>(span, [&](int64_t j) { return static_cast<double>(pg[at + j]) * y(at + j); });
        }
        if (job.run_sums) {
          job.run_sums[2 * (k * l.per_group + q)] = run_gy;
          job.run_sums[2 * (k * l.per_group + q) + 1] = run_g;
        }
        const double wq = w ? static_cast<double>(w[q]) : 1;
        sum += wq * run_g;
        dot += wq * run_gy;
      }
    }
    if (!job.out) continue;
    const auto mg = static_cast<T>(sum / count), mgy = static_cast<T>(dot / count);
    for (int64_t i = 0; i < a; ++i) {
      const int64_t at = (i * c + k) * b;
      T* out = job.out + at;
      if (!w)
        for (int64_t j = 0; j < b; ++j) out[j] = s * (pg[at + j] - mg - y(at + j) * mgy);
      else if (run == 1)
        for (int64_t j = 0; j < b; ++j) out[j] = s * (pg[at + j] * w[j] - mg - y(at + j) * mgy);
      else
        for (int64_t q = 0; q < l.per_group; ++q) {
          const T wq = w[q];
          for (int64_t j = q * run; j < (q + 1) * run; ++j) out[j] = s * (pg[at + j] * wq - mg - y(at + j) * mgy);
        }
    }
  }
}

// Weights [begin, end) of a weight per position (layer norm): the sums of g y and of g down
// their columns, channel by channel.
template <class T>
[[gnu::always_inline]] inline void normalize_columns_loop(const NormJob<T>& job, int64_t begin, int64_t end) {
  const auto& l = job.l;
  const int64_t a = l.a, c = l.c, b = l.b;
  for (int64_t group = begin / b; group * b < end; ++group) {
    const int64_t from = std::max(begin, group * b), to = std::min(end, (group + 1) * b);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t k = group; k < c; k += l.groups) {
        const T m = job.mean[k], s = static_cast<T>(job.invstd[k]);
        const T* gr = job.g + (i * c + k) * b - group * b;
        const T* xr = job.x + (i * c + k) * b - group * b;
        double* dot = job.dots - begin;
        double* sum = job.sums - begin;
        for (int64_t n = from; n < to; ++n) {
          dot[n] += static_cast<double>(gr[n]) * standardized(xr[n], m, s);
          sum[n] += gr[n];
        }
      }
  }
  for (int64_t n = begin; n < end; ++n) {
    job.gw[n] = static_cast<T>(job.dots[n - begin]);
    job.gb[n] = static_cast<T>(job.sums[n - begin]);
  }
}

CHAINRULE_AVX2_VERSIONS(normalize, NormJob<float>)
CHAINRULE_AVX2_VERSIONS(normalize, NormJob<double>)
CHAINRULE_AVX2_VERSIONS(normalize_backward, NormJob<float>)
CHAINRULE_AVX2_VERSIONS(normalize_backward, NormJob<double>)
CHAINRULE_AVX2_VERSIONS(normalize_columns, NormJob<float>)
CHAINRULE_AVX2_VERSIONS(normalize_columns, NormJob<double>)
#undef CHAINRULE_AVX2_VERSIONS
}  // namespace

NormalizeResult normalize(const Tensor& x_in, const NormLayout& l, double eps, const Tensor& weight_in,
                          const Tensor& bias_in) {
  const Tensor x = dense(x_in);
  const std::pair<Tensor, Tensor> affine = affine_pair(weight_in, bias_in, l, x.dtype());
  const Tensor &weight = affine.first, &bias = affine.second;  // (clang's lambdas cannot capture a structured binding)
  NormalizeResult r{empty(x.shape(), x.dtype()), empty({l.c}, x.dtype()), empty({l.c}, x.dtype()),
                    empty({l.c}, Dtype::float64)};
  dispatch_floating(x.dtype(), "normalize", [&]<class T>() {
    const NormJob<T> job{.l = l, .eps = eps, .x = ptr<T>(x), .g = nullptr,
                         .w = weight.defined() ? ptr<T>(weight) : nullptr,
                         .shift = bias.defined() ? ptr<T>(bias) : nullptr, .out = ptr<T>(r.y),
                         .mean = ptr<T>(r.mean), .var = ptr<T>(r.var), .invstd = ptr<double>(r.invstd),
                         .run_sums = nullptr, .gw = nullptr, .gb = nullptr, .dots = nullptr, .sums = nullptr};
    parallel_for(l.c, [&](int64_t begin, int64_t end) { normalize_version(job, begin, end); }, l.a * l.b, 1);
  });
  return r;
}

NormalizeGrads normalize_backward(const Tensor& g_in, const Tensor& x_in, const Tensor& mean, const Tensor& invstd,
                                  const NormLayout& l, const Tensor& weight_in, bool need_x, bool need_affine) {
  const Tensor g = dense(g_in), x = dense(x_in), weight = weight_in.defined() ? dense(weight_in) : Tensor();
  const int64_t weights = l.groups * l.per_group;
  NormalizeGrads r{need_x ? empty(g.shape(), g.dtype()) : Tensor(),
                   need_affine ? empty({weights}, g.dtype()) : Tensor(),
                   need_affine ? empty({weights}, g.dtype()) : Tensor()};
  // The affine's gradients: where runs of positions share a weight, the channel pass keeps each
  // run's sums, added here channel by channel (in the channels' order, not the threads'); with a
  // weight per position (layer norm), sums down the columns of positions, a pass of their own.
  const bool per_position = l.run() == 1;
  std::vector<double> run_sums(need_affine && !per_position ? 2 * static_cast<size_t>(l.c * l.per_group) : 0);
  dispatch_floating(g.dtype(), "normalize", [&]<class T>() {
    const NormJob<T> job{.l = l, .eps = 0, .x = ptr<T>(x), .g = ptr<T>(g),
                         .w = weight.defined() ? ptr<T>(weight) : nullptr, .shift = nullptr,
                         .out = need_x ? ptr<T>(r.x) : nullptr, .mean = ptr<T>(mean), .var = nullptr,
                         .invstd = ptr<double>(invstd),
                         .run_sums = run_sums.empty() ? nullptr : run_sums.data(),
                         .gw = need_affine ? ptr<T>(r.weight) : nullptr, .gb = need_affine ? ptr<T>(r.bias) : nullptr,
                         .dots = nullptr, .sums = nullptr};
    parallel_for(l.c, [&](int64_t begin, int64_t end) { normalize_backward_version(job, begin, end); }, l.a * l.b, 1);
    if (!need_affine) return;
    if (per_position) {  // the positions split between threads
      parallel_for(
          weights,
          [&](int64_t begin, int64_t end) {
            std::vector<double> dots(static_cast<size_t>(end - begin)), sums(dots.size());
            NormJob<T> own = job;
            own.dots = dots.data();
            own.sums = sums.data();
            normalize_columns_version(own, begin, end);
          },
          l.a * l.c / std::max<int64_t>(l.groups, 1), 8);
      return;
    }
    for (int64_t n = 0; n < weights; ++n) {  // weight n's runs, channel by channel
      double dot = 0, sum = 0;
      for (int64_t k = n / l.per_group; k < l.c; k += l.groups) {
        dot += run_sums[static_cast<size_t>(2 * (k * l.per_group + n % l.per_group))];
        sum += run_sums[static_cast<size_t>(2 * (k * l.per_group + n % l.per_group) + 1)];
      }
      job.gw[n] = static_cast<T>(dot);
      job.gb[n] = static_cast<T>(sum);
    }
  });
  return r;
}

namespace {
// A convolution as its GEMMs see it: per group, `og` output channels and `rows` rows of columns
// (C / groups kh kw); `l` output positions; `plane` elements of one sample of x.
//
// The batch is cut into `parts` runs of samples, at most 8 and as many as the samples, fewer
// when the weight is large: a part's products accumulate its own weight gradient, and the parts'
// gradients are added in their order, so the bits depend on the shapes only, not on the thread
// count. When the batch is large enough (`split`), the parts are shared between threads and each
// runs its unfolds, folds and GEMMs alone, with OpenBLAS on one thread: the products of one
// sample ([32, 144] x [144, 784] for 16 3x3 channels on 28 x 28) are too small to share well,
// and a part's columns stay in the cache of the core that made them. A part goes in blocks of
// `block` samples, whose columns take about 1 MiB (per thread, when one call's unfold is shared).
struct ConvSizes {
  static constexpr int64_t kMaxParts = 8;
  static constexpr int64_t kPartialBytes = int64_t{4} << 20;  // the parts' weight gradients, at most
  int64_t n, c, h, wd, o, groups, og, rows, l, plane, parts, block;
  bool split;
  ConvSizes(const Shape& x, const Shape& weight, const Window2& w, int64_t g, size_t element)
      : n(x[0]), c(x[1]), h(x[2]), wd(x[3]), o(weight[0]), groups(g), og(weight[0] / g),
        rows(weight[1] * weight[2] * weight[3]), l(w.out[0] * w.out[1]), plane(x[1] * x[2] * x[3]) {
    const auto bytes = static_cast<int64_t>(element);
    parts = std::clamp<int64_t>(kPartialBytes / std::max<int64_t>(bytes * o * rows, 1), 1,
                                std::clamp<int64_t>(n, 1, kMaxParts));
    split = shares_products(parts, part_work());
    const int64_t sample_bytes = std::max<int64_t>(bytes * groups * rows * l, 1);
    block = std::clamp<int64_t>((int64_t{1} << 20) * (split ? 1 : get_num_threads()) / sample_bytes, 1,
                                std::max<int64_t>(n, 1));
  }
  int64_t part_begin(int64_t p) const { return p * n / parts; }  // part p: samples [part_begin(p), part_begin(p + 1))
  int64_t part_work() const { return (n + parts - 1) / parts * groups * rows * l; }  // column elements, at most
  // Samples first .. first + b - 1 of t ([N, C, H, W], contiguous), and a block's columns in `buffer`.
  Tensor samples(const Tensor& t, int64_t first, int64_t b) const {
    return alias(t, {b, c, h, wd}, t.strides(), t.storage_offset() + first * plane);
  }
  Shape columns(int64_t b) const { return {b, groups * rows, l}; }
  Tensor columns(const Tensor& buffer, int64_t b) const {
    return alias(buffer, columns(b), contiguous_strides(columns(b)), 0);
  }
  // Offsets of group q's part: of sample i's columns in a block, of sample n's output (or its
  // gradient), of the weight (or its gradient).
  int64_t cols_at(int64_t i, int64_t q) const { return (i * groups + q) * rows * l; }
  int64_t out_at(int64_t n_, int64_t q) const { return (n_ * o + q * og) * l; }
  int64_t weight_at(int64_t q) const { return q * og * rows; }

  // Calls f(part, first, b, cols) for every block of every part, the parts in order on one
  // thread or shared between threads (split); cols is the block's columns, in a buffer of the
  // thread's own.
  template <class F>
  void for_each_block(Dtype dtype, F&& f) const {
    const auto run = [&](int64_t begin, int64_t end) {
      const Tensor buffer = empty(columns(block), dtype);
      for (int64_t p = begin; p < end; ++p)
        for (int64_t first = part_begin(p), stop = part_begin(p + 1); first < stop; first += block) {
          const int64_t b = std::min(block, stop - first);
          f(p, first, b, columns(buffer, b));
        }
    };
    for_each_task(parts, part_work(), run);
  }
};
}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Window2& w, int64_t groups, const Tensor& bias_in) {
  const Tensor x = dense(x_in), weight = dense(weight_in), bias = bias_in.defined() ? dense(bias_in) : Tensor();
  const ConvSizes s(x.shape(), weight.shape(), w, groups, dtype_size(x.dtype()));
  Tensor y = empty({s.n, s.o, w.out[0], w.out[1]}, x.dtype());
  if (y.numel() == 0) return y;
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    s.for_each_block(x.dtype(), [&](int64_t, int64_t first, int64_t b, const Tensor& cols) {
      unfold_into(cols, s.samples(x, first, b), w, 0.0);
      for (int64_t i = 0; i < b; ++i)
        for (int64_t q = 0; q < s.groups; ++q) {
          T* out = ptr<T>(y) + s.out_at(first + i, q);
          if (bias.defined())  // the group's channels' biases, which the product then adds onto
            for (int64_t r = 0; r < s.og; ++r) std::fill_n(out + r * s.l, s.l, ptr<T>(bias)[q * s.og + r]);
          gemm<T>(false, false, s.og, s.l, s.rows, ptr<T>(weight) + s.weight_at(q), s.rows,
                  ptr<T>(cols) + s.cols_at(i, q), s.l, out, bias.defined());
        }
    });
  });
  return y;
}

std::pair<Tensor, Tensor> conv2d_backward(const Tensor& g_in, const Tensor& x_in, const Tensor& weight_in,
                                          const Shape& x_shape, const Shape& weight_shape, const Window2& w,
                                          int64_t groups, bool need_x, bool need_w) {
  const Tensor g = dense(g_in);
  const Tensor x = need_w ? dense(x_in) : Tensor(), weight = need_x ? dense(weight_in) : Tensor();
  const ConvSizes s(x_shape, weight_shape, w, groups, dtype_size(g.dtype()));
  // x's gradient is a sum of folded columns. weight's: part 0's products accumulate onto its
  // first sample's (zeros without samples), each other part's in a slice of `partial`, added
  // onto it in the parts' order at the end.
  Tensor gx = need_x ? zeros(x_shape, g.dtype()) : Tensor();
  Tensor gw = need_w ? (s.n == 0 ? zeros(weight_shape, g.dtype()) : empty(weight_shape, g.dtype())) : Tensor();
  const int64_t weight_numel = weight_shape.numel();
  const Tensor partial = need_w && s.parts > 1 ? empty({s.parts - 1, weight_numel}, g.dtype()) : Tensor();
  dispatch_floating(g.dtype(), "conv2d", [&]<class T>() {
    s.for_each_block(g.dtype(), [&](int64_t p, int64_t first, int64_t b, const Tensor& cols) {
      if (need_w) {  // dW += g_i cols_i^T, per sample and group, in the samples' order
        T* into = p == 0 ? ptr<T>(gw) : ptr<T>(partial) + (p - 1) * weight_numel;
        unfold_into(cols, s.samples(x, first, b), w, 0.0);
        for (int64_t i = 0; i < b; ++i)
          for (int64_t q = 0; q < s.groups; ++q)
            gemm<T>(false, true, s.og, s.rows, s.l, ptr<T>(g) + s.out_at(first + i, q), s.l,
                    ptr<T>(cols) + s.cols_at(i, q), s.l, into + s.weight_at(q), first + i > s.part_begin(p));
      }
      if (need_x) {  // the columns' gradient W^T g_i, per sample and group, folded onto x's gradient
        for (int64_t i = 0; i < b; ++i)
          for (int64_t q = 0; q < s.groups; ++q)
            gemm<T>(true, false, s.rows, s.l, s.og, ptr<T>(weight) + s.weight_at(q), s.rows,
                    ptr<T>(g) + s.out_at(first + i, q), s.l, ptr<T>(cols) + s.cols_at(i, q), false);
        fold_add_into(s.samples(gx, first, b), cols, w);
      }
    });
    if (partial.defined()) {
      T* out = ptr<T>(gw);
      const T* add = ptr<T>(partial);
      for (int64_t p = 0; p + 1 < s.parts; ++p)
        for (int64_t e = 0; e < weight_numel; ++e) out[e] += add[p * weight_numel + e];
    }
  });
  return {std::move(gx), std::move(gw)};
}

}  // namespace chainrule::kernels
