#include "init.hpp"

#include <algorithm>
#include <cmath>

namespace chainrule::nn::init {

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  if (t.dim() < 2)
    fail("init: fan in and fan out need a tensor with at least 2 dimensions, got {}", describe(t));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(const std::string& nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "sigmoid" || nonlinearity == "identity") return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + param * param));
  if (nonlinearity == "selu") return 0.75;
  fail("calculate_gain: unknown nonlinearity '{}' (known: linear, sigmoid, tanh, relu, leaky_relu, selu)",
       nonlinearity);
}

namespace {
Tensor& assign(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
  return t;
}

// t filled with draw(shape) of the whole tensor, computed in float64, but drawn kPiece elements
// at a time into consecutive pieces of t (in its logical order, as one draw fills it), so that
// no float64 tensor of t's size is made: three 8 MiB temporaries (the draw, scaled, shifted) for
// a 1024 x 1024 float32 weight, which outlived the initialisation on the pool's lists. Same
// generator calls in the same order, same arithmetic per element: the values of one draw.
template <class Draw>
Tensor& fill_drawn(Tensor& t, Draw draw) {
  constexpr int64_t kPiece = int64_t(1) << 16;  // 512 KiB of float64
  NoGradGuard no_grad;
  const int64_t n = t.numel();
  if (n <= kPiece) return assign(t, draw(t.shape()));
  // a contiguous t is filled through a flat view of it; any other through a contiguous buffer
  const bool contiguous = t.is_contiguous();
  Tensor flat = contiguous ? t.reshape({n}) : empty({n}, t.dtype());
  for (int64_t begin = 0; begin < n; begin += kPiece) {
    const int64_t count = std::min(kPiece, n - begin);
    flat.narrow(0, begin, count).copy_(draw(Shape{count}));
  }
  if (!contiguous) t.copy_(flat.reshape(t.shape()));
  return t;
}
}  // namespace

namespace {
// Random values into an int64 tensor were truncated silently (PyTorch: not implemented for Long).
void require_floating(const Tensor& t, const char* op) {
  if (!is_floating(t.dtype())) fail("init::{}: needs a floating tensor, got {}", op, describe(t));
}
}  // namespace

Tensor& uniform_(Tensor& t, double low, double high, Generator* gen) {
  require_floating(t, "uniform_");
  // low > high filled (high, low] without a word (PyTorch: "expects to return a [from, to) range")
  if (!(std::isfinite(low) && std::isfinite(high) && low <= high))
    fail("init::uniform_: needs finite low <= high, got [{}, {}) for {}", low, high, describe(t));
  return fill_drawn(t, [&](const Shape& shape) { return rand(shape, Dtype::float64, gen) * (high - low) + low; });
}
Tensor& normal_(Tensor& t, double mean, double std, Generator* gen) {
  require_floating(t, "normal_");
  if (!(std::isfinite(mean) && std::isfinite(std) && std >= 0))  // a negative std was used as is
    fail("init::normal_: needs a finite mean and a finite std >= 0, got mean {} and std {} for {}", mean, std,
         describe(t));
  return fill_drawn(t, [&](const Shape& shape) { return randn(shape, Dtype::float64, gen) * std + mean; });
}
Tensor& constant_(Tensor& t, double value) { return assign(t, full(t.shape(), value, t.dtype())); }
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

Tensor& xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  if (t.numel() == 0) return t;
  const auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(t, -a, a, gen);
}
Tensor& xavier_normal_(Tensor& t, double gain, Generator* gen) {
  if (t.numel() == 0) return t;
  const auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

namespace {
double kaiming_std(const Tensor& t, double a, FanMode mode, const std::string& nonlinearity) {
  const auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const double fan = static_cast<double>(mode == FanMode::fan_in ? fan_in : fan_out);
  return calculate_gain(nonlinearity, a) / std::sqrt(fan);
}
}  // namespace

// The fan-based initialisers leave a tensor with no elements as it is, as PyTorch does (a zero
// fan would make an infinite bound).
Tensor& kaiming_uniform_(Tensor& t, double a, FanMode mode, const std::string& nonlinearity, Generator* gen) {
  if (t.numel() == 0) return t;
  const double bound = std::sqrt(3.0) * kaiming_std(t, a, mode, nonlinearity);
  return uniform_(t, -bound, bound, gen);
}
Tensor& kaiming_normal_(Tensor& t, double a, FanMode mode, const std::string& nonlinearity, Generator* gen) {
  if (t.numel() == 0) return t;
  return normal_(t, 0.0, kaiming_std(t, a, mode, nonlinearity), gen);
}

}  // namespace chainrule::nn::init
