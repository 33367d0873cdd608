/// \file
/// Custom differentiable functions with a user-written forward and backward.
///
/// Class form, as PyTorch's torch::autograd::Function:
///
///   struct Cube : cr::autograd::Function<Cube> {
///     static constexpr const char* name = "cube";
///     static cr::Tensor forward(cr::autograd::FunctionContext& ctx, const cr::Tensor& x) {
///       ctx.save_for_backward({x});
///       return x * x * x;
///     }
///     static std::vector<cr::Tensor> backward(cr::autograd::FunctionContext& ctx, const cr::Tensor& g) {
///       const cr::Tensor x = ctx.saved()[0];
///       return {g * 3.0 * x * x};   // d x^3 = 3 x^2
///     }
///   };
///   cr::Tensor y = Cube::apply(x);
///
/// Lambda form: autograd::apply_function("cube", forward, backward, {x}).
///
/// forward runs under no-grad; backward gets the gradient of the output and returns one
/// gradient per input (undefined for inputs that need none; check ctx.needs_input_grad(i)).
/// A gradient of a broadcast shape is summed back to its input's shape. Written with
/// chainrule ops, backward is itself differentiable, so create_graph works through it.
/// Saved tensors are version-checked: modifying one in place before backward is an Error.
#pragma once

#include "tensor.hpp"

#include <any>
#include <string>
#include <utility>

namespace chainrule {
class BackwardContext;
}

namespace chainrule::autograd {

/// What a custom function's forward leaves for its backward: saved tensors and any other data.
class FunctionContext {
 public:
  void save_for_backward(std::vector<Tensor> tensors);  ///< in forward: keeps tensors for backward (version-checked)
  std::vector<Tensor> saved() const;  ///< in backward: the saved tensors (version-checked)
  bool needs_input_grad(size_t i) const;  ///< in backward: input i wants a gradient
  std::any data;  ///< anything else forward wants backward to know (a double, a struct, ...)

 private:
  friend Tensor apply_function(const std::string&, const std::function<Tensor(FunctionContext&, const std::vector<Tensor>&)>&,
                               const std::function<std::vector<Tensor>(FunctionContext&, const Tensor&)>&,
                               const std::vector<Tensor>&);
  std::vector<Tensor> to_save_;
  std::vector<bool> needs_;
  const BackwardContext* backward_ = nullptr;
  size_t saved_count_ = 0;
};

/// A custom forward: the inputs (under no-grad) to the output.
using ForwardFunction = std::function<Tensor(FunctionContext&, const std::vector<Tensor>&)>;
/// A custom backward: the output gradient to one gradient per input.
using BackwardFunction = std::function<std::vector<Tensor>(FunctionContext&, const Tensor&)>;

/// Applies a custom function given as two callables (the lambda form); the result joins the graph
/// as a node named `name`.
Tensor apply_function(const std::string& name, const ForwardFunction& forward, const BackwardFunction& backward,
                      const std::vector<Tensor>& inputs);

template <class Derived>
/// The class form of a custom function (CRTP): Derived defines static forward(ctx, inputs...) and
/// backward(ctx, grad), and optionally `name`; see the file's example.
struct Function {
  template <class... Inputs>
  /// Runs Derived::forward and records Derived::backward as the node's backward.
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

/// Which variable a hand-written derivative is a function of.
enum class DerivativeOf {
  input,   ///< f'(x)
  output,  ///< f' written with y = f(x), e.g. y (1 - y) for the sigmoid
};

/// A unary activation given by f and its derivative (as a function of the input x, or of the
/// output y = f(x) when that is cheaper: sigmoid' = y (1 - y)). d2f, optional, is the second
/// derivative d2y/dx2 as a function of the same variable; without it, second derivatives
/// through the activation throw an Error that says how to get them.
struct UnaryDefinition {
  std::string name;  ///< the op's name in graphs and messages
  std::function<double(double)> f;  ///< the activation
  std::function<double(double)> df;  ///< its derivative, of x or of y (derivative_of)
  DerivativeOf derivative_of = DerivativeOf::input;  ///< the variable df and d2f take
  std::function<double(double)> d2f = nullptr;  ///< the second derivative d2y/dx2, of the same variable (optional)
};

/// The activation as an op: one fused loop for f, one for g * f'.
std::function<Tensor(const Tensor&)> make_unary(UnaryDefinition definition);

// ---------------------------------------------------------------- for gradcheck

/// A custom-function call recorded while a CallRecorder is alive on this thread: enough to
/// re-run the node alone (gradcheck's per-node checks).
struct RecordedCall {
  std::string name;  ///< the op's name in graphs and messages
  ForwardFunction forward;  ///< the function's forward
  BackwardFunction backward;  ///< the function's backward
  std::vector<Tensor> inputs;  ///< detached copies of the inputs at call time
  std::vector<bool> requires_grad;  ///< which inputs required grad
};
/// While alive, records every custom-function call on this thread (gradcheck uses it to check nodes
/// one by one).
class CallRecorder {
 public:
  CallRecorder();  ///< starts recording (nested recorders stack)
  ~CallRecorder();  ///< stops; the previous recorder resumes
  CallRecorder(const CallRecorder&) = delete;  ///< a scope guard: not copyable
  CallRecorder& operator=(const CallRecorder&) = delete;  ///< not copyable
  std::vector<RecordedCall> calls;  ///< the calls so far, in forward order

 private:
  CallRecorder* previous_;
};

}  // namespace chainrule::autograd
