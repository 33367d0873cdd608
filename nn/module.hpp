/// \file
/// Modules: named parameters and submodules, train/eval, dtype conversion, and a readable
/// printout of the tree. Linear, Sequential and MLP are defined here; activations in
/// activation.hpp.
#pragma once

#include "../autograd/autograd.hpp"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <variant>

namespace chainrule::nn {

class Module;
/// Modules are held by shared pointer (a submodule can be shared, as in PyTorch).
using ModulePtr = std::shared_ptr<Module>;

/// The base of every network part: parameters and submodules registered by name, train/eval mode,
/// dtype conversion and a printout. Subclasses implement forward() and repr().
class Module {
 public:
  virtual ~Module() = default;  ///< virtual: modules are used through base pointers
  Module() = default;  ///< an empty module
  Module(const Module&) = delete;  ///< modules own parameters; share them through ModulePtr instead of copying
  Module& operator=(const Module&) = delete;  ///< not copyable

  virtual Tensor forward(const Tensor& x) = 0;  ///< the module's computation
  Tensor operator()(const Tensor& x) { return forward(x); }  ///< forward(x)

  /// "Linear(in=3, out=4, bias=false)": the one-line description of this module alone.
  virtual std::string repr() const = 0;
  /// Re-draws the parameters from their default initialisation.
  virtual void reset_parameters() {}

  /// Every parameter of this module and its submodules, in registration order, each once (a
  /// shared submodule's under its first name).
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;  ///< "layers.0.weight"-style names, registration order, each parameter once
  /// The direct submodules with their names.
  const std::vector<std::pair<std::string, ModulePtr>>& named_children() const { return children_; }

  void zero_grad();  ///< drops every parameter's .grad
  /// Sets training mode here and in every submodule (Dropout-style behaviour switches on it).
  void train(bool on = true);
  void eval() { train(false); }  ///< train(false)
  bool is_training() const { return training_; }  ///< in training mode
  void to(Dtype dtype);  ///< converts every parameter in place (identity and requires_grad kept)

 protected:
  /// Adds a parameter under `name` and returns it.
  Tensor& register_parameter(std::string name, Tensor t, bool requires_grad = true);
  template <class M>
  /// Adds a submodule under `name` and returns it.
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    check_child(name, m.get());
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void check_child(const std::string& name, const Module* m) const;  ///< unique name, non-null
  void collect(const std::string& prefix, NamedTensors& out, std::set<const TensorImpl*>& seen) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  bool training_ = true;
};

/// The whole tree, PyTorch style, one module per line.
std::string to_string(const Module& m);

/// Checkpoints of a module's parameters (format and guarantees in autograd/serialize.hpp).
/// load validates everything first: on any error (CheckpointError, listing every missing,
/// unexpected or mis-shaped key) the module is left untouched.
void save(const Module& m, const std::string& path);
void load(Module& m, const std::string& path);  ///< reads `path` into m's parameters (all or nothing)

// ---------------------------------------------------------------- Linear

/// Linear's options.
struct LinearOptions {
  bool bias = true;  ///< learn an additive bias
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// y = x W^T + b with W of shape [out, in]. Default initialisation as PyTorch: W from
/// kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and b from the same range.
class Linear : public Module {
 public:
  /// A layer from in_features to out_features, PyTorch-initialised.
  Linear(int64_t in_features, int64_t out_features, LinearOptions options = {});
  Tensor forward(const Tensor& x) override;  ///< x W^T + b for x of shape [..., in_features]
  std::string repr() const override;  ///< "Linear(in=3, out=4, bias=true)"
  void reset_parameters() override;  ///< re-draws W and b from PyTorch's default initialisation

  Tensor weight;  ///< [out_features, in_features]
  Tensor bias;  ///< undefined when options.bias is false
  int64_t in_features;   ///< the size of the input's last dimension
  int64_t out_features;  ///< the size of the output's last dimension

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- Dropout

/// functional::dropout while training (train(), the default), the identity after eval().
class Dropout : public Module {
 public:
  /// Zeroes elements with probability p (in [0, 1]), drawing from `generator` (default: the global one).
  explicit Dropout(double p = 0.5, Generator* generator = nullptr);
  Tensor forward(const Tensor& x) override;  ///< dropout(x, p, is_training(), generator)
  std::string repr() const override;  ///< "Dropout(p=0.5)"

  double p;  ///< the probability of an element to be zeroed

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- Sequential

/// Modules applied one after another.
class Sequential : public Module {
 public:
  Sequential() = default;  ///< empty; add modules with push_back
  explicit Sequential(std::vector<ModulePtr> modules);  ///< the modules in order (registered as "0", "1", ...)
  void push_back(ModulePtr m);  ///< appends a module (registered under its index)
  Tensor forward(const Tensor& x) override;  ///< each module applied to the previous one's output
  std::string repr() const override { return "Sequential"; }  ///< "Sequential"
  size_t size() const { return modules_.size(); }  ///< the number of modules
  const ModulePtr& operator[](size_t i) const { return modules_.at(i); }  ///< the i-th module

 private:
  std::vector<ModulePtr> modules_;
};

// ---------------------------------------------------------------- MLP

/// An activation given by registry name ("relu", "tanh", ...) or as a module factory.
using ActivationSpec = std::variant<std::string, std::function<ModulePtr()>>;
/// Initialises one Linear layer; nullptr (or "default") keeps Linear's PyTorch default.
using Initializer = std::function<void(Linear&)>;

/// MLP's options.
struct MLPOptions {
  ActivationSpec activation = std::string("relu");  ///< between layers
  ActivationSpec output_activation = std::string("");  ///< after the last layer; "" for none
  bool bias = true;  ///< every Linear learns a bias
  Initializer init = nullptr;  ///< applied to every Linear after construction
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// sizes = {in, hidden..., out}: Linear layers with the activation between them.
class MLP : public Module {
 public:
  /// Linear layers sizes[0] -> sizes[1] -> ... with the activation between them.
  explicit MLP(const std::vector<int64_t>& sizes, MLPOptions options = {});
  Tensor forward(const Tensor& x) override { return layers->forward(x); }  ///< layers->forward(x)
  std::string repr() const override;  ///< "MLP(sizes=[3, 4, 1])"
  void reset_parameters() override;  ///< re-initialises every layer (with options.init if given)

  std::shared_ptr<Sequential> layers;  ///< the Linear and activation modules in order
  std::vector<std::shared_ptr<Linear>> linears;  ///< the Linear layers alone

 private:
  std::vector<int64_t> sizes_;
  MLPOptions options_;
};

}  // namespace chainrule::nn

// Formats any module (Linear, MLP, user modules) as its tree.
// fmt::formatter specialisation (printing with fmt), hidden from the API reference.
/// \cond
template <class M>
struct fmt::formatter<M, char, std::enable_if_t<std::is_base_of_v<chainrule::nn::Module, M>>>
    : fmt::formatter<std::string_view> {
  auto format(const chainrule::nn::Module& m, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(chainrule::nn::to_string(m), ctx);
  }
};
/// \endcond
