// The graph and the backward traversal.
//
// A Node is the backward of one forward op. It owns edges to the nodes of its inputs and the
// tensors it saved; it never owns its own output (a saved result is re-linked to the node on
// use). Traversal and destruction are iterative, so a chain of a million ops is fine.
#pragma once

#include "pool.hpp"
#include "tensor.hpp"

#include <atomic>
#include <cmath>
#include <span>
#include <string>

namespace chainrule {

// Small per-node vectors come from the pool (see pool.hpp): one graph makes many of them.
template <class T>
using PoolVector = std::vector<T, pool::Allocator<T>>;
using Grads = PoolVector<Tensor>;

// What a backward rule sees: `saved(i)` the tensors the op saved (version-checked), `result()`
// the op's output, `needs(i)` whether input i wants a gradient, `shape(i)` input i's shape.
class BackwardContext;
using BackwardFn = std::function<Grads(const Tensor& grad, const BackwardContext& ctx)>;

struct Edge {
  std::shared_ptr<Node> node;       // null: that input needs no gradient
  const TensorImpl* input = nullptr;  // which tensor it was (identity only, for printing graphs)
  double constant = NAN;            // its value, when it was a 0-d constant (x * 2.0)
};

struct SavedTensor {
  Tensor tensor;
  uint32_t version = 0;
};

struct Node : std::enable_shared_from_this<Node> {
  Node(const char* name, Shape shape, Dtype dtype);
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Computes the gradients of the inputs from the gradient of the output.
  virtual Grads apply(const Tensor& grad) = 0;
  // Frees saved tensors after a backward without retain_graph.
  virtual void release() {}
  virtual bool released() const { return false; }

  const char* name;             // forward op ("mul"); the node prints as "MulBackward"-style name()
  Shape shape;                  // the output's shape and dtype, to validate incoming gradients
  Dtype dtype;
  PoolVector<Edge> next;        // one per input
  std::vector<TensorHook> pre_hooks;  // hooks registered on the output tensor
  uint64_t sequence;            // creation order

  std::string display_name() const;  // "mul" -> "MulBackward"

  // Scratch for the traversal (one backward through a node at a time).
  Tensor pending_grad;
  uint64_t visit_epoch = 0;
  bool needed = false;
  bool is_accumulator = false;  // an AccumulateGrad (checked per node, so no dynamic_cast)
};

// The backward of a differentiable op written in the ops/ files.
struct FunctionNode final : Node {
  FunctionNode(const char* name, Shape shape, Dtype dtype) : Node(name, shape, dtype) {}
  Grads apply(const Tensor& grad) override;
  void release() override;
  bool released() const override { return was_released; }

  BackwardFn fn;
  PoolVector<SavedTensor> saved;
  PoolVector<Shape> input_shapes;
  SavedTensor result;  // detached alias of the output, when the rule reads it
  bool saves_result = false;
  double attribute = NAN;  // a scalar parameter worth printing (pow's exponent)
  bool was_released = false;
};

// Sink for a leaf: adds the incoming gradient into the leaf's .grad.
struct AccumulateGrad final : Node {
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf);
  Grads apply(const Tensor& grad) override;
  std::shared_ptr<TensorImpl> leaf;
};

class BackwardContext {
 public:
  BackwardContext(const FunctionNode& node, bool check_versions) : node_(node), check_(check_versions) {}
  const Tensor& saved(size_t i) const;
  Tensor result() const;
  bool needs(size_t i) const { return node_.next[i].node != nullptr; }
  const Shape& shape(size_t i) const { return node_.input_shapes[i]; }
  const Node& node() const { return node_; }

 private:
  const FunctionNode& node_;
  bool check_;
};

// Records `out` as the result of op `name` applied to `inputs` when grad mode is on and any
// input requires grad; `saved` are the tensors backward reads (undefined entries allowed);
// `save_result` makes ctx.result() available. Returns `out` (linked into the graph).
Tensor record(Tensor out, const char* name, std::initializer_list<Tensor> inputs, std::initializer_list<Tensor> saved,
              BackwardFn fn, bool save_result = false);
Tensor record(Tensor out, const char* name, std::span<const Tensor> inputs, std::span<const Tensor> saved,
              BackwardFn fn, bool save_result = false);

// True when an op on `inputs` should be recorded.
bool should_record(std::span<const Tensor> inputs);

// The node a gradient for `t` flows into (its grad_fn, or its leaf accumulator); null if none.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Grad mode: thread-local; NoGradGuard turns it off for a scope.
bool grad_mode_enabled();
void set_grad_mode(bool enabled);
// Sets grad mode for a scope and restores the previous mode on exit.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : previous_(grad_mode_enabled()) { set_grad_mode(enabled); }
  ~GradModeGuard() { set_grad_mode(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};
struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}
};
struct EnableGradGuard : GradModeGuard {
  explicit EnableGradGuard(bool enabled = true) : GradModeGuard(enabled) {}
};

namespace autograd {

// Gradients of `outputs` w.r.t. `inputs`. `grad_outputs` may be empty for 0-d outputs.
// With create_graph the backward itself is recorded, so the results can be differentiated.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

// Accumulates gradients of `outputs` into the .grad of every leaf that requires grad.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

// Anomaly mode (thread-local): backward checks every gradient for NaN/Inf and names the
// forward op whose backward produced it.
void set_detect_anomaly(bool enabled);
bool is_anomaly_enabled();

// Number of graph nodes alive in the process (for leak tests).
int64_t live_nodes();

// For tools that re-run backward under a hypothesis (the gradient doctor): while a
// BackwardOverride is alive on this thread, every node's backward first asks it; a returned
// value replaces the node's own gradients.
using NodeOverride = std::function<std::optional<Grads>(Node& node, const Tensor& grad)>;
class BackwardOverride {
 public:
  explicit BackwardOverride(NodeOverride fn);
  ~BackwardOverride();
  BackwardOverride(const BackwardOverride&) = delete;
  BackwardOverride& operator=(const BackwardOverride&) = delete;

 private:
  NodeOverride fn_;
  const NodeOverride* previous_;
};

}  // namespace autograd
}  // namespace chainrule
