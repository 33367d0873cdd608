/// \file
/// Activation modules and the registry that lets MLP (and users) build them by name.
#pragma once

#include "module.hpp"

namespace chainrule::nn {

/// A parameter-free module applying `fn`; prints as its display name ("ReLU()").
class Activation : public Module {
 public:
  /// A module printing as display_name and applying fn; `fused` says that fn is that activation,
  /// which a Linear before it in a Sequential then applies inside its own op.
  Activation(std::string display_name, std::function<Tensor(const Tensor&)> fn,
             LinearActivation fused = LinearActivation::none)
      : name_(std::move(display_name)), fn_(std::move(fn)), fused_(fused) {}
  Tensor forward(const Tensor& x) override { return fn_(x); }  ///< fn(x)
  /// The display name, with "()" when it has no arguments.
  std::string repr() const override { return name_.find('(') == std::string::npos ? name_ + "()" : name_; }
  /// The activation linear can apply for it (ReLU, Sigmoid, Tanh), or none.
  LinearActivation fused() const { return fused_; }

 private:
  std::string name_;
  std::function<Tensor(const Tensor&)> fn_;
  LinearActivation fused_;
};

using ActivationFactory = std::function<ModulePtr()>;  ///< makes a fresh activation module (the registry stores these)

/// Registers (or replaces) an activation under `name`; it is then usable in MLPOptions.
void register_activation(const std::string& name, ActivationFactory factory);
/// Registers a plain function: register_activation("swish", [](const Tensor& x) {...}).
void register_activation(const std::string& name, std::function<Tensor(const Tensor&)> fn,
                         std::string display_name = "");
ModulePtr make_activation(const std::string& name);  ///< throws, listing the known names
std::vector<std::string> activation_names();  ///< the registered names, sorted
bool has_activation(const std::string& name);  ///< `name` is registered

/// Module factories for the built-ins (PyTorch's defaults for their parameters).
ModulePtr Identity();
ModulePtr Sigmoid();  ///< 1 / (1 + e^-x)
ModulePtr Tanh();  ///< tanh(x)
ModulePtr ReLU();  ///< max(x, 0)
ModulePtr LeakyReLU(double negative_slope = 0.01);  ///< x for x > 0, negative_slope * x otherwise
ModulePtr ELU(double alpha = 1.0);  ///< x for x > 0, alpha (e^x - 1) otherwise
ModulePtr SELU();  ///< scale * ELU(x, alpha) with the self-normalising constants
ModulePtr GELU(bool tanh_approximation = false);  ///< x Phi(x) (exact with erf, or the tanh approximation)
ModulePtr SiLU();  ///< x sigmoid(x) (swish)
ModulePtr Softplus(double beta = 1.0, double threshold = 20.0);  ///< log(1 + e^(beta x)) / beta, linear above threshold
ModulePtr Mish();  ///< x tanh(softplus(x))
ModulePtr Hardtanh(double min_val = -1.0, double max_val = 1.0);  ///< x clamped to [min_val, max_val]
ModulePtr Softsign();  ///< x / (1 + |x|)
ModulePtr LogSigmoid();  ///< log(sigmoid(x)), stable
ModulePtr Softmax(int64_t dim = -1);  ///< softmax along dim
ModulePtr LogSoftmax(int64_t dim = -1);  ///< log_softmax along dim
ModulePtr ReLU6();  ///< min(max(x, 0), 6)
ModulePtr Hardsigmoid();  ///< relu6(x + 3) / 6
ModulePtr Hardswish();  ///< x relu6(x + 3) / 6
ModulePtr CELU(double alpha = 1.0);  ///< x for x >= 0, alpha (e^(x / alpha) - 1) below
ModulePtr Softshrink(double lambd = 0.5);  ///< x -+ lambd outside [-lambd, lambd], 0 inside
ModulePtr Hardshrink(double lambd = 0.5);  ///< x outside [-lambd, lambd], 0 inside
ModulePtr Tanhshrink();  ///< x - tanh(x)
ModulePtr Threshold(double threshold, double value);  ///< x above threshold, else value
ModulePtr GLU(int64_t dim = -1);  ///< a sigmoid(b) of x's halves along dim
ModulePtr Softmin(int64_t dim = -1);  ///< softmax(-x) along dim

/// x where x > 0, else a learned slope times x: one slope for all, or one per channel (dim 1).
class PReLU : public Module {
 public:
  /// num_parameters slopes (1, or the channel count), each starting at init.
  explicit PReLU(int64_t num_parameters = 1, double init = 0.25, std::optional<Dtype> dtype = {});
  Tensor forward(const Tensor& x) override;  ///< functional::prelu(x, weight)
  std::string repr() const override;  ///< "PReLU(num_parameters=1)"
  void reset_parameters() override;  ///< every slope to init

  Tensor weight;  ///< [num_parameters]
  double init;  ///< the slopes' starting value
};

}  // namespace chainrule::nn
