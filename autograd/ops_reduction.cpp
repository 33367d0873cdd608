// Reductions: sum, mean, max/min, argmax/argmin, sort/topk/kthvalue/median, var, std, norm, cumsum,
// cumprod, prod, logsumexp, softmax, log_softmax.
// Backward rules see `g` (gradient of the output), `c.saved(i)`, `c.result()`, `c.shape(0)`
// (the input's shape). A reduced dimension dropped by keepdim=false is restored in backward
// by `unreduce` before the gradient is expanded back over it.
#include "engine.hpp"
#include "kernels.hpp"

#include <cmath>
#include <limits>

namespace chainrule {

namespace {

using kernels::DimFlags;

// Flags for the dims being reduced; an empty list means all of them.
DimFlags reduced_dims(const Shape& shape, const Shape& dims, const char* op) {
  DimFlags flags(shape.size(), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, static_cast<int64_t>(shape.size()), op);
    if (shape.empty()) continue;
    if (flags[w]) fail("{}: dimension {} appears twice in the reduced dims {}", op, d, dims);
    flags.set(w);
  }
  return flags;
}

Shape reduced_shape(const Shape& shape, DimFlags flags, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!flags[d])
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

Shape keepdim_shape(const Shape& shape, DimFlags flags) { return reduced_shape(shape, flags, true); }

// the number of elements each output element reduces (mean's, var's and std's N)
int64_t reduced_count(const Shape& shape, DimFlags flags) {
  int64_t n = 1;
  for (size_t d = 0; d < flags.size(); ++d)
    if (flags[d]) n *= shape[d];
  return n;
}

// A fresh contiguous tensor relabelled with another shape of the same size (no graph).
Tensor relabel(Tensor fresh, const Shape& shape) {
  fresh.impl()->shape = shape;
  contiguous_strides_into(shape, fresh.impl()->strides);
  return fresh;
}

// The gradient of a reduction's output, reshaped so it broadcasts over the input (a 0-d
// gradient of a full reduction already does).
Tensor unreduce(const Tensor& g, const Shape& input, DimFlags flags) {
  return g.dim() == 0 ? g : g.reshape(keepdim_shape(input, flags));
}

// max/min over several dims (values only), by reducing one dim at a time.
Tensor extreme(const Tensor& x, DimFlags flags, bool is_max) {
  Tensor v = x;
  for (size_t d = 0; d < flags.size(); ++d)
    if (flags[d]) v = kernels::max_min_keepdim(v, static_cast<int64_t>(d), is_max).values;
  if (!v.same(x)) return v;
  Tensor copy = kernels::empty(x.shape(), x.dtype());  // nothing reduced (a 0-d input): a fresh copy
  kernels::copy_into(copy, x);
  return copy;
}

// Shared by max(x), min(x), amax, amin: the gradient goes to the elements equal to the
// extreme, split evenly between ties (as PyTorch's; max(x, dim) follows its indices instead),
// and to the NaNs when the extreme is NaN (PyTorch's max(x); its amax gives the row 0 / 0).
Tensor record_extreme(Tensor values, const Tensor& x, DimFlags flags, const char* op) {
  return record(values, op, {x}, {x}, [flags](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& x = c.saved(0);
    const Tensor y = unreduce(c.result(), x.shape(), flags);
    const Tensor yd = y.detach(), hit = eq(x, yd) + ne(x, x) * ne(yd, yd);  // a NaN extreme: the NaNs
    const Tensor count = kernels::sum_keepdim(hit, flags);
    return {zero_where(eq(hit, zeros({}, hit.dtype())), unreduce(g, x.shape(), flags) / count)};  // 0, not inf * 0
  }, true);
}

}  // namespace

Tensor sum(const Tensor& x) { return sum(x, Shape{}, false); }
Tensor sum(const Tensor& x, int64_t dim, bool keepdim) { return sum(x, Shape{dim}, keepdim); }
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  const auto flags = reduced_dims(x.shape(), dims, "sum");
  Tensor out = relabel(kernels::sum_keepdim(x, flags), reduced_shape(x.shape(), flags, keepdim));
  return record(out, "sum", {x}, {}, [flags](const Tensor& g, const BackwardContext& c) -> Grads {
    // d sum = 1 for every element: g spread over the input. With create_graph a recorded
    // broadcast view; in a first-order backward a buffer of its own, which the next rule (pow's,
    // mul's, an activation's) then writes its gradient into instead of making another (a loss's
    // sum(pow(y - a, 2)): one tensor, not a view and a new tensor).
    const Tensor kept = unreduce(g, c.shape(0), flags);
    if (grad_mode_enabled()) return {kept.expand(c.shape(0))};
    Tensor spread = kernels::empty(c.shape(0), g.dtype());
    kernels::copy_into(spread, kept);
    return {std::move(spread)};
  });
}

Tensor sum(Tensor&& x) {
  FunctionNode* joined = reusable_temporary(x) && x.numel() > 0 ? joinable_node(*x.impl()) : nullptr;
  const char* name = joined ? summed_name(*joined) : nullptr;
  if (!name) return sum(std::as_const(x));
  FunctionNode& n = *joined;
  // The node becomes the sum's: its output 0-d, the gradient it takes 0-d. Its inputs' shapes
  // are kept first where they were read from its output's, x's (a constant's, for to_string).
  bool constant = false;  // an input without a node
  for (const Edge& e : n.next) constant = constant || (!e.node && e.input);
  if (constant && !n.keeps_input_shapes()) {
    Shape* kept = n.keep_input_shapes();
    for (const Edge& e : n.next) ::new (kept++) Shape(e.node ? e.node->shape : e.input ? x.shape() : Shape{});
  }
  n.shape = Shape{};
  n.name = name;
  const Storage& storage = *x.impl()->storage;
  if (storage.data != storage.inline_bytes) {  // a new 0-d tensor: x's pooled buffer goes with x
    Tensor out = relabel(kernels::sum_keepdim(x, reduced_dims(x.shape(), Shape{}, "sum")), Shape{});
    out.impl()->grad_fn = std::move(x.impl()->grad_fn);
    x = Tensor();
    return out;
  }
  // A buffer inside its block, which a new tensor would take as well: the sum (sum_keepdim's, in
  // its order) goes into x's first element and x becomes the 0-d result. No tensor made or freed.
  dispatch_floating(x.dtype(), "sum", [&]<class T>() {
    T* p = kernels::ptr<T>(x);
    p[0] = static_cast<T>(kernels::run_sum<double>(p, x.numel()));
  });
  return relabel(std::move(x), Shape{});
}

namespace {
// A mean from the sum of its n elements. Over an empty set NaN (0 / 0, as PyTorch's), added
// rather than divided, so that its derivatives are those of a constant: a backward dividing by
// 0 made a second derivative through it 0 / 0 = NaN before it reached the empty input.
Tensor mean_of_sum(Tensor sum, int64_t n) { return n == 0 ? sum + NAN : sum / static_cast<double>(n); }
}  // namespace

Tensor mean(const Tensor& x) { return mean(x, Shape{}, false); }
Tensor mean(Tensor&& x) {
  if (!is_floating(x.dtype())) return mean(std::as_const(x));  // (its Error)
  const int64_t n = x.numel();
  return mean_of_sum(sum(std::move(x)), n);  // the sum joined when it can
}
Tensor mean(const Tensor& x, int64_t dim, bool keepdim) { return mean(x, Shape{dim}, keepdim); }
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  const auto flags = reduced_dims(x.shape(), dims, "mean");
  const int64_t n = reduced_count(x.shape(), flags);
  if (!is_floating(x.dtype())) fail("mean: expected a floating tensor, got {}", describe(x));
  return mean_of_sum(sum(x, dims, keepdim), n);
}

namespace {
// An extreme over an empty set is undefined; empty dims that are not reduced are fine.
void check_extreme_dims(const Tensor& x, DimFlags flags, const char* op) {
  for (size_t d = 0; d < flags.size(); ++d)
    if (flags[d] && x.shape()[d] == 0)
      fail("{}: cannot reduce an empty tensor {} over its dimension {} of size 0", op, describe(x), d);
}

// The largest (or smallest) elements over dims; `op` names the caller in errors (amax said "max").
Tensor extreme_over(const Tensor& x, const Shape& dims, bool keepdim, bool is_max, const char* op) {
  const auto flags = reduced_dims(x.shape(), dims, op);
  check_extreme_dims(x, flags, op);
  // the node keeps the name "max"/"min" whichever function made it (MaxBackward, as before)
  return record_extreme(relabel(extreme(x, flags, is_max), reduced_shape(x.shape(), flags, keepdim)), x, flags,
                        is_max ? "max" : "min");
}
}  // namespace

Tensor max(const Tensor& x) { return extreme_over(x, Shape{}, false, true, "max"); }
Tensor min(const Tensor& x) { return extreme_over(x, Shape{}, false, false, "min"); }
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) { return extreme_over(x, dims, keepdim, true, "amax"); }
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) { return extreme_over(x, dims, keepdim, false, "amin"); }

namespace {
// `op` names the caller in errors (argmax's said "max").
ValuesIndices max_min_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max, const char* op) {
  const int64_t d = wrap_dim(dim, x.dim(), op);
  const auto flags = reduced_dims(x.shape(), Shape{d}, op);
  check_extreme_dims(x, flags, op);
  const Shape out_shape = reduced_shape(x.shape(), flags, keepdim);
  Tensor source = x.dim() == 0 ? x.reshape({1}) : x;
  auto [values, indices] = kernels::max_min_keepdim(source, x.dim() == 0 ? 0 : d, is_max);
  // The gradient goes to the element the index names (the first of tied ones), as PyTorch's:
  // gather's adjoint, scattered at the kept-dim indices.
  // The indices are saved in their kept-dim shape (an alias: relabel reshapes the returned
  // handle) and version-checked, so that changing the returned ones in place is caught.
  const Tensor kept_indices = indices.detach();
  Tensor out = record(relabel(values, out_shape), op, {x}, {kept_indices},
                      [d](const Tensor& g, const BackwardContext& c) -> Grads {
                        const Tensor& index = c.saved(0);
                        const Tensor gk = g.reshape(index.shape());
                        if (c.shape(0).empty()) return {gk.reshape({})};  // a 0-d input: its one element
                        return {scatter_add(zeros(c.shape(0), g.dtype()), d, index, gk)};
                      });
  return {std::move(out), relabel(indices, out_shape)};
}
}  // namespace

ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) { return max_min_dim(x, dim, keepdim, true, "max"); }
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim) { return max_min_dim(x, dim, keepdim, false, "min"); }
Tensor argmax(const Tensor& x) {
  return max_min_dim(x.detach().reshape({x.numel()}), 0, false, true, "argmax").indices;
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return max_min_dim(x.detach(), dim, keepdim, true, "argmax").indices;
}
Tensor argmin(const Tensor& x) {
  return max_min_dim(x.detach().reshape({x.numel()}), 0, false, false, "argmin").indices;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return max_min_dim(x.detach(), dim, keepdim, false, "argmin").indices;
}

// ---------------------------------------------------------------- sorting and selection
// Each is a choice of positions along dim (found without autograd) and a gather of the values
// there: gather's rule sends a value's gradient back to where it came from, at every order.
namespace {

// x along dim d as the kernels see it (a 0-d x as one element), and d wrapped.
struct Rows {
  Tensor x;
  int64_t d;
  bool scalar;  // x was 0-d: results go back to 0-d
};
Rows rows_of(const Tensor& x, int64_t dim, const char* op) {
  const int64_t d = wrap_dim(dim, x.dim(), op);
  if (x.dim() == 0) return {x.reshape({1}), 0, true};
  return {x, d, false};
}

// The values at `positions` along the rows' dim and the positions, dropping that dim (which the
// positions have as size 1) unless keepdim.
ValuesIndices take(const Rows& r, Tensor positions, bool keep_dim) {
  Tensor values = gather(r.x, r.d, positions);
  if (r.scalar) return {values.reshape({}), positions.reshape({})};
  if (keep_dim) return {values, positions};
  return {values.squeeze(r.d), positions.squeeze(r.d)};
}

// The k-th position (from 0) of every row in ascending order, as size-1 columns.
ValuesIndices select_kth(const Rows& r, int64_t k, bool keepdim) {
  const Tensor order = kernels::sort_indices(r.x.detach(), r.d, false);
  return take(r, order.narrow(r.d, k, 1).contiguous(), keepdim);
}

}  // namespace

ValuesIndices sort(const Tensor& x, int64_t dim, bool descending) {
  const Rows r = rows_of(x, dim, "sort");
  return take(r, kernels::sort_indices(r.x.detach(), r.d, descending), true);
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  const Rows r = rows_of(x, dim, "argsort");
  const Tensor order = kernels::sort_indices(r.x.detach(), r.d, descending);
  return r.scalar ? order.reshape({}) : order;
}

ValuesIndices topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  const Rows r = rows_of(x, dim, "topk");
  const int64_t n = r.x.size(r.d);
  if (k < 0 || k > n)
    fail("topk: k ({}) must be between 0 and the size {} of dimension {} of the input {}", k, n, dim, describe(x));
  return take(r, kernels::sort_indices(r.x.detach(), r.d, largest).narrow(r.d, 0, k).contiguous(), true);
}

ValuesIndices kthvalue(const Tensor& x, int64_t k, int64_t dim, bool keepdim) {
  const Rows r = rows_of(x, dim, "kthvalue");
  const int64_t n = r.x.size(r.d);
  if (k < 1 || k > n)
    fail("kthvalue: k ({}) must be between 1 and the size {} of dimension {} of the input {}", k, n, dim, describe(x));
  return select_kth(r, k - 1, keepdim);
}

ValuesIndices median(const Tensor& x, int64_t dim, bool keepdim) {
  const Rows r = rows_of(x, dim, "median");
  const int64_t n = r.x.size(r.d);
  if (n == 0) fail("median: cannot reduce an empty tensor {} over its dimension {} of size 0", describe(x), dim);
  // The lower middle one, or the first NaN of a row that has NaNs (sorted last, stable): n - NaNs.
  const Tensor order = kernels::sort_indices(r.x.detach(), r.d, false);
  const Tensor v = r.x.detach();
  const Tensor nans = sum(ne(v, v), r.d, true).to(Dtype::int64);
  const Tensor position = where(nans, full({}, static_cast<double>(n), Dtype::int64) - nans,
                                full({}, static_cast<double>((n - 1) / 2), Dtype::int64));
  return take(r, gather(order, r.d, position), keepdim);
}

Tensor median(const Tensor& x) {
  if (x.numel() == 0) fail("median: cannot reduce an empty tensor {}", describe(x));
  // The value is the rows' median of the flattened x; its gradient is shared between the elements
  // equal to it (PyTorch's median(x), which unlike median(x, dim) names no index).
  const Tensor value = median(x.detach().reshape({x.numel()}), 0).values;
  return record_extreme(value, x, reduced_dims(x.shape(), Shape{}, "median"), "median");
}

// var = sum((x - mean)^2) / (n - correction), composed so its gradient needs no rule.
Tensor var(const Tensor& x, int64_t correction) { return var(x, Shape{}, correction, false); }
Tensor var(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  const auto flags = reduced_dims(x.shape(), dims, "var");
  const int64_t n = reduced_count(x.shape(), flags);
  Tensor centred = x - mean(x, dims, true), residual;
  {
    // Corrected two-pass: sum / n of equal values can miss them by an ulp ((0.1 + 0.1 + 0.1) / 3),
    // which gave a constant slice a variance of ~1e-34 and std a gradient of rounding noise where
    // PyTorch's (Welford's mean) gives 0 and 0. Shifting by the residuals' mean, exact for them,
    // centres such a slice exactly.
    NoGradGuard no_grad;
    residual = mean(centred, dims, true);
  }
  centred = centred - residual;
  return sum(centred * centred, dims, keepdim) / static_cast<double>(std::max<int64_t>(n - correction, 0));
}

namespace {
// PyTorch's masked_fill(t == 0, 0) of a backward formula: v where t is not 0, 0 where it is.
// (v is computed everywhere, as in PyTorch: a second derivative through it is NaN where v was
// inf, as PyTorch's.)
Tensor zero_where_zero(const Tensor& t, const Tensor& v) { return zero_where(eq(t.detach(), zeros({}, t.dtype())), v); }

// Where t is 0, and t with 1 there: a denominator for PyTorch's (g / t).masked_fill_(t == 0, 0)
// whose derivatives never meet 0 / 0. Divided by t itself, the masked places' derivative w.r.t.
// g was 0 / 0, NaN, where PyTorch's is 0 (norm and std of a zero slice scaled by another tensor,
// random program 5734); through the 1 it is 0, and w.r.t. t 0 as before.
std::pair<Tensor, Tensor> zero_and_nonzero(const Tensor& t) {
  Tensor zero = eq(t.detach(), zeros({}, t.dtype()));
  Tensor safe = where(zero, ones_like(t), t);
  return {std::move(zero), std::move(safe)};
}
}  // namespace

Tensor std(const Tensor& x, int64_t correction) { return std(x, Shape{}, correction, false); }
// Recorded with PyTorch's std_backward, which is var's backward of g / (2 std), taken as 0 where
// std is 0: a composition (sqrt(var)) gives NaN there, inf * 0, for any constant slice.
Tensor std(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  if (!is_floating(x.dtype())) fail("std: expected a floating tensor, got {}", describe(x));
  const auto flags = reduced_dims(x.shape(), dims, "std");
  Tensor out;
  {
    NoGradGuard no_grad;
    out = sqrt(var(x, dims, correction, keepdim));
  }
  const int64_t n = reduced_count(x.shape(), flags);
  const double divisor = static_cast<double>(std::max<int64_t>(n - correction, 0));
  return record(out, "std", {x}, {x}, [flags, dims, divisor](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& x = c.saved(0);
    const Tensor s = unreduce(c.result(), x.shape(), flags);
    const Tensor gk = unreduce(g, x.shape(), flags);
    const auto [zero, safe] = zero_and_nonzero(s);
    const Tensor scale = zero_where(zero, gk / (safe * 2.0));
    return {scale * (x - mean(x, dims, true)) * (2.0 / divisor)};  // var's backward of scale
  }, true);
}

// Computed without recording, then recorded with PyTorch's norm_backward: a composition
// (sqrt(sum(x * x))) would differentiate sqrt at 0 and give NaN for a zero vector.
Tensor norm(const Tensor& x, double p, const Shape& dims, bool keepdim) {
  if (!is_floating(x.dtype())) fail("norm: expected a floating tensor, got {}", describe(x));
  if (!(p >= 0 || p == -INFINITY)) fail("norm: p must be 0, positive, INFINITY or -INFINITY, got {}", p);
  const auto flags = reduced_dims(x.shape(), dims, "norm");
  for (size_t d = 0; d < flags.size(); ++d)
    if (std::isinf(p) && flags[d] && x.shape()[d] == 0)
      fail("norm: the {} norm of {} over its dimension {} of size 0 is undefined (an extreme of nothing)", p,
           describe(x), d);
  Tensor out;
  {
    NoGradGuard no_grad;
    if (p == 0) return sum(ne(x, zeros({}, x.dtype())), dims, keepdim);  // a count: no gradient, as PyTorch's
    if (p == 2) out = sqrt(sum(x * x, dims, keepdim));  // no |x| needed
    else if (p == INFINITY) out = amax(abs(x), dims, keepdim);
    else if (p == -INFINITY) out = amin(abs(x), dims, keepdim);
    else if (p == 1) out = sum(abs(x), dims, keepdim);
    else out = pow(sum(pow(abs(x), p), dims, keepdim), 1 / p);
  }
  return record(out, "norm", {x}, {x}, [flags, p](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& x = c.saved(0);
    const Tensor n = unreduce(c.result(), x.shape(), flags), gk = unreduce(g, x.shape(), flags);
    if (std::isinf(p)) {  // to the elements whose |x| is the norm, split between them
      const Tensor hit = eq(abs(x).detach(), n.detach());
      return {sign(x) * (gk / kernels::sum_keepdim(hit, flags)) * hit};
    }
    if (p == 1) return {sign(x) * gk};
    if (p < 1) {  // |x|^(p - 1) is 0 at x = 0 here, as PyTorch's
      const Tensor scaled = zero_where_zero(x, pow(abs(x), p - 1));
      return {sign(x) * scaled * gk * pow(n, 1 - p)};
    }
    const auto [zero, safe] = zero_and_nonzero(n);
    const Tensor scale = zero_where(zero, gk / (p == 2 ? safe : pow(safe, p - 1)));
    if (p < 2) return {sign(x) * pow(abs(x), p - 1) * scale};
    return {(p == 2 ? x : x * pow(abs(x), p - 2)) * scale};
  }, true);
}

namespace {
// The one scan loop of cumsum, cumprod and prod: running sums (or products, `product`) along d,
// from the end when `reverse`; with `last_only` each run's final value alone (d kept, size 1;
// an empty run gives 0 or 1). Not recorded.
Tensor scan(const Tensor& x, int64_t d, bool product, bool reverse, bool last_only) {
  const Tensor in = x.contiguous();
  const int64_t n = x.dim() == 0 ? 1 : x.shape()[d];
  Shape shape = x.shape();
  if (last_only && x.dim() > 0) shape[d] = 1;
  Tensor out = kernels::empty(shape, x.dtype());
  int64_t outer = 1, inner = 1;  // outer x inner runs, each n long
  for (int64_t k = 0; k < d && k < x.dim(); ++k) outer *= x.shape()[k];
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.shape()[k];
  dispatch(x.dtype(), [&]<class T>() {
    const T* src = kernels::ptr<T>(in);
    T* dst = kernels::ptr<T>(out);
    for (int64_t a = 0; a < outer; ++a) {
      T* run = last_only ? dst + a * inner : nullptr;  // the running values, kept in the output row
      if (run) std::fill(run, run + inner, static_cast<T>(product ? 1 : 0));
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = reverse ? n - 1 - i : i, row = (a * n + k) * inner;
        const T* prev = run ? run : dst + row + (reverse ? inner : -inner);
        T* next = run ? run : dst + row;
        for (int64_t b = 0; b < inner; ++b)
          next[b] = i == 0 && !run ? src[row + b] : product ? prev[b] * src[row + b] : prev[b] + src[row + b];
      }
    }
  });
  return out;
}

// Running sums along d, from the end when `reverse`; each is recorded with the other as its backward.
Tensor running_sum(const Tensor& x, int64_t d, bool reverse) {
  return record(scan(x, d, false, reverse, false), "cumsum", {x}, {},
                [d, reverse](const Tensor& g, const BackwardContext&) -> Grads {
                  return {running_sum(g, d, !reverse)};  // d y_j / d x_i = 1 for j >= i: the sums from the end
                });
}

bool has_zero(const Tensor& x) {
  NoGradGuard no_grad;
  return sum(eq(x, zeros({}, x.dtype()))).item<double>() > 0;
}

// ones shaped as x with dim d of size 1: the empty product before each run
Tensor ones_slice(const Tensor& x, int64_t d) {
  Shape s = x.shape();
  s[d] = 1;
  return ones(s, x.dtype());
}

// d prod / d x_k along d = the product of the others: the exclusive running products from the
// start times those from the end (PyTorch's prod_safe_zeros_backward); exact with zeros.
Tensor product_of_others(const Tensor& x, int64_t d) {
  const int64_t n = x.shape()[d];
  const Tensor before = cumprod(cat({ones_slice(x, d), x.narrow(d, 0, n - 1)}, d), d);
  const Tensor after = flip(cumprod(cat({ones_slice(x, d), flip(x.narrow(d, 1, n - 1), {d})}, d), d), {d});
  return before * after;
}
}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "cumsum");
  return running_sum(x, d, false);
}

// With a zero in x the backward is PyTorch's cumprod_backward for double backward: for each k,
// the sum over j >= k of g_j times the product of x_0..x_j without x_k, from prod and cumprod of
// the pieces before and after k (O(n^2) ops, differentiable again); without, the reversed
// running sum of g y over x.
Tensor cumprod(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "cumprod");
  Tensor out = scan(x, d, true, false, false);
  return record(out, "cumprod", {x}, {x}, [d](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& x = c.saved(0);
    const int64_t n = x.dim() == 0 ? 1 : x.shape()[d];
    if (n <= 1) return {g};
    if (!has_zero(x)) return {running_sum(c.result() * g, d, true) / x};
    std::vector<Tensor> parts;
    for (int64_t k = 0; k < n; ++k) {
      Tensor others;  // for j >= k: the product of x_0..x_j without x_k
      if (k == 0) {
        others = cat({ones_slice(x, d), cumprod(x.narrow(d, 1, n - 1), d)}, d);
      } else {
        const Tensor before = prod(x.narrow(d, 0, k), d, true);
        others = k == n - 1 ? before : cat({before, before * cumprod(x.narrow(d, k + 1, n - k - 1), d)}, d);
      }
      parts.push_back(sum(g.narrow(d, k, n - k) * others, d, true));
    }
    return {cat(parts, d)};
  }, true);
}

Tensor prod(const Tensor& x) { return prod(x.reshape({x.numel()}), 0, false); }

// The backward is PyTorch's prod_backward: g y / x without zeros, else the product of the others.
Tensor prod(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "prod");
  Tensor out = scan(x, d, true, false, true);
  if (!keepdim && x.dim() > 0) out = out.squeeze(d);
  return record(out, "prod", {x}, {x}, [d, keepdim](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& x = c.saved(0);
    if (x.dim() == 0) return {g};
    const Tensor gk = keepdim ? g : g.unsqueeze(d);
    if (!has_zero(x)) return {gk * ((keepdim ? c.result() : c.result().unsqueeze(d)) / x)};
    return {gk * product_of_others(x, d)};
  }, true);
}

// logsumexp = m + log(sum(exp(x - m))) with m = max(x) held constant (it cancels in the
// gradient), so exp never overflows; an all -inf slice gives -inf, not NaN.
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) { return logsumexp(x, Shape{dim}, keepdim); }
Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim) {
  // Over an empty set it is log(0) = -inf, as PyTorch's (the shift below needs a max, which an
  // empty set has not: it failed naming "max"). Written as the empty sum plus -inf, so that its
  // derivatives are those of a constant (log(sum(exp(x)))'s backward divided by the empty sum).
  const auto flags = reduced_dims(x.shape(), dims, "logsumexp");  // before amax, which would name itself
  if (x.numel() == 0) return sum(exp(x), dims, keepdim) + -INFINITY;  // exp: the dtype check
  Tensor m;
  {
    NoGradGuard no_grad;
    m = amax(x, dims, true);
    m = where(isfinite(m), m, zeros_like(m));
  }
  Tensor out = log(sum(exp(x - m), dims, true)) + m;
  return keepdim ? out : out.reshape(reduced_shape(x.shape(), flags, false));
}

Tensor softmax(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim(), "softmax");
  Tensor y;
  {
    NoGradGuard no_grad;
    // shifted by the largest element, which an empty dim has not (nothing to shift there)
    const Tensor e = exp(x.numel() == 0 ? x : x - amax(x, Shape{d}, true));
    y = e / sum(e, d, true);
  }
  return record(y, "softmax", {x}, {}, [d](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor y = c.result();
    return {y * (g - sum(g * y, d, true))};  // d softmax: y (g - <g, y>)
  }, true);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim(), "log_softmax");
  Tensor y;
  {
    NoGradGuard no_grad;
    y = x - logsumexp(x, Shape{d}, true);
  }
  return record(y, "log_softmax", {x}, {}, [d](const Tensor& g, const BackwardContext& c) -> Grads {
    return {g - exp(c.result()) * sum(g, d, true)};  // d log_softmax: g - softmax * sum(g)
  }, true);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (!is_expandable_to(shape, x.shape()))
    fail("sum_to: {} cannot be summed to shape {} (that shape does not broadcast to it)", describe(x), shape);
  const size_t lead = x.shape().size() - shape.size();
  Shape dims;
  for (size_t d = 0; d < x.shape().size(); ++d)
    if (d < lead || (shape[d - lead] == 1 && x.shape()[d] != 1)) dims.push_back(static_cast<int64_t>(d));
  return sum(x, dims, true).reshape(shape);
}

}  // namespace chainrule
