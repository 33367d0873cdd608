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

TEST_CASE("gather and scatter_add on a 0-d input: one element along dim 0 (index 0), as index_select") {
  // They indexed the scalar's missing dimension 0 (an unused slot of its Shape for the size and
  // the stride): the range check compared against whatever that slot held.
  cr::Tensor s = cr::tensor(3.0, cr::float64).requires_grad_();
  const cr::Tensor i0 = cr::tensor(0.0, cr::int64);
  cr::Tensor g = cr::gather(s, 0, i0);
  CHECK(g.shape() == cr::Shape{});
  CHECK(g.item<double>() == 3);
  CHECK(cr::gather(s, -1, i0).item<double>() == 3);
  (g * 2.0).backward();
  CHECK(s.grad().item<double>() == 2);
  const cr::Tensor two = cr::tensor(2.0, cr::float64);
  CHECK(cr::scatter_add(s.detach(), 0, i0, two).item<double>() == 5);
  using V = const std::vector<cr::Tensor>&;
  check_gradients([&](V v) { return cr::gather(v[0] * v[0], 0, i0); }, {input({})});
  check_gradients([&](V v) { return cr::scatter_add(v[0], 0, i0, v[1] * v[1]); }, {input({}), input({}, -2, 2, 9)});
  const cr::Tensor i1 = cr::tensor(1.0, cr::int64);
  check_error([&] { (void)cr::gather(s, 0, i1); }, {"gather", "index 1", "dimension 0 of size 1", "[] float64"});
  check_error([&] { (void)cr::scatter_add(s.detach(), 0, i1, two); }, {"scatter_add", "index 1", "size 1"});
  check_error([&] { (void)cr::gather(s, 0, cr::tensor({0}, cr::int64)); }, {"gather", "same rank"});
  // index_select and index_add, which already took a scalar as one element
  CHECK(cr::index_select(s, 0, cr::tensor({0, 0}, cr::int64)).item<double>() == 3);
  check_error([&] { (void)cr::index_select(s, 0, cr::tensor({1}, cr::int64)); }, {"index_select", "index 1", "size 1"});
}

TEST_CASE("index_select and index_add along every dim of a non-contiguous 4-d tensor, against plain loops") {
  // The kernels see x as [outer, n, inner] rows (a copy first when x is a view and as many
  // rows are picked as it has; with fewer, a view's slices are read where they are), split
  // between threads when large: every dim, a transposed input and source, repeated, single and
  // empty index lists, int64 and float32, and a size past the threads' grain, checked element by
  // element.
  const cr::Tensor base = cr::arange(2 * 3 * 4 * 5500, cr::float64).reshape({2, 3, 4, 5500});
  for (const cr::Tensor& x : {base, base.transpose(1, 3), base.to(cr::int64).transpose(0, 2), base.to(cr::float32)})
    for (int64_t d = 0; d < 4; ++d)
      for (const std::vector<double>& picks : {std::vector<double>{1, 0, 1, 1}, std::vector<double>{1}, std::vector<double>{}}) {
        CAPTURE(d);
        CAPTURE(cr::describe(x));
        const cr::Tensor idx = cr::tensor(picks, {static_cast<int64_t>(picks.size())}, cr::int64);
        const cr::Tensor y = cr::index_select(x, d, idx);
        cr::Shape shape = x.shape();
        shape[static_cast<size_t>(d)] = static_cast<int64_t>(picks.size());
        REQUIRE(y.shape() == shape);
        REQUIRE(y.dtype() == x.dtype());
        const std::vector<double> xs = values(x), ys = values(y);
        // the element of y at (a, b, c, e) is x's with the d-th coordinate replaced by picks[...]
        const auto at = [](const cr::Shape& s, std::array<int64_t, 4> i) {
          return ((i[0] * s[1] + i[1]) * s[2] + i[2]) * s[3] + i[3];
        };
        // index_add of a transposed source of y's shape onto zeros: each x position gets the
        // sum of the source rows picked for it
        const cr::Tensor src = (cr::arange(static_cast<double>(y.numel()), x.dtype()).reshape(
                                    {shape[3], shape[2], shape[1], shape[0]}) + 1.0)
                                   .to(x.dtype())
                                   .permute({3, 2, 1, 0});
        const std::vector<double> added = values(cr::index_add(cr::zeros(x.shape(), x.dtype()), d, idx, src));
        const std::vector<double> ss = values(src);
        std::vector<double> expected(xs.size(), 0.0);
        bool same = true;
        for (int64_t a = 0; a < shape[0]; ++a)
          for (int64_t b = 0; b < shape[1]; ++b)
            for (int64_t c = 0; c < shape[2]; ++c)
              for (int64_t e = 0; e < shape[3]; ++e) {
                std::array<int64_t, 4> i{a, b, c, e}, from = i;
                from[static_cast<size_t>(d)] = static_cast<int64_t>(picks[static_cast<size_t>(i[static_cast<size_t>(d)])]);
                same = same && ys[static_cast<size_t>(at(shape, i))] == xs[static_cast<size_t>(at(x.shape(), from))];
                expected[static_cast<size_t>(at(x.shape(), from))] += ss[static_cast<size_t>(at(shape, i))];
              }
        CHECK(same);
        CHECK(added == expected);
      }
}
