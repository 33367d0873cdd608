#include "activation.hpp"

#include "functional.hpp"

#include <map>
#include <mutex>

namespace chainrule::nn {

namespace F = functional;

ModulePtr Identity() { return std::make_shared<Activation>("Identity", [](const Tensor& x) { return x; }); }
ModulePtr Sigmoid() {
  return std::make_shared<Activation>("Sigmoid", [](const Tensor& x) { return sigmoid(x); }, LinearActivation::sigmoid);
}
ModulePtr Tanh() {
  return std::make_shared<Activation>("Tanh", [](const Tensor& x) { return tanh(x); }, LinearActivation::tanh);
}
ModulePtr ReLU() {
  return std::make_shared<Activation>("ReLU", [](const Tensor& x) { return relu(x); }, LinearActivation::relu);
}
ModulePtr LeakyReLU(double s) {
  return std::make_shared<Activation>(fmt::format("LeakyReLU(negative_slope={:g})", s),
                                      [s](const Tensor& x) { return F::leaky_relu(x, s); });
}
ModulePtr ELU(double a) { return std::make_shared<Activation>(fmt::format("ELU(alpha={:g})", a), [a](const Tensor& x) { return F::elu(x, a); }); }
ModulePtr SELU() { return std::make_shared<Activation>("SELU", [](const Tensor& x) { return F::selu(x); }); }
ModulePtr GELU(bool approx) {
  return std::make_shared<Activation>(approx ? "GELU(tanh)" : "GELU", [approx](const Tensor& x) { return F::gelu(x, approx); });
}
ModulePtr SiLU() { return std::make_shared<Activation>("SiLU", [](const Tensor& x) { return F::silu(x); }); }
ModulePtr Softplus(double beta, double threshold) {
  return std::make_shared<Activation>(fmt::format("Softplus(beta={:g}, threshold={:g})", beta, threshold), [=](const Tensor& x) { return F::softplus(x, beta, threshold); });
}
ModulePtr Mish() { return std::make_shared<Activation>("Mish", [](const Tensor& x) { return F::mish(x); }); }
ModulePtr Hardtanh(double lo, double hi) {
  return std::make_shared<Activation>(fmt::format("Hardtanh(min_val={:g}, max_val={:g})", lo, hi), [=](const Tensor& x) { return F::hardtanh(x, lo, hi); });
}
ModulePtr Softsign() { return std::make_shared<Activation>("Softsign", [](const Tensor& x) { return F::softsign(x); }); }
ModulePtr LogSigmoid() {
  return std::make_shared<Activation>("LogSigmoid", [](const Tensor& x) { return F::log_sigmoid(x); });
}
ModulePtr Softmax(int64_t dim) {
  return std::make_shared<Activation>(fmt::format("Softmax(dim={})", dim), [dim](const Tensor& x) { return softmax(x, dim); });
}
ModulePtr LogSoftmax(int64_t dim) {
  return std::make_shared<Activation>(fmt::format("LogSoftmax(dim={})", dim), [dim](const Tensor& x) { return log_softmax(x, dim); });
}

ModulePtr ReLU6() { return std::make_shared<Activation>("ReLU6", [](const Tensor& x) { return F::relu6(x); }); }
ModulePtr Hardsigmoid() {
  return std::make_shared<Activation>("Hardsigmoid", [](const Tensor& x) { return F::hardsigmoid(x); });
}
ModulePtr Hardswish() {
  return std::make_shared<Activation>("Hardswish", [](const Tensor& x) { return F::hardswish(x); });
}
ModulePtr CELU(double a) {
  return std::make_shared<Activation>(fmt::format("CELU(alpha={:g})", a),
                                      [a](const Tensor& x) { return F::celu(x, a); });
}
ModulePtr Softshrink(double l) {
  return std::make_shared<Activation>(fmt::format("Softshrink({:g})", l),
                                      [l](const Tensor& x) { return F::softshrink(x, l); });
}
ModulePtr Hardshrink(double l) {
  return std::make_shared<Activation>(fmt::format("Hardshrink({:g})", l),
                                      [l](const Tensor& x) { return F::hardshrink(x, l); });
}
ModulePtr Tanhshrink() {
  return std::make_shared<Activation>("Tanhshrink", [](const Tensor& x) { return F::tanhshrink(x); });
}
ModulePtr Threshold(double t, double v) {
  return std::make_shared<Activation>(fmt::format("Threshold(threshold={:g}, value={:g})", t, v),
                                      [t, v](const Tensor& x) { return F::threshold(x, t, v); });
}
ModulePtr GLU(int64_t dim) {
  return std::make_shared<Activation>(fmt::format("GLU(dim={})", dim),
                                      [dim](const Tensor& x) { return F::glu(x, dim); });
}
ModulePtr Softmin(int64_t dim) {
  return std::make_shared<Activation>(fmt::format("Softmin(dim={})", dim),
                                      [dim](const Tensor& x) { return F::softmin(x, dim); });
}

PReLU::PReLU(int64_t num_parameters, double init, std::optional<Dtype> dtype) : init(init) {
  if (num_parameters <= 0) fail("PReLU: num_parameters must be positive, got {}", num_parameters);
  weight = register_parameter("weight", empty({num_parameters}, dtype.value_or(default_dtype())));
  reset_parameters();
}
void PReLU::reset_parameters() {
  NoGradGuard no_grad;
  weight.fill_(init);
}
Tensor PReLU::forward(const Tensor& x) { return F::prelu(x, weight); }
std::string PReLU::repr() const { return fmt::format("PReLU(num_parameters={})", weight.numel()); }

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, ActivationFactory> factories;
  Registry() {
    factories = {{"identity", [] { return Identity(); }},   {"sigmoid", [] { return Sigmoid(); }},
                 {"tanh", [] { return Tanh(); }},           {"relu", [] { return ReLU(); }},
                 {"leaky_relu", [] { return LeakyReLU(); }}, {"elu", [] { return ELU(); }},
                 {"selu", [] { return SELU(); }},           {"gelu", [] { return GELU(); }},
                 {"gelu_tanh", [] { return GELU(true); }},  {"silu", [] { return SiLU(); }},
                 {"swish", [] { return SiLU(); }},          {"softplus", [] { return Softplus(); }},
                 {"mish", [] { return Mish(); }},           {"hardtanh", [] { return Hardtanh(); }},
                 {"softsign", [] { return Softsign(); }},   {"log_sigmoid", [] { return LogSigmoid(); }},
                 {"softmax", [] { return Softmax(); }},     {"log_softmax", [] { return LogSoftmax(); }},
                 {"relu6", [] { return ReLU6(); }},         {"hardsigmoid", [] { return Hardsigmoid(); }},
                 {"hardswish", [] { return Hardswish(); }}, {"celu", [] { return CELU(); }},
                 {"softshrink", [] { return Softshrink(); }}, {"hardshrink", [] { return Hardshrink(); }},
                 {"tanhshrink", [] { return Tanhshrink(); }}, {"softmin", [] { return Softmin(); }},
                 {"prelu", [] { return std::make_shared<PReLU>(); }}};
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_activation(const std::string& name, ActivationFactory factory) {
  if (name.empty() || !factory) fail("register_activation: needs a non-empty name and a factory");
  std::lock_guard lock(registry().mutex);
  registry().factories[name] = std::move(factory);
}

void register_activation(const std::string& name, std::function<Tensor(const Tensor&)> fn, std::string display) {
  if (!fn) fail("register_activation: '{}' needs a function", name);
  if (display.empty()) display = name;
  register_activation(name, [fn, display] { return std::make_shared<Activation>(display, fn); });
}

ModulePtr make_activation(const std::string& name) {
  ActivationFactory factory;
  {
    std::lock_guard lock(registry().mutex);
    auto it = registry().factories.find(name);
    if (it != registry().factories.end()) factory = it->second;
  }
  if (!factory)
    fail("make_activation: no activation named '{}'; known: {} (add one with nn::register_activation)", name,
         fmt::join(activation_names(), ", "));
  return factory();
}

std::vector<std::string> activation_names() {
  std::lock_guard lock(registry().mutex);
  std::vector<std::string> names;
  for (const auto& [n, f] : registry().factories) names.push_back(n);
  return names;
}

bool has_activation(const std::string& name) {
  std::lock_guard lock(registry().mutex);
  return registry().factories.count(name) > 0;
}

}  // namespace chainrule::nn
