// Modules: registration and names, Linear's initialisation, MLP structure, printing,
// train/eval, dtype conversion; the initialisers.
#include "helpers.hpp"

#include <cmath>
#include <thread>

TEST_CASE("Linear: shapes, PyTorch's default initialisation bounds, bias on and off") {
  cr::manual_seed(1);
  cr::nn::Linear l(50, 20);
  CHECK(l.weight.shape() == cr::Shape{20, 50});
  CHECK(l.bias.shape() == cr::Shape{20});
  const double bound = 1 / std::sqrt(50.0);
  for (double w : values(l.weight)) CHECK(std::abs(w) <= bound);
  for (double b : values(l.bias)) CHECK(std::abs(b) <= bound);
  // U(-b, b) has standard deviation b / sqrt(3)
  const auto w = values(l.weight);
  double var = 0;
  for (double v : w) var += v * v / w.size();
  CHECK(std::sqrt(var) == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.1));
  CHECK(l(cr::zeros({7, 50})).shape() == cr::Shape{7, 20});
  CHECK(l.repr() == "Linear(in=50, out=20, bias=true)");
  cr::nn::Linear nb(3, 4, {.bias = false});
  CHECK_FALSE(nb.bias.defined());
  CHECK(nb.parameters().size() == 1);
  CHECK(nb.repr() == "Linear(in=3, out=4, bias=false)");
  check_error([&] { (void)nb(cr::zeros({2, 5})); }, {"Linear", "[2, 5]", "in_features=3"});
  check_error([] { cr::nn::Linear bad(0, 3); }, {"Linear", "positive"});
  // y = x W^T + b, checked by hand
  cr::nn::Linear h(2, 1, {.dtype = cr::float64});
  {
    cr::NoGradGuard g;
    h.weight.copy_(cr::tensor({2, -1}, {1, 2}, cr::float64));
    h.bias.copy_(cr::tensor({0.5}, cr::float64));
  }
  CHECK(h(cr::tensor({3, 4}, {1, 2}, cr::float64)).item<double>() == 2.5);
}

TEST_CASE("Generator makes Linear reproducible") {
  cr::Generator g1(5), g2(5);
  cr::nn::Linear a(4, 3, {.generator = &g1}), b(4, 3, {.generator = &g2});
  CHECK(values(a.weight) == values(b.weight));
  CHECK(values(a.bias) == values(b.bias));
}

TEST_CASE("MLP: structure, names, printout, options") {
  cr::nn::MLP mlp({3, 4, 1}, {.activation = std::string("sigmoid"), .output_activation = std::string("sigmoid"),
                              .bias = false});
  const auto named = mlp.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK(named[0].first == "layers.0.weight");
  CHECK(named[1].first == "layers.2.weight");
  CHECK(named[0].second.shape() == cr::Shape{4, 3});
  CHECK(mlp.layers->size() == 4);
  CHECK(fmt::format("{}", mlp) ==
        "MLP(sizes=[3, 4, 1])(\n"
        "  (layers): Sequential(\n"
        "    (0): Linear(in=3, out=4, bias=false)\n"
        "    (1): Sigmoid()\n"
        "    (2): Linear(in=4, out=1, bias=false)\n"
        "    (3): Sigmoid()\n"
        "  )\n"
        ")");
  CHECK(mlp(cr::zeros({5, 3})).shape() == cr::Shape{5, 1});
  // zero input: hidden = sigmoid(0) = 0.5, output = sigmoid(0.5 * sum(W2))
  const double w2 = cr::sum(mlp.linears[1]->weight).item<double>();
  for (double v : values(mlp(cr::zeros({2, 3})))) CHECK(v == doctest::Approx(1 / (1 + std::exp(-0.5 * w2))));

  cr::nn::MLP deep({2, 8, 8, 3}, {.activation = std::function<cr::nn::ModulePtr()>([] { return cr::nn::Tanh(); })});
  CHECK(deep.parameters().size() == 6);
  CHECK(deep.named_parameters()[5].first == "layers.4.bias");
  CHECK(fmt::format("{}", deep).find("Tanh()") != std::string::npos);
  check_error([] { cr::nn::MLP bad({3}); }, {"MLP", "sizes"});
  // one layer uses no hidden activation; a misspelt name passed unnoticed there
  check_error([] { cr::nn::MLP bad({3, 2}, {.activation = std::string("rleu")}); }, {"rleu", "relu"});
  check_error([] { cr::nn::MLP bad({3, 4, 2}, {.activation = std::string("rleu")}); }, {"rleu"});
  check_error([] { cr::nn::MLP bad({3, 2}, {.output_activation = std::string("sigmod")}); }, {"sigmod"});
}

TEST_CASE("Sequential runs a Linear and the ReLU, Sigmoid or Tanh after it as one op, with the bits of the two") {
  namespace nn = cr::nn;
  // Each layer one node: the seed's network, a relu MLP with a tanh output, and Linear layers
  // followed by another activation, a plain function or nothing, which stay modules of their own.
  const auto chain = [](const cr::Tensor& y) {  // the node names from the output down the first inputs
    std::vector<std::string> names;
    for (const cr::Node* n = y.grad_fn().get(); n != nullptr && !n->is_accumulator;
         n = n->next.empty() ? nullptr : n->next[0].node.get())
      names.emplace_back(n->name);
    return names;
  };
  cr::manual_seed(3);
  nn::MLP seed({3, 4, 1}, {.activation = std::string("sigmoid"), .output_activation = std::string("sigmoid"),
                           .bias = false, .dtype = cr::float64});
  nn::MLP relu_tanh({3, 8, 8, 2}, {.output_activation = std::string("tanh"), .dtype = cr::float64});
  nn::MLP gelu({3, 8, 2}, {.activation = std::string("gelu"), .dtype = cr::float64});
  nn::Sequential mixed({std::make_shared<nn::Linear>(3, 5, nn::LinearOptions{.dtype = cr::float64}),
                        std::make_shared<nn::Activation>("Double", [](const cr::Tensor& t) { return t * 2.0; }),
                        std::make_shared<nn::Linear>(5, 2, nn::LinearOptions{.dtype = cr::float64})});
  const cr::Tensor x = cr::randn({6, 3}, cr::float64);
  CHECK(chain(seed(x)) == std::vector<std::string>{"linear_sigmoid", "linear_sigmoid"});
  CHECK(chain(relu_tanh(x)) == std::vector<std::string>{"linear_tanh", "linear_relu", "linear_relu"});
  const std::vector<std::string> with_gelu = chain(gelu(x));  // gelu is x Phi(x): several nodes
  CHECK(with_gelu.size() > 2);
  CHECK(with_gelu.front() == "linear");
  CHECK(with_gelu.back() == "linear");
  CHECK(chain(mixed(x)) == std::vector<std::string>{"linear", "mul", "linear"});
  // The same values and gradients as the modules one by one.
  for (nn::Module* m : std::initializer_list<nn::Module*>{&seed, &relu_tanh}) {
    const nn::Sequential& layers = *dynamic_cast<nn::MLP&>(*m).layers;
    const cr::Tensor xg = x.detach().requires_grad_();
    cr::Tensor h = xg;
    for (size_t i = 0; i < layers.size(); ++i) h = layers[i]->forward(h);
    const cr::Tensor fused = (*m)(xg);
    CHECK(same_values(values(fused), values(h)));
    std::vector<cr::Tensor> wrt = m->parameters();
    wrt.push_back(xg);
    const auto gf = cr::autograd::grad({cr::sum(fused * fused)}, wrt), gm = cr::autograd::grad({cr::sum(h * h)}, wrt);
    for (size_t i = 0; i < wrt.size(); ++i) CHECK(same_values(values(gf[i]), values(gm[i])));
  }
  // A subclass of Linear keeps its own forward (here: the product doubled).
  struct Doubled : nn::Linear {
    using nn::Linear::Linear;
    cr::Tensor forward(const cr::Tensor& t) override { return nn::Linear::forward(t) * 2.0; }
  };
  auto doubled = std::make_shared<Doubled>(3, 2, nn::LinearOptions{.dtype = cr::float64});
  nn::Sequential sub({doubled, nn::Sigmoid()});
  CHECK(chain(sub(x)) == std::vector<std::string>{"sigmoid", "mul", "linear"});
  CHECK(same_values(values(sub(x)), values(cr::sigmoid(cr::linear(x, doubled->weight, doubled->bias) * 2.0))));
  // A Linear given the wrong width still names itself.
  check_error([&] { (void)seed(cr::randn({2, 5}, cr::float64)); }, {"Linear", "in_features=3"});
}

TEST_CASE("MLP with an initialiser, reset_parameters, gradients through the whole model") {
  cr::manual_seed(3);
  cr::nn::MLP mlp({3, 5, 2}, {.activation = std::string("tanh"),
                              .init = [](cr::nn::Linear& l) {
                                cr::nn::init::xavier_uniform_(l.weight);
                                if (l.bias.defined()) cr::nn::init::zeros_(l.bias);
                              },
                              .dtype = cr::float64});
  CHECK(values(mlp.linears[0]->bias) == std::vector<double>(5, 0.0));
  const cr::Tensor x = input({4, 3});
  std::vector<cr::Tensor> ps = mlp.parameters();
  auto fn = [&](const std::vector<cr::Tensor>& v) {
    cr::Tensor h = cr::tanh(cr::matmul(x, v[0].t()) + v[1]);
    return cr::matmul(h, v[2].t()) + v[3];
  };
  // the module computes exactly the expression, and its parameter gradients pass gradcheck
  CHECK(cr::allclose(mlp(x), fn(ps), 0, 0));
  check_gradients(fn, {ps[0].detach().clone().requires_grad_(), ps[1].detach().clone().requires_grad_(),
                       ps[2].detach().clone().requires_grad_(), ps[3].detach().clone().requires_grad_()}, false);
  cr::mean(mlp(x)).backward();
  for (auto& p : mlp.parameters()) CHECK(p.grad().defined());
  mlp.zero_grad();
  for (auto& p : mlp.parameters()) CHECK_FALSE(p.grad().defined());
  const auto before = values(mlp.linears[1]->weight);
  mlp.reset_parameters();
  CHECK(values(mlp.linears[1]->weight) != before);
}

TEST_CASE("train/eval propagate; to(dtype) converts parameters in place") {
  cr::nn::MLP mlp({2, 3, 1});
  CHECK(mlp.is_training());
  mlp.eval();
  CHECK_FALSE(mlp.layers->is_training());
  CHECK_FALSE(mlp.linears[0]->is_training());
  mlp.train();
  CHECK(mlp.linears[1]->is_training());
  cr::Tensor w = mlp.linears[0]->weight;  // a handle, kept across the conversion
  const auto v32 = values(w);
  mlp.to(cr::float64);
  CHECK(w.dtype() == cr::float64);
  CHECK(mlp.linears[0]->weight.dtype() == cr::float64);
  CHECK(w.requires_grad());
  CHECK(values(w) == v32);
  CHECK(mlp(cr::zeros({1, 2}, cr::float64)).dtype() == cr::float64);
}

namespace {
// A module that registers what a test hands it.
struct Custom : cr::nn::Module {
  cr::Tensor forward(const cr::Tensor& x) override { return x; }
  std::string repr() const override { return "Custom()"; }
  using Module::register_module;
  using Module::register_parameter;
};
}  // namespace

TEST_CASE("a shared submodule or tied parameter is listed once, and trains with any optimizer") {
  // Sequential({lin, tanh, lin}) listed lin's weight and bias twice: SGD refused the list
  // ("appears twice"; before that check, step updated them twice), checkpoints stored them twice.
  auto lin = std::make_shared<cr::nn::Linear>(2, 2, cr::nn::LinearOptions{.dtype = cr::float64});
  cr::nn::Sequential seq({lin, cr::nn::make_activation("tanh"), lin});
  const auto named = seq.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK(named[0].first == "0.weight");
  CHECK(named[1].first == "0.bias");
  CHECK(seq.parameters().size() == 2);
  cr::optim::SGD sgd(seq.parameters(), {.lr = 0.1});
  const cr::Tensor x = cr::tensor({0.5, -1.0}, {1, 2}, cr::float64);
  const auto w0 = values(lin->weight);
  cr::sum(seq(x)).backward();
  const auto g = values(lin->weight.grad());
  sgd.step();
  const auto w1 = values(lin->weight);
  for (size_t i = 0; i < w0.size(); ++i) CHECK(w1[i] == doctest::Approx(w0[i] - 0.1 * g[i]).epsilon(1e-15));  // once
  // a weight tied by registering one tensor in two modules
  Custom a, b, root;
  const cr::Tensor shared = cr::ones({3}, cr::float64);
  a.register_parameter("w", shared);
  b.register_parameter("w", shared);
  root.register_module("a", std::shared_ptr<Custom>(&a, [](Custom*) {}));
  root.register_module("b", std::shared_ptr<Custom>(&b, [](Custom*) {}));
  REQUIRE(root.named_parameters().size() == 1);
  CHECK(root.named_parameters()[0].first == "a.w");
  // names join into checkpoint keys: empty, dotted and repeated names are Errors
  check_error([&] { a.register_parameter("", cr::ones({1})); }, {"register_parameter", "Custom()", "non-empty"});
  check_error([&] { a.register_parameter("x.y", cr::ones({1})); }, {"register_parameter", "'x.y'", "'.'"});
  check_error([&] { a.register_parameter("u", cr::Tensor()); }, {"register_parameter", "undefined"});
  check_error([&] { root.register_module("a", std::make_shared<Custom>()); }, {"register_module", "already", "'a'"});
  check_error([&] { root.register_module("c.d", std::make_shared<Custom>()); }, {"register_module", "'c.d'"});
  check_error([&] { root.register_module("e", std::shared_ptr<Custom>()); }, {"register_module", "null"});
}

TEST_CASE("init: formulas and Generator reproducibility") {
  cr::Tensor w = cr::empty({200, 100}, cr::float64);
  cr::Generator g(11);
  cr::nn::init::kaiming_uniform_(w, 0.0, cr::nn::init::FanMode::fan_in, "relu", &g);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 100);
  for (double v : values(w)) CHECK(std::abs(v) <= bound);
  auto stddev = [](const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double x : v) m += x / v.size();
    for (double x : v) s += (x - m) * (x - m) / v.size();
    return std::sqrt(s);
  };
  cr::nn::init::kaiming_normal_(w, 0.0, cr::nn::init::FanMode::fan_out, "relu", &g);
  CHECK(stddev(values(w)) == doctest::Approx(std::sqrt(2.0 / 200)).epsilon(0.03));
  cr::nn::init::xavier_normal_(w, 1.0, &g);
  CHECK(stddev(values(w)) == doctest::Approx(std::sqrt(2.0 / 300)).epsilon(0.03));
  cr::nn::init::xavier_uniform_(w, 2.0, &g);
  for (double v : values(w)) CHECK(std::abs(v) <= 2.0 * std::sqrt(6.0 / 300));
  cr::nn::init::normal_(w, 3.0, 0.5, &g);
  CHECK(stddev(values(w)) == doctest::Approx(0.5).epsilon(0.03));
  cr::nn::init::uniform_(w, -1, 1, &g);
  cr::nn::init::constant_(w, 0.25);
  CHECK(values(w)[17] == 0.25);
  cr::nn::init::ones_(w);
  CHECK(values(w)[3] == 1);
  CHECK(cr::nn::init::calculate_gain("tanh") == doctest::Approx(5.0 / 3));
  CHECK(cr::nn::init::fan_in_and_fan_out(w) == std::pair<int64_t, int64_t>{100, 200});
  check_error([] { cr::Tensor v = cr::zeros({3}); cr::nn::init::xavier_uniform_(v); }, {"fan", "[3]"});
  check_error([] { (void)cr::nn::init::calculate_gain("bogus"); }, {"calculate_gain", "bogus"});
  // Each of these filled the tensor without a word: (high, low] for a reversed range, a negative
  // std used as is, random values truncated into int64.
  check_error([] { cr::Tensor v = cr::zeros({3}); cr::nn::init::uniform_(v, 1, 0); }, {"uniform_", "[1, 0)", "low <= high"});
  check_error([] { cr::Tensor v = cr::zeros({3}); cr::nn::init::uniform_(v, 0, INFINITY); }, {"uniform_", "finite"});
  check_error([] { cr::Tensor v = cr::zeros({3}); cr::nn::init::normal_(v, 0, -1); }, {"normal_", "std -1"});
  check_error([] { cr::Tensor v = cr::zeros({3}); cr::nn::init::normal_(v, NAN, 1); }, {"normal_", "mean nan"});
  check_error([] { cr::Tensor v = cr::zeros({3, 3}, cr::int64); cr::nn::init::kaiming_uniform_(v); }, {"uniform_", "int64"});
  check_error([] { cr::Tensor v = cr::zeros({3}, cr::int64); cr::nn::init::normal_(v); }, {"normal_", "int64"});
  {
    cr::Tensor v = cr::zeros({3});
    cr::nn::init::uniform_(v, 0.5, 0.5);  // an empty range is a constant, as PyTorch allows
    CHECK(values(v) == std::vector<double>{0.5, 0.5, 0.5});
    cr::Tensor i = cr::zeros({2}, cr::int64);
    cr::nn::init::constant_(i, 7);  // constants are fine in any dtype
    CHECK(values(i) == std::vector<double>{7, 7});
    cr::Tensor e = cr::zeros({3, 0});  // fan_in 0: a no-op, not an infinite bound
    CHECK(cr::nn::init::kaiming_uniform_(e).numel() == 0);
    CHECK(cr::nn::init::kaiming_normal_(e).numel() == 0);
    CHECK(cr::nn::init::xavier_uniform_(e).numel() == 0);
  }
  cr::Generator a(1), b(1);
  cr::Tensor x = cr::empty({10}), y = cr::empty({10});
  cr::nn::init::normal_(x, 0, 1, &a);
  cr::nn::init::normal_(y, 0, 1, &b);
  CHECK(values(x) == values(y));
  cr::Tensor p = cr::zeros({3}).requires_grad_();
  cr::nn::init::ones_(p);  // initialisers work on parameters (under no-grad)
  CHECK(values(p) == std::vector<double>{1, 1, 1});
}

TEST_CASE("init: uniform_ and normal_ fill a large tensor piece by piece with the values of one whole draw") {
  // The values are the float64 formula over the whole tensor (rand or randn, scaled and
  // shifted, then rounded to the tensor's dtype), drawn without a float64 copy of the whole
  // tensor: a 1024 x 1024 float32 Linear weight made three 8 MiB temporaries.
  for (cr::Dtype d : {cr::float32, cr::float64}) {
    for (bool transposed : {false, true}) {
      CAPTURE(d);
      CAPTURE(transposed);
      const cr::Shape shape{300, 701};  // 210,300 elements: several pieces, the last one partial
      cr::Tensor base = cr::zeros(transposed ? cr::Shape{701, 300} : shape, d);
      if (!transposed) base.requires_grad_();  // a parameter
      cr::Tensor w = transposed ? base.t() : base;  // or a view that is not contiguous
      cr::Generator g(7), expected_g(7);
      cr::nn::init::uniform_(w, -0.25, 0.75, &g);
      CHECK(values(w) == values((cr::rand(shape, cr::float64, &expected_g) * 1.0 + -0.25).to(d)));
      cr::nn::init::normal_(w, 3.0, 0.5, &g);
      CHECK(values(w) == values((cr::randn(shape, cr::float64, &expected_g) * 0.5 + 3.0).to(d)));
      CHECK(base.is_leaf());  // initialised under no-grad: still a leaf without history
    }
  }
  std::thread([] {  // a fresh thread: its pool lists start empty
    cr::Tensor w = cr::empty({1024, 1024}, cr::float32);
    const size_t before = cr::pool::detail::cache.cached_bytes;
    cr::nn::init::kaiming_uniform_(w);
    // what the initialisation left on the lists: its 512 KiB float64 pieces, not three 8 MiB
    // temporaries that no training step asks for again
    CHECK(cr::pool::detail::cache.cached_bytes - before <= (size_t(2) << 20));
  }).join();
}

TEST_CASE("embedding: rows by index, any index shape; repeated rows add gradients, the padding row gets none") {
  namespace F = cr::nn::functional;
  cr::Tensor w = cr::arange(0, 12, 1, cr::float64).reshape({4, 3}).requires_grad_();
  const cr::Tensor idx = cr::tensor({1.0, 3, 1, 0, 2, 1}, {2, 3}, cr::int64);
  const cr::Tensor y = F::embedding(idx, w);
  CHECK(y.shape() == cr::Shape{2, 3, 3});
  CHECK(values(y.select(0, 0).select(0, 1)) == std::vector<double>{9, 10, 11});
  cr::sum(y).backward();
  CHECK(values(w.grad()) == std::vector<double>{1, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1});  // row 1 picked three times
  w.set_grad({});
  const cr::Tensor p = F::embedding(idx, w, 1);
  CHECK(values(p) == values(y));  // the same values
  cr::sum(p * p).backward();
  CHECK(values(w.grad().select(0, 1)) == std::vector<double>{0, 0, 0});  // none for the padding row
  CHECK(values(w.grad().select(0, 3)) == std::vector<double>{18, 20, 22});
  w.set_grad({});
  cr::sum(F::embedding(idx, w, -3)).backward();  // -3 is row 1 too
  CHECK(values(w.grad().select(0, 1)) == std::vector<double>{0, 0, 0});
  // gradcheck: rows picked with repeats; a padding row not picked changes nothing (one that is
  // picked has a zero gradient on purpose, which finite differences would see as wrong)
  check_gradients([&](const std::vector<cr::Tensor>& in) { return F::embedding(idx, in[0]); }, {input({4, 3})});
  const cr::Tensor no_row_3 = cr::tensor({1.0, 0, 2, 1}, {4}, cr::int64);
  check_gradients([&](const std::vector<cr::Tensor>& in) { return F::embedding(no_row_3, in[0], 3); }, {input({4, 3})});
  check_error([&] { F::embedding(idx.to(cr::float64), w); }, {"embedding", "int64", "float64"});
  check_error([&] { F::embedding(cr::tensor({4.0}, {1}, cr::int64), w); }, {"embedding", "index 4", "[4, 3]"});
  check_error([&] { F::embedding(cr::tensor({-1.0}, {1}, cr::int64), w); }, {"embedding", "index -1"});
  check_error([&] { F::embedding(idx, cr::ones({4})); }, {"embedding", "weight", "[4]"});
  check_error([&] { F::embedding(idx, w, 4); }, {"embedding", "padding_idx 4"});
}

TEST_CASE("nn::Embedding: N(0, 1) rows, a zero padding row, repr, errors") {
  cr::Generator gen(3);
  cr::nn::Embedding e(50, 8, {.padding_idx = 2, .dtype = cr::float64, .generator = &gen});
  REQUIRE(e.parameters().size() == 1);
  CHECK(e.weight.shape() == cr::Shape{50, 8});
  CHECK(values(e.weight.select(0, 2)) == std::vector<double>(8, 0.0));
  const auto w = values(e.weight);
  double mean = 0, var = 0;
  for (double v : w) mean += v / 392;  // 49 rows of 8 drawn
  for (double v : w) var += v * v / 392;
  CHECK(std::abs(mean) < 0.15);
  CHECK(var == doctest::Approx(1).epsilon(0.2));
  CHECK(e.repr() == "Embedding(50, 8, padding_idx=2)");
  CHECK(cr::nn::Embedding(5, 2, {.padding_idx = -1}).padding_idx == 4);
  CHECK(cr::nn::Embedding(5, 2).repr() == "Embedding(5, 2)");
  CHECK(e(cr::tensor({2.0, 7}, {2}, cr::int64)).shape() == cr::Shape{2, 8});
  check_error([] { cr::nn::Embedding(0, 2); }, {"Embedding", "0"});
  check_error([] { cr::nn::Embedding(5, 2, {.padding_idx = 5}); }, {"Embedding", "padding_idx 5"});
}

TEST_CASE("nn::Flatten, in a Sequential") {
  cr::nn::Flatten flat;
  const cr::Tensor images = input({5, 1, 4, 3});
  CHECK(flat(images).shape() == cr::Shape{5, 12});
  CHECK(values(flat(images)) == values(images));
  CHECK(cr::nn::Flatten(0, 1)(images).shape() == cr::Shape{5, 4, 3});
  CHECK(cr::nn::Flatten(-2)(images).shape() == cr::Shape{5, 1, 12});
  CHECK(flat.repr() == "Flatten(start_dim=1, end_dim=-1)");
  CHECK(flat.parameters().empty());
  check_error([&] { flat(cr::ones({3})); }, {"flatten"});
  cr::nn::Sequential net({std::make_shared<cr::nn::Flatten>(), cr::nn::Identity(),
                          std::make_shared<cr::nn::Linear>(12, 2, cr::nn::LinearOptions{.dtype = cr::float64})});
  CHECK(net(images).shape() == cr::Shape{5, 2});
  CHECK(cr::nn::to_string(net) == "Sequential(\n  (0): Flatten(start_dim=1, end_dim=-1)\n  (1): Identity()\n  (2): Linear(in=12, out=2, bias=true)\n)");
}
