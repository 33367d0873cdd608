/// \file
/// Parameter initialisers (in place, without recording a graph), with PyTorch's formulas.
/// Each takes an optional Generator; without one the global generator (manual_seed) is used.
#pragma once

#include "../autograd/autograd.hpp"

namespace chainrule::nn::init {

/// Which fan kaiming_* preserves the variance of: the forward pass (fan_in) or the backward pass (fan_out).
enum class FanMode {
  fan_in,   ///< keep the variance of activations in the forward pass
  fan_out,  ///< keep the variance of gradients in the backward pass
};

/// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (for a [out, in] weight).
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);
/// Recommended gain for a nonlinearity: "linear"/"sigmoid" 1, "tanh" 5/3, "relu" sqrt(2),
/// "leaky_relu" sqrt(2 / (1 + param^2)), "selu" 3/4.
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

/// Fills t from U(low, high).
Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0, Generator* gen = nullptr);
/// Fills t from N(mean, std^2).
Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
Tensor& constant_(Tensor& t, double value);  ///< fills t with value
Tensor& zeros_(Tensor& t);  ///< fills t with 0
Tensor& ones_(Tensor& t);  ///< fills t with 1
/// U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio).
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
/// N(0, std^2) with std = gain sqrt(2 / (fan_in + fan_out)).
Tensor& xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
/// U(-b, b) with b = gain sqrt(3 / fan), gain = calculate_gain(nonlinearity, a) (He et al.).
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                         const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
/// N(0, std^2) with std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a).
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);

}  // namespace chainrule::nn::init
