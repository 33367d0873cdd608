/// \file
/// Seeing the graph: as the expression a user would write, and as Graphviz DOT.
#pragma once

#include "gradcheck.hpp"
#include "tensor.hpp"

#include <string>
#include <utility>

namespace chainrule::autograd {

/// Names for tensors in printed graphs (leaves and constants); others print as t0, t1, ...
using TensorNames = std::vector<std::pair<Tensor, std::string>>;

/// The graph behind `expr` as the expression that built it:
///   sum(pow(sub(y, sigmoid(matmul(sigmoid(matmul(X, W1)), W2))), 2))
/// A subexpression used more than once is named once (h1 = ...) and referred to by name.
/// Unnamed constants print as const[shape] (0-d ones as their value).
std::string to_string(const Tensor& expr, const TensorNames& names = {});

/// What to_dot shows besides the graph.
struct DotOptions {
  TensorNames names = {};  ///< names for leaves and constants
  /// Per named leaf: a finite-difference gradient to show beside the analytic one.
  std::vector<std::pair<Tensor, Tensor>> numeric_gradients = {};
};

/// The graph in Graphviz DOT: one box per op (its name, output shape and dtype), leaves with a
/// summary of their values and, when present, of their gradients; edges follow the data.
/// Render with `dot -Tsvg graph.dot -o graph.svg` (Debian package graphviz).
std::string to_dot(const Tensor& expr, const DotOptions& options = {});

/// Evaluates fn(inputs), backpropagates sum(fn) into the inputs, computes the same gradients by
/// central differences, and returns the DOT graph with both beside each leaf.
std::string to_dot(const TensorFn& fn, const std::vector<Tensor>& inputs, TensorNames names = {});

}  // namespace chainrule::autograd
