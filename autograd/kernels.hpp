/// \file
/// Kernels: raw loops over buffers and the BLAS calls. No graph, no autograd; the only code
/// that touches raw memory. Results are fresh contiguous tensors.
#pragma once

#include "parallel.hpp"
#include "tensor.hpp"

#include <array>
#include <cmath>

namespace chainrule::kernels {

/// A fresh contiguous tensor; its contents are uninitialised. A negative or too large shape is
/// an Error naming `op` (the factory the user called).
Tensor empty(const Shape& shape, Dtype dtype, const char* op = "empty");

template <class T>
/// The typed address of t's first element (t's element type must be T).
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.impl()->storage->data) + t.impl()->offset;
}

/// An Error naming `op` when `t` is expanded (a dim of size > 1 with stride 0): writing into it
/// would put several of its elements in one memory location, the value that lands there
/// depending on the loop order (PyTorch: "more than one element of the written-to tensor
/// refers to a single memory location"). Every op that writes into a tensor checks with it.
void check_no_internal_overlap(const Tensor& t, const char* op);

/// Strides of `t` seen as a tensor of `shape` it broadcasts to (0 along broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

/// Calls f(offsets) for every index of `shape` in row-major order, where offsets[k] is the
/// element offset of that index in an operand with strides *strides[k].
template <size_t K, class F>
void for_each_offset(const Shape& shape, const std::array<const Shape*, K>& strides, F&& f) {
  std::array<int64_t, K> off{};
  if (shape.numel() == 0) return;
  const size_t nd = shape.size();
  if (nd == 0) {
    f(off);
    return;
  }
  std::array<int64_t, K> inner_stride;
  for (size_t k = 0; k < K; ++k) inner_stride[k] = (*strides[k])[nd - 1];
  const int64_t inner = shape[nd - 1];
  int64_t idx[Shape::kMaxDims] = {};
  for (;;) {
    std::array<int64_t, K> o = off;
    for (int64_t i = 0; i < inner; ++i) {
      f(o);
      for (size_t k = 0; k < K; ++k) o[k] += inner_stride[k];
    }
    int d = static_cast<int>(nd) - 2;
    for (; d >= 0; --d) {
      ++idx[d];
      for (size_t k = 0; k < K; ++k) off[k] += (*strides[k])[d];
      if (idx[d] < shape[d]) break;
      for (size_t k = 0; k < K; ++k) off[k] -= (*strides[k])[d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

/// The sum of term(0) .. term(n - 1) in Acc: eight running sums (one chain of additions runs at
/// the adder's latency, a quarter of torch's speed) combined pairwise, then the last n % 8, in an
/// order fixed by n alone (not by the machine or the thread count). sum's full reduction of a
/// contiguous tensor (term(i) = x[i]), norms' squared deviations, mse_loss's squares.
template <class Acc, class Term>
[[gnu::always_inline]] inline Acc run_sum(int64_t n, Term&& term) {
  const int64_t whole = n / 8 * 8;
  Acc lanes[8] = {};
  for (int64_t i = 0; i < whole; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += term(i + j);
  Acc total = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
  for (int64_t i = whole; i < n; ++i) total += term(i);
  return total;
}
/// The sum of x[0] .. x[n - 1] in Acc (run_sum's order).
template <class Acc, class T>
[[gnu::always_inline]] inline Acc run_sum(const T* x, int64_t n) {
  return run_sum<Acc>(n, [x](int64_t i) { return static_cast<Acc>(x[i]); });
}

/// out[i] = f(x[i]) for a tensor of element type T (any layout), out of type R.
template <class T, class R, class F>
void map_into(const Tensor& x, R* out, F&& f) {
  const T* in = ptr<T>(x);
  if (x.is_contiguous()) {
    parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(in[i]);
    });
    return;
  }
  int64_t i = 0;
  for_each_offset<1>(x.shape(), {&x.strides()}, [&](const auto& o) { out[i++] = f(in[o[0]]); });
}

/// out[i] = f(a[i], b[i]) over the broadcast `shape`; a and b of element type T.
template <class T, class R, class F>
void zip_into(const Tensor& a, const Tensor& b, const Shape& shape, R* out, F&& f) {
  const T* pa = ptr<T>(a);
  const T* pb = ptr<T>(b);
  const int64_t n = shape.numel();
  const bool a_full = a.shape() == shape && a.is_contiguous();
  const bool b_full = b.shape() == shape && b.is_contiguous();
  if (a_full && b_full) {
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(pa[i], pb[i]);
    });
  } else if (a_full && b.numel() == 1) {
    const T s = pb[0];
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(pa[i], s);
    });
  } else if (b_full && a.numel() == 1) {
    const T s = pa[0];
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(s, pb[i]);
    });
  } else {  // (a 0-d shape took the first branch: both operands are 0-d then)
    // Row by row along the last dim. A row beside a value broadcast along it (a [N, 1] column,
    // a per-row weight) gets a loop of its own, which the compiler vectorises; the strided loop
    // is already vectorised for two unit strides (a separate loop for those measured slower).
    const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
    Shape rows = shape;
    const size_t last = shape.size() - 1;
    const int64_t inner = shape[last], ia = sa[last], ib = sb[last];
    rows[last] = 1;
    R* next = out;
    for_each_offset<2>(rows, {&sa, &sb}, [&](const auto& o) {
      const T* ra = pa + o[0];
      const T* rb = pb + o[1];
      R* y = next;  // locals, so that the loops below keep them in registers
      const int64_t len = inner, sta = ia, stb = ib;
      if (sta == 1 && stb == 0) {
        const T s = rb[0];
        for (int64_t j = 0; j < len; ++j) y[j] = f(ra[j], s);
      } else if (sta == 0 && stb == 1) {
        const T s = ra[0];
        for (int64_t j = 0; j < len; ++j) y[j] = f(s, rb[j]);
      } else {
        for (int64_t j = 0; j < len; ++j) y[j] = f(ra[j * sta], rb[j * stb]);
      }
      next += len;
    });
  }
}

/// x converted to `dtype` (a copy unless it already has it; no graph).
Tensor cast(const Tensor& x, Dtype dtype);

/// A floating op's operand: x, or an int64 x in the default dtype (`exp`, `sqrt`, `tanh`, ...
/// of integers give floats, as PyTorch's do).
inline Tensor as_floating(const Tensor& x) { return is_floating(x.dtype()) ? x : cast(x, default_dtype()); }

/// A new tensor of x's dtype (the default dtype for int64, as_floating) with f applied to every
/// element. F is a generic lambda; it is instantiated for the floating types only.
template <class F>
Tensor map_floating(const Tensor& x, std::string_view op, F&& f) {
  if (!is_floating(x.dtype())) return map_floating(as_floating(x), op, std::forward<F>(f));
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor out = empty(x.shape(), x.dtype());
    map_into<T>(x, ptr<T>(out), [&](T v) { return static_cast<T>(f(v)); });
    return out;
  });
}

/// Same, for every dtype (int64 included).
template <class F>
Tensor map_any(const Tensor& x, F&& f) {
  return dispatch(x.dtype(), [&]<class T>() {
    Tensor out = empty(x.shape(), x.dtype());
    map_into<T>(x, ptr<T>(out), [&](T v) { return static_cast<T>(f(v)); });
    return out;
  });
}

/// tanh of n floats: in double, e = expm1(2|x|) by range reduction and a degree-10
/// polynomial, tanh = e / (e + 2), rounded to float once. Within 1 ulp of the correctly rounded
/// value (6 of 312 million inputs off by one, where glibc's tanhf is in 18%), and a loop the
/// compiler vectorises (an AVX2 copy with fused multiply-adds is chosen at load time where the
/// CPU has them; the baseline copy calls glibc's fma, so both give the same bits): 1.1 ns an
/// element against tanhf's 5.4 on this project's machine.
void tanh_float(const float* x, float* y, int64_t n);

/// sigmoid of n floats the same way: e = exp(-|x|), 1 / (1 + e) for x >= 0 and e / (1 + e)
/// below, in double, rounded once.
void sigmoid_float(const float* x, float* y, int64_t n);

/// tanh of n doubles by the same formula with a degree-13 polynomial: within 2 ulp of the
/// correctly rounded value, a vectorised loop instead of a call to glibc's tanh per element.
void tanh_double(const double* x, double* y, int64_t n);

/// sigmoid of n doubles the same way (within 2 ulp; exp(-|x|) below 2^-1022 from glibc's exp).
void sigmoid_double(const double* x, double* y, int64_t n);

/// A view of x's storage with the given geometry (no copy, no graph).
Tensor alias(const Tensor& x, const Shape& shape, const Shape& strides, int64_t offset);

/// Copies `src` (broadcast to dst's shape, cast to dst's dtype) into `dst`, any layouts.
void copy_into(const Tensor& dst, const Tensor& src);

/// out = x's slices at `index` along dim (index_select's loop; the indices checked by the
/// caller): x seen as [outer, n, inner] (a row-major copy first if it is not contiguous), out
/// (fresh, contiguous) as [outer, index.size(), inner], a row of `inner` elements copied per
/// (outer, index) pair, the pairs split between threads. A strided x with fewer indices than
/// n rows is read in place instead, one slice per index.
void index_select_into(const Tensor& out, const Tensor& x, int64_t dim, const std::vector<int64_t>& index);

/// out = x's rows at `low` times (1 - weight) plus its rows at `high` times weight, along dim
/// (linear interpolation's loop, floating x; the positions checked by the caller): x and out
/// seen as by index_select_into, out with weight.size() rows, one pass over out.
void mix_rows_into(const Tensor& out, const Tensor& x, int64_t dim, const std::vector<int64_t>& low,
                   const std::vector<int64_t>& high, const std::vector<double>& weight);

/// A sliding window over the last two dims of [N, C, H, W] (unfold's, so convolution's and
/// pooling's): per dim the kernel size, dilation, padding and stride, and the output's size.
struct Window2 {
  std::array<int64_t, 2> kernel;    ///< the window's height and width
  std::array<int64_t, 2> dilation;  ///< the step between its elements
  std::array<int64_t, 2> padding;   ///< positions added before (and after) each dim
  std::array<int64_t, 2> stride;    ///< the step between windows
  std::array<int64_t, 2> out;       ///< the number of windows along each dim
};

/// unfold's loop (im2col): cols [N, C kh kw, out h * out w] (fresh, contiguous) from floating x
/// [N, C, H, W] (a row-major copy first if it is not contiguous); positions outside x (padding,
/// ceil_mode's overhang) read as pad_value. A row per (n, c, kernel row, kernel column), split
/// between threads; each row a run of strided copies between two pad fills per output line.
void unfold_into(const Tensor& cols, const Tensor& x, const Window2& w, double pad_value);

/// unfold's adjoint (col2im): x [N, C, H, W] (contiguous) += every element of cols at the
/// position unfold_into read it from (those outside x dropped); the (n, c) planes split between threads.
void fold_add_into(const Tensor& x, const Tensor& cols, const Window2& w);

/// Max pooling's choices: for each window of x [N, C, H, W] (floating; a row-major copy first
/// if it is not contiguous), the position of its maximum in its (n, c) plane of H W, as PyTorch's:
/// the first of equal maxima in row-major window order, a NaN over any number (and over an
/// earlier NaN), the first position inside x for a window of -inf. int64 [N, C, out h * out w];
/// the planes split between threads.
Tensor max_pool2d_indices(const Tensor& x, const Window2& w);

/// What normalize returns.
struct NormalizeResult {
  Tensor y;       ///< the output, in x's shape
  Tensor mean;    ///< per c, in x's dtype
  Tensor var;     ///< per c, biased, in x's dtype
  Tensor invstd;  ///< 1 / sqrt(var + eps) per c, float64 (for normalize_backward)
};
/// How normalize sees x, and where its affine applies: x is [a, c, b] (contiguous) with the
/// statistics per c, over a and b; channel k's weights are the `per_group` from (k % groups)
/// per_group on, each for a run of b / per_group consecutive positions. Batch norm: groups c,
/// per_group 1; layer norm: groups 1, per_group b; group norm: the group count, and a group's channels.
struct NormLayout {
  int64_t a;          ///< the dims before the channels
  int64_t c;          ///< the channels: one mean and variance each
  int64_t b;          ///< the positions of a channel
  int64_t groups;     ///< channels k and k + groups share their weights
  int64_t per_group;  ///< weights of a channel (dividing b)
  /// The positions that share a weight.
  int64_t run() const { return per_group > 0 ? b / per_group : 0; }
};
/// Layer, group and batch normalisation's statistics and output: per c the mean and biased
/// variance, and y = (x - mean) / sqrt(var + eps) in x's shape, times weight plus bias where
/// given (groups x per_group each). Sums in double (eight running sums per contiguous run of b),
/// the channels split between threads.
NormalizeResult normalize(const Tensor& x, const NormLayout& layout, double eps, const Tensor& weight = {},
                          const Tensor& bias = {});

/// What normalize_backward returns.
struct NormalizeGrads {
  Tensor x;       ///< s (g w - mean(g w) - y mean(g w y)), the means per c over a and b (when need_x)
  Tensor weight;  ///< [groups per_group]: the sums of g y at each weight (when need_affine)
  Tensor bias;    ///< [groups per_group]: the sums of g (when need_affine)
};
/// normalize's gradients from g (of its output), its x and weight, and the statistics it
/// returned. y is made again from x as normalize made it (its output is not kept: an in-place
/// op on it, a relu_ after a batch norm, leaves the gradient as it was). The affine's are the
/// same bits on any thread count.
NormalizeGrads normalize_backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                  const NormLayout& layout, const Tensor& weight, bool need_x, bool need_affine);

/// OpenBLAS on one thread while it lives, for threads that each run their own products
/// (conv2d's parts of a batch, a batched matmul's products); the count set_num_threads asked
/// for comes back when the last such section ends, and set_num_threads meanwhile takes effect
/// then. A product another thread of the program runs meanwhile runs on one thread too.
class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;
};

/// A convolution's product: y [N, O, out h, out w] = weight [O, C / groups, kh, kw] applied to
/// every window of x [N, C, H, W] (floating, one dtype), plus bias [O] where given (written
/// into y first, the GEMM adding onto it). A block of samples at a
/// time (about 1 MiB of columns) is unfolded (unfold_into) into a buffer that a GEMM per sample
/// and group reads while it is still in cache: the batch's columns are never made. A large
/// batch is cut into parts that threads share, each with its own buffer and one-thread GEMMs.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Window2& w, int64_t groups, const Tensor& bias = {});

/// conv2d's gradients from g [N, O, out h, out w]: of x (shape x_shape, when need_x; weight
/// read) and of weight (when need_w; x read), the other left undefined. Block by block and part
/// by part, as conv2d: x's columns again, weight's gradient accumulated by a GEMM per sample onto
/// the part's previous samples' (BLAS's beta = 1) and the parts' sums added in their order (so
/// the same bits whatever the thread count), the columns' gradient into the block's buffer and
/// folded (fold_add_into) onto the block's planes.
std::pair<Tensor, Tensor> conv2d_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Shape& x_shape,
                                          const Shape& weight_shape, const Window2& w, int64_t groups, bool need_x,
                                          bool need_w);

/// out (contiguous) += source's slices added at `index` along dim (index_add's loop, the
/// adjoint of index_select_into): for every outer position, the rows in the order of `index`,
/// so a repeated index adds its rows in order; outer positions split between threads.
void index_add_into(const Tensor& out, int64_t dim, const std::vector<int64_t>& index, const Tensor& source);

/// Which dimensions a reduction reduces: one bit per dimension, held by value (a reduction's
/// backward rule captures it; a std::vector<bool> cost a malloc per sum).
class DimFlags {
 public:
  /// `rank` dimensions, all flagged or none.
  DimFlags(size_t rank, bool all) : rank_(static_cast<uint8_t>(rank)), bits_(all ? (1u << rank) - 1 : 0) {}
  size_t size() const { return rank_; }  ///< the rank
  bool operator[](size_t d) const { return (bits_ >> d) & 1u; }  ///< dimension d is reduced
  void set(size_t d) { bits_ |= static_cast<uint16_t>(1u << d); }  ///< flags dimension d

 private:
  uint8_t rank_;
  uint16_t bits_;
};

/// Sum over the dimensions flagged in `reduce` (size = rank); the result keeps them as size 1.
Tensor sum_keepdim(const Tensor& x, DimFlags reduce);

/// Max (or min) along one dimension; values keep the dimension as size 1, indices are int64.
ValuesIndices max_min_keepdim(const Tensor& x, int64_t dim, bool is_max);

/// The positions that sort x along dim (int64, x's shape, contiguous): stable (ties keep their
/// order), ascending or descending, NaN above every number (last ascending, first descending).
Tensor sort_indices(const Tensor& x, int64_t dim, bool descending);

/// Matrix product of a [..., n, k] and b [..., k, m] (rank >= 2, same dtype), batch dims
/// broadcast. Through CBLAS for floating types, transposed operands passed without copying.
/// transpose_a / transpose_b use an operand's last two dims swapped (no view is made for it).
/// A defined `bias` (m elements of the product's dtype) starts every row of the result, and
/// the product is added onto it (BLAS's beta = 1), as in addmm.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false,
              const Tensor& bias = {});

}  // namespace chainrule::kernels
