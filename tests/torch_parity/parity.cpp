// Values, first and second derivatives of ~80 ops, and the trajectories of every optimizer and
// scheduler, printed for parity.py to compare against PyTorch (python3-torch): an independent
// implementation of the same conventions. One line per result: `<case> <part> <numbers...>`,
// `<case> ERR <message>` when chainrule refuses it. parity.py holds the same cases by name.
#include <chainrule.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

namespace cr = chainrule;
namespace F = chainrule::nn::functional;
namespace O = chainrule::optim;
using R = F::Reduction;
using Fn = std::function<cr::Tensor(const cr::Tensor&)>;

namespace {

void print(const std::string& name, const char* part, const cr::Tensor& t) {
  std::printf("%s %s", name.c_str(), part);
  for (double v : t.to(cr::float64).to_vector<double>()) std::printf(" %.17g", v);
  std::printf("\n");
}

// f at x (float64): its value, the gradient of sum(f(x) * w) (w = 1, 2, ... scaled by `scale`)
// and, recorded with create_graph, the gradient of the sum of that gradient (a Hessian row sum).
void check(const std::string& name, std::vector<double> xs, const cr::Shape& shape, const Fn& f, double scale = 0.1) {
  try {
    cr::Tensor x = cr::tensor(xs, shape, cr::float64).requires_grad_();
    const cr::Tensor y = f(x);
    const cr::Tensor w = (cr::arange(1, static_cast<double>(y.numel()) + 1, 1, cr::float64) * scale).reshape(y.shape());
    print(name, "v", y);
    const cr::Tensor g = cr::autograd::grad({cr::sum(y * w)}, {x}, {}, true, true)[0];
    print(name, "g", g);
    cr::Tensor h = g.requires_grad() ? cr::autograd::grad({cr::sum(g)}, {x}, {}, false, false, true)[0] : cr::Tensor();
    print(name, "h", h.defined() ? h : cr::zeros_like(x));
  } catch (const std::exception& e) {
    std::printf("%s ERR %s\n", name.c_str(), e.what());
  }
}

const std::vector<double> kX = {-25, -3, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 1.5, 3, 25};  // kinks, boundaries, tails
void point(const std::string& name, const Fn& f) { check(name, kX, {12}, f); }

void ops() {
  point("relu", [](auto& x) { return cr::relu(x); });
  point("abs", [](auto& x) { return cr::abs(x); });
  point("sign", [](auto& x) { return cr::sign(x); });
  point("neg", [](auto& x) { return -x; });
  point("sigmoid", [](auto& x) { return cr::sigmoid(x); });
  point("tanh", [](auto& x) { return cr::tanh(x); });
  point("leaky_relu", [](auto& x) { return F::leaky_relu(x, 0.2); });
  point("elu", [](auto& x) { return F::elu(x, 0.7); });
  point("selu", [](auto& x) { return F::selu(x); });
  point("gelu", [](auto& x) { return F::gelu(x); });
  point("gelu_tanh", [](auto& x) { return F::gelu(x, true); });
  point("silu", [](auto& x) { return F::silu(x); });
  point("softplus", [](auto& x) { return F::softplus(x); });
  point("softplus_beta2_threshold4", [](auto& x) { return F::softplus(x, 2.0, 4.0); });
  point("mish", [](auto& x) { return F::mish(x); });
  point("hardtanh", [](auto& x) { return F::hardtanh(x); });
  point("hardtanh_-0.5_1.5", [](auto& x) { return F::hardtanh(x, -0.5, 1.5); });
  point("softsign", [](auto& x) { return F::softsign(x); });
  point("log_sigmoid", [](auto& x) { return F::log_sigmoid(x); });
  point("relu6", [](auto& x) { return F::relu6(x * 0.5 + 3.0); });  // 0 and 6 among the points
  point("hardsigmoid", [](auto& x) { return F::hardsigmoid(x); });
  point("hardswish", [](auto& x) { return F::hardswish(x); });
  point("celu", [](auto& x) { return F::celu(x, 0.5); });
  point("softshrink", [](auto& x) { return F::softshrink(x, 0.5); });
  point("hardshrink", [](auto& x) { return F::hardshrink(x, 1.0); });
  point("tanhshrink", [](auto& x) { return F::tanhshrink(x); });
  point("threshold", [](auto& x) { return F::threshold(x, 0.5, -2.0); });
  point("glu", [](auto& x) { return F::glu(x.reshape({3, 4}), 1); });
  point("softmin", [](auto& x) { return F::softmin(x.reshape({3, 4}), 1); });
  point("prelu", [](auto& x) { return F::prelu(x.reshape({2, 3, 2}), cr::tensor({0.1, -0.2, 0.3}, cr::float64)); });
  point("prelu_weight", [](auto& x) { return F::prelu(cr::tensor(kX, {12}, cr::float64).reshape({4, 3}), x.narrow(0, 7, 3)); });
  point("clamp", [](auto& x) { return cr::clamp(x, -1.0, 1.0); });
  point("clamp_min", [](auto& x) { return cr::clamp(x, 0.0, std::nullopt); });
  point("sqrt_abs", [](auto& x) { return cr::sqrt(cr::abs(x)); });
  point("pow_abs_0.5", [](auto& x) { return cr::pow(cr::abs(x), 0.5); });
  point("pow_3", [](auto& x) { return cr::pow(x, 3.0); });
  point("pow_int_2", [](auto& x) { return cr::pow(x, 2); });
  point("pow_0", [](auto& x) { return cr::pow(x, 0.0); });
  point("pow_-2", [](auto& x) { return cr::pow(x, -2.0); });
  point("pow_2_x", [](auto& x) { return cr::pow(2.0, x); });
  point("pow_tensor", [](auto& x) { return cr::pow(cr::abs(x), x * 0.1); });
  point("exp", [](auto& x) { return cr::exp(x * 0.1); });
  point("log_abs", [](auto& x) { return cr::log(cr::abs(x)); });
  point("log1p_abs", [](auto& x) { return cr::log1p(cr::abs(x)); });
  point("expm1", [](auto& x) { return cr::expm1(x); });
  point("erf", [](auto& x) { return cr::erf(x); });
  point("sin", [](auto& x) { return cr::sin(x); });
  point("cos", [](auto& x) { return cr::cos(x); });
  point("div", [](auto& x) { return 1.0 / (x * x + 1.0); });
  // the math library ops over the whole of kX: out of their domains (NaN), at their poles (inf)
  point("tan", [](auto& x) { return cr::tan(x); });
  point("asin", [](auto& x) { return cr::asin(x); });
  point("acos", [](auto& x) { return cr::acos(x); });
  point("atan", [](auto& x) { return cr::atan(x); });
  point("sinh", [](auto& x) { return cr::sinh(x); });
  point("cosh", [](auto& x) { return cr::cosh(x); });
  point("asinh", [](auto& x) { return cr::asinh(x); });
  point("acosh", [](auto& x) { return cr::acosh(x); });
  point("atanh", [](auto& x) { return cr::atanh(x); });
  point("reciprocal", [](auto& x) { return cr::reciprocal(x); });
  point("rsqrt", [](auto& x) { return cr::rsqrt(x); });
  point("log2", [](auto& x) { return cr::log2(x); });
  point("log10", [](auto& x) { return cr::log10(x); });
  point("exp2", [](auto& x) { return cr::exp2(x); });
  point("square", [](auto& x) { return cr::square(x); });
  point("floor", [](auto& x) { return cr::floor(x) * x; });
  point("ceil", [](auto& x) { return cr::ceil(x * 0.5) * x; });
  point("round", [](auto& x) { return cr::round(x * 2.0) + x; });
  point("round_halves", [](auto& x) { return cr::round(x) * x; });  // -0.5, 0.5, 1.5: to even
  point("trunc", [](auto& x) { return cr::trunc(x * 0.7) * x; });
  point("frac", [](auto& x) { return cr::frac(x * 0.7) * x; });
  point("atan2", [](auto& x) { return cr::atan2(x, 1.5 - x); });
  point("atan2_reversed", [](auto& x) { return cr::atan2(x.reshape({3, 4}), x.reshape({3, 4}).select(0, 1)); });
  point("atan2_zero", [](auto& x) { return cr::atan2(x, cr::zeros_like(x)); });
  point("max", [](auto& x) { return cr::max(cr::abs(x)); });
  point("min", [](auto& x) { return cr::min(cr::abs(x)); });
  // an infinite gradient (sqrt' at 0) where the op passes none: 0 there, not inf * 0
  point("sqrt_clamp", [](auto& x) { return cr::sqrt(cr::clamp(x, 0.0, 1.0)); });
  point("sqrt_relu", [](auto& x) { return cr::sqrt(cr::relu(x)); });
  point("sqrt_maximum", [](auto& x) { return cr::sqrt(cr::maximum(x, cr::zeros_like(x))); });
  point("sqrt_minimum", [](auto& x) { return cr::sqrt(-cr::minimum(x, cr::zeros_like(x))); });
  point("sqrt_max", [](auto& x) { return cr::sqrt(cr::max(x.reshape({3, 4}) * -1.0, 1).values + 1.0); });
  point("sqrt_zero_view", [](auto& x) {
    cr::Tensor y = x * 1.0;
    y.narrow(0, 0, 6).zero_();
    return cr::sqrt(y);
  });
  point("sqrt_max_all", [](auto& x) { return cr::sqrt(cr::max(x) - 25.0); });
  point("sqrt_amax", [](auto& x) { return cr::sqrt(cr::amax(x.reshape({3, 4}), cr::Shape{1}) - cr::tensor({-1.0, 0.0, 25.0}, cr::float64)); });
  point("maximum_0", [](auto& x) { return cr::maximum(x, cr::zeros_like(x)); });
  point("minimum_self", [](auto& x) { return cr::minimum(x, x); });
  point("max_dim", [](auto& x) { return cr::max(cr::abs(x).reshape({3, 4}), 1).values; });
  point("min_dim0", [](auto& x) { return cr::min(cr::abs(x).reshape({3, 4}), 0).values; });
  point("amax", [](auto& x) { return cr::amax(cr::abs(x).reshape({3, 4}), cr::Shape{1}); });
  point("softmax", [](auto& x) { return cr::softmax(x.reshape({3, 4}), 1); });
  point("log_softmax", [](auto& x) { return cr::log_softmax(x.reshape({3, 4}), 0); });
  point("logsumexp", [](auto& x) { return cr::logsumexp(x.reshape({3, 4}), 1); });
  point("var", [](auto& x) { return cr::var(x.reshape({3, 4}), cr::Shape{1}); });
  point("var_correction0", [](auto& x) { return cr::var(x.reshape({3, 4}), cr::Shape{0}, 0); });
  point("var_one_element", [](auto& x) { return cr::var(x.reshape({12, 1}), cr::Shape{1}); });
  point("mean", [](auto& x) { return cr::mean(x.reshape({3, 4}), 0); });
  point("sum_keepdim", [](auto& x) { return cr::sum(x.reshape({3, 4}) * x.reshape({3, 4}), 1, true); });
  point("where", [](auto& x) { return cr::where(cr::gt(x, cr::zeros_like(x)), cr::sqrt(cr::abs(x)), x * 2.0); });
  point("matmul", [](auto& x) { return cr::matmul(x.reshape({3, 4}), x.reshape({4, 3})); });
  point("linear", [](auto& x) { return cr::linear(x.reshape({3, 4}), x.reshape({4, 3}).t() * 0.5, x.narrow(0, 0, 3)); });
  point("gather", [](auto& x) { return cr::gather(x.reshape({3, 4}), 1, cr::tensor({0, 0, 3, 1, 2, 2}, {3, 2}, cr::int64)); });
  point("index_select", [](auto& x) { return cr::index_select(x.reshape({3, 4}), 1, cr::tensor({3, 3, 0}, {3}, cr::int64)); });
  point("cat", [](auto& x) { return cr::cat({x, x * x}, 0); });
  point("stack", [](auto& x) { return cr::stack({x, x * x}, 1); });
  const auto m = [](const cr::Tensor& x) { return x.reshape({3, 4}); };
  point("flip", [&](auto& x) { return cr::flip(m(x), {0, 1}) * m(x); });
  point("roll", [&](auto& x) { return cr::roll(m(x), {1, -1}, {0, 1}) * m(x); });
  point("roll_flat", [](auto& x) { return cr::roll(x, {5}) * x; });
  point("repeat", [&](auto& x) { return cr::repeat(m(x) * m(x), {2, 1, 2}); });
  point("tril", [&](auto& x) { return cr::tril(m(x) * m(x), 1); });
  point("triu", [&](auto& x) { return cr::triu(m(x) * m(x), -1); });
  point("masked_fill", [](auto& x) { return cr::masked_fill(x * x, x > 0.5, -1.0); });
  point("split", [](auto& x) {
    const auto p = cr::split(x, 5);
    return cr::cat({p[2], p[0] * p[1]});
  });
  point("chunk", [&](auto& x) {
    const auto p = cr::chunk(m(x), 2, 1);
    return p[0] * p[1];
  });
  point("unbind", [&](auto& x) {
    const auto p = cr::unbind(m(x), 0);
    return p[0] * p[1] + p[2];
  });
  // products: slices without zeros (g y / x), with one, with several (the product of the others)
  point("prod", [&](auto& x) { return cr::prod(m(x) * 0.5, 1); });
  point("prod_all", [](auto& x) { return cr::prod(x * 0.3); });
  point("prod_all_nonzero", [](auto& x) { return cr::prod(x.narrow(0, 6, 6)); });
  point("prod_keepdim", [&](auto& x) { return cr::prod(m(x), 0, true); });
  point("prod_relu", [&](auto& x) { return cr::prod(cr::relu(m(x)) + cr::relu(-m(x)) * 0.5, 1) + cr::prod(cr::relu(m(x)), 1); });
  point("cumprod", [&](auto& x) { return cr::cumprod(m(x) * 0.5, 1); });
  point("cumprod_dim0", [&](auto& x) { return cr::cumprod(m(x), 0); });
  point("cumprod_relu", [&](auto& x) { return cr::cumprod(cr::relu(m(x)) * 0.9 + cr::relu(-m(x)) * 0.1, 1); });
  point("transpose_expand", [](auto& x) { return x.reshape({3, 4}).t().unsqueeze(0).expand({2, 4, 3}) * x.narrow(0, 0, 3); });
  const auto t = [] { return cr::tensor(kX, {12}, cr::float64) * 0.5 + 0.25; };
  point("mse_loss", [&](auto& x) { return F::mse_loss(x, t()); });
  point("l1_loss_sum", [](auto& x) { return F::l1_loss(x, cr::tensor(kX, {12}, cr::float64), R::sum); });
  point("l1_loss_none", [&](auto& x) { return F::l1_loss(x, t(), R::none); });
  point("smooth_l1_loss", [](auto& x) { return F::smooth_l1_loss(x, cr::zeros_like(x), R::none, 1.0); });
  point("smooth_l1_loss_beta0.5", [](auto& x) { return F::smooth_l1_loss(x, cr::zeros_like(x), R::mean, 0.5); });
  point("huber_loss", [](auto& x) { return F::huber_loss(x, cr::zeros_like(x), R::none, 1.0); });
  point("huber_loss_delta3", [](auto& x) { return F::huber_loss(x, cr::zeros_like(x), R::sum, 3.0); });
  point("bce", [](auto& x) { return F::binary_cross_entropy(cr::clamp(x * 0.04 + 0.5, 0.0, 1.0), cr::full({12}, 0.3, cr::float64), R::none); });
  point("bce_with_logits", [](auto& x) { return F::binary_cross_entropy_with_logits(x, cr::full({12}, 0.3, cr::float64), R::none); });
  const cr::Tensor y3 = cr::tensor({0, 3, 1}, cr::int64);
  point("cross_entropy", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), y3, R::none); });
  point("cross_entropy_smoothing0.1", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), y3, R::mean, 0.1); });
  point("cross_entropy_sum_smoothing0.25", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), y3, R::sum, 0.25); });
  point("nll_loss", [&](auto& x) { return F::nll_loss(x.reshape({3, 4}), y3); });
  // class weights and ignored targets (PyTorch's default ignore_index -100, and a class)
  const cr::Tensor w4 = cr::tensor({0.5, 2.0, 1.5, 0.25}, cr::float64), yi = cr::tensor({0, -100, 1}, cr::int64);
  point("cross_entropy_weight", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), y3, R::mean, 0.0, w4); });
  point("cross_entropy_weight_none", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), y3, R::none, 0.0, w4); });
  point("cross_entropy_ignore", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), yi); });
  point("cross_entropy_ignore_class3", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), y3, R::mean, 0.0, {}, 3); });
  point("cross_entropy_weight_ignore_smoothing", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), yi, R::mean, 0.2, w4); });
  point("cross_entropy_weight_ignore_smoothing_sum", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), yi, R::sum, 0.2, w4); });
  point("cross_entropy_weight_ignore_smoothing_none", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), yi, R::none, 0.2, w4); });
  point("cross_entropy_all_ignored", [&](auto& x) { return F::cross_entropy(x.reshape({3, 4}), cr::full({3}, -100, cr::int64), R::mean, 0.1); });
  point("nll_loss_weight_ignore", [&](auto& x) { return F::nll_loss(x.reshape({3, 4}), yi, R::mean, w4); });
  point("nll_loss_weight_ignore_sum", [&](auto& x) { return F::nll_loss(x.reshape({3, 4}), yi, R::sum, w4); });
  // norms (the ties of |x| = 25 for INFINITY), std, cumsum
  point("norm", [](auto& x) { return cr::norm(x.reshape({3, 4}), 2, {1}); });
  point("norm_all", [](auto& x) { return cr::norm(x); });
  point("norm1", [](auto& x) { return cr::norm(x.reshape({3, 4}), 1, {0}, true); });
  point("norm3", [](auto& x) { return cr::norm(x.reshape({3, 4}), 3, {1}); });
  point("norm1.5", [](auto& x) { return cr::norm(x.reshape({3, 4}), 1.5, {1}); });
  point("norm0.5", [](auto& x) { return cr::norm(x.reshape({3, 4}) * 0.1 + 0.05, 0.5, {1}); });
  point("norm_inf", [](auto& x) { return cr::norm(x, INFINITY); });
  point("norm_-inf", [](auto& x) { return cr::norm(x.reshape({3, 4}), -INFINITY, {1}); });
  point("std", [](auto& x) { return cr::std(x.reshape({3, 4}), cr::Shape{1}); });
  point("std_correction0_keepdim", [](auto& x) { return cr::std(x.reshape({3, 4}), cr::Shape{0}, 0, true); });
  point("cumsum", [](auto& x) { return cr::cumsum(x.reshape({3, 4}), 1); });
  point("cumsum_dim0", [](auto& x) { return cr::cumsum(x.reshape({3, 4}) * x.reshape({3, 4}), 0); });

  // embedding: rows picked with repeats, a padding row (no gradient), 2-d indices
  const cr::Tensor rows = cr::tensor({3.0, 1, 1, 0, 2, 3, 1}, {7}, cr::int64), rows2 = rows.narrow(0, 0, 6).reshape({2, 3});
  point("embedding", [&](auto& x) { return F::embedding(rows, x.reshape({4, 3})); });
  point("embedding_padding", [&](auto& x) { return F::embedding(rows, x.reshape({4, 3}), 1); });
  point("embedding_2d_padding_-1", [&](auto& x) { return F::embedding(rows2, x.reshape({4, 3}) * x.reshape({4, 3}), -1); });

  // normalisation: statistics over the trailing dims (layer_norm) or all but dim 1 (batch_norm)
  const auto f64 = [](std::vector<double> v) { return cr::tensor(v, {static_cast<int64_t>(v.size())}, cr::float64); };
  const cr::Tensor w4n = f64({0.5, -1, 2, 1.5}), b4n = f64({0.1, 0, -0.3, 1}), w3 = f64({0.5, 2, -1}), b3 = f64({0, 1, 0.25}),
                   mean3 = f64({0.5, -1, 0}), var3 = f64({2, 0.5, 10});
  point("layer_norm", [](auto& x) { return F::layer_norm(x.reshape({3, 4}), {4}); });
  point("layer_norm_affine", [&](auto& x) { return F::layer_norm(x.reshape({3, 4}), {4}, w4n, b4n); });
  point("layer_norm_2d_eps0.1", [](auto& x) { return F::layer_norm(x.reshape({2, 2, 3}), {2, 3}, {}, {}, 0.1); });
  point("layer_norm_weight_bias_of_x", [](auto& x) { return F::layer_norm(x.reshape({3, 4}), {4}, x.narrow(0, 0, 4), x.narrow(0, 4, 4)); });
  point("group_norm", [](auto& x) { return F::group_norm(x.reshape({1, 4, 3}), 2); });
  point("group_norm_affine_eps1e-3", [&](auto& x) { return F::group_norm(x.reshape({2, 2, 3}), 2, f64({0.5, 2}), f64({0.1, -1}), 1e-3); });
  point("group_norm_instance_4d", [](auto& x) { return F::group_norm(x.reshape({1, 3, 2, 2}), 3); });
  point("group_norm_weight_of_x", [](auto& x) { return F::group_norm(x.reshape({2, 6}), 2, x.narrow(0, 0, 6)); });
  point("batch_norm_train", [](auto& x) { return F::batch_norm(x.reshape({4, 3}), {}, {}, {}, {}, true); });
  point("batch_norm_train_3d_affine", [&](auto& x) {
    return F::batch_norm(x.reshape({2, 2, 3}), {}, {}, f64({0.5, 2}), f64({0.1, -1}), true, 0.1, 1e-3);
  });
  point("batch_norm_eval", [&](auto& x) { return F::batch_norm(x.reshape({4, 3}), mean3, var3, w3, b3, false); });
  point("batch_norm_weight_bias_of_x", [](auto& x) { return F::batch_norm(x.reshape({4, 3}), {}, {}, x.narrow(0, 0, 3), x.narrow(0, 3, 3), true); });

  // more losses and distances; sgn: targets +-1 (and a 0, which hinge_embedding counts in both terms)
  const cr::Tensor sgn = f64({1, -1, 1, -1, -1, -1, 1, -1, -1, 1, 0, -1}), sgn3 = f64({1, -1, -1});
  const cr::Tensor probs = f64({0.1, 0.2, 0.3, 0.4, 0, 0.5, 0.5, 0, 0.25, 0.25, 0.25, 0.25}).reshape({3, 4});
  const cr::Tensor labels = f64({1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1}).reshape({3, 4}), cls = cr::tensor({0, 3, 1}, {3}, cr::int64);
  point("kl_div_batchmean", [&](auto& x) { return F::kl_div(cr::log_softmax(m(x), 1), probs, R::batchmean); });
  point("kl_div_target", [&](auto& x) { return F::kl_div(cr::log(probs + 0.1), cr::softmax(m(x) * 0.5, 1), R::sum); });
  point("kl_div_log_target", [](auto& x) { return F::kl_div(x * 0.1, x * 0.2 - 1.0, R::none, true); });
  point("kl_div_mean", [&](auto& x) { return F::kl_div(x * 0.1, probs.reshape({12})); });
  point("margin_ranking_loss", [&](auto& x) { return F::margin_ranking_loss(x, 0.5 - x * 0.5, sgn, 0.5, R::none); });
  point("hinge_embedding_loss", [&](auto& x) { return F::hinge_embedding_loss(x, sgn, 1.0, R::none); });
  point("soft_margin_loss", [&](auto& x) { return F::soft_margin_loss(x, sgn, R::none); });
  point("multilabel_soft_margin_loss", [&](auto& x) { return F::multilabel_soft_margin_loss(m(x), labels, w4n, R::none); });
  point("multi_margin_loss", [&](auto& x) { return F::multi_margin_loss(m(x) * 0.3, cls, 1, 1.0, {}, R::none); });
  point("multi_margin_loss_p2_weight", [&](auto& x) { return F::multi_margin_loss(m(x) * 0.1, cls, 2, 0.5, cr::abs(w4n)); });
  point("cosine_embedding_loss", [&](auto& x) { return F::cosine_embedding_loss(m(x), cr::flip(m(x), {1}) + 0.5, sgn3, 0.2, R::none); });
  point("triplet_margin_loss", [&](auto& x) { return F::triplet_margin_loss(m(x), cr::roll(m(x), {1}, {0}), m(x) * 0.5, 3.0, 2.0, 1e-6, false, R::none); });
  point("triplet_margin_loss_p1_swap", [&](auto& x) { return F::triplet_margin_loss(m(x), m(x) * m(x) * 0.1, cr::flip(m(x), {1}), 20.0, 1.0, 1e-6, true); });
  point("gaussian_nll_loss", [&](auto& x) { return F::gaussian_nll_loss(m(x), cr::flip(m(x), {0}), cr::abs(m(x)) * 0.1, false, 1e-6, R::none); });
  point("gaussian_nll_loss_full_shared_var", [&](auto& x) { return F::gaussian_nll_loss(m(x) * 0.1, probs, cr::abs(x.narrow(0, 5, 3)), true); });
  point("poisson_nll_loss", [&](auto& x) { return F::poisson_nll_loss(x * 0.1, cr::abs(f64(kX)), true, true, 1e-8, R::none); });
  point("poisson_nll_loss_rate", [&](auto& x) { return F::poisson_nll_loss(cr::abs(x), f64({0, 1, 2, 3, 0.5, 1.5, 4, 0, 2, 1, 7, 3}), false, true, 1e-8, R::none); });
  point("normalize", [&](auto& x) { return F::normalize(m(x)); });
  point("normalize_p1_dim0", [&](auto& x) { return F::normalize(m(x) * m(x), 1.0, 0); });
  point("cosine_similarity", [&](auto& x) { return F::cosine_similarity(m(x), cr::flip(m(x), {1}) + 0.5); });
  point("cosine_similarity_broadcast_dim0", [&](auto& x) { return F::cosine_similarity(m(x), x.narrow(0, 2, 3).reshape({3, 1}), 0); });
  point("pairwise_distance", [&](auto& x) { return F::pairwise_distance(m(x), cr::roll(m(x), {1}, {1})); });
  point("pairwise_distance_p3_keepdim", [&](auto& x) { return F::pairwise_distance(m(x), probs, 3.0, 1e-6, true); });
  check("cosine_similarity_zero", {0, 0, 3, 4}, {2, 2}, [](auto& x) { return F::cosine_similarity(x, cr::flip(x, {0}) + 1.0); });
  check("gaussian_nll_loss_zero_var", {0, 2}, {2}, [](auto& x) { return F::gaussian_nll_loss(cr::flip(x, {0}), cr::ones({2}, cr::float64), x * x); });

  // convolution and pooling: the input, the weight, or both from x
  const cr::Tensor img = cr::sin(cr::arange(0, 40, 1, cr::float64)).reshape({1, 2, 4, 5}), w2 = f64({0.5, -1, 0.25, 2, -0.5, 1, 1.5, 0.1}).reshape({2, 1, 2, 2});
  point("conv2d", [&](auto& x) { return F::conv2d(x.reshape({1, 1, 3, 4}), w2, f64({0.1, -0.2})); });
  point("conv2d_weight_stride_padding", [&](auto& x) { return F::conv2d(img, x.reshape({3, 2, 1, 2}), {}, {2, 1}, {1, 0}); });
  point("conv2d_both_dilation", [](auto& x) { return F::conv2d(x.reshape({1, 3, 2, 2}), x.reshape({1, 3, 2, 2}) * x.reshape({1, 3, 2, 2}), {}, {1, 1}, {1, 1}, {2, 1}); });
  point("conv1d", [&](auto& x) { return F::conv1d(x.reshape({2, 2, 3}), w2.reshape({2, 2, 2}), f64({0.3, 0.0}), 2, 1); });
  point("max_pool2d", [](auto& x) { return F::max_pool2d(x.reshape({1, 1, 3, 4}), {2, 2}, F::Size2{1, 1}, {1, 1}); });
  point("max_pool2d_ties", [](auto& x) { return F::max_pool2d(cr::abs(x).reshape({1, 3, 4}), {2, 2}, F::Size2{1, 2}); });
  point("avg_pool2d", [](auto& x) { return F::avg_pool2d(x.reshape({1, 1, 3, 4}) * x.reshape({1, 1, 3, 4}), {2, 3}, std::nullopt, {1, 1}); });
  point("unfold", [](auto& x) { return F::unfold(x.reshape({1, 2, 2, 3}), {2, 2}, {1, 1}, {1, 0}, {1, 2}); });
  // groups: w2 as [4, 2, 1, 1] filters two channels per group; x as depthwise filters of img
  point("conv2d_groups", [&](auto& x) { return F::conv2d(x.reshape({1, 4, 1, 3}), w2.reshape({4, 2, 1, 1}), f64({0.1, -0.2, 0.3, 0.0}), {1, 1}, {0, 1}, {1, 1}, 2); });
  point("conv2d_depthwise_weight", [&](auto& x) { return F::conv2d(img, x.reshape({6, 1, 2, 1}), {}, {1, 2}, {1, 0}, {1, 1}, 2); });
  point("conv1d_groups", [&](auto& x) { return F::conv1d(x.reshape({1, 4, 3}), w2.reshape({2, 2, 2}), {}, 1, 1, 2, 2); });
  point("max_pool1d", [](auto& x) { return F::max_pool1d(x.reshape({2, 6}), 3, 2, 1); });
  point("avg_pool1d", [](auto& x) { return F::avg_pool1d((x * x).reshape({1, 3, 4}), 2, 1, 1); });
  const auto qq = [](const cr::Tensor& x, const cr::Shape& shape) { return (x * x + x * 0.3).reshape(shape); };
  point("max_pool2d_ceil_mode", [&](auto& x) { return F::max_pool2d(qq(x, {1, 1, 3, 4}), {2, 2}, std::nullopt, {0, 0}, true); });
  point("max_pool1d_ceil_mode", [&](auto& x) { return F::max_pool1d(qq(x, {1, 2, 6}), 4, 3, 0, true); });
  point("avg_pool2d_ceil_mode_padding", [](auto& x) { return F::avg_pool2d((x * x).reshape({1, 1, 3, 4}), {2, 2}, F::Size2{2, 2}, {1, 1}, true); });
  point("avg_pool2d_ceil_mode_exclude_pad", [](auto& x) {
    return F::avg_pool2d((x * x).reshape({1, 1, 3, 4}), {3, 3}, F::Size2{2, 2}, {1, 1}, true, false);
  });
  point("avg_pool1d_exclude_pad", [](auto& x) { return F::avg_pool1d((x * x).reshape({1, 2, 6}), 3, 2, 1, false, false); });
  using Resize = F::InterpolateMode;
  point("interpolate_nearest_size", [&](auto& x) { return F::interpolate(qq(x, {1, 1, 3, 4}), {.size = {4, 6}}); });
  point("interpolate_bilinear", [&](auto& x) { return F::interpolate(qq(x, {1, 1, 3, 4}), {.size = {4, 5}, .mode = Resize::bilinear}); });
  point("interpolate_bilinear_align_corners_scale", [&](auto& x) {
    return F::interpolate(qq(x, {1, 1, 3, 4}), {.scale_factor = {1.5}, .mode = Resize::bilinear, .align_corners = true});
  });
  point("interpolate_linear_scale0.75", [&](auto& x) { return F::interpolate(qq(x, {1, 2, 6}), {.scale_factor = {0.75}, .mode = Resize::linear}); });
  point("adaptive_avg_pool2d", [](auto& x) { return F::adaptive_avg_pool2d((x * x).reshape({1, 1, 3, 4}), {2, 3}); });
  point("adaptive_avg_pool1d", [](auto& x) { return F::adaptive_avg_pool1d(x.reshape({2, 6}) * x.reshape({2, 6}), 4); });
  point("adaptive_max_pool2d", [](auto& x) { return F::adaptive_max_pool2d((x * x).reshape({1, 1, 3, 4}), {2, 3}); });
  point("adaptive_max_pool1d", [](auto& x) { return F::adaptive_max_pool1d(x.reshape({2, 6}) * x.reshape({2, 6}), 5); });

  const auto sq = [](const cr::Tensor& x, const cr::Shape& shape) { return (x * x).reshape(shape); };
  using Pad = F::PadMode;
  point("pad_constant", [&](auto& x) { return F::pad(sq(x, {3, 4}), {1, 2, 0, 1}, Pad::constant, 0.5); });
  point("pad_constant_negative", [&](auto& x) { return F::pad(sq(x, {3, 4}), {-1, 1, 1, -1}); });
  point("pad_reflect", [&](auto& x) { return F::pad(sq(x, {1, 3, 4}), {2, 3}, Pad::reflect); });
  point("pad_reflect_2d", [&](auto& x) { return F::pad(sq(x, {1, 1, 3, 4}), {1, 2, 2, 1}, Pad::reflect); });
  point("pad_replicate", [&](auto& x) { return F::pad(sq(x, {1, 3, 4}), {2, 1}, Pad::replicate); });
  point("pad_replicate_2d", [&](auto& x) { return F::pad(sq(x, {1, 1, 3, 4}), {1, 0, 2, 2}, Pad::replicate); });
  point("pad_circular", [&](auto& x) { return F::pad(sq(x, {1, 3, 4}), {3, 2}, Pad::circular); });

  // recurrent cells with their weights from x, and modules (2 layers, bidirectional, batch_first,
  // unbatched) whose parameters are 0.5 sin(1 + 0.7 j + 1.3 i), element j of parameter i
  const cr::Tensor in2 = f64({0.5, -1, 1.5, 0.25}).reshape({2, 2}), h1 = f64({0.3, -0.2}).reshape({2, 1}),
                   c1 = f64({0.1, 0.7}).reshape({2, 1}), in3 = f64({0.5, -1, 0.2, 1.5, 0.25, -0.4}).reshape({2, 3});
  point("lstm_cell_weights_of_x", [&](auto& x) {
    const cr::Tensor w = x * 0.1;
    const auto [h, c] = F::lstm_cell(in2, h1, c1, w.narrow(0, 0, 8).reshape({4, 2}), w.narrow(0, 8, 4).reshape({4, 1}));
    return cr::cat({h, c}, 1);
  });
  point("gru_cell_weights_of_x", [&](auto& x) {
    const cr::Tensor w = x * 0.1;
    return F::gru_cell(in3, h1, w.narrow(0, 0, 9).reshape({3, 3}), w.narrow(0, 9, 3).reshape({3, 1}), f64({0.1, -0.2, 0.3}));
  });
  const auto fill = [](cr::nn::Module& m) {
    int64_t i = 0;
    for (cr::Tensor p : m.parameters()) {
      std::vector<double> v;
      for (int64_t j = 0; j < p.numel(); ++j) v.push_back(0.5 * std::sin(1 + 0.7 * double(j) + 1.3 * double(i)));
      p.set_data(cr::tensor(v, p.shape(), cr::float64));
      ++i;
    }
  };
  auto lstm = std::make_shared<cr::nn::LSTM>(2, 2, cr::nn::RNNOptions{.num_layers = 2, .bidirectional = true, .dtype = cr::float64});
  auto gru = std::make_shared<cr::nn::GRU>(2, 3, cr::nn::RNNOptions{.batch_first = true, .dtype = cr::float64});
  auto rnn = std::make_shared<cr::nn::RNN>(3, 2, cr::nn::RNNOptions{.num_layers = 2, .relu = true, .dtype = cr::float64});
  fill(*lstm), fill(*gru), fill(*rnn);
  point("lstm_2_layers_bidirectional", [=](auto& x) {
    const cr::nn::RNNOutput o = lstm->forward(x.reshape({3, 2, 2}) * 0.1, cr::Tensor());
    return cr::cat({o.output.reshape({-1}), o.h_n.reshape({-1}), o.c_n.reshape({-1})});
  });
  point("gru_batch_first_h0", [=](auto& x) {
    const cr::Tensor h0 = f64({0.1, -0.3, 0.5, 0.2, 0, -0.1}).reshape({1, 2, 3});
    const cr::nn::RNNOutput o = gru->forward(x.reshape({2, 3, 2}) * 0.1, h0);
    return cr::cat({o.output.reshape({-1}), o.h_n.reshape({-1})});
  });
  point("rnn_relu_2_layers_unbatched", [=](auto& x) { return (*rnn)(x.reshape({4, 3}) * 0.1 + 0.2); });

  // sorting and selection: q = x^2 + 0.3 x has no ties at kX, |x| has (sort is stable, as torch's
  // stable=True; torch's topk, kthvalue and median(dim) pick among ties as they please)
  const auto q = [](const cr::Tensor& x) { return x * x + x * 0.3; };
  point("sort_stable_ties", [](auto& x) { return cr::sort(cr::abs(x).reshape({3, 4}), 1).values; });
  point("sort_descending_dim0", [&](auto& x) { return cr::sort(q(x).reshape({4, 3}), 0, true).values; });
  point("topk", [&](auto& x) { return cr::topk(q(x).reshape({3, 4}), 2).values; });
  point("topk_smallest_dim0", [&](auto& x) { return cr::topk(q(x).reshape({4, 3}), 3, 0, false).values; });
  point("kthvalue", [&](auto& x) { return cr::kthvalue(q(x).reshape({3, 4}), 2).values; });
  point("kthvalue_dim0_keepdim", [&](auto& x) { return cr::kthvalue(q(x).reshape({4, 3}), 3, 0, true).values; });
  point("median_dim_odd", [&](auto& x) { return cr::median(q(x).reshape({4, 3}), 1).values; });
  point("median_dim_even", [&](auto& x) { return cr::median(q(x).reshape({3, 4}), 1).values; });
  point("median", [&](auto& x) { return cr::median(q(x)); });
  point("median_ties", [](auto& x) { return cr::median(cr::abs(x)); });  // two 1s share the gradient

  // special values: infinities, NaN, empty tensors, overflowing arguments
  const double I = INFINITY, N = NAN;
  check("logsumexp_-inf", {-I, -I, 1, 2}, {2, 2}, [](auto& x) { return cr::logsumexp(x, 1); });
  check("logsumexp_inf", {I, 1, I, I}, {2, 2}, [](auto& x) { return cr::logsumexp(x, 1); });
  check("softmax_-inf", {-I, 0, 1, 2}, {2, 2}, [](auto& x) { return cr::softmax(x, 1); });
  check("log_softmax_-inf", {-I, 0, 1, 2}, {2, 2}, [](auto& x) { return cr::log_softmax(x, 1); });
  check("softmax_nan", {N, 0, 1, 2}, {2, 2}, [](auto& x) { return cr::softmax(x, 1); });
  check("max_dim_nan", {1, N, 3, 2}, {2, 2}, [](auto& x) { return cr::max(x, 1).values; });
  check("max_nan", {1, N, 3, 2}, {2, 2}, [](auto& x) { return cr::max(x); });
  check("min_two_nans", {1, N, 3, N}, {4}, [](auto& x) { return cr::min(x); });
  check("amax_nan", {1, N, 3, 2}, {2, 2}, [](auto& x) { return cr::amax(x, cr::Shape{1}); });
  check("maximum_nan", {1, N, 3, 2}, {4}, [N](auto& x) { return cr::maximum(x, cr::tensor({N, 0, 5, 2}, cr::float64)); });
  check("minimum_nan", {1, N, 3, 2}, {4}, [N](auto& x) { return cr::minimum(cr::tensor({N, 0, 5, 2}, cr::float64), x); });
  check("sort_nan", {1, N, 3, 2}, {2, 2}, [](auto& x) { return cr::sort(x, 1).values; });
  check("sort_nan_descending", {1, N, 3, 2}, {4}, [](auto& x) { return cr::sort(x, 0, true).values; });
  check("median_dim_nan", {1, N, 3, 2, 0, 5}, {2, 3}, [](auto& x) { return cr::median(x, 1).values; });
  check("median_nan", {1, N, 3, N}, {4}, [](auto& x) { return cr::median(x); });
  check("clamp_nan", {1, N, -3, 2}, {4}, [](auto& x) { return cr::clamp(x, -1.0, 1.5); });
  check("relu_nan", {1, N, -3, 0}, {4}, [](auto& x) { return cr::relu(x); });
  check("hardtanh_nan", {1, N, -3, 0}, {4}, [](auto& x) { return F::hardtanh(x); });
  check("sqrt_0", {0, 4}, {2}, [](auto& x) { return cr::sqrt(x); });
  check("pow_0_0.5", {0, 4}, {2}, [](auto& x) { return cr::pow(x, 0.5); });
  check("pow_0_0", {0, 4}, {2}, [](auto& x) { return cr::pow(x, 0.0); });
  check("pow_negative_base", {-2, 4}, {2}, [](auto& x) { return cr::pow(x, 0.5); });
  check("log_0", {0, 4}, {2}, [](auto& x) { return cr::log(x); });
  check("x_log_x_0", {0, 4}, {2}, [](auto& x) { return x * cr::log(x); });
  check("where_masks_nan", {0, 4}, {2}, [](auto& x) { return cr::where(cr::gt(x, cr::zeros_like(x)), cr::log(x), cr::zeros_like(x)); });
  check("div_0", {0, 4}, {2}, [](auto& x) { return 1.0 / x; });
  check("bce_with_logits_inf", {-I, I, 800, -800}, {4}, [](auto& x) {
    return F::binary_cross_entropy_with_logits(x, cr::tensor({0.0, 1.0, 0.0, 1.0}, cr::float64), R::none);
  });
  check("cross_entropy_large", {1000, -1000, 0, 0}, {2, 2}, [](auto& x) { return F::cross_entropy(x, cr::tensor({1, 0}, cr::int64), R::none); });
  const std::vector<double> big = {-1000, 1000, 0, -40};
  check("softplus_threshold", {-1000, 1000, 19.99, 20.01}, {4}, [](auto& x) { return F::softplus(x); });
  check("log_sigmoid_large", big, {4}, [](auto& x) { return F::log_sigmoid(x); });
  check("mish_large", big, {4}, [](auto& x) { return F::mish(x); });
  check("silu_large", big, {4}, [](auto& x) { return F::silu(x); });
  check("gelu_large", big, {4}, [](auto& x) { return F::gelu(x); });
  check("elu_large", big, {4}, [](auto& x) { return F::elu(x); });
  check("sigmoid_large", big, {4}, [](auto& x) { return cr::sigmoid(x); });
  check("tanh_large", big, {4}, [](auto& x) { return cr::tanh(x); });
  check("exp_large", {-1000, 1000, 0, 700}, {4}, [](auto& x) { return cr::exp(x); });
  check("dropout_p1", {N, I, -2, 3}, {4}, [](auto& x) { return F::dropout(x, 1.0); });
  check("dropout_eval", {N, I, -2, 3}, {4}, [](auto& x) { return F::dropout(x, 0.5, false) * x; });
  check("cross_entropy_no_classes", {}, {2, 0}, [](auto& x) { return F::cross_entropy(x, cr::full({2}, -100, cr::int64), R::none); });
  check("nll_loss_no_classes_weight", {}, {2, 0}, [](auto& x) { return F::nll_loss(x, cr::full({2}, -100, cr::int64), R::mean, cr::ones({0}, cr::float64)); });
  check("norm_zero_row", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::norm(x, 2, {1}); });
  check("norm3_zero_row", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::norm(x, 3, {1}); });
  check("norm_inf_zero_row", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::norm(x, INFINITY, {1}); });
  check("norm0_count", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::norm(x, 0, {1}); });
  check("std_constant_row", {0.1, 0.1, 0.1, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::std(x, cr::Shape{1}); });
  // the same slices times another row's sum: the second derivative across rows is 0 (it was 0 / 0)
  check("norm_zero_row_scaled", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::norm(x.narrow(0, 0, 1), 2, {1}) * cr::sum(x.narrow(0, 1, 1)); });
  check("norm3_zero_row_scaled", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::norm(x.narrow(0, 0, 1), 3, {1}) * cr::sum(x.narrow(0, 1, 1)); });
  check("std_zero_row_scaled", {0, 0, 0, 1, -2, 2}, {2, 3}, [](auto& x) { return cr::std(x.narrow(0, 0, 1), cr::Shape{1}) * cr::sum(x.narrow(0, 1, 1)); });
  check("norm_empty", {}, {0}, [](auto& x) { return cr::norm(x); });
  check("cumsum_empty", {}, {0, 2}, [](auto& x) { return cr::cumsum(x, 0); });
  check("mean_empty", {}, {0}, [](auto& x) { return cr::mean(x); });
  check("sum_empty", {}, {0, 3}, [](auto& x) { return cr::sum(x, 0); });
  check("var_empty", {}, {0}, [](auto& x) { return cr::var(x); });
  check("mse_loss_empty", {}, {0}, [](auto& x) { return F::mse_loss(x, cr::zeros_like(x)); });
}

// Eight steps from p = (1.5, -2, 0.3) with gradients that depend on p; the parameter after each.
using MakeOpt = std::function<std::unique_ptr<O::Optimizer>(std::vector<cr::Tensor>)>;
using MakeSched = std::function<std::unique_ptr<O::LRScheduler>(O::Optimizer&)>;
void trajectory(const std::string& name, const MakeOpt& make, const MakeSched& sched = {}) {
  cr::Tensor p = cr::tensor({1.5, -2.0, 0.3}, cr::float64).requires_grad_();
  auto opt = make({p});
  auto s = sched ? sched(*opt) : nullptr;
  std::vector<double> out;
  for (int t = 0; t < 8; ++t) {
    const auto v = p.to_vector<double>();
    p.set_grad(cr::tensor({std::sin(t + 1.0) + v[0], std::cos(2.0 * t), 0.1 * t - 0.3 + v[2] * v[2]}, cr::float64));
    opt->step();
    if (s) s->step();
    for (double x : p.to_vector<double>()) out.push_back(x);
  }
  print(name, "p", cr::tensor(out, {static_cast<int64_t>(out.size())}, cr::float64));
}

void optimizers() {
  using P = std::vector<cr::Tensor>;
  auto sgd = [](O::SGDOptions o) { return [o](P p) { return std::make_unique<O::SGD>(p, o); }; };
  auto adam = [](O::AdamOptions o) { return [o](P p) { return std::make_unique<O::Adam>(p, o); }; };
  auto adamw = [](O::AdamWOptions o) { return [o](P p) { return std::make_unique<O::AdamW>(p, o); }; };
  auto rms = [](O::RMSpropOptions o) { return [o](P p) { return std::make_unique<O::RMSprop>(p, o); }; };
  auto adagrad = [](O::AdagradOptions o) { return [o](P p) { return std::make_unique<O::Adagrad>(p, o); }; };
  trajectory("adagrad", adagrad({.lr = 0.1}));
  trajectory("adagrad_decay_init", adagrad({.lr = 0.1, .lr_decay = 0.3, .weight_decay = 0.1, .initial_accumulator_value = 0.5, .eps = 1e-3}));
  trajectory("adagrad_maximize", adagrad({.lr = 0.05, .maximize = true}));
  trajectory("sgd", sgd({.lr = 0.1}));
  trajectory("sgd_momentum", sgd({.lr = 0.1, .momentum = 0.9}));
  trajectory("sgd_dampening_decay", sgd({.lr = 0.1, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.05}));
  trajectory("sgd_nesterov", sgd({.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true}));
  trajectory("sgd_maximize", sgd({.lr = 0.1, .momentum = 0.5, .maximize = true}));
  trajectory("adam", adam({.lr = 0.1}));
  trajectory("adam_amsgrad_decay", adam({.lr = 0.1, .betas = {0.8, 0.9}, .eps = 1e-6, .weight_decay = 0.1, .amsgrad = true}));
  trajectory("adam_maximize", adam({.lr = 0.05, .maximize = true}));
  trajectory("adamw", adamw({.lr = 0.1}));
  trajectory("adamw_amsgrad", adamw({.lr = 0.1, .weight_decay = 0.3, .amsgrad = true}));
  trajectory("rmsprop", rms({.lr = 0.01}));
  trajectory("rmsprop_centered_momentum", rms({.lr = 0.01, .alpha = 0.9, .eps = 1e-4, .weight_decay = 0.1, .momentum = 0.5, .centered = true}));
  trajectory("steplr", sgd({.lr = 0.1, .momentum = 0.9}), [](O::Optimizer& o) { return std::make_unique<O::StepLR>(o, 3, 0.5); });
  trajectory("exponentiallr", sgd({.lr = 0.1}), [](O::Optimizer& o) { return std::make_unique<O::ExponentialLR>(o, 0.8); });
  trajectory("cosineannealinglr", adam({.lr = 0.1}), [](O::Optimizer& o) { return std::make_unique<O::CosineAnnealingLR>(o, 5, 0.01); });
  trajectory("linearlr", adam({.lr = 0.1}), [](O::Optimizer& o) { return std::make_unique<O::LinearLR>(o, 0.25, 1.0, 4); });
  trajectory("multisteplr", sgd({.lr = 0.1, .momentum = 0.9}), [](O::Optimizer& o) { return std::make_unique<O::MultiStepLR>(o, std::vector<int64_t>{5, 2, 5}, 0.5); });
  trajectory("lambdalr", adam({.lr = 0.1}), [](O::Optimizer& o) {
    return std::make_unique<O::LambdaLR>(o, [](int64_t e) { return e < 3 ? (e + 1) / 3.0 : 0.9 * std::exp(-0.1 * static_cast<double>(e)); });
  });
  // ReduceLROnPlateau: the lr after each of a run of metrics (improvements, plateaus, the threshold)
  const std::vector<double> metrics = {1, 0.9, 0.95, 0.9, 0.89995, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9,
                                       1.0, 1.1, 1.2, 1.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  const std::vector<std::pair<std::string, O::ReduceLROnPlateauOptions>> plateaus = {
      {"plateau", {.factor = 0.5, .patience = 2}},
      {"plateau_max_cooldown", {.maximize = true, .factor = 0.5, .patience = 1, .cooldown = 2}},
      {"plateau_threshold_min_lr", {.factor = 0.1, .patience = 0, .threshold = 0.01, .min_lr = 0.003}},
      {"plateau_threshold0", {.factor = 0.5, .patience = 3, .threshold = 0}}};
  for (const auto& [name, options] : plateaus) {
    cr::Tensor p = cr::zeros({1}, cr::float64).requires_grad_();
    O::SGD opt({p}, {.lr = 0.1});
    O::ReduceLROnPlateau s(opt, options);
    std::vector<double> lrs;
    for (double m : metrics) {
      s.step(m);
      lrs.push_back(opt.lr());
    }
    print(name, "lr", cr::tensor(lrs, {static_cast<int64_t>(lrs.size())}, cr::float64));
  }
}

// Gradient clipping: the total norm returned, then the gradients after clipping, of two
// parameters with gradients g1 = (3, -4, 0.5) and g2 = (-12, 1e-3) (g1's first a NaN for "nan").
void clipping() {
  using cr::nn::utils::clip_grad_norm_;
  auto run = [](const std::string& name, const std::function<double(std::vector<cr::Tensor>&)>& clip, bool nan = false) {
    std::vector<cr::Tensor> ps = {cr::zeros({3}, cr::float64).requires_grad_(), cr::zeros({2}, cr::float64).requires_grad_()};
    ps[0].set_grad(cr::tensor({nan ? NAN : 3.0, -4.0, 0.5}, cr::float64));
    ps[1].set_grad(cr::tensor({-12.0, 1e-3}, cr::float64));
    const double total = clip(ps);
    print(name, "p", cr::cat({cr::tensor({total}, {1}, cr::float64), ps[0].grad(), ps[1].grad()}, 0));
  };
  run("clip_norm_2", [](auto& ps) { return clip_grad_norm_(ps, 5.0); });
  run("clip_norm_2_below", [](auto& ps) { return clip_grad_norm_(ps, 50.0); });
  run("clip_norm_1", [](auto& ps) { return clip_grad_norm_(ps, 2.0, 1.0); });
  run("clip_norm_inf", [](auto& ps) { return clip_grad_norm_(ps, 3.0, INFINITY); });
  run("clip_norm_3", [](auto& ps) { return clip_grad_norm_(ps, 0.5, 3.0); });
  run("clip_norm_0.5", [](auto& ps) { return clip_grad_norm_(ps, 10.0, 0.5); });
  run("clip_norm_0", [](auto& ps) { return clip_grad_norm_(ps, 0.0); });
  run("clip_norm_nan", [](auto& ps) { return clip_grad_norm_(ps, 5.0); }, true);
  run("clip_norm_nan_inf", [](auto& ps) { return clip_grad_norm_(ps, 5.0, INFINITY); }, true);
  run("clip_value", [](auto& ps) { cr::nn::utils::clip_grad_value_(ps, 3.5); return 0.0; }, true);
}

// BatchNorm1d's and BatchNorm2d's running statistics after three training batches, then the output
// in eval mode (PyTorch's momentum and momentum=None, [N, C], [N, C, L] and [N, C, H, W] inputs).
void batch_norm_modules() {
  auto run = [](const std::string& name, std::optional<double> momentum, const cr::Shape& shape) {
    const cr::nn::BatchNormOptions options{.momentum = momentum, .dtype = cr::float64};
    std::unique_ptr<cr::nn::BatchNorm> made;
    if (shape.size() == 4) made = std::make_unique<cr::nn::BatchNorm2d>(3, options);
    else made = std::make_unique<cr::nn::BatchNorm1d>(3, options);
    cr::nn::BatchNorm& bn = *made;
    auto batch = [&](int k) {
      const cr::Tensor x = cr::arange(0, static_cast<double>(shape.numel()), 1, cr::float64) * (k + 1.0);
      return (cr::sin(x) * (k + 1.0) + static_cast<double>(k)).reshape(shape);
    };
    for (int k = 0; k < 3; ++k) bn(batch(k));
    bn.eval();
    print(name, "p", cr::cat({bn.running_mean, bn.running_var, bn(batch(3)).reshape({-1})}, 0));
  };
  run("batchnorm1d_momentum0.1", 0.1, {4, 3});
  run("batchnorm1d_momentum_none", std::nullopt, {4, 3});
  run("batchnorm1d_3d_momentum0.3", 0.3, {2, 3, 5});
  run("batchnorm2d_momentum0.2", 0.2, {2, 3, 2, 3});
}

}  // namespace

int main() {
  ops();
  optimizers();
  clipping();
  batch_norm_modules();
}
