// Shape ops: which are views (share storage), values, gradients, and errors.
#include "helpers.hpp"

TEST_CASE("views share storage; reshape of a non-contiguous tensor copies") {
  cr::Tensor x = cr::arange(6, cr::float64).reshape({2, 3});
  cr::Tensor t = x.t();
  CHECK(t.shape() == cr::Shape{3, 2});
  CHECK_FALSE(t.is_contiguous());
  CHECK(values(t) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(values(t.contiguous()) == std::vector<double>{0, 3, 1, 4, 2, 5});
  x.data<double>()[1] = 10;
  CHECK(values(t)[2] == 10);                              // t is a view of x
  CHECK(values(x.reshape({3, 2}))[1] == 10);              // so is reshape of contiguous x
  CHECK(values(x.view({6}))[1] == 10);
  CHECK(values(x.select(1, 1)) == std::vector<double>{10, 4});
  CHECK(values(x.narrow(1, 1, 2)) == std::vector<double>{10, 2, 4, 5});
  cr::Tensor r = t.reshape({6});  // copies
  x.data<double>()[0] = -1;
  CHECK(values(r)[0] == 0);
  check_error([&] { (void)t.view({6}); }, {"view", "[3, 2]", "[6]"});
  CHECK(values(x.clone()) == values(x));
}

TEST_CASE("reshape, view, squeeze and unsqueeze of a non-contiguous tensor are views when its strides allow, as in PyTorch") {
  // They copied whenever the input was not contiguous, so an in-place write through
  // x.select(1, 1).unsqueeze(1) silently left x as it was. PyTorch's rule (computeStride): a view
  // when each run of dims the new shape merges or splits is contiguous within itself.
  cr::Tensor x = cr::arange(24, cr::float64).reshape({2, 3, 4});
  const auto shares = [&](const cr::Tensor& v) { return v.impl()->storage.get() == x.impl()->storage.get(); };
  const cr::Tensor row = x.select(1, 1);  // [2, 4], strides [12, 1]
  CHECK(row.unsqueeze(1).strides() == cr::Shape{12, 4, 1});  // the strides python3-torch gives
  CHECK(shares(row.unsqueeze(1)));
  CHECK(x.transpose(0, 2).unsqueeze(0).strides() == cr::Shape{4, 1, 4, 12});
  CHECK(shares(x.transpose(0, 2).unsqueeze(0)));
  CHECK(x.narrow(1, 0, 1).squeeze(1).strides() == cr::Shape{12, 1});
  CHECK(shares(x.narrow(1, 0, 1).squeeze(1)));
  CHECK(shares(x.narrow(1, 0, 1).squeeze()));
  const cr::Tensor tail = x.narrow(1, 1, 2);  // [2, 2, 4], strides [12, 4, 1]: dims 1, 2 contiguous together
  CHECK(tail.reshape({2, 8}).strides() == cr::Shape{12, 1});
  CHECK(shares(tail.reshape({2, 8})));
  CHECK(tail.view({2, 2, 2, 2}).strides() == cr::Shape{12, 4, 2, 1});
  CHECK(x.narrow(2, 0, 2).reshape({2, 3, 2, 1}).strides() == cr::Shape{12, 4, 1, 1});
  CHECK(x.narrow(2, 0, 2).reshape({-1, 2}).strides() == cr::Shape{4, 1});
  CHECK_FALSE(shares(tail.reshape({4, 4})));  // merges dims 0 and 1, which are not: a copy
  CHECK_FALSE(shares(row.reshape({-1})));
  CHECK(values(tail.reshape({4, 4})) == values(tail.contiguous()));
  check_error([&] { (void)tail.view({4, 4}); }, {"view", "[2, 2, 4]", "[4, 4]", "reshape"});
  // an in-place write through such a view reaches x (it went into a copy)
  row.unsqueeze(1).fill_(-1.0);
  CHECK(values(x.select(1, 1)) == std::vector<double>(8, -1.0));
  tail.reshape({2, 8}).select(1, 7).fill_(-2.0);
  CHECK(x.to_vector<double>()[23] == -2.0);
  // and is recorded as one on x's elements
  using V = const std::vector<cr::Tensor>&;
  check_gradients(
      [](V v) {
        cr::Tensor y = v[0] * 1.0;
        y.select(1, 1).unsqueeze(1).mul_(v[1]);
        y.narrow(1, 1, 2).reshape({2, 8}).narrow(1, 2, 3).add_(v[1].select(0, 0).narrow(0, 0, 3));
        return y * y;
      },
      {input({2, 3, 4}), input({1, 4})});
}

TEST_CASE("reshape infers -1 and validates sizes") {
  cr::Tensor x = cr::zeros({2, 3, 4});
  CHECK(x.reshape({-1, 4}).shape() == cr::Shape{6, 4});
  CHECK(x.flatten().shape() == cr::Shape{24});
  CHECK(x.flatten(1).shape() == cr::Shape{2, 12});
  check_error([&] { (void)x.reshape({5, -1}); }, {"reshape", "[5, -1]", "[2, 3, 4]"});
  check_error([&] { (void)x.reshape({-1, -1}); }, {"reshape", "-1"});
  check_error([&] { (void)x.reshape({7}); }, {"reshape", "[7]", "24 elements"});
}

TEST_CASE("permute, transpose, expand, squeeze, unsqueeze") {
  cr::Tensor x = cr::arange(24, cr::float64).reshape({2, 3, 4});
  CHECK(x.permute({2, 0, 1}).shape() == cr::Shape{4, 2, 3});
  CHECK(values(x.permute({2, 0, 1}))[1] == 4);  // out[0,0,1] = x[0,1,0]
  CHECK(x.transpose(0, -1).shape() == cr::Shape{4, 3, 2});
  cr::Tensor c = cr::tensor({1, 2, 3}, cr::float64).reshape({3, 1});
  CHECK(values(c.expand({2, 3, 4}))[4] == 2);
  CHECK(c.expand({3, -1}).shape() == cr::Shape{3, 1});
  CHECK(c.unsqueeze(0).shape() == cr::Shape{1, 3, 1});
  CHECK(c.squeeze().shape() == cr::Shape{3});
  CHECK(c.squeeze(0).shape() == cr::Shape{3, 1});
  CHECK(c.unsqueeze(-1).shape() == cr::Shape{3, 1, 1});
  check_error([&] { (void)c.expand({3, 2, 2}); }, {"expand", "[3, 1]", "[3, 2, 2]"});
  check_error([&] { (void)x.permute({0, 0, 1}); }, {"permute", "repeats"});
  check_error([&] { (void)x.select(1, 3); }, {"select", "index 3", "size 3"});
}

TEST_CASE("slicing: negative and clipped bounds, steps") {
  cr::Tensor x = cr::arange(10, cr::float64);
  CHECK(values(x.slice(0, 2, 5)) == std::vector<double>{2, 3, 4});
  CHECK(values(x.slice(0, -3, std::nullopt)) == std::vector<double>{7, 8, 9});
  CHECK(values(x.slice(0, 1, 100, 3)) == std::vector<double>{1, 4, 7});
  CHECK(x.slice(0, 5, 2).numel() == 0);
  CHECK(x[3].item<double>() == 3);
  CHECK(x[-1].item<double>() == 9);
  check_error([&] { (void)x.slice(0, 0, 5, 0); }, {"slice", "step"});
}

TEST_CASE("shape op gradients") {
  const cr::Tensor x = input({2, 3, 4});
  using V = const std::vector<cr::Tensor>&;
  check_gradients([](V v) { return (v[0] * v[0]).reshape({6, 4}).t(); }, {x});
  check_gradients([](V v) { return v[0].permute({1, 2, 0}) * cr::arange(2, cr::float64); }, {x});
  check_gradients([](V v) { return v[0].slice(1, 0, 3, 2) * v[0].select(1, 1).unsqueeze(1); }, {x});
  check_gradients([](V v) { return v[0].narrow(2, 1, 2).squeeze() * 3.0; }, {x});
  check_gradients([](V v) { return v[0].select(0, 1).expand({5, 3, 4}); }, {x});
  check_gradients([](V v) { return v[0].transpose(0, 2).contiguous().flatten() * v[0].flatten(); }, {x});
  check_gradients([](V v) { return v[0].clone() * v[0]; }, {x});
}

TEST_CASE("the second derivative through an empty slice with a step") {
  // slice_backward's own backward re-slices the gradient from start to start + (n - 1) * step + 1:
  // for n = 0 and step 3 that is -2, which counts from the end, so the double backward of
  // x.slice(1, 0, 0, 3) returned a [2, 1] gradient for a [2, 0] input (an Error; PyTorch: zeros)
  check_gradients([](const std::vector<cr::Tensor>& v) { return v[0].slice(1, 1, 4, 2) * v[0].slice(1, 0, 0, 3).sum(); },
                  {input({2, 4})});
}

TEST_CASE("to(dtype) passes the gradient back in the input's dtype") {
  cr::Tensor x = cr::tensor({1.5, -2.0}, cr::float64).requires_grad_();
  (x.to(cr::float32) * cr::tensor({3.0, 4.0}, cr::float32)).sum().backward();
  CHECK(x.grad().dtype() == cr::float64);
  CHECK(values(x.grad()) == std::vector<double>{3, 4});
  CHECK_FALSE(x.to(cr::int64).requires_grad());
  CHECK(x.to(cr::int64).to_vector<int64_t>() == std::vector<int64_t>{1, -2});
}

TEST_CASE("cat and stack: values, gradients, errors") {
  cr::Tensor a = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::float64), b = cr::tensor({5, 6}, {2, 1}, cr::float64);
  CHECK(values(cr::cat({a, b}, 1)) == std::vector<double>{1, 2, 5, 3, 4, 6});
  CHECK(cr::stack({a, a}, 0).shape() == cr::Shape{2, 2, 2});
  CHECK(cr::stack({a, a}, 2).shape() == cr::Shape{2, 2, 2});
  CHECK(values(cr::stack({a, a * 2.0}, -1)) == std::vector<double>{1, 2, 2, 4, 3, 6, 4, 8});
  using V = const std::vector<cr::Tensor>&;
  check_gradients([](V v) { return cr::cat({v[0], v[1] * v[1], v[0]}, 1); }, {input({2, 3}), input({2, 1})});
  check_gradients([](V v) { return cr::stack({v[0], v[1]}, 1); }, {input({2, 3}), input({2, 3})});
  check_error([&] { (void)cr::cat({a, b}, 0); }, {"cat", "[2, 1]", "[2, 2]"});
  check_error([&] { (void)cr::stack({a, b}); }, {"stack", "[2, 1]", "[2, 2]"});
}

TEST_CASE("cat and stack promote mixed dtypes, as PyTorch's; each gradient comes back in its input's dtype") {
  // both were an Error naming "cat" (stack's too); python3-torch 1.13 gives these dtypes
  const cr::Tensor f32 = cr::tensor({1.5, 2.5}, cr::float32).requires_grad_();
  const cr::Tensor f64 = cr::tensor({3.25}, cr::float64).requires_grad_();
  const cr::Tensor i64 = cr::tensor({7, 8}, cr::int64);
  cr::Tensor y = cr::cat({f32, f64});
  CHECK(y.dtype() == cr::float64);
  CHECK(values(y) == std::vector<double>{1.5, 2.5, 3.25});
  cr::sum(y * cr::tensor({1.0, 2.0, 3.0}, cr::float64)).backward();
  CHECK(f32.grad().dtype() == cr::float32);
  CHECK(values(f32.grad()) == std::vector<double>{1, 2});
  CHECK(f64.grad().dtype() == cr::float64);
  CHECK(values(f64.grad()) == std::vector<double>{3});
  CHECK(cr::cat({i64, f32}).dtype() == cr::float32);
  CHECK(values(cr::cat({i64, f32})) == std::vector<double>{7, 8, 1.5, 2.5});
  CHECK(cr::cat({i64, i64}).dtype() == cr::int64);
  CHECK(cr::stack({i64, f32}).dtype() == cr::float32);
  CHECK(cr::stack({f32.sum(), f64.sum()}).dtype() == cr::float64);
  // a skipped 1-d empty tensor takes part in the dtype, as in PyTorch (it was ignored)
  CHECK(cr::cat({cr::empty({0}, cr::float64), cr::zeros({2, 3}, cr::float32)}).dtype() == cr::float64);
}

TEST_CASE("cat skips 1-d empty tensors, as PyTorch's, so that a loop can start from one") {
  // PyTorch's documented rule (out = torch.cat([out, x]) from out = torch.empty(0)); it was an Error
  cr::Tensor out = cr::empty({0}, cr::float64).requires_grad_();
  const cr::Tensor x = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::float64).requires_grad_();
  cr::Tensor y = cr::cat({out, x * 2.0}, 1);
  CHECK(y.shape() == cr::Shape{2, 2});
  y = cr::cat({y, out, x}, -1);
  CHECK(y.shape() == cr::Shape{2, 4});
  CHECK(values(y) == std::vector<double>{2, 4, 1, 2, 6, 8, 3, 4});
  cr::sum(y * y).backward();
  CHECK(values(x.grad()) == std::vector<double>{10, 20, 30, 40});  // 8x from 2x's path, 2x from x's
  CHECK(out.grad().shape() == cr::Shape{0});
  CHECK(cr::cat({out, out}, 0).shape() == cr::Shape{0});
  CHECK(cr::cat({out, cr::arange(3, cr::float64)}, 0).shape() == cr::Shape{3});
  // an empty tensor of another shape is not skipped
  check_error([&] { (void)cr::cat({cr::empty({0, 3}), cr::zeros({2, 2})}, 0); }, {"cat", "[2, 2]", "[0, 3]"});
}

TEST_CASE("zero-size tensors work where legal") {
  cr::Tensor e = cr::zeros({0, 3}, cr::float64).requires_grad_();
  CHECK((e * 2.0).shape() == cr::Shape{0, 3});
  CHECK(cr::sum(e * 2.0).item<double>() == 0);
  cr::sum(e * 2.0).backward();
  CHECK(e.grad().shape() == cr::Shape{0, 3});
  CHECK(cr::cat({e, cr::ones({2, 3}, cr::float64)}, 0).shape() == cr::Shape{2, 3});
  CHECK(cr::sum(e, 0).shape() == cr::Shape{3});
}

TEST_CASE("a tensor without elements is contiguous, whatever its strides (PyTorch's rule)") {
  // zeros({2, 0}) has strides [1, 1] (a size-0 dimension counts as 1, as in PyTorch), which the
  // row-major test read as not contiguous: an in-place op through a view of such a tensor was
  // then an Error ("a view of a tensor whose history cannot be followed")
  CHECK(cr::zeros({2, 0}).is_contiguous());
  CHECK(cr::zeros({0, 3}).is_contiguous());
  const cr::Tensor y = cr::zeros({2, 3}, cr::float64).requires_grad_();
  CHECK(y.slice(1, 2, 2, 2).is_contiguous());  // [2, 0], strides [3, 2]
  CHECK_FALSE(y.t().is_contiguous());
  cr::Tensor c = y.slice(1, 2, 2, 2) * 1.0;
  c.narrow(0, 0, 1).zero_();
  CHECK(c.shape() == cr::Shape{2, 0});
  cr::sum(c).backward();
  CHECK(values(y.grad()) == std::vector<double>(6, 0.0));
}

TEST_CASE("a 0-d tensor: dims 0 and -1 where PyTorch takes them, an Error for size and other dims") {
  cr::Tensor s = cr::tensor(3.0, cr::float64).requires_grad_();
  // size(0) read a dimension a scalar does not have (whatever the Shape's unused slot held)
  check_error([&] { (void)s.size(0); }, {"size", "no dimensions", "dimension 0", "[] float64"});
  check_error([&] { (void)s.size(-1); }, {"size", "no dimensions", "dimension -1"});
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  // transpose and flatten checked no dims on a scalar: any pair passed
  CHECK(s.transpose(0, -1).shape() == cr::Shape{});
  CHECK(values(s.transpose(-1, 0)) == std::vector<double>{3});
  check_error([&] { (void)s.transpose(0, 1); }, {"transpose", "dimension 1", "rank 0"});
  check_error([&] { (void)s.transpose(2, 0); }, {"transpose", "dimension 2"});
  CHECK(s.flatten().shape() == cr::Shape{1});
  CHECK(s.flatten(0, -1).shape() == cr::Shape{1});
  check_error([&] { (void)s.flatten(0, 1); }, {"flatten", "dimension 1", "rank 0"});
  check_error([&] { (void)s.slice(0, 0, 1); }, {"slice", "0-d"});
  check_error([&] { (void)s.select(0, 0); }, {"select", "0-d"});
  check_error([&] { (void)s.narrow(0, 0, 1); }, {"narrow", "0-d"});
  // unsqueeze and stack insert a dim, so they take one more position; the message names the
  // input's rank (it said "a tensor of rank 1" of the scalar, the rank of the result)
  CHECK(s.unsqueeze(-1).shape() == cr::Shape{1});
  check_error([&] { (void)s.unsqueeze(2); }, {"unsqueeze", "dimension 2", "tensor of rank 0", "[-1, 0]"});
  check_error([&] { (void)cr::ones({2}).unsqueeze(-3); }, {"unsqueeze", "dimension -3", "tensor of rank 1", "[-2, 1]"});
  check_error([&] { (void)cr::stack({s, s}, 2); }, {"stack", "dimension 2", "tensors of rank 0", "[-1, 0]"});
  CHECK(cr::sum(s, 0).item<double>() == 3);  // reductions take dim 0 of a scalar, as in PyTorch
  CHECK(cr::amax(s, cr::Shape{-1}).item<double>() == 3);
  cr::sum(s.transpose(0, 0) * s.flatten(-1, 0)).backward();
  CHECK(s.grad().item<double>() == 6);  // d(s * s)/ds
}

TEST_CASE("narrow is strict where slice clips; expand rejects negative sizes") {
  cr::Tensor m = cr::arange(6, cr::float64).reshape({2, 3});
  // narrow(1, -1, 1) was slice(-1, 0): empty instead of the last column
  CHECK(values(m.narrow(1, -1, 1)) == std::vector<double>{2, 5});
  CHECK(values(m.narrow(1, -3, 2)) == std::vector<double>{0, 1, 3, 4});
  CHECK(m.narrow(1, 3, 0).shape() == cr::Shape{2, 0});
  CHECK(values(m.narrow(0, 1, 1)) == std::vector<double>{3, 4, 5});
  // narrow(1, 2, 2) clipped silently to one column
  check_error([&] { (void)m.narrow(1, 2, 2); }, {"narrow", "start 2", "length 2", "dimension 1 of size 3", "[2, 3]"});
  check_error([&] { (void)m.narrow(1, 4, 0); }, {"narrow", "start 4", "out of range"});
  check_error([&] { (void)m.narrow(1, -4, 1); }, {"narrow", "start -4"});
  check_error([&] { (void)m.narrow(0, 0, -1); }, {"narrow", "length -1"});
  check_error([&] { (void)cr::tensor(1.0).narrow(0, 0, 1); }, {"narrow", "0-d"});
  // expand({-1, 2, 3}) made a tensor of shape [-1, 2, 3]; a size-1 dim took -2 the same way
  check_error([&] { (void)m.expand({-1, 2, 3}); }, {"expand", "[2, 3]", "[-1, 2, 3]", "dimension 0", "new leading"});
  cr::Tensor c = cr::tensor({1, 2, 3}, cr::float64).reshape({3, 1});
  check_error([&] { (void)c.expand({3, -2}); }, {"expand", "[3, 1]", "dimension 1", "size -2"});
  check_error([&] { (void)c.expand({-3, 3, 1}); }, {"expand", "size -3"});
  CHECK(c.expand({2, -1, 4}).shape() == cr::Shape{2, 3, 4});  // -1 keeps an existing dimension
}

TEST_CASE("flip and roll: values as PyTorch's, gradients, errors") {
  const cr::Tensor x = cr::arange(6, cr::float64).reshape({2, 3});
  CHECK(values(cr::flip(x, {1})) == std::vector<double>{2, 1, 0, 5, 4, 3});
  CHECK(values(cr::flip(x, {0, -1})) == std::vector<double>{5, 4, 3, 2, 1, 0});
  CHECK(values(cr::flip(x.t(), {0})) == std::vector<double>{2, 5, 1, 4, 0, 3});  // a non-contiguous input
  CHECK(values(cr::flip(x, {})) == values(x));
  // torch.roll(arange(6).reshape(2, 3), 1, 1) and (1, -1), (0, 1); no dims: over the flattened tensor
  CHECK(values(cr::roll(x, {1}, {1})) == std::vector<double>{2, 0, 1, 5, 3, 4});
  CHECK(values(cr::roll(x, {-1, 4}, {0, 1})) == std::vector<double>{5, 3, 4, 2, 0, 1});
  CHECK(values(cr::roll(x, {2})) == std::vector<double>{4, 5, 0, 1, 2, 3});
  CHECK(values(cr::roll(x, {-7}, {1})) == std::vector<double>{1, 2, 0, 4, 5, 3});  // -7 = 2 mod 3
  CHECK(cr::roll(cr::zeros({0, 3}), {1}, {0}).shape() == cr::Shape{0, 3});
  const cr::Tensor a = input({3, 4}, -2, 2, 31);
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::flip(v[0], {0, 1}) * v[0]; }, {a});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::roll(v[0], {1, -2}, {0, 1}) * v[0]; }, {a});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::roll(v[0].t(), {5}) * v[0].t(); }, {a});
  check_error([&] { (void)cr::flip(x, {0, 0}); }, {"flip", "dim 0", "twice"});
  check_error([&] { (void)cr::flip(x, {2}); }, {"flip", "2"});
  check_error([&] { (void)cr::roll(x, {1, 2}, {0}); }, {"roll", "2 shifts", "1 dims"});
  check_error([&] { (void)cr::roll(x, {1, 2}); }, {"roll", "2 shifts", "no dims"});
}

TEST_CASE("repeat tiles as torch.repeat (leading new dims), its gradient sums the tiles") {
  const cr::Tensor x = cr::tensor({1.0, 2.0, 3.0, 4.0}, {2, 2}, cr::float64);
  CHECK(cr::repeat(x, {1, 2}).shape() == cr::Shape{2, 4});
  CHECK(values(cr::repeat(x, {1, 2})) == std::vector<double>{1, 2, 1, 2, 3, 4, 3, 4});
  CHECK(values(cr::repeat(x, {2, 1})) == std::vector<double>{1, 2, 3, 4, 1, 2, 3, 4});
  CHECK(cr::repeat(x, {3, 1, 1}).shape() == cr::Shape{3, 2, 2});
  CHECK(cr::repeat(x, {0, 1}).shape() == cr::Shape{0, 2});
  CHECK(cr::repeat(cr::ones({2, 2, 2, 2}), {2, 2, 2, 2, 2}).shape() == cr::Shape{2, 4, 4, 4, 4});  // was over 8 dims
  const cr::Tensor same = cr::repeat(x, {1, 1});  // a copy, as torch's
  CHECK(same.impl()->storage.get() != x.impl()->storage.get());
  CHECK(values(same) == values(x));
  CHECK(values(cr::repeat(cr::tensor(5.0), {3})) == std::vector<double>{5, 5, 5});
  CHECK(cr::repeat(cr::tensor({7, 8}, cr::int64), {2}).to_vector<int64_t>() == std::vector<int64_t>{7, 8, 7, 8});
  cr::Tensor l = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  (cr::repeat(l, {3, 2}) * cr::arange(12, cr::float64).reshape({3, 4})).sum().backward();
  // element 0 lands at columns 0 and 2 of every row: 0 + 2 + 4 + 6 + 8 + 10
  CHECK(values(l.grad()) == std::vector<double>{30, 36});
  const cr::Tensor a = input({2, 3}, -2, 2, 32);
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::repeat(v[0].t(), {2, 1, 2}) * 1.5; }, {a});
  check_error([&] { (void)cr::repeat(x, {2}); }, {"repeat", "[2]", "[2, 2]"});
  check_error([&] { (void)cr::repeat(x, {2, -1}); }, {"repeat", "-1"});
}

TEST_CASE("tril and triu keep a band (0 elsewhere, also where x is NaN or inf), gradients only inside") {
  const cr::Tensor x = cr::arange(1, 13, 1, cr::float64).reshape({3, 4});
  CHECK(values(cr::tril(x)) == std::vector<double>{1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0});
  CHECK(values(cr::tril(x, -1)) == std::vector<double>{0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0});
  CHECK(values(cr::triu(x)) == std::vector<double>{1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12});
  CHECK(values(cr::triu(x, 2)) == std::vector<double>{0, 0, 3, 4, 0, 0, 0, 8, 0, 0, 0, 0});
  CHECK(values(cr::tril(x.t())) == std::vector<double>{1, 0, 0, 2, 6, 0, 3, 7, 11, 4, 8, 12});
  const cr::Tensor inf = cr::full({2, 2}, INFINITY, cr::float64);
  CHECK(values(cr::triu(inf)) == std::vector<double>{INFINITY, INFINITY, 0, INFINITY});
  CHECK(cr::tril(cr::ones({2, 3, 3})).sum().item<double>() == 12);  // batched: the last two dims
  cr::Tensor l = cr::ones({2, 2}, cr::float64).requires_grad_();
  cr::triu(l, 1).sum().backward();
  CHECK(values(l.grad()) == std::vector<double>{0, 1, 0, 0});
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::tril(v[0] * v[0], 1); }, {input({3, 4}, -2, 2, 33)});
  check_error([] { (void)cr::tril(cr::ones({3})); }, {"tril", "2", "[3]"});
}

TEST_CASE("masked_fill puts a value where the mask is nonzero, broadcasting; no gradient there") {
  const cr::Tensor x = cr::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3}, cr::float64);
  const cr::Tensor row = cr::tensor({1.0, 0.0, 1.0}, cr::float64);
  CHECK(values(cr::masked_fill(x, row, -1.0)) == std::vector<double>{-1, 2, -1, -1, 5, -1});
  CHECK(values(cr::masked_fill(x, cr::gt(x, cr::tensor(3.5)), -INFINITY)) ==
        std::vector<double>{1, 2, 3, -INFINITY, -INFINITY, -INFINITY});  // an attention mask
  CHECK(cr::masked_fill(cr::tensor({1, 2}, cr::int64), cr::tensor({0, 1}, cr::int64), 9).to_vector<int64_t>() ==
        std::vector<int64_t>{1, 9});
  cr::Tensor l = cr::tensor({1.0, 2.0, 3.0}, cr::float64).requires_grad_();
  (cr::masked_fill(l, row, 7.0) * 2.0).sum().backward();
  CHECK(values(l.grad()) == std::vector<double>{0, 2, 0});
  check_gradients([&](const std::vector<cr::Tensor>& v) { return cr::masked_fill(v[0] * v[0], row, 0.5); }, {input({2, 3})});
  check_error([&] { (void)cr::masked_fill(x, cr::ones({4}), 0.0); }, {"masked_fill", "[4]", "[2, 3]"});
}

TEST_CASE("split, chunk and unbind give views of the pieces, as PyTorch's") {
  const cr::Tensor x = cr::arange(10, cr::float64).reshape({5, 2});
  const auto s = cr::split(x, 2);  // 2, 2, 1
  REQUIRE(s.size() == 3);
  CHECK(values(s[0]) == std::vector<double>{0, 1, 2, 3});
  CHECK(values(s[2]) == std::vector<double>{8, 9});
  CHECK(s[1].impl()->storage.get() == x.impl()->storage.get());
  const auto sizes = cr::split(x, {1, 4}, 0);
  CHECK(sizes[1].shape() == cr::Shape{4, 2});
  CHECK(values(sizes[1])[0] == 2);
  const auto c = cr::chunk(x, 3);  // ceil(5 / 3) = 2 rows each: 2, 2, 1
  REQUIRE(c.size() == 3);
  CHECK(c[2].shape() == cr::Shape{1, 2});
  CHECK(cr::chunk(cr::arange(6, cr::float64), 4).size() == 3);  // ceil(6 / 4) = 2: three chunks, as torch's
  CHECK(cr::chunk(x, 2, 1)[1].shape() == cr::Shape{5, 1});
  const auto u = cr::unbind(x, 1);
  REQUIRE(u.size() == 2);
  CHECK(values(u[1]) == std::vector<double>{1, 3, 5, 7, 9});
  CHECK(cr::split(cr::zeros({0}), 3).size() == 1);  // torch.split(empty(0), 3): one empty piece
  // more pieces than a tensor has dims (the sizes were kept in a Shape, at most 8: random program 7955)
  const auto many = cr::split(cr::arange(24.0), 2);
  REQUIRE(many.size() == 12);
  CHECK(values(many.back()) == std::vector<double>{22, 23});
  CHECK(cr::chunk(cr::arange(20.0), 10).size() == 10);
  CHECK(cr::split(cr::arange(10.0), std::vector<int64_t>(10, 1)).size() == 10);
  // gradients flow back into each piece's place
  cr::Tensor l = cr::arange(6, cr::float64).requires_grad_();
  const auto p = cr::chunk(l, 2);
  (p[0] * 2.0 + p[1] * 3.0).sum().backward();
  CHECK(values(l.grad()) == std::vector<double>{2, 2, 2, 3, 3, 3});
  check_gradients([](const std::vector<cr::Tensor>& v) {
    const auto pieces = cr::unbind(v[0], 0);
    return pieces[0] * pieces[2] + pieces[1];
  }, {input({3, 2})});
  check_error([&] { (void)cr::split(x, {1, 3}); }, {"split", "[1, 3]", "4", "5"});
  check_error([&] { (void)cr::split(x, 0); }, {"split", "0"});
  check_error([&] { (void)cr::chunk(x, 0); }, {"chunk", "0"});
  // a 0-d tensor has no dim to cut (it read the size of a dim it does not have)
  const cr::Tensor s0 = cr::tensor(2.0);
  check_error([&] { (void)cr::split(s0, 1); }, {"split", "0-d"});
  check_error([&] { (void)cr::split(s0, std::vector<int64_t>{1}); }, {"split", "0-d"});
  check_error([&] { (void)cr::chunk(s0, 1); }, {"chunk", "0-d"});
  check_error([&] { (void)cr::unbind(s0); }, {"unbind", "0-d"});
}

TEST_CASE("copies of transposed and permuted views (tiled when both dims span a tile) match index formulas") {
  // contiguous(), to(dtype) and copy_ of views whose unit-stride dim is not the last: sizes that
  // leave partial tiles, dims around the two swapped ones, a conversion, a destination that is
  // itself a view, and an expanded source (stride 0 along the last dim). Read back through the
  // raw data of the contiguous results.
  SUBCASE("2-d transpose, float64") {
    const cr::Tensor y = cr::arange(40 * 70, cr::float64).reshape({40, 70}).t().contiguous();
    REQUIRE(y.shape() == cr::Shape{70, 40});
    const double* p = y.data<double>();
    bool same = true;
    for (int64_t i = 0; i < 70; ++i)
      for (int64_t j = 0; j < 40; ++j) same = same && p[i * 40 + j] == static_cast<double>(j * 70 + i);
    CHECK(same);
  }
  SUBCASE("3-d permute with a conversion from int64 to float32") {
    const cr::Tensor y = cr::arange(3 * 40 * 50, cr::int64).reshape({3, 40, 50}).permute({0, 2, 1}).to(cr::float32);
    REQUIRE(y.shape() == cr::Shape{3, 50, 40});
    const float* p = y.data<float>();
    bool same = true;
    for (int64_t a = 0; a < 3; ++a)
      for (int64_t i = 0; i < 50; ++i)
        for (int64_t j = 0; j < 40; ++j)
          same = same && p[(a * 50 + i) * 40 + j] == static_cast<float>(a * 2000 + j * 50 + i);
    CHECK(same);
  }
  SUBCASE("4-d permute: the swapped dims with others between and around them") {
    const cr::Tensor y = cr::arange(2 * 33 * 3 * 65, cr::float64).reshape({2, 33, 3, 65}).permute({0, 3, 2, 1}).contiguous();
    REQUIRE(y.shape() == cr::Shape{2, 65, 3, 33});
    const double* p = y.data<double>();
    bool same = true;
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t b = 0; b < 65; ++b)
        for (int64_t c = 0; c < 3; ++c)
          for (int64_t d = 0; d < 33; ++d)
            same = same && p[((a * 65 + b) * 3 + c) * 33 + d] == static_cast<double>(((a * 33 + d) * 3 + c) * 65 + b);
    CHECK(same);
  }
  SUBCASE("into a view, and from an expanded source") {
    const cr::Tensor z = cr::zeros({70, 45}, cr::float64);
    z.narrow(1, 2, 40).copy_(cr::arange(40 * 70, cr::float64).reshape({40, 70}).t());
    const double* p = z.data<double>();
    bool same = true;
    for (int64_t i = 0; i < 70; ++i)
      for (int64_t j = 0; j < 45; ++j)
        same = same && p[i * 45 + j] == (j < 2 || j >= 42 ? 0.0 : static_cast<double>((j - 2) * 70 + i));
    CHECK(same);
    const cr::Tensor e = cr::arange(64, cr::float64).reshape({64, 1}).expand({64, 48}).contiguous();
    const double* q = e.data<double>();
    same = true;
    for (int64_t i = 0; i < 64; ++i)
      for (int64_t j = 0; j < 48; ++j) same = same && q[i * 48 + j] == static_cast<double>(i);
    CHECK(same);
  }
}
