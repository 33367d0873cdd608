// An activation (relu, sigmoid, tanh) applied to a temporary joins the node of the op that made
// it: sigmoid(matmul(x, w)) is one node, "matmul_sigmoid", whose backward runs sigmoid's
// derivative and then matmul's rule. Only when nothing else can see the temporary: the values,
// the gradients and everything a user can observe stay those of the two ops.
#include "helpers.hpp"

#include <utility>

namespace {

using A = cr::LinearActivation;
struct Activation {
  A kind;
  cr::Tensor (*op)(const cr::Tensor&);  // the op on a tensor that stays (never joined)
  cr::Tensor (*on_temporary)(cr::Tensor&&);
  const char* name;
};
const Activation kActivations[] = {{A::relu, cr::relu, cr::relu, "relu"},
                                   {A::sigmoid, cr::sigmoid, cr::sigmoid, "sigmoid"},
                                   {A::tanh, cr::tanh, cr::tanh, "tanh"}};

}  // namespace

TEST_CASE("an activation of a temporary joins its op's node, with the bits of the two ops and their gradients") {
  cr::Generator gen(5);
  for (const Activation& act : kActivations) {
    INFO(act.name);
    for (auto dtype : {cr::float32, cr::float64}) {
      const cr::Tensor x = cr::randn({4, 3}, dtype, &gen).requires_grad_(),
                       w = cr::randn({3, 5}, dtype, &gen).requires_grad_(),
                       b = cr::randn({5}, dtype, &gen).requires_grad_();
      // matmul, add (a broadcast input) and mul by a constant make the temporary
      const std::pair<const char*, std::function<cr::Tensor()>> makers[] = {
          {"matmul", [&] { return cr::matmul(x, w); }},
          {"add", [&] { return cr::matmul(x, w).detach() + b; }},
          {"mul", [&] { return x * 3.0; }}};
      for (const auto& maker : makers) {
        const char* op = maker.first;  // (not a structured binding: INFO captures it)
        const auto& make = maker.second;
        INFO(op);
        const cr::Tensor joined = act.on_temporary(make());
        const cr::Tensor kept = make(), composed = act.op(kept);
        REQUIRE(joined.grad_fn() != nullptr);
        CHECK(std::string(joined.grad_fn()->name) == std::string(op) + "_" + act.name);
        CHECK(joined.grad_fn()->next.size() == kept.grad_fn()->next.size());  // the op's inputs: no node between
        CHECK(cr::fused_activation(*joined.grad_fn()) == act.kind);
        CHECK(cr::fused_activation(*composed.grad_fn()) == A::none);
        CHECK(same_values(values(joined), values(composed)));
        const cr::Tensor up = cr::randn(joined.shape(), dtype, &gen);
        const std::vector<cr::Tensor> wrt = {x, w, b};
        const auto gj = cr::autograd::grad({joined}, wrt, {up}, false, false, /*allow_unused=*/true),
                   gc = cr::autograd::grad({composed}, wrt, {up}, false, false, /*allow_unused=*/true);
        for (size_t i = 0; i < wrt.size(); ++i) {
          REQUIRE(gj[i].defined() == gc[i].defined());
          if (gj[i].defined()) CHECK(same_values(values(gj[i]), values(gc[i])));
        }
      }
    }
    // first and second derivatives against finite differences (float64), through the joined node
    auto* on_temporary = act.on_temporary;
    check_gradients([on_temporary](const auto& t) { return on_temporary(cr::matmul(t[0], t[1])); },
                    {input({3, 4}, -2.0, 2.0, 11), input({4, 2}, -2.0, 2.0, 12)});
    check_gradients([on_temporary](const auto& t) { return on_temporary(t[0] * t[1] + t[1]); },
                    {input({5}, -2.0, 2.0, 13), input({5}, -2.0, 2.0, 14)});
  }
}

TEST_CASE("the seed's expression is three nodes, and its gradient is the five-op one") {
  const cr::Tensor X = cr::tensor({0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1}, {4, 3}, cr::float64),
                   y = cr::tensor({0, 1, 1, 0}, {4, 1}, cr::float64);
  cr::Generator gen(0);
  const cr::Tensor W1 = cr::rand({3, 4}, cr::float64, &gen).requires_grad_(),
                   W2 = cr::rand({4, 1}, cr::float64, &gen).requires_grad_();
  const cr::Tensor loss = cr::sum(cr::pow(y - cr::sigmoid(cr::matmul(cr::sigmoid(cr::matmul(X, W1)), W2)), 2));
  std::vector<std::string> names;
  for (const cr::Node* n = loss.grad_fn().get(); n && !n->is_accumulator;) {
    names.emplace_back(n->name);
    const cr::Node* next = nullptr;
    for (const auto& e : n->next)
      if (e.node && !e.node->is_accumulator) next = e.node.get();
    n = next;
  }
  CHECK(names == std::vector<std::string>{"sub_pow_sum", "matmul_sigmoid", "matmul_sigmoid"});
  // the gradient of the same loss with every intermediate kept (no node joined): the same bits
  const cr::Tensor z1 = cr::matmul(X, W1), a1 = cr::sigmoid(z1), z2 = cr::matmul(a1, W2), a2 = cr::sigmoid(z2);
  const cr::Tensor kept = cr::sum(cr::pow(y - a2, 2));
  CHECK(loss.item<double>() == kept.item<double>());
  const auto gj = cr::autograd::grad({loss}, {W1, W2}, {}, /*retain_graph=*/true),
             gk = cr::autograd::grad({kept}, {W1, W2});
  CHECK(same_values(values(gj[0]), values(gk[0])));
  CHECK(same_values(values(gj[1]), values(gk[1])));
  // what the user wrote, for to_string; and the doctor finds the seed's bug at the joined nodes
  CHECK(cr::autograd::to_string(loss, {{X, "X"}, {y, "y"}, {W1, "W1"}, {W2, "W2"}}) ==
        "sum(pow(sub(y, sigmoid(matmul(sigmoid(matmul(X, W1)), W2))), 2))");
  cr::Tensor d1, d2;
  {
    const cr::NoGradGuard no_grad;
    const auto seed_derivative = [](const cr::Tensor& v) { return cr::sigmoid(v) * (1.0 - cr::sigmoid(v)); };
    const cr::Tensor h = a1.detach(), out = a2.detach(), delta = (y - out) * 2.0 * seed_derivative(out);
    d2 = cr::matmul(h.t(), delta);
    d1 = cr::matmul(X.t(), cr::matmul(delta, W2.t()) * seed_derivative(h));
  }
  const auto report = cr::autograd::gradient_doctor(loss, {W1, W2}, {d1, d2});
  INFO(report.to_string());
  REQUIRE(report.params.size() == 2);
  CHECK(report.params[0].diagnosed);
  CHECK(report.params[0].bug.find("evaluated at its output") != std::string::npos);
  CHECK(report.params[1].node.find("sigmoid #2 of 2 in forward order (in matmul_sigmoid") != std::string::npos);
}

TEST_CASE("an activation joins no node that something else can see or that needs its output") {
  const cr::Tensor x = input({2, 3}), w = input({3, 3}, -1.0, 1.0, 9);
  SUBCASE("a named intermediate keeps its own node") {
    const cr::Tensor z = cr::matmul(x, w), s = cr::sigmoid(z);
    CHECK(std::string(s.grad_fn()->name) == "sigmoid");
    CHECK(std::string(z.grad_fn()->name) == "matmul");
  }
  SUBCASE("a moved intermediate whose node the caller holds") {
    cr::Tensor z = cr::matmul(x, w);
    const cr::Ref<cr::Node> node = z.grad_fn();
    const cr::Tensor s = cr::tanh(std::move(z));
    CHECK(std::string(s.grad_fn()->name) == "tanh");
    CHECK(std::string(node->name) == "matmul");
  }
  SUBCASE("a moved intermediate with a hook sees the gradient of its own output") {
    cr::Tensor z = cr::matmul(x, w);
    cr::Tensor seen;
    z.register_hook([&seen](const cr::Tensor& g) {
      seen = g.detach().clone();
      return cr::Tensor();
    });
    const cr::Tensor s = cr::sigmoid(std::move(z));
    CHECK(std::string(s.grad_fn()->name) == "sigmoid");
    cr::sum(s).backward();
    const cr::Tensor sv = s.detach();
    REQUIRE(seen.defined());
    CHECK(cr::allclose(seen, sv * (1.0 - sv), 0, 0));  // d sum(s) / dz, not d sum(s) / ds = 1
  }
  SUBCASE("a moved intermediate whose gradient is retained") {
    cr::Tensor z = cr::matmul(x, w);
    z.retain_grad();
    const cr::Tensor s = cr::relu(std::move(z));
    CHECK(std::string(s.grad_fn()->name) == "relu");
  }
  SUBCASE("an op that saves its own output (exp): its rule reads exp's values, not sigmoid's") {
    const cr::Tensor s = cr::sigmoid(cr::exp(x));
    CHECK(std::string(s.grad_fn()->name) == "sigmoid");
    const cr::Tensor g = cr::autograd::grad({s}, {x}, {cr::ones_like(s)})[0];
    const cr::Tensor e = cr::exp(x.detach()), se = cr::sigmoid(e);
    CHECK(cr::allclose(g, se * (1.0 - se) * e, 1e-15, 0));
  }
  SUBCASE("a view of a temporary") {
    const cr::Tensor s = cr::sigmoid(cr::matmul(x, w).t());
    CHECK(std::string(s.grad_fn()->name) == "sigmoid");
  }
  SUBCASE("a leaf that requires grad") {
    cr::Tensor leaf = input({3});
    const cr::Tensor s = cr::tanh(std::move(leaf));
    CHECK(std::string(s.grad_fn()->name) == "tanh");
  }
  SUBCASE("under no_grad the result has no history") {
    cr::Tensor z = cr::matmul(x, w);
    const cr::NoGradGuard no_grad;
    const cr::Tensor s = cr::sigmoid(std::move(z));
    CHECK(s.grad_fn() == nullptr);
    CHECK_FALSE(s.requires_grad());
  }
  SUBCASE("an int64 temporary: the op's own promotion") {
    const cr::Tensor s = cr::sigmoid(cr::tensor({0, 1}, cr::int64) * 2);
    CHECK(s.dtype() == cr::default_dtype());
    CHECK(cr::relu(cr::tensor({-1, 3}, cr::int64) * 2).dtype() == cr::int64);
  }
}

TEST_CASE("a tensor with a gradient, hooks or an accumulator of its own keeps it: the activation takes a new buffer") {
  // One rule for every op that writes its result into a temporary (the activations, a + b): a
  // former leaf moved in must not hand its .grad, hooks or accumulator on to the result.
  for (const auto& act : kActivations) {
    INFO(std::string(act.name));
    cr::Tensor w = input({3});
    cr::sum(w * 2.0).backward();
    REQUIRE(w.grad().defined());
    w.requires_grad_(false);
    const void* buffer = w.raw_data();
    const cr::Tensor s = act.on_temporary(std::move(w));
    CHECK(s.raw_data() != buffer);
    CHECK_FALSE(s.grad().defined());
    cr::Tensor h = cr::full({3}, 0.5, cr::float64).requires_grad_();
    h.register_hook([](const cr::Tensor& g) { return g; });
    h.requires_grad_(false);
    const void* h_buffer = h.raw_data();
    const cr::Tensor t = act.on_temporary(std::move(h));
    CHECK(t.raw_data() != h_buffer);
    CHECK_FALSE(t.requires_grad());
  }
}

TEST_CASE("a temporary that records nothing is activated in its own buffer") {
  const cr::Tensor x = cr::randn({6});
  cr::Tensor z = x * 2.0;
  const void* where = z.raw_data();
  const cr::Tensor s = cr::sigmoid(std::move(z));
  CHECK(s.raw_data() == where);
  CHECK(same_values(values(s), values(cr::sigmoid(x * 2.0))));
  CHECK(s.grad_fn() == nullptr);
}

TEST_CASE("a joined node's rule cannot read the activation's output as its own result") {
  // A rule that reads result() without having saved it is an Error, joined or not.
  const cr::Tensor x = input({3});
  const auto custom = [&] {
    return cr::record(x.detach() * 2.0, "reads_result", {x}, {},
                      [](const cr::Tensor& g, const cr::BackwardContext& c) -> cr::Grads { return {g * c.result()}; });
  };
  const cr::Tensor s = cr::sigmoid(custom());
  REQUIRE(std::string(s.grad_fn()->name) == "reads_result_sigmoid");
  check_error([&] { cr::sum(s).backward(); }, {"reads_result", "result()", "did not save it"});
}

TEST_CASE("a + b and a - b with a a temporary write into a's buffer, with the values and gradients of the op") {
  cr::Generator gen(8);
  for (auto dtype : {cr::float32, cr::float64}) {
    const cr::Tensor x = cr::randn({2, 3}, dtype, &gen).requires_grad_(), w = cr::randn({3}, dtype, &gen),
                     b = cr::randn({3}, dtype, &gen).requires_grad_(), c = cr::randn({2, 3}, dtype, &gen);
    // the temporary recorded (x * w) or not (c * 2), b requiring a gradient or not (w)
    const std::pair<const char*, std::function<cr::Tensor()>> makers[] = {{"recorded", [&] { return x * w; }},
                                                                          {"constant", [&] { return c * 2.0; }}};
    for (const auto& maker : makers)
      for (const cr::Tensor* rhs : {&b, &w})
        for (bool minus : {false, true}) {
          const char* kind = maker.first;  // (not a structured binding: INFO captures it)
          const auto& make = maker.second;
          INFO(kind << (minus ? " - " : " + ") << (rhs == &b ? "b" : "w"));
          cr::Tensor t = make();
          const void* buffer = t.raw_data();
          const cr::Tensor into = minus ? std::move(t) - *rhs : std::move(t) + *rhs;
          const cr::Tensor kept = make(), plain = minus ? kept - *rhs : kept + *rhs;
          CHECK(into.raw_data() == buffer);
          CHECK(plain.raw_data() != kept.raw_data());
          CHECK(same_values(values(into), values(plain)));
          REQUIRE(into.requires_grad() == plain.requires_grad());
          if (!into.requires_grad()) continue;
          CHECK(std::string(into.grad_fn()->name) == (minus ? "sub" : "add"));  // (w broadcasts: not joined)
          const cr::Tensor up = cr::randn(into.shape(), dtype, &gen);
          const std::vector<cr::Tensor> wrt = {x, b};
          const auto gi = cr::autograd::grad({into}, wrt, {up}, false, false, true),
                     gp = cr::autograd::grad({plain}, wrt, {up}, false, false, true);
          for (size_t i = 0; i < wrt.size(); ++i) {
            REQUIRE(gi[i].defined() == gp[i].defined());
            if (gi[i].defined()) CHECK(same_values(values(gi[i]), values(gp[i])));
          }
        }
  }
  check_gradients([](const auto& t) { return (t[0] * t[1]) - t[1]; },
                  {input({4}, -2.0, 2.0, 21), input({4}, -2.0, 2.0, 22)});
  check_gradients([](const auto& t) { return cr::sum(t[0] * 3.0 + t[1]); }, {input({2, 3}, -2.0, 2.0, 23), input({3})});
}

TEST_CASE("the chain link tanh(y * a + b) is one node and one new buffer") {
  const cr::Tensor y = input({4}), a = cr::full({4}, 0.9, cr::float64), b = cr::full({4}, 0.1, cr::float64);
  const cr::Tensor out = cr::tanh(y * a + b);
  REQUIRE(out.grad_fn() != nullptr);
  CHECK(std::string(out.grad_fn()->name) == "mul_add_tanh");
  REQUIRE(out.grad_fn()->next[0].node != nullptr);
  CHECK(out.grad_fn()->next[0].node->is_accumulator);  // y's: no node between
  const cr::Tensor kept = y * a, sum = kept + b, plain = cr::tanh(sum);
  CHECK(same_values(values(out), values(plain)));
  CHECK(same_values(values(cr::autograd::grad({out}, {y}, {cr::ones_like(out)})[0]),
                    values(cr::autograd::grad({plain}, {y}, {cr::ones_like(plain)})[0])));
}

// a + b and a - b of a temporary a and a constant b (no gradient) need no node of their own:
// their derivative for a is the identity, so a's node answers for the result as it is, and b
// joins it as a last input without a gradient ("mul_add"), for to_string and to_dot.
TEST_CASE("a + b and a - b of a temporary and a constant join its node, with the values and gradients of the two ops") {
  cr::Generator gen(12);
  for (auto dtype : {cr::float32, cr::float64})
    for (bool minus : {false, true})
      for (bool activated : {false, true}) {
        INFO(cr::dtype_name(dtype) << (minus ? " y * a - b" : " y * a + b") << (activated ? ", tanh" : ""));
        const cr::Tensor y = cr::randn({2, 3}, dtype, &gen).requires_grad_(), a = cr::randn({2, 3}, dtype, &gen),
                         b = cr::randn({2, 3}, dtype, &gen);
        const auto link = [&](cr::Tensor&& t) {
          cr::Tensor joined = minus ? std::move(t) - b : std::move(t) + b;
          return activated ? cr::tanh(std::move(joined)) : joined;
        };
        cr::Tensor product = y * a;
        const void* buffer = product.raw_data();
        const cr::Tensor out = link(std::move(product));
        CHECK(out.raw_data() == buffer);
        REQUIRE(out.grad_fn() != nullptr);
        const std::string op = minus ? "sub" : "add";
        CHECK(std::string(out.grad_fn()->name) == "mul_" + op + (activated ? "_tanh" : ""));
        const auto& next = out.grad_fn()->next;
        REQUIRE(next.size() == 3);  // mul's y and a, then the joined b
        CHECK((next[0].node && next[0].node->is_accumulator));
        CHECK(next[1].node == nullptr);
        CHECK(next[2].node == nullptr);
        CHECK(next[2].input == b.impl());
        const cr::Tensor kept = y * a, sum = minus ? kept - b : kept + b, plain = activated ? cr::tanh(sum) : sum;
        CHECK(same_values(values(out), values(plain)));
        const cr::Tensor up = cr::randn(out.shape(), dtype, &gen);
        CHECK(same_values(values(cr::autograd::grad({out}, {y}, {up})[0]),
                          values(cr::autograd::grad({plain}, {y}, {up})[0])));
        const std::string text = cr::autograd::to_string(out, {{y, "y"}, {a, "a"}, {b, "b"}});
        CHECK(text == (activated ? "tanh(" : "") + op + "(mul(y, a), b)" + (activated ? ")" : ""));
        // to_dot: the op's ellipse, the joined op's above it taking b, the activation's above that
        const std::string dot = cr::autograd::to_dot(out, {.names = {{b, "b"}}});
        INFO(dot);
        CHECK(dot.find("label=\"mul\\n") != std::string::npos);
        CHECK(dot.find("j [shape=ellipse, label=\"" + op + "\\n") != std::string::npos);
        CHECK(dot.find("label=\"b\\n[2, 3]\"];\n  c1 -> n1j;") != std::string::npos);
        CHECK((dot.find("n1j -> n1a;") != std::string::npos) == activated);
        CHECK(dot.find(activated ? "n1a -> out;" : "n1j -> out;") != std::string::npos);
      }
  // first and second derivatives against finite differences (float64), through joined nodes
  const cr::Tensor c = cr::full({2, 3}, 0.25, cr::float64);
  check_gradients([&c](const auto& t) { return cr::tanh(t[0] * t[1] + c); },
                  {input({2, 3}, -2.0, 2.0, 51), input({2, 3}, -2.0, 2.0, 52)});
  check_gradients([&c](const auto& t) { return cr::sum(cr::matmul(t[0], t[1]) - c); },
                  {input({2, 4}, -2.0, 2.0, 53), input({4, 3}, -2.0, 2.0, 54)});
}

TEST_CASE("a constant joins no node that something else can see, that keeps its output, or that b's gradient needs") {
  const cr::Tensor y = input({2, 3}), a = cr::full({2, 3}, 0.5, cr::float64), b = cr::full({2, 3}, 0.1, cr::float64);
  const auto name = [](const cr::Tensor& t) { return std::string(t.grad_fn()->name); };
  const auto input_name = [](const cr::Tensor& t) { return std::string(t.grad_fn()->next[0].node->name); };
  CHECK(name(y * a + input({2, 3})) == "add");                         // b requires a gradient
  CHECK(name(y * a + cr::full({3}, 0.1, cr::float64)) == "add");       // b broadcasts into a
  CHECK(name(y * a + cr::full({2, 3}, 0.1, cr::float32)) == "add");    // b of another dtype
  CHECK(name(cr::exp(y * a) + b) == "add");                            // exp's node holds its output
  CHECK(name(cr::tanh(y * a) + b) == "add");                           // as the activation's does
  CHECK(name(cr::pow(y - a, 2) + b) == "add");                         // a joined square
  CHECK(name(cr::linear(y, input({4, 3}), input({4})) + cr::full({2, 4}, 0.1, cr::float64)) == "add");  // no room
  const cr::Tensor twice = y * a + b + b;                              // one constant a node
  CHECK(name(twice) == "add");
  CHECK(input_name(twice) == "mul_add");
  const cr::Tensor named = y * a;                                      // a handle to it stays
  CHECK(name(named + b) == "add");
  cr::Tensor retained = y * a;
  retained.retain_grad();
  CHECK(name(std::move(retained) + b) == "add");
  cr::Tensor hooked = y * a;
  cr::Tensor seen;
  hooked.register_hook([&seen](const cr::Tensor& g) {
    seen = g.detach().clone();
    return cr::Tensor();
  });
  const cr::Tensor out = std::move(hooked) + b * 3.0;
  CHECK(name(out) == "add");
  cr::sum(out).backward();
  REQUIRE(seen.defined());  // the hook sees the temporary's own gradient
  CHECK(same_values(values(seen), std::vector<double>(6, 1.0)));
  {
    const cr::NoGradGuard no_grad;
    CHECK((y * a + b).grad_fn() == nullptr);
  }
  // a second backward through a joined node is the usual Error
  const cr::Tensor joined = cr::sum(y * a + b);
  joined.backward();
  check_error([&] { joined.backward(); }, {"second time"});
}

TEST_CASE("a + b keeps a new buffer when the temporary cannot take the result") {
  const cr::Tensor x = input({2, 3}), row = input({3}, -1.0, 1.0, 3);
  const auto reused = [](cr::Tensor t, const std::function<cr::Tensor(cr::Tensor&&)>& op) {
    const void* buffer = t.raw_data();
    const cr::Tensor out = op(std::move(t));
    return out.raw_data() == buffer;
  };
  const auto plus_row = [&](cr::Tensor&& t) { return std::move(t) + row; };
  CHECK(reused(x * 2.0, plus_row));                                      // the case that may
  CHECK_FALSE(reused(row * 2.0, [&](cr::Tensor&& t) { return std::move(t) + x; }));  // b broadcasts a up
  CHECK_FALSE(reused(cr::exp(x), plus_row));                             // exp's node holds its output
  CHECK_FALSE(reused((x * 2.0).t().contiguous().t(), plus_row));         // a view
  CHECK_FALSE(reused(cr::tensor({1, 2, 3}, cr::int64) * 2, plus_row));   // int64 + float64 is float64
  // b of another dtype, which a's takes: the values of a + b, not of b's bits read as a's type
  for (auto b_dtype : {cr::float32, cr::int64}) {
    INFO(cr::dtype_name(b_dtype));
    const cr::Tensor b = cr::tensor({1, 2, 3, 4, 5, 6}, b_dtype).reshape({2, 3});
    const cr::Tensor sum = x * 2.0 + b, difference = x * 2.0 - b, kept = x * 2.0;
    CHECK(sum.dtype() == cr::float64);
    CHECK(same_values(values(sum), values(kept + b)));
    CHECK(same_values(values(difference), values(kept - b)));
    CHECK(values(sum)[5] == values(kept)[5] + 6);
    CHECK_FALSE(reused(x * 2.0, [&](cr::Tensor&& t) { return std::move(t) + b; }));
  }
  cr::Tensor retained = x * 2.0;
  retained.retain_grad();
  CHECK_FALSE(reused(std::move(retained), plus_row));
  cr::Tensor leaf = input({3});
  CHECK_FALSE(reused(std::move(leaf), plus_row));  // a leaf's data is its own
  cr::Tensor former = input({2, 3});               // once a leaf: its .grad is its own
  cr::sum(former * 2.0).backward();
  former.requires_grad_(false);
  CHECK_FALSE(reused(std::move(former), plus_row));
  {
    const cr::NoGradGuard no_grad;
    cr::Tensor recorded;
    {
      const cr::EnableGradGuard grad_on;
      recorded = x * 2.0;
    }
    const cr::Tensor out = std::move(recorded) + row;
    CHECK(out.grad_fn() == nullptr);  // under no_grad: no history, so not the temporary's
  }
  // the temporary's hook still sees the temporary's gradient
  cr::Tensor z = x * 2.0;
  cr::Tensor seen;
  z.register_hook([&seen](const cr::Tensor& g) {
    seen = g.detach().clone();
    return cr::Tensor();
  });
  const void* buffer = z.raw_data();
  const cr::Tensor s = std::move(z) + row;
  CHECK(s.raw_data() == buffer);
  cr::sum(s).backward();
  REQUIRE(seen.defined());
  CHECK(same_values(values(seen), std::vector<double>(6, 1.0)));
}

// pow(a - b, 2) of a temporary (and pow(a + b, 2)) joins the node of a - b, and a sum of that
// joins it too: sum(pow(y - a, 2)), the seed's loss, is one node ("sub_pow_sum") with the
// values, gradients and higher derivatives of its three ops.
TEST_CASE("a square of a temporary a - b or a + b joins its node, and a sum of the square joins it too") {
  cr::Generator gen(31);
  for (auto dtype : {cr::float32, cr::float64})
    for (bool minus : {false, true})
      for (bool both : {false, true})       // b requires a gradient too, or is a constant
        for (bool broadcast : {false, true})  // b of shape [3] against a of [4, 3], or [4, 3]
          for (bool b_first : {false, true}) {  // b - a: a constant b first (the seed's y - a)
            INFO(cr::dtype_name(dtype) << std::string(minus ? " a - b" : " a + b")
                                       << std::string(both ? ", both" : ", b constant")
                                       << std::string(broadcast ? ", broadcast" : "")
                                       << std::string(b_first ? ", b first" : ""));
            const cr::Tensor x = cr::randn({4, 3}, dtype, &gen).requires_grad_();
            cr::Tensor b = cr::randn(broadcast ? cr::Shape{3} : cr::Shape{4, 3}, dtype, &gen);
            if (both) b.requires_grad_();
            const auto make = [&] {
              if (b_first) return minus ? b - cr::sigmoid(x) : b + cr::sigmoid(x);
              return minus ? cr::sigmoid(x) - b : cr::sigmoid(x) + b;
            };
            const std::string op = minus ? "sub" : "add";
            const cr::Tensor square = cr::pow(make(), 2), summed = cr::sum(cr::pow(make(), 2));
            const cr::Tensor kept = make(), kept_square = cr::pow(kept, 2), kept_sum = cr::sum(kept_square);
            REQUIRE(square.grad_fn() != nullptr);
            REQUIRE(summed.grad_fn() != nullptr);
            CHECK(std::string(square.grad_fn()->name) == op + "_pow");
            CHECK(std::string(summed.grad_fn()->name) == op + "_pow_sum");
            CHECK(std::string(kept_sum.grad_fn()->name) == "sum");
            CHECK(summed.grad_fn()->shape == cr::Shape{});
            CHECK(square.grad_fn()->next.size() == 2);  // a - b's inputs: no node between
            CHECK(summed.grad_fn()->next.size() == 2);
            CHECK(same_values(values(square), values(kept_square)));
            CHECK(same_values(values(summed), values(kept_sum)));
            const std::vector<cr::Tensor> wrt = both ? std::vector<cr::Tensor>{x, b} : std::vector<cr::Tensor>{x};
            const cr::Tensor up = cr::randn(square.shape(), dtype, &gen);
            const std::pair<cr::Tensor, cr::Tensor> cases[] = {{square, kept_square}, {summed, kept_sum}};
            for (const auto& joined_and_kept : cases) {
              const cr::Tensor& joined = joined_and_kept.first;
              const cr::Tensor& plain = joined_and_kept.second;
              const cr::Tensor g = joined.dim() == 0 ? cr::ones_like(joined) : up;
              const auto gj = cr::autograd::grad({joined}, wrt, {g}, false, false, /*allow_unused=*/true),
                         gp = cr::autograd::grad({plain}, wrt, {g}, true, false, /*allow_unused=*/true);
              for (size_t i = 0; i < wrt.size(); ++i) {
                REQUIRE(gj[i].defined() == gp[i].defined());
                if (gj[i].defined()) CHECK(same_values(values(gj[i]), values(gp[i])));
              }
            }
          }
  // first and second derivatives against finite differences (float64), through the joined nodes
  check_gradients([](const auto& t) { return cr::sum(cr::pow(t[0] - t[1], 2)); },
                  {input({4, 1}, -2.0, 2.0, 41), input({4, 1}, -2.0, 2.0, 42)});
  check_gradients([](const auto& t) { return cr::sum(cr::pow(t[0] + t[1], 2)); },
                  {input({2, 3}, -2.0, 2.0, 43), input({3}, -2.0, 2.0, 44)});
  check_gradients([](const auto& t) { return cr::pow(cr::tanh(t[0]) - t[1], 2) * t[1]; },
                  {input({5}, -2.0, 2.0, 45), input({5}, -2.0, 2.0, 46)});
  const cr::Tensor c = cr::full({3}, 0.25, cr::float64);  // a constant: the gradient of a only
  check_gradients([&c](const auto& t) { return cr::sum(cr::pow(c - cr::sigmoid(t[0]), 2)); }, {input({2, 3})});
  check_gradients([](const auto& t) { return cr::mean(cr::pow(t[0] - t[1], 2)); },
                  {input({2, 3}, -2.0, 2.0, 47), input({2, 3}, -2.0, 2.0, 48)});
}

TEST_CASE("mean(pow(a - b, 2)) of temporaries is the joined sum and a division, with the bits of mean") {
  const cr::Tensor a = input({3, 2}), b = input({3, 2}, -1.0, 1.0, 5);
  const cr::Tensor joined = cr::mean(cr::pow(cr::tanh(a) - b, 2));
  const cr::Tensor d = cr::tanh(a) - b, square = cr::pow(d, 2), kept = cr::mean(square);
  REQUIRE(joined.grad_fn() != nullptr);
  CHECK(std::string(joined.grad_fn()->name) == "div");
  REQUIRE(joined.grad_fn()->next[0].node != nullptr);
  CHECK(std::string(joined.grad_fn()->next[0].node->name) == "sub_pow_sum");
  CHECK(joined.item<double>() == kept.item<double>());
  CHECK(same_values(values(cr::autograd::grad({joined}, {a, b})[0]), values(cr::autograd::grad({kept}, {a, b})[0])));
  CHECK(std::isnan(cr::mean(cr::pow(cr::zeros({0}, cr::float64) - b.sum(), 2)).item<double>()));  // mean of none
  check_error([] { (void)cr::mean(cr::tensor({1, 2}, cr::int64) * 2); }, {"mean", "floating"});
}

TEST_CASE("a square joins no node that something else can see, and a sum joins only a joined square") {
  const cr::Tensor a = input({4}), b = input({4}, -1.0, 1.0, 3);
  auto name = [](const cr::Tensor& t) { return std::string(t.grad_fn()->name); };
  SUBCASE("named intermediates keep their nodes") {
    const cr::Tensor d = a - b, s = cr::pow(d, 2), l = cr::sum(s);
    CHECK(name(d) == "sub");
    CHECK(name(s) == "pow");
    CHECK(name(l) == "sum");
    const cr::Tensor square = cr::pow(a - b, 2), summed = cr::sum(square);  // a named joined square
    CHECK(name(square) == "sub_pow");
    CHECK(name(summed) == "sum");
    CHECK(same_values(values(cr::autograd::grad({summed}, {a})[0]), values(cr::autograd::grad({l}, {a})[0])));
  }
  SUBCASE("other exponents and other ops keep their nodes") {
    CHECK(name(cr::pow(a - b, 3)) == "pow");
    CHECK(name(cr::pow(a - b, 2.5)) == "pow");
    CHECK(name(cr::pow(a * b, 2)) == "pow");
    CHECK(name(cr::sum(a * b)) == "sum");
    CHECK(name(cr::sum(a - b)) == "sum");
  }
  SUBCASE("a temporary with a hook sees the gradient of its own output") {
    cr::Tensor d = a - b;
    cr::Tensor seen;
    d.register_hook([&seen](const cr::Tensor& g) {
      seen = g.detach().clone();
      return cr::Tensor();
    });
    const cr::Tensor s = cr::pow(std::move(d), 2);
    CHECK(name(s) == "pow");
    cr::sum(s).backward();
    REQUIRE(seen.defined());
    CHECK(cr::allclose(seen, (a - b).detach() * 2.0, 0, 0));
  }
  SUBCASE("a temporary whose gradient is retained, and one whose node the caller holds") {
    cr::Tensor d = a - b;
    d.retain_grad();
    CHECK(name(cr::pow(std::move(d), 2)) == "pow");
    cr::Tensor e = a - b;
    const cr::Ref<cr::Node> node = e.grad_fn();
    CHECK(name(cr::pow(std::move(e), 2)) == "pow");
    CHECK(std::string(node->name) == "sub");
  }
  SUBCASE("a sum of a joined square whose node the caller holds, or with a hook") {
    cr::Tensor s = cr::pow(a - b, 2);
    const cr::Ref<cr::Node> node = s.grad_fn();
    CHECK(name(cr::sum(std::move(s))) == "sum");
    CHECK(std::string(node->name) == "sub_pow");
    cr::Tensor h = cr::pow(a - b, 2);
    h.register_hook([](const cr::Tensor& g) { return g; });
    CHECK(name(cr::sum(std::move(h))) == "sum");
  }
  SUBCASE("under no_grad nothing is recorded, with the same values") {
    const cr::NoGradGuard no_grad;
    const cr::Tensor l = cr::sum(cr::pow(a - b, 2));
    CHECK(l.grad_fn() == nullptr);
    CHECK(l.item<double>() == cr::sum(cr::pow(a.detach() - b.detach(), 2)).item<double>());
  }
  SUBCASE("a second backward through the joined node is the usual Error") {
    const cr::Tensor l = cr::sum(cr::pow(a - b, 2));
    l.backward();
    check_error([&] { l.backward(); }, {"sub_pow_sum", "second time"});
  }
  SUBCASE("to_string writes the three ops") {
    CHECK(cr::autograd::to_string(cr::sum(cr::pow(a - b, 2)), {{a, "a"}, {b, "b"}}) == "sum(pow(sub(a, b), 2))");
    CHECK(cr::autograd::to_string(cr::pow(a + b, 2), {{a, "a"}, {b, "b"}}) == "pow(add(a, b), 2)");
    const cr::Tensor y = cr::zeros({4}, cr::float64);
    CHECK(cr::autograd::to_string(cr::sum(cr::pow(y - cr::sigmoid(a), 2)), {{a, "a"}}) ==
          "sum(pow(sub(const[4], sigmoid(a)), 2))");
    const std::string dot = cr::autograd::to_dot(cr::sum(cr::pow(a - b, 2)));
    CHECK(dot.find("label=\"sub_pow_sum\\n[] float64\\n(2)\"") != std::string::npos);
  }
}

TEST_CASE("a joined sum takes the square's buffer when it lies inside its block, and lets a larger one go") {
  const cr::Tensor a = input({4}), b = input({4}, -1.0, 1.0, 3);
  cr::Tensor small = cr::pow(a - b, 2);  // 32 bytes: inside its block (Storage::kInlineBytes)
  const void* buffer = small.raw_data();
  const cr::Tensor l = cr::sum(std::move(small));
  CHECK(l.raw_data() == buffer);
  CHECK(l.dim() == 0);
  CHECK(l.item<double>() == cr::sum(cr::pow((a - b).detach(), 2)).item<double>());
  const cr::Tensor x = input({100});
  cr::Tensor large = cr::pow(x - 1.0, 2);  // 800 bytes, from the pool: a loss kept must not hold them
  const void* large_buffer = large.raw_data();
  const cr::Tensor m = cr::sum(std::move(large));
  CHECK(std::string(m.grad_fn()->name) == "sub_pow_sum");
  CHECK(m.raw_data() != large_buffer);
  CHECK(m.impl()->storage->nbytes == sizeof(double));
  CHECK(m.item<double>() == cr::sum(cr::pow(x.detach() - 1.0, 2)).item<double>());
  CHECK(same_values(values(cr::autograd::grad({m}, {x})[0]), values((x.detach() - 1.0) * 2.0)));
}

TEST_CASE("a backward that frees the graph writes the square's gradient into its saved difference (not with retain)") {
  const cr::Tensor y = cr::tensor({0, 1, 1, 0}, {4}, cr::float64), z = input({4});
  for (bool retain : {false, true}) {
    INFO("retain_graph " << retain);
    cr::Tensor a = cr::sigmoid(z * 1.0);
    const void* seen = nullptr;
    a.register_hook([&seen](const cr::Tensor& g) {
      seen = g.raw_data();
      return cr::Tensor();
    });
    cr::Tensor d = y - a;
    const void* difference = d.raw_data();
    const cr::Tensor l = cr::sum(cr::pow(std::move(d), 2));
    REQUIRE(std::string(l.grad_fn()->name) == "sub_pow_sum");
    l.backward({}, retain);
    CHECK((seen == difference) == !retain);  // the gradient -2 (y - a) in the difference's buffer
    const cr::Tensor first = z.grad().clone();
    const cr::Tensor expected = (y - a.detach()) * -2.0 * (a.detach() * (1.0 - a.detach()));
    CHECK(cr::allclose(first, expected, 1e-15, 0));
    if (retain) {  // the difference was left intact: a second backward gives the same gradient
      z.grad().zero_();
      l.backward();
      CHECK(same_values(values(z.grad()), values(first)));
    }
    z.grad().zero_();
  }
}
