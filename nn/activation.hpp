// Activation modules and the registry that lets MLP (and users) build them by name.
#pragma once

#include "module.hpp"

namespace chainrule::nn {

// A parameter-free module applying `fn`; prints as its display name ("ReLU()").
class Activation : public Module {
 public:
  Activation(std::string display_name, std::function<Tensor(const Tensor&)> fn)
      : name_(std::move(display_name)), fn_(std::move(fn)) {}
  Tensor forward(const Tensor& x) override { return fn_(x); }
  std::string repr() const override { return name_.find('(') == std::string::npos ? name_ + "()" : name_; }

 private:
  std::string name_;
  std::function<Tensor(const Tensor&)> fn_;
};

using ActivationFactory = std::function<ModulePtr()>;

// Registers (or replaces) an activation under `name`; it is then usable in MLPOptions.
void register_activation(const std::string& name, ActivationFactory factory);
// Registers a plain function: register_activation("swish", [](const Tensor& x) {...}).
void register_activation(const std::string& name, std::function<Tensor(const Tensor&)> fn,
                         std::string display_name = "");
ModulePtr make_activation(const std::string& name);  // throws, listing the known names
std::vector<std::string> activation_names();
bool has_activation(const std::string& name);

// Module factories for the built-ins (PyTorch's defaults for their parameters).
ModulePtr Identity();
ModulePtr Sigmoid();
ModulePtr Tanh();
ModulePtr ReLU();
ModulePtr LeakyReLU(double negative_slope = 0.01);
ModulePtr ELU(double alpha = 1.0);
ModulePtr SELU();
ModulePtr GELU(bool tanh_approximation = false);
ModulePtr SiLU();
ModulePtr Softplus(double beta = 1.0, double threshold = 20.0);
ModulePtr Mish();
ModulePtr Hardtanh(double min_val = -1.0, double max_val = 1.0);
ModulePtr Softsign();
ModulePtr LogSigmoid();
ModulePtr Softmax(int64_t dim = -1);
ModulePtr LogSoftmax(int64_t dim = -1);

}  // namespace chainrule::nn
