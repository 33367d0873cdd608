// Custom differentiable functions with a user-written forward and backward.
//
// Class form, as PyTorch's torch::autograd::Function:
//
//   struct Cube : cr::autograd::Function<Cube> {
//     static constexpr const char* name = "cube";
//     static cr::Tensor forward(cr::autograd::FunctionContext& ctx, const cr::Tensor& x) {
//       ctx.save_for_backward({x});
//       return x * x * x;
//     }
//     static std::vector<cr::Tensor> backward(cr::autograd::FunctionContext& ctx, const cr::Tensor& g) {
//       const cr::Tensor x = ctx.saved()[0];
//       return {g * 3.0 * x * x};   // d x^3 = 3 x^2
//     }
//   };
//   cr::Tensor y = Cube::apply(x);
//
// Lambda form: autograd::apply_function("cube", forward, backward, {x}).
//
// forward runs under no-grad; backward gets the gradient of the output and returns one
// gradient per input (undefined for inputs that need none; check ctx.needs_input_grad(i)).
// A gradient of a broadcast shape is summed back to its input's shape. Written with
// chainrule ops, backward is itself differentiable, so create_graph works through it.
// Saved tensors are version-checked: modifying one in place before backward is an Error.
#pragma once

#include "tensor.hpp"

#include <any>
#include <string>
#include <utility>

namespace chainrule {
class BackwardContext;
}

namespace chainrule::autograd {

class FunctionContext {
 public:
  void save_for_backward(std::vector<Tensor> tensors);
  std::vector<Tensor> saved() const;  // in backward: the saved tensors (version-checked)
  bool needs_input_grad(size_t i) const;
  std::any data;  // anything else forward wants backward to know (a double, a struct, ...)

 private:
  friend Tensor apply_function(const std::string&, const std::function<Tensor(FunctionContext&, const std::vector<Tensor>&)>&,
                               const std::function<std::vector<Tensor>(FunctionContext&, const Tensor&)>&,
                               const std::vector<Tensor>&);
  std::vector<Tensor> to_save_;
  std::vector<bool> needs_;
  const BackwardContext* backward_ = nullptr;
  size_t saved_count_ = 0;
};

using ForwardFunction = std::function<Tensor(FunctionContext&, const std::vector<Tensor>&)>;
using BackwardFunction = std::function<std::vector<Tensor>(FunctionContext&, const Tensor&)>;

Tensor apply_function(const std::string& name, const ForwardFunction& forward, const BackwardFunction& backward,
                      const std::vector<Tensor>& inputs);

template <class Derived>
struct Function {
  template <class... Inputs>
  static Tensor apply(const Inputs&... inputs) {
    return apply_function(
        op_name(),
        [](FunctionContext& ctx, const std::vector<Tensor>& in) {
          return call_forward(ctx, in, std::index_sequence_for<Inputs...>{});
        },
        [](FunctionContext& ctx, const Tensor& grad) { return Derived::backward(ctx, grad); },
        std::vector<Tensor>{inputs...});
  }

 private:
  static std::string op_name() {
    if constexpr (requires { Derived::name; })
      return Derived::name;
    else
      return "custom_function";
  }
  template <size_t... I>
  static Tensor call_forward(FunctionContext& ctx, const std::vector<Tensor>& in, std::index_sequence<I...>) {
    return Derived::forward(ctx, in[I]...);
  }
};

// ---------------------------------------------------------------- hand-written activations

enum class DerivativeOf { input, output };

// A unary activation given by f and its derivative (as a function of the input x, or of the
// output y = f(x) when that is cheaper: sigmoid' = y (1 - y)). d2f, optional, is the second
// derivative d2y/dx2 as a function of the same variable; without it, second derivatives
// through the activation throw an Error that says how to get them.
struct UnaryDefinition {
  std::string name;
  std::function<double(double)> f;
  std::function<double(double)> df;
  DerivativeOf derivative_of = DerivativeOf::input;
  std::function<double(double)> d2f = nullptr;
};

// The activation as an op: one fused loop for f, one for g * f'.
std::function<Tensor(const Tensor&)> make_unary(UnaryDefinition definition);

// ---------------------------------------------------------------- for gradcheck

// A custom-function call recorded while a CallRecorder is alive on this thread: enough to
// re-run the node alone (gradcheck's per-node checks).
struct RecordedCall {
  std::string name;
  ForwardFunction forward;
  BackwardFunction backward;
  std::vector<Tensor> inputs;  // detached copies of the inputs at call time
  std::vector<bool> requires_grad;
};
class CallRecorder {
 public:
  CallRecorder();
  ~CallRecorder();
  CallRecorder(const CallRecorder&) = delete;
  CallRecorder& operator=(const CallRecorder&) = delete;
  std::vector<RecordedCall> calls;

 private:
  CallRecorder* previous_;
};

}  // namespace chainrule::autograd
