#include "helpers.hpp"

TEST_CASE("design.md example: sigmoid layer, backward, grad with create_graph") {
  cr::manual_seed(0);
  cr::Tensor X = cr::tensor({0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1}, {4, 3}, cr::float64);
  cr::Tensor W = cr::rand({3, 4}, cr::float64).requires_grad_();
  cr::Tensor h = cr::sigmoid(cr::matmul(X, W));
  cr::Tensor loss = cr::sum(cr::pow(h - 0.5, 2));
  loss.backward({}, true);
  CHECK(loss.grad_fn() != nullptr);
  CHECK(W.grad().defined());
  CHECK(W.grad().shape() == cr::Shape{3, 4});
  auto gs = cr::autograd::grad({loss}, {W}, {}, true, true);
  CHECK(gs[0].grad_fn() != nullptr);
  CHECK(cr::allclose(gs[0], W.grad()));
}
