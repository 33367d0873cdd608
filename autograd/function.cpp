#include "function.hpp"

#include "engine.hpp"
#include "kernels.hpp"

#include <mutex>
#include <set>

namespace chainrule::autograd {

namespace {
thread_local CallRecorder* g_recorder = nullptr;

// Nodes keep their op name as a C string; names of custom functions are interned here.
const char* intern(const std::string& name) {
  static std::mutex mutex;
  static std::set<std::string> names;
  std::lock_guard lock(mutex);
  return names.insert(name).first->c_str();
}
}  // namespace

CallRecorder::CallRecorder() : previous_(g_recorder) { g_recorder = this; }
CallRecorder::~CallRecorder() { g_recorder = previous_; }

void FunctionContext::save_for_backward(std::vector<Tensor> tensors) { to_save_ = std::move(tensors); }

std::vector<Tensor> FunctionContext::saved() const {
  if (!backward_) fail("FunctionContext::saved: only available in backward; forward saves with save_for_backward");
  std::vector<Tensor> out;
  for (size_t i = 0; i < saved_count_; ++i) out.push_back(backward_->saved(i));
  return out;
}

bool FunctionContext::needs_input_grad(size_t i) const { return i < needs_.size() && needs_[i]; }

Tensor apply_function(const std::string& name, const ForwardFunction& forward, const BackwardFunction& backward,
                      const std::vector<Tensor>& inputs) {
  if (!forward || !backward) fail("apply_function '{}': needs both a forward and a backward", name);
  if (g_recorder) {
    RecordedCall call{name, forward, backward, {}, {}};
    for (const auto& in : inputs) {
      call.inputs.push_back(in.defined() ? in.detach().clone() : Tensor());
      call.requires_grad.push_back(in.defined() && in.requires_grad());
    }
    g_recorder->calls.push_back(std::move(call));
  }
  auto ctx = std::make_shared<FunctionContext>();
  for (const auto& in : inputs) ctx->needs_.push_back(in.defined() && in.requires_grad() && grad_mode_enabled());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = forward(*ctx, inputs);
  }
  if (!out.defined()) fail("apply_function '{}': forward returned an undefined tensor", name);
  // A fresh handle, so the node never becomes the grad_fn of an input or of a saved tensor.
  out = out.detach();
  ctx->saved_count_ = ctx->to_save_.size();
  const std::vector<Tensor> saved = std::move(ctx->to_save_);
  ctx->to_save_.clear();
  const size_t n_inputs = inputs.size();
  return record(out, intern(name), std::span<const Tensor>(inputs), std::span<const Tensor>(saved),
                [ctx, backward, n_inputs, name](const Tensor& g, const BackwardContext& c) -> Grads {
                  ctx->backward_ = &c;
                  for (size_t i = 0; i < n_inputs; ++i) ctx->needs_[i] = c.needs(i);
                  const std::vector<Tensor> grads = backward(*ctx, g);
                  ctx->backward_ = nullptr;
                  if (grads.size() != n_inputs)
                    fail("backward of custom function '{}' returned {} gradients for {} inputs", name, grads.size(),
                         n_inputs);
                  return Grads(grads.begin(), grads.end());
                });
}

// ---------------------------------------------------------------- make_unary

namespace {

Tensor map_with(const Tensor& x, const std::function<double(double)>& f, const std::string& name) {
  return kernels::map_floating(x, name, [&f](auto v) { return f(static_cast<double>(v)); });
}

// g * h(v) in one pass (g and v have the same shape).
Tensor scaled_by(const Tensor& g, const Tensor& v, const std::function<double(double)>& h) {
  const Tensor gc = kernels::cast(g.contiguous(), v.dtype());
  Tensor out = kernels::empty(v.shape(), v.dtype());
  dispatch_floating(v.dtype(), "make_unary", [&]<class T>() {
    kernels::zip_into<T>(gc, v, v.shape(), kernels::ptr<T>(out),
                         [&h](T a, T b) { return static_cast<T>(a * h(static_cast<double>(b))); });
  });
  return out;
}

}  // namespace

std::function<Tensor(const Tensor&)> make_unary(UnaryDefinition def) {
  if (def.name.empty() || !def.f || !def.df) fail("make_unary: needs a name, f and df");
  auto d = std::make_shared<const UnaryDefinition>(std::move(def));
  // The derivative op D(g, x) = g * f'(x), recorded only when create_graph asks for it.
  auto derivative = [d](const Tensor& g, const Tensor& x) {
    return apply_function(
        d->name + "_derivative",
        [d](FunctionContext& ctx, const std::vector<Tensor>& in) {
          const Tensor v = d->derivative_of == DerivativeOf::input ? in[1] : map_with(in[1], d->f, d->name);
          ctx.save_for_backward({in[0], v});
          return scaled_by(in[0], v, d->df);
        },
        [d](FunctionContext& ctx, const Tensor& gg) -> std::vector<Tensor> {
          if (grad_mode_enabled())
            fail("'{}': third derivatives are not available for an activation defined by f, f' and f''; define it "
                 "by composition of chainrule ops instead",
                 d->name);
          const auto s = ctx.saved();  // s[0] = g, s[1] = x or y
          return {ctx.needs_input_grad(0) ? scaled_by(gg, s[1], d->df) : Tensor(),
                  ctx.needs_input_grad(1) ? scaled_by(gg * s[0], s[1], d->d2f) : Tensor()};  // d/dx g f'(x) = g f''(x)
        },
        {g, x});
  };
  return [d, derivative](const Tensor& x) {
    return apply_function(
        d->name,
        [d](FunctionContext& ctx, const std::vector<Tensor>& in) {
          const Tensor y = map_with(in[0], d->f, d->name);
          ctx.save_for_backward({in[0], y});
          return y;
        },
        [d, derivative](FunctionContext& ctx, const Tensor& g) -> std::vector<Tensor> {
          const auto s = ctx.saved();  // x, y
          if (!grad_mode_enabled()) return {scaled_by(g, d->derivative_of == DerivativeOf::input ? s[0] : s[1], d->df)};
          if (!d->d2f)
            fail("'{}': second derivatives need UnaryDefinition::d2f (or define the activation by composition of "
                 "chainrule ops)",
                 d->name);
          return {derivative(g, s[0])};
        },
        {x});
  };
}

}  // namespace chainrule::autograd
