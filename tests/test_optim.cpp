// Optimizers against their closed-form recurrences written out in plain doubles (150 steps,
// float64, 1e-12), the golden values from PyTorch's SGD semantics, option validation,
// parameter groups, and the schedulers' closed forms.
#include "helpers.hpp"

#include <cmath>
#include <functional>

namespace O = cr::optim;

namespace {

// f(theta) = 0.5 * sum(a * theta^2); the engine computes the gradient a * theta.
const std::vector<double> kA = {0.5, 1.0, 2.0, 3.0};
const std::vector<double> kTheta0 = {1.0, -2.0, 0.5, 3.0};

// Runs `steps` steps of `make(params)` and checks theta against `reference` after every step.
// `reference(theta, grad)` updates theta (and its own state) in plain doubles.
void check_recurrence(const std::function<std::unique_ptr<O::Optimizer>(std::vector<cr::Tensor>)>& make,
                      const std::function<void(std::vector<double>&, const std::vector<double>&)>& reference,
                      int steps = 150) {
  cr::Tensor theta = cr::tensor(std::vector<double>(kTheta0), {4}, cr::float64).requires_grad_();
  const cr::Tensor a = cr::tensor(std::vector<double>(kA), {4}, cr::float64);
  auto opt = make({theta});
  std::vector<double> ref = kTheta0;
  for (int t = 0; t < steps; ++t) {
    opt->zero_grad();
    (cr::sum(a * theta * theta) * 0.5).backward();
    std::vector<double> g(4);
    for (size_t i = 0; i < 4; ++i) g[i] = kA[i] * ref[i];
    opt->step();
    reference(ref, g);
    const auto got = values(theta);
    for (size_t i = 0; i < 4; ++i) {
      INFO("step " << t + 1 << " element " << i);
      REQUIRE(std::abs(got[i] - ref[i]) <= 1e-12 * std::max(1.0, std::abs(ref[i])));
    }
  }
}

// Golden values: constant gradient 1, theta0 = 0.
std::vector<double> constant_gradient_run(const O::SGDOptions& o, int steps) {
  cr::Tensor theta = cr::zeros({1}, cr::float64).requires_grad_();
  O::SGD sgd({theta}, o);
  std::vector<double> out;
  for (int t = 0; t < steps; ++t) {
    theta.set_grad(cr::ones({1}, cr::float64));
    sgd.step();
    out.push_back(theta.item<double>());
  }
  return out;
}

}  // namespace

TEST_CASE("SGD golden values (PyTorch semantics)") {
  const auto damp = constant_gradient_run({.lr = 0.1, .momentum = 0.9, .dampening = 0.5}, 2);
  CHECK(damp[0] == doctest::Approx(-0.1).epsilon(1e-15));
  CHECK(damp[1] == doctest::Approx(-0.24).epsilon(1e-15));
  const auto nest = constant_gradient_run({.lr = 0.1, .momentum = 0.9, .dampening = 0.0, .nesterov = true}, 2);
  CHECK(nest[0] == doctest::Approx(-0.19).epsilon(1e-15));
  CHECK(nest[1] == doctest::Approx(-0.461).epsilon(1e-15));
  // EMA convention: b1 = 0.1, b2 = 0.19 -> theta = -0.01, -0.029
  const auto ema = constant_gradient_run({.lr = 0.1, .momentum = 0.9, .convention = O::MomentumConvention::ema}, 2);
  CHECK(ema[0] == doctest::Approx(-0.01).epsilon(1e-15));
  CHECK(ema[1] == doctest::Approx(-0.029).epsilon(1e-15));
}

TEST_CASE("SGD in every convention against its recurrence") {
  struct Case {
    O::SGDOptions o;
  };
  const std::vector<O::SGDOptions> cases = {
      {.lr = 0.1},
      {.lr = 0.05, .momentum = 0.9},
      {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.01},
      {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.02, .nesterov = true},
      {.lr = 0.05, .momentum = 0.5, .maximize = true},
      {.lr = 0.5, .momentum = 0.5, .convention = O::MomentumConvention::ema},
      {.lr = 0.3, .momentum = 0.9, .weight_decay = 0.01, .convention = O::MomentumConvention::ema},
  };
  for (const auto& o : cases) {
    CAPTURE(o.momentum);
    CAPTURE(o.nesterov);
    std::vector<double> buf(4, 0.0);
    bool first = true;
    check_recurrence([&](std::vector<cr::Tensor> p) { return std::make_unique<O::SGD>(p, o); },
                     [&](std::vector<double>& th, const std::vector<double>& g0) {
                       for (size_t i = 0; i < 4; ++i) {
                         double g = o.maximize ? -g0[i] : g0[i];
                         g += o.weight_decay * th[i];
                         if (o.momentum != 0) {
                           if (o.convention == O::MomentumConvention::ema) {
                             buf[i] = o.momentum * buf[i] + (1 - o.momentum) * g;
                             g = buf[i];
                           } else {
                             buf[i] = first ? g : o.momentum * buf[i] + (1 - o.dampening) * g;
                             g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
                           }
                         }
                         th[i] -= o.lr * g;
                       }
                       first = false;
                     });
  }
}

TEST_CASE("SGD momentum: the one-pass update of small parameters equals the three in-place passes bit for bit") {
  // A transposed (non-contiguous) parameter takes the three passes; a contiguous copy of it
  // takes the fused loop.
  for (cr::Dtype d : {cr::float32, cr::float64})
    for (O::MomentumConvention conv : {O::MomentumConvention::pytorch, O::MomentumConvention::ema}) {
      cr::manual_seed(5);
      const cr::Tensor values = cr::randn({4, 3}, d);
      cr::Tensor strided = values.t().clone().t().requires_grad_();  // [3, 4] values, column-major
      REQUIRE_FALSE(strided.is_contiguous());
      cr::Tensor dense = values.clone().requires_grad_();
      O::SGDOptions opts{.lr = 0.3, .momentum = 0.9, .convention = conv};
      if (conv == O::MomentumConvention::pytorch) opts.dampening = 0.25;
      O::SGD a({strided}, opts), b({dense}, opts);
      for (int step = 0; step < 20; ++step) {
        const cr::Tensor g = cr::randn({4, 3}, d);
        strided.set_grad(g.clone());
        dense.set_grad(g.clone());
        const uint32_t v = dense.version();
        a.step();
        b.step();
        CHECK(dense.version() > v);
        REQUIRE(strided.to_vector<double>() == dense.to_vector<double>());
      }
    }
}

TEST_CASE("Adam, AMSGrad, AdamW against their recurrences") {
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    const double lr = 0.05, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = variant >= 2 ? 0.1 : 0.0;
    const bool amsgrad = variant % 2 == 1, decoupled = variant == 3;
    std::vector<double> m(4, 0), v(4, 0), vmax(4, 0);
    int t = 0;
    check_recurrence(
        [&](std::vector<cr::Tensor> p) -> std::unique_ptr<O::Optimizer> {
          if (decoupled)
            return std::make_unique<O::AdamW>(p, O::AdamWOptions{.lr = lr, .betas = {b1, b2}, .eps = eps,
                                                                   .weight_decay = wd, .amsgrad = amsgrad});
          return std::make_unique<O::Adam>(
              p, O::AdamOptions{.lr = lr, .betas = {b1, b2}, .eps = eps, .weight_decay = wd, .amsgrad = amsgrad});
        },
        [&](std::vector<double>& th, const std::vector<double>& g0) {
          ++t;
          for (size_t i = 0; i < 4; ++i) {
            double g = g0[i];
            if (decoupled)
              th[i] *= 1 - lr * wd;
            else
              g += wd * th[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            vmax[i] = std::max(vmax[i], v[i]);
            const double vh = amsgrad ? vmax[i] : v[i];
            const double denom = std::sqrt(vh) / std::sqrt(1 - std::pow(b2, t)) + eps;
            th[i] -= lr / (1 - std::pow(b1, t)) * m[i] / denom;
          }
        });
  }
}

TEST_CASE("RMSprop (plain, centered, with momentum) against its recurrence") {
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    const O::RMSpropOptions o{.lr = 0.01, .alpha = 0.9, .eps = 1e-8, .weight_decay = variant == 2 ? 0.05 : 0.0,
                              .momentum = variant >= 1 ? 0.5 : 0.0, .centered = variant == 2};
    std::vector<double> sq(4, 0), ga(4, 0), buf(4, 0);
    check_recurrence([&](std::vector<cr::Tensor> p) { return std::make_unique<O::RMSprop>(p, o); },
                     [&](std::vector<double>& th, const std::vector<double>& g0) {
                       for (size_t i = 0; i < 4; ++i) {
                         const double g = g0[i] + o.weight_decay * th[i];
                         sq[i] = o.alpha * sq[i] + (1 - o.alpha) * g * g;
                         double avg;
                         if (o.centered) {
                           ga[i] = o.alpha * ga[i] + (1 - o.alpha) * g;
                           avg = std::sqrt(sq[i] - ga[i] * ga[i]) + o.eps;
                         } else {
                           avg = std::sqrt(sq[i]) + o.eps;
                         }
                         if (o.momentum > 0) {
                           buf[i] = o.momentum * buf[i] + g / avg;
                           th[i] -= o.lr * buf[i];
                         } else {
                           th[i] -= o.lr * g / avg;
                         }
                       }
                     });
  }
}

TEST_CASE("Adagrad (lr decay, weight decay, initial accumulator) against its recurrence") {
  for (int variant = 0; variant < 2; ++variant) {
    CAPTURE(variant);
    const O::AdagradOptions o{.lr = 0.1, .lr_decay = variant ? 0.2 : 0.0, .weight_decay = variant ? 0.05 : 0.0,
                              .initial_accumulator_value = variant ? 0.3 : 0.0, .eps = 1e-10};
    std::vector<double> sum(4, o.initial_accumulator_value);
    int64_t t = 0;
    check_recurrence([&](std::vector<cr::Tensor> p) { return std::make_unique<O::Adagrad>(p, o); },
                     [&](std::vector<double>& th, const std::vector<double>& g0) {
                       ++t;
                       const double clr = o.lr / (1 + static_cast<double>(t - 1) * o.lr_decay);
                       for (size_t i = 0; i < 4; ++i) {
                         const double g = g0[i] + o.weight_decay * th[i];
                         sum[i] += g * g;
                         th[i] -= clr * g / (std::sqrt(sum[i]) + o.eps);
                       }
                     });
  }
}

TEST_CASE("constructors reject invalid options, quoting the value") {
  cr::Tensor p = cr::zeros({2}).requires_grad_();
  check_error([&] { O::SGD s({p}, {.lr = -0.1}); }, {"SGD", "learning rate", "-0.1"});
  check_error([&] { O::SGD s({p}, {.lr = 0.1, .momentum = 0.0, .nesterov = true}); }, {"SGD", "nesterov", "momentum"});
  check_error([&] { O::SGD s({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
              {"nesterov", "dampening 0.1"});
  check_error([&] { O::SGD s({p}, {.lr = 0.1, .momentum = -1}); }, {"SGD", "momentum -1"});
  check_error([&] { O::SGD s({p}, {.lr = 0.1, .momentum = 1.0, .convention = O::MomentumConvention::ema}); },
              {"ema", "[0, 1)"});
  check_error([&] { O::Adam a({p}, {.lr = 0.1, .betas = {0.9, 1.0}}); }, {"Adam", "beta", "index 1", "1"});
  check_error([&] { O::Adam a({p}, {.eps = -1}); }, {"Adam", "eps -1"});
  check_error([&] { O::AdamW a({p}, {.weight_decay = -0.5}); }, {"AdamW", "weight_decay -0.5"});
  check_error([&] { O::RMSprop r({p}, {.alpha = -0.1}); }, {"RMSprop", "alpha -0.1"});
  check_error([&] { O::Adagrad a({p}, {.lr_decay = -0.1}); }, {"Adagrad", "lr_decay -0.1"});
  check_error([&] { O::Adagrad a({p}, {.initial_accumulator_value = -1}); }, {"Adagrad", "initial_accumulator_value -1"});
  check_error([&] { O::SGD s({}, {.lr = 0.1}); }, {"SGD", "empty"});
  check_error([&] { O::SGD s({p * 2.0}, {.lr = 0.1}); }, {"SGD", "leaf"});
  O::SGD ok({p}, {.lr = 0.1});
  check_error([&] { ok.set_lr(-1.0); }, {"SGD", "learning rate -1"});
  // a parameter listed twice was updated twice a step, silently (PyTorch warns)
  cr::Tensor q = cr::zeros({3}).requires_grad_();
  check_error([&] { O::SGD s({p, q, p}, {.lr = 0.1}); }, {"SGD", "parameter 2", "[2] float32", "twice"});
  check_error([&] { O::Adam a({q, q}, {}); }, {"Adam", "parameter 1", "[3] float32", "twice"});
  check_error([&] { ok.add_param_group({q, p}, {.lr = 1.0}); }, {"SGD", "parameter 1", "earlier group"});
  CHECK(ok.group_count() == 1);  // the rejected group was not added
  ok.add_param_group({q}, {.lr = 1.0});
  CHECK(ok.group_count() == 2);
}

TEST_CASE("frozen parameters (requires_grad off) may be passed and are left alone until unfrozen, as in PyTorch") {
  cr::manual_seed(3);
  cr::nn::MLP mlp({3, 4, 2}, {.dtype = cr::float64});
  for (auto& p : mlp.linears[0]->parameters()) p.requires_grad_(false);  // freeze the first layer
  O::SGD sgd(mlp.parameters(), {.lr = 0.1});  // all of them, as model.parameters() in PyTorch (was an Error)
  const cr::Tensor x = cr::rand({5, 3}, cr::float64);
  const auto frozen = values(mlp.linears[0]->weight), trained = values(mlp.linears[1]->weight);
  cr::sum(mlp(x)).backward();
  sgd.step();
  CHECK(values(mlp.linears[0]->weight) == frozen);
  CHECK(values(mlp.linears[1]->weight) != trained);
  for (auto& p : mlp.linears[0]->parameters()) p.requires_grad_(true);  // unfreeze: now it trains
  sgd.zero_grad();
  cr::sum(mlp(x)).backward();
  sgd.step();
  CHECK(values(mlp.linears[0]->weight) != frozen);
  // still refused: an int64 tensor, which can never have a gradient (a non-leaf: the test above)
  check_error([] { O::SGD s({cr::zeros({2}, cr::int64)}, {.lr = 0.1}); }, {"SGD", "parameter 0", "int64", "floating"});
}

TEST_CASE("parameter groups take their own options; parameters without a gradient are skipped") {
  cr::Tensor a = cr::zeros({1}, cr::float64).requires_grad_(), b = cr::zeros({1}, cr::float64).requires_grad_();
  cr::Tensor c = cr::zeros({1}, cr::float64).requires_grad_();
  O::SGD sgd({a}, {.lr = 0.1});
  sgd.add_param_group({b, c}, {.lr = 1.0});
  CHECK(sgd.group_count() == 2);
  a.set_grad(cr::ones({1}, cr::float64));
  b.set_grad(cr::ones({1}, cr::float64));
  sgd.step();
  CHECK(a.item<double>() == doctest::Approx(-0.1));
  CHECK(b.item<double>() == doctest::Approx(-1.0));
  CHECK(c.item<double>() == 0.0);
  sgd.set_lr(0.5);
  CHECK(sgd.lr(1) == 0.5);
  sgd.zero_grad();
  CHECK_FALSE(a.grad().defined());
  // the state is each parameter's, counted across groups: c (index 2) took no step and has none;
  // with momentum, a second step reads each parameter's own buffer
  O::SGD momentum({a}, {.lr = 1.0, .momentum = 0.5});
  momentum.add_param_group({b, c}, {.lr = 1.0, .momentum = 0.5});
  a.set_grad(cr::ones({1}, cr::float64));
  c.set_grad(cr::full({1}, 2.0, cr::float64));
  momentum.step();
  std::vector<std::string> keys;
  for (const auto& [key, t] : momentum.state_dict()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"group.0.lr", "group.1.lr", "state.0.step", "state.0.momentum_buffer",
                                         "state.2.step", "state.2.momentum_buffer"});
  const double a0 = a.item<double>(), c0 = c.item<double>();
  momentum.step();  // buffers 1 -> 1.5 (a) and 2 -> 3 (c): b's buffer would be fresh
  CHECK(a.item<double>() == a0 - 1.5);
  CHECK(c.item<double>() == c0 - 3.0);
  O::SGD restored({a}, {.lr = 1.0, .momentum = 0.5});
  restored.add_param_group({b, c}, {.lr = 1.0, .momentum = 0.5});
  restored.load_state_dict(momentum.state_dict());
  CHECK(restored.state_dict().size() == momentum.state_dict().size());
  restored.step();  // from the loaded buffers 1.5 and 3: 1.75 and 3.5
  CHECK(a.item<double>() == a0 - 1.5 - 1.75);
  CHECK(c.item<double>() == c0 - 3.0 - 3.5);
}

TEST_CASE("a model moved to another dtype after some steps: the optimizer state follows it") {
  // SGD kept a float32 momentum buffer for a float64 parameter (its in-place update stayed
  // float32, silently limiting the precision asked for) while Adam and RMSprop promoted theirs.
  for (int which = 0; which < 4; ++which) {
    CAPTURE(which);
    cr::nn::Linear lin(3, 2);
    std::unique_ptr<O::Optimizer> opt;
    if (which == 0) opt = std::make_unique<O::SGD>(lin.parameters(), O::SGDOptions{.lr = 0.125, .momentum = 0.9});
    if (which == 1) opt = std::make_unique<O::Adam>(lin.parameters(), O::AdamOptions{.lr = 0.1});
    if (which == 2) opt = std::make_unique<O::RMSprop>(lin.parameters(), O::RMSpropOptions{.lr = 0.1, .momentum = 0.5});
    if (which == 3) opt = std::make_unique<O::Adagrad>(lin.parameters(), O::AdagradOptions{.lr = 0.1});
    auto step = [&](cr::Dtype d) {
      opt->zero_grad();
      cr::sum(lin(cr::ones({4, 3}, d))).backward();
      opt->step();
    };
    step(cr::float32);
    step(cr::float32);
    lin.to(cr::float64);
    for (const auto& [name, t] : opt->state_dict())
      if (name.rfind("state.", 0) == 0 && name.find(".step") == std::string::npos) CHECK(t.dtype() == cr::float32);
    // SGD's next step in float64 from the float32 buffer, by hand: buf = 0.9 buf + g; p -= lr buf
    // (lr 0.125, exact in binary: a float32 buffer's rounding shows in p).
    const std::vector<double> p0 = values(lin.weight);
    std::vector<double> buf0;
    for (const auto& [name, t] : opt->state_dict())
      if (name == "state.0.momentum_buffer") buf0 = values(t);
    step(cr::float64);
    for (const auto& entry : opt->state_dict()) {
      const std::string& name = entry.first;  // (not a structured binding: CAPTURE captures it)
      const cr::Tensor& t = entry.second;
      CAPTURE(name);
      if (name.rfind("state.", 0) == 0 && name.find(".step") == std::string::npos) CHECK(t.dtype() == cr::float64);
    }
    if (which == 0) {
      const std::vector<double> p1 = values(lin.weight);
      for (size_t i = 0; i < p1.size(); ++i) CHECK(p1[i] == p0[i] - 0.125 * (0.9 * buf0[i] + 4.0));  // dL/dW = 4 (4 rows of ones)
    }
  }
}

TEST_CASE("schedulers follow PyTorch's closed forms") {
  cr::Tensor p = cr::zeros({1}).requires_grad_();
  SUBCASE("StepLR") {
    O::SGD s({p}, {.lr = 1.0});
    O::StepLR sched(s, 3, 0.5);
    std::vector<double> lrs;
    for (int i = 0; i < 7; ++i) {
      sched.step();
      lrs.push_back(s.lr());
    }
    CHECK(lrs == std::vector<double>{1, 1, 0.5, 0.5, 0.5, 0.25, 0.25});
  }
  SUBCASE("ExponentialLR") {
    O::SGD s({p}, {.lr = 2.0});
    O::ExponentialLR sched(s, 0.9);
    sched.step();
    sched.step();
    CHECK(s.lr() == doctest::Approx(2 * 0.81));
  }
  SUBCASE("CosineAnnealingLR") {
    O::SGD s({p}, {.lr = 1.0});
    O::CosineAnnealingLR sched(s, 10, 0.1);
    for (int i = 0; i < 5; ++i) sched.step();
    CHECK(s.lr() == doctest::Approx(0.55));
    for (int i = 0; i < 5; ++i) sched.step();
    CHECK(s.lr() == doctest::Approx(0.1));
  }
  SUBCASE("LinearLR warmup") {
    O::SGD s({p}, {.lr = 1.0});
    O::LinearLR warm(s, 0.25, 1.0, 3);
    CHECK(s.lr() == doctest::Approx(0.25));
    warm.step();
    CHECK(s.lr() == doctest::Approx(0.5));
    warm.step();
    warm.step();
    warm.step();
    CHECK(warm.get_last_lr() == std::vector<double>{1.0});
  }
  SUBCASE("MultiStepLR") {
    O::SGD s({p}, {.lr = 1.0});
    O::MultiStepLR sched(s, {5, 2, 5}, 0.5);  // any order; a repeated milestone multiplies twice
    std::vector<double> lrs;
    for (int i = 0; i < 7; ++i) {
      sched.step();
      lrs.push_back(s.lr());
    }
    CHECK(lrs == std::vector<double>{1, 0.5, 0.5, 0.5, 0.125, 0.125, 0.125});
    O::SGD z({p}, {.lr = 1.0});
    O::MultiStepLR at0(z, {0}, 0.1);  // a milestone at 0 applies at once, as PyTorch's first step
    CHECK(z.lr() == doctest::Approx(0.1));
    check_error([&] { O::MultiStepLR bad(z, {3, -1}); }, {"MultiStepLR", "milestones", "-1"});
    check_error([&] { O::MultiStepLR bad(z, {3}, -0.1); }, {"MultiStepLR", "gamma", "-0.1"});
  }
  SUBCASE("LambdaLR") {
    O::SGD s({p}, {.lr = 0.5});
    s.add_param_group({cr::zeros({1}).requires_grad_()}, {.lr = 2.0});
    // warmup over 3 epochs, then 1 / epoch: each group's base lr times the factor, from epoch 0
    O::LambdaLR sched(s, [](int64_t e) { return e < 3 ? (e + 1) / 3.0 : 3.0 / static_cast<double>(e + 1); });
    CHECK(sched.get_last_lr() == std::vector<double>{0.5 / 3, 2.0 / 3});
    for (int i = 0; i < 5; ++i) sched.step();
    CHECK(s.lr(0) == doctest::Approx(0.5 * 0.5));
    CHECK(s.lr(1) == doctest::Approx(2.0 * 0.5));
    O::SGD t({p}, {.lr = 1.0});
    O::LambdaLR bad(t, [](int64_t e) { return e < 2 ? 1.0 : -1.0; });
    bad.step();
    check_error([&] { bad.step(); }, {"LambdaLR", "lr_lambda(2)", "-1"});
    CHECK(t.lr() == 1.0);  // left as it was
    check_error([&] { O::LambdaLR none(t, nullptr); }, {"LambdaLR", "lr_lambda"});
  }
  SUBCASE("ReduceLROnPlateau") {
    O::SGD s({p}, {.lr = 1.0});
    O::ReduceLROnPlateau sched(s, {.factor = 0.5, .patience = 2});
    for (double metric : {1.0, 0.9, 0.95, 0.95}) sched.step(metric);
    CHECK(s.lr() == 1.0);  // two bad epochs: still within patience
    sched.step(0.95);      // third: reduce
    CHECK(s.lr() == 0.5);
    sched.step(0.5);
    CHECK(sched.bad_epochs() == 0);
    check_error([&] { O::ReduceLROnPlateau bad(s, {.factor = 2}); }, {"ReduceLROnPlateau", "factor"});
    check_error([&] { O::ReduceLROnPlateau bad(s, {.threshold = -0.1}); }, {"ReduceLROnPlateau", "threshold", "-0.1"});
    check_error([&] { O::ReduceLROnPlateau bad(s, {.threshold = NAN}); }, {"ReduceLROnPlateau", "threshold"});
    check_error([&] { O::ReduceLROnPlateau bad(s, {.cooldown = -1}); }, {"ReduceLROnPlateau", "cooldown"});
    check_error([&] { O::ReduceLROnPlateau bad(s, {.min_lr = -1}); }, {"ReduceLROnPlateau", "min_lr"});
  }
  check_error([&] {
    O::SGD s({p}, {.lr = 1.0});
    O::StepLR bad(s, 0);
  }, {"StepLR", "step_size"});
  {  // schedules that would reach a learning rate the optimizer refuses are refused up front
    O::SGD s({p}, {.lr = 1.0});
    check_error([&] { O::StepLR bad(s, 1, -0.5); }, {"StepLR", "gamma", "-0.5"});
    check_error([&] { O::StepLR bad(s, 1, NAN); }, {"StepLR", "gamma"});
    check_error([&] { O::CosineAnnealingLR bad(s, 10, -0.1); }, {"CosineAnnealingLR", "eta_min"});
    check_error([&] { O::ExponentialLR bad(s, INFINITY); }, {"ExponentialLR", "gamma"});
  }
}
