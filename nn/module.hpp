// Modules: named parameters and submodules, train/eval, dtype conversion, and a readable
// printout of the tree. Linear, Sequential and MLP are defined here; activations in
// activation.hpp.
#pragma once

#include "../autograd/autograd.hpp"

#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace chainrule::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // "Linear(in=3, out=4, bias=false)": the one-line description of this module alone.
  virtual std::string repr() const = 0;
  // Re-draws the parameters from their default initialisation.
  virtual void reset_parameters() {}

  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;  // "layers.0.weight"-style names, registration order
  const std::vector<std::pair<std::string, ModulePtr>>& named_children() const { return children_; }

  void zero_grad();  // drops every parameter's .grad
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void to(Dtype dtype);  // converts every parameter in place (identity and requires_grad kept)

 protected:
  Tensor& register_parameter(std::string name, Tensor t, bool requires_grad = true);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void collect(const std::string& prefix, NamedTensors& out) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  bool training_ = true;
};

// The whole tree, PyTorch style, one module per line.
std::string to_string(const Module& m);

// Checkpoints of a module's parameters (format and guarantees in autograd/serialize.hpp).
// load validates everything first: on any error (CheckpointError, listing every missing,
// unexpected or mis-shaped key) the module is left untouched.
void save(const Module& m, const std::string& path);
void load(Module& m, const std::string& path);

// ---------------------------------------------------------------- Linear

struct LinearOptions {
  bool bias = true;
  std::optional<Dtype> dtype = {};
  Generator* generator = nullptr;
};

// y = x W^T + b with W of shape [out, in]. Default initialisation as PyTorch: W from
// kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and b from the same range.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, LinearOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string repr() const override;
  void reset_parameters() override;

  Tensor weight;
  Tensor bias;  // undefined when options.bias is false
  int64_t in_features, out_features;

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- Sequential

class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> modules);
  void push_back(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "Sequential"; }
  size_t size() const { return modules_.size(); }
  const ModulePtr& operator[](size_t i) const { return modules_.at(i); }

 private:
  std::vector<ModulePtr> modules_;
};

// ---------------------------------------------------------------- MLP

// An activation given by registry name ("relu", "tanh", ...) or as a module factory.
using ActivationSpec = std::variant<std::string, std::function<ModulePtr()>>;
// Initialises one Linear layer; nullptr (or "default") keeps Linear's PyTorch default.
using Initializer = std::function<void(Linear&)>;

struct MLPOptions {
  ActivationSpec activation = std::string("relu");  // between layers
  ActivationSpec output_activation = std::string("");  // after the last layer; "" for none
  bool bias = true;
  Initializer init = nullptr;
  std::optional<Dtype> dtype = {};
  Generator* generator = nullptr;
};

// sizes = {in, hidden..., out}: Linear layers with the activation between them.
class MLP : public Module {
 public:
  explicit MLP(const std::vector<int64_t>& sizes, MLPOptions options = {});
  Tensor forward(const Tensor& x) override { return layers->forward(x); }
  std::string repr() const override;
  void reset_parameters() override;

  std::shared_ptr<Sequential> layers;
  std::vector<std::shared_ptr<Linear>> linears;

 private:
  std::vector<int64_t> sizes_;
  MLPOptions options_;
};

}  // namespace chainrule::nn

// Formats any module (Linear, MLP, user modules) as its tree.
template <class M>
struct fmt::formatter<M, char, std::enable_if_t<std::is_base_of_v<chainrule::nn::Module, M>>>
    : fmt::formatter<std::string_view> {
  auto format(const chainrule::nn::Module& m, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(chainrule::nn::to_string(m), ctx);
  }
};
