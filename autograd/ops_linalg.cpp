// Linear algebra: matmul with PyTorch semantics. The 1-D cases are composed from the 2-D
// one with unsqueeze/squeeze; batch dims broadcast, and the engine sums a broadcast
// gradient back to each input's shape.
#include "engine.hpp"
#include "kernels.hpp"

namespace chainrule {

namespace {
// x @ y inside a backward rule, each operand optionally transposed (last two dims). Without
// create_graph the product goes straight to the kernel, which reads the transposed operands in
// place; with it, it is a recorded matmul of views, so that gradients of gradients work.
Tensor product(const Tensor& x, bool tx, const Tensor& y, bool ty) {
  if (!grad_mode_enabled()) return kernels::matmul(x, y, tx, ty);
  return matmul(tx ? x.transpose(-1, -2) : x, ty ? y.transpose(-1, -2) : y);
}

// A shape's leading dims as one: [..., k] -> [rows, k], the matrix a batch of rows makes (their
// product counted, not inferred with -1, which a last dim of 0 would leave ambiguous).
Shape rows_shape(const Shape& s) { return {Shape(s.begin(), s.end() - 1).numel(), s.back()}; }

// x as a matrix of rows: linear runs one GEMM for any number of leading dims. (The reshape
// apart, so that the usual 2-D case inlines: called, rows cost the XOR step 100 instructions.)
[[gnu::noinline]] Tensor reshaped_to_rows(const Tensor& x) { return x.reshape(rows_shape(x.shape())); }
inline Tensor rows(const Tensor& x) { return x.dim() == 2 ? x : reshaped_to_rows(x); }

// linear's node names by activation (join_activation would make them; these cost no lookup).
constexpr const char* kLinearNames[] = {"linear", "linear_relu", "linear_sigmoid", "linear_tanh"};
}  // namespace

Grads linear_backward(Tensor g, const BackwardContext& c) {
  // d/dx = g W, d/dW = g^T x over all rows (in W's own layout), d/db = g (the engine sums it
  // over the rows, broadcasting's adjoint).
  const Tensor g2 = rows(g);
  Tensor gx, gw;
  if (c.needs(0)) {
    gx = product(g2, false, c.saved(1), false);
    if (c.shape(0).size() != 2) gx = gx.reshape(c.shape(0));
  }
  if (c.needs(1)) gw = product(g2, true, rows(c.saved(0)), false);
  return {std::move(gx), std::move(gw), c.needs(2) ? std::move(g) : Tensor()};
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.dim() == 0 || b.dim() == 0)
    fail("matmul: both operands need at least one dimension, got {} @ {}", describe(a), describe(b));
  if (a.dtype() != b.dtype())
    fail("matmul: operands have different dtypes, {} @ {}; convert one with to()", describe(a), describe(b));
  if (a.dim() == 1 && b.dim() == 1) {
    if (a.numel() != b.numel()) fail("matmul: vector lengths differ, {} @ {}", describe(a), describe(b));
    return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  }
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(-1)).squeeze(-1);
  // (both have two or more dims from here: sizes read from the shapes, not through size()'s checks)
  const Shape &as = a.shape(), &bs = b.shape();
  if (as.back() != bs[bs.size() - 2])
    fail("matmul: inner dimensions do not match, {} @ {} ({} vs {})", describe(a), describe(b), as.back(),
         bs[bs.size() - 2]);
  if (a.dim() > 2 && b.dim() == 2) {
    // A batch by a matrix: the batch's rows as one matrix when they are one without a copy (as
    // PyTorch folds), so one product forward and b's gradient one product over all rows (a^T g),
    // where a product per batch element made a gradient per element to sum afterwards.
    const Shape rows = rows_shape(a.shape());
    if (view_strides(a.shape(), a.strides(), rows)) {
      Shape out = as;
      out[out.size() - 1] = bs[1];
      return matmul(a.reshape(rows), b).reshape(out);
    }
  }
  // When b is a transposed view (x @ W.t() in Linear), its gradient is produced as (G^T A)^T so
  // that, transposed back onto W, it is contiguous: accumulating it then needs no strided copy.
  const bool b_transposed =
      bs.size() == 2 && bs[0] > 1 && bs[1] > 1 && b.strides()[0] == 1 && b.strides()[1] == bs[0];
  return record(kernels::matmul(a, b), "matmul", {a, b},
                {keep_if(b.requires_grad(), a), keep_if(a.requires_grad(), b)},
                [b_transposed](const Tensor& g, const BackwardContext& c) -> Grads {
                  Tensor ga, gb;
                  if (c.needs(0)) ga = product(g, false, c.saved(1), true);  // dA = G B^T
                  if (c.needs(1))                                           // dB = A^T G
                    gb = b_transposed && g.dim() == 2 && c.saved(0).dim() == 2
                             ? product(g, true, c.saved(0), false).t()
                             : product(c.saved(0), true, g, false);
                  return {std::move(ga), std::move(gb)};
                });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return linear(x, weight, bias, LinearActivation::none);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation activation) {
  // (sizes read from the shapes once their dims are checked: size(d) is a call that checks d)
  if (x.dim() == 0 || weight.dim() != 2 || x.shape().back() != weight.shape()[1] ||
      (bias.defined() && (bias.dim() != 1 || bias.shape()[0] != weight.shape()[0])))
    fail("linear: expected x [..., in], weight [out, in], bias [out]; got x {}, weight {}, bias {}", describe(x),
         describe(weight), describe(bias));
  if (weight.dtype() != x.dtype() || (bias.defined() && bias.dtype() != x.dtype()))
    fail("linear: x, weight and bias need one dtype; got x {}, weight {}, bias {}", describe(x),
         describe(weight), describe(bias));
  if (activation != LinearActivation::none && !is_floating(x.dtype())) {  // an int64 product: the ops' own promotion
    const Tensor z = linear(x, weight, bias);
    return activation == LinearActivation::relu      ? relu(z)
           : activation == LinearActivation::sigmoid ? sigmoid(z)
                                                     : tanh(z);
  }
  Shape shape = x.shape();
  shape[shape.size() - 1] = weight.shape()[0];
  Tensor y = kernels::matmul(rows(x), weight, false, true, bias);
  if (activation != LinearActivation::none) activate_in_place(activation, y);  // (before a reshape to a view)
  if (x.dim() != 2) y = y.reshape(shape);
  const char* name = kLinearNames[static_cast<int>(activation)];
  Tensor z = record(std::move(y), name, {x, weight, bias},
                    {keep_if(weight.requires_grad(), x), keep_if(x.requires_grad(), weight)},
                    [](Tensor g, const BackwardContext& c) { return linear_backward(std::move(g), c); });
  if (activation != LinearActivation::none) join_activation(z, activation, name);
  return z;
}

}  // namespace chainrule
