// Linear algebra: matmul with PyTorch semantics. The 1-D cases are composed from the 2-D
// one with unsqueeze/squeeze; batch dims broadcast, and the engine sums a broadcast
// gradient back to each input's shape.
#include "engine.hpp"
#include "kernels.hpp"

namespace chainrule {

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
  if (a.size(-1) != b.size(-2))
    fail("matmul: inner dimensions do not match, {} @ {} ({} vs {})", describe(a), describe(b), a.size(-1), b.size(-2));
  return record(kernels::matmul(a, b), "matmul", {a, b},
                {b.requires_grad() ? a : Tensor(), a.requires_grad() ? b : Tensor()},
                [](const Tensor& g, const BackwardContext& c) -> Grads {
                  return {c.needs(0) ? matmul(g, c.saved(1).transpose(-1, -2)) : Tensor(),   // dA = G B^T
                          c.needs(1) ? matmul(c.saved(0).transpose(-1, -2), g) : Tensor()};  // dB = A^T G
                });
}

}  // namespace chainrule
