// matmul: PyTorch's semantics for every rank combination, values against a naive triple
// loop, transposed operands handed to BLAS without copies, and gradients; linear likewise.
#include "helpers.hpp"

namespace {
// Independent reference: a plain loop over row-major copies.
std::vector<double> naive_mm(const cr::Tensor& a, const cr::Tensor& b) {
  const auto va = values(a), vb = values(b);
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  std::vector<double> c(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * m + j] += va[i * k + p] * vb[p * m + j];
  return c;
}
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
}
}  // namespace

TEST_CASE("matmul 2-d x 2-d, including transposed operands, float32 and float64") {
  for (auto dtype : {cr::float32, cr::float64}) {
    cr::Generator g(3);
    const cr::Tensor a = cr::randn({5, 7}, dtype, &g), b = cr::randn({7, 3}, dtype, &g);
    check_close(values(cr::matmul(a, b)), naive_mm(a, b), dtype == cr::float32 ? 1e-5 : 1e-12);
    const cr::Tensor at = cr::randn({7, 5}, dtype, &g).t(), bt = cr::randn({3, 7}, dtype, &g).t();
    CHECK_FALSE(at.is_contiguous());
    check_close(values(cr::matmul(at, bt)), naive_mm(at.contiguous(), bt.contiguous()),
                dtype == cr::float32 ? 1e-5 : 1e-12);
    const cr::Tensor sliced = cr::randn({5, 10}, dtype, &g).slice(1, 1, 8);  // row stride 10, not 7
    check_close(values(cr::matmul(sliced, b)), naive_mm(sliced.contiguous(), b), dtype == cr::float32 ? 1e-5 : 1e-12);
  }
}

TEST_CASE("tiny products: every width 1-6, each operand plain, transposed or strided, against the naive loop") {
  // Products below BLAS's threshold run in the library's own loop, reading each operand
  // through its strides (transposed, sliced) without a copy.
  cr::Generator g(11);
  for (auto dtype : {cr::float32, cr::float64})
    for (int64_t n : {1, 3, 4})
      for (int64_t k : {1, 2, 5})
        for (int64_t m = 1; m <= 6; ++m)
          for (int layout = 0; layout < 4; ++layout) {
            CAPTURE(dtype);
            CAPTURE(n);
            CAPTURE(k);
            CAPTURE(m);
            CAPTURE(layout);
            const cr::Tensor a = layout & 1 ? cr::randn({k, n}, dtype, &g).t() : cr::randn({n, k}, dtype, &g);
            const cr::Tensor b = layout & 2 ? cr::randn({m, k}, dtype, &g).t()
                                            : cr::randn({k, m + 2}, dtype, &g).slice(1, 1, m + 1);  // row stride m + 2
            check_close(values(cr::matmul(a, b)), naive_mm(a.contiguous(), b.contiguous()),
                        dtype == cr::float32 ? 1e-5 : 1e-12);
          }
  const cr::Tensor x = cr::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, cr::float64), w = cr::tensor({1, 0, -1, 2, 1, 0}, {2, 3}, cr::float64);
  CHECK(values(cr::linear(x, w, cr::tensor({10, 20}, cr::float64))) == std::vector<double>{8, 24, 8, 33});  // bias added
}

TEST_CASE("matmul ranks: 1-d . 1-d, 1-d . 2-d, 2-d . 1-d, batched with broadcast batch dims") {
  cr::Tensor v = cr::tensor({1, 2, 3}, cr::float64), w = cr::tensor({4, 5, 6}, cr::float64);
  CHECK(cr::matmul(v, w).dim() == 0);
  CHECK(cr::matmul(v, w).item<double>() == 32);
  cr::Tensor m = cr::arange(6, cr::float64).reshape({3, 2});
  CHECK(cr::matmul(v, m).shape() == cr::Shape{2});
  CHECK(values(cr::matmul(v, m)) == std::vector<double>{16, 22});
  CHECK(values(cr::matmul(m.t(), v)) == std::vector<double>{16, 22});
  cr::Generator g(5);
  cr::Tensor A = cr::randn({2, 1, 4, 3}, cr::float64, &g), B = cr::randn({5, 3, 2}, cr::float64, &g);
  cr::Tensor C = cr::matmul(A, B);
  CHECK(C.shape() == cr::Shape{2, 5, 4, 2});
  check_close(values(C.select(0, 1).select(0, 3)), naive_mm(A.select(0, 1).select(0, 0), B.select(0, 3)));
  cr::Tensor I = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::int64);
  CHECK(cr::matmul(I, I).to_vector<int64_t>() == std::vector<int64_t>{7, 10, 15, 22});
}

TEST_CASE("a batch of products shared between threads: each product as the 2-d one, the same bits on 1 and 2 threads") {
  // 12 products of [96, 64] x [64, 80] from broadcast batch dims [3, 1] and [1, 4] (a's and b's
  // operands repeat), one transposed: on 2 threads the products are shared, each on one OpenBLAS thread.
  cr::Generator g(6);
  const cr::Tensor a = cr::randn({3, 1, 96, 64}, cr::float32, &g);
  const cr::Tensor b = cr::randn({1, 4, 80, 64}, cr::float32, &g).transpose(-1, -2);
  std::vector<float> each;  // the 2-d products, in the batch's order
  {
    const Threads one(1);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (float v : cr::matmul(a.select(0, i).select(0, 0), b.select(0, 0).select(0, j)).to_vector<float>())
          each.push_back(v);
  }
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const Threads scope(threads);
    const cr::Tensor c = cr::matmul(a, b);
    CHECK(c.shape() == cr::Shape{3, 4, 96, 80});
    CHECK(c.to_vector<float>() == each);
  }
  check_close(values(cr::matmul(a, b).select(0, 2).select(0, 1)),
              naive_mm(a.select(0, 2).select(0, 0), b.select(0, 0).select(0, 1)), 1e-4);
}

TEST_CASE("matmul gradients at every rank combination") {
  const std::vector<std::pair<cr::Shape, cr::Shape>> shapes = {
      {{3}, {3}}, {{3}, {3, 2}}, {{2, 3}, {3}}, {{2, 3}, {3, 4}}, {{2, 2, 3}, {3, 2}}, {{2, 1, 2, 3}, {3, 3, 2}}};
  for (const auto& pair : shapes) {
    const cr::Shape &sa = pair.first, &sb = pair.second;  // (not a structured binding: CAPTURE captures it)
    CAPTURE(sa);
    CAPTURE(sb);
    check_gradients([](const std::vector<cr::Tensor>& v) { return cr::matmul(v[0], v[1]); },
                    {input(sa, -1, 1, 21), input(sb, -1, 1, 22)});
  }
  const cr::Tensor at = input({3, 2}, -1, 1, 23).detach().t().requires_grad_();
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::matmul(v[0], v[1]); }, {at, input({3, 4})});
}

TEST_CASE("matmul of a batch by a matrix folds the batch into rows: one product each way, as PyTorch's") {
  // x [2, 3, 4, 5] @ w [5, 6]: the rows of all batches in one product, and w's gradient one
  // product over all rows (x^T g), not 6 products of [5, 6] summed afterwards.
  cr::Generator g(31);
  const cr::Tensor x = cr::randn({2, 3, 4, 5}, cr::float64, &g).requires_grad_();
  const cr::Tensor w = cr::randn({5, 6}, cr::float64, &g).requires_grad_();
  const cr::Tensor y = cr::matmul(x, w);
  CHECK(y.shape() == cr::Shape{2, 3, 4, 6});
  CHECK(y.grad_fn()->name == std::string("reshape"));
  const auto& product = y.grad_fn()->next[0].node;
  REQUIRE(product);
  CHECK(product->name == std::string("matmul"));
  CHECK(product->shape == cr::Shape{24, 6});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      check_close(values(y.select(0, i).select(0, j)), naive_mm(x.select(0, i).select(0, j), w));
  const cr::Tensor gy = cr::randn({2, 3, 4, 6}, cr::float64, &g);
  y.backward(gy);
  // against the products batch by batch: dx = g w^T, dw = sum over the batch of x^T g
  std::vector<double> dw(30, 0.0);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      const cr::Tensor xb = x.detach().select(0, i).select(0, j), gb = gy.select(0, i).select(0, j);
      check_close(values(x.grad().select(0, i).select(0, j)), naive_mm(gb, w.detach().t()));
      const std::vector<double> part = naive_mm(xb.t(), gb);
      for (size_t k = 0; k < dw.size(); ++k) dw[k] += part[k];
    }
  check_close(values(w.grad()), dw);
  // a batch whose rows cannot be one matrix without a copy (a permuted batch) is multiplied
  // batch by batch, with the same values
  const cr::Tensor xp = x.detach().permute({1, 0, 2, 3});
  const cr::Tensor yp = cr::matmul(xp, w.detach());
  CHECK(yp.shape() == cr::Shape{3, 2, 4, 6});
  check_close(values(yp.select(0, 2).select(0, 1)), naive_mm(x.detach().select(0, 1).select(0, 2), w.detach()));
}

TEST_CASE("matmul errors name the shapes") {
  check_error([] { (void)cr::matmul(cr::zeros({2, 3}), cr::zeros({4, 2})); }, {"matmul", "inner", "[2, 3]", "[4, 2]"});
  check_error([] { (void)cr::matmul(cr::zeros({3}), cr::zeros({4})); }, {"matmul", "[3]", "[4]"});
  check_error([] { (void)cr::matmul(cr::zeros({2, 2}, cr::float32), cr::zeros({2, 2}, cr::float64)); },
              {"matmul", "float32", "float64"});
  check_error([] { (void)cr::matmul(cr::zeros({2, 3, 4}), cr::zeros({5, 4, 2})); }, {"matmul", "[2]", "[5]"});
  check_error([] { (void)cr::matmul(cr::tensor(1.0), cr::zeros({2})); }, {"matmul", "at least one dimension"});
}

TEST_CASE("matmul with zero-size dimensions") {
  CHECK(cr::matmul(cr::zeros({0, 3}), cr::zeros({3, 2})).shape() == cr::Shape{0, 2});
  CHECK(values(cr::matmul(cr::ones({2, 0}), cr::ones({0, 2}))) == std::vector<double>{0, 0, 0, 0});
}

TEST_CASE("linear: x W^T + b in one GEMM (bias as BLAS's beta term), any leading dims, gradients of every input") {
  cr::Generator g(11);
  // Values against an independent computation: the naive product plus the bias, row by row.
  for (auto dtype : {cr::float32, cr::float64}) {
    const double tol = dtype == cr::float32 ? 1e-5 : 1e-12;
    for (int64_t n : {3, 64}) {  // 3x4x5 takes the small-product loop, 64x20x30 BLAS
      const int64_t in = n == 3 ? 4 : 20, out = n == 3 ? 5 : 30;
      const cr::Tensor x = cr::randn({n, in}, dtype, &g), w = cr::randn({out, in}, dtype, &g),
                       b = cr::randn({out}, dtype, &g);
      std::vector<double> want = naive_mm(x, w.t().contiguous());
      const auto vb = values(b);
      for (size_t i = 0; i < want.size(); ++i) want[i] += vb[i % static_cast<size_t>(out)];
      check_close(values(cr::linear(x, w, b)), want, tol);
      check_close(values(cr::linear(x, w)), naive_mm(x, w.t().contiguous()), tol);
      // a transposed (non-contiguous) weight and a strided x are read as they lie
      const cr::Tensor wt = cr::randn({in, out}, dtype, &g).t(), xs = cr::randn({n, in + 3}, dtype, &g).slice(1, 1, in + 1);
      std::vector<double> want2 = naive_mm(xs.contiguous(), wt.t().contiguous());
      for (size_t i = 0; i < want2.size(); ++i) want2[i] += vb[i % static_cast<size_t>(out)];
      check_close(values(cr::linear(xs, wt, b)), want2, tol);
    }
  }
  // Leading dims: a 1-d input gives [out], a [2, 3, in] input [2, 3, out], as matmul + bias.
  const cr::Tensor w = cr::randn({5, 4}, cr::float64, &g), b = cr::randn({5}, cr::float64, &g);
  const cr::Tensor v = cr::randn({4}, cr::float64, &g), x3 = cr::randn({2, 3, 4}, cr::float64, &g);
  CHECK(cr::linear(v, w, b).shape() == cr::Shape{5});
  check_close(values(cr::linear(v, w, b)), values(cr::matmul(v, w.t()) + b));
  CHECK(cr::linear(x3, w, b).shape() == cr::Shape{2, 3, 5});
  check_close(values(cr::linear(x3, w, b)), values(cr::matmul(x3, w.t()) + b));
  // An empty inner dimension: the bias alone.
  check_close(values(cr::linear(cr::zeros({2, 0}, cr::float64), cr::zeros({3, 0}, cr::float64),
                                cr::tensor({1, 2, 3}, cr::float64))),
              {1, 2, 3, 1, 2, 3});
  CHECK(cr::linear(x3, w, b).grad_fn() == nullptr);  // nothing requires grad: no node
  // Empty dimensions with leading dims other than one: rows were made with reshape({-1, width}),
  // which a width of 0 leaves ambiguous (an Error, forward for in = 0, backward for out = 0).
  for (int64_t in : {0, 2})
    for (int64_t out : {0, 3})
      for (const cr::Shape& lead : {cr::Shape{}, cr::Shape{2, 3}}) {
        cr::Shape xs = lead;
        xs.push_back(in);
        const cr::Tensor x0 = cr::ones(xs, cr::float64).requires_grad_(), w0 = cr::ones({out, in}, cr::float64).requires_grad_();
        const cr::Tensor y = cr::linear(x0, w0, cr::full({out}, 2.0, cr::float64));
        cr::Shape ys = lead;
        ys.push_back(out);
        CHECK(y.shape() == ys);
        check_close(values(y), std::vector<double>(static_cast<size_t>(ys.numel()), 2.0 + static_cast<double>(in)));
        const std::vector<cr::Tensor> gr = cr::autograd::grad({cr::sum(y)}, {x0, w0});
        check_close(values(gr[0]), std::vector<double>(static_cast<size_t>(xs.numel()), static_cast<double>(out)));
        check_close(values(gr[1]), std::vector<double>(static_cast<size_t>(out * in), static_cast<double>(lead.numel())));
      }

  // Gradients (first and second order) for x, W and b, with and without bias, 1-d to 3-d x.
  const cr::Tensor W = input({3, 4}, -2.0, 2.0, 21), B = input({3}, -2.0, 2.0, 22);
  check_gradients([](const auto& t) { return cr::linear(t[0], t[1], t[2]); }, {input({5, 4}, -2.0, 2.0, 23), W, B});
  check_gradients([](const auto& t) { return cr::linear(t[0], t[1]); }, {input({2, 2, 4}, -2.0, 2.0, 24), W});
  check_gradients([](const auto& t) { return cr::linear(t[0], t[1], t[2]); }, {input({4}, -2.0, 2.0, 25), W, B});
  // only some inputs requiring grad (the rule skips the others)
  const cr::Tensor xs = input({5, 4}, -2.0, 2.0, 26);
  check_gradients([&](const auto& t) { return cr::linear(xs.detach(), t[0], t[1]); }, {W, B});
  check_gradients([&](const auto& t) { return cr::linear(t[0], W.detach(), B.detach()); }, {xs});

  // The node and its name; Linear uses it.
  cr::nn::Linear layer(4, 3);
  CHECK(std::string(layer(cr::randn({2, 4})).grad_fn()->name) == "linear");

  check_error([&] { (void)cr::linear(cr::randn({2, 5}), cr::randn({3, 4})); }, {"linear", "[2, 5]", "[3, 4]"});
  check_error([&] { (void)cr::linear(cr::randn({2, 4}), cr::randn({3, 4}), cr::randn({4})); }, {"linear", "bias [4]"});
  check_error([&] { (void)cr::linear(cr::randn({2, 4}), cr::randn({3, 4}, cr::float64)); },
              {"linear", "float32", "float64"});
  check_error([&] { (void)cr::linear(cr::tensor(1.0), cr::randn({3, 4})); }, {"linear", "x []"});
  // int64 operands give an exact int64 product, as PyTorch's F.linear (it was an Error; matmul took them)
  const cr::Tensor yi = cr::linear(cr::tensor({1, 2}, {1, 2}, cr::int64), cr::tensor({3, 4, -1, 0}, {2, 2}, cr::int64),
                                   cr::tensor({5, 7}, cr::int64));
  CHECK(yi.dtype() == cr::int64);
  CHECK(yi.to_vector<int64_t>() == std::vector<int64_t>{16, 6});  // python3-torch: tensor([[16, 6]])
  check_error([&] { (void)cr::linear(cr::tensor({1, 2}, {1, 2}, cr::int64), cr::randn({3, 2})); },
              {"linear", "int64", "float32"});
}

TEST_CASE("linear with relu, sigmoid or tanh is one op: the bits of linear then the activation, and of its gradients") {
  using A = cr::LinearActivation;
  struct Case {
    A activation;
    cr::Tensor (*op)(const cr::Tensor&);
    const char* name;
  };
  const Case cases[] = {{A::relu, cr::relu, "linear_relu"},
                        {A::sigmoid, cr::sigmoid, "linear_sigmoid"},
                        {A::tanh, cr::tanh, "linear_tanh"}};
  cr::Generator gen(31);
  for (const Case& c : cases) {
    INFO(c.name);
    // Against the two ops one after the other, with a gradient from above: x 1-d to 3-d (and
    // 2-d large enough that the activation's loops split between threads), with and without
    // bias, float32 and float64, on 1 and 2 threads.
    for (int threads : {1, 2}) {
      const Threads scope(threads);
      for (auto dtype : {cr::float32, cr::float64})
        for (const cr::Shape& xs : {cr::Shape{5}, cr::Shape{6, 5}, cr::Shape{2, 3, 5}, cr::Shape{512, 5}})
          for (bool with_bias : {true, false}) {
            const int64_t out = xs.numel() >= 512 ? 300 : 4;
            const cr::Tensor x = cr::randn(xs, dtype, &gen).requires_grad_(),
                             w = cr::randn({out, 5}, dtype, &gen).requires_grad_(),
                             b = with_bias ? cr::randn({out}, dtype, &gen).requires_grad_() : cr::Tensor();
            const cr::Tensor fused = cr::linear(x, w, b, c.activation), composed = c.op(cr::linear(x, w, b));
            REQUIRE(fused.shape() == composed.shape());
            CHECK(same_values(values(fused), values(composed)));
            REQUIRE(fused.grad_fn() != nullptr);
            CHECK(std::string(fused.grad_fn()->name) == c.name);
            CHECK(fused.grad_fn()->next.size() == 3);  // x, weight, bias: no node for the activation
            CHECK(cr::fused_activation(*fused.grad_fn()) == c.activation);
            const cr::Tensor up = cr::randn(fused.shape(), dtype, &gen);
            const std::vector<double> up_before = values(up);
            std::vector<cr::Tensor> wrt{x, w};
            if (with_bias) wrt.push_back(b);
            const auto gf = cr::autograd::grad({fused}, wrt, {up}), gc = cr::autograd::grad({composed}, wrt, {up});
            for (size_t i = 0; i < wrt.size(); ++i) CHECK(same_values(values(gf[i]), values(gc[i])));
            CHECK(same_values(values(up), up_before));  // the caller's gradient left as it was
          }
    }
    // A NaN product passes the activation as it passes the op alone (relu keeps it).
    const cr::Tensor xn = cr::tensor({1.0, NAN}, {1, 2}, cr::float64),
                     wn = cr::tensor({1.0, 0.0, -1.0, 0.0}, {2, 2}, cr::float64);
    CHECK(same_values(values(cr::linear(xn, wn, {}, c.activation)), values(c.op(cr::linear(xn, wn)))));
    // int64 operands: the exact product, then the op's own dtype rule (relu int64, the others float)
    const cr::Tensor xi = cr::tensor({1, -2}, {1, 2}, cr::int64), wi = cr::tensor({3, 4, -1, 0}, {2, 2}, cr::int64);
    const cr::Tensor yi = cr::linear(xi, wi, {}, c.activation), want_i = c.op(cr::linear(xi, wi));
    CHECK(yi.dtype() == want_i.dtype());
    CHECK(same_values(values(yi), values(want_i)));
    // first and second derivatives against finite differences (float64), bias or none, 1-d to 3-d x
    const cr::Tensor W = input({3, 4}, -2.0, 2.0, 41), B = input({3}, -2.0, 2.0, 42);
    const A a = c.activation;
    check_gradients([a](const auto& t) { return cr::linear(t[0], t[1], t[2], a); },
                    {input({5, 4}, -2.0, 2.0, 43), W, B});
    check_gradients([a](const auto& t) { return cr::linear(t[0], t[1], {}, a); }, {input({2, 2, 4}, -2.0, 2.0, 44), W});
    check_gradients([a](const auto& t) { return cr::linear(t[0], t[1], t[2], a); },
                    {input({4}, -2.0, 2.0, 45), W, B});
    check_error([&] { (void)cr::linear(cr::randn({2, 5}), cr::randn({3, 4}), {}, a); }, {"linear", "[2, 5]", "[3, 4]"});
  }
  // none is linear itself
  const cr::Tensor x = cr::randn({2, 3}).requires_grad_(), w = cr::randn({4, 3});
  CHECK(std::string(cr::linear(x, w, {}, A::none).grad_fn()->name) == "linear");
  // fused_activation knows linear's own nodes: not plain linear, not an activation's, not a
  // custom node that calls itself "linear_relu"
  CHECK(cr::fused_activation(*cr::linear(x, w).grad_fn()) == A::none);
  CHECK(cr::fused_activation(*cr::relu(x).grad_fn()) == A::none);
  const cr::Tensor custom =
      cr::record(cr::relu(x.detach()), "linear_relu", {x}, {},
                 [](const cr::Tensor& g, const cr::BackwardContext&) -> cr::Grads { return {g}; });
  REQUIRE(std::string(custom.grad_fn()->name) == "linear_relu");
  CHECK(cr::fused_activation(*custom.grad_fn()) == A::none);
}

TEST_CASE("linear_backward: linear's rule, the product's part after the activation's derivative") {
  // d/dx = g W, d/dW = g^T x, d/db = g summed over the rows by the engine (the rule returns g).
  const cr::Tensor x = cr::tensor({1.0, 2.0, -1.0, 0.5, 3.0, -2.0}, {2, 3}, cr::float64).requires_grad_();
  const cr::Tensor w = cr::tensor({0.5, -1.0, 2.0, 1.5, 0.25, -0.5}, {2, 3}, cr::float64).requires_grad_();
  const cr::Tensor b = cr::tensor({0.1, -0.2}, cr::float64).requires_grad_();
  const cr::Tensor y = cr::linear(x, w, b, cr::LinearActivation::sigmoid);
  const cr::Tensor g = cr::tensor({1.0, -2.0, 0.5, 4.0}, {2, 2}, cr::float64);
  const auto& node = static_cast<const cr::FunctionNode&>(*y.grad_fn());
  const auto want = cr::autograd::grad({y}, {x, w}, {g}, /*retain_graph=*/true);
  const cr::BackwardContext ctx(node, true);
  const cr::NoGradGuard first_order;  // as the engine runs a rule without create_graph
  const cr::Grads product = cr::linear_backward(g, ctx);
  REQUIRE(product.size() == 3);
  // by hand: g W = [[1*0.5 - 2*1.5, 1*-1 - 2*0.25, 1*2 - 2*-0.5], [0.5*0.5 + 4*1.5, ...]]
  CHECK(values(product[0]) == std::vector<double>{-2.5, -1.5, 3.0, 6.25, 0.5, -1.0});
  // g^T x = [[1*1 + 0.5*0.5, 1*2 + 0.5*3, 1*-1 + 0.5*-2], [-2*1 + 4*0.5, -2*2 + 4*3, -2*-1 + 4*-2]]
  CHECK(values(product[1]) == std::vector<double>{1.25, 3.5, -2.0, 0.0, 8.0, -6.0});
  CHECK(values(product[2]) == values(g));
  // after the activation's derivative: the product's part of g * y (1 - y), the gradients the
  // graph gives
  const cr::Tensor gs = cr::activation_backward(cr::LinearActivation::sigmoid, g.clone(), ctx);
  CHECK(cr::allclose(gs, g * y.detach() * (1.0 - y.detach()), 1e-15, 0));
  const cr::Grads composed = cr::linear_backward(gs, ctx);
  for (size_t i = 0; i < 2; ++i) CHECK(same_values(values(composed[i]), values(want[i])));
}
