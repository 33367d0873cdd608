#include "activation.hpp"

#include "functional.hpp"

#include <map>
#include <mutex>

namespace chainrule::nn {

namespace F = functional;

ModulePtr Identity() { return std::make_shared<Activation>("Identity", [](const Tensor& x) { return x; }); }
ModulePtr Sigmoid() { return std::make_shared<Activation>("Sigmoid", [](const Tensor& x) { return sigmoid(x); }); }
ModulePtr Tanh() { return std::make_shared<Activation>("Tanh", [](const Tensor& x) { return tanh(x); }); }
ModulePtr ReLU() { return std::make_shared<Activation>("ReLU", [](const Tensor& x) { return relu(x); }); }
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
                 {"softmax", [] { return Softmax(); }},     {"log_softmax", [] { return LogSoftmax(); }}};
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
