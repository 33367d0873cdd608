// Elementwise ops: forward through kernels, backward right below.
//
// A backward rule is a lambda (g, c) -> {gradient per input}: `g` is the gradient of the
// op's output, `c.saved(i)` the tensors saved at record time (in the order given),
// `c.result()` the output (when saved), `c.needs(i)` whether input i wants a gradient.
// Rules may return a gradient of the broadcast shape: the engine sums it back to the
// input's shape. Rules use differentiable ops, so create_graph gives higher derivatives.
#include "engine.hpp"
#include "kernels.hpp"

#include <cmath>
#include <utility>

namespace chainrule {

Dtype result_type(const Tensor& a, const Tensor& b) {
  if (a.dtype() == b.dtype()) return a.dtype();  // the common case, without looking at dims
  const bool a0 = a.dim() == 0, b0 = b.dim() == 0;
  if (a0 == b0) return promote(a.dtype(), b.dtype());
  const Dtype dims = a0 ? b.dtype() : a.dtype(), zero = a0 ? a.dtype() : b.dtype();
  return is_floating(zero) && !is_floating(dims) ? zero : dims;
}

namespace {

using kernels::map_floating;

// f over the broadcast of a and b, both converted to result_type(a, b) (or `compute` if given).
template <class F>
Tensor zip(const Tensor& a, const Tensor& b, const char* op, F&& f, std::optional<Dtype> compute = {}) {
  const Dtype d = compute ? *compute : result_type(a, b);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor a_cast, b_cast;  // only when a dtype differs: copying a handle costs two atomic updates
  const Tensor& ca = a.dtype() == d ? a : (a_cast = kernels::cast(a, d));
  const Tensor& cb = b.dtype() == d ? b : (b_cast = kernels::cast(b, d));
  Tensor out = kernels::empty(shape, d);
  dispatch(d, [&]<class T>() { kernels::zip_into<T>(ca, cb, shape, kernels::ptr<T>(out), [&](T x, T y) { return static_cast<T>(f(x, y)); }); });
  return out;
}

// Floating ops promote integer operands to the default dtype (as true division does).
Dtype floating_result(const Tensor& a, const Tensor& b) {
  const Dtype d = result_type(a, b);
  return is_floating(d) ? d : default_dtype();
}

Tensor mask(const Tensor& a, const Tensor& b, const char* op, bool (*pred)(double, double)) {
  return zip(a, b, op, [pred](auto x, auto y) { return pred(static_cast<double>(x), static_cast<double>(y)) ? 1 : 0; });
}

// The backward of an elementwise op when no graph is being recorded (a first-order backward):
// g combined with one saved tensor of its shape by `f` in one fused loop, written into g's own
// buffer when nobody else holds g or its storage (the engine hands each rule its gradient; a
// rule that still needs g afterwards passes a copy, whose count keeps g intact), else into a
// new one. With create_graph, the differentiable expression `expr(g)` runs instead, so that
// gradients of gradients still work. Both compute the same values in the same order.
template <class F, class Expr>
Tensor fused_backward(Tensor g, const Tensor& v, const char* op, F&& f, Expr&& expr) {
  if (grad_mode_enabled()) return expr(g);
  const Dtype d = result_type(g, v);
  if (g.dtype() != d || v.dtype() != d || !owns_data(g) || !is_expandable_to(v.shape(), g.shape()))
    return zip(g, v, op, std::forward<F>(f));
  dispatch(d, [&]<class T>() {
    kernels::zip_into<T>(g, v, g.shape(), kernels::ptr<T>(g), [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
  ++g.impl()->storage->version;
  return g;
}

// fused_backward, for a v the rule may take (`v_spare`: a saved tensor the engine frees after the
// rule, BackwardContext::frees_saved): when g's buffer cannot take the result (a loss's 0-d g)
// and nobody else holds v (a joined square's saved difference), it goes into v's. Apart, so that
// fused_backward stays small where the activations' rules inline it.
template <class F, class Expr>
Tensor fused_backward(Tensor g, const Tensor& v, bool v_spare, const char* op, F&& f, Expr&& expr) {
  if (!v_spare || grad_mode_enabled() || owns_data(g) || g.dtype() != v.dtype() || !owns_data(v) ||
      !is_expandable_to(g.shape(), v.shape()))
    return fused_backward(std::move(g), v, op, std::forward<F>(f), std::forward<Expr>(expr));
  dispatch(v.dtype(), [&]<class T>() {
    kernels::zip_into<T>(g, v, v.shape(), kernels::ptr<T>(v), [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
  ++v.impl()->storage->version;
  return v;
}

// -g, written into g's own buffer in a first-order backward when nobody else holds it (as
// fused_backward), else a new tensor (recorded with create_graph).
Tensor negated(Tensor g) {
  if (grad_mode_enabled() || !owns_data(g)) return -g;
  dispatch(g.dtype(), [&]<class T>() {
    kernels::map_into<T>(g, kernels::ptr<T>(g), [](T v) { return static_cast<T>(-v); });
  });
  ++g.impl()->storage->version;
  return g;
}

using FloatKernel = void (*)(const float*, float*, int64_t);
using DoubleKernel = void (*)(const double*, double*, int64_t);

// The dtype's vectorised kernel over n contiguous elements (`in` may be `out`), split over
// threads when large.
template <class T>
void run_vectorised(const T* in, T* out, int64_t n, FloatKernel float_kernel, DoubleKernel double_kernel) {
  kernels::parallel_for(n, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) float_kernel(in + begin, out + begin, end - begin);
    else double_kernel(in + begin, out + begin, end - begin);
  });
}

// Through the dtype's vectorised kernel (for every layout, so every layout gets the same
// bits); int64 in the default dtype (as_floating).
Tensor vectorised(const Tensor& x, const char* op, FloatKernel float_kernel, DoubleKernel double_kernel) {
  if (!is_floating(x.dtype())) return vectorised(kernels::as_floating(x), op, float_kernel, double_kernel);
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor copy;  // (x itself when contiguous, as it nearly always is: no handle copied)
    const Tensor& in = x.is_contiguous() ? x : (copy = x.contiguous());
    Tensor y = kernels::empty(x.shape(), x.dtype());
    run_vectorised<T>(kernels::ptr<T>(in), kernels::ptr<T>(y), x.numel(), float_kernel, double_kernel);
    return y;
  });
}

// relu of one value: a NaN passes through, as in PyTorch (`v > 0 ? v : 0` made it 0, hiding a
// diverged input from everything after the relu).
constexpr auto relu_value = [](auto v) { return v > 0 || v != v ? v : decltype(v)(0); };

}  // namespace

// ---------------------------------------------------------------- binary

namespace {
constexpr auto times = [](auto x, auto y) { return x * y; };  // mul's kernel, forward and backward
}  // namespace

namespace {
// add's and sub's names, one pointer each: a square of a temporary joins a node of theirs by it
constexpr const char* kAdd = "add";
constexpr const char* kSub = "sub";
constexpr auto plus = [](auto x, auto y) { return x + y; };
constexpr auto minus = [](auto x, auto y) { return x - y; };
constexpr auto add_rule = [](Tensor g, const BackwardContext& c) -> Grads {
  Tensor g1 = c.needs(1) ? g : Tensor();  // a handle copy only when both need g
  return {c.needs(0) ? std::move(g) : Tensor(), std::move(g1)};
};
constexpr auto sub_rule = [](Tensor g, const BackwardContext& c) -> Grads {
  Tensor g1 = c.needs(1) ? negated(c.needs(0) ? g : std::move(g)) : Tensor();
  return {c.needs(0) ? std::move(g) : Tensor(), std::move(g1)};
};

// a op b written into a's own buffer, for an op whose rule reads neither operand, when a is a
// reusable_temporary (a node that saved its output would share the storage), b is of a's dtype
// and b's shape broadcasts into a's. The result is a itself, recorded as op's output with a (its
// old node) as the first input. False, a untouched, otherwise. (b of another dtype that a's
// would take, float32 or int64 into float64, goes the general way: the loop reads b as a's type.)
template <class F>
bool into_first(const Tensor& a, const Tensor& b, F f) {
  if (!reusable_temporary(a) || !b.defined() || b.dtype() != a.dtype() || !is_expandable_to(b.shape(), a.shape()))
    return false;
  dispatch(a.dtype(), [&]<class T>() {
    kernels::zip_into<T>(a, b, a.shape(), kernels::ptr<T>(a), [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
  return true;
}

// a op b for a temporary a (operator+ and operator- on Tensor&&): into a's buffer when it can
// take the result (into_first), as the output of a's own node when b is a constant it may join
// (join_constant), else of a node of op's; `general` (add, sub) when a's buffer cannot take it.
// The caller's handle to a is let go, so that the result is held once, as a new tensor would
// be, and an activation of it can join its node.
template <class F, class Rule>
Tensor into_temporary(Tensor& a, const Tensor& b, const char* op, F f, Rule rule,
                      Tensor (*general)(const Tensor&, const Tensor&)) {
  FunctionNode* joinable = constant_joinable(a, b);  // (before the write: it reads a's node, not its values)
  if (!into_first(a, b, f)) return general(a, b);
  Tensor out = std::move(a);
  if (joinable)
    join_constant(*joinable, b, op);  // b needs no gradient: a's node answers for a op b
  else
    out = record(out, op, {out, b}, {}, rule);
  return out;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return record(zip(a, b, kAdd, plus), kAdd, {a, b}, {}, add_rule); }
Tensor operator+(Tensor&& a, const Tensor& b) { return into_temporary(a, b, kAdd, plus, add_rule, add); }

Tensor sub(const Tensor& a, const Tensor& b) { return record(zip(a, b, kSub, minus), kSub, {a, b}, {}, sub_rule); }
Tensor operator-(Tensor&& a, const Tensor& b) { return into_temporary(a, b, kSub, minus, sub_rule, sub); }

Tensor mul(const Tensor& a, const Tensor& b) {
  return record(zip(a, b, "mul", times), "mul", {a, b}, {keep_if(b.requires_grad(), a), keep_if(a.requires_grad(), b)},
                [](Tensor g, const BackwardContext& c) -> Grads {
                  // g * b and g * a, without the trip through record when nothing records; the
                  // last product takes g over
                  auto by = [](Tensor g, const Tensor& v) {
                    return fused_backward(std::move(g), v, "mul", times, [&](const Tensor& g) { return g * v; });
                  };
                  Tensor gb = c.needs(1) ? by(c.needs(0) ? g : std::move(g), c.saved(0)) : Tensor();  // d(ab)/db = a
                  Tensor ga = c.needs(0) ? by(std::move(g), c.saved(1)) : Tensor();                   // d(ab)/da = b
                  return {std::move(ga), std::move(gb)};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return record(zip(a, b, "div", [](auto x, auto y) { return x / y; }, floating_result(a, b)), "div", {a, b},
                {keep_if(b.requires_grad(), a), b},
                [](const Tensor& g, const BackwardContext& c) -> Grads {
                  const Tensor& b = c.saved(1);
                  return {c.needs(0) ? g / b : Tensor(),                         // d(a/b)/da = 1/b
                          // d(a/b)/db = -a/b^2, as (a/b)/b (PyTorch's form): b * b underflows to 0
                          // sooner, and its second derivative at b = 0 was 0 * inf = NaN, not inf
                          c.needs(1) ? -g * (c.saved(0) / b / b) : Tensor()};
                });
}

namespace {
// x^y in int64 as PyTorch computes it: exact, wrapping modulo 2^64 on overflow; a negative y
// gives 1 for x = 1, +-1 for x = -1 (by y's parity) and 0 otherwise.
int64_t integer_power(int64_t x, int64_t y) {
  if (y < 0) return x == 1 ? 1 : x == -1 ? (y % 2 ? -1 : 1) : 0;
  uint64_t r = 1, b = static_cast<uint64_t>(x);
  for (auto e = static_cast<uint64_t>(y); e; e >>= 1, b *= b)
    if (e & 1) r *= b;
  return static_cast<int64_t>(r);
}
}  // namespace

// Two int64 tensors give an int64 power (PyTorch's); any floating operand, the promoted floating one.
Tensor pow(const Tensor& a, const Tensor& b) {
  const auto power = [](auto x, auto y) {
    if constexpr (std::is_integral_v<decltype(x)>) return integer_power(x, y);
    else return std::pow(x, y);
  };
  return record(zip(a, b, "pow", power), "pow",
                {a, b}, {a, b},
                [](const Tensor& g, const BackwardContext& c) -> Grads {
                  const Tensor &a = c.saved(0), &b = c.saved(1);
                  Tensor ga, gb;
                  if (c.needs(0)) {
                    // d a^b/da = b a^(b-1); taken as 0 where b == 0 (a^0 is constant, even at a == 0)
                    const Tensor zero_exponent = eq(b, scalar_like(0, b));
                    ga = g * where(zero_exponent, zeros_like(g), b * pow(a, b - 1.0));
                  }
                  if (c.needs(1)) {
                    // d a^b/db = a^b ln a; taken as 0 where a == 0 and b >= 0 (the limit), as PyTorch does
                    const Tensor zero_base = eq(a, scalar_like(0, a)) * ge(b, scalar_like(0, b));
                    gb = g * where(zero_base, zeros_like(g), c.result() * log(a));
                  }
                  return {ga, gb};
                },
                true);
}

namespace {
// x^p elementwise, floating
Tensor power(const Tensor& x, double p) {
  return map_floating(x, "pow", [p](auto v) { return p == 2.0 ? v * v : std::pow(v, static_cast<decltype(v)>(p)); });
}

// g p x^(p-1), pow's derivative (p not 0 or 1), written into g's buffer in a first-order
// backward; with create_graph recorded, with x as `history()` gives it (a tensor with the
// history of x's values).
template <class History>
Tensor power_backward(Tensor g, const Tensor& x, double p, History history, bool x_spare) {
  return fused_backward(
      std::move(g), x, x_spare, "pow backward",
      [p](auto gv, auto xv) {
        using T = decltype(gv);
        return gv * static_cast<T>(p) * (p == 2.0 ? xv : std::pow(xv, static_cast<T>(p - 1.0)));
      },
      [&](const Tensor& g) { return g * p * pow(history(), p - 1.0); });
}

// The names of a node of a + b or a - b that a square of its output joined (square_temporary),
// and then a sum of that square.
constexpr const char* kAddPow = "add_pow";
constexpr const char* kSubPow = "sub_pow";
constexpr const char* kAddPowSum = "add_pow_sum";
constexpr const char* kSubPowSum = "sub_pow_sum";

// The rule of such a node: the square's derivative 2 d g, with the sum or difference d it saved
// (g of its shape, or 0-d once a sum joined: d sum is g everywhere), then add's or sub's rule.
// With create_graph d is given its history again, as the output of a new add or sub node with
// the node's inputs, so that the higher derivatives see d as a function of them.
// For b alone of a - b (y - a of a loss with a constant target) -2 d g in the same pass, not a
// second one that negates: (g * -2) * d is -((g * 2) * d) exactly.
template <const char* const& op, auto rule>
Grads squared_rule(Tensor g, const BackwardContext& c) {
  const Tensor& d = c.saved(0);
  const auto history = [&] { return with_inputs_of(static_cast<const FunctionNode&>(c.node()), d, op, rule); };
  if (op != kSub || c.needs(0)) return rule(power_backward(std::move(g), d, 2.0, history, c.frees_saved()), c);
  return {Tensor(), fused_backward(
                        std::move(g), d, c.frees_saved(), "pow backward",
                        [](auto gv, auto dv) { return gv * static_cast<decltype(gv)>(-2) * dv; },
                        [&](const Tensor& g) { return g * -2.0 * history(); })};
}

// pow(x, 2) of a temporary x that a + b or a - b made, when x is a reusable_temporary whose node
// only x holds, with no hook: the square joins that node (as the activations join theirs), which
// keeps x's values for its rule instead of a node of pow's. Undefined, x untouched, otherwise.
Tensor square_temporary(Tensor& x) {
  if (!is_floating(x.dtype()) || !reusable_temporary(x)) return Tensor();
  FunctionNode* joined = joinable_node(*x.impl());
  if (!joined || (joined->name != kSub && joined->name != kAdd)) return Tensor();
  FunctionNode& n = *joined;
  const bool minus = n.name == kSub;
  Tensor out = power(x, 2.0);
  n.name = minus ? kSubPow : kAddPow;
  n.attribute = 2.0;  // pow's exponent, printed by to_string
  n.fn = minus ? BackwardFn(squared_rule<kSub, sub_rule>) : BackwardFn(squared_rule<kAdd, add_rule>);
  Ref<Node> node = std::move(x.impl()->grad_fn);  // x is now a plain tensor, saved by the node
  const uint32_t version = x.version();
  n.saved.push_back({std::move(x), version});
  out.impl()->grad_fn = std::move(node);
  return out;
}
}  // namespace

const char* summed_name(const Node& node) {
  return node.name == kSubPow ? kSubPowSum : node.name == kAddPow ? kAddPowSum : nullptr;
}

Tensor pow(const Tensor& x, double p) {
  if (!is_floating(x.dtype())) return pow(kernels::as_floating(x), p);  // a double exponent goes floating (the scalar rule)
  Tensor out = record(power(x, p), "pow", {x}, {x}, [p](Tensor g, const BackwardContext& c) -> Grads {
    if (p == 0.0) return {zeros_like(g)};
    if (p == 1.0) return {std::move(g)};
    const Tensor& x = c.saved(0);
    return {power_backward(std::move(g), x, p, [&] { return x; }, c.frees_saved())};  // d x^p = p x^(p-1)
  });
  if (out.grad_fn()) static_cast<FunctionNode&>(*out.grad_fn()).attribute = p;  // printed by to_string
  return out;
}

Tensor pow(Tensor&& x, double p) {
  if (p != 2.0) return pow(std::as_const(x), p);
  Tensor out = square_temporary(x);
  return out.defined() ? out : pow(std::as_const(x), p);
}

Tensor pow(double base, const Tensor& exponent) { return pow(floating_scalar_like(base, exponent), exponent); }

Tensor integer_pow(Tensor&& x, int64_t exponent) {
  if (!is_floating(x.dtype())) return integer_pow(std::as_const(x), exponent);
  return pow(std::move(x), static_cast<double>(exponent));
}

Tensor integer_pow(const Tensor& x, int64_t exponent) {
  if (is_floating(x.dtype())) return pow(x, static_cast<double>(exponent));
  if (exponent < 0)
    fail("pow: integers to negative integer powers are not allowed ({} ^ {}); convert the tensor with to() first",
         describe(x), exponent);
  return pow(x, integer_scalar_like(exponent, x));
}

// Ties split the gradient evenly between the two inputs (a subgradient chosen on purpose). An
// input gets none only where it lost; where a NaN is involved both get it, as in PyTorch.
Tensor zero_where(const Tensor& blocked, const Tensor& g) { return where(blocked, zeros({}, g.dtype()), g); }

namespace {
// maximum's (loses = lt) and minimum's (loses = gt) backward: the winner takes g, a tie splits
// it evenly, the loser gets 0; where a is NaN both take g (neither loses), as PyTorch's.
using Compare = Tensor (*)(const Tensor&, const Tensor&);
Grads extreme_backward(const Tensor& g, const BackwardContext& c, Compare loses) {
  const Tensor &a = c.saved(0), &b = c.saved(1);
  const Tensor shared = where(eq(a, b), g * 0.5, g);
  return {c.needs(0) ? zero_where(loses(a, b), shared) : Tensor(),
          c.needs(1) ? zero_where(loses(b, a), shared) : Tensor()};
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = zip(a, b, "maximum", [](auto x, auto y) { return (x > y || x != x) ? x : y; });
  return record(out, "maximum", {a, b}, {a, b}, [](const Tensor& g, const BackwardContext& c) -> Grads {
    return extreme_backward(g, c, lt);
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = zip(a, b, "minimum", [](auto x, auto y) { return (x < y || x != x) ? x : y; });
  return record(out, "minimum", {a, b}, {a, b}, [](const Tensor& g, const BackwardContext& c) -> Grads {
    return extreme_backward(g, c, gt);
  });
}

// ---------------------------------------------------------------- unary

namespace {
// A floating unary op (int64 x gives the default dtype): f computes the values; the gradient is
// dx(g, x) of the saved input, or dy(g, y) of the saved result.
template <class F, class D>
Tensor unary_of_input(const Tensor& x, const char* op, F&& f, D dx) {
  return record(map_floating(x, op, std::forward<F>(f)), op, {x}, {x},
                [dx](const Tensor& g, const BackwardContext& c) -> Grads { return {dx(g, c.saved(0))}; });
}
template <class F, class D>
Tensor unary_of_result(const Tensor& x, const char* op, F&& f, D dy) {
  return record(map_floating(x, op, std::forward<F>(f)), op, {x}, {},
                [dy](const Tensor& g, const BackwardContext& c) -> Grads { return {dy(g, c.result())}; }, true);
}
using Arg = const Tensor&;  // the rules' parameter type, to keep them on one line
}  // namespace

Tensor neg(const Tensor& x) {
  return record(kernels::map_any(x, [](auto v) { return -v; }), "neg", {x}, {},
                [](Tensor g, const BackwardContext&) -> Grads { return {negated(std::move(g))}; });
}

Tensor exp(const Tensor& x) {  // d e^x = e^x
  return unary_of_result(x, "exp", [](auto v) { return std::exp(v); }, [](Arg g, Arg y) { return g * y; });
}

Tensor log(const Tensor& x) {  // d ln x = 1/x
  return unary_of_input(x, "log", [](auto v) { return std::log(v); }, [](Arg g, Arg x) { return g / x; });
}

Tensor log1p(const Tensor& x) {  // d ln(1+x) = 1/(1+x)
  return unary_of_input(x, "log1p", [](auto v) { return std::log1p(v); }, [](Arg g, Arg x) { return g / (x + 1.0); });
}

Tensor expm1(const Tensor& x) {  // d (e^x - 1) = e^x
  return unary_of_result(x, "expm1", [](auto v) { return std::expm1(v); }, [](Arg g, Arg y) { return g * (y + 1.0); });
}

Tensor sqrt(const Tensor& x) {  // d sqrt x = 1/(2 sqrt x)
  return unary_of_result(x, "sqrt", [](auto v) { return std::sqrt(v); }, [](Arg g, Arg y) { return g / (y * 2.0); });
}

Tensor abs(const Tensor& x) {
  return record(kernels::map_any(x, [](auto v) { return v < 0 ? -v : v; }), "abs", {x}, {x},
                [](const Tensor& g, const BackwardContext& c) -> Grads {
                  return {g * sign(c.saved(0))};  // d|x| = sign(x), and abs'(0) = 0
                });
}

Tensor sign(const Tensor& x) {  // recorded, as PyTorch's SignBackward: sign(x) * x differentiates through it
  return record(kernels::map_any(x, [](auto v) { return (v > 0) - (v < 0); }), "sign", {x}, {},
                [](const Tensor& g, const BackwardContext&) -> Grads { return {zeros_like(g)}; });  // 0 almost everywhere
}

Tensor erf(const Tensor& x) {  // d erf = 2/sqrt(pi) e^(-x^2)
  return unary_of_input(x, "erf", [](auto v) { return std::erf(v); },
                        [](Arg g, Arg x) { return g * exp(-(x * x)) * 1.1283791670955126; });
}

Tensor sin(const Tensor& x) {  // d sin = cos
  return unary_of_input(x, "sin", [](auto v) { return std::sin(v); }, [](Arg g, Arg x) { return g * cos(x); });
}

Tensor cos(const Tensor& x) {  // d cos = -sin
  return unary_of_input(x, "cos", [](auto v) { return std::cos(v); }, [](Arg g, Arg x) { return -g * sin(x); });
}

// The derivatives below are PyTorch's (derivatives.yaml) formula by formula, so that second
// derivatives agree with its at the domains' edges too.
Tensor tan(const Tensor& x) {
  return unary_of_result(x, "tan", [](auto v) { return std::tan(v); }, [](Arg g, Arg y) { return g * (y * y + 1.0); });
}

Tensor asin(const Tensor& x) {
  return unary_of_input(x, "asin", [](auto v) { return std::asin(v); },
                        [](Arg g, Arg x) { return g * rsqrt(1.0 - x * x); });
}

Tensor acos(const Tensor& x) {
  return unary_of_input(x, "acos", [](auto v) { return std::acos(v); },
                        [](Arg g, Arg x) { return g * -rsqrt(1.0 - x * x); });
}

Tensor atan(const Tensor& x) {
  return unary_of_input(x, "atan", [](auto v) { return std::atan(v); }, [](Arg g, Arg x) { return g / (x * x + 1.0); });
}

Tensor sinh(const Tensor& x) {
  return unary_of_input(x, "sinh", [](auto v) { return std::sinh(v); }, [](Arg g, Arg x) { return g * cosh(x); });
}

Tensor cosh(const Tensor& x) {
  return unary_of_input(x, "cosh", [](auto v) { return std::cosh(v); }, [](Arg g, Arg x) { return g * sinh(x); });
}

Tensor asinh(const Tensor& x) {
  return unary_of_input(x, "asinh", [](auto v) { return std::asinh(v); },
                        [](Arg g, Arg x) { return g * rsqrt(x * x + 1.0); });
}

Tensor acosh(const Tensor& x) {
  return unary_of_input(x, "acosh", [](auto v) { return std::acosh(v); },
                        [](Arg g, Arg x) { return g * rsqrt(x * x - 1.0); });
}

Tensor atanh(const Tensor& x) {
  return unary_of_input(x, "atanh", [](auto v) { return std::atanh(v); },
                        [](Arg g, Arg x) { return g * (1.0 / (1.0 - x * x)); });
}

Tensor reciprocal(const Tensor& x) {
  return unary_of_result(x, "reciprocal", [](auto v) { return decltype(v)(1) / v; },
                         [](Arg g, Arg y) { return -g * (y * y); });
}

Tensor rsqrt(const Tensor& x) {
  return unary_of_result(x, "rsqrt", [](auto v) { return decltype(v)(1) / std::sqrt(v); },
                         [](Arg g, Arg y) { return g * -0.5 * (y * y * y); });
}

Tensor log2(const Tensor& x) {
  return unary_of_input(x, "log2", [](auto v) { return std::log2(v); },
                        [](Arg g, Arg x) { return g / (x * 0.6931471805599453); });
}

Tensor log10(const Tensor& x) {
  return unary_of_input(x, "log10", [](auto v) { return std::log10(v); },
                        [](Arg g, Arg x) { return g / (x * 2.302585092994046); });
}

Tensor exp2(const Tensor& x) {
  return unary_of_result(x, "exp2", [](auto v) { return std::exp2(v); },
                         [](Arg g, Arg y) { return g * y * 0.6931471805599453; });
}

Tensor square(const Tensor& x) { return pow(x, 2); }

namespace {
// A rounding op: the same values for int64, gradient 0 everywhere (recorded, as sign is, so
// that floor(x) * x still differentiates).
template <class F>
Tensor rounding(const Tensor& x, const char* op, F&& f) {
  return record(kernels::map_any(x, [&](auto v) {
                  if constexpr (std::is_integral_v<decltype(v)>) return v;
                  else return static_cast<decltype(v)>(f(v));
                }),
                op, {x}, {}, [](const Tensor& g, const BackwardContext&) -> Grads { return {zeros_like(g)}; });
}
}  // namespace

Tensor floor(const Tensor& x) { return rounding(x, "floor", [](auto v) { return std::floor(v); }); }
Tensor ceil(const Tensor& x) { return rounding(x, "ceil", [](auto v) { return std::ceil(v); }); }
Tensor round(const Tensor& x) { return rounding(x, "round", [](auto v) { return std::nearbyint(v); }); }
Tensor trunc(const Tensor& x) { return rounding(x, "trunc", [](auto v) { return std::trunc(v); }); }

Tensor frac(const Tensor& x) {
  return record(kernels::map_any(x, [](auto v) {
                  if constexpr (std::is_integral_v<decltype(v)>) return decltype(v)(0);
                  else return v - std::trunc(v);
                }),
                "frac", {x}, {}, [](const Tensor& g, const BackwardContext&) -> Grads { return {g}; });
}

Tensor atan2(const Tensor& a, const Tensor& b) {
  const Dtype d = floating_result(a, b);
  return record(zip(a, b, "atan2", [](auto y, auto x) { return std::atan2(y, x); }, d), "atan2", {a, b}, {a, b},
                [](const Tensor& g, const BackwardContext& c) -> Grads {
                  const Tensor &a = c.saved(0), &b = c.saved(1);
                  const Tensor r = reciprocal(a * a + b * b);  // PyTorch's atan2_backward
                  return {c.needs(0) ? g * b * r : Tensor(), c.needs(1) ? g * -a * r : Tensor()};
                });
}

void activate_in_place(LinearActivation activation, const Tensor& y) {
  dispatch(y.dtype(), [&]<class T>() {
    T* p = kernels::ptr<T>(y);
    if constexpr (std::is_floating_point_v<T>) {
      if (activation == LinearActivation::sigmoid)
        return run_vectorised<T>(p, p, y.numel(), kernels::sigmoid_float, kernels::sigmoid_double);
      if (activation == LinearActivation::tanh)
        return run_vectorised<T>(p, p, y.numel(), kernels::tanh_float, kernels::tanh_double);
    }
    if (activation == LinearActivation::relu)
      kernels::map_into<T>(y, p, [](T v) { return static_cast<T>(relu_value(v)); });
  });
}

namespace {
// `use(op, f, expr)` with the derivative of `activation` (not none) written with its output y:
// f(g, y) for one element, expr(g, y) as recorded ops (for create_graph).
template <class Use>
Tensor with_derivative(LinearActivation activation, Use&& use) {
  switch (activation) {
    case LinearActivation::relu:  // d relu = [y > 0], so relu'(0) = 0; zero only where y <= 0, so
                                  // that a NaN passes it (PyTorch's)
      return use(
          "relu backward", [](auto gv, auto yv) { return yv <= 0 ? decltype(gv)(0) : gv; },
          [](const Tensor& g, const Tensor& y) { return zero_where(le(y, scalar_like(0, g)), g); });
    case LinearActivation::sigmoid:  // d sigmoid = y (1 - y)
      return use(
          "sigmoid backward", [](auto gv, auto yv) { return gv * yv * (decltype(yv)(1) - yv); },
          [](const Tensor& g, const Tensor& y) { return g * y * (1.0 - y); });
    case LinearActivation::tanh:  // d tanh = 1 - y^2
      return use(
          "tanh backward", [](auto gv, auto yv) { return gv * (decltype(yv)(1) - yv * yv); },
          [](const Tensor& g, const Tensor& y) { return g * (1.0 - y * y); });
    case LinearActivation::none:
      break;
  }
  fail("activation backward: no activation");
}
}  // namespace

Tensor activation_backward(LinearActivation activation, Tensor g, const BackwardContext& c) {
  if (activation == LinearActivation::none) return g;
  const Node& node = c.node();
  // A first-order backward into a buffer of g's own: the output's elements read from its buffer
  // (no tensor made for them); otherwise fused_backward with the output as a tensor.
  const void* y = grad_mode_enabled() || g.dtype() != node.dtype || g.shape() != node.shape || !owns_data(g)
                      ? nullptr
                      : c.result_data();
  return with_derivative(activation, [&](const char* op, auto f, auto expr) {
    if (!y) {
      const Tensor out = c.result();
      return fused_backward(std::move(g), out, op, f, [&](const Tensor& g) { return expr(g, out); });
    }
    dispatch_floating(g.dtype(), op, [&]<class T>() {
      T* gv = kernels::ptr<T>(g);
      const T* yv = static_cast<const T*>(y);
      kernels::parallel_for(g.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) gv[i] = static_cast<T>(f(gv[i], yv[i]));
      });
    });
    ++g.impl()->storage->version;
    return std::move(g);
  });
}

namespace {
// The rule of an activation op y = f(x) whose derivative activation_backward writes with y.
template <LinearActivation A>
constexpr auto activation_rule = [](Tensor g, const BackwardContext& c) -> Grads {
  return {activation_backward(A, std::move(g), c)};
};
}  // namespace

const char* activation_name(LinearActivation activation) {
  constexpr const char* kNames[] = {"none", "relu", "sigmoid", "tanh"};
  return kNames[static_cast<int>(activation)];
}

Tensor tanh(const Tensor& x) {
  return record(vectorised(x, "tanh", kernels::tanh_float, kernels::tanh_double), "tanh", {x}, {},
                activation_rule<LinearActivation::tanh>, true);
}
Tensor tanh(Tensor&& x) {
  return activate_temporary(LinearActivation::tanh, x) ? std::move(x) : tanh(std::as_const(x));
}

Tensor sigmoid(const Tensor& x) {
  return record(vectorised(x, "sigmoid", kernels::sigmoid_float, kernels::sigmoid_double), "sigmoid", {x}, {},
                activation_rule<LinearActivation::sigmoid>, true);
}
Tensor sigmoid(Tensor&& x) {
  return activate_temporary(LinearActivation::sigmoid, x) ? std::move(x) : sigmoid(std::as_const(x));
}

// Its gradient is [x > 0], 0 at NaN.
Tensor relu(const Tensor& x) {
  return record(kernels::map_any(x, relu_value), "relu", {x}, {}, activation_rule<LinearActivation::relu>, true);
}
Tensor relu(Tensor&& x) {
  return activate_temporary(LinearActivation::relu, x) ? std::move(x) : relu(std::as_const(x));
}

// Gradient passes where min <= x <= max (boundaries included, as PyTorch).
Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi) {
  if (lo && hi && *lo > *hi) fail("clamp: min {} is greater than max {} (input {})", *lo, *hi, describe(x));
  // double bounds make an int64 x's result floating (the scalar rule; PyTorch's): in int64,
  // clamp(i, -2.5, 4.5) put -2 where -7 was
  if (!is_floating(x.dtype())) return clamp(x.to(default_dtype()), lo, hi);
  const double l = lo.value_or(-INFINITY), h = hi.value_or(INFINITY);
  Tensor out = kernels::map_any(x, [l, h](auto v) {
    using T = decltype(v);
    return v != v ? v : (v < l ? static_cast<T>(l) : (v > h ? static_cast<T>(h) : v));
  });
  return record(out, "clamp", {x}, {x}, [l, h](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor outside = kernels::map_any(c.saved(0), [l, h](auto v) { return (v >= l && v <= h) ? 0 : 1; });
    return {zero_where(outside, g)};
  });
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  const Dtype d = result_type(a, b);
  const Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  const Tensor ca = kernels::cast(a, d), cb = kernels::cast(b, d), cc = kernels::cast(condition, Dtype::float64);
  Tensor out = kernels::empty(shape, d);
  dispatch(d, [&]<class T>() {
    const Shape sc = kernels::broadcast_strides(cc, shape), sa = kernels::broadcast_strides(ca, shape),
                sb = kernels::broadcast_strides(cb, shape);
    const double* pc = kernels::ptr<double>(cc);
    const T *pa = kernels::ptr<T>(ca), *pb = kernels::ptr<T>(cb);
    T* po = kernels::ptr<T>(out);
    int64_t i = 0;
    kernels::for_each_offset<3>(shape, {&sc, &sa, &sb},
                                [&](const auto& o) { po[i++] = pc[o[0]] != 0 ? pa[o[1]] : pb[o[2]]; });
  });
  return record(out, "where", {a, b}, {cc}, [](const Tensor& g, const BackwardContext& c) -> Grads {
    const Tensor& cond = c.saved(0);
    const Tensor zero = zeros_like(g);
    return {c.needs(0) ? where(cond, g, zero) : Tensor(), c.needs(1) ? where(cond, zero, g) : Tensor()};
  });
}

// ---------------------------------------------------------------- comparisons (no gradient)

Tensor eq(const Tensor& a, const Tensor& b) { return mask(a, b, "eq", [](double x, double y) { return x == y; }); }
Tensor ne(const Tensor& a, const Tensor& b) { return mask(a, b, "ne", [](double x, double y) { return x != y; }); }
Tensor lt(const Tensor& a, const Tensor& b) { return mask(a, b, "lt", [](double x, double y) { return x < y; }); }
Tensor le(const Tensor& a, const Tensor& b) { return mask(a, b, "le", [](double x, double y) { return x <= y; }); }
Tensor gt(const Tensor& a, const Tensor& b) { return mask(a, b, "gt", [](double x, double y) { return x > y; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return mask(a, b, "ge", [](double x, double y) { return x >= y; }); }
Tensor isfinite(const Tensor& x) {
  return kernels::map_any(x, [](auto v) { return std::isfinite(static_cast<double>(v)) ? 1 : 0; });
}

}  // namespace chainrule
