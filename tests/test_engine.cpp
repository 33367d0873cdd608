// The engine: backward and grad, accumulation, retain_graph, create_graph (higher
// derivatives), NoGradGuard, detach, hooks, version counters, anomaly mode, in-place
// recording, deep graphs, and that graphs are freed.
#include "helpers.hpp"

#include <autograd/kernels.hpp>  // the transposed matmul kernel is tested directly
#include <pthread.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <thread>

namespace {
// The node that made t, as an op's node (null for a leaf).
const cr::FunctionNode* node(const cr::Tensor& t) { return dynamic_cast<const cr::FunctionNode*>(t.grad_fn().get()); }
}  // namespace

TEST_CASE("micrograd's sanity check: value and gradient agree with an independent forward-mode evaluation") {
  // Reference numbers from dual numbers (forward mode), not from this engine.
  cr::Tensor x = cr::tensor(-4.0, cr::float64).requires_grad_();
  cr::Tensor z = 2.0 * x + 2.0 + x;
  cr::Tensor q = cr::relu(z) + z * x;
  cr::Tensor h = cr::relu(z * z);
  cr::Tensor y = h + q + q * x;
  y.backward();
  CHECK(y.item<double>() == -20.0);
  CHECK(x.grad().item<double>() == 46.0);
}

TEST_CASE("micrograd's more-ops expression") {
  cr::Tensor a = cr::tensor(-4.0, cr::float64).requires_grad_();
  cr::Tensor b = cr::tensor(2.0, cr::float64).requires_grad_();
  cr::Tensor c = a + b;
  cr::Tensor d = a * b + cr::pow(b, 3);
  c = c + c + 1.0;
  c = c + 1.0 + c + (-a);
  d = d + d * 2.0 + cr::relu(b + a);
  d = d + 3.0 * d + cr::relu(b - a);
  cr::Tensor e = c - d;
  cr::Tensor f = cr::pow(e, 2);
  cr::Tensor g = f / 2.0;
  g = g + 10.0 / f;
  g.backward();
  CHECK(g.item<double>() == doctest::Approx(24.70408163265306).epsilon(1e-14));
  CHECK(a.grad().item<double>() == doctest::Approx(138.8338192419825).epsilon(1e-14));
  CHECK(b.grad().item<double>() == doctest::Approx(645.5772594752186).epsilon(1e-14));
}

TEST_CASE("fan-out accumulates: b = a + a; c = b + b gives dc/da = 4") {
  cr::Tensor a = cr::tensor(3.0, cr::float64).requires_grad_();
  cr::Tensor b = a + a;
  cr::Tensor c = b + b;
  c.backward();
  CHECK(a.grad().item<double>() == 4.0);
}

TEST_CASE("backward: implicit gradient for one element, explicit gradient otherwise") {
  cr::Tensor x = cr::tensor({1.0, 2.0, 3.0}, cr::float64).requires_grad_();
  cr::Tensor y = x * x;
  check_error([&] { y.backward(); }, {"backward", "[3] float64", "gradient"});
  y.backward(cr::tensor({1.0, 0.5, 0.0}, cr::float64));
  CHECK(values(x.grad()) == std::vector<double>{2, 2, 0});
  cr::Tensor y2 = x * 3.0;
  check_error([&] { y2.backward(cr::ones({2}, cr::float64)); }, {"backward", "[2]", "[3]"});
  check_error([] { cr::tensor(1.0).backward(); }, {"backward", "does not require grad"});
}

TEST_CASE("gradients accumulate across backward calls until reset") {
  cr::Tensor w = cr::tensor({1.0, -1.0}, cr::float64).requires_grad_();
  (w * 2.0).sum().backward();
  (w * 3.0).sum().backward();
  CHECK(values(w.grad()) == std::vector<double>{5, 5});
  w.set_grad({});
  CHECK_FALSE(w.grad().defined());
  (w * w).sum().backward();
  CHECK(values(w.grad()) == std::vector<double>{2, -2});
  w.grad().zero_();
  CHECK(values(w.grad()) == std::vector<double>{0, 0});
}

TEST_CASE("a leaf's first gradient is the backward's tensor itself when nobody else holds it, else a copy") {
  cr::Tensor w = cr::tensor({1.0, -1.0, 0.5}, cr::float64).requires_grad_();
  const cr::TensorImpl* arriving = nullptr;
  w.register_hook([&](const cr::Tensor& g) {  // notes which tensor arrives, keeps no reference
    arriving = g.impl();
    return cr::Tensor();
  });
  cr::tanh(w * 2.0).sum().backward();
  CHECK(w.grad().impl() == arriving);  // taken as it is: no alias, no copy
  CHECK_FALSE(w.grad().requires_grad());
  CHECK(w.grad().grad_fn() == nullptr);
  // a gradient someone else holds (the seed passed to backward on the leaf itself) is copied
  cr::Tensor v = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor seed = cr::tensor({3.0, 4.0}, cr::float64);
  v.backward(seed);
  CHECK(values(v.grad()) == std::vector<double>{3, 4});
  CHECK(v.grad().impl() != seed.impl());
  v.grad().add_(seed);
  CHECK(values(seed) == std::vector<double>{3, 4});
}

TEST_CASE("a 0-d output's implied gradient is one tensor, reused only while nobody else holds it and it is 1") {
  cr::Tensor x = cr::tensor(2.0, cr::float64).requires_grad_(), y = cr::tensor(3.0, cr::float64).requires_grad_();
  // add hands its gradient to both leaves as it is: x's hook sees the seed itself
  const cr::TensorImpl* arriving = nullptr;
  cr::Tensor kept;
  bool keep = false, scale = false;
  x.register_hook([&](const cr::Tensor& g) {
    arriving = g.impl();
    if (keep) kept = g;
    if (scale) cr::Tensor(g).mul_(3.0);  // in place, keeping no reference
    return cr::Tensor();
  });
  auto step = [&] {
    x.set_grad({});
    y.set_grad({});
    (x + y).backward();
  };
  step();
  const cr::TensorImpl* first = arriving;
  const cr::Tensor other = cr::tensor(0.0, cr::float64);  // takes the block a freed seed would leave
  step();
  CHECK(arriving == first);  // the same tensor again, not a new one
  CHECK(x.grad().item<double>() == 1.0);
  CHECK(y.grad().item<double>() == 1.0);
  // kept by a hook: the holder's from then on, changed as it likes; the next backward makes another
  keep = true;
  step();
  keep = false;
  CHECK(kept.impl() == first);
  CHECK(kept.item<double>() == 1.0);
  // changed in place by a hook that keeps no reference: both leaves get the change (as in
  // PyTorch), the tensor kept before is not that seed, and the next backward does not start from it
  scale = true;
  step();
  scale = false;
  CHECK(arriving != first);
  CHECK(kept.item<double>() == 1.0);
  CHECK(x.grad().item<double>() == 3.0);
  CHECK(y.grad().item<double>() == 3.0);
  kept.mul_(5.0);
  step();
  CHECK(kept.item<double>() == 5.0);
  CHECK(x.grad().item<double>() == 1.0);
  CHECK(y.grad().item<double>() == 1.0);
  // a leaf's own backward under create_graph keeps the seed as its .grad, which a later backward
  // adds into; the backward after that does not start from the sum
  x.set_grad({});
  x.backward({}, /*retain_graph=*/false, /*create_graph=*/true);
  CHECK(x.grad().item<double>() == 1.0);
  (x * y).backward();
  CHECK(x.grad().item<double>() == 4.0);  // 1 + y, in that tensor
  step();
  CHECK(x.grad().item<double>() == 1.0);
  CHECK(y.grad().item<double>() == 1.0);
  // float32 has its own
  cr::Tensor f = cr::tensor(2.0, cr::float32).requires_grad_();
  (f * f).backward();
  (f * f).backward();
  CHECK(f.grad().item<float>() == 8.0f);
}

TEST_CASE("retain_graph: a second backward through a freed graph throws; retained, it doubles the gradient") {
  cr::Tensor x = cr::tensor(2.0, cr::float64).requires_grad_();
  cr::Tensor y = cr::exp(x) * x;
  y.backward();
  check_error([&] { y.backward(); }, {"second time", "retain_graph"});
  x.set_grad({});
  cr::Tensor z = cr::exp(x) * x;
  z.backward({}, /*retain_graph=*/true);
  const double once = x.grad().item<double>();
  z.backward();
  CHECK(x.grad().item<double>() == doctest::Approx(2 * once));
  CHECK(once == doctest::Approx(std::exp(2.0) * 3));
}

TEST_CASE("grad with create_graph: d2/dx2 x^3 = 6x, d3/dx3 = 6") {
  cr::Tensor x = cr::tensor(1.5, cr::float64).requires_grad_();
  cr::Tensor y = cr::pow(x, 3);
  auto [dy] = std::array{cr::autograd::grad({y}, {x}, {}, false, true)[0]};
  CHECK(dy.item<double>() == doctest::Approx(3 * 1.5 * 1.5));
  cr::Tensor d2 = cr::autograd::grad({dy}, {x}, {}, false, true)[0];
  CHECK(d2.item<double>() == doctest::Approx(6 * 1.5));
  cr::Tensor d3 = cr::autograd::grad({d2}, {x})[0];
  CHECK(d3.item<double>() == doctest::Approx(6.0));
  CHECK_FALSE(x.grad().defined());  // grad() does not touch .grad
}

TEST_CASE("Hessian-vector product of an MLP loss matches finite differences of the gradient") {
  cr::Generator gen(42);
  const cr::Tensor X = cr::randn({8, 3}, cr::float64, &gen), Y = cr::randn({8, 1}, cr::float64, &gen);
  const cr::Tensor W1_0 = cr::randn({3, 5}, cr::float64, &gen), W2_0 = cr::randn({5, 1}, cr::float64, &gen);
  const cr::Tensor V1 = cr::randn({3, 5}, cr::float64, &gen), V2 = cr::randn({5, 1}, cr::float64, &gen);
  auto loss = [&](const cr::Tensor& W1, const cr::Tensor& W2) {
    return cr::mean(cr::pow(cr::matmul(cr::tanh(cr::matmul(X, W1)), W2) - Y, 2));
  };
  cr::Tensor W1 = W1_0.clone().requires_grad_(), W2 = W2_0.clone().requires_grad_();
  auto g = cr::autograd::grad({loss(W1, W2)}, {W1, W2}, {}, true, true);
  cr::Tensor gv = cr::sum(g[0] * V1) + cr::sum(g[1] * V2);
  auto hv = cr::autograd::grad({gv}, {W1, W2});
  const double eps = 1e-5;
  auto grad_at = [&](double t) {
    cr::Tensor a = (W1_0 + V1 * t).detach().requires_grad_(), b = (W2_0 + V2 * t).detach().requires_grad_();
    return cr::autograd::grad({loss(a, b)}, {a, b});
  };
  auto plus = grad_at(eps), minus = grad_at(-eps);
  for (size_t k = 0; k < 2; ++k) {
    const cr::Tensor fd = (plus[k] - minus[k]) / (2 * eps);
    CHECK(cr::allclose(hv[k], fd, 1e-6, 1e-8));
  }
}

TEST_CASE("grad errors: unused inputs and inputs that do not require grad") {
  cr::Tensor x = cr::tensor(1.0, cr::float64).requires_grad_();
  cr::Tensor u = cr::tensor(2.0, cr::float64).requires_grad_();
  cr::Tensor y = x * 2.0;
  check_error([&] { (void)cr::autograd::grad({y}, {u}, {}, true); }, {"grad", "input 0", "not reachable", "allow_unused"});
  CHECK_FALSE(cr::autograd::grad({y}, {u}, {}, true, false, true)[0].defined());
  check_error([&] { (void)cr::autograd::grad({y}, {cr::tensor(1.0)}); }, {"grad", "does not require grad"});
  CHECK(cr::autograd::grad({y}, {x})[0].item<double>() == 2.0);
}

TEST_CASE("NoGradGuard records nothing, is scoped and thread-local; detach cuts the graph") {
  cr::Tensor x = cr::tensor(1.0).requires_grad_();
  {
    cr::NoGradGuard guard;
    CHECK_FALSE((x * 2.0).requires_grad());
    bool other_thread_records = false;
    std::thread t([&] { other_thread_records = (x * 2.0).requires_grad(); });
    t.join();
    CHECK(other_thread_records);
  }
  CHECK((x * 2.0).requires_grad());
  cr::Tensor d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  CHECK(cr::grad_mode_enabled());
}

TEST_CASE("requires_grad propagates; int64 tensors cannot require grad") {
  cr::Tensor a = cr::ones({2});
  cr::Tensor b = cr::ones({2}).requires_grad_();
  CHECK_FALSE((a * a).requires_grad());
  CHECK((a * b).requires_grad());
  CHECK((a * b).grad_fn()->display_name() == "MulBackward");
  CHECK(b.is_leaf());
  CHECK_FALSE((a * b).is_leaf());
  check_error([] { cr::zeros({2}, cr::int64).requires_grad_(); }, {"requires_grad_", "int64", "[2]"});
  check_error([&] { (a * b).requires_grad_(false); }, {"requires_grad_", "not a leaf", "detach"});
}

TEST_CASE("an int64 result has no history, whatever its inputs: to(int64), copy_ into int64, as PyTorch's") {
  // found by the random programs: copy_ of a float that requires grad into an int64 clone gave an
  // int64 tensor that required grad, and pow(i, that) sent a gradient of -1 to the float
  cr::Tensor x = cr::tensor({-0.25, 1.5, 3.0}, cr::float64).requires_grad_();
  const cr::Tensor i = x.to(cr::int64);
  CHECK_FALSE(i.requires_grad());
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 3});
  cr::Tensor c = cr::tensor({5, 6, 7}, cr::int64);
  c.copy_(x);
  CHECK_FALSE(c.requires_grad());
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 3});
  cr::Tensor v = cr::tensor({5, 6, 7, 8}, cr::int64);
  v.narrow(0, 1, 3).copy_(x);  // through a view: the base has no history either
  CHECK_FALSE(v.requires_grad());
  CHECK(v.to_vector<int64_t>() == std::vector<int64_t>{5, 0, 1, 3});
  const cr::Tensor p = cr::pow(cr::tensor({2, 3, 4}, cr::int64), c);
  CHECK_FALSE(p.requires_grad());
  // so a loss through them sends x nothing: only the floating path counts
  const cr::Tensor loss = cr::sum(x * 2.0) + cr::sum(p.to(cr::float64));
  CHECK(values(cr::autograd::grad({loss}, {x})[0]) == std::vector<double>{2, 2, 2});
}

TEST_CASE("version counters: modifying a saved tensor in place makes backward throw, naming the op and versions") {
  cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  cr::Tensor w = cr::tensor({3.0, 4.0}, cr::float64).requires_grad_();
  cr::Tensor y = (x * w).sum();
  {
    cr::NoGradGuard g;
    w.mul_(2.0);
  }
  check_error([&] { y.backward(); }, {"'mul'", "version 1", "version 0", "in-place"});

  cr::Tensor x2 = cr::tensor({1.0}, cr::float64).requires_grad_();
  cr::Tensor e = cr::exp(x2);  // saves its result
  cr::Tensor loss = e.sum();
  e.add_(1.0);
  check_error([&] { loss.backward(); }, {"'exp'", "result"});
}

TEST_CASE("a saved result: read by its rule, differentiable under create_graph, safe to return as the gradient") {
  // A rule that returns its result itself as the gradient (d/dx of exp-like f = f): the
  // gradient must outlive the rule, also when backward frees the node right after.
  auto self_derivative = [](const cr::Tensor& x) {
    return cr::record(cr::exp(x.detach()), "self_derivative", {x}, {},
                      [](cr::Tensor g, const cr::BackwardContext& c) -> cr::Grads {
                        if (g.numel() == 1 && g.item<double>() == 1.0) return {c.result()};
                        return {g * c.result()};
                      },
                      true);
  };
  cr::Tensor x = cr::tensor({0.5, -1.0}, cr::float64).requires_grad_();
  {
    cr::Tensor y = self_derivative(x);
    cr::Tensor picked = y.select(0, 0);  // the gradient of y is the one-hot [1, 0]: not the shortcut
    picked.backward();
  }
  CHECK(values(x.grad()) == std::vector<double>{std::exp(0.5), 0});
  // 0-d: g = 1, so the rule returns result() itself, straight into the leaf's accumulator. The
  // gradient the leaf's hook sees must own its handle (the rule's handle dies with the rule).
  cr::Tensor x0 = cr::tensor(0.5, cr::float64).requires_grad_();
  cr::Tensor seen;
  x0.register_hook([&](const cr::Tensor& g) {
    seen = g;
    return cr::Tensor();
  });
  cr::Tensor s = self_derivative(x0);
  s.backward();
  s = cr::Tensor();
  REQUIRE(seen.defined());
  CHECK(seen.impl_ptr().use_count() >= 1);  // owned, not borrowed from the finished rule
  CHECK(seen.item<double>() == std::exp(0.5));
  CHECK(x0.grad().item<double>() == std::exp(0.5));

  // Second derivatives read the result as part of the graph: d2/dx2 tanh = -2 y (1 - y^2).
  cr::Tensor z = cr::tensor({0.3}, cr::float64).requires_grad_();
  cr::Tensor t = cr::tanh(z);
  const cr::Tensor dz = cr::autograd::grad({t.sum()}, {z}, {}, true, true)[0];
  const double yv = std::tanh(0.3);
  CHECK(dz.item<double>() == doctest::Approx(1 - yv * yv).epsilon(1e-15));
  const cr::Tensor d2z = cr::autograd::grad({dz.sum()}, {z})[0];
  CHECK(d2z.item<double>() == doctest::Approx(-2 * yv * (1 - yv * yv)).epsilon(1e-14));
}

TEST_CASE("a saved result is its output's storage, read in place by the rule; an output that is a view keeps an alias") {
  cr::Tensor x = cr::tensor({0.5, -1.0, 2.0}, cr::float64).requires_grad_();
  // an output of its own buffer: the node holds that buffer, and no tensor for it
  cr::Tensor y = cr::tanh(x);
  REQUIRE(node(y) != nullptr);
  CHECK(node(y)->saves_result());
  CHECK(node(y)->result_storage.get() == y.impl()->storage.get());
  CHECK_FALSE(node(y)->result_alias.defined());
  const cr::Tensor seen = node(y)->saved_result();  // a tensor made on request, of the node's shape and dtype
  CHECK(seen.impl() != y.impl());
  CHECK(seen.shape() == cr::Shape{3});
  CHECK(values(seen) == values(y));
  (y * cr::tensor({1.0, 2.0, 3.0}, cr::float64)).sum().backward();
  for (int i = 0; i < 3; ++i) {
    const double t = std::tanh(values(x)[i]);
    CHECK(values(x.grad())[i] == doctest::Approx((i + 1) * (1 - t * t)).epsilon(1e-15));
  }
  CHECK_FALSE(node(y)->saves_result());  // released with the rest of the node

  // an output that is a view (here transposed): the elements are not the node's shape read in
  // order from the buffer's start, so the node keeps a detached alias and result_data is null
  const void* data = &data;
  auto transposed_exp = [&](const cr::Tensor& a) {
    return cr::record(cr::exp(a.detach()).t(), "transposed_exp", {a}, {},
                      [&](const cr::Tensor& g, const cr::BackwardContext& c) -> cr::Grads {
                        data = c.result_data();
                        return {(g * c.result()).t()};
                      },
                      true);
  };
  cr::Tensor a = cr::tensor({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3}, cr::float64).requires_grad_();
  cr::Tensor e = transposed_exp(a);
  REQUIRE(node(e) != nullptr);
  CHECK(node(e)->result_alias.defined());
  CHECK(node(e)->saved_result().strides() == e.strides());
  const cr::Tensor w = cr::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {3, 2}, cr::float64);
  (e * w).sum().backward();
  CHECK(data == nullptr);
  const std::vector<double> av = values(a), wt = values(w.t().contiguous()), ga = values(a.grad());
  for (int i = 0; i < 6; ++i) CHECK(ga[i] == doctest::Approx(std::exp(av[i]) * wt[i]).epsilon(1e-15));
  // the same rule on a plain output reads its buffer
  auto plain_exp = [&](const cr::Tensor& b) {
    return cr::record(cr::exp(b.detach()), "plain_exp", {b}, {},
                      [&](const cr::Tensor& g, const cr::BackwardContext& c) -> cr::Grads {
                        data = c.result_data();
                        return {g * c.result()};
                      },
                      true);
  };
  cr::Tensor p = plain_exp(a);
  const void* buffer = p.impl()->storage->data;
  p.sum().backward();
  CHECK(data == buffer);

  // written in place after it was saved: both ways of reading it are an Error naming the op
  cr::Tensor z = cr::tensor({0.3, 0.4}, cr::float64).requires_grad_();
  cr::Tensor s = cr::sigmoid(z);
  cr::Tensor loss = s.sum();
  s.mul_(2.0);
  check_error([&] { loss.backward(); }, {"'sigmoid'", "its result", "version 1", "version 0"});
  cr::Tensor v = transposed_exp(a);
  cr::Tensor loss2 = v.sum();
  v.add_(1.0);
  check_error([&] { loss2.backward(); }, {"'transposed_exp'", "its result"});
}

TEST_CASE("in-place ops are recorded on non-leaves and refused on leaves that require grad") {
  cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  cr::Tensor y = x * 2.0;
  y.mul_(3.0);
  y.add_(x);
  y.sub_(1.0);
  y.div_(cr::tensor({1.0, 2.0}, cr::float64));
  CHECK(values(y) == std::vector<double>{6, 6.5});
  y.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{7, 3.5});
  check_error([&] { x.add_(1.0); }, {"add_", "leaf", "NoGradGuard"});
  cr::Tensor dst = cr::zeros({2}, cr::float64);
  dst.copy_(x * x);
  dst.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{9, 7.5});
  check_error([&] { cr::zeros({2}).copy_(cr::zeros({3})); }, {"copy_", "[3]", "[2]"});
  check_error([&] { cr::zeros({2}).add_(cr::zeros({3, 2})); }, {"add_", "[3, 2]", "[2]"});
  cr::Tensor f = cr::zeros({3});
  f.fill_(2.5);
  CHECK(values(f) == std::vector<double>{2.5, 2.5, 2.5});
  CHECK(f.version() == 1);
}

TEST_CASE("a view taken before an in-place op on its base takes the base's new history") {
  // v's grad_fn led to a's history before mul_, so d v / d x read 1 where v = 3 x; now the
  // view's history is taken again from its base's (PyTorch's AsStridedBackward)
  const cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  cr::Tensor a = x * 1.0;
  const cr::Tensor v = a.select(0, 0);
  const cr::Tensor w = a.unsqueeze(1).t();  // a view of a view
  const cr::Tensor e = a.unsqueeze(0).expand({3, 2});  // each element shown three times
  a.mul_(3.0);
  CHECK(v.item<double>() == 3.0);
  // grad_fn() shows the new history at once (it showed select's old node until the view was used)
  REQUIRE(v.grad_fn());
  CHECK(v.grad_fn()->name == std::string("as_strided"));
  CHECK(values(cr::autograd::grad({v * 2.0}, {x}, {}, true)[0]) == std::vector<double>{6, 0});
  CHECK(values(cr::autograd::grad({cr::sum(w * w)}, {x}, {}, true)[0]) == std::vector<double>{18, 36});
  CHECK(values(cr::autograd::grad({cr::sum(e)}, {x}, {}, true)[0]) == std::vector<double>{9, 9});
  v.backward();
  CHECK(values(x.grad()) == std::vector<double>{3, 0});
  // in-place writes that record nothing (optimizer steps, NoGradGuard) leave a view's history
  cr::Tensor p = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor pt = p.reshape({2, 1}).t();
  {
    cr::NoGradGuard no_grad;
    p.mul_(2.0);
  }
  CHECK(values(cr::autograd::grad({cr::sum(pt * pt)}, {p})[0]) == std::vector<double>{4, 8});
  // a view of a detach()ed tensor stays detached
  const cr::Tensor d = a.detach().select(0, 1);
  a.add_(x);
  CHECK_FALSE(d.requires_grad());
  CHECK(d.item<double>() == 8.0);
}

TEST_CASE("in-place ops on views are recorded: a tensor filled row by row, a slice scaled") {
  // they were an Error ("in-place ops on views are not recorded"); PyTorch records them
  const cr::Tensor x = cr::tensor({1.0, 2.0, 3.0, 4.0}, {2, 2}, cr::float64).requires_grad_();
  cr::Tensor out = cr::zeros({3, 2}, cr::float64);  // a buffer that needs no gradient itself
  for (int64_t i = 0; i < 2; ++i) out.select(0, i).copy_(x.select(0, i) * static_cast<double>(i + 1));
  CHECK(out.requires_grad());
  CHECK(values(out) == std::vector<double>{1, 2, 6, 8, 0, 0});
  cr::sum(out * out).backward();  // d/dx sum(((i + 1) x_i)^2) = 2 (i + 1)^2 x_i
  CHECK(values(x.grad()) == std::vector<double>{2, 4, 24, 32});

  using V = const std::vector<cr::Tensor>&;
  check_gradients(
      [](V v) {
        cr::Tensor y = v[0] * 1.0;
        y.narrow(1, 0, 2).mul_(v[1]);      // broadcast operand
        y.select(0, 1).add_(cr::sum(v[1]) * y.select(0, 0).clone());  // from another row
        return y * y;
      },
      {input({2, 3}), input({1, 2})});
  check_gradients(
      [](V v) {
        cr::Tensor y = cr::zeros({2, 3}, cr::float64);
        y.t().narrow(0, 1, 2).copy_(cr::tanh(v[0]));  // through a transposed view
        return cr::sum(y * y, 0);
      },
      {input({2, 2})});

  const cr::Tensor leaf = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  check_error([&] { leaf.select(0, 0).mul_(2.0); }, {"mul_", "view of a leaf that requires grad"});
}

TEST_CASE("view_positions: where a view's elements lie in its base, for any view geometry") {
  // Computed from the view's own elements (it was an arange of the whole base aliased like the
  // view, so filling an n-row buffer row by row cost n^2: bench/in_place_views). Checked
  // against that: a base whose values are their positions, viewed the same way.
  const cr::Tensor base = cr::zeros({2, 3, 4}, cr::float64);
  const cr::Tensor where = cr::arange(24, cr::int64).reshape({2, 3, 4});
  const std::vector<std::function<cr::Tensor(const cr::Tensor&)>> views = {
      [](const cr::Tensor& t) { return t.select(0, 1); },
      [](const cr::Tensor& t) { return t.transpose(0, 2).narrow(1, 1, 2); },
      [](const cr::Tensor& t) { return t.select(2, 3).select(1, 2); },  // 0-d
      [](const cr::Tensor& t) { return t.narrow(2, 1, 0); },           // no elements
      [](const cr::Tensor& t) { return t.narrow(1, 1, 1).expand({2, 3, 4}); },  // repeated positions
      [](const cr::Tensor& t) { return t.select(1, 1).unsqueeze(1).expand({2, 3, 4}); },  // of a non-contiguous view
      [](const cr::Tensor& t) { return t.permute({2, 0, 1}).slice(0, 1, 4, 2); }};
  for (size_t k = 0; k < views.size(); ++k) {
    CAPTURE(k);
    const cr::Tensor p = cr::view_positions(views[k](base), base);
    CHECK(p.dtype() == cr::int64);
    CHECK(p.to_vector<int64_t>() == views[k](where).to_vector<int64_t>());
  }
}

TEST_CASE("an in-place op with an operand that requires grad, on a detach()ed tensor or a view of one, is recorded") {
  // Both were Errors ("a view of a tensor whose history cannot be followed"): detach() marked its
  // result a view, with no base to take a history from. In PyTorch it is not a view (_is_view()
  // is False), so the op is recorded on it as on any tensor, and a view of it has it as base.
  const cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor w = cr::tensor({3.0, 4.0}, cr::float64).requires_grad_();
  const cr::Tensor a = x * 1.0;
  cr::Tensor d = a.detach();
  d.mul_(w);
  REQUIRE(d.requires_grad());
  CHECK(values(a) == std::vector<double>{3, 8});  // the storage is shared, as in PyTorch
  CHECK(values(cr::autograd::grad({cr::sum(d)}, {w})[0]) == std::vector<double>{1, 2});
  CHECK(a.grad_fn()->name == std::string("mul"));  // a's history is its own

  const cr::Tensor b = x * 1.0;
  cr::Tensor v = b.detach().select(0, 0);
  v.mul_(w.select(0, 0));
  REQUIRE(v.requires_grad());
  CHECK(v.item<double>() == 3.0);
  CHECK(values(cr::autograd::grad({cr::sum(v)}, {w})[0]) == std::vector<double>{1, 0});

  // what is still refused: a view whose base holds other data since (set_data), or whose base is
  // not row-major (the view's positions cannot be mapped into it)
  cr::Tensor p = cr::zeros({2}, cr::float64);
  cr::Tensor row = p.unsqueeze(0);
  p.set_data(cr::zeros({2}, cr::float64));
  check_error([&] { row.mul_(w); }, {"mul_", "set_data"});
  cr::Tensor q = cr::zeros({2, 2}, cr::float64);
  q.set_data(cr::zeros({2, 2}, cr::float64).t());
  cr::Tensor col = q.select(1, 0);
  check_error([&] { col.mul_(w); }, {"mul_", "not contiguous"});
}

TEST_CASE("copy_ from a tensor of the target's shape and dtype records a node of its own") {
  // copy_'s result was the source itself when nothing needed converting or expanding, and the
  // target took over the source's grad_fn: none for a leaf, so the copy silently stopped
  // requiring grad (d/dx of sum(w * c) read as 0, PyTorch: w); for a non-leaf the two tensors
  // shared one node, so a hook on the source also saw the target's gradient.
  cr::Tensor x = cr::tensor({-0.5, 2.0}, cr::float64).requires_grad_();
  cr::Tensor c = cr::zeros({2}, cr::float64);
  c.copy_(x);
  REQUIRE(c.requires_grad());
  (c * cr::tensor({3.0, 4.0}, cr::float64)).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{3, 4});

  cr::Tensor h = x * 2.0;
  cr::Tensor d = x.detach().clone();
  d.copy_(h);
  CHECK(d.grad_fn().get() != h.grad_fn().get());
  d.register_hook([](const cr::Tensor& g) { return g * 0.0; });  // cuts d's path only
  x.set_grad({});
  (h * 5.0 + d * 7.0).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{10, 10});  // was 0: the hook also cut h's path
}

TEST_CASE("an in-place write through a view sends the overwritten values 0 even when the gradient there is inf") {
  // sqrt'(0) = inf where zero_ wrote: the old values got inf * 0 = NaN (PyTorch: 0)
  for (int k = 0; k < 3; ++k) {
    CAPTURE(k);
    cr::Tensor x = cr::tensor({1.0, 4.0}, cr::float64).requires_grad_();
    cr::Tensor y = x * 1.0;
    if (k == 0) y.narrow(0, 0, 1).zero_();
    if (k == 1) y.narrow(0, 0, 1).fill_(0.0);
    if (k == 2) y.narrow(0, 0, 1).copy_(cr::zeros({1}, cr::float64));
    for (bool create_graph : {false, true})
      CHECK(values(cr::autograd::grad({cr::sqrt(y).sum()}, {x}, {}, true, create_graph)[0]) == std::vector<double>{0, 0.25});
  }
}

TEST_CASE("copy_, fill_ and zero_ keep the overwritten history as an input with a zero gradient, as PyTorch") {
  // The overwritten values' history was dropped: after a.fill_(3) a no longer required grad
  // (backward through it was an Error; PyTorch: zeros), and autograd::grad of what reached x
  // only through the overwritten values was "not reachable" (PyTorch: zeros).
  const cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor y = cr::tensor({3.0, 4.0}, cr::float64).requires_grad_();
  cr::Tensor a = x * 2.0;
  a.copy_(y);
  REQUIRE(a.grad_fn());
  CHECK(a.grad_fn()->name == std::string("copy_"));
  std::vector<cr::Tensor> g = cr::autograd::grad({cr::sum(a * 5.0)}, {x, y});
  CHECK(values(g[0]) == std::vector<double>{0, 0});
  CHECK(values(g[1]) == std::vector<double>{5, 5});

  for (bool zero : {false, true}) {
    cr::Tensor b = x * 2.0;
    zero ? b.zero_() : b.fill_(3.0);
    REQUIRE(b.requires_grad());
    CHECK(b.grad_fn()->name == std::string("fill_"));
    CHECK(values(b) == std::vector<double>(2, zero ? 0.0 : 3.0));
    CHECK(values(cr::autograd::grad({cr::sum(b * x)}, {x}, {}, true)[0]) == std::vector<double>(2, zero ? 0.0 : 3.0));
    CHECK(values(cr::autograd::grad({cr::sum(b)}, {x})[0]) == std::vector<double>{0, 0});
  }
  // a tensor whose history needs no gradient stays that way
  cr::Tensor f = cr::zeros({2}, cr::float64);
  f.fill_(1.0);
  CHECK_FALSE(f.requires_grad());
  // through a view: the row's old values get zeros, the other row its gradient
  cr::Tensor m = x.unsqueeze(0).expand({2, 2}) * 1.0;
  m.select(0, 0).fill_(7.0);
  CHECK(values(m) == std::vector<double>{7, 7, 1, 2});
  CHECK(values(cr::autograd::grad({cr::sum(m * m)}, {x})[0]) == std::vector<double>{2, 4});
}

TEST_CASE("anomaly mode names the forward op whose backward produced NaN or Inf") {
  cr::Tensor x = cr::tensor({0.0, 1.0}, cr::float64).requires_grad_();
  cr::sqrt(x).sum().backward();  // off: inf flows silently, as in PyTorch
  CHECK(std::isinf(values(x.grad())[0]));
  cr::autograd::set_detect_anomaly(true);
  check_error([&] { cr::sqrt(x).sum().backward(); }, {"anomaly", "'sqrt'", "non-finite"});
  bool other_thread = true;
  std::thread t([&] { other_thread = cr::autograd::is_anomaly_enabled(); });
  t.join();
  CHECK_FALSE(other_thread);
  cr::autograd::set_detect_anomaly(false);
}

TEST_CASE("hooks see the gradient and may replace it; retain_grad keeps a non-leaf's gradient") {
  cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  std::vector<double> seen;
  x.register_hook([&](const cr::Tensor& g) {
    seen = values(g);
    return cr::Tensor();
  });
  cr::Tensor h = x * 3.0;
  h.register_hook([](const cr::Tensor& g) { return g * 10.0; });
  h.retain_grad();
  (h * h).sum().backward();
  CHECK(seen == std::vector<double>{180, 360});
  CHECK(values(x.grad()) == std::vector<double>{180, 360});
  CHECK(values(h.grad()) == std::vector<double>{60, 120});
  check_error([] { cr::tensor(1.0).register_hook([](const cr::Tensor& g) { return g; }); }, {"register_hook"});
  // A hook may change the values, not the shape or dtype (PyTorch: "hook has changed the type of
  // value"): a float32 gradient for a float64 leaf would have become its .grad.
  for (const bool leaf : {true, false}) {
    cr::Tensor w = cr::ones({2}, cr::float64).requires_grad_();
    cr::Tensor u = w * 2.0;
    (leaf ? w : u).register_hook([](const cr::Tensor& g) { return g.to(cr::float32); });
    check_error([&] { cr::sum(u * 3.0).backward(); }, {"hook", "[2] float32", "[2] float64", "dtype"});
    CHECK_FALSE(w.grad().defined());
  }
  cr::Tensor w = cr::ones({2}, cr::float64).requires_grad_();
  cr::Tensor u = w * 2.0;
  u.register_hook([](const cr::Tensor&) { return cr::ones({3}, cr::float64); });
  check_error([&] { cr::sum(u).backward(); }, {"hook", "[3] float64", "[2] float64", "shape"});
}

TEST_CASE("retain_grad follows in-place ops: .grad is the gradient of the tensor's current values") {
  // h.retain_grad(); h.mul_(3) kept the gradient of h's old values (3x too large here), and a
  // retained view lost its .grad when its base was modified. The values are python3-torch
  // 1.13's, where it moves the hook too (all cases but b).
  const auto x2 = [] { return cr::tensor({1.0, 2.0}, cr::float64).requires_grad_(); };
  const auto times10 = [](const cr::Tensor& g) { return g * 10.0; };
  {  // a: an in-place op on the retained tensor; loss = sum(h^2) of the new h = 6x
    cr::Tensor x = x2(), h = x * 2.0;
    h.retain_grad();
    h.mul_(3.0);
    (h * h).sum().backward();
    CHECK(values(h.grad()) == std::vector<double>{12, 24});
    CHECK(values(x.grad()) == std::vector<double>{72, 144});
  }
  {  // d: two in-place ops
    cr::Tensor x = x2(), h = x * 2.0;
    h.retain_grad();
    h.mul_(3.0).add_(1.0);
    (h * h).sum().backward();
    CHECK(values(h.grad()) == std::vector<double>{14, 26});
  }
  {  // e: a hook registered before the in-place op stays with the old values; the slot moves
    cr::Tensor x = x2(), h = x * 2.0;
    h.retain_grad();
    h.register_hook(times10);
    h.mul_(3.0);
    (h * h).sum().backward();
    CHECK(values(h.grad()) == std::vector<double>{12, 24});
    CHECK(values(x.grad()) == std::vector<double>{720, 1440});
  }
  {  // f: a hook registered after it runs after the moved slot
    cr::Tensor x = x2(), h = x * 2.0;
    h.retain_grad();
    h.mul_(3.0);
    h.register_hook(times10);
    (h * h).sum().backward();
    CHECK(values(h.grad()) == std::vector<double>{12, 24});
    CHECK(values(x.grad()) == std::vector<double>{720, 1440});
  }
  {  // c: a retained view of a base modified in place shows (and differentiates) the new values
    cr::Tensor x = x2(), h = x * 2.0, v = h.slice(0, 0, 2);
    v.retain_grad();
    h.mul_(3.0);
    (v * v).sum().backward();
    REQUIRE(v.grad().defined());
    CHECK(values(v.grad()) == std::vector<double>{12, 24});
  }
  {  // g: a retained view written in place, then used: its .grad comes through its own uses
    cr::Tensor x = x2(), h = x * 2.0, v = h.slice(0, 0, 1);
    v.retain_grad();
    v.mul_(3.0);
    (v * v).sum().backward();
    CHECK(values(v.grad()) == std::vector<double>{12});
    CHECK(values(x.grad()) == std::vector<double>{72, 0});
  }
  {  // ... and none when only its base is used afterwards (PyTorch's too: v.grad is None)
    cr::Tensor x = x2(), h = x * 2.0, v = h.slice(0, 0, 1);
    v.retain_grad();
    v.mul_(3.0);
    (h * h).sum().backward();
    CHECK_FALSE(v.grad().defined());
  }
  // b: PyTorch 1.13 keeps the old values' gradient when the write goes through a view of the
  // retained tensor ([36, 8]); here the rule is the same as for a direct write (case a).
  {
    cr::Tensor x = x2(), h = x * 2.0;
    h.retain_grad();
    h.slice(0, 0, 1).mul_(3.0);
    (h * h).sum().backward();
    CHECK(values(h.grad()) == std::vector<double>{12, 8});
    CHECK(values(x.grad()) == std::vector<double>{72, 16});
  }
  // as PyTorch: nothing could reach a tensor that does not require grad
  check_error([] { cr::tensor({1.0}).retain_grad(); }, {"retain_grad", "[1] float32", "does not require grad"});
}

TEST_CASE("autograd::grad returns its inputs' gradients after their hooks ran, as backward's .grad") {
  // PyTorch 1.13 skips them here ([2, 4] and [4, 8]); pytorch/pytorch#35802 calls that a bug
  const auto times10 = [](const cr::Tensor& g) { return g * 10.0; };
  cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  x.register_hook(times10);
  CHECK(values(cr::autograd::grad({(x * x).sum()}, {x})[0]) == std::vector<double>{20, 40});
  CHECK_FALSE(x.grad().defined());  // grad accumulates nothing
  cr::Tensor h = x * 2.0;
  h.register_hook(times10);
  CHECK(values(cr::autograd::grad({(h * h).sum()}, {h})[0]) == std::vector<double>{40, 80});
}

TEST_CASE("under create_graph a retained .grad keeps its graph, as a leaf's does (PyTorch's too)") {
  // it was detached, so a penalty on a hidden layer's gradient had no derivative
  const int64_t nodes = cr::autograd::live_nodes();
  {
    cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_(), h = x * 2.0;
    h.retain_grad();
    (h * h * h).sum().backward({}, false, true);
    REQUIRE(h.grad().requires_grad());
    CHECK(values(h.grad()) == std::vector<double>{12, 48});  // 3 h^2
    const auto g = cr::autograd::grad({h.grad().sum()}, {x});
    CHECK(values(g[0]) == std::vector<double>{24, 48});  // d(3 (2x)^2)/dx = 24 x; python3-torch 1.13 agrees
    // As in PyTorch, a .grad with a graph that reaches its own tensor is a reference cycle (for a
    // leaf too): resetting the .grad breaks it.
    h.set_grad({});
    x.set_grad({});
  }
  CHECK(cr::autograd::live_nodes() == nodes);
}

namespace {
void deep_chain(int64_t n) {
  cr::Tensor x = cr::tensor(1.0, cr::float64).requires_grad_();
  cr::Tensor y = x;
  for (int64_t i = 0; i < n; ++i) y = y * 1.0;
  y.backward();
  CHECK(x.grad().item<double>() == 1.0);
}
}  // namespace

TEST_CASE("a chain of 1,000,000 ops backpropagates and is destroyed without stack growth") {
  const int64_t before = cr::autograd::live_nodes();
  deep_chain(1'000'000);
  CHECK(cr::autograd::live_nodes() == before);
  // again on a thread with a 256 KiB stack, without backward (destruction alone)
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  static bool ok = false;
  auto body = +[](void*) -> void* {
    cr::Tensor x = cr::tensor(1.0, cr::float64).requires_grad_();
    {
      cr::Tensor y = x;
      for (int i = 0; i < 1'000'000; ++i) y = y + 1.0;
      y.backward();
    }
    ok = x.grad().item<double>() == 1.0;
    return nullptr;
  };
  REQUIRE(pthread_create(&thread, &attr, body, nullptr) == 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  CHECK(ok);
  CHECK(cr::autograd::live_nodes() == before);
}

TEST_CASE("graphs are freed: no nodes outlive their tensors, also with create_graph") {
  const int64_t before = cr::autograd::live_nodes();
  {
    cr::Tensor w = cr::randn({3, 3}, cr::float64).requires_grad_();
    cr::Tensor loss = cr::sum(cr::tanh(cr::matmul(w, w)));
    auto g = cr::autograd::grad({loss}, {w}, {}, true, true);
    cr::sum(g[0] * g[0]).backward();
    CHECK(cr::autograd::live_nodes() > before);
  }
  CHECK(cr::autograd::live_nodes() == before);
}

TEST_CASE("SmallVector: inline up to N, spills beyond, copies, moves, and clear releases what it held") {
  cr::SmallVector<cr::Tensor, 2> v;
  CHECK(v.empty());
  const cr::Tensor a = cr::ones({3}), b = cr::zeros({2}), c = cr::full({1}, 7.0);
  v.push_back(a);
  v.push_back(b);
  CHECK(v.size() == 2);
  CHECK(a.impl_ptr().use_count() == 2);  // a itself and the inline slot
  v.push_back(c);                        // the third element moves everything to the heap
  CHECK(v.size() == 3);
  CHECK(v[0].same(a));
  CHECK(v[1].same(b));
  CHECK(v.back().same(c));
  CHECK(a.impl_ptr().use_count() == 2);  // moved, not copied, when spilling
  cr::SmallVector<cr::Tensor, 2> copy = v;
  CHECK(copy.size() == 3);
  CHECK(a.impl_ptr().use_count() == 3);
  cr::SmallVector<cr::Tensor, 2> moved = std::move(copy);
  CHECK(moved.size() == 3);
  CHECK(copy.empty());  // NOLINT: a moved-from SmallVector is empty by contract
  CHECK(a.impl_ptr().use_count() == 3);
  moved.clear();
  v.clear();
  CHECK(a.impl_ptr().use_count() == 1);  // inline slots are reset, heap elements destroyed
  const cr::SmallVector<int, 2> listed = {4, 5};
  CHECK(listed.at(1) == 5);
  CHECK_THROWS_AS((void)listed.at(2), std::out_of_range);
  cr::SmallVector<int, 2> reserved;
  reserved.reserve(5);
  for (int i = 0; i < 5; ++i) reserved.push_back(i);
  CHECK(std::vector<int>(reserved.begin(), reserved.end()) == std::vector<int>{0, 1, 2, 3, 4});
  // emplace_back builds an aggregate in place from its fields, inline and past the inline slots
  struct Pair {
    cr::Tensor t;
    int n;
  };
  cr::SmallVector<Pair, 1> pairs;
  Pair& first = pairs.emplace_back(a, 1);
  CHECK(&first == &pairs[0]);
  CHECK(pairs.emplace_back(cr::Tensor(b), 2).n == 2);  // spills to the heap
  CHECK(pairs.size() == 2);
  CHECK(pairs[0].t.same(a));
  CHECK(pairs[0].n == 1);
  CHECK(pairs[1].t.same(b));
  CHECK(a.impl_ptr().use_count() == 2);  // a and the one element holding it
}

TEST_CASE("small tensors keep their data inside their Storage, 64-byte aligned; larger ones use the pool") {
  const cr::Tensor small = cr::ones({16}, cr::float32);  // 64 bytes: inline
  const cr::Storage& s = *small.impl()->storage;
  CHECK(s.data == static_cast<const void*>(s.inline_bytes));
  CHECK(reinterpret_cast<uintptr_t>(s.data) % 64 == 0);
  const cr::Tensor large = cr::ones({17}, cr::float32);  // 68 bytes: pooled
  const cr::Storage& l = *large.impl()->storage;
  CHECK(l.data != static_cast<const void*>(l.inline_bytes));
  CHECK(reinterpret_cast<uintptr_t>(l.data) % 64 == 0);
  // Views share the inline buffer, which lives as long as any of them.
  cr::Tensor view;
  {
    const cr::Tensor base = cr::arange(8, cr::float64).reshape({2, 4});  // 64 bytes: inline
    CHECK(base.impl()->storage->data == static_cast<const void*>(base.impl()->storage->inline_bytes));
    view = base.narrow(0, 1, 1).t();
  }
  CHECK(values(view) == std::vector<double>{4, 5, 6, 7});
}

TEST_CASE("a new tensor and its storage share one pool block, freed by the last of the two to go") {
  // One allocation per new tensor instead of two (docs/performance.md, item 13).
  const cr::Tensor t = cr::ones({16}, cr::float32);
  const cr::TensorImpl* impl = t.impl();
  CHECK(impl->own_storage() == impl->storage.get());
  CHECK(reinterpret_cast<uintptr_t>(impl->storage.get()) - reinterpret_cast<uintptr_t>(impl) < 512);
  CHECK(impl->storage_unshared());
  CHECK(t.detach().impl()->own_storage() == nullptr);  // an alias has no storage of its own
  {
    const cr::Tensor alias = t.detach();
    CHECK_FALSE(impl->storage_unshared());
  }
  CHECK(impl->storage_unshared());
  // The tensor goes first: a detached alias and a view keep the storage, and with it the block.
  cr::Tensor alias, view;
  {
    const cr::Tensor base = cr::arange(6, cr::float64);  // 48 bytes: inline
    const cr::Tensor big = cr::arange(40, cr::float64);  // 320 bytes: pooled
    alias = base.detach();
    view = big.narrow(0, 36, 4);
  }
  CHECK(values(alias) == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK(values(view) == std::vector<double>{36, 37, 38, 39});
  // The storage goes first: set_data gives the tensor another one; the old buffer is returned
  // at once, the block stays with the tensor.
  cr::Tensor leaf = cr::zeros({40}, cr::float64).requires_grad_();
  const cr::Storage* old = leaf.impl()->storage.get();
  leaf.set_data(cr::ones({3}, cr::float32));
  CHECK(old->nbytes == 0);
  CHECK(leaf.impl()->own_storage() == old);
  CHECK(values(leaf) == std::vector<double>{1, 1, 1});
  // ... unless a view still reads it.
  cr::Tensor kept = cr::arange(20, cr::float64);
  cr::Tensor reader = kept.narrow(0, 18, 2);
  kept.set_data(cr::zeros({2}, cr::float64));
  CHECK(values(reader) == std::vector<double>{18, 19});
  CHECK(values(kept) == std::vector<double>{0, 0});
  // The two go on different threads, in either order.
  cr::Tensor a = cr::arange(20, cr::float32), part = a.narrow(0, 1, 2);
  std::thread([&] { a = cr::Tensor(); }).join();
  CHECK(values(part) == std::vector<double>{1, 2});
  cr::Tensor b = cr::arange(20, cr::float32), piece = b.narrow(0, 3, 2);
  std::thread([&] { piece = cr::Tensor(); }).join();
  CHECK(values(b.narrow(0, 3, 2)) == std::vector<double>{3, 4});
}

TEST_CASE("set_data clears a .grad the new data no longer fits, and keeps one it does") {
  // A gradient of the old shape stayed, and the next backward failed in its accumulation
  // ("add_: shapes [2] and [3] cannot be broadcast"), far from the set_data that caused it.
  cr::Tensor p = cr::ones({2}, cr::float64).requires_grad_();
  cr::sum(p * 2.0).backward();
  p.set_data(cr::zeros({2}, cr::float64));  // same shape and dtype: the gradient stays
  CHECK(values(p.grad()) == std::vector<double>{2, 2});
  p.set_data(cr::zeros({3}, cr::float64));
  CHECK_FALSE(p.grad().defined());
  cr::sum(p * 2.0).backward();
  CHECK(values(p.grad()) == std::vector<double>{2, 2, 2});
  p.set_data(cr::zeros({3}, cr::float32));  // another dtype: cleared too
  CHECK_FALSE(p.grad().defined());
  check_error([&] { p.set_data(cr::Tensor()); }, {"set_data", "undefined"});
  // The leaf's accumulator checks the old shape and dtype: the next op makes another, and a graph
  // recorded before sends the leaf nothing (a gradient for data it no longer has).
  cr::sum(p * 2.0).backward();
  CHECK(p.grad().dtype() == cr::float32);
  CHECK(values(p.grad()) == std::vector<double>{2, 2, 2});
  const cr::Tensor old = cr::sum(p * 3.0);
  p.set_data(cr::zeros({4}, cr::float32));
  old.backward();
  CHECK_FALSE(p.grad().defined());
  cr::sum(p * 4.0).backward();
  CHECK(values(p.grad()) == std::vector<double>{4, 4, 4, 4});
}

TEST_CASE("a recorded node fits the pool's 384-byte class, its reference counts included") {
  // At 448 bytes the 10,000-link mul/add chain ran 6% slower and the 100-link one 2%
  // (docs/performance.md, item 11).
#if defined(__x86_64__)
  CHECK(sizeof(cr::FunctionNode) <= 384);
#endif
  CHECK(sizeof(cr::SmallVector<cr::Edge, 2>) == 2 * sizeof(cr::Edge) + sizeof(void*) + 8);  // 32-bit counts
}

TEST_CASE("a node keeps input shapes only for inputs without an edge; the rest read their edge's node") {
  const cr::Tensor a = cr::ones({2, 3}, cr::float64).requires_grad_(), b = cr::ones({3, 4}, cr::float64).requires_grad_();
  const cr::Tensor x = cr::ones({4, 3}, cr::float64), w = cr::ones({2, 3}, cr::float64).requires_grad_();
  // every input has an edge: none kept, each shape its edge's node's (a leaf's accumulator, a product's node)
  const cr::Tensor ab = cr::matmul(a, b);
  REQUIRE(node(ab) != nullptr);
  CHECK_FALSE(node(ab)->keeps_input_shapes());
  CHECK(node(ab)->input_shape(0) == cr::Shape{2, 3});
  CHECK(node(ab)->input_shape(1) == cr::Shape{3, 4});
  const cr::Tensor v = cr::ones({5, 2}, cr::float64).requires_grad_();
  const cr::Tensor h = cr::linear(ab.t(), v);  // [4, 2] through transpose's node; no bias
  CHECK_FALSE(node(h)->keeps_input_shapes());
  CHECK(node(h)->input_shape(0) == cr::Shape{4, 2});
  CHECK(node(h)->input_shape(1) == cr::Shape{5, 2});
  CHECK(node(h)->input_shape(2) == cr::Shape{});  // the missing bias
  // a constant of another shape than the output's: kept
  const cr::Tensor y = cr::linear(x, w);
  CHECK(node(y)->keeps_input_shapes());
  CHECK(node(y)->input_shape(0) == cr::Shape{4, 3});
  CHECK(node(y)->input_shape(1) == cr::Shape{2, 3});
  CHECK(node(y)->input_shape(2) == cr::Shape{});  // kept for the missing bias too
  // constants of the output's shape: none kept
  const cr::Tensor s = a * cr::ones({2, 3}, cr::float64);
  CHECK_FALSE(node(s)->keeps_input_shapes());
  CHECK(node(s)->input_shape(1) == cr::Shape{2, 3});
  // and the rules that read them still give each input its gradient's shape
  (cr::sum(h) * 2.0 + cr::sum(y) * 3.0).backward();
  CHECK(a.grad().shape() == cr::Shape{2, 3});
  CHECK(v.grad().shape() == cr::Shape{5, 2});
  CHECK(b.grad().shape() == cr::Shape{3, 4});
  CHECK(w.grad().shape() == cr::Shape{2, 3});
}

TEST_CASE("pool: small blocks are carved one after another, reused when freed, and passed on when their thread exits") {
  namespace pool = cr::pool;
  auto addresses = [](size_t bytes, int n) {
    std::vector<char*> out;
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char*>(pool::allocate(bytes)));
    return out;
  };
  auto release = [](const std::vector<char*>& blocks, size_t bytes) {
    for (char* p : blocks) pool::deallocate(p, bytes);
  };
  // On a fresh thread (empty free lists): blocks of one class lie next to each other, 21 of
  // 3008 bytes to a 64 KiB run; freed and asked for again, the same blocks come back.
  constexpr size_t kBytes = 3008;
  std::thread([&] {
    const std::vector<char*> first = addresses(kBytes, 210);
    int adjacent = 0;
    for (size_t i = 1; i < first.size(); ++i) {
      CHECK(reinterpret_cast<uintptr_t>(first[i]) % 64 == 0);
      adjacent += first[i] == first[i - 1] + kBytes;
    }
    release(first, kBytes);
    std::vector<char*> again = addresses(kBytes, 210);
    release(again, kBytes);
#if !defined(__SANITIZE_ADDRESS__)  // under ASan the pool is off: every block is malloc's
    CHECK(adjacent >= 190);  // all but the first of each run (10 runs), give or take adopted blocks
    std::sort(again.begin(), again.end());
    std::vector<char*> sorted = first;
    std::sort(sorted.begin(), sorted.end());
    CHECK(again == sorted);
#endif
  }).join();
  // A thread's free blocks outlive it: the next thread that needs that class takes them.
  constexpr size_t kOther = 3072;
  std::vector<char*> freed_by_exited;
  std::thread([&] {
    freed_by_exited = addresses(kOther, 100);
    release(freed_by_exited, kOther);
  }).join();
  std::vector<char*> taken;
  std::thread([&] {
    taken = addresses(kOther, 150);
    release(taken, kOther);
  }).join();
#if !defined(__SANITIZE_ADDRESS__)
  std::sort(taken.begin(), taken.end());
  int reused = 0;
  for (char* p : freed_by_exited) reused += std::binary_search(taken.begin(), taken.end(), p);
  CHECK(reused == 100);
#endif
}

TEST_CASE("pool: large blocks up to 64 MiB are kept for reuse on their thread; larger ones go back to the system") {
  // unfold's columns (14 MiB for a [32, 16, 28, 28] input and 3x3 filters, which conv2d made
  // each step until the thirty-first session) freed and asked for again each step: handed back
  // to glibc, every step faulted their pages in again (a quarter of a conv2d step's time).
  namespace pool = cr::pool;
  std::thread([] {
    for (const size_t bytes : {size_t(14) << 20, (size_t(64) << 20) - 64}) {
      CAPTURE(bytes);
      void* first = pool::allocate(bytes);
      CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
      static_cast<char*>(first)[bytes - 1] = 1;  // the whole request is usable
      const size_t cached = pool::detail::cache.cached_bytes;
      pool::deallocate(first, bytes);
      [[maybe_unused]] const size_t kept = pool::detail::cache.cached_bytes - cached;  // checked without ASan
      void* again = pool::allocate(bytes);
#if !defined(__SANITIZE_ADDRESS__)  // under ASan the pool is off: every block is malloc's
      CHECK(kept == std::bit_ceil(bytes));  // on this thread's list, a power-of-two block
      CHECK(again == first);
#endif
      pool::deallocate(again, bytes);
    }
    // past the largest class: allocated and freed by the system each time (usable all the same)
    const size_t huge = (size_t(64) << 20) + 1;
    char* p = static_cast<char*>(pool::allocate(huge));
    p[huge - 1] = 1;
    const size_t cached = pool::detail::cache.cached_bytes;
    pool::deallocate(p, huge);
    CHECK(pool::detail::cache.cached_bytes == cached);
  }).join();
}

TEST_CASE("scalar in-place ops outside autograd write through in one pass, equal to the out-of-place op, bump the version") {
  for (cr::Dtype d : {cr::float32, cr::float64}) {
    const cr::Tensor base = cr::tensor({0.1, -2.5, 3.75, 1e-3, 7.0, -0.3}, {2, 3}, d);
    struct Case {
      const char* name;
      std::function<void(cr::Tensor&)> in_place;
      std::function<cr::Tensor(const cr::Tensor&)> out_of_place;
    };
    const std::vector<Case> cases = {
        {"add_", [](cr::Tensor& t) { t.add_(0.7); }, [](const cr::Tensor& t) { return t + 0.7; }},
        {"sub_", [](cr::Tensor& t) { t.sub_(0.7); }, [](const cr::Tensor& t) { return t - 0.7; }},
        {"mul_", [](cr::Tensor& t) { t.mul_(0.7); }, [](const cr::Tensor& t) { return t * 0.7; }},
        {"div_", [](cr::Tensor& t) { t.div_(0.7); }, [](const cr::Tensor& t) { return t / 0.7; }},
        {"fill_", [](cr::Tensor& t) { t.fill_(0.7); }, [](const cr::Tensor& t) { return cr::full_like(t, 0.7); }},
    };
    for (const auto& c : cases) {
      CAPTURE(c.name);
      cr::Tensor t = base.clone();
      const uint32_t v0 = t.version();
      c.in_place(t);
      CHECK(t.version() == v0 + 1);
      CHECK(t.to_vector<double>() == c.out_of_place(base).to_vector<double>());  // bit for bit
      // a strided view takes the general path and gives the same values
      cr::Tensor wide = base.clone().t();
      c.in_place(wide);
      CHECK(wide.to_vector<double>() == c.out_of_place(base.t()).to_vector<double>());
    }
  }
  cr::Tensor ints = cr::tensor({1.0, 2.0}, {2}, cr::int64);
  ints.mul_(3.0);  // integer tensors keep the general path
  CHECK(ints.to_vector<double>() == std::vector<double>{3, 6});
}

TEST_CASE("BackwardFn: small captures inline, large ones pooled; moves keep the rule, destruction frees captures") {
  const cr::Tensor held = cr::ones({2});
  cr::Tensor g = cr::ones({2});
  const cr::FunctionNode node("test", cr::Shape{2}, cr::float32);
  const cr::BackwardContext ctx(node, false);  // the rules below never read it
  {
    cr::BackwardFn small = [held](const cr::Tensor& grad, const cr::BackwardContext&) -> cr::Grads { return {grad * held}; };
    cr::Shape big_capture{1, 2, 3, 4, 5, 6, 7, 8};  // 72 bytes: more than fits inline
    cr::BackwardFn large = [held, big_capture](cr::Tensor grad, const cr::BackwardContext&) -> cr::Grads {
      return {grad * static_cast<double>(big_capture[7]) * held};
    };
    CHECK(held.impl_ptr().use_count() == 3);
    cr::BackwardFn moved_small = std::move(small), moved_large = std::move(large);
    CHECK_FALSE(small);  // NOLINT: a moved-from rule is empty by contract
    CHECK_FALSE(large);  // NOLINT
    CHECK(held.impl_ptr().use_count() == 3);  // moved, not copied
    CHECK(moved_small(g, ctx)[0].to_vector<double>() == std::vector<double>{1, 1});
    CHECK(moved_large(g, ctx)[0].to_vector<double>() == std::vector<double>{8, 8});
    moved_large = nullptr;
    CHECK(held.impl_ptr().use_count() == 2);
  }
  CHECK(held.impl_ptr().use_count() == 1);
}

TEST_CASE("Grads are built by moving temporaries in; a rule taking g by value can pass it on without a copy") {
  cr::Tensor a = cr::ones({3});
  cr::Grads grads = {cr::Tensor(a), cr::Tensor()};
  CHECK(grads.size() == 2);
  CHECK(a.impl_ptr().use_count() == 2);  // a and the moved-in copy; no stray initializer_list copy
  cr::Tensor x = cr::ones({3}, cr::float64).requires_grad_();
  cr::Tensor y = x * 2.0;
  cr::Tensor s = (y + cr::ones({3}, cr::float64)).sum();  // add's rule moves g on to y
  s.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2, 2});
}

TEST_CASE("live_nodes counts per thread and sums across threads, also for a graph freed on another thread") {
  const int64_t before = cr::autograd::live_nodes();
  cr::Tensor x = cr::ones({2}, cr::float64).requires_grad_();
  cr::Tensor y;
  std::thread maker([&] {  // two nodes made on another thread (plus x's accumulator)
    const cr::Tensor z = x * 3.0;  // (named: tanh of the temporary would join mul's node)
    y = cr::tanh(z);
  });
  maker.join();
  CHECK(cr::autograd::live_nodes() == before + 3);  // the ended thread's count is kept
  y = cr::Tensor();                                  // freed here
  CHECK(cr::autograd::live_nodes() == before + 1);  // x's accumulator stays with x
  x = cr::Tensor();
  CHECK(cr::autograd::live_nodes() == before);
}

TEST_CASE("kernels::matmul with transposed operands equals matmul of the transposed views, batched and broadcast too") {
  cr::manual_seed(7);
  const cr::Tensor a = cr::randn({2, 3, 4}, cr::float64), b = cr::randn({5, 4}, cr::float64);
  const cr::Tensor at = cr::randn({4, 3}, cr::float64), bt = cr::randn({2, 5, 4}, cr::float64);
  auto same = [](const cr::Tensor& x, const cr::Tensor& y) {
    CHECK(x.shape() == y.shape());
    CHECK(x.to_vector<double>() == y.to_vector<double>());
  };
  same(cr::kernels::matmul(a, b, false, true), cr::matmul(a, b.t()));                    // [2,3,4] @ [4,5]
  const cr::Tensor c = cr::randn({2, 4, 5}, cr::float64);
  same(cr::kernels::matmul(at, c, true, false), cr::matmul(at.t(), c));                  // [3,4] broadcast over [2,4,5]
  same(cr::kernels::matmul(a, bt, false, true), cr::matmul(a, bt.transpose(-1, -2)));    // batch with batch
  same(cr::kernels::matmul(at, at, true, false), cr::matmul(at.t().contiguous(), at));   // A^T A
  // a non-BLAS layout (a column slice) is copied first, transposed or not
  const cr::Tensor wide = cr::randn({6, 8}, cr::float64).slice(1, 0, 8, 2);  // [6, 4], strides (8, 2)
  const cr::Tensor d = cr::randn({3, 6}, cr::float64);
  same(cr::kernels::matmul(wide, d, true, true), cr::matmul(wide.t(), d.t()));  // [4,6] @ [6,3]
}

TEST_CASE("backward runs a node only after every node that feeds it (ordered by height, no search), also across threads") {
  // a feeds both b and c, and b feeds c: a must wait for both gradients.
  cr::Tensor x = cr::ones({2}, cr::float64).requires_grad_();
  cr::Tensor a = x * 2.0, b = a * 3.0, c = a + b;
  // heights: 1 + the highest input node's (x's accumulator has none: 0)
  CHECK(cr::gradient_edge(x)->height == 0);
  CHECK(a.grad_fn()->height == 1);
  CHECK(b.grad_fn()->height == 2);
  CHECK(c.grad_fn()->height == 3);
  std::vector<std::string> ran;
  std::vector<double> a_grad;
  a.register_hook([&](const cr::Tensor& g) {
    ran.push_back("a");
    a_grad = g.to_vector<double>();
    return cr::Tensor();
  });
  b.register_hook([&](const cr::Tensor&) { ran.push_back("b"); return cr::Tensor(); });
  c.register_hook([&](const cr::Tensor&) { ran.push_back("c"); return cr::Tensor(); });
  cr::sum(c).backward();
  CHECK(ran == std::vector<std::string>{"c", "b", "a"});
  CHECK(a_grad == std::vector<double>{4, 4});  // 1 from c directly, 3 through b: the sum, once
  CHECK(x.grad().to_vector<double>() == std::vector<double>{8, 8});

  // Part of a graph made on another thread, the rest here: heights do not depend on which
  // thread made a node (a per-thread creation counter would order these wrongly).
  cr::Tensor w = cr::full({3}, 0.5, cr::float64).requires_grad_();
  cr::Tensor deep;
  std::thread maker([&] {
    deep = w;
    for (int i = 0; i < 50; ++i) deep = cr::tanh(deep * 1.1);
  });
  maker.join();
  cr::Tensor shallow = w * 3.0;                 // made here, later, and lower than `deep`
  cr::sum(deep * shallow + shallow).backward();  // w reached through both
  cr::Tensor v = cr::full({3}, 0.5, cr::float64).requires_grad_();
  cr::Tensor d2 = v;
  for (int i = 0; i < 50; ++i) d2 = cr::tanh(d2 * 1.1);
  cr::Tensor s2 = v * 3.0;
  const auto expect = cr::autograd::grad({cr::sum(d2 * s2 + s2)}, {v});  // all on one thread
  CHECK(w.grad().to_vector<double>() == expect[0].to_vector<double>());
}

TEST_CASE("a leaf keeps its accumulator while it lives; a graph keeps its leaves alive") {
  const int64_t before = cr::autograd::live_nodes();
  {
    cr::Tensor w = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
    (w * 2.0).sum().backward();
    // the graph is gone, w's accumulator stays for the next one (it was made again each step)
    CHECK(cr::autograd::live_nodes() == before + 1);
    const cr::Node* first = cr::gradient_edge(w).get();
    (w * 3.0).sum().backward();
    CHECK(cr::gradient_edge(w).get() == first);
    CHECK(values(w.grad()) == std::vector<double>{5, 5});
    CHECK(cr::autograd::live_nodes() == before + 1);
  }
  CHECK(cr::autograd::live_nodes() == before);  // and goes with its leaf

  // A leaf no handle holds any more lives as long as a graph that uses it (the edge holds it).
  cr::Tensor loss;
  cr::Ref<cr::Node> sink;
  {
    cr::Tensor w = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
    loss = (w * 3.0).sum();  // an op that saves nothing: only the edge holds w
    sink = loss.grad_fn()->next[0].node->next[0].node;
    REQUIRE(sink->is_accumulator);
  }
  auto& acc = static_cast<cr::AccumulateGrad&>(*sink);
  REQUIRE(acc.leaf != nullptr);
  loss.backward();
  CHECK(values(cr::Tensor(cr::Ref<cr::TensorImpl>::share(acc.leaf)).grad()) == std::vector<double>{3, 3});
  loss = cr::Tensor();  // the graph goes, and with it the leaf: the accumulator held alone forgets it
  CHECK(acc.leaf == nullptr);
  sink = nullptr;
  CHECK(cr::autograd::live_nodes() == before);
}

TEST_CASE("a gradient left in an accumulator by a backward that failed does not reach the next one") {
  cr::Tensor w = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  {
    cr::Tensor b = cr::exp(w * 1.0);
    cr::Tensor loss = (w + b).sum();  // add sends w's accumulator a gradient before exp's rule runs
    b.mul_(2.0);                      // exp saved its result: its rule fails
    CHECK_THROWS_AS(loss.backward(), cr::Error);
  }
  CHECK_FALSE(w.grad().defined());
  (w * 3.0).sum().backward();
  CHECK(values(w.grad()) == std::vector<double>{3, 3});
}
