/// \file
/// nn::functional: activations and losses as functions. Every one is finite in value and
/// gradient for inputs up to +-1e4 in float32 and float64.
#pragma once

#include "../autograd/autograd.hpp"

#include <array>

namespace chainrule::nn::functional {

// ---------------------------------------------------------------- activations
using chainrule::relu;
using chainrule::sigmoid;
using chainrule::softmax;
using chainrule::log_softmax;
using chainrule::tanh;
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);  ///< slope at 0 is negative_slope
Tensor elu(const Tensor& x, double alpha = 1.0);  ///< x for x > 0, alpha (e^x - 1) otherwise
Tensor selu(const Tensor& x);  ///< scale * elu(x, alpha) with the self-normalising constants (1.0507, 1.6733)
/// X Phi(x) (exact with erf, or PyTorch's tanh approximation).
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor silu(const Tensor& x);  ///< x * sigmoid(x), also known as swish
/// Log(1 + e^(beta x)) / beta; x itself where beta x > threshold.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor mish(const Tensor& x);  ///< x tanh(softplus(x))
/// x clamped to [min_val, max_val]; the gradient is 1 strictly inside, 0 on the boundary and
/// outside (PyTorch's: hardtanh(x, 0, 6) is ReLU6, 0 at 0 as relu), unlike clamp's.
Tensor hardtanh(const Tensor& x, double min_val = -1.0, double max_val = 1.0);
Tensor softsign(const Tensor& x);  ///< x / (1 + |x|)
Tensor log_sigmoid(const Tensor& x);  ///< log(sigmoid(x)) = -softplus(-x), finite for any x
Tensor relu6(const Tensor& x);  ///< hardtanh(x, 0, 6): min(max(x, 0), 6)
Tensor hardsigmoid(const Tensor& x);  ///< relu6(x + 3) / 6; gradient 1/6 strictly between -3 and 3
/// x relu6(x + 3) / 6, with PyTorch's derivative: 0 below -3, x / 3 + 1/2 from -3 to 3 (both
/// included), 1 above 3; its second derivative 1/3 strictly between -3 and 3, else 0. (PyTorch
/// 1.13's vectorised CPU loop gives 1 at 3 itself, its scalar loop 1.5.)
Tensor hardswish(const Tensor& x);
/// x for x >= 0, alpha (e^(x / alpha) - 1) below (alpha != 0); derivatives at 0 the linear side's.
Tensor celu(const Tensor& x, double alpha = 1.0);
/// x - lambd above lambd, x + lambd below -lambd, 0 between (both ends included; lambd >= 0).
/// A NaN passes (PyTorch 1.13's makes it 0).
Tensor softshrink(const Tensor& x, double lambd = 0.5);
Tensor hardshrink(const Tensor& x, double lambd = 0.5);  ///< x where |x| > lambd, else 0
Tensor tanhshrink(const Tensor& x);  ///< x - tanh(x)
/// x where x > threshold, else value (gradient 0 there).
Tensor threshold(const Tensor& x, double threshold, double value);
/// a * sigmoid(b) for the two halves a, b of x along dim (of even size).
Tensor glu(const Tensor& x, int64_t dim = -1);
Tensor softmin(const Tensor& x, int64_t dim);  ///< softmax(-x, dim)
/// x where x > 0, else weight * x; weight has 1 element or one per channel (dim 1 of x).
Tensor prelu(const Tensor& x, const Tensor& weight);

// ---------------------------------------------------------------- regularisation
/// Inverted dropout: while training, each element is zeroed with probability p and the others
/// are scaled by 1 / (1 - p), so the expected value is unchanged; the gradient is the same mask.
/// Not training, p = 0 or an empty x: x itself. p = 1: x * 0. The mask is drawn from `gen`
/// (default: the global generator), so a seed repeats it.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* gen = nullptr);

// ---------------------------------------------------------------- lookup
/// Rows of weight [num_embeddings, embedding_dim] picked by int64 indices of any shape: the
/// result is [indices..., embedding_dim]. Rows picked twice add their gradients; the row
/// padding_idx (negative counts from the end) gets none. As PyTorch's (without max_norm).
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx = std::nullopt);

// ---------------------------------------------------------------- normalisation
/// Layer normalisation: (x - mean) / sqrt(var + eps) over the last normalized_shape.size()
/// dimensions, which must equal normalized_shape (the variance biased, dividing by N), then
/// * weight + bias where given (each of normalized_shape and x's dtype). As PyTorch's.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// Group normalisation of x [N, C, ...]: the C channels split into num_groups groups of
/// consecutive channels (num_groups divides C), each example's group normalised over its
/// channels and every dimension after them (biased variance), then * weight + bias per channel
/// where given (each [C], x's dtype). num_groups = 1 is layer_norm over all but N; num_groups = C
/// is instance normalisation. As PyTorch's.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
/// Batch normalisation of x [N, C, ...] per channel C, then * weight + bias where given (each
/// [C], x's dtype). While training: the batch's mean and biased variance over every dimension
/// but 1, and running_mean / running_var (if given) move in place towards the batch's mean and
/// unbiased variance: r = (1 - momentum) r + momentum b. Otherwise the running statistics
/// normalise, and are needed. As PyTorch's.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), bool training = false,
                  double momentum = 0.1, double eps = 1e-5);

// ---------------------------------------------------------------- losses
/// How a loss combines the per-element losses (PyTorch's `reduction`).
enum class Reduction {
  mean,  ///< the average over elements (over examples for cross_entropy and nll_loss)
  sum,   ///< the sum
  none,  ///< one loss per element (per example for cross_entropy and nll_loss)
  batchmean,  ///< kl_div only: the sum divided by the batch size (input.size(0)), the true KL divergence per example
};

/// (input - target)^2, reduced; the seed's sum of squares is mse_loss(..., Reduction::sum).
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// |input - target|, reduced.
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target), reduced.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
                      double beta = 1.0);
/// 0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere (d = input - target), reduced.
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
                  double delta = 1.0);
/// input holds probabilities in [0, 1]; logs are clamped at -100 as PyTorch does.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// Stable for any logit: its gradient is exactly sigmoid(x) - y (times 1/N for mean).
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        Reduction reduction = Reduction::mean);
/// logits [N, C] and int64 class targets [N]; label_smoothing in [0, 1). `weight` (optional, [C])
/// scales each class's loss, and the mean divides by the sum of the weights used, as PyTorch's;
/// a target equal to ignore_index (PyTorch's default, -100) adds nothing to the loss or the mean's
/// count, and its logits get no gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::mean,
                     double label_smoothing = 0.0, const Tensor& weight = Tensor(), int64_t ignore_index = -100);
/// log-probabilities [N, C] and int64 targets [N]; `weight` and `ignore_index` as cross_entropy's.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction = Reduction::mean,
                const Tensor& weight = Tensor(), int64_t ignore_index = -100);


/// KL divergence sum p (log p - input), input holding log-probabilities and target probabilities
/// p (log-probabilities with log_target); a zero p adds 0. As PyTorch's, `mean` averages over
/// every element; `batchmean` (the KL divergence per example) divides the sum by input.size(0).
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
              bool log_target = false);
/// max(0, -y (x1 - x2) + margin), y = 1 (x1 should rank higher) or -1; shapes equal.
Tensor margin_ranking_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin = 0.0,
                           Reduction reduction = Reduction::mean);
/// x where y == 1, max(0, margin - x) where y == -1 (x a distance, y the labels).
Tensor hinge_embedding_loss(const Tensor& input, const Tensor& target, double margin = 1.0,
                            Reduction reduction = Reduction::mean);
/// log(1 + e^(-y x)), y = 1 or -1 (written softplus(-y x): finite for any x).
Tensor soft_margin_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// Multi-label one-versus-all loss of scores [N, C] and 0/1 targets [N, C]: per example the mean over
/// classes of -(y log sigmoid(x) + (1 - y) log sigmoid(-x)), each class scaled by weight ([C]) if given.
Tensor multilabel_soft_margin_loss(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                                   Reduction reduction = Reduction::mean);
/// Multi-class hinge loss of scores [N, C] and int64 classes [N]: per example
/// sum over i != y of w_y max(0, margin - x_y + x_i)^p / C (p 1 or 2; weight [C] optional).
Tensor multi_margin_loss(const Tensor& input, const Tensor& target, int p = 1, double margin = 1.0,
                         const Tensor& weight = Tensor(), Reduction reduction = Reduction::mean);
/// 1 - cos(x1, x2) where y == 1, max(0, cos(x1, x2) - margin) where y == -1; x1, x2 [N, D] (or [D]
/// with a 0-d y), the cosine over D with 1e-12 added to each squared norm, as PyTorch.
Tensor cosine_embedding_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin = 0.0,
                             Reduction reduction = Reduction::mean);
/// max(0, margin + d(anchor, positive) - d(anchor, negative)), d the pairwise_distance (p, eps);
/// with swap, d(anchor, negative) is replaced by d(positive, negative) where that is smaller.
Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative, double margin = 1.0,
                           double p = 2.0, double eps = 1e-6, bool swap = false, Reduction reduction = Reduction::mean);
/// Negative log-likelihood of target under N(input, var): 0.5 (log v + (input - target)^2 / v)
/// (+ 0.5 log 2 pi with full), v = var clamped at eps. var has input's shape, or one dimension
/// fewer or a last dimension of 1 (one variance shared by the last dimension); a negative var is
/// an Error. As PyTorch, the clamp passes the gradient through unchanged.
Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, const Tensor& var, bool full = false,
                         double eps = 1e-6, Reduction reduction = Reduction::mean);
/// Negative log-likelihood of counts target under Poisson(rate): rate = e^input with log_input
/// (loss e^input - target input), else input (loss input - target log(input + eps)); full adds
/// Stirling's target log target - target + 0.5 log(2 pi target) where target > 1.
Tensor poisson_nll_loss(const Tensor& input, const Tensor& target, bool log_input = true, bool full = false,
                        double eps = 1e-8, Reduction reduction = Reduction::mean);

/// x divided by its p-norm along dim, the norm clamped at eps (a zero vector stays zero).
Tensor normalize(const Tensor& x, double p = 2.0, int64_t dim = 1, double eps = 1e-12);
/// The cosine of the angle between x1 and x2 along dim (shapes broadcast): each divided by its
/// 2-norm (its square clamped at eps^2, the clamp passing the gradient through, as PyTorch's), then
/// multiplied and summed.
Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int64_t dim = 1, double eps = 1e-8);
/// The p-norm of x1 - x2 + eps over the last dimension.
Tensor pairwise_distance(const Tensor& x1, const Tensor& x2, double p = 2.0, double eps = 1e-6, bool keepdim = false);
/// int64 indices (any shape) to one-hot rows: shape [..., num_classes], int64 0/1; num_classes -1
/// takes the largest index + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);


// ---------------------------------------------------------------- convolution and pooling

/// Height and width: of a kernel, a stride, a padding or a dilation.
using Size2 = std::array<int64_t, 2>;
/// "[h, w]", as errors and module printouts show a Size2.
std::string to_string(Size2 s);
/// How pad fills the new positions.
enum class PadMode {
  constant,   ///< with `value`
  reflect,    ///< with the input mirrored at its edges, the edge not repeated: 3 2 | 1 2 3 | 2 1 (pad < size)
  replicate,  ///< with the edge element: 1 1 | 1 2 3 | 3 3
  circular,   ///< as if the input repeated: 2 3 | 1 2 3 | 1 2
};
/// "constant", "reflect", "replicate" or "circular", as errors show a PadMode.
std::string to_string(PadMode mode);
/// x padded as torch.nn.functional.pad: `pad` holds (before, after) pairs for the last dimension,
/// then the one before it, and so on (at most x.dim() pairs): {1, 2} adds one column in front
/// and two after, {1, 1, 2, 2} also two rows above and below. A negative amount removes that
/// many elements. Every mode pads any dimension (PyTorch's reflect, replicate and circular only
/// the last 1 to 3 of a batch); the result is made of narrow, cat and index_select, so every
/// order of derivative follows (a position copied twice adds both gradients).
Tensor pad(const Tensor& x, const std::vector<int64_t>& pad, PadMode mode = PadMode::constant, double value = 0.0);

/// The sliding blocks of x [N, C, H, W] as columns, as torch.nn.functional.unfold (im2col):
/// [N, C kh kw, L], a row per (channel, kernel row, kernel column), a column per block position
/// (row-major); padding adds zeros. Its gradient is the adjoint (col2im), whose gradient is
/// unfold again, so every order of derivative follows.
Tensor unfold(const Tensor& x, Size2 kernel_size, Size2 dilation = {1, 1}, Size2 padding = {0, 0},
              Size2 stride = {1, 1});
/// 2-d convolution (cross-correlation, as PyTorch's) of x [N, C, H, W] (or [C, H, W]) with weight
/// [O, C / groups, kh, kw] and bias [O] (optional): [N, O, H', W'], H' = (H + 2 ph - dh (kh - 1) - 1) / sh + 1.
/// With groups G, the channels split into G groups, each convolved with O / G of the filters
/// (G = C: depthwise). Computed as unfold and one batched matmul.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Size2 stride = {1, 1},
              Size2 padding = {0, 0}, Size2 dilation = {1, 1}, int64_t groups = 1);
/// 1-d convolution of x [N, C, L] (or [C, L]) with weight [O, C / groups, k]: conv2d over a height of 1.
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
/// The largest element of each kernel_size window of x [N, C, H, W] (or [C, H, W]); stride is
/// kernel_size when not given; padding (at most half the kernel) counts as -inf. The output has
/// floor((H + 2 p - k) / s) + 1 rows; with ceil_mode, ceil(...) + 1, keeping a last window that
/// overhangs the input as long as it starts inside the input or its first padding (PyTorch's
/// rule). The gradient goes to the first maximum of a window, as PyTorch's.
Tensor max_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride = std::nullopt,
                  Size2 padding = {0, 0}, bool ceil_mode = false);
/// The mean of each window (ceil_mode as max_pool2d's): its sum divided by its positions in the
/// padded input (count_include_pad, PyTorch's default: the padding's zeros count) or in the
/// input alone; ceil_mode's overhang past the padding never counts.
Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride = std::nullopt,
                  Size2 padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true);
/// max_pool2d along the last dim of x [N, C, L] (or [C, L]).
Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride = std::nullopt,
                  int64_t padding = 0, bool ceil_mode = false);
/// avg_pool2d along the last dim of x [N, C, L] (or [C, L]).
Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride = std::nullopt,
                  int64_t padding = 0, bool ceil_mode = false, bool count_include_pad = true);
/// The means of output_size windows over the height and width of x [N, C, H, W] (or [C, H, W]),
/// as torch.nn.functional.adaptive_avg_pool2d: output row i averages input rows floor(i H / oh)
/// to ceil((i + 1) H / oh) - 1 (likewise columns). {1, 1} is global average pooling.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);
/// adaptive_avg_pool2d along the last dim of x [N, C, L] (or [C, L]).
Tensor adaptive_avg_pool1d(const Tensor& x, int64_t output_size);
/// The largest element of each of adaptive_avg_pool2d's windows, as
/// torch.nn.functional.adaptive_max_pool2d; the gradient goes to a window's first maximum
/// (row-major), as PyTorch's. {1, 1} is global max pooling.
Tensor adaptive_max_pool2d(const Tensor& x, Size2 output_size);
/// adaptive_max_pool2d along the last dim of x [N, C, L] (or [C, L]).
Tensor adaptive_max_pool1d(const Tensor& x, int64_t output_size);


// ---------------------------------------------------------------- interpolation

/// How interpolate computes a new position.
enum class InterpolateMode {
  nearest,   ///< copies the input element at floor(i s), s = 1 / scale_factor when given, else in / out
  linear,    ///< [N, C, L] only: mixes the two input elements around the new position
  bilinear,  ///< [N, C, H, W] only: linear along the height, then along the width
};
/// "nearest", "linear" or "bilinear", as errors and Upsample's printout show an InterpolateMode.
std::string to_string(InterpolateMode mode);
/// interpolate's and Upsample's arguments: exactly one of size and scale_factor, each one value
/// for every resized dimension or one per dimension.
struct InterpolateOptions {
  std::vector<int64_t> size = {};  ///< the output's length, or height and width
  std::vector<double> scale_factor = {};  ///< the output's length is floor(length * scale_factor)
  InterpolateMode mode = InterpolateMode::nearest;  ///< how new positions are computed
  /// Linear modes only: the corner elements of input and output are aligned, so the new
  /// positions are i (in - 1) / (out - 1); otherwise pixel centres are, as PyTorch's default.
  bool align_corners = false;
};
/// x [N, C, L] or [N, C, H, W] resized along its last one or two dimensions, as
/// torch.nn.functional.interpolate (with PyTorch's source positions: a scale_factor sets the step
/// between them, not in / out). Nearest is index_select of the source positions; the linear
/// modes mix the two neighbours in one loop whose gradient is its adjoint (index_add), itself
/// differentiable, so every order of derivative follows; the cost is the output's size.
Tensor interpolate(const Tensor& x, const InterpolateOptions& options);

}  // namespace chainrule::nn::functional
