// Activations and losses. Most are compositions of autograd primitives (so their gradients
// need no rule); softplus has a fused kernel with its derivative sigmoid(x), which keeps
// softplus, log_sigmoid, mish and bce_with_logits exact and finite at any input. Where a
// branch of `where` could overflow, its input is clamped first: `where` routes a zero
// gradient to the unused branch, and 0 * inf would still be NaN.
#include "functional.hpp"

#include "../autograd/unary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include <fmt/ranges.h>

namespace chainrule::nn::functional {

namespace {

// log(1 + e^z) = max(z, 0) + log1p(e^-|z|): never overflows; d/dz = sigmoid(z) exactly.
Tensor stable_softplus(const Tensor& z) {
  return autograd::unary_op(
      z, "softplus", [](auto v) { return std::max(v, decltype(v)(0)) + std::log1p(std::exp(-std::abs(v))); },
      [](const Tensor& x, const Tensor&) { return sigmoid(x); });
}

// Indices (gather positions, classes) as a 1-d int64 tensor for index_select and its kin: the
// one place this file makes one, from int64 values as they are (no round trip through double).
Tensor positions(const std::vector<int64_t>& v) {
  Tensor t = empty({static_cast<int64_t>(v.size())}, Dtype::int64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

Tensor reduce(const Tensor& loss, Reduction reduction, const char* op) {
  switch (reduction) {
    case Reduction::mean: return mean(loss);
    case Reduction::sum: return sum(loss);
    case Reduction::none: return loss;
    case Reduction::batchmean: break;
  }
  fail("{}: reduction batchmean is for kl_div only; use mean, sum or none", op);
}

// The value clamped below at lo, the gradient passed through unchanged: PyTorch clamps a clone
// in place under no_grad (gaussian_nll_loss's variance, cosine_similarity's norms), so its
// gradient is the formula's at the clamped value, not the clamp's zero.
Tensor clamp_min_passing_gradient(const Tensor& t, double lo) {
  Tensor c = t.clone();
  NoGradGuard no_grad;
  c.copy_(clamp(c, lo, std::nullopt));
  return c;
}

// Elementwise losses require equal shapes: broadcasting [N, 1] against [N] silently gives an
// [N, N] loss, a classic bug.
void check_same_shape(const Tensor& input, const Tensor& target, const char* op, const char* a = "input",
                      const char* b = "target") {
  if (input.shape() != target.shape())
    fail("{}: {} {} and {} {} must have the same shape (reshape one of them; broadcasting here is "
         "almost always a bug)",
         op, a, describe(input), b, describe(target));
}

// Scores [N, C] and int64 targets [N], each a class or ignore_index; weight undefined or [C].
// Returns the targets, read once for the check and the loss.
std::vector<int64_t> check_class_targets(const Tensor& scores, const Tensor& target, const Tensor& weight,
                                         std::optional<int64_t> ignore_index, const char* op) {
  if (scores.dim() != 2) fail("{}: expected scores of shape [N, C], got {}", op, describe(scores));
  if (target.dtype() != Dtype::int64)
    fail("{}: class targets must be int64, got {} (convert with .to(cr::int64))", op, describe(target));
  if (target.dim() != 1 || target.size(0) != scores.size(0))
    fail("{}: target {} must have shape [{}] for scores {}", op, describe(target), scores.size(0), describe(scores));
  const int64_t classes = scores.size(1);
  std::vector<int64_t> targets = target.to_vector<int64_t>();
  for (int64_t t : targets)
    if ((t < 0 || t >= classes) && t != ignore_index)
      fail("{}: target {} is out of range for {} classes{} (scores {}, target {})", op, t, classes,
           ignore_index ? fmt::format(" and is not the ignore_index {}", *ignore_index) : "", describe(scores),
           describe(target));
  if (weight.defined() && (weight.shape() != Shape{classes} || !is_floating(weight.dtype())))
    fail("{}: weight {} must be a floating tensor of shape [{}], one per class ({} classes in scores {})", op,
         describe(weight), classes, classes, describe(scores));
  return targets;
}

// The negative log-likelihood of log-probabilities lp [N, C] at the targets, weighted and with
// ignored targets left out, as PyTorch's nll_loss and cross_entropy (class indices): per example
// (1 - e) w_y (-log p_y) + e / C sum_c w_c (-log p_c) (e: label smoothing; an ignored example
// 0); the mean divides the sum by the sum of w_y over the examples not ignored (their count
// when there are no weights), so an all-ignored batch gives 0 / 0, NaN, as PyTorch's.
// `targets` holds target's values (check_class_targets read them).
Tensor class_loss(const Tensor& lp, const Tensor& target, const std::vector<int64_t>& targets, Reduction reduction,
                  double smoothing, const Tensor& weight, int64_t ignore_index, const char* op) {
  const int64_t n = lp.size(0), classes = lp.size(1);
  std::vector<double> kept;  // 1 / 0 per example
  std::vector<int64_t> safe;  // a class to gather from (0 for an ignored one)
  for (int64_t t : targets) {
    kept.push_back(t == ignore_index ? 0 : 1);
    safe.push_back(t == ignore_index ? 0 : t);
  }
  const bool any_ignored = std::find(kept.begin(), kept.end(), 0.0) != kept.end();
  const Tensor keep = any_ignored ? tensor(kept, {n}, lp.dtype()) : Tensor();
  const Tensor index = any_ignored ? positions(safe) : target;
  const Tensor w = weight.defined() ? weight.to(lp.dtype()) : Tensor();
  // No classes: every target is ignored (or there are none), and there is nothing to gather.
  const bool no_classes = classes == 0;
  // w_y per example (0 where ignored); undefined when every example counts 1
  Tensor w_y = keep;
  if (w.defined() && !no_classes) w_y = keep.defined() ? index_select(w, 0, index) * keep : index_select(w, 0, index);
  Tensor loss = no_classes ? sum(lp, 1) : -gather(lp, 1, index.unsqueeze(1)).squeeze(1);  // (the empty sum: 0)
  if (w_y.defined()) loss = loss * w_y;
  if (smoothing > 0) {
    Tensor smooth = -sum(w.defined() ? lp * w : lp, 1);
    if (keep.defined()) smooth = smooth * keep;
    loss = loss * (1.0 - smoothing) + smooth * (smoothing / static_cast<double>(classes));
  }
  if (reduction != Reduction::mean || !w_y.defined()) return reduce(loss, reduction, op);
  // Every target ignored: 0 / 0 is NaN, but no logit took part, so the gradient is 0 whatever
  // flows in, as PyTorch's (dividing by the zero total would make it inf * 0, NaN, everywhere).
  if (std::find(kept.begin(), kept.end(), 1.0) == kept.end())
    return record(full({}, NAN, lp.dtype()), op, {lp}, {}, [](const Tensor& g, const BackwardContext& c) -> Grads {
      return {zeros(c.shape(0), g.dtype())};
    });
  return sum(loss) / sum(w_y);
}

}  // namespace

// ---------------------------------------------------------------- activations

Tensor leaky_relu(const Tensor& x, double slope) { return where(x > 0.0, x, x * slope); }

Tensor elu(const Tensor& x, double alpha) {
  return where(x > 0.0, x, expm1(clamp(x, std::nullopt, 0.0)) * alpha);
}

Tensor selu(const Tensor& x) {
  constexpr double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
  return elu(x, alpha) * scale;
}

Tensor gelu(const Tensor& x, bool tanh_approximation) {
  if (tanh_approximation) {
    const double k = std::sqrt(2.0 / M_PI);
    return x * 0.5 * (1.0 + tanh((x + pow(x, 3) * 0.044715) * k));
  }
  return x * 0.5 * (1.0 + erf(x * M_SQRT1_2));
}

Tensor silu(const Tensor& x) { return x * sigmoid(x); }

Tensor softplus(const Tensor& x, double beta, double threshold) {
  if (beta <= 0) fail("softplus: beta must be positive, got {}", beta);
  const Tensor z = beta == 1.0 ? x : x * beta;
  const Tensor y = where(z > threshold, z, stable_softplus(z));  // linear above the threshold, as PyTorch
  return beta == 1.0 ? y : y / beta;
}

Tensor mish(const Tensor& x) { return x * tanh(stable_softplus(x)); }
// The gradient is 0 where x <= min_val or x >= max_val, as PyTorch's hardtanh (ReLU6 is
// hardtanh(x, 0, 6) and has relu's 0 at 0; a NaN passes it); clamp passes it on the boundary.
namespace {
// A double parameter of an op on int64 x, as PyTorch takes it: truncated toward zero, saturating
// (an infinite bound is no bound); NaN is an Error.
int64_t truncated(double v, const char* op, const Tensor& x) {
  if (std::isnan(v)) fail("{}: a NaN parameter for int64 input {}", op, describe(x));
  return v >= 0x1p63 ? INT64_MAX : v <= -0x1p63 ? INT64_MIN : static_cast<int64_t>(v);
}
}  // namespace

Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
  if (!is_floating(x.dtype()))  // int64 stays int64, the bounds truncated toward zero (PyTorch's)
    return clamp(x, truncated(min_val, "hardtanh", x), truncated(max_val, "hardtanh", x));
  return where((x <= min_val) + (x >= max_val), clamp(x, min_val, max_val).detach(), x);
}
Tensor softsign(const Tensor& x) { return x / (1.0 + abs(x)); }

Tensor relu6(const Tensor& x) { return hardtanh(x, 0.0, 6.0); }
Tensor hardsigmoid(const Tensor& x) { return hardtanh(x + 3.0, 0.0, 6.0) / 6.0; }

Tensor hardswish(const Tensor& x) {
  Tensor y;
  {
    NoGradGuard no_grad;
    y = x * hardtanh(x + 3.0, 0.0, 6.0) / 6.0;
  }
  return record(y, "hardswish", {x}, {x}, [](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& x = c.saved(0);
    const auto constant = [&](double v) { return full({}, v, x.dtype()); };
    // at -3 and 3 themselves the formula's values as constants, so that the second derivative
    // there is 0, as PyTorch's
    const Tensor slope = where(x < -3.0, constant(0),
                               where(x <= -3.0, constant(-0.5),
                                     where(x < 3.0, x / 3.0 + 0.5, where(x <= 3.0, constant(1.5), constant(1)))));
    return {g * slope};
  });
}

Tensor celu(const Tensor& x, double alpha) {
  if (alpha == 0) fail("celu: alpha must not be 0 (it divides x), got {}", alpha);
  return where(x >= 0.0, x, expm1(clamp(x, std::nullopt, 0.0) / alpha) * alpha);
}

Tensor softshrink(const Tensor& x, double lambd) {
  if (!(lambd >= 0)) fail("softshrink: lambd must be at least 0, got {}", lambd);
  return zero_where(abs(x) <= lambd, where(x > 0.0, x - lambd, x + lambd));
}

Tensor hardshrink(const Tensor& x, double lambd) { return zero_where(abs(x) <= lambd, x); }
Tensor tanhshrink(const Tensor& x) { return x - tanh(x); }
Tensor threshold(const Tensor& x, double threshold, double value) {
  if (!is_floating(x.dtype())) {  // int64 stays int64, both parameters truncated (PyTorch's)
    const Tensor t = integer_scalar_like(truncated(threshold, "threshold", x), x);
    return where(x <= t, integer_scalar_like(truncated(value, "threshold", x), x), x);
  }
  return where(x <= threshold, scalar_like(value, x), x);  // <=, so that a NaN passes
}

Tensor glu(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) fail("glu: a 0-d tensor has no dim to halve ({})", describe(x));
  const int64_t d = wrap_dim(dim, x.dim(), "glu"), n = x.shape()[d];
  if (n % 2 != 0) fail("glu: dim {} of {} has odd size {}; it is halved into values and gates", d, describe(x), n);
  const auto halves = chunk(x, 2, d);
  return halves[0] * sigmoid(halves[1]);
}

Tensor softmin(const Tensor& x, int64_t dim) { return softmax(-x, dim); }

Tensor prelu(const Tensor& x, const Tensor& weight) {
  const int64_t channels = x.dim() >= 2 ? x.shape()[1] : 1;
  if (weight.dim() != 1 || (weight.numel() != 1 && weight.numel() != channels))
    fail("prelu: weight {} must have 1 element or one per channel ({}: dim 1 of {})", describe(weight), channels,
         describe(x));
  Shape per_channel(std::vector<int64_t>(static_cast<size_t>(std::max<int64_t>(x.dim() - 1, 1)), 1));
  per_channel[0] = weight.numel();  // [C, 1, ...]: broadcast over dim 1 and the dims after it
  return where(x > 0.0, x, weight.reshape(weight.numel() == 1 ? Shape{} : per_channel) * x);
}
Tensor log_sigmoid(const Tensor& x) { return -stable_softplus(-x); }

// ---------------------------------------------------------------- regularisation

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  if (!(p >= 0 && p <= 1))
    fail("dropout: the probability of an element to be zeroed must be between 0 and 1, got {}", p);
  if (!is_floating(x.dtype())) fail("dropout: needs a floating input, got {}", describe(x));
  if (!training || p == 0 || x.numel() == 0) return x;
  if (p == 1) return x * 0.0;
  // PyTorch's: a Bernoulli(1 - p) mask divided by 1 - p in x's dtype, then x * mask
  const Tensor mask = (rand(x.shape(), x.dtype(), gen) < 1 - p) / (1 - p);
  return x * mask;
}

// ---------------------------------------------------------------- lookup

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  if (weight.dim() != 2) fail("embedding: weight must be [num_embeddings, embedding_dim], got {}", describe(weight));
  if (indices.dtype() != int64) fail("embedding: indices must be int64, got {}", describe(indices));
  const int64_t num = weight.size(0);
  for (int64_t i : indices.to_vector<int64_t>())
    if (i < 0 || i >= num)
      fail("embedding: index {} is out of range for weight {} ({} embeddings)", i, describe(weight), num);
  Shape shape = indices.shape();
  shape.push_back(weight.size(1));
  Tensor rows = weight;
  if (padding_idx) {
    if (*padding_idx < -num || *padding_idx >= num)
      fail("embedding: padding_idx {} is out of range for weight {}", *padding_idx, describe(weight));
    // the padding row read from a detached weight: the same values, no gradient
    const double row = static_cast<double>((*padding_idx + num) % num);
    const Tensor is_padding = eq(arange(0, static_cast<double>(num), 1, int64), full({}, row, int64));
    rows = where(is_padding.reshape({num, 1}), weight.detach(), weight);
  }
  return index_select(rows, 0, indices.reshape({-1})).reshape(shape);
}

// ---------------------------------------------------------------- normalisation

namespace {
struct Normalized {
  Tensor y, mean, var;  // (x - mean) / sqrt(var + eps) in x's shape, and the statistics [c]
};

// standardize's gradients as recorded ops, so that they differentiate again (create_graph),
// with x seen as [a, c / groups, groups, per_group, run] (the statistics per c are over dims 0, 3
// and 4, each weight's sums over 0, 1 and 4): x's s (g w - mean(g w) - y mean(g w y)) with y and
// s made again from x, the weight's the sums of g y and the bias's of g.
Grads standardize_gradients(const Tensor& g, const BackwardContext& ctx, const kernels::NormLayout& l, double eps) {
  const Shape as{l.a, l.groups ? l.c / l.groups : 0, l.groups, l.per_group, l.run()}, stats{0, 3, 4}, affine{0, 1, 4};
  const Tensor x5 = ctx.saved(0).reshape(as), g5 = g.reshape(as);
  const Tensor centred = x5 - mean(x5, stats, true), invstd = rsqrt(mean(centred * centred, stats, true) + eps);
  const Tensor y = centred * invstd;
  Tensor gx, gw, gb;
  if (ctx.needs(0)) {
    const Tensor gy = ctx.saved(1).defined() ? g5 * ctx.saved(1).reshape({1, 1, l.groups, l.per_group, 1}) : g5;
    gx = (invstd * (gy - mean(gy, stats, true) - y * mean(gy * y, stats, true))).reshape(ctx.shape(0));
  }
  if (ctx.needs(1)) gw = sum(g5 * y, affine).reshape(ctx.shape(1));
  if (ctx.needs(2)) gb = sum(g5, affine).reshape(ctx.shape(2));
  return {std::move(gx), std::move(gw), std::move(gb)};
}

// (x - mean) / sqrt(var + eps) with the statistics per c of x seen as [a, c, b] (layer and
// group norm: a = 1; batch norm: a the batch, b the positions), times weight plus bias where
// given, as the layout places them: one recorded op named `op`, whose first-order gradients are
// kernels::normalize_backward. It was seven recorded ops forward, and two more for the affine.
Normalized standardize(const Tensor& x, const kernels::NormLayout& layout, double eps, const Tensor& weight,
                       const Tensor& bias, const char* op) {
  kernels::NormalizeResult r = kernels::normalize(x, layout, eps, weight, bias);
  auto rule = [layout, eps, mean = r.mean, invstd = r.invstd](const Tensor& g, const BackwardContext& ctx) -> Grads {
    if (grad_mode_enabled()) return standardize_gradients(g, ctx, layout, eps);  // create_graph
    auto [gx, gw, gb] = kernels::normalize_backward(g, ctx.saved(0), mean, invstd, layout, ctx.saved(1), ctx.needs(0),
                                                    ctx.needs(1) || ctx.needs(2));
    return {std::move(gx), ctx.needs(1) ? gw.reshape(ctx.shape(1)) : Tensor(),
            ctx.needs(2) ? gb.reshape(ctx.shape(2)) : Tensor()};
  };
  Tensor y = record(std::move(r.y), op, {x, weight, bias}, {x, weight}, std::move(rule));
  return {std::move(y), std::move(r.mean), std::move(r.var)};
}

// weight, bias, a running statistic: optional, of the given shape and x's dtype
void check_per_feature(const Tensor& t, const Shape& shape, const Tensor& x, const char* op, const char* what) {
  if (t.defined() && (t.shape() != shape || t.dtype() != x.dtype()))
    fail("{}: {} must be a {} tensor of shape {} for input {}, got {}", op, what, x.dtype(), shape, describe(x),
         describe(t));
}

// y * weight + bias, each [C] (where given) along dim 1 of y [N, C, ...]
Tensor per_channel_affine(Tensor y, const Tensor& weight, const Tensor& bias) {
  Shape shape;
  shape.resize(static_cast<size_t>(y.dim()), 1);
  shape[1] = y.size(1);
  if (weight.defined()) y = y * weight.reshape(shape);
  return bias.defined() ? y + bias.reshape(shape) : y;
}
}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const auto k = static_cast<int64_t>(normalized_shape.size());
  if (k == 0) fail("layer_norm: normalized_shape must have at least one dimension (input {})", describe(x));
  if (!is_floating(x.dtype())) fail("layer_norm: needs a floating input, got {}", describe(x));
  if (x.dim() < k || !std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - k))
    fail("layer_norm: input {} does not end in normalized_shape {}", describe(x), normalized_shape);
  check_per_feature(weight, normalized_shape, x, "layer_norm", "weight");
  check_per_feature(bias, normalized_shape, x, "layer_norm", "bias");
  const int64_t rows = Shape(x.shape().begin(), x.shape().end() - k).numel();
  const int64_t positions = normalized_shape.numel();
  return standardize(x, {1, rows, positions, 1, positions}, eps, weight, bias, "layer_norm").y;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  if (!is_floating(x.dtype())) fail("batch_norm: needs a floating input, got {}", describe(x));
  if (x.dim() < 2) fail("batch_norm: input {} must be [N, C] or [N, C, ...]", describe(x));
  const int64_t channels = x.size(1);
  for (const auto& [t, what] : {std::pair{&running_mean, "running_mean"}, {&running_var, "running_var"},
                                {&weight, "weight"}, {&bias, "bias"}})
    check_per_feature(*t, {channels}, x, "batch_norm", what);
  if (running_mean.defined() != running_var.defined())
    fail("batch_norm: running_mean and running_var must be given together (input {})", describe(x));
  if (!training && !running_mean.defined())
    fail("batch_norm: running_mean and running_var are needed when not training (input {})", describe(x));
  Shape stat_shape;  // statistics over every dimension but 1, as [1, C, 1, ...]
  stat_shape.resize(static_cast<size_t>(x.dim()), 1);
  stat_shape[1] = channels;
  const int64_t positions = Shape(x.shape().begin() + 2, x.shape().end()).numel();
  if (training) {
    const int64_t n = channels == 0 ? 0 : x.numel() / channels;
    if (n <= 1) fail("batch_norm: expected more than 1 value per channel when training, got input {}", describe(x));
    const Normalized batch =
        standardize(x, {x.size(0), channels, positions, channels, 1}, eps, weight, bias, "batch_norm");
    if (running_mean.defined()) {
      NoGradGuard no_grad;
      Tensor(running_mean).mul_(1 - momentum).add_(batch.mean.reshape({channels}), momentum);
      const Tensor unbiased = batch.var.reshape({channels}) * (double(n) / double(n - 1));
      Tensor(running_var).mul_(1 - momentum).add_(unbiased, momentum);
    }
    return batch.y;  // with the affine
  }
  const Tensor y = (x - running_mean.reshape(stat_shape)) / sqrt(running_var.reshape(stat_shape) + eps);
  return per_channel_affine(y, weight, bias);
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  if (!is_floating(x.dtype())) fail("group_norm: needs a floating input, got {}", describe(x));
  if (x.dim() < 2) fail("group_norm: input {} must be [N, C] or [N, C, ...]", describe(x));
  const int64_t channels = x.size(1);
  if (num_groups <= 0 || channels % num_groups != 0)
    fail("group_norm: num_groups {} must be positive and divide the {} channels of input {}", num_groups, channels,
         describe(x));
  check_per_feature(weight, {channels}, x, "group_norm", "weight");
  check_per_feature(bias, {channels}, x, "group_norm", "bias");
  int64_t per_group = channels / num_groups;  // a group's elements in one example (without -1: N may be 0)
  for (int64_t d = 2; d < x.dim(); ++d) per_group *= x.size(d);
  return standardize(x, {1, x.size(0) * num_groups, per_group, num_groups, channels / num_groups}, eps, weight, bias,
                     "group_norm")
      .y;
}

// ---------------------------------------------------------------- losses

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "mse_loss");
  const Dtype dtype = result_type(input, target);
  if ((reduction != Reduction::mean && reduction != Reduction::sum) || !is_floating(dtype)) {  // none, or an Error
    const Tensor d = input - target;
    return reduce(d * d, reduction, "mse_loss");
  }
  // Reduced: one recorded op, as PyTorch's (MseLossBackward). The squares summed in one pass, in
  // sum's order (kernels::run_sum), divided by the count in the dtype for the mean; the gradient
  // 2 (input - target) g, with g divided by the count first for the mean. Both give the bits of
  // the three ops they replace (input - target, its square, the reduction; x * 2 is exact), the
  // backward's loop in a first-order backward too.
  const double count = static_cast<double>(input.numel());
  const bool mean = reduction == Reduction::mean;
  Tensor loss = kernels::empty({}, dtype);
  {
    NoGradGuard no_grad;
    const Tensor a = input.to(dtype).contiguous(), b = target.to(dtype).contiguous();
    dispatch_floating(dtype, "mse_loss", [&]<class T>() {
      const T *x = kernels::ptr<T>(a), *y = kernels::ptr<T>(b);
      const T total = static_cast<T>(kernels::run_sum<double>(a.numel(), [x, y](int64_t i) {
        const T d = x[i] - y[i];
        return static_cast<double>(d * d);
      }));
      // the mean of no elements is their sum + NaN, as mean gives it
      *kernels::ptr<T>(loss) = !mean ? total : count > 0 ? total / static_cast<T>(count) : total + static_cast<T>(NAN);
    });
  }
  return record(loss, "mse_loss", {input, target}, {input, target},
                [count, mean](const Tensor& g, const BackwardContext& c) -> Grads {
                  const Tensor &x = c.saved(0), &y = c.saved(1);
                  Tensor gd;
                  if (!grad_mode_enabled() && x.dtype() == g.dtype() && y.dtype() == g.dtype()) {
                    gd = kernels::empty(x.shape(), g.dtype());
                    dispatch_floating(g.dtype(), "mse_loss backward", [&]<class T>() {
                      const T gv = *kernels::ptr<T>(g);
                      const T scale = (mean ? gv / static_cast<T>(count) : gv) * static_cast<T>(2);
                      kernels::zip_into<T>(x, y, x.shape(), kernels::ptr<T>(gd),
                                           [scale](T a, T b) { return (a - b) * scale; });
                    });
                  } else {
                    gd = (x - y) * ((mean ? g / count : g) * 2.0);
                  }
                  return {c.needs(0) ? gd : Tensor(), c.needs(1) ? -gd : Tensor()};
                });
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "l1_loss");
  return reduce(abs(input - target), reduction, "l1_loss");
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta) {
  check_same_shape(input, target, "smooth_l1_loss");
  if (beta < 0) fail("smooth_l1_loss: beta must be non-negative, got {}", beta);
  // The quadratic piece in the signed difference: through abs, d * d had no curvature at d = 0.
  const Tensor diff = input - target, d = abs(diff);
  if (beta == 0) return reduce(d, reduction, "smooth_l1_loss");
  return reduce(where(d < beta, diff * diff * (0.5 / beta), d - 0.5 * beta), reduction, "smooth_l1_loss");
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction, double delta) {
  check_same_shape(input, target, "huber_loss");
  if (delta <= 0) fail("huber_loss: delta must be positive, got {}", delta);
  const Tensor diff = input - target, d = abs(diff);  // the quadratic piece in diff, as smooth_l1's
  return reduce(where(d < delta, diff * diff * 0.5, (d - 0.5 * delta) * delta), reduction, "huber_loss");
}

Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "binary_cross_entropy");
  for (double v : input.to_vector<double>())
    if (!(v >= 0 && v <= 1))
      fail("binary_cross_entropy: input values must be probabilities in [0, 1], found {} in {}; use "
           "binary_cross_entropy_with_logits for raw scores",
           v, describe(input));
  Tensor loss;
  {
    NoGradGuard no_grad;  // logs clamped at -100 as PyTorch, so 0 and 1 give finite losses
    const Tensor log_p = clamp(log(input), -100.0, std::nullopt), log_q = clamp(log(1.0 - input), -100.0, std::nullopt);
    loss = -(target * log_p + (1.0 - target) * log_q);
  }
  loss = record(loss, "binary_cross_entropy", {input, target}, {input, target},
                [](const Tensor& g, const BackwardContext& c) -> Grads {
                  const Tensor &x = c.saved(0), &y = c.saved(1);
                  Tensor gx, gy;
                  // d/dx = (x - y) / (x (1 - x)), with the denominator kept away from 0
                  if (c.needs(0)) gx = g * (x - y) / clamp(x * (1.0 - x), 1e-12, std::nullopt);
                  if (c.needs(1))
                    gy = g * (clamp(log(1.0 - x), -100.0, std::nullopt) - clamp(log(x), -100.0, std::nullopt));
                  return {gx, gy};
                });
  return reduce(loss, reduction, "binary_cross_entropy");
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "binary_cross_entropy_with_logits");
  // -[y log s(x) + (1-y) log(1-s(x))] = softplus(x) - x y; gradient sigmoid(x) - y
  return reduce(stable_softplus(input) - input * target, reduction, "binary_cross_entropy_with_logits");
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction, const Tensor& weight,
                int64_t ignore_index) {
  const auto targets = check_class_targets(log_probs, target, weight, ignore_index, "nll_loss");
  return class_loss(log_probs, target, targets, reduction, 0.0, weight, ignore_index, "nll_loss");
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction, double label_smoothing,
                     const Tensor& weight, int64_t ignore_index) {
  const auto targets = check_class_targets(logits, target, weight, ignore_index, "cross_entropy");
  if (!(label_smoothing >= 0 && label_smoothing < 1))  // (a NaN passed `< 0 || >= 1` and made the loss NaN)
    fail("cross_entropy: label_smoothing must be in [0, 1), got {}", label_smoothing);
  return class_loss(log_softmax(logits, 1), target, targets, reduction, label_smoothing, weight, ignore_index,
                    "cross_entropy");
}

// ---------------------------------------------------------------- more losses (PyTorch's formulas)

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  check_same_shape(input, target, "kl_div");
  // xlogy(p, p) - p input: p log p read at p = 1 where p is 0, so a zero p adds 0 (and a
  // negative one NaN, as PyTorch's xlogy)
  const Tensor loss = log_target ? exp(target) * (target - input)
                                 : target * log(where(target == 0.0, ones_like(target), target)) - target * input;
  if (reduction != Reduction::batchmean) return reduce(loss, reduction, "kl_div");
  return input.dim() == 0 ? sum(loss) : sum(loss) / static_cast<double>(input.size(0));
}

Tensor margin_ranking_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin, Reduction reduction) {
  check_same_shape(x1, x2, "margin_ranking_loss", "x1", "x2");
  check_same_shape(x1, y, "margin_ranking_loss", "x1", "target");
  return reduce(clamp(-y * (x1 - x2) + margin, 0.0, std::nullopt), reduction, "margin_ranking_loss");
}

Tensor hinge_embedding_loss(const Tensor& input, const Tensor& target, double margin, Reduction reduction) {
  check_same_shape(input, target, "hinge_embedding_loss");
  const Tensor zero = zeros_like(input);  // a target neither 1 nor -1 takes both terms, as PyTorch's
  const Tensor below_margin = where(target != 1.0, clamp(margin - input, 0.0, std::nullopt), zero);
  return reduce(below_margin + where(target != -1.0, input, zero), reduction, "hinge_embedding_loss");
}

Tensor soft_margin_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "soft_margin_loss");
  return reduce(stable_softplus(-input * target), reduction, "soft_margin_loss");
}

Tensor multilabel_soft_margin_loss(const Tensor& input, const Tensor& target, const Tensor& weight,
                                   Reduction reduction) {
  check_same_shape(input, target, "multilabel_soft_margin_loss");
  if (input.dim() == 0) fail("multilabel_soft_margin_loss: input {} needs a class dimension", describe(input));
  Tensor loss = -(target * log_sigmoid(input) + (1.0 - target) * log_sigmoid(-input));
  if (weight.defined()) loss = loss * weight;
  const int64_t c = input.dim() - 1;
  return reduce(sum(loss, c) / static_cast<double>(input.size(c)), reduction, "multilabel_soft_margin_loss");
}

Tensor multi_margin_loss(const Tensor& input, const Tensor& target, int p, double margin, const Tensor& weight,
                         Reduction reduction) {
  if (p != 1 && p != 2) fail("multi_margin_loss: p must be 1 or 2, got p = {}", p);
  check_class_targets(input, target, weight, std::nullopt, "multi_margin_loss");
  const int64_t classes = input.size(1);
  // margin - x_y + x_i, counted where positive (relu: none at 0, as PyTorch's kernel), not at i = y
  Tensor h = relu((margin - gather(input, 1, target.unsqueeze(1))) + input);
  if (p == 2) h = h * h;
  if (weight.defined()) h = h * index_select(weight.to(input.dtype()), 0, target).unsqueeze(1);
  const Tensor at_target = eq(arange(0, static_cast<double>(classes), 1, Dtype::int64).unsqueeze(0),
                              target.unsqueeze(1));
  return reduce(sum(masked_fill(h, at_target, 0.0), 1) / static_cast<double>(classes), reduction, "multi_margin_loss");
}

Tensor cosine_embedding_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin, Reduction reduction) {
  check_same_shape(x1, x2, "cosine_embedding_loss", "x1", "x2");
  if (x1.dim() != 1 && x1.dim() != 2) fail("cosine_embedding_loss: x1 {} must be [N, D] or [D]", describe(x1));
  const int64_t d = x1.dim() - 1;
  const Shape rows = x1.dim() == 2 ? Shape{x1.size(0)} : Shape{};
  if (y.shape() != rows)
    fail("cosine_embedding_loss: target {} must have shape {} for x1 {}", describe(y), rows, describe(x1));
  constexpr double kEps = 1e-12;  // added to each squared norm, as PyTorch's
  const Tensor cos = sum(x1 * x2, d) / sqrt((sum(x1 * x1, d) + kEps) * (sum(x2 * x2, d) + kEps));
  const Tensor zero = zeros_like(cos);
  return reduce(where(y == 1.0, 1.0 - cos, zero) + where(y == -1.0, clamp(cos - margin, 0.0, std::nullopt), zero),
                reduction, "cosine_embedding_loss");
}

Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative, double margin,
                           double p, double eps, bool swap, Reduction reduction) {
  for (const Tensor* t : {&positive, &negative})
    if (t->dim() != anchor.dim() || (anchor.dim() > 0 && t->size(-1) != anchor.size(-1)))
      fail("triplet_margin_loss: anchor {}, positive {} and negative {} must have the same number of dimensions and "
           "the same last one",
           describe(anchor), describe(positive), describe(negative));
  const Tensor d_pos = pairwise_distance(anchor, positive, p, eps);
  Tensor d_neg = pairwise_distance(anchor, negative, p, eps);
  if (swap) d_neg = minimum(d_neg, pairwise_distance(positive, negative, p, eps));
  return reduce(clamp(margin + d_pos - d_neg, 0.0, std::nullopt), reduction, "triplet_margin_loss");
}

Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, const Tensor& var, bool full, double eps,
                         Reduction reduction) {
  check_same_shape(input, target, "gaussian_nll_loss");
  Tensor v = var;
  if (var.shape() != input.shape()) {  // one variance for the last dimension: [..., 1] or one dimension fewer
    const Shape lead(input.shape().begin(), input.shape().end() - (input.dim() > 0 ? 1 : 0));
    if (input.dim() > 0 && var.shape() == lead)
      v = var.unsqueeze(-1);
    else if (!(input.dim() > 0 && var.dim() == input.dim() && var.size(-1) == 1 &&
               Shape(var.shape().begin(), var.shape().end() - 1) == lead))
      fail("gaussian_nll_loss: var {} must have input's shape {}, or it without its last dimension, or with a last "
           "dimension of 1",
           describe(var), input.shape());
  }
  for (double e : var.to_vector<double>())
    if (e < 0) fail("gaussian_nll_loss: var {} has a negative entry, {}", describe(var), e);
  v = clamp_min_passing_gradient(v, eps);
  const Tensor d = input - target;
  Tensor loss = (log(v) + d * d / v) * 0.5;
  if (full) loss = loss + 0.5 * std::log(2 * std::numbers::pi);
  return reduce(loss, reduction, "gaussian_nll_loss");
}

Tensor poisson_nll_loss(const Tensor& input, const Tensor& target, bool log_input, bool full, double eps,
                        Reduction reduction) {
  check_same_shape(input, target, "poisson_nll_loss");
  Tensor loss = log_input ? exp(input) - target * input : input - target * log(input + eps);
  if (full) {  // Stirling's approximation of log(target!), where target > 1 (read at 2 elsewhere, then dropped)
    const Tensor t = where(target > 1.0, target, full_like(target, 2.0));
    loss = loss + masked_fill(t * log(t) - t + 0.5 * log(2 * std::numbers::pi * t), target <= 1.0, 0.0);
  }
  return reduce(loss, reduction, "poisson_nll_loss");
}

// ---------------------------------------------------------------- distances and encodings

Tensor normalize(const Tensor& x, double p, int64_t dim, double eps) {
  const int64_t d = wrap_dim(dim, x.dim(), "normalize");
  return x / clamp(norm(x, p, {d}, true), eps, std::nullopt);
}

Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int64_t dim, double eps) {
  // each divided by its norm first, as PyTorch's (the result stays within [-1, 1]), the squared
  // norm clamped at eps^2 (PyTorch 1.13's order: the second derivative at a zero vector is finite);
  // the norms of the broadcast shapes, so that a broadcast x2 counts once per row of x1
  // int64 operands are taken in the default floating dtype, as PyTorch's
  const Dtype common = result_type(x1, x2), dtype = common == Dtype::int64 ? default_dtype() : common;
  const Shape shape = broadcast_shapes(x1.shape(), x2.shape(), "cosine_similarity");
  const Tensor a = x1.to(dtype).expand(shape), b = x2.to(dtype).expand(shape);
  const int64_t d = wrap_dim(dim, a.dim(), "cosine_similarity");
  const auto unit = [&](const Tensor& t) {
    return t / sqrt(clamp_min_passing_gradient(sum(square(t), d, true), eps * eps));
  };
  return sum(unit(a) * unit(b), d);
}

Tensor pairwise_distance(const Tensor& x1, const Tensor& x2, double p, double eps, bool keepdim) {
  const Tensor diff = x1 - x2 + eps;
  if (diff.dim() == 0) fail("pairwise_distance: x1 {} and x2 {} need a dimension", describe(x1), describe(x2));
  return norm(diff, p, {diff.dim() - 1}, keepdim);
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  if (indices.dtype() != Dtype::int64)
    fail("one_hot: indices must be int64, got {} (convert with .to(cr::int64))", describe(indices));
  const std::vector<int64_t> v = indices.to_vector<int64_t>();
  int64_t classes = num_classes;
  if (classes < 0) classes = v.empty() ? 0 : *std::max_element(v.begin(), v.end()) + 1;
  for (int64_t i : v)
    if (i < 0 || i >= classes)
      fail("one_hot: index {} is out of range for {} classes (indices {})", i, classes, describe(indices));
  return eq(indices.unsqueeze(-1), arange(0, static_cast<double>(classes), 1, Dtype::int64)).to(Dtype::int64);
}

// ---------------------------------------------------------------- padding

std::string to_string(PadMode mode) {
  switch (mode) {
    case PadMode::constant: return "constant";
    case PadMode::reflect: return "reflect";
    case PadMode::replicate: return "replicate";
    case PadMode::circular: return "circular";
  }
  return "unknown";
}

namespace {
// The input position that output position i (counted from the input's first, so the padding in
// front is -before .. -1) copies, along a dimension of n > 0 elements; -1 where there is none.
int64_t source(PadMode mode, int64_t i, int64_t n) {
  switch (mode) {
    case PadMode::reflect: i = i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; break;
    case PadMode::replicate: i = std::clamp<int64_t>(i, 0, n - 1); break;
    case PadMode::circular: i = (i % n + n) % n; break;
    case PadMode::constant: break;
  }
  return i >= 0 && i < n ? i : -1;
}
}  // namespace

Tensor pad(const Tensor& x, const std::vector<int64_t>& pad, PadMode mode, double value) {
  const auto pairs = static_cast<int64_t>(pad.size() / 2);
  if (pad.size() % 2 != 0 || pairs > x.dim())
    fail("pad: the padding {} must be (before, after) pairs, one for each of at most {} trailing dimensions of input {}",
         pad, x.dim(), describe(x));
  Tensor y = x;
  for (int64_t k = 0; k < pairs; ++k) {
    const int64_t d = x.dim() - 1 - k, before = pad[2 * k], after = pad[2 * k + 1], n = x.size(d);
    const auto bad = [&](const char* why) {
      fail("pad ({} mode): padding ({}, {}) of dimension {} of input {}: {}", to_string(mode), before, after, d,
           describe(x), why);
    };
    if (before == 0 && after == 0) continue;
    if (mode == PadMode::constant) {
      const int64_t start = std::max<int64_t>(-before, 0), kept = n - start - std::max<int64_t>(-after, 0);
      if (kept < 0) bad("removes more elements than the dimension has");
      const auto filled = [&](int64_t count) {
        Shape shape = y.shape();
        shape[d] = count;
        return full(shape, value, x.dtype());
      };
      std::vector<Tensor> pieces;  // only the sides that add elements
      if (before > 0) pieces.push_back(filled(before));
      pieces.push_back(y.narrow(d, start, kept));
      if (after > 0) pieces.push_back(filled(after));
      y = pieces.size() == 1 ? pieces[0] : cat(pieces, d);
      continue;
    }
    if (n == 0) bad("an empty dimension has nothing to copy");
    const int64_t size = n + before + after;
    if (size < 0) bad("removes more elements than the dimension has");
    std::vector<int64_t> from(static_cast<size_t>(size));
    for (int64_t i = 0; i < size; ++i)
      if ((from[static_cast<size_t>(i)] = source(mode, i - before, n)) < 0)
        bad("reflect padding must be smaller than the dimension");
    y = index_select(y, d, positions(from));
  }
  return y;
}

// ---------------------------------------------------------------- convolution and pooling

std::string to_string(Size2 s) { return fmt::format("[{}, {}]", s[0], s[1]); }

namespace {

// The op as the user called it, for errors: its name, its input, and whether it is a 1-d op (run
// as the 2-d one over a height of 1, whose sizes it shows as the width alone).
struct Call {
  const char* name;
  const Tensor& input;
  bool one_d = false;
  const Tensor* weight = nullptr;  // the weight as given (conv1d's, before its height of 1), when not the one used
  std::string size(Size2 s) const { return one_d ? std::to_string(s[1]) : to_string(s); }
};

// The output's height and width for a kernel of (dilated) extent over x's padded height and width,
// checking the arguments (all ops here go through it). ceil_mode (pooling) keeps a last window
// that overhangs the padded input, if it starts inside the input or its first padding (PyTorch's).
Size2 blocks(const Tensor& x, Size2 kernel, Size2 dilation, Size2 padding, Size2 stride, const Call& op,
             bool ceil_mode = false) {
  if (x.dim() != 4) fail("{}: expected a 4-d input [N, C, H, W], got {}", op.name, describe(op.input));
  if (!is_floating(x.dtype())) fail("{}: expected a floating input, got {}", op.name, describe(op.input));
  for (const auto& [name, v, lo] : {std::tuple{"kernel_size", kernel, 1}, std::tuple{"dilation", dilation, 1},
                                    std::tuple{"padding", padding, 0}, std::tuple{"stride", stride, 1}})
    if (v[0] < lo || v[1] < lo)
      fail("{}: {} {} must be at least {} (input {})", op.name, name, op.size(v), lo, describe(op.input));
  const Size2 room{x.size(2) + 2 * padding[0], x.size(3) + 2 * padding[1]};
  Size2 out{};
  for (int k = 0; k < 2; ++k) {
    const int64_t extent = dilation[k] * (kernel[k] - 1) + 1;
    if (extent > room[k])
      fail("{}: the kernel {} (dilation {}) does not fit the input {} padded by {} to {}", op.name,
           op.size(kernel), op.size(dilation), describe(op.input), op.size(padding), op.size(room));
    out[k] = (room[k] - extent + (ceil_mode ? stride[k] - 1 : 0)) / stride[k] + 1;
    if (ceil_mode && (out[k] - 1) * stride[k] >= x.size(2 + k) + padding[k]) --out[k];
  }
  return out;
}

// unfold's columns of x [N, C, H, W]: [N, C kh kw, L] (kernels::unfold_into, positions outside
// x read as pad_value: 0, or -inf for max pooling). Its gradient is fold (the adjoint, col2im),
// whose gradient is unfold again, so every order of derivative follows.
Tensor fold(const Tensor& cols, const kernels::Window2& w, const Shape& x_shape);
Tensor unfold_columns(const Tensor& x, const kernels::Window2& w, double pad_value) {
  const Tensor cols = empty({x.size(0), x.size(1) * w.kernel[0] * w.kernel[1], w.out[0] * w.out[1]}, x.dtype());
  kernels::unfold_into(cols, x, w, pad_value);
  return record(cols, "unfold", {x}, {},
                [w](const Tensor& g, const BackwardContext& c) -> Grads { return {fold(g, w, c.shape(0))}; });
}
Tensor fold(const Tensor& cols, const kernels::Window2& w, const Shape& x_shape) {
  const Tensor x = zeros(x_shape, cols.dtype());
  kernels::fold_add_into(x, cols, w);
  return record(x, "fold", {cols}, {},
                [w](const Tensor& g, const BackwardContext&) -> Grads { return {unfold_columns(g, w, 0.0)}; });
}

// unfold's columns [N, C kh kw, L] and the output's height and width (L = their product).
struct Unfolded {
  Tensor cols;
  Size2 out;
};
Unfolded unfold_with(const Tensor& x, Size2 kernel, Size2 dilation, Size2 padding, Size2 stride, double pad_value,
                     const Call& op, bool ceil_mode = false) {
  const Size2 out = blocks(x, kernel, dilation, padding, stride, op, ceil_mode);
  return {unfold_columns(x, {kernel, dilation, padding, stride, out}, pad_value), out};
}

// Runs f on x as a batch of one when x is [C, H, W] (PyTorch's unbatched input), dropping it again.
template <class F>
Tensor batched(const Tensor& x, const Call& op, F&& f) {
  if (x.dim() == 3) return f(x.unsqueeze(0)).squeeze(0);
  if (x.dim() != 4) fail("{}: expected [N, C, H, W] or [C, H, W], got {}", op.name, describe(op.input));
  return f(x);
}

// A 1-d op on x [N, C, L] or [C, L]: the 2-d op f over a height of 1.
template <class F>
Tensor over_height_1(const Tensor& x, const Call& op, F&& f) {
  if (x.dim() != 2 && x.dim() != 3) fail("{}: expected [N, C, L] or [C, L], got {}", op.name, describe(x));
  return f(x.unsqueeze(-2)).squeeze(-2);
}

// conv2d's gradients as recorded ops, so that they differentiate again (create_graph): per group,
// x's is the fold of W^T g, and weight's the sum over the batch of g unfold(x)^T.
Grads conv_gradients(const Tensor& g, const BackwardContext& c, const kernels::Window2& w, int64_t groups) {
  const int64_t n = g.size(0), o = g.size(1), l = w.out[0] * w.out[1];
  const Tensor gg = g.reshape({n, groups, o / groups, l});
  Tensor gx, gw;
  if (c.needs(0)) {
    const Tensor wt = c.saved(1).reshape({groups, o / groups, -1}).transpose(-1, -2);  // [G, C/G kh kw, O/G]
    gx = fold(matmul(wt, gg).reshape({n, -1, l}), w, c.shape(0));
  }
  if (c.needs(1)) {
    const Tensor cols = unfold_columns(c.saved(0), w, 0.0).reshape({n, groups, -1, l});
    gw = sum(matmul(gg, cols.transpose(-1, -2)), Shape{0}).reshape(c.shape(1));
  }
  return {std::move(gx), std::move(gw)};
}

// The convolution: groups of in_channels / groups input channels, each with its own
// out_channels / groups filters (kernels::conv2d: a GEMM per sample and group on columns
// [C kh kw, L] unfolded a block of samples at a time, never the batch's [N, C kh kw, L]), then
// the bias. Backward runs the same way (kernels::conv2d_backward), or recorded for create_graph.
Tensor conv(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride, Size2 padding, Size2 dilation,
            int64_t groups, const Call& op) {
  return batched(x, op, [&](const Tensor& xb) {
    const Tensor& shown = op.weight ? *op.weight : weight;
    if (weight.dim() != 4) fail("{}: weight {} must be [out_channels, in_channels / groups, kh, kw]", op.name,
                                describe(shown));
    const int64_t o = weight.size(0), c = xb.size(1);
    if (groups < 1 || weight.size(1) * groups != c || o % groups != 0)
      fail("{}: with groups {} the weight {} must be [out_channels, in_channels / groups, ...] with in_channels {} "
           "as input {} has, and groups must divide out_channels",
           op.name, groups, describe(shown), c, describe(op.input));
    if (bias.defined() && bias.shape() != Shape{o})
      fail("{}: bias {} must have shape [{}], one per output channel of weight {}", op.name, describe(bias), o,
           describe(shown));
    if (weight.dtype() != xb.dtype())
      fail("{}: input {} and weight {} need one dtype; convert one with to()", op.name, describe(op.input),
           describe(shown));
    const Size2 kernel{weight.size(2), weight.size(3)};
    const kernels::Window2 win{kernel, dilation, padding, stride, blocks(xb, kernel, dilation, padding, stride, op)};
    // the bias inside the op; its gradient is g summed over all but the channels (recorded under create_graph)
    return record(kernels::conv2d(xb, weight, win, groups, bias), "conv2d", {xb, weight, bias},
                  {keep_if(weight.requires_grad(), xb), keep_if(xb.requires_grad(), weight)},
                  [win, groups](const Tensor& g, const BackwardContext& c) -> Grads {
                    Tensor gb = c.needs(2) ? sum(g, Shape{0, 2, 3}) : Tensor();
                    if (!grad_mode_enabled()) {
                      auto [gx, gw] = kernels::conv2d_backward(g, c.needs(1) ? c.saved(0) : Tensor(),
                                                               c.needs(0) ? c.saved(1) : Tensor(), c.shape(0),
                                                               c.shape(1), win, groups, c.needs(0), c.needs(1));
                      return {std::move(gx), std::move(gw), std::move(gb)};
                    }
                    Grads grads = conv_gradients(g, c, win, groups);  // recorded: create_graph
                    return {std::move(grads[0]), std::move(grads[1]), std::move(gb)};
                  });
  });
}

// A pooling's arguments, as the caller gave them (1-d ones over a height of 1).
struct Pooling {
  Size2 kernel;
  std::optional<Size2> stride;  // the kernel when not given
  Size2 padding;
  bool ceil_mode;
  bool count_include_pad = true;  // average pooling: padded positions count in a window's size
};

// Max pooling: each window's maximum, where kernels::max_pool2d_indices finds it, taken by
// gather. Average pooling (`average`): the windows of each channel, [N, C, kh kw, H' W'], summed
// over dim 2, each sum divided by its window's size as PyTorch's: its positions in the padded
// input (count_include_pad) or in the input alone, never ceil_mode's overhang past the padding.
Tensor pool(const Tensor& x, const Pooling& p, bool average, const Call& op) {
  if (p.padding[0] > p.kernel[0] / 2 || p.padding[1] > p.kernel[1] / 2)
    fail("{}: padding {} must be at most half the kernel_size {}", op.name, op.size(p.padding), op.size(p.kernel));
  const Size2 stride = p.stride.value_or(p.kernel);
  return batched(x, op, [&](const Tensor& xb) {
    const int64_t n = xb.size(0), c = xb.size(1);
    if (!average) {  // each window's maximum, gathered from where a kernel found it (gather's gradients follow)
      const Size2 out = blocks(xb, p.kernel, {1, 1}, p.padding, stride, op, p.ceil_mode);
      const Tensor xc = xb.contiguous();  // once: the kernel reads it, and its reshape is then a view
      const Tensor at = kernels::max_pool2d_indices(xc, {p.kernel, {1, 1}, p.padding, stride, out});
      return gather(xc.reshape({n, c, -1}), 2, at).reshape({n, c, out[0], out[1]});
    }
    const auto [cols, out] = unfold_with(xb, p.kernel, {1, 1}, p.padding, stride, 0.0, op, p.ceil_mode);
    const Tensor windows = cols.reshape({n, c, p.kernel[0] * p.kernel[1], -1});
    std::vector<double> sizes;
    for (int64_t i = 0; i < out[0] * out[1]; ++i) {
      double size = 1;
      for (int k = 0; k < 2; ++k) {
        const int64_t in = xb.size(2 + k), start = (k == 0 ? i / out[1] : i % out[1]) * stride[k] - p.padding[k];
        const int64_t end = std::min(start + p.kernel[k], in + p.padding[k]);
        size *= static_cast<double>(p.count_include_pad ? end - start : std::min(end, in) - std::max<int64_t>(start, 0));
      }
      sizes.push_back(size);
    }
    return (sum(windows, Shape{2}) / tensor(sizes, {out[0] * out[1]}, xb.dtype())).reshape({n, c, out[0], out[1]});
  });
}

// A 1-d pooling: the 2-d one over a height of 1.
Tensor pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding, bool ceil_mode,
              bool count_include_pad, bool average, const Call& op) {
  return over_height_1(x, op, [&](const Tensor& x2) {
    return pool(x2, {{1, kernel_size}, Size2{1, stride.value_or(kernel_size)}, {0, padding}, ceil_mode, count_include_pad},
                average, op);
  });
}

}  // namespace

Tensor unfold(const Tensor& x, Size2 kernel_size, Size2 dilation, Size2 padding, Size2 stride) {
  return unfold_with(x, kernel_size, dilation, padding, stride, 0.0, {"unfold", x}).cols;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride, Size2 padding, Size2 dilation,
              int64_t groups) {
  return conv(x, weight, bias, stride, padding, dilation, groups, {"conv2d", x});
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
              int64_t dilation, int64_t groups) {
  const Call op{"conv1d", x, true, &weight};
  if (weight.dim() != 3)
    fail("conv1d: weight {} must be [out_channels, in_channels / groups, k]", describe(weight));
  return over_height_1(x, op, [&](const Tensor& x2) {
    return conv(x2, weight.unsqueeze(2), bias, {1, stride}, {0, padding}, {1, dilation}, groups, op);
  });
}

Tensor max_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride, Size2 padding, bool ceil_mode) {
  return pool(x, {kernel_size, stride, padding, ceil_mode}, false, {"max_pool2d", x});
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride, Size2 padding, bool ceil_mode,
                  bool count_include_pad) {
  return pool(x, {kernel_size, stride, padding, ceil_mode, count_include_pad}, true, {"avg_pool2d", x});
}

Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding, bool ceil_mode) {
  return pool1d(x, kernel_size, stride, padding, ceil_mode, true, false, {"max_pool1d", x, true});
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding, bool ceil_mode,
                  bool count_include_pad) {
  return pool1d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, true, {"avg_pool1d", x, true});
}

namespace {
// Adaptive pooling's window i of m over n positions, PyTorch's: floor(i n / m) to
// ceil((i + 1) n / m) - 1, as [start, end).
std::pair<int64_t, int64_t> adaptive_window(int64_t i, int64_t n, int64_t m) {
  return {i * n / m, ((i + 1) * n + m - 1) / m};
}

// Adaptive average pooling from n positions to m as a matrix [m, n]: row i averages window i.
Tensor adaptive_weights(int64_t n, int64_t m, Dtype dtype) {
  std::vector<double> a(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    const auto [start, end] = adaptive_window(i, n, m);
    for (int64_t r = start; r < end; ++r) a[static_cast<size_t>(i * n + r)] = 1.0 / static_cast<double>(end - start);
  }
  return tensor(a, {m, n}, dtype);
}

// Checks x (rank `lo` or `lo + 1`, floating, no empty pooled dims) and output sizes for an adaptive pooling.
void check_adaptive(const Tensor& x, int64_t lo, Size2 output, const Call& op) {
  if (x.dim() != lo && x.dim() != lo + 1)
    fail("{}: expected {}, got {}", op.name, lo == 2 ? "[N, C, L] or [C, L]" : "[N, C, H, W] or [C, H, W]",
         describe(x));
  if (!is_floating(x.dtype())) fail("{}: expected a floating input, got {}", op.name, describe(x));
  if (output[0] < 1 || output[1] < 1) fail("{}: output_size {} must be positive", op.name, op.size(output));
  if (x.size(-1) == 0 || (lo == 3 && x.size(-2) == 0))
    fail("{}: cannot pool the empty input {}", op.name, describe(x));
}
}  // namespace

// Averages over windows are linear maps: y = A_h x A_w^T, two matmuls (every order of derivative).
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  check_adaptive(x, 3, output_size, {"adaptive_avg_pool2d", x});
  const Tensor rows = adaptive_weights(x.size(-2), output_size[0], x.dtype());
  const Tensor cols = adaptive_weights(x.size(-1), output_size[1], x.dtype());
  return matmul(matmul(rows, x), cols.t());
}

Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size) {
  check_adaptive(x, 2, {1, output_size}, {"adaptive_avg_pool1d", x, true});
  return matmul(x, adaptive_weights(x.size(-1), output_size, x.dtype()).t());
}

// Each window's positions in the flattened H W, row-major, gathered by one index_select, then
// the max over each window (the gradient to its first maximum). A window smaller than the
// largest repeats its last row and column, each repeat after the element it copies, so neither
// the max nor which element is the first maximum changes.
Tensor adaptive_max_pool2d(const Tensor& x, Size2 output_size) {
  const Call op{"adaptive_max_pool2d", x};
  check_adaptive(x, 3, output_size, op);
  return batched(x, op, [&](const Tensor& xb) {
    const int64_t n = xb.size(0), c = xb.size(1), h = xb.size(2), w = xb.size(3);
    const auto [oh, ow] = output_size;
    const auto largest = [](int64_t size, int64_t m) {
      int64_t k = 0;
      for (int64_t i = 0; i < m; ++i) {
        const auto [start, end] = adaptive_window(i, size, m);
        k = std::max(k, end - start);
      }
      return k;
    };
    const int64_t kh = largest(h, oh), kw = largest(w, ow);
    std::vector<int64_t> index;
    index.reserve(static_cast<size_t>(oh * ow * kh * kw));
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const auto [r0, r1] = adaptive_window(i, h, oh);
        const auto [c0, c1] = adaptive_window(j, w, ow);
        for (int64_t a = 0; a < kh; ++a)
          for (int64_t b = 0; b < kw; ++b)
            index.push_back(std::min(r0 + a, r1 - 1) * w + std::min(c0 + b, c1 - 1));
      }
    const Tensor windows = index_select(xb.reshape({n, c, h * w}), 2, positions(index));
    return max(windows.reshape({n, c, oh, ow, kh * kw}), 4).values;
  });
}

Tensor adaptive_max_pool1d(const Tensor& x, int64_t output_size) {
  const Call op{"adaptive_max_pool1d", x, true};
  check_adaptive(x, 2, {1, output_size}, op);
  return over_height_1(x, op, [&](const Tensor& x2) { return adaptive_max_pool2d(x2, {1, output_size}); });
}

// ---------------------------------------------------------------- interpolation

std::string to_string(InterpolateMode mode) {
  switch (mode) {
    case InterpolateMode::nearest: return "nearest";
    case InterpolateMode::linear: return "linear";
    case InterpolateMode::bilinear: return "bilinear";
  }
  return "unknown";
}

namespace {
// y[..., i, ...] = x[..., low[i], ...] (1 - w[i]) + x[..., high[i], ...] w[i] along dim, in one
// pass over y (kernels::mix_rows_into), where an index_select of each neighbour, two broadcast
// products and a sum made five. Its gradient is the adjoint, index_add of g (1 - w) at low and
// of g w at high, differentiable in turn.
Tensor mix_neighbours(const Tensor& x, int64_t dim, const std::vector<int64_t>& low, const std::vector<int64_t>& high,
                      const std::vector<double>& weight) {
  Shape shape = x.shape();
  const auto out = static_cast<int64_t>(weight.size());
  shape[static_cast<size_t>(dim)] = out;
  const Tensor y = empty(shape, x.dtype());
  kernels::mix_rows_into(y, x, dim, low, high, weight);
  Shape along;  // the weights broadcast along dim
  along.resize(static_cast<size_t>(x.dim() - dim), 1);
  along[0] = out;
  return record(y, "interpolate", {x}, {},
                [dim, low = positions(low), high = positions(high), w = tensor(weight, along, x.dtype())](
                    const Tensor& g, const BackwardContext& c) -> Grads {
                  return {index_add(index_add(zeros(c.shape(0), g.dtype()), dim, low, g * (1.0 - w)), dim, high, g * w)};
                });
}

// x resized along dim from `in` positions to `out`, PyTorch's source positions: with a step s
// (1 / scale_factor when given, else in / out; (in - 1) / (out - 1) with align_corners),
// nearest copies input min(floor(i s), in - 1); linear mixes the inputs on either side of
// s (i + 0.5) - 0.5 (at least 0), or of s i with align_corners. index_select and a weighted
// sum, so every order of derivative follows and the cost is the output's size.
Tensor resize(const Tensor& x, int64_t dim, int64_t out, const InterpolateOptions& o, std::optional<double> scale_factor) {
  const int64_t in = x.size(dim);
  const double step = o.align_corners ? (out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0)
                      : scale_factor  ? 1.0 / *scale_factor
                                      : static_cast<double>(in) / static_cast<double>(out);
  std::vector<int64_t> low(static_cast<size_t>(out)), high(low.size());
  std::vector<double> weight(low.size());  // of high
  for (size_t i = 0; i < low.size(); ++i) {
    const auto index = static_cast<double>(i);
    if (o.mode == InterpolateMode::nearest) {
      low[i] = std::min(static_cast<int64_t>(std::floor(index * step)), in - 1);
      continue;
    }
    const double source = o.align_corners ? step * index : std::max(step * (index + 0.5) - 0.5, 0.0);
    low[i] = std::min(static_cast<int64_t>(source), in - 1);
    high[i] = low[i] < in - 1 ? low[i] + 1 : low[i];
    weight[i] = source - static_cast<double>(low[i]);
  }
  if (o.mode == InterpolateMode::nearest) return index_select(x, dim, positions(low));
  return mix_neighbours(x, dim, low, high, weight);
}
}  // namespace

Tensor interpolate(const Tensor& x, const InterpolateOptions& o) {
  const int64_t dims = x.dim() - 2;
  if ((dims != 1 && dims != 2) || !is_floating(x.dtype()))
    fail("interpolate: input {} must be a floating [N, C, L] or [N, C, H, W] tensor", describe(x));
  if ((o.mode == InterpolateMode::linear && dims != 1) || (o.mode == InterpolateMode::bilinear && dims != 2))
    fail("interpolate: mode {} takes {} inputs, got {}", to_string(o.mode),
         o.mode == InterpolateMode::linear ? "[N, C, L]" : "[N, C, H, W]", describe(x));
  if (o.align_corners && o.mode == InterpolateMode::nearest)
    fail("interpolate: align_corners is for the linear and bilinear modes, not nearest (input {})", describe(x));
  const size_t given = std::max(o.size.size(), o.scale_factor.size());
  if (o.size.empty() == o.scale_factor.empty() || (given != 1 && given != static_cast<size_t>(dims)))
    fail("interpolate: give either size or scale_factor, one value or one per resized dimension (size {}, "
         "scale_factor {}, input {})", o.size, o.scale_factor, describe(x));
  Tensor y = x;
  for (int64_t k = 0; k < dims; ++k) {
    const size_t i = given == 1 ? 0 : static_cast<size_t>(k);
    const int64_t in = x.size(2 + k);
    std::optional<double> scale;
    if (!o.scale_factor.empty()) scale = o.scale_factor[i];
    if (scale && !(std::isfinite(*scale) && *scale > 0))
      fail("interpolate: scale_factor {} must be positive and finite (input {})", o.scale_factor, describe(x));
    const double out = scale ? std::floor(static_cast<double>(in) * *scale) : static_cast<double>(o.size[i]);
    if (in == 0 || !(out >= 1 && out < 0x1p40))
      fail("interpolate: cannot resize dimension {} of input {} to {} elements", 2 + k, describe(x), out);
    y = resize(y, 2 + k, static_cast<int64_t>(out), o, scale);
  }
  return y;
}

}  // namespace chainrule::nn::functional
