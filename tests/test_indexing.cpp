// gather / scatter_add, index_select / index_add: values, gradients, range errors.
#include "helpers.hpp"

TEST_CASE("gather picks along a dim; its gradient scatters back") {
  cr::Tensor x = cr::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, cr::float64).requires_grad_();
  cr::Tensor idx = cr::tensor({2, 0, 1, 1}, {2, 2}, cr::int64);
  cr::Tensor y = cr::gather(x, 1, idx);
  CHECK(values(y) == std::vector<double>{3, 1, 5, 5});
  y.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{1, 0, 1, 0, 2, 0});
  using V = const std::vector<cr::Tensor>&;
  check_gradients([&](V v) { return cr::gather(v[0] * v[0], 1, idx); }, {input({2, 3})});
  check_gradients([&](V v) { return cr::gather(v[0], 0, cr::tensor({1, 0, 1}, {1, 3}, cr::int64)); }, {input({2, 3})});
}

TEST_CASE("scatter_add accumulates; gradients for both inputs") {
  cr::Tensor base = cr::zeros({2, 3}, cr::float64);
  cr::Tensor idx = cr::tensor({0, 0, 2}, {1, 3}, cr::int64);
  cr::Tensor src = cr::tensor({1, 2, 3}, {1, 3}, cr::float64);
  CHECK(values(cr::scatter_add(base, 1, idx, src)) == std::vector<double>{3, 0, 3, 0, 0, 0});
  using V = const std::vector<cr::Tensor>&;
  check_gradients([&](V v) { return cr::scatter_add(v[0], 1, idx, v[1] * v[1]); }, {input({2, 3}), input({1, 3})});
}

TEST_CASE("index_select and index_add, repeated indices accumulate") {
  cr::Tensor x = cr::arange(6, cr::float64).reshape({3, 2}).requires_grad_();
  cr::Tensor idx = cr::tensor({2, 0, 2}, cr::int64);
  cr::Tensor y = cr::index_select(x, 0, idx);
  CHECK(values(y) == std::vector<double>{4, 5, 0, 1, 4, 5});
  y.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{1, 1, 0, 0, 2, 2});
  using V = const std::vector<cr::Tensor>&;
  check_gradients([&](V v) { return cr::index_select(v[0] * v[0], 0, idx); }, {input({3, 2})});
  check_gradients([&](V v) { return cr::index_select(v[0], 1, cr::tensor({1, 1}, cr::int64)); }, {input({3, 2})});
  check_gradients([&](V v) { return cr::index_add(v[0], 0, idx, v[1] * 2.0); }, {input({3, 2}), input({3, 2})});
}

TEST_CASE("out-of-range and mistyped indices give errors naming op, value and shapes") {
  cr::Tensor x = cr::zeros({2, 3});
  check_error([&] { (void)cr::gather(x, 1, cr::tensor({3, 0}, {1, 2}, cr::int64)); },
              {"gather", "index 3", "size 3", "[2, 3]"});
  check_error([&] { (void)cr::gather(x, 1, cr::tensor({-1, 0}, {1, 2}, cr::int64)); }, {"gather", "index -1"});
  check_error([&] { (void)cr::gather(x, 1, cr::tensor({0, 0}, {1, 2})); }, {"gather", "int64", "float32"});
  check_error([&] { (void)cr::index_select(x, 0, cr::tensor({5}, cr::int64)); }, {"index_select", "index 5", "size 2"});
  check_error([&] { (void)cr::scatter_add(x, 0, cr::tensor({2}, {1, 1}, cr::int64), cr::zeros({1, 1})); },
              {"scatter_add", "index 2"});
  check_error([&] { (void)cr::index_add(x, 0, cr::tensor({0}, cr::int64), cr::zeros({2, 3})); },
              {"index_add", "[2, 3]"});
}
