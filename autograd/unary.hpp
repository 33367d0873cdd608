/// \file
/// unary_op: an elementwise op y = f(x) with a fused forward kernel and a derivative written
/// as a tensor expression of x and y. Because the derivative is itself made of
/// differentiable ops, create_graph gives second derivatives with no extra code.
///
///   Tensor softplus(const Tensor& x) {
///     return unary_op(x, "softplus", [](auto v) { return std::log1p(std::exp(v)); },
///                     [](const Tensor& x, const Tensor& y) { return sigmoid(x); });  // d/dx
///   }
#pragma once

#include "engine.hpp"
#include "kernels.hpp"

namespace chainrule::autograd {

template <class F, class D>
/// Records y = f(x) elementwise (one fused kernel) with backward g * derivative(x, y).
Tensor unary_op(const Tensor& x, const char* name, F&& f, D&& derivative) {
  Tensor y = kernels::map_floating(x, name, f);
  return record(y, name, {x}, {x},
                [derivative](const Tensor& g, const BackwardContext& c) -> Grads {
                  return {g * derivative(c.saved(0), c.result())};
                },
                true);
}

}  // namespace chainrule::autograd
