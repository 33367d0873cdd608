/// \file
/// The graph and the backward traversal.
///
/// A Node is the backward of one forward op. It owns edges to the nodes of its inputs and the
/// tensors it saved; it never owns its own output (a saved result is re-linked to the node on
/// use). Backward runs the nodes that hold a gradient highest first (a node's height is above
/// its inputs'), without searching the graph beforehand; only autograd::grad searches, to skip
/// nodes no input is reachable from. Traversal and destruction are iterative, so a chain of a
/// million ops is fine.
#pragma once

#include "pool.hpp"
#include "small_vector.hpp"
#include "tensor.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <span>
#include <string>

namespace chainrule {

/// The gradients a backward rule returns, one per input (undefined: none); three live inline
/// (linear's x, weight and bias; a normalisation's), where two sent linear's to a heap block.
using Grads = SmallVector<Tensor, 3>;

/// What a backward rule sees: `saved(i)` the tensors the op saved (version-checked), `result()`
/// the op's output, `needs(i)` whether input i wants a gradient, `shape(i)` input i's shape.
class BackwardContext;
/// A backward rule: the input gradients from the output gradient and the context, as any
/// callable `(Tensor g, const BackwardContext& c) -> Grads` (a rule declared `(const Tensor& g,
/// ...)` works too; the engine hands over its gradient, so `(Tensor g, ...)` may move it into
/// its result, as add does).
///
/// Like std::function, but move-only, and a capture larger than its 24 inline bytes (a Shape of
/// dimensions, say) goes to the pool rather than to malloc: std::function kept 16 bytes inline
/// and malloc'ed the rest, once per recorded transpose, sum or expand.
class BackwardFn {
 public:
  BackwardFn() noexcept = default;  ///< empty
  BackwardFn(std::nullptr_t) noexcept {}  ///< empty  // NOLINT: implicit, like std::function
  /// Wraps a callable rule.
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, BackwardFn> &&
             std::is_invocable_r_v<Grads, std::decay_t<F>&, Tensor, const BackwardContext&>)
  BackwardFn(F&& f) {  // NOLINT: implicit, so that a lambda can be passed where a rule is expected
    using D = std::decay_t<F>;
    if constexpr (sizeof(D) <= kInline && alignof(D) <= alignof(void*) && std::is_nothrow_move_constructible_v<D>) {
      ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
      ops_ = &kInlineOps<D>;
    } else {
      void* p = pool::allocate(sizeof(D));
      try {
        ::new (p) D(std::forward<F>(f));
      } catch (...) {
        pool::deallocate(p, sizeof(D));
        throw;
      }
      *reinterpret_cast<void**>(buf_) = p;
      ops_ = &kPooledOps<D>;
    }
  }
  BackwardFn(BackwardFn&& o) noexcept { take(o); }  ///< takes o's rule; o is left empty
  /// Takes o's rule; o is left empty.
  BackwardFn& operator=(BackwardFn&& o) noexcept {
    if (this != &o) {
      reset();
      take(o);
    }
    return *this;
  }
  BackwardFn& operator=(std::nullptr_t) noexcept {  ///< empties it (destroying the rule and its captures)
    reset();
    return *this;
  }
  ~BackwardFn() { reset(); }  ///< destroys the rule and its captures
  explicit operator bool() const { return ops_ != nullptr; }  ///< holds a rule
  /// Runs the rule.
  Grads operator()(Tensor g, const BackwardContext& c) const { return ops_->invoke(buf_, std::move(g), c); }

 private:
  static constexpr size_t kInline = 24;
  struct Ops {
    Grads (*invoke)(void* buf, Tensor g, const BackwardContext& c);
    void (*move)(void* to, void* from) noexcept;  // null: the buffer is trivially relocatable
    void (*destroy)(void* buf) noexcept;
  };
  template <class D>
  static constexpr Ops kInlineOps = {
      [](void* b, Tensor g, const BackwardContext& c) -> Grads { return (*static_cast<D*>(b))(std::move(g), c); },
      std::is_trivially_copyable_v<D> ? nullptr
                                      : +[](void* to, void* from) noexcept {
                                          ::new (to) D(std::move(*static_cast<D*>(from)));
                                          static_cast<D*>(from)->~D();
                                        },
      [](void* b) noexcept { static_cast<D*>(b)->~D(); }};
  template <class D>
  static constexpr Ops kPooledOps = {
      [](void* b, Tensor g, const BackwardContext& c) -> Grads { return (**static_cast<D**>(b))(std::move(g), c); },
      nullptr,  // moving the pointer moves the rule
      [](void* b) noexcept {
        D* p = *static_cast<D**>(b);
        p->~D();
        pool::deallocate(p, sizeof(D));
      }};
  void take(BackwardFn& o) noexcept {
    if (!o.ops_) return;
    if (o.ops_->move) o.ops_->move(buf_, o.buf_);
    else std::memcpy(buf_, o.buf_, kInline);
    ops_ = o.ops_;
    o.ops_ = nullptr;
  }
  void reset() noexcept {
    if (ops_) ops_->destroy(buf_);
    ops_ = nullptr;
  }

  alignas(void*) mutable unsigned char buf_[kInline];
  const Ops* ops_ = nullptr;
};

/// A node's link to the node of one of its inputs.
struct Edge {
  Ref<Node> node;       ///< null: that input needs no gradient
  const TensorImpl* input = nullptr;  ///< which tensor it was (identity only, for printing graphs)
  double constant = NAN;            ///< its value, when it was a 0-d constant (x * 2.0)
  /// The input, held, when it is a leaf (node is its accumulator): a graph keeps its leaves alive,
  /// as the accumulator itself did when it held its leaf (see AccumulateGrad).
  Ref<TensorImpl> leaf;
};

/// A tensor a node saved for backward, with the version it had then (an in-place write since is an Error).
struct SavedTensor {
  Tensor tensor;  ///< the saved tensor
  uint32_t version = 0;  ///< its storage version when saved
};

/// A node of the graph: the backward of one forward op (FunctionNode) or a leaf's gradient sink
/// (AccumulateGrad).
struct Node : RefCounted {
  Node(const char* name, const Shape& shape, Dtype dtype);  ///< a node for op `name` whose output has `shape` and `dtype`
  virtual ~Node();  ///< destroys the edges it owns iteratively (no recursion down a long chain)
  Node(const Node&) = delete;  ///< nodes are shared, never copied
  Node& operator=(const Node&) = delete;  ///< not copyable

  /// Computes the gradients of the inputs from the gradient of the output.
  virtual Grads apply(Tensor grad) = 0;
  /// Frees saved tensors after a backward without retain_graph.
  virtual void release() {}
  virtual bool released() const { return false; }  ///< its saved tensors were freed (a second backward is an Error)

  std::string display_name() const;  ///< "mul" -> "MulBackward"

  // The fields are ordered so that the small ones share the last word with FunctionNode's
  // flag: a FunctionNode (counts included) fits the pool's 384-byte class (at 448 the
  // 10,000-link mul/add chain ran 6% slower, the 100-link one 2%); three inline edges of 32
  // bytes (an edge to a leaf holds the leaf) fill it exactly.
  const char* name;             ///< forward op ("mul"); the node prints as "MulBackward"-style name()
  Shape shape;                  ///< the output's shape and dtype, to validate incoming gradients
  SmallVector<Edge, 3> next;    ///< one per input (three inline, as Grads)
  TensorHooks pre_hooks;  ///< hooks registered on the output tensor (null: none)
  uint64_t sequence;            ///< creation order

  /// Scratch for the traversal (one backward through a node at a time).
  Tensor pending_grad;
  uint64_t visit_epoch = 0;  ///< which traversal last visited this node
  /// 1 + the highest of its input nodes' heights (0 with none, as for a leaf's accumulator):
  /// a node is higher than every node it has an edge to, which orders backward.
  uint32_t height = 0;
  bool needed = false;  ///< on a path to a requested gradient in the current traversal
  bool is_accumulator = false;  ///< an AccumulateGrad (checked per node, so no dynamic_cast)
  Dtype dtype;  ///< the output's dtype
};

/// The backward of a differentiable op written in the ops/ files.
struct FunctionNode final : Node {
  /// A node for op `name` whose output has `shape` and `dtype`.
  FunctionNode(const char* name, const Shape& shape, Dtype dtype) : Node(name, shape, dtype) {}
  Grads apply(Tensor grad) override;  ///< runs the backward rule (or the BackwardOverride, when one is active)
  void release() override;  ///< frees the saved tensors and the rule
  bool released() const override { return was_released; }  ///< release() ran
  bool saves_result() const { return result_storage != nullptr; }  ///< the rule reads the output (until released)

  bool was_released = false;  ///< release() ran (first: it fills Node's last word)
  /// An activation applied in place to the op's output after the op (linear's own, or one that
  /// joined the node: join_activation): apply runs its derivative, then the rule. none: none.
  LinearActivation activation = LinearActivation::none;
  /// Inputs joined after the op's own (join_constant: a + b's b, needing no gradient): the last
  /// edges, which the rule does not answer for (it returns next.size() - joined_inputs gradients).
  uint8_t joined_inputs = 0;

  BackwardFn fn;  ///< the backward rule
  SmallVector<SavedTensor, 2> saved;  ///< tensors the rule reads
  /// Input i's shape: kept (input_shapes), else its edge's node's (the node's output is that
  /// input: a leaf's accumulator has the leaf's shape), else the output's; none for an input
  /// that was undefined.
  const Shape& input_shape(size_t i) const {
    if (input_shapes) return input_shapes[i];
    const Edge& e = next[i];
    return e.node ? e.node->shape : e.input ? shape : kNoShape;
  }
  /// Room to keep each input's shape (next.size() of them, from the pool, not yet constructed;
  /// Shape is trivially copyable and destructible), for record to construct.
  /// record keeps them only when an input without an edge (a constant) has another shape than
  /// the output's (a broadcast constant, the data a weight multiplies): most nodes keep none.
  Shape* keep_input_shapes();
  bool keeps_input_shapes() const { return input_shapes != nullptr; }  ///< keep_input_shapes ran
  /// Returns the kept shapes to the pool (copying is Node's: deleted).
  ~FunctionNode() override {
    if (input_shapes) pool::deallocate(input_shapes, next.size() * sizeof(Shape));
  }
  /// The kept shapes (null: none), a plain pointer, not a vector: 16 bytes less in the node, and
  /// keeping them one pool block with no capacity bookkeeping.
  Shape* input_shapes = nullptr;
  static inline const Shape kNoShape{};  ///< an undefined input's
  /// The output, when the rule reads it (save_result): its storage, and the storage's version
  /// then (an in-place write since is an Error). An output contiguous from the storage's start
  /// (what every op makes) is read from there as a tensor of the node's shape and dtype, made
  /// only when a rule asks for one (result(); result_data() gives the elements themselves).
  /// Holding a tensor for it instead, a detached alias (an output cannot be held itself: it
  /// holds the node), cost every such op a tensor made and freed.
  Ref<Storage> result_storage;
  /// A detached alias of an output that is not contiguous from its storage's start (a rule
  /// recorded with a view as its output); undefined otherwise.
  Tensor result_alias;
  uint32_t result_version = 0;  ///< result_storage's version when the output was saved
  Tensor saved_result() const;  ///< the saved output as a tensor (no version check; undefined when none)
  double attribute = NAN;  ///< a scalar parameter worth printing (pow's exponent)
};

/// Sink for a leaf: adds the incoming gradient into the leaf's .grad. The leaf holds it
/// (TensorImpl::grad_accumulator), from the first op recorded on it until the leaf goes, so that
/// a training step does not make and free one per parameter (PyTorch's leaf holds its
/// accumulator weakly and each graph makes it again). It points back without holding the leaf
/// (that would be a cycle); the graph's edges hold the leaf instead (Edge::leaf).
struct AccumulateGrad final : Node {
  explicit AccumulateGrad(TensorImpl* leaf);  ///< the sink of `leaf`
  Grads apply(Tensor grad) override;  ///< adds grad into the leaf's .grad (after the leaf's hooks)
  /// The leaf whose .grad receives the gradient; null once the leaf let go of it (the leaf is
  /// gone, or set_data changed its shape or dtype: TensorImpl::drop_accumulator).
  TensorImpl* leaf;
};

/// n as a leaf's accumulator, or null for an op's node (by is_accumulator: no dynamic_cast).
inline AccumulateGrad* as_accumulator(Node* n) {
  return n->is_accumulator ? static_cast<AccumulateGrad*>(n) : nullptr;
}

/// What a backward rule reads besides the output gradient.
class BackwardContext {
 public:
  /// The context of `node`; check_versions compares saved tensors' versions. Without
  /// `result_readable`, result() is an Error as for an op that saved none: the context of the
  /// rule of a node an activation joined (its saved output is the activation's).
  BackwardContext(const FunctionNode& node, bool check_versions, bool result_readable = true)
      : node_(node), check_(check_versions), result_readable_(result_readable) {}
  const Tensor& saved(size_t i) const;  ///< the i-th saved tensor (an Error if it was modified in place since)
  Tensor result() const;  ///< the op's output (when recorded with save_result)
  /// The op's output's elements (recorded with save_result; the node's shape, contiguous, of
  /// its dtype), read straight from its buffer, or null when the output was a view: read
  /// result() then. Checked as result() is.
  const void* result_data() const;
  bool needs(size_t i) const { return node_.next[i].node != nullptr; }  ///< input i wants a gradient
  /// The engine frees the node's saved tensors when this rule returns (a backward without
  /// retain_graph): a saved tensor that nothing else holds (owns_data) is the rule's to write
  /// its gradient into. False when the rule is run any other way.
  bool frees_saved() const;
  const Shape& shape(size_t i) const { return node_.input_shape(i); }  ///< input i's shape
  const Node& node() const { return node_; }  ///< the node being run

 private:
  const FunctionNode& node_;
  bool check_;
  bool result_readable_;
};

/// A borrowed tensor, so that `record(out, "mul", {a, b}, {a, b}, ...)` lists its tensors
/// without copying their handles (each copy is a reference-count update, and a drop another).
class TensorRef {
 public:
  /// Borrows t for the duration of the call (implicit, so `{a, b}` works).
  TensorRef(const Tensor& t) : t_(&t) {}  // NOLINT: implicit on purpose
  const Tensor& get() const { return *t_; }  ///< the borrowed tensor

 private:
  const Tensor* t_;
};

/// An undefined tensor to borrow (see keep_if).
inline const Tensor kNoTensor{};
/// `t` when `keep`, else an undefined tensor, for a saved list that keeps a tensor only when a
/// gradient needs it (`{keep_if(b.requires_grad(), a)}`), without copying a handle either way.
inline TensorRef keep_if(bool keep, const Tensor& t) { return keep ? TensorRef(t) : TensorRef(kNoTensor); }

/// Records `out` as the result of op `name` applied to `inputs` when grad mode is on and any
/// input requires grad; `saved` are the tensors backward reads (undefined entries allowed);
/// `save_result` makes ctx.result() available. Returns `out` (linked into the graph).
Tensor record(Tensor out, const char* name, std::initializer_list<TensorRef> inputs,
              std::initializer_list<TensorRef> saved, BackwardFn fn, bool save_result = false);
/// The same, for inputs and saved tensors in arrays.
Tensor record(Tensor out, const char* name, std::span<const Tensor> inputs, std::span<const Tensor> saved,
              BackwardFn fn, bool save_result = false);

/// `g` with 0 where `blocked` is nonzero (broadcasting): a select, not g * mask, so that an
/// infinite or NaN g where an op passes no gradient (sqrt' at a relu's 0) gives 0 there, as
/// PyTorch's masked_fill does, instead of inf * 0 = NaN. Recorded (where), for higher orders.
Tensor zero_where(const Tensor& blocked, const Tensor& g);

/// relu, sigmoid or tanh (`activation`) applied in place to y, contiguous and held by nobody
/// else, with their own ops' kernels (so with their bits).
void activate_in_place(LinearActivation activation, const Tensor& y);
/// g times the derivative of `activation`, written with its output, which the node `c` runs
/// saved: the backward rule of relu, sigmoid and tanh, and of linear with one of them. Fused into
/// g's buffer in a first-order backward (reading the output's buffer itself: result_data),
/// recorded ops with create_graph.
Tensor activation_backward(LinearActivation activation, Tensor g, const BackwardContext& c);
/// The activation fused into a node (FunctionNode::activation): linear's ("linear_sigmoid";
/// nn::Sequential makes them) or one that joined it ("matmul_sigmoid"); none for any other node,
/// so that a tool can treat it as that activation's node.
LinearActivation fused_activation(const Node& node);
/// "relu", "sigmoid" or "tanh" (the op's name; "none" for none).
const char* activation_name(LinearActivation activation);
/// Makes `out`'s node, just recorded by its op (not saving its output), the node of
/// `activation` applied to out too, as already done in place: it saves the output, runs the
/// activation's derivative before its rule, and is named `name`, by default "<op>_<activation>".
/// Nothing when out was not recorded.
void join_activation(const Tensor& out, LinearActivation activation, const char* name = nullptr);
/// `activation` applied to x in place, when x is a reusable_temporary (below) whose node, if it
/// has one, only x holds, has no hooks, and has a rule that does not read its output; the
/// activation then joins that node (join_activation). False, x untouched, otherwise. The
/// activations' overloads for temporaries use it: sigmoid(matmul(x, w)) is one node and one
/// buffer.
bool activate_temporary(LinearActivation activation, Tensor& x);
/// x's node, when `x op b` (op a + b or a - b, whose derivative for x is the identity) may join
/// it instead of recording a node of its own: x a reusable_temporary whose node only x holds (no
/// hook), with no activation, squared form or saved output to keep apart; b needing no gradient
/// and of x's shape (an input for to_string and to_dot, not for the rule); room for b's edge
/// inline. Null otherwise (the op records its own node).
FunctionNode* constant_joinable(const Tensor& x, const Tensor& b);
/// Makes n (constant_joinable's, whose output now holds `x op b`, written into its buffer) the
/// node of op as well: b is its last input, without a gradient, and the node is named "<op's
/// name>_<op>" ("mul_add"): one node for the two ops, as for the activations (tanh(y * a + b)
/// is one).
void join_constant(FunctionNode& n, const Tensor& b, const char* op);
/// `value` as the output of a new node `name` with rule `fn` and the inputs of `node`: for a
/// joined node's rule under create_graph, which needs a value it kept (the difference a - b the
/// square of pow(a - b, 2) joined to) as a function of the node's inputs for higher derivatives.
Tensor with_inputs_of(const FunctionNode& node, const Tensor& value, const char* name, BackwardFn fn);
/// The name of `node` once a sum of its output joins it ("sub_pow" -> "sub_pow_sum"), when it is
/// a node pow(a - b, 2) or pow(a + b, 2) of a temporary made (its rule takes a 0-d gradient as
/// the sum's); null for any other node.
const char* summed_name(const Node& node);
/// linear's rule: the product's part, for a gradient already through a fused activation's
/// derivative (FunctionNode::apply runs that first).
Grads linear_backward(Tensor g, const BackwardContext& c);

/// True when an op on `inputs` should be recorded.
bool should_record(std::span<const Tensor> inputs);

/// The node a gradient for `t` flows into (its grad_fn, or its leaf accumulator); null if none.
/// A view whose history an in-place op on its base made out of date gets its grad_fn again first.
Ref<Node> gradient_edge(const Tensor& t);

/// The tensor a view shows the elements of (TensorImpl::view_base), for the in-place ops and
/// the engine; an Error naming `op` when its history cannot be followed (a base that is not
/// contiguous, or that set_data gave other data since).
Tensor view_base_of(const Tensor& view, const char* op);
/// The positions of the view's elements (row-major) among its base's (int64, 1-d).
Tensor view_positions(const Tensor& view, const Tensor& base);

/// Nothing but this handle reaches t's elements: the tensor and its storage held once each,
/// the elements contiguous. A gradient that passes can be written in place by a fused backward
/// rule or taken over by a leaf's accumulator.
inline bool owns_data(const Tensor& t) {
  return t.impl()->only_reference() && t.impl()->storage_unshared() && t.is_contiguous();
}

/// retain_grad's hook: adds the gradient into the tensor's slot. A type of its own, so that it can
/// be found among a node's hooks and moved when the tensor gets a new history.
struct RetainGradHook {
  Ref<GradSlot> slot;  ///< the retained tensor's slot
  Tensor operator()(const Tensor& g) const;  ///< accumulates g into the slot; the gradient passes unchanged
};
/// Moves `impl`'s retain_grad hook (if it has one) from node `from` to node `to`, the tensor's old
/// and new history, so that .grad stays the gradient of its current values after an in-place op
/// (PyTorch moves it too); dropped when `to` is null. Hooks the user registered stay.
void move_retain_hook(const TensorImpl& impl, Node* from, Node* to);

/// Grad mode: thread-local; NoGradGuard turns it off for a scope.
bool grad_mode_enabled();
void set_grad_mode(bool enabled);  ///< turns grad mode on or off for this thread
/// Sets grad mode for a scope and restores the previous mode on exit.
class GradModeGuard {
 public:
  /// Sets grad mode to `enabled`.
  explicit GradModeGuard(bool enabled) : previous_(grad_mode_enabled()) { set_grad_mode(enabled); }
  ~GradModeGuard() { set_grad_mode(previous_); }  ///< restores the previous mode
  GradModeGuard(const GradModeGuard&) = delete;  ///< a scope guard: not copyable
  GradModeGuard& operator=(const GradModeGuard&) = delete;  ///< not copyable

 private:
  bool previous_;
};
/// No graph is recorded while one is alive (optimizer steps, evaluation): torch.no_grad().
struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}  ///< turns grad mode off until the end of the scope
};
/// Turns grad mode on (or to `enabled`) for a scope, inside a NoGradGuard: torch.enable_grad().
struct EnableGradGuard : GradModeGuard {
  /// Sets grad mode to `enabled` until the end of the scope.
  explicit EnableGradGuard(bool enabled = true) : GradModeGuard(enabled) {}
};

/// x is a temporary whose tensor an op can make its result (writing into its buffer): its
/// elements its own (owns_data, not a view); nothing of a tensor's own that the result must not
/// inherit (a .grad, hooks, an accumulator, a retained gradient); and either nothing to record
/// (x needs no gradient) or a node recorded with grad mode on, as it is now. The one test of the
/// ops that do so (activate_temporary, a + b on a temporary). Inline: a call cost each link of
/// the tanh(y * a + b) chain 11 instructions.
inline bool reusable_temporary(const Tensor& x) {
  if (!x.defined()) return false;
  const TensorImpl* impl = x.impl();
  // (a leaf that requires grad is not one: its data is its own, and its op a node of its own)
  return !impl->is_view && owns_data(x) && (impl->grad_fn ? grad_mode_enabled() : !impl->requires_grad) &&
         !impl->retained && !impl->grad && !impl->hooks && !impl->grad_accumulator.load(std::memory_order_relaxed);
}

/// The node of `impl` (a reusable_temporary's) when an op on it may join that node: a node
/// only it holds (no other output of it, no handle to it), no hook on it (a hook sees the op's
/// output's gradient), not yet released. Null otherwise, or when it has none. The one test of
/// the ops that join (activate_temporary, a square of a - b, its sum).
inline FunctionNode* joinable_node(const TensorImpl& impl) {
  Node* n = impl.grad_fn.get();
  if (!n || n->is_accumulator || !n->only_reference() || n->pre_hooks) return nullptr;
  auto* f = static_cast<FunctionNode*>(n);
  return f->was_released ? nullptr : f;
}

namespace autograd {

/// Gradients of `outputs` w.r.t. `inputs`. `grad_outputs` may be empty for 0-d outputs.
/// With create_graph the backward itself is recorded, so the results can be differentiated.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

/// Accumulates gradients of `outputs` into the .grad of every leaf that requires grad.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);
/// The same for outputs and gradients in any contiguous range (Tensor::backward passes one
/// tensor this way, without building vectors).
void backward(std::span<const Tensor> outputs, std::span<const Tensor> grad_outputs, bool retain_graph = false,
              bool create_graph = false);

/// Anomaly mode (thread-local): backward checks every gradient for NaN/Inf and names the
/// forward op whose backward produced it.
void set_detect_anomaly(bool enabled);
bool is_anomaly_enabled();  ///< anomaly mode is on for this thread

/// Number of graph nodes alive in the process (for leak tests): the graphs' nodes, and one
/// accumulator for each leaf that an op was recorded on, while the leaf lives.
int64_t live_nodes();

/// For tools that re-run backward under a hypothesis (the gradient doctor): while a
/// BackwardOverride is alive on this thread, every node's backward first asks it; a returned
/// value replaces the node's own gradients.
using NodeOverride = std::function<std::optional<Grads>(Node& node, const Tensor& grad)>;
/// Installs a NodeOverride for this thread for the guard's lifetime (nested ones stack).
class BackwardOverride {
 public:
  explicit BackwardOverride(NodeOverride fn);  ///< installs fn
  ~BackwardOverride();  ///< restores the previous override
  BackwardOverride(const BackwardOverride&) = delete;  ///< a scope guard: not copyable
  BackwardOverride& operator=(const BackwardOverride&) = delete;  ///< not copyable

 private:
  NodeOverride fn_;
  const NodeOverride* previous_;
};

}  // namespace autograd
}  // namespace chainrule
