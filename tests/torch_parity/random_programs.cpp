// Runs the random programs random_programs.py generates (read from the file named by argv[1])
// and prints, per program, each output's value and each leaf's gradient and Hessian-vector
// product: `<seed> <v|g|h> <name> shape <dims...> | <numbers...>`, or `<seed> ERR <message>`.
// argv[2] is the leaves' dtype (float64 or float32), also the default dtype.
// The ops are the lambdas of the same name in random_programs.py's tables.
#include <chainrule.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

namespace cr = chainrule;
namespace F = chainrule::nn::functional;
using cr::Tensor;
using V = const Tensor&;

namespace {

cr::Dtype g_dtype = cr::float64;

// c after `update` applied to it in place (random_programs.py's view_ip)
Tensor after(Tensor c, const std::function<void(Tensor&)>& update) {
  update(c);
  return c;
}
// a.clone() with `update` applied in place
Tensor updated(V a, const std::function<void(Tensor&)>& update) { return after(a.clone(), update); }

const std::map<std::string, std::function<Tensor(V)>> kUnary = {
    {"exp", [](V x) { return cr::exp(x * 0.3); }},
    {"tanh", [](V x) { return cr::tanh(x); }},
    {"sigmoid", [](V x) { return cr::sigmoid(x); }},
    {"relu", [](V x) { return cr::relu(x); }},
    {"abs", [](V x) { return cr::abs(x); }},
    {"neg", [](V x) { return -x; }},
    {"sin", [](V x) { return cr::sin(x); }},
    {"cos", [](V x) { return cr::cos(x); }},
    {"sqrt", [](V x) { return cr::sqrt(cr::abs(x) + 0.1); }},
    {"log", [](V x) { return cr::log(cr::abs(x) + 0.5); }},
    {"softplus", [](V x) { return F::softplus(x); }},
    {"gelu", [](V x) { return F::gelu(x); }},
    {"silu", [](V x) { return F::silu(x); }},
    {"elu", [](V x) { return F::elu(x); }},
    {"selu", [](V x) { return F::selu(x); }},
    {"leaky_relu", [](V x) { return F::leaky_relu(x, 0.1); }},
    {"hardtanh", [](V x) { return F::hardtanh(x); }},
    {"mish", [](V x) { return F::mish(x); }},
    {"log_sigmoid", [](V x) { return F::log_sigmoid(x); }},
    {"softsign", [](V x) { return F::softsign(x); }},
    {"relu6", [](V x) { return F::relu6(x * 2.0 + 1.0); }},
    {"hardsigmoid", [](V x) { return F::hardsigmoid(x); }},
    {"hardswish", [](V x) { return F::hardswish(x * 2.0); }},
    {"celu", [](V x) { return F::celu(x, 0.5); }},
    {"softshrink", [](V x) { return F::softshrink(x); }},
    {"hardshrink", [](V x) { return F::hardshrink(x); }},
    {"tanhshrink", [](V x) { return F::tanhshrink(x); }},
    {"threshold", [](V x) { return F::threshold(x, 0.1, -0.5); }},
    {"glu", [](V x) { return F::glu(x, -1); }},
    {"softmin", [](V x) { return F::softmin(x, -1); }},
    {"normalize", [](V x) { return F::normalize(x * 0.5 + 1.0, 2.0, -1); }},
    {"conv2d_self",  // [N, C, H, W] or [C, H, W], with a 2x2 (or smaller) corner of itself as the kernel
     [](V x) {
       const Tensor first = x.dim() == 4 ? x.narrow(0, 0, 1) : x.unsqueeze(0);
       const Tensor k = first.narrow(-2, 0, std::min<int64_t>(2, x.size(-2))).narrow(-1, 0, std::min<int64_t>(2, x.size(-1)));
       return F::conv2d(x, k, {}, {1, 1}, {1, 1});
     }},
    {"conv2d_depthwise_self",  // each channel with a 2x2 (or smaller) corner of its own first example
     [](V x) {
       const Tensor first = (x.dim() == 4 ? x.narrow(0, 0, 1) : x.unsqueeze(0)).transpose(0, 1);
       const Tensor k = first.narrow(-2, 0, std::min<int64_t>(2, x.size(-2))).narrow(-1, 0, std::min<int64_t>(2, x.size(-1)));
       return F::conv2d(x, k, {}, {1, 1}, {1, 1}, {1, 1}, x.size(-3));
     }},
    {"max_pool1d", [](V x) { return F::max_pool1d(x, 2, 1, 1); }},
    {"upsample_nearest", [](V x) { return F::interpolate(x, {.scale_factor = {2.0}}); }},
    {"interpolate_bilinear", [](V x) { return F::interpolate(x, {.size = {3, 2}, .mode = F::InterpolateMode::bilinear}); }},
    {"interpolate_linear", [](V x) {
       return F::interpolate(x, {.size = {5}, .mode = F::InterpolateMode::linear, .align_corners = true});
     }},
    {"pad_reflect", [](V x) { return F::pad(x, {1, 2}, F::PadMode::reflect); }},
    {"pad_replicate", [](V x) { return F::pad(x, {1, 2, 1, 0}, F::PadMode::replicate); }},
    {"pad_circular", [](V x) { return F::pad(x, {2, 1}, F::PadMode::circular); }},
    {"adaptive_avg_pool2d", [](V x) { return F::adaptive_avg_pool2d(x, {2, 3}); }},
    {"adaptive_max_pool2d", [](V x) { return F::adaptive_max_pool2d(x, {2, 3}); }},
    {"max_pool2d", [](V x) { return F::max_pool2d(x, {2, 2}, F::Size2{1, 1}, {1, 1}); }},
    {"avg_pool2d", [](V x) { return F::avg_pool2d(x, {2, 2}, F::Size2{1, 2}, {1, 0}); }},
    {"prelu", [](V x) { return F::prelu(x, cr::tensor({0.3}, x.dtype())); }},
    {"erf", [](V x) { return cr::erf(x); }},
    {"expm1", [](V x) { return cr::expm1(x * 0.3); }},
    {"log1p", [](V x) { return cr::log1p(cr::abs(x)); }},
    {"tan", [](V x) { return cr::tan(cr::tanh(x)); }},
    {"asin", [](V x) { return cr::asin(cr::tanh(x) * 0.9); }},
    {"acos", [](V x) { return cr::acos(cr::tanh(x) * 0.9); }},
    {"atan", [](V x) { return cr::atan(x); }},
    {"sinh", [](V x) { return cr::sinh(x * 0.3); }},
    {"cosh", [](V x) { return cr::cosh(x * 0.3); }},
    {"asinh", [](V x) { return cr::asinh(x); }},
    {"acosh", [](V x) { return cr::acosh(cr::abs(x) + 1.1); }},
    {"atanh", [](V x) { return cr::atanh(cr::tanh(x) * 0.9); }},
    {"reciprocal", [](V x) { return cr::reciprocal(x * x + 0.5); }},
    {"rsqrt", [](V x) { return cr::rsqrt(cr::abs(x) + 0.2); }},
    {"log2", [](V x) { return cr::log2(cr::abs(x) + 0.5); }},
    {"log10", [](V x) { return cr::log10(cr::abs(x) + 0.5); }},
    {"exp2", [](V x) { return cr::exp2(x * 0.3); }},
    {"square_op", [](V x) { return cr::square(x); }},
    {"square", [](V x) { return cr::pow(x, 2); }},
    {"cube", [](V x) { return cr::pow(x, 3.0); }},
    {"pow_half", [](V x) { return cr::pow(cr::abs(x) + 0.2, 0.5); }},
    {"pow_neg", [](V x) { return cr::pow(cr::abs(x) + 0.5, -1.5); }},
    {"clamp", [](V x) { return cr::clamp(x, -0.5, 0.7); }},
    {"rsub", [](V x) { return 1.0 - x; }},
    {"rdiv", [](V x) { return 1.0 / (x * x + 1.0); }},
    {"scale", [](V x) { return x * 2.5 + 0.5; }},
    {"contiguous", [](V x) { return x.contiguous(); }},
    {"clone", [](V x) { return x.clone(); }},
    {"sign_mul", [](V x) { return cr::sign(x) * x; }},
    {"detach_mul", [](V x) { return x * x.detach(); }},
    {"to32", [](V x) { return x.to(cr::float32).to(x.dtype()); }},
    {"sum_all", [](V x) { return cr::sum(x); }},
    {"prod_all", [](V x) { return cr::prod(x); }},
    {"mean_all", [](V x) { return cr::mean(x); }},
    {"var_all", [](V x) { return cr::var(x); }},
    {"median_all", [](V x) { return cr::median(x); }},
    {"max_all", [](V x) { return cr::max(x); }},
    {"min_all", [](V x) { return cr::min(x); }},
    {"gram", [](V x) { return x.dim() >= 2 ? cr::matmul(x, x.transpose(-1, -2)) : cr::matmul(x, x); }},
    {"gram_t", [](V x) { return cr::matmul(x.transpose(-1, -2), x); }},
    {"mv", [](V x) { return cr::matmul(x, x.select(-2, 0)); }},
    {"vm", [](V x) { return cr::matmul(x.select(-1, 0), x); }},
    {"index_add",
     [](V x) {
       cr::Shape s = x.shape();
       s[0] = 2;
       return cr::index_add(x, 0, cr::tensor({0, 0}, cr::int64), x.narrow(0, 0, 1).expand(s) * 2.0);
     }},
    {"scatter_add", [](V x) { return cr::scatter_add(x, -1, cr::zeros(x.shape(), cr::int64), x * x); }},
    {"flip", [](V x) { return cr::flip(x, {0, -1}); }},
    {"roll", [](V x) { return cr::roll(x, {1}, {-1}); }},
    {"roll_flat", [](V x) { return cr::roll(x, {-2}); }},
    {"repeat",
     [](V x) {
       cr::Shape r(std::vector<int64_t>(static_cast<size_t>(x.dim()) + 1, 1));
       r[0] = 2;
       return cr::repeat(x, r);
     }},
    {"tril", [](V x) { return cr::tril(x); }},
    {"triu1", [](V x) { return cr::triu(x, 1); }},
    {"masked_fill", [](V x) { return cr::masked_fill(x, x > 0.3, -0.5); }},
    {"chunk_first", [](V x) { return cr::chunk(x, 2, -1)[0]; }},
    {"split_last", [](V x) { return cr::split(x, 2, 0).back(); }},
    {"unbind_last", [](V x) { return cr::unbind(x, 0).back(); }},
    {"squeeze_all", [](V x) { return x.squeeze(); }},
    {"sum_dims", [](V x) { return cr::sum(x, cr::Shape{0, -1}, true); }},
    {"mean_dims", [](V x) { return cr::mean(x, cr::Shape{0, -1}); }},
    {"var_dims", [](V x) { return cr::var(x, cr::Shape{0, -1}); }},
    {"ip_scalars", [](V x) { return after(x * 1.0, [](Tensor& c) { c.mul_(2.5).add_(0.5).div_(-4.0).sub_(1.0); }); }},
    {"ip_fill_view", [](V x) { return after(x * 1.0, [](Tensor& c) { c.select(-1, 0).fill_(0.5); }); }},
    {"ip_zero_view", [](V x) { return after(x * 1.0, [](Tensor& c) { c.narrow(0, 0, 1).zero_(); }); }},
    {"ip_unsqueeze_view", [](V x) { return after(x * 1.0, [](Tensor& c) { c.select(-1, 0).unsqueeze(0).mul_(2.5); }); }},
    {"ip_squeeze_view", [](V x) { return after(x * 1.0, [](Tensor& c) { c.narrow(-1, 0, 1).squeeze(-1).add_(1.5); }); }},
};

Tensor probability(V x) { return cr::sigmoid(cr::tanh(x)); }

const std::map<std::string, std::function<Tensor(V, V)>> kBinary = {
    {"add", [](V a, V b) { return a + b; }},
    {"sub", [](V a, V b) { return a - b; }},
    {"mul", [](V a, V b) { return a * b; }},
    {"div", [](V a, V b) { return a / (b * b + 0.5); }},
    {"pow", [](V a, V b) { return cr::pow(cr::abs(a) + 0.5, b); }},
    {"maximum", [](V a, V b) { return cr::maximum(a, b); }},
    {"atan2", [](V a, V b) { return cr::atan2(a, b * b + 0.5); }},
    {"minimum", [](V a, V b) { return cr::minimum(a, b); }},
    {"where", [](V a, V b) { return cr::where(a > b, a, b * 2.0); }},
    {"where3", [](V a, V b) { return cr::where(a > 0.0, b, a * 3.0); }},
    {"matmul", [](V a, V b) { return cr::matmul(a, b); }},
    {"linear", [](V a, V b) { return cr::linear(a, b); }},
    {"linear_bias", [](V a, V b) { return cr::linear(a, b, b.select(1, 0)); }},
    {"mse", [](V a, V b) { return F::mse_loss(a, b); }},
    {"bce_logits", [](V a, V b) { return F::binary_cross_entropy_with_logits(a, cr::sigmoid(b), F::Reduction::none); }},
    {"mse_sum", [](V a, V b) { return F::mse_loss(a, b, F::Reduction::sum); }},
    {"l1", [](V a, V b) { return F::l1_loss(a, b); }},
    {"l1_none", [](V a, V b) { return F::l1_loss(a, b, F::Reduction::none); }},
    {"smooth_l1", [](V a, V b) { return F::smooth_l1_loss(a, b, F::Reduction::none, 0.5); }},
    {"huber", [](V a, V b) { return F::huber_loss(a, b, F::Reduction::sum, 0.7); }},
    {"bce", [](V a, V b) { return F::binary_cross_entropy(probability(a), probability(b), F::Reduction::none); }},
    {"bce_mean", [](V a, V b) { return F::binary_cross_entropy(probability(a), probability(b)); }},
    {"kl_div", [](V a, V b) { return F::kl_div(a, probability(b), F::Reduction::none); }},
    {"kl_div_log", [](V a, V b) { return F::kl_div(a, b, F::Reduction::batchmean, true); }},
    {"margin_ranking", [](V a, V b) { return F::margin_ranking_loss(a, b, cr::tanh(b), 0.3, F::Reduction::none); }},
    {"hinge_embedding", [](V a, V b) { return F::hinge_embedding_loss(a, cr::sign(b), 1.0, F::Reduction::none); }},
    {"gaussian_nll", [](V a, V b) { return F::gaussian_nll_loss(a, b, b * b, false, 1e-6, F::Reduction::none); }},
    {"poisson_nll", [](V a, V b) { return F::poisson_nll_loss(a, cr::abs(b) + 0.5, true, true, 1e-8, F::Reduction::none); }},
    {"cosine_similarity", [](V a, V b) { return F::cosine_similarity(a, b, -1); }},
    {"pairwise_distance", [](V a, V b) { return F::pairwise_distance(a, b); }},
    {"cat0", [](V a, V b) { return cr::cat({a, b}, 0); }},
    {"cat_last", [](V a, V b) { return cr::cat({a, b}, -1); }},
    {"stack0", [](V a, V b) { return cr::stack({a, b}, 0); }},
    {"stack_last", [](V a, V b) { return cr::stack({a, b}, -1); }},
    {"ip_add", [](V a, V b) { return updated(a, [&](Tensor& c) { c.add_(b); }); }},
    {"ip_add_alpha", [](V a, V b) { return updated(a, [&](Tensor& c) { c.add_(b, -1.5); }); }},
    {"ip_add_first",  // b's first element, broadcast over a
     [](V a, V b) {
       return updated(a, [&](Tensor& c) {
         c.add_(b.numel() == 0 ? b : b.reshape({-1}).narrow(0, 0, 1).reshape(std::vector<int64_t>(a.shape().size(), 1)));
       });
     }},
    {"ip_sub", [](V a, V b) { return updated(a, [&](Tensor& c) { c.sub_(b); }); }},
    {"ip_mul", [](V a, V b) { return updated(a, [&](Tensor& c) { c.mul_(b); }); }},
    {"ip_mul_t",  // into a non-leaf result, from a transposed operand
     [](V a, V b) { return after(a * 1.0, [&](Tensor& c) { c.mul_(b.dim() == 2 ? b.t() : b); }); }},
    {"ip_div", [](V a, V b) { return updated(a, [&](Tensor& c) { c.div_(b * b + 0.5); }); }},
    {"ip_copy", [](V a, V b) { return updated(a, [&](Tensor& c) { c.copy_(b); }); }},
    {"view_ip_mul",  // through a view
     [](V a, V b) { return after(a * 1.0, [&](Tensor& c) { c.narrow(0, 0, 1).mul_(b); }); }},
    {"view_ip_copy",  // into a buffer that needs no gradient, through a view
     [](V a, V b) { return after(cr::zeros(a.shape()), [&](Tensor& c) { c.select(-1, -1).copy_(b); }); }},
    {"stale_view",  // a view taken before an in-place op on its base
     [](V a, V b) {
       Tensor c = a * 1.0;
       const Tensor v = c.unsqueeze(0).transpose(0, -1);
       c.mul_(b);
       return v;
     }},
    {"detach_ip",  // recorded on a detach()ed tensor
     [](V a, V b) { return after((a * 1.0).detach(), [&](Tensor& d) { d.mul_(b); }); }},
    {"detach_view_ip",  // and on a view of one
     [](V a, V b) { return after((a * 1.0).detach().narrow(0, 0, 1), [&](Tensor& v) { v.add_(b); }); }},
    {"view_chain_ip",  // through a chain of views, squeeze/unsqueeze of non-contiguous ones included
     [](V a, V b) {
       return after(a * 1.0, [&](Tensor& c) { c.transpose(0, -1).unsqueeze(0).narrow(-1, 0, 1).squeeze(0).mul_(cr::sum(b)); });
     }},
    {"view_then_base_ip",  // a view written in place, then its base
     [](V a, V b) {
       Tensor c = a * 1.0;
       Tensor v = c.narrow(0, 0, 1);
       v.mul_(2.0);
       c.mul_(b);
       return v;
     }},
};

const std::map<std::string, std::function<Tensor(V, int64_t, bool)>> kReduce = {
    {"sum", [](V x, int64_t d, bool k) { return cr::sum(x, d, k); }},
    {"mean", [](V x, int64_t d, bool k) { return cr::mean(x, d, k); }},
    {"var", [](V x, int64_t d, bool k) { return cr::var(x, cr::Shape{d}, 1, k); }},
    {"var0", [](V x, int64_t d, bool k) { return cr::var(x, cr::Shape{d}, 0, k); }},
    {"amax", [](V x, int64_t d, bool k) { return cr::amax(x, cr::Shape{d}, k); }},
    {"amin", [](V x, int64_t d, bool k) { return cr::amin(x, cr::Shape{d}, k); }},
    {"max", [](V x, int64_t d, bool k) { return cr::max(x, d, k).values; }},
    {"min", [](V x, int64_t d, bool k) { return cr::min(x, d, k).values; }},
    {"logsumexp", [](V x, int64_t d, bool k) { return cr::logsumexp(x, d, k); }},
    {"std", [](V x, int64_t d, bool k) { return cr::std(x, cr::Shape{d}, 1, k); }},
    {"norm", [](V x, int64_t d, bool k) { return cr::norm(x, 2, {d}, k); }},
    {"norm1", [](V x, int64_t d, bool k) { return cr::norm(x, 1, {d}, k); }},
    {"norm3", [](V x, int64_t d, bool k) { return cr::norm(x, 3, {d}, k); }},
    {"norm_inf", [](V x, int64_t d, bool k) { return cr::norm(x, INFINITY, {d}, k); }},
    {"sort", [](V x, int64_t d, bool) { return cr::sort(x, d).values; }},
    {"sort_descending", [](V x, int64_t d, bool) { return cr::sort(x, d, true).values; }},
    {"topk2", [](V x, int64_t d, bool) { return cr::topk(x, std::min<int64_t>(2, x.size(d)), d).values; }},
    {"median", [](V x, int64_t d, bool k) { return cr::median(x, d, k).values; }},
    {"cumsum", [](V x, int64_t d, bool) { return cr::cumsum(x, d); }},
    {"cumprod", [](V x, int64_t d, bool) { return cr::cumprod(x, d); }},
    {"prod", [](V x, int64_t d, bool k) { return cr::prod(x, d, k); }},
    {"softmax", [](V x, int64_t d, bool) { return cr::softmax(x, d); }},
    {"log_softmax", [](V x, int64_t d, bool) { return cr::log_softmax(x, d); }},
};

Tensor int64_tensor(const std::vector<int64_t>& values, const cr::Shape& shape) {
  return cr::tensor(std::vector<double>(values.begin(), values.end()), shape, cr::int64);
}

// The shape, indexing and loss ops of random_programs.py's shape_op, with its integer arguments.
Tensor shape_op(const std::string& op, V x, const std::vector<int64_t>& a) {
  const auto shape_at = [&](size_t i) { return cr::Shape(a.begin() + static_cast<long>(i) + 1, a.begin() + static_cast<long>(i) + 1 + a[i]); };
  if (op == "reshape") return x.reshape(shape_at(0));
  if (op == "permute") return x.permute(shape_at(0));
  if (op == "unsqueeze") return x.unsqueeze(a[0]);
  if (op == "expand") return x.expand(shape_at(0));
  if (op == "transpose") return x.transpose(a[0], a[1]);
  if (op == "squeeze") return x.squeeze(a[0]);
  if (op == "narrow") return x.narrow(a[0], a[1], a[2]);
  if (op == "slice") return x.slice(a[0], a[1], a[2], a[3]);
  if (op == "select") return x.select(a[0], a[1]);
  if (op == "flatten") return x.flatten(a[0], a[1]);
  if (op == "t") return x.t();
  if (op == "gather") return cr::gather(x, a[0], int64_tensor({a.begin() + 2 + a[1], a.end()}, shape_at(1)));
  if (op == "index_select") return cr::index_select(x, a[0], int64_tensor({a.begin() + 2, a.end()}, {a[1]}));
  if (op == "cross_entropy" || op == "nll_loss") {
    const F::Reduction reductions[] = {F::Reduction::mean, F::Reduction::sum, F::Reduction::none};
    const Tensor target = int64_tensor({a.begin() + 5, a.end()}, {a[4]});
    const Tensor w = a[2] ? cr::arange(0, static_cast<double>(x.size(1)), 1, x.dtype()) * 0.25 + 0.5 : Tensor();
    if (op == "cross_entropy")
      return F::cross_entropy(x, target, reductions[a[0]], static_cast<double>(a[1]) / 10, w, a[3]);
    return F::nll_loss(cr::log_softmax(x, 1), target, reductions[a[0]], w, a[3]);
  }
  if (op == "layer_norm") {
    const cr::Shape shape(x.shape().end() - a[0], x.shape().end());
    const Tensor ar = cr::arange(0, static_cast<double>(shape.numel()), 1, x.dtype()).reshape(shape);
    return a[1] ? F::layer_norm(x, shape, ar * 0.25 + 0.5, ar * 0.1) : F::layer_norm(x, shape);
  }
  if (op == "group_norm") {
    const Tensor ar = cr::arange(0, static_cast<double>(x.size(1)), 1, x.dtype());
    return a[1] ? F::group_norm(x, a[0], ar * 0.25 + 0.5, ar * 0.1) : F::group_norm(x, a[0]);
  }
  if (op == "pad") return F::pad(x, {a.begin() + 1, a.end()}, F::PadMode::constant, 0.5);
  if (op == "batch_norm") {
    const Tensor ar = cr::arange(0, static_cast<double>(x.size(1)), 1, x.dtype());
    return F::batch_norm(x, ar * 0.1, ar * 0.5 + 1.0, a[1] ? ar * 0.25 + 0.5 : Tensor(), a[1] ? ar * 0.1 : Tensor(), a[0] != 0);
  }
  throw std::runtime_error("random_programs: unknown op " + op);
}

Tensor weights(V t, double salt) {
  std::vector<double> w;
  for (int64_t i = 0; i < t.numel(); ++i) w.push_back(std::sin(1.0 + static_cast<double>(i) * 0.7 + salt));
  return cr::tensor(w, t.shape(), g_dtype);
}

void print(long seed, const char* kind, const std::string& name, V t) {
  std::printf("%ld %s %s %s", seed, kind, name.c_str(), cr::dtype_name(t.dtype()).data());
  for (auto d : t.shape()) std::printf(" %ld", static_cast<long>(d));
  std::printf(" |");
  for (double v : t.to_vector<double>()) std::printf(" %.17g", v);
  std::printf("\n");
}

// sum_i sum(terms_i * weights(terms_i, salt + i)) over the defined terms (undefined if none)
Tensor weighted_sum(const std::vector<Tensor>& terms, double salt) {
  Tensor total;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (!terms[i].defined() || !terms[i].requires_grad()) continue;
    const Tensor term = cr::sum(terms[i] * weights(terms[i], salt + static_cast<double>(i)));
    total = total.defined() ? total + term : term;
  }
  return total;
}

void run(long seed, const std::vector<std::string>& lines) {
  std::map<std::string, Tensor> vals;
  std::vector<std::string> leaves, outs;
  for (const auto& line : lines) {
    std::istringstream in(line);
    std::string kind, name, op, a, b;
    in >> kind;
    if (kind == "O") {
      while (in >> name) outs.push_back(name);
      continue;
    }
    in >> name;
    if (kind == "L" || kind == "K" || kind == "T" || kind == "D" || kind == "I") {  // as random_programs.py says
      size_t nd = 0;
      in >> nd;
      std::vector<int64_t> dims(nd);
      for (auto& d : dims) in >> d;
      const cr::Shape shape(dims);
      std::vector<double> v(static_cast<size_t>(shape.numel()));
      for (auto& x : v) in >> x;
      Tensor t = cr::tensor(v, shape, kind == "D" ? cr::float64 : kind == "I" ? cr::int64 : g_dtype);
      if (kind == "T") t = t.transpose(0, 1);
      if (kind != "K" && kind != "I") {
        t.requires_grad_();
        leaves.push_back(name);
      }
      vals[name] = t;
    } else if (kind == "U") {
      in >> op >> a;
      vals[name] = kUnary.at(op)(vals.at(a));
    } else if (kind == "B") {
      in >> op >> a >> b;
      vals[name] = kBinary.at(op)(vals.at(a), vals.at(b));
    } else if (kind == "R") {
      int64_t d = 0;
      int keepdim = 0;
      in >> op >> a >> d >> keepdim;
      vals[name] = kReduce.at(op)(vals.at(a), d, keepdim != 0);
    } else if (kind == "S") {
      in >> op >> a;
      std::vector<int64_t> args;
      for (int64_t v = 0; in >> v;) args.push_back(v);
      vals[name] = shape_op(op, vals.at(a), args);
    }
  }
  std::vector<Tensor> results, ls;
  for (const auto& o : outs) {
    print(seed, "v", o, vals.at(o));
    results.push_back(vals.at(o));
  }
  for (const auto& l : leaves) ls.push_back(vals.at(l));
  std::vector<Tensor> gs(ls.size()), hs(ls.size());
  const Tensor loss = weighted_sum(results, 0.0);
  if (loss.defined() && !ls.empty()) {
    gs = cr::autograd::grad({loss}, ls, {}, false, true, true);
    const Tensor hvp = weighted_sum(gs, 3.0);
    if (hvp.defined()) hs = cr::autograd::grad({hvp}, ls, {}, false, false, true);
  }
  for (size_t j = 0; j < ls.size(); ++j) {
    print(seed, "g", leaves[j], gs[j].defined() ? gs[j] : cr::zeros_like(ls[j]));
    print(seed, "h", leaves[j], hs[j].defined() ? hs[j] : cr::zeros_like(ls[j]));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[2]) != "float64" && std::string(argv[2]) != "float32")) {
    std::fprintf(stderr, "usage: %s PROGRAMS_FILE float64|float32 (written by random_programs.py)\n", argv[0]);
    return 2;
  }
  if (std::string(argv[2]) == "float32") g_dtype = cr::float32;
  cr::set_default_dtype(g_dtype);  // an int64 constant's floating results take it
  std::ifstream file(argv[1]);
  std::string line;
  long seed = -1;
  std::vector<std::string> lines;
  const auto finish = [&] {
    if (seed < 0) return;
    try {
      run(seed, lines);
    } catch (const std::exception& e) {
      std::string m = e.what();
      for (auto& c : m)
        if (c == '\n') c = ' ';
      std::printf("%ld ERR %s\n", seed, m.c_str());
    }
    lines.clear();
  };
  while (std::getline(file, line)) {
    if (line.rfind("P ", 0) == 0) {
      finish();
      seed = std::stol(line.substr(2));
    } else {
      lines.push_back(line);
    }
  }
  finish();
}
