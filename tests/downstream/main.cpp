// A downstream program: includes the installed headers, links the installed libraries.
#include <chainrule.hpp>

namespace cr = chainrule;

int main() {
  cr::Tensor x = cr::tensor(1.5, cr::float64).requires_grad_();
  auto dy = cr::autograd::grad({cr::pow(x, 3)}, {x}, {}, false, true)[0];
  const double d2 = cr::autograd::grad({dy}, {x})[0].item<double>();
  fmt::print("chainrule {}: d2/dx2 x^3 at 1.5 = {}\n", cr::version(), d2);
  return d2 == 9.0 ? 0 : 1;
}
