#include "engine.hpp"

#include "kernels.hpp"
#include "pool.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_set>

namespace chainrule {

namespace {
thread_local bool g_grad_mode = true;
thread_local bool g_anomaly = false;
thread_local uint64_t g_sequence = 0;
// The live-node count is kept per thread, so that making and destroying a node is a plain
// store rather than a locked read-modify-write (which waits for every earlier store of the
// op to drain). live_nodes() sums the registered threads' counts and those of threads that
// ended; a node made on one thread and destroyed on another moves one unit between them.
thread_local std::atomic<int64_t> t_live_count{0};  // written by its own thread only
std::mutex g_live_mutex;
std::vector<const std::atomic<int64_t>*> g_live_threads;  // guarded by g_live_mutex
int64_t g_live_retired = 0;                               // guarded by g_live_mutex
// 0: not registered yet, 1: registered, 2: the thread is exiting. A plain byte, so that
// count_live costs no init-guard check (a thread_local with a constructor is checked on
// every access); the registration itself is made once, in the slow path.
constinit thread_local unsigned char t_live_state = 0;
struct LiveRegistration {
  LiveRegistration() {
    std::lock_guard lock(g_live_mutex);
    g_live_threads.push_back(&t_live_count);
    t_live_state = 1;
  }
  ~LiveRegistration() {
    std::lock_guard lock(g_live_mutex);
    g_live_retired += t_live_count.exchange(0);
    std::erase(g_live_threads, &t_live_count);
    t_live_state = 2;
  }
};
[[gnu::noinline]] void count_live_slow(int64_t d) {
  if (t_live_state == 2) {  // nodes destroyed by other thread_locals' destructors at thread exit
    std::lock_guard lock(g_live_mutex);
    g_live_retired += d;
    return;
  }
  static thread_local LiveRegistration registration;  // NOLINT: made on the thread's first node
  (void)registration;
  t_live_count.store(t_live_count.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
void count_live(int64_t d) {
  if (t_live_state != 1) [[unlikely]]
    return count_live_slow(d);
  t_live_count.store(t_live_count.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
std::atomic<uint64_t> g_epoch{0};
// Nodes whose last owner was dropped while another node was being destroyed; drained by the
// outermost destructor so that destroying a long chain never recurses deeply.
using DyingNodes = SmallVector<Ref<Node>, 8>;  // on the stack unless a wide graph dies
thread_local DyingNodes* g_dying = nullptr;
thread_local const autograd::NodeOverride* g_override = nullptr;
// The owner of the node whose backward is running, for BackwardContext::result() under
// create_graph (nodes keep no reference to themselves).
thread_local const Ref<Node>* g_running = nullptr;
// g_running's saved tensors are freed once its rule returns (a backward without retain_graph).
thread_local bool g_frees_saved = false;
}  // namespace

bool grad_mode_enabled() { return g_grad_mode; }
void set_grad_mode(bool enabled) { g_grad_mode = enabled; }

Node::Node(const char* name_, const Shape& shape_, Dtype dtype_)
    : name(name_), shape(shape_), sequence(g_sequence++), dtype(dtype_) {
  count_live(1);
}

Node::~Node() {
  count_live(-1);
  DyingNodes local;
  const bool outermost = g_dying == nullptr;
  if (outermost) g_dying = &local;
  for (auto& e : next)
    if (e.node) g_dying->push_back(std::move(e.node));
  if (outermost) {
    while (!local.empty()) {
      Ref<Node> n = std::move(local.back());
      local.pop_back();
      n.reset();  // if this was the last owner, its destructor appends its inputs to `local`
    }
    g_dying = nullptr;
  }
}

std::string Node::display_name() const {
  std::string out;
  bool upper = true;
  for (const char* c = name; *c; ++c) {
    if (*c == '_') {
      upper = true;
      continue;
    }
    out.push_back(upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(*c))) : *c);
    upper = false;
  }
  return out + "Backward";
}

// ---------------------------------------------------------------- recording

namespace {
const Tensor& get(const Tensor& t) { return t; }
const Tensor& get(const TensorRef& t) { return t.get(); }

template <class Range>
bool any_requires_grad(const Range& inputs) {
  for (const auto& t : inputs)
    if (get(t).defined() && get(t).requires_grad()) return true;
  return false;
}
}  // namespace

bool should_record(std::span<const Tensor> inputs) { return g_grad_mode && any_requires_grad(inputs); }

bool stale_view_requires_grad(const TensorImpl& view) {
  return view.history_out_of_date() && view.view_base && !view.requires_grad &&
         Tensor(view.view_base).requires_grad();
}

Tensor view_base_of(const Tensor& view, const char* op) {
  const Ref<TensorImpl>& base = view.impl()->view_base;
  // A base laid out otherwise than row-major, or given other data (set_data), has no flat
  // positions to map the view to (every view has a base: kernels::alias sets it)
  if (!base || base->storage.get() != view.impl()->storage.get() || !Tensor(base).is_contiguous())
    fail("{}: {} is a view of a tensor whose history cannot be followed (the base is not contiguous, or was "
         "given other data by set_data); clone() it before modifying it or after its base was modified in place",
         op, describe(view));
  return Tensor(base);
}

Tensor view_positions(const Tensor& view, const Tensor& base) {
  // the view's own elements only: a write through a row of an n-row buffer costs a row, not n
  // (it built an arange of the whole base, so filling a buffer row by row was quadratic)
  Tensor out = kernels::empty({view.numel()}, int64);
  int64_t* p = kernels::ptr<int64_t>(out);
  const int64_t start = view.storage_offset() - base.storage_offset();
  kernels::for_each_offset<1>(view.shape(), {&view.strides()}, [&](const auto& o) { *p++ = start + o[0]; });
  return out;
}

namespace {
// The view's history taken again from its base's current one, as PyTorch's AsStridedBackward:
// the gradient of the view's elements goes to their positions in the base (added where a
// position is shown twice, as by an expanded view).
Ref<Node> refresh_view(const Tensor& view) {
  const Tensor base = view_base_of(view, "autograd");
  TensorImpl* impl = view.impl();
  impl->history_seen = impl->storage->history;
  if (!base.requires_grad()) {
    impl->grad_fn = nullptr;  // a retain_grad hook goes with the old history
    return nullptr;
  }
  GradModeGuard recording(true);
  // record replaces the view's old history, moving a retain_grad hook along (move_retain_hook)
  record(view, "as_strided", {base}, {},
         [positions = view_positions(view, base)](const Tensor& g, const BackwardContext& c) -> Grads {
           return {index_add(zeros({c.shape(0).numel()}, g.dtype()), 0, positions, g.reshape({-1})).reshape(c.shape(0))};
         });
  return impl->grad_fn;
}
}  // namespace

namespace {
// gradient_edge of a tensor known to require grad
Ref<Node> edge_of(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl->history_out_of_date() && !impl->requires_grad) [[unlikely]]
    return refresh_view(t);
  if (impl->grad_fn) return impl->grad_fn;
  AccumulateGrad* acc = impl->grad_accumulator.load(std::memory_order_acquire);
  if (!acc) [[unlikely]] {  // the leaf's first recorded op: the leaf takes the new node's reference
    Ref<AccumulateGrad> made = make_ref<AccumulateGrad>(impl);
    if (impl->grad_accumulator.compare_exchange_strong(acc, made.get(), std::memory_order_acq_rel))
      acc = static_cast<AccumulateGrad*>(made.release_counted());
    // else another thread's came first (now in acc), and this one is dropped
  }
  return Ref<Node>::share(acc);
}
}  // namespace

Ref<Node> gradient_edge(const Tensor& t) { return t.defined() && t.requires_grad() ? edge_of(t) : nullptr; }

namespace {
void save_result_into(FunctionNode& node, const Tensor& out) {
  node.result_storage = out.impl()->storage;
  node.result_version = out.version();
  if (!out.is_contiguous() || out.storage_offset() != 0) node.result_alias = out.detach();
}

template <class Inputs, class Saved>
Tensor record_node(Tensor out, const char* name, const Inputs& inputs, const Saved& saved, BackwardFn fn,
                   bool save_result) {
  // An int64 result has no gradient, whatever its inputs (x.to(int64), copy_ into int64), as in PyTorch.
  if (!g_grad_mode || !any_requires_grad(inputs) || !is_floating(out.dtype())) return out;
  auto node = make_ref<FunctionNode>(name, out.shape(), out.dtype());
  node->next.reserve(inputs.size());
  bool same_shapes = true;
  for (const auto& ref : inputs) {
    const Tensor& in = get(ref);
    const bool needs = in.defined() && in.requires_grad();
    const bool scalar_constant = in.defined() && !needs && in.dim() == 0 && is_floating(in.dtype());
    Ref<Node> to = needs ? edge_of(in) : nullptr;
    Ref<TensorImpl> leaf = to && to->is_accumulator ? in.impl_ptr() : nullptr;  // held by the graph
    node->next.emplace_back(std::move(to), in.impl(), scalar_constant ? in.item<double>() : NAN, std::move(leaf));
    // input_shape reads an input's shape from its edge's node, else the output's (or none)
    same_shapes = same_shapes && (!in.defined() || node->next.back().node || in.shape() == node->shape);
  }
  for (const auto& e : node->next)
    if (e.node && e.node->height >= node->height) node->height = e.node->height + 1;
  if (!same_shapes) {
    Shape* kept = node->keep_input_shapes();
    for (const auto& ref : inputs) ::new (kept++) Shape(get(ref).defined() ? get(ref).shape() : Shape{});
  }
  node->saved.reserve(saved.size());
  for (const auto& ref : saved) {
    const Tensor& s = get(ref);
    node->saved.emplace_back(s, s.defined() ? s.version() : 0u);
  }
  node->fn = std::move(fn);
  if (save_result) save_result_into(*node, out);
  TensorImpl* impl = out.impl();
  if (impl->retained) [[unlikely]]  // a retained tensor's new history (CopySlices, a view's refresh)
    move_retain_hook(*impl, impl->grad_fn.get(), node.get());
  impl->grad_fn = std::move(node);
  return out;
}

}  // namespace

Tensor record(Tensor out, const char* name, std::span<const Tensor> inputs, std::span<const Tensor> saved,
              BackwardFn fn, bool save_result) {
  return record_node(std::move(out), name, inputs, saved, std::move(fn), save_result);
}

Tensor record(Tensor out, const char* name, std::initializer_list<TensorRef> inputs,
              std::initializer_list<TensorRef> saved, BackwardFn fn, bool save_result) {
  return record_node(std::move(out), name, inputs, saved, std::move(fn), save_result);
}

namespace {
// "<op>_<suffix>" (an activation's name, or an op joined by join_constant), made once per name
// and kept for the program's life (a node's name is a plain pointer). A thread's last answer
// per suffix is remembered, by the op's pointer and checked against its text (a name a custom
// op made may be freed and its address reused).
const char* joined_name(const char* op, const char* suffix) {
  struct Last {
    const char *op = nullptr, *suffix = nullptr, *name = nullptr;
  };
  thread_local Last last[8];
  Last& l = last[(reinterpret_cast<uintptr_t>(suffix) >> 3) % 8];
  const size_t n = std::strlen(op);
  if (l.op == op && l.suffix == suffix && std::strncmp(l.name, op, n) == 0 && l.name[n] == '_') return l.name;
  static std::mutex mutex;
  static std::unordered_set<std::string> names;  // (its elements never move)
  const std::lock_guard lock(mutex);
  l = {op, suffix, names.insert(fmt::format("{}_{}", op, suffix)).first->c_str()};
  return l.name;
}
}  // namespace

LinearActivation fused_activation(const Node& node) {
  return node.is_accumulator ? LinearActivation::none : static_cast<const FunctionNode&>(node).activation;
}

void join_activation(const Tensor& out, LinearActivation activation, const char* name) {
  if (!out.impl()->grad_fn) return;
  auto& node = static_cast<FunctionNode&>(*out.impl()->grad_fn);
  node.activation = activation;
  node.name = name ? name : joined_name(node.name, activation_name(activation));
  save_result_into(node, out);
}

bool activate_temporary(LinearActivation activation, Tensor& x) {
  if (!reusable_temporary(x) || !is_floating(x.dtype())) return false;
  if (x.impl()->grad_fn) {
    const FunctionNode* f = joinable_node(*x.impl());
    if (!f || f->activation != LinearActivation::none || f->saves_result()) return false;
  }
  activate_in_place(activation, x);
  join_activation(x, activation);
  return true;
}

FunctionNode* constant_joinable(const Tensor& x, const Tensor& b) {
  if (!b.defined() || b.requires_grad() || !reusable_temporary(x) || !x.impl()->grad_fn || b.shape() != x.shape())
    return nullptr;
  FunctionNode* n = joinable_node(*x.impl());
  if (!n || n->activation != LinearActivation::none || n->saves_result() || n->joined_inputs ||
      !std::isnan(n->attribute) || n->keeps_input_shapes() || n->next.size() >= 3)
    return nullptr;
  return n;
}

void join_constant(FunctionNode& n, const Tensor& b, const char* op) {
  n.next.emplace_back(nullptr, b.impl(), NAN, nullptr);
  n.joined_inputs = 1;
  n.name = joined_name(n.name, op);
}

Tensor with_inputs_of(const FunctionNode& node, const Tensor& value, const char* name, BackwardFn fn) {
  Tensor out = value.detach();
  auto made = make_ref<FunctionNode>(name, out.shape(), out.dtype());
  made->next = node.next;
  made->height = node.height;
  if (node.keeps_input_shapes()) {
    Shape* kept = made->keep_input_shapes();
    for (size_t i = 0; i < node.next.size(); ++i) ::new (kept + i) Shape(node.input_shapes[i]);
  }
  made->fn = std::move(fn);
  out.impl()->grad_fn = std::move(made);
  return out;
}

Tensor RetainGradHook::operator()(const Tensor& g) const {
  // as AccumulateGrad: with create_graph (grad mode on in backward) the gradient keeps its graph
  slot->grad = (slot->grad ? Tensor(slot->grad) + g : grad_mode_enabled() ? g : g.detach().clone()).impl_ptr();
  return Tensor();
}

void move_retain_hook(const TensorImpl& impl, Node* from, Node* to) {
  if (!impl.retained || !from || from == to || !from->pre_hooks) return;
  auto& hooks = *from->pre_hooks;
  for (auto it = hooks.begin(); it != hooks.end(); ++it) {
    const auto* hook = it->target<RetainGradHook>();
    if (!hook || hook->slot.get() != impl.retained.get()) continue;
    if (to) {
      if (!to->pre_hooks) to->pre_hooks = std::make_unique<std::vector<TensorHook>>();
      to->pre_hooks->push_back(std::move(*it));
    }
    hooks.erase(it);
    return;
  }
}

// ---------------------------------------------------------------- nodes

namespace {
void check_version(const Tensor& t, uint32_t saved_version, const Node& node, const char* what) {
  if (t.defined() && t.version() != saved_version)
    fail("backward of '{}': {} ({}) was modified by an in-place operation after it was saved (it is at version {}; "
         "version {} was saved). Clone it before modifying it, or modify a copy",
         node.name, what, describe(t), t.version(), saved_version);
}

// The saved result, for a rule that reads it: an Error when the op did not save it, or (with
// `check`) when it was written in place since.
const FunctionNode& checked_result(const FunctionNode& node, bool check, bool readable) {
  if (!readable || !node.saves_result())
    fail("backward of '{}': the rule reads result() but the op did not save it", node.name);
  if (check && node.result_storage->version != node.result_version)
    check_version(node.saved_result(), node.result_version, node, "its result");
  return node;
}
}  // namespace

const Tensor& BackwardContext::saved(size_t i) const {
  const SavedTensor& s = node_.saved.at(i);
  if (check_) check_version(s.tensor, s.version, node_, "a tensor it saved");
  return s.tensor;
}

Tensor FunctionNode::saved_result() const {
  if (!result_storage) return Tensor();
  if (result_alias.defined()) return result_alias.detach();  // a tensor of its own, as below
  auto impl = TensorImpl::make();
  impl->storage = result_storage;
  impl->shape = shape;
  contiguous_strides_into(shape, impl->strides);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor BackwardContext::result() const {
  Tensor out = checked_result(node_, check_, result_readable_).saved_result();
  // Without create_graph nothing is recorded from it: a tensor without a history will do.
  if (!g_grad_mode) return out;
  if (!g_running || g_running->get() != &node_)
    fail("backward of '{}': result() under create_graph is available only while the engine runs this node",
         node_.name);
  out.impl()->grad_fn = *g_running;
  return out;
}

bool BackwardContext::frees_saved() const { return g_frees_saved && g_running && g_running->get() == &node_; }

const void* BackwardContext::result_data() const {
  const FunctionNode& n = checked_result(node_, check_, result_readable_);
  return n.result_alias.defined() ? nullptr : n.result_storage->data;
}

// The pool class engine.hpp's field order is chosen for (a larger node slowed the long chains).
static_assert(sizeof(FunctionNode) <= 384, "a FunctionNode outgrew the pool's 384-byte class");

Grads FunctionNode::apply(Tensor grad) {
  if (was_released)
    fail("backward: trying to backward through the graph a second time ('{}' already freed its saved tensors). "
         "Pass retain_graph=true to the first backward if you need to backward twice",
         name);
  if (activation == LinearActivation::none) return fn(std::move(grad), BackwardContext(*this, true));
  grad = activation_backward(activation, std::move(grad), BackwardContext(*this, true));
  return fn(std::move(grad), BackwardContext(*this, true, false));
}

static_assert(std::is_trivially_destructible_v<Shape> && std::is_trivially_copyable_v<Shape>);

Shape* FunctionNode::keep_input_shapes() {
  if (!input_shapes) input_shapes = static_cast<Shape*>(pool::allocate(next.size() * sizeof(Shape)));
  return input_shapes;
}

void FunctionNode::release() {
  saved.clear();
  result_storage = nullptr;
  result_alias = Tensor();
  fn = nullptr;
  was_released = true;
}

AccumulateGrad::AccumulateGrad(TensorImpl* leaf_) : Node("accumulate_grad", leaf_->shape, leaf_->dtype), leaf(leaf_) {
  is_accumulator = true;
}

void TensorImpl::drop_accumulator() noexcept {
  // Not an exchange: the leaf is going, or set_data is changing it (a race with ops recorded on
  // it from other threads then, as any write to a tensor another thread reads).
  if (AccumulateGrad* acc = grad_accumulator.load(std::memory_order_relaxed)) {
    grad_accumulator.store(nullptr, std::memory_order_relaxed);
    acc->leaf = nullptr;
    Ref<Node>::adopt(acc).reset();
  }
}

Grads AccumulateGrad::apply(Tensor grad) {
  Tensor current(leaf->grad);
  if (!current.defined()) {
    // Keep the graph of the gradient only when it is being recorded (create_graph). Otherwise
    // take the buffer as it is when nobody else holds it (as PyTorch does), else copy it.
    if (grad_mode_enabled())
      leaf->grad = grad.impl_ptr();
    else if (owns_data(grad) && grad.storage_offset() == 0)
      // nobody else sees it: the tensor itself (made without a graph), else a detached alias
      leaf->grad = grad.requires_grad() ? grad.detach().impl_ptr() : grad.impl_ptr();
    else
      leaf->grad = grad.detach().clone().impl_ptr();
  } else if (grad_mode_enabled()) {
    leaf->grad = (current + grad).impl_ptr();
  } else {
    current.add_(grad);
  }
  return {};
}

// ---------------------------------------------------------------- traversal

namespace {

void check_finite(const Tensor& g, const Node& node, size_t input) {
  for (double v : g.to_vector<double>())
    if (!std::isfinite(v))
      fail("anomaly: the backward of '{}' ({}) returned a non-finite value ({}) in its gradient for input {} ({}); "
           "the forward op '{}' produced output {} {}",
           node.name, node.display_name(), v, input, describe(g), node.name, node.shape, node.dtype);
}

Tensor apply_hooks(const TensorHooks& hooks, Tensor grad, const Node& node) {
  if (!hooks) return grad;
  for (const auto& hook : *hooks) {
    Tensor replaced = hook(grad);
    if (!replaced.defined()) continue;
    if (replaced.shape() != grad.shape() || replaced.dtype() != grad.dtype())
      fail("hook: a hook on the output of '{}' returned {} but the gradient is {} (a hook may change the values, "
           "not the shape or dtype)",
           node.name, describe(replaced), describe(grad));
    grad = replaced;
  }
  return grad;
}

// Pointers to the owning pointers of nodes (a root, or a parent's edge).
using Order = SmallVector<const Ref<Node>*, 32>;

// The nodes that hold a gradient and wait to run, highest first: a node is higher than every
// node it has an edge to, so when it is taken every node that can still send it a gradient
// has run. No search of the graph is needed first: a search is a chain of dependent loads
// through every node (on a graph larger than the cache, one miss per node); here each node's
// inputs are prefetched while it runs.
struct Ready {
  Order heap;
  static bool lower(const Ref<Node>* a, const Ref<Node>* b) {
    return (*a)->height < (*b)->height;
  }
  void push(const Ref<Node>* n) {
    heap.push_back(n);
    std::push_heap(heap.begin(), heap.end(), lower);
  }
  const Ref<Node>* pop() {
    std::pop_heap(heap.begin(), heap.end(), lower);
    const auto* n = heap.back();
    heap.pop_back();
    return n;
  }
  // Clears the waiting nodes' scratch gradients, also when backward throws part-way (a leaf's
  // accumulator outlives the graph: a gradient left there would reach the next backward).
  ~Ready() {
    for (const auto* n : heap) (*n)->pending_grad = Tensor();
  }
};

// Sets g_running for one node's backward, restoring the outer one (a rule may run backward).
struct RunningGuard {
  const Ref<Node>* previous;
  explicit RunningGuard(const Ref<Node>& node) : previous(g_running) { g_running = &node; }
  ~RunningGuard() { g_running = previous; }
  RunningGuard(const RunningGuard&) = delete;
  RunningGuard& operator=(const RunningGuard&) = delete;
};

void add_pending(Node& n, Tensor g) {
  n.pending_grad = n.pending_grad.defined() ? n.pending_grad + g : std::move(g);
}

// A node's backward while a BackwardOverride is installed: its answer, if it gives one.
Grads apply_overridden(Node& n, Tensor grad) {
  if (std::optional<Grads> replaced = (*g_override)(n, grad)) return std::move(*replaced);
  return n.apply(std::move(grad));
}

// t is a 0-d `dtype` tensor holding 1 that nothing else reaches: no other handle, no view of its
// storage, no graph, gradient or hooks.
bool untouched_one(const Tensor& t, Dtype dtype) {
  if (!t.defined()) return false;
  const TensorImpl& i = *t.impl();
  if (!i.only_reference() || !i.storage_unshared() || i.dtype != dtype || !i.shape.empty() || i.offset != 0 ||
      i.requires_grad || i.grad_fn || i.grad || i.hooks)
    return false;
  return dtype == float64 ? *static_cast<const double*>(i.storage->data) == 1
                          : *static_cast<const float*>(i.storage->data) == 1;
}

// The gradient implied for a one-element output: ones. A 0-d one (a loss's) is kept per thread
// and dtype, and handed out again while nobody else holds it and it still is 1: a training step
// makes and frees no tensor for it. One given away (kept by a hook, or a leaf's .grad under
// create_graph) is its holder's; the next backward makes another.
Tensor implied_gradient(const Tensor& root) {
  if (root.dim() != 0) return ones(root.shape(), root.dtype());
  thread_local Tensor kept[2];  // float32, float64 (an output that requires grad is floating)
  Tensor& k = kept[root.dtype() == float64];
  if (!untouched_one(k, root.dtype())) k = ones({}, root.dtype());
  return k;
}

// Runs backward from `roots`. With `inputs` non-empty it returns their gradients instead of
// accumulating into leaves (autograd::grad); otherwise it accumulates (backward).
std::vector<Tensor> run_backward(std::span<const Tensor> roots, std::span<const Tensor> root_grads,
                                 bool retain_graph, bool create_graph, std::span<const Tensor> inputs,
                                 bool allow_unused) {
  const char* api = inputs.empty() ? "backward" : "grad";
  if (!root_grads.empty() && root_grads.size() != roots.size())
    fail("{}: got {} gradients for {} outputs", api, root_grads.size(), roots.size());
  // The traversal's lists live on the stack for small graphs (a training step of a small
  // network makes no heap allocation here) and spill to the pool for large ones.
  SmallVector<Ref<Node>, 2> root_nodes;
  SmallVector<Tensor, 2> seeds;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    if (!r.requires_grad())
      fail("{}: output {} ({}) does not require grad and has no grad_fn. Did you forget requires_grad_() on a "
           "leaf, or compute it under NoGradGuard?",
           api, i, describe(r));
    Tensor seed = root_grads.empty() ? Tensor() : root_grads[i];
    if (!seed.defined()) {
      if (r.numel() != 1)
        fail("{}: a gradient can be implied only for outputs with one element; output {} is {}, so pass a gradient "
             "of that shape",
             api, i, describe(r));
      seed = implied_gradient(r);
    } else if (seed.shape() != r.shape()) {
      fail("{}: the gradient for output {} is {} but the output is {}", api, i, describe(seed), describe(r));
    }
    root_nodes.push_back(gradient_edge(r));
    seeds.push_back(seed.dtype() == r.dtype() ? seed : seed.to(r.dtype()));
  }

  // With inputs, run only the nodes from which some input is reachable: a depth-first search
  // marks them (children before parents in its post-order).
  SmallVector<Ref<Node>, 2> targets;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) fail("grad: input {} ({}) does not require grad", i, describe(inputs[i]));
    targets.push_back(gradient_edge(inputs[i]));
  }
  const bool all_needed = inputs.empty();
  if (!all_needed) {
    const uint64_t epoch = ++g_epoch;
    Order order;
    SmallVector<std::pair<const Ref<Node>*, size_t>, 32> stack;
    for (const auto& r : root_nodes) {
      if (r->visit_epoch == epoch) continue;
      r->visit_epoch = epoch;
      stack.push_back({&r, 0});
      while (!stack.empty()) {
        auto& [owner, i] = stack.back();
        Node* n = owner->get();
        if (i < n->next.size()) {
          const Ref<Node>& child = n->next[i++].node;
          if (child && child->visit_epoch != epoch) {
            child->visit_epoch = epoch;
            stack.push_back({&child, 0});
          }
        } else {
          order.push_back(owner);
          stack.pop_back();
        }
      }
    }
    for (const auto* owner : order) {
      Node* n = owner->get();
      n->needed = false;
      for (const auto& t : targets) n->needed = n->needed || t.get() == n;
      for (const auto& e : n->next) n->needed = n->needed || (e.node && e.node->needed);
    }
  }
  auto needed = [&](const Node* n) { return all_needed || n->needed; };

  // A node enters the ready heap with its first gradient (marked with this run's epoch).
  const uint64_t epoch = ++g_epoch;
  Ready ready;
  auto send = [&](const Ref<Node>& target, Tensor g) {
    add_pending(*target, std::move(g));
    if (target->visit_epoch == epoch) return;
    target->visit_epoch = epoch;
    ready.push(&target);
  };
  for (size_t i = 0; i < root_nodes.size(); ++i)
    if (needed(root_nodes[i].get())) send(root_nodes[i], seeds[i]);

  std::vector<Tensor> results(inputs.size());
  EnableGradGuard grad_mode(create_graph);
  struct FreesSaved {  // for BackwardContext::frees_saved; an outer backward's (a rule may run one) restored
    bool previous = g_frees_saved;
    ~FreesSaved() { g_frees_saved = previous; }
  } frees_saved;
  g_frees_saved = !retain_graph;
  while (!ready.heap.empty()) {
    const auto* owner = ready.pop();
    Node* n = owner->get();
    for (const auto& e : n->next) __builtin_prefetch(e.node.get());  // the next nodes to run, most likely
    Tensor grad = std::move(n->pending_grad);
    n->pending_grad = Tensor();
    if (!grad.defined()) continue;
    AccumulateGrad* acc = as_accumulator(n);
    if (acc && !acc->leaf) continue;  // its leaf let go of it (TensorImpl::drop_accumulator)
    grad = apply_hooks(acc ? acc->leaf->hooks : n->pre_hooks, std::move(grad), *n);
    for (size_t k = 0; k < targets.size(); ++k)
      if (targets[k].get() == n) results[k] = results[k].defined() ? results[k] + grad : grad;
    if (acc) {
      if (inputs.empty()) acc->apply(std::move(grad));
      continue;
    }
    bool any_needed = false;
    for (const auto& e : n->next) any_needed = any_needed || (e.node && needed(e.node.get()));
    if (!any_needed) continue;

    RunningGuard running(*owner);
    Grads grads = g_override ? apply_overridden(*n, std::move(grad)) : n->apply(std::move(grad));
    const size_t answered = n->next.size() - static_cast<FunctionNode*>(n)->joined_inputs;
    if (grads.size() != answered)
      fail("backward of '{}' returned {} gradients for {} inputs", n->name, grads.size(), answered);
    for (size_t i = 0; i < grads.size(); ++i) {
      const Ref<Node>& target = n->next[i].node;
      Tensor& g = grads[i];
      if (!target || !needed(target.get()) || !g.defined()) continue;
      if (g.shape() != target->shape) {
        // The one home of broadcasting's adjoint: a gradient of the broadcast shape is summed
        // back to the input's shape.
        if (!is_expandable_to(target->shape, g.shape()))
          fail("backward of '{}' returned a gradient {} for input {} of shape {}", n->name, describe(g), i,
               target->shape);
        g = sum_to(g, target->shape);
      }
      if (g.dtype() != target->dtype) g = g.to(target->dtype);
      if (g_anomaly) check_finite(g, *n, i);
      send(target, std::move(g));
    }
    if (!retain_graph) n->release();
  }

  for (size_t k = 0; k < inputs.size(); ++k)
    if (!results[k].defined() && !allow_unused)
      fail("grad: input {} ({}) is not reachable from the outputs; pass allow_unused=true to get an undefined "
           "gradient for it",
           k, describe(inputs[k]));
  return results;
}

}  // namespace

namespace autograd {

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph,
                         bool allow_unused) {
  if (inputs.empty()) fail("grad: no inputs given");
  return run_backward(outputs, grad_outputs, retain_graph || create_graph, create_graph, inputs, allow_unused);
}

void backward(std::span<const Tensor> outputs, std::span<const Tensor> grad_outputs, bool retain_graph,
              bool create_graph) {
  run_backward(outputs, grad_outputs, retain_graph || create_graph, create_graph, {}, false);
}

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
              bool create_graph) {
  backward(std::span<const Tensor>(outputs), std::span<const Tensor>(grad_outputs), retain_graph, create_graph);
}

void set_detect_anomaly(bool enabled) { g_anomaly = enabled; }
bool is_anomaly_enabled() { return g_anomaly; }
int64_t live_nodes() {
  std::lock_guard lock(g_live_mutex);
  int64_t n = g_live_retired;
  for (const auto* t : g_live_threads) n += t->load();
  return n;
}

BackwardOverride::BackwardOverride(NodeOverride fn) : fn_(std::move(fn)), previous_(g_override) { g_override = &fn_; }
BackwardOverride::~BackwardOverride() { g_override = previous_; }

}  // namespace autograd
}  // namespace chainrule
