// Normalisation layers as PyTorch defines them: functional::layer_norm and nn::LayerNorm,
// functional::batch_norm and nn::BatchNorm1d (running statistics as module buffers: registered,
// listed, converted by to(dtype), saved and loaded with the parameters). Values and derivatives
// are also compared against torch by tests/torch_parity.
#include "helpers.hpp"

#include <cmath>
#include <cstdio>
#include <functional>

namespace F = cr::nn::functional;

namespace {
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
  }
}
}  // namespace

// ---------------------------------------------------------------- layer_norm

TEST_CASE("layer_norm: (x - mean) / sqrt(biased var + eps) over the trailing dims, then weight and bias") {
  const cr::Tensor x = cr::tensor({1.0, 2, 3, 4, -1, 0, 0, 5}, {2, 4}, cr::float64);
  // row 0: mean 2.5, biased variance 1.25; row 1: mean 1, variance (4 + 1 + 1 + 16) / 4 = 5.5
  const double s0 = std::sqrt(1.25 + 1e-5), s1 = std::sqrt(5.5 + 1e-5);
  const std::vector<double> plain = {-1.5 / s0, -0.5 / s0, 0.5 / s0, 1.5 / s0, -2 / s1, -1 / s1, -1 / s1, 4 / s1};
  check_close(values(F::layer_norm(x, {4})), plain);
  // weight and bias of normalized_shape, applied per position
  const cr::Tensor w = cr::tensor({1.0, 2, 3, 4}, cr::float64), b = cr::tensor({0.5, 0, 0, -1}, cr::float64);
  std::vector<double> affine = plain;
  for (size_t i = 0; i < affine.size(); ++i) affine[i] = affine[i] * (1.0 + double(i % 4)) + std::vector{0.5, 0.0, 0.0, -1.0}[i % 4];
  check_close(values(F::layer_norm(x, {4}, w, b)), affine);
  // two trailing dims: all 8 values are one group (mean 1.75)
  const cr::Tensor both = F::layer_norm(x, {2, 4}, {}, {}, 0.0);
  double mean = 0, var = 0;
  for (double v : values(both)) mean += v / 8;
  for (double v : values(both)) var += (v - mean) * (v - mean) / 8;
  CHECK(mean == doctest::Approx(0).epsilon(1e-12));
  CHECK(var == doctest::Approx(1).epsilon(1e-12));
  CHECK(both.shape() == cr::Shape{2, 4});
  // a float32 input stays float32
  CHECK(F::layer_norm(x.to(cr::float32), {4}).dtype() == cr::float32);
}

TEST_CASE("layer_norm: gradcheck and gradgradcheck of the input, weight and bias") {
  const cr::Tensor x = input({3, 2, 4}), w = input({2, 4}, 0.5, 2.0, 3), b = input({2, 4}, -1.0, 1.0, 4);
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::layer_norm(in[0], {4}); }, {x});
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::layer_norm(in[0], {2, 4}, in[1], in[2], 1e-3); },
                  {x, w, b});
}

TEST_CASE("layer_norm: errors name the op, the shapes and the dtypes") {
  const cr::Tensor x = input({3, 4});
  check_error([&] { F::layer_norm(x, {3}); }, {"layer_norm", "[3, 4]", "normalized_shape [3]"});
  check_error([&] { F::layer_norm(x, {2, 3, 4}); }, {"layer_norm", "[3, 4]", "[2, 3, 4]"});
  check_error([&] { F::layer_norm(x, {}); }, {"layer_norm", "at least one dimension"});
  check_error([&] { F::layer_norm(x, {4}, cr::ones({3}, cr::float64)); }, {"layer_norm", "weight", "[3]", "[4]"});
  check_error([&] { F::layer_norm(x, {4}, {}, cr::ones({4, 1}, cr::float64)); }, {"layer_norm", "bias", "[4, 1]"});
  check_error([&] { F::layer_norm(cr::ones({2, 4}, cr::int64), {4}); }, {"layer_norm", "int64"});
  check_error([&] { F::layer_norm(x, {4}, cr::ones({4}, cr::float32)); }, {"layer_norm", "weight", "float32", "float64"});
}

TEST_CASE("nn::LayerNorm: weight 1 and bias 0 to start, learnable, elementwise_affine=false has none") {
  cr::nn::LayerNorm norm({4}, {.dtype = cr::float64});
  REQUIRE(norm.parameters().size() == 2);
  CHECK(values(norm.weight) == std::vector<double>(4, 1.0));
  CHECK(values(norm.bias) == std::vector<double>(4, 0.0));
  CHECK(norm.repr() == "LayerNorm(normalized_shape=[4], eps=1e-05, elementwise_affine=true)");
  const cr::Tensor x = input({3, 4});
  check_close(values(norm(x)), values(F::layer_norm(x, {4})));
  cr::sum(norm(x) * x).backward();
  CHECK(norm.weight.grad().defined());
  CHECK(norm.bias.grad().defined());
  cr::nn::LayerNorm plain({3, 4}, {.eps = 1e-3, .elementwise_affine = false});
  CHECK(plain.parameters().empty());
  CHECK(plain.repr() == "LayerNorm(normalized_shape=[3, 4], eps=0.001, elementwise_affine=false)");
  check_error([&] { cr::nn::LayerNorm({0}); }, {"LayerNorm", "[0]"});
  check_error([&] { norm(cr::ones({4, 3}, cr::float64)); }, {"layer_norm", "[4, 3]", "[4]"});
}

// ---------------------------------------------------------------- batch_norm

TEST_CASE("batch_norm: batch statistics while training, running ones (updated with momentum, unbiased) otherwise") {
  // channel 0: 1, 2, 6 (mean 3, biased variance 14/3, unbiased 7); channel 1: 10, 20, 30 (20, 200/3, 100)
  const cr::Tensor x = cr::tensor({1.0, 10, 2, 20, 6, 30}, {3, 2}, cr::float64);
  cr::Tensor mean = cr::zeros({2}, cr::float64), var = cr::ones({2}, cr::float64);
  const cr::Tensor y = F::batch_norm(x, mean, var, {}, {}, true, 0.1, 1e-5);
  const double s0 = std::sqrt(14.0 / 3 + 1e-5), s1 = std::sqrt(200.0 / 3 + 1e-5);
  check_close(values(y), {-2 / s0, -10 / s1, -1 / s0, 0, 3 / s0, 10 / s1});
  check_close(values(mean), {0.3, 2.0});           // 0.9 * 0 + 0.1 * batch mean
  check_close(values(var), {0.9 + 0.7, 0.9 + 10});  // 0.9 * 1 + 0.1 * unbiased batch variance
  // not training: the running statistics, which stay as they are
  const cr::Tensor w = cr::tensor({2.0, -1}, cr::float64), b = cr::tensor({0.5, 1}, cr::float64);
  const cr::Tensor e = F::batch_norm(x, mean, var, w, b, false);
  check_close(values(e), {(1 - 0.3) / std::sqrt(1.6 + 1e-5) * 2 + 0.5, -(10 - 2.0) / std::sqrt(10.9 + 1e-5) + 1,
                          (2 - 0.3) / std::sqrt(1.6 + 1e-5) * 2 + 0.5, -(20 - 2.0) / std::sqrt(10.9 + 1e-5) + 1,
                          (6 - 0.3) / std::sqrt(1.6 + 1e-5) * 2 + 0.5, -(30 - 2.0) / std::sqrt(10.9 + 1e-5) + 1});
  check_close(values(mean), {0.3, 2.0});
  // training without running statistics: nothing to update
  check_close(values(F::batch_norm(x, {}, {}, {}, {}, true)), values(y));
}

TEST_CASE("batch_norm: [N, C, L] inputs take statistics over N and L per channel") {
  const cr::Tensor x = input({4, 3, 5});
  cr::Tensor mean = cr::zeros({3}, cr::float64), var = cr::ones({3}, cr::float64);
  const cr::Tensor y = F::batch_norm(x, mean, var, {}, {}, true, 1.0, 0.0);  // momentum 1: the batch's own
  const cr::Tensor y_mean = cr::mean(y, cr::Shape{0, 2}), y_var = cr::var(y, cr::Shape{0, 2}, 0);
  for (double v : values(y_mean)) CHECK(std::abs(v) < 1e-12);
  check_close(values(y_var), {1, 1, 1});
  check_close(values(mean), values(cr::mean(x, cr::Shape{0, 2})));
  check_close(values(var), values(cr::var(x, cr::Shape{0, 2})));  // unbiased: 20 values, divided by 19
}

TEST_CASE("batch_norm: gradcheck and gradgradcheck while training and not") {
  const cr::Tensor x = input({4, 3}), x3 = input({3, 2, 4}, -2, 2, 8), w = input({3}, 0.5, 2.0, 3),
                   b = input({3}, -1.0, 1.0, 4), w2 = input({2}, 0.5, 2.0, 5), b2 = input({2}, -1.0, 1.0, 6);
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::batch_norm(in[0], {}, {}, in[1], in[2], true); },
                  {x, w, b});
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::batch_norm(in[0], {}, {}, in[1], in[2], true, 0.1, 1e-3); },
                  {x3, w2, b2});
  const cr::Tensor mean = cr::tensor({0.5, -1, 0}, cr::float64), var = cr::tensor({2.0, 0.5, 1}, cr::float64);
  check_gradients([&](const std::vector<cr::Tensor>& in) { return F::batch_norm(in[0], mean, var, in[1], in[2], false); },
                  {x, w, b});
}

TEST_CASE("layer, group and batch norm are one recorded op with a gradient kernel: against the composed ops, threads") {
  // (x - mean) / sqrt(var + eps) per c of x seen as [a, c, b], written as recorded ops (what the
  // three were before, and what create_graph records), then times w plus b in x's shape (per
  // channel for batch and group norm, per position of normalized_shape for layer norm), each
  // applied in the op; each case has 131,072 elements, enough to split the channels between threads.
  const double eps = 1e-5;
  const auto composed = [&](const cr::Tensor& x3) {
    const cr::Tensor centred = x3 - cr::mean(x3, cr::Shape{0, 2}, true);
    return centred / cr::sqrt(cr::mean(centred * centred, cr::Shape{0, 2}, true) + eps);
  };
  struct Case {
    const char* name;
    cr::Shape shape, as;   // x's shape, and as [a, c, b]
    cr::Shape w, w_view;   // the weight's and bias's shape (empty: no affine), and as broadcast to x
    std::function<cr::Tensor(const cr::Tensor&, const cr::Tensor&, const cr::Tensor&)> f;
  };
  using T = const cr::Tensor&;
  const auto batch_norm = [&](T x, T ws, T bs) { return F::batch_norm(x, {}, {}, ws, bs, true, 0.1, eps); };
  const auto layer_norm = [&](T x, T ws, T bs) { return F::layer_norm(x, {2048}, ws, bs, eps); };
  const auto group_norm = [&](T x, T ws, T bs) { return F::group_norm(x, 4, ws, bs, eps); };
  const std::vector<Case> cases = {
      {"batch_norm", {16, 8, 32, 32}, {16, 8, 1024}, {}, {}, batch_norm},
      {"batch_norm", {16, 8, 32, 32}, {16, 8, 1024}, {8}, {1, 8, 1, 1}, batch_norm},
      {"layer_norm", {4, 16, 2048}, {1, 64, 2048}, {}, {}, layer_norm},
      {"layer_norm", {4, 16, 2048}, {1, 64, 2048}, {2048}, {2048}, layer_norm},
      {"group_norm", {8, 16, 32, 32}, {1, 32, 4096}, {}, {}, group_norm},
      {"group_norm", {8, 16, 32, 32}, {1, 32, 4096}, {16}, {1, 16, 1, 1}, group_norm}};
  for (const Case& k : cases) {
    const bool affine = !k.w.empty();
    CAPTURE(k.name);
    CAPTURE(affine);
    const cr::Tensor x = (input(k.shape, -3, 5, 41) * input(k.shape, 0.5, 2, 42)).detach().requires_grad_();
    const cr::Tensor r = input(k.shape, -1, 1, 43).detach();
    const cr::Tensor w = affine ? input(k.w, 0.5, 2, 45) : cr::Tensor();
    const cr::Tensor b = affine ? input(k.w, -1, 1, 46) : cr::Tensor();
    const std::vector<cr::Tensor> wrt = affine ? std::vector{x, w, b} : std::vector{x};
    cr::Tensor expected = composed(x.reshape(k.as)).reshape(k.shape);
    if (affine) expected = expected * w.reshape(k.w_view) + b.reshape(k.w_view);
    const auto expected_grads = cr::autograd::grad({cr::sum(expected * r)}, wrt);
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      const Threads scope(threads);
      const cr::Tensor y = k.f(x, w, b);
      CHECK(y.grad_fn()->name == std::string(k.name));  // not the last of seven ops (or nine)
      const auto grads = cr::autograd::grad({cr::sum(y * r)}, wrt);
      CHECK(cr::allclose(y, expected, 1e-12, 1e-12));
      for (size_t i = 0; i < wrt.size(); ++i) CHECK(cr::allclose(grads[i], expected_grads[i], 1e-10, 1e-10));
      // float32 against the float64 values, the same bits on either thread count
      std::vector<cr::Tensor> wrt32;
      for (const cr::Tensor& t : wrt) wrt32.push_back(t.detach().to(cr::float32).requires_grad_());
      const cr::Tensor y32 = k.f(wrt32[0], affine ? wrt32[1] : cr::Tensor(), affine ? wrt32[2] : cr::Tensor());
      const auto grads32 = cr::autograd::grad({cr::sum(y32 * r.to(cr::float32))}, wrt32);
      CHECK(cr::allclose(y32.to(cr::float64), expected, 1e-5, 1e-5));
      runs.push_back(y32.to_vector<float>());
      for (size_t i = 0; i < wrt.size(); ++i) {
        // the affine's gradients are sums over 64 (layer norm) to 16,384 elements
        CHECK(cr::allclose(grads32[i].to(cr::float64), expected_grads[i], 1e-4, i == 0 ? 1e-4 : 1e-2));
        runs.push_back(grads32[i].to_vector<float>());
      }
    }
    for (size_t i = 0; i < runs.size() / 2; ++i) CHECK(runs[i] == runs[i + runs.size() / 2]);
  }
  // The output is not kept for backward: an in-place op on a batch norm without affine (a
  // relu_ in PyTorch's networks) leaves its gradient as an out-of-place one does
  const cr::Tensor x = input({4, 3, 5}), r = input({4, 3, 5}, -1, 1, 44).detach();
  const cr::Tensor expected = cr::autograd::grad({cr::sum(F::batch_norm(x, {}, {}, {}, {}, true) * 2.0 * r)}, {x})[0];
  cr::Tensor y = F::batch_norm(x, {}, {}, {}, {}, true);
  y.mul_(2.0);
  CHECK(values(cr::autograd::grad({cr::sum(y * r)}, {x})[0]) == values(expected));
}

TEST_CASE("batch_norm: errors name the op, the shapes and the dtypes") {
  const cr::Tensor x = input({4, 3});
  const cr::Tensor m3 = cr::zeros({3}, cr::float64), v3 = cr::ones({3}, cr::float64);
  check_error([&] { F::batch_norm(input({1, 3}), m3, v3, {}, {}, true); },
              {"batch_norm", "more than 1 value per channel", "[1, 3]"});
  check_error([&] { F::batch_norm(input({1, 3, 1}), {}, {}, {}, {}, true); }, {"batch_norm", "[1, 3, 1]"});
  check_error([&] { F::batch_norm(input({3}), m3, v3); }, {"batch_norm", "[3]", "[N, C"});
  check_error([&] { F::batch_norm(x, cr::zeros({4}, cr::float64), v3); }, {"batch_norm", "running_mean", "[4]", "[3]"});
  check_error([&] { F::batch_norm(x, m3, cr::ones({2}, cr::float64)); }, {"batch_norm", "running_var", "[2]"});
  check_error([&] { F::batch_norm(x, m3, v3, cr::ones({2}, cr::float64)); }, {"batch_norm", "weight", "[2]"});
  check_error([&] { F::batch_norm(x, m3, v3, {}, cr::ones({3}, cr::float32)); }, {"batch_norm", "bias", "float32", "float64"});
  check_error([&] { F::batch_norm(x, {}, {}); }, {"batch_norm", "running_mean and running_var", "training"});
  check_error([&] { F::batch_norm(x, m3, {}, {}, {}, true); }, {"batch_norm", "running_mean and running_var"});
  check_error([&] { F::batch_norm(cr::ones({4, 3}, cr::int64), {}, {}, {}, {}, true); }, {"batch_norm", "int64"});
}

// ---------------------------------------------------------------- nn::BatchNorm1d and buffers

TEST_CASE("nn::BatchNorm1d: running statistics as buffers, counted batches, train and eval") {
  cr::nn::BatchNorm1d bn(2, {.dtype = cr::float64});
  REQUIRE(bn.parameters().size() == 2);
  const auto buffers = bn.named_buffers();
  REQUIRE(buffers.size() == 3);
  CHECK(buffers[0].first == "running_mean");
  CHECK(buffers[1].first == "running_var");
  CHECK(buffers[2].first == "num_batches_tracked");
  CHECK(values(bn.running_mean) == std::vector<double>{0, 0});
  CHECK(values(bn.running_var) == std::vector<double>{1, 1});
  CHECK(bn.num_batches_tracked.dtype() == cr::int64);
  CHECK(!bn.running_mean.requires_grad());
  CHECK(bn.repr() == "BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");
  const cr::Tensor x = cr::tensor({1.0, 10, 2, 20, 6, 30}, {3, 2}, cr::float64);
  const cr::Tensor y = bn(x);
  check_close(values(y), values(F::batch_norm(x, {}, {}, {}, {}, true)));
  check_close(values(bn.running_mean), {0.3, 2.0});
  check_close(values(bn.running_var), {1.6, 10.9});
  CHECK(bn.num_batches_tracked.item<int64_t>() == 1);
  bn(x);
  CHECK(bn.num_batches_tracked.item<int64_t>() == 2);
  check_close(values(bn.running_mean), {0.3 * 0.9 + 0.3, 2.0 * 0.9 + 2.0});
  // eval: the running statistics, nothing counted
  bn.eval();
  const cr::Tensor e = bn(x);
  check_close(values(e), values(F::batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, false)));
  CHECK(bn.num_batches_tracked.item<int64_t>() == 2);
  // gradients reach weight and bias
  bn.train();
  cr::sum(bn(x) * x).backward();
  CHECK(bn.weight.grad().defined());
  CHECK(bn.bias.grad().defined());
  // reset_parameters resets the statistics too, as PyTorch's
  bn.reset_parameters();
  CHECK(values(bn.running_var) == std::vector<double>{1, 1});
  CHECK(bn.num_batches_tracked.item<int64_t>() == 0);
  // [N, C, L] inputs; anything else is an Error naming the module
  CHECK(bn(input({4, 2, 3})).shape() == cr::Shape{4, 2, 3});
  check_error([&] { bn(input({4, 3})); }, {"BatchNorm1d", "[4, 3]", "2"});
  check_error([&] { bn(input({4, 2, 3, 1})); }, {"BatchNorm1d", "[4, 2, 3, 1]"});
  // a refused batch changes nothing
  const auto before = values(bn.running_mean);
  check_error([&] { bn(input({1, 2})); }, {"batch_norm", "more than 1 value per channel"});
  CHECK(bn.num_batches_tracked.item<int64_t>() == 1);
  CHECK(values(bn.running_mean) == before);
  check_error([&] { cr::nn::BatchNorm1d(0); }, {"BatchNorm1d", "0"});
}

// ---------------------------------------------------------------- group_norm

TEST_CASE("group_norm: statistics per example and group of channels (by hand), then per-channel weight and bias") {
  const cr::Tensor x = input({2, 4, 3}, -2, 2, 51).detach();
  const std::vector<double> xv = values(x);
  // by hand: with 2 groups, example n's group g is channels 2g and 2g + 1, 6 consecutive values
  std::vector<double> want(xv.size());
  for (size_t start = 0; start < xv.size(); start += 6) {
    double m = 0, v = 0;
    for (size_t i = 0; i < 6; ++i) m += xv[start + i] / 6;
    for (size_t i = 0; i < 6; ++i) v += (xv[start + i] - m) * (xv[start + i] - m) / 6;
    for (size_t i = 0; i < 6; ++i) want[start + i] = (xv[start + i] - m) / std::sqrt(v + 1e-5);
  }
  check_close(values(F::group_norm(x, 2)), want);
  // weight and bias per channel: element i is in channel (i / 3) % 4
  const std::vector<double> wv{0.5, 2, -1, 3}, bv{0, 1, -2, 0.25};
  std::vector<double> affine = want;
  for (size_t i = 0; i < affine.size(); ++i) affine[i] = want[i] * wv[i / 3 % 4] + bv[i / 3 % 4];
  const cr::Tensor w = cr::tensor(wv, {4}, cr::float64), b = cr::tensor(bv, {4}, cr::float64);
  check_close(values(F::group_norm(x, 2, w, b)), affine);
  check_close(values(F::group_norm(x, 2, {}, b)), [&] {
    std::vector<double> shifted = want;
    for (size_t i = 0; i < shifted.size(); ++i) shifted[i] += bv[i / 3 % 4];
    return shifted;
  }());
  // one group: layer_norm over [C, L]; C groups: each channel alone (instance normalisation)
  check_close(values(F::group_norm(x, 1)), values(F::layer_norm(x, {4, 3})));
  check_close(values(F::group_norm(x, 4)), values(F::layer_norm(x, {3})));
  // [N, C, H, W] and [N, C]; eps; float32 stays float32; an empty batch
  const cr::Tensor img = input({2, 4, 2, 3}, -2, 2, 52);
  check_close(values(F::group_norm(img, 2, {}, {}, 0.1)),
              values(F::layer_norm(img.reshape({2, 2, 12}), {12}, {}, {}, 0.1)));
  check_close(values(F::group_norm(img.reshape({2, 24}), 3)), values(F::layer_norm(img.reshape({2, 3, 8}), {8})));
  CHECK(F::group_norm(img.to(cr::float32), 2).dtype() == cr::float32);
  CHECK(F::group_norm(cr::zeros({0, 4, 3}, cr::float64), 2).shape() == cr::Shape{0, 4, 3});
}

TEST_CASE("group_norm: gradcheck and gradgradcheck of the input, weight and bias") {
  const cr::Tensor x = input({2, 6, 3}, -2, 2, 53), w = input({6}, 0.5, 2.0, 54), b = input({6}, -1, 1, 55);
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::group_norm(in[0], 3); }, {x});
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::group_norm(in[0], 2, in[1], in[2], 1e-3); },
                  {x, w, b});
  check_gradients([](const std::vector<cr::Tensor>& in) { return F::group_norm(in[0], 6, in[1]); },
                  {input({3, 6, 2, 2}, -1, 1, 56), w});
}

TEST_CASE("group_norm: errors name the op, the shapes and the dtypes") {
  const cr::Tensor x = input({2, 6, 3});
  check_error([&] { F::group_norm(x, 4); }, {"group_norm", "num_groups 4", "divide the 6 channels", "[2, 6, 3]"});
  check_error([&] { F::group_norm(x, 0); }, {"group_norm", "num_groups 0", "positive"});
  check_error([&] { F::group_norm(input({6}), 2); }, {"group_norm", "[6]", "[N, C"});
  check_error([&] { F::group_norm(cr::ones({2, 6}, cr::int64), 2); }, {"group_norm", "int64"});
  check_error([&] { F::group_norm(x, 2, cr::ones({3}, cr::float64)); }, {"group_norm", "weight", "[3]", "[6]"});
  check_error([&] { F::group_norm(x, 2, {}, cr::ones({6}, cr::float32)); }, {"group_norm", "bias", "float32", "float64"});
}

TEST_CASE("nn::GroupNorm: weight 1 and bias 0 to start, learnable; the same statistics in training and eval") {
  cr::nn::GroupNorm norm(2, 4, {.dtype = cr::float64});
  CHECK(values(norm.weight) == std::vector<double>(4, 1.0));
  CHECK(values(norm.bias) == std::vector<double>(4, 0.0));
  CHECK(norm.named_parameters().size() == 2);
  CHECK(norm.named_buffers().empty());
  CHECK(norm.repr() == "GroupNorm(2, 4, eps=1e-05, affine=true)");
  const cr::Tensor x = input({1, 4, 5}, -2, 2, 57);  // a batch of one, which BatchNorm refuses in training
  const cr::Tensor y = norm(x);
  check_close(values(y), values(F::group_norm(x, 2)));
  norm.eval();
  check_close(values(norm(x)), values(y));
  cr::sum(norm(x) * x).backward();
  CHECK(norm.weight.grad().defined());
  CHECK(norm.bias.grad().defined());
  cr::nn::GroupNorm plain(4, 4, {.eps = 0.5, .affine = false});
  CHECK(plain.parameters().empty());
  CHECK(plain.repr() == "GroupNorm(4, 4, eps=0.5, affine=false)");
  check_close(values(plain(x)), values(F::group_norm(x, 4, {}, {}, 0.5)));
  check_error([] { cr::nn::GroupNorm(3, 4); }, {"GroupNorm", "num_groups 3", "num_channels 4"});
  check_error([] { cr::nn::GroupNorm(0, 4); }, {"GroupNorm", "num_groups 0"});
  check_error([&] { (void)norm(input({2, 6, 3})); }, {"GroupNorm", "[2, 6, 3]", "C = 4", "GroupNorm(2, 4"});
  check_error([&] { (void)norm(input({4})); }, {"GroupNorm", "[4]", "[N, C, ...]"});
}

TEST_CASE("nn::BatchNorm2d: per-channel statistics over N, H, W of [N, C, H, W] images") {
  cr::nn::BatchNorm2d bn(3, {.dtype = cr::float64});
  CHECK(bn.repr() == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");
  CHECK(bn.named_buffers().size() == 3);
  const cr::Tensor x = input({2, 3, 2, 2}, -2, 2, 51);
  const cr::Tensor y = bn(x);
  // by hand: each channel's 8 values have mean 0 and (biased) variance 1 after, up to eps
  for (int64_t c = 0; c < 3; ++c) {
    const cr::Tensor ch = y.select(1, c);
    CHECK(cr::mean(ch).item<double>() == doctest::Approx(0).epsilon(1e-12).scale(1));
    CHECK(cr::var(ch, 0).item<double>() == doctest::Approx(1).epsilon(1e-4));
    // the running mean moved a tenth of the way to the channel's mean, the variance to its unbiased one
    const cr::Tensor xc = x.select(1, c);
    CHECK(values(bn.running_mean)[static_cast<size_t>(c)] == doctest::Approx(0.1 * cr::mean(xc).item<double>()));
    CHECK(values(bn.running_var)[static_cast<size_t>(c)] == doctest::Approx(0.9 + 0.1 * cr::var(xc).item<double>()));
  }
  check_close(values(y), values(F::batch_norm(x, {}, {}, {}, {}, true)));
  bn.eval();
  check_close(values(bn(x)), values(F::batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, false)));
  check_error([&] { bn(input({4, 3, 5})); }, {"BatchNorm2d", "[4, 3, 5]", "[N, C, H, W] with C = 3"});
  check_error([&] { bn(input({4, 2, 2, 2})); }, {"BatchNorm2d", "[4, 2, 2, 2]"});
  check_error([] { cr::nn::BatchNorm2d(-1); }, {"BatchNorm2d", "-1"});
}

TEST_CASE("nn::BatchNorm1d: momentum nullopt averages every batch equally; no running stats, no affine") {
  cr::nn::BatchNorm1d avg(2, {.momentum = std::nullopt, .dtype = cr::float64});
  CHECK(avg.repr() == "BatchNorm1d(2, eps=1e-05, momentum=None, affine=true, track_running_stats=true)");
  const cr::Tensor a = cr::tensor({1.0, 10, 2, 20, 6, 30}, {3, 2}, cr::float64);
  const cr::Tensor b = cr::tensor({0.0, 0, 4, -4}, {2, 2}, cr::float64);  // means 2, -2; unbiased variances 8, 8
  avg(a);
  check_close(values(avg.running_mean), {3, 20});  // the first batch's own (factor 1 / 1)
  check_close(values(avg.running_var), {7, 100});
  avg(b);
  check_close(values(avg.running_mean), {(3 + 2) / 2.0, (20 - 2) / 2.0});  // factor 1 / 2: the mean of both
  check_close(values(avg.running_var), {(7 + 8) / 2.0, (100 + 8) / 2.0});

  cr::nn::BatchNorm1d free(2, {.affine = false, .track_running_stats = false, .dtype = cr::float64});
  CHECK(free.parameters().empty());
  CHECK(free.named_buffers().empty());
  free.eval();  // without running statistics, batch statistics also in eval mode, as PyTorch's
  check_close(values(free(a)), values(F::batch_norm(a, {}, {}, {}, {}, true)));
}

TEST_CASE("module buffers: listed apart from parameters, named in the tree, converted by to(), checkpointed") {
  auto net = std::make_shared<cr::nn::Sequential>(std::vector<cr::nn::ModulePtr>{
      std::make_shared<cr::nn::Linear>(3, 2), std::make_shared<cr::nn::BatchNorm1d>(2)});
  CHECK(net->parameters().size() == 4);  // the optimizer's list: no buffers
  const auto names = net->named_buffers();
  REQUIRE(names.size() == 3);
  CHECK(names[0].first == "1.running_mean");
  CHECK(net->buffers().size() == 3);
  const auto state = net->state_dict();
  REQUIRE(state.size() == 7);
  CHECK(state[4].first == "1.running_mean");
  // to(float64) converts the floating buffers; the counter stays int64
  net->to(cr::float64);
  auto& bn = static_cast<cr::nn::BatchNorm1d&>(*(*net)[1]);
  CHECK(bn.running_mean.dtype() == cr::float64);
  CHECK(bn.num_batches_tracked.dtype() == cr::int64);
  // save and load carry the statistics
  net->forward(input({5, 3}));
  const std::string path = "test_normalization_buffers.crt";
  cr::nn::save(*net, path);
  const auto saved_mean = values(bn.running_mean);
  net->forward(input({5, 3}, -1, 3, 9));
  CHECK(values(bn.running_mean) != saved_mean);
  cr::nn::load(*net, path);
  CHECK(values(bn.running_mean) == saved_mean);
  CHECK(bn.num_batches_tracked.item<int64_t>() == 1);
  std::remove(path.c_str());
}

namespace {
struct WithBuffer : cr::nn::Module {
  WithBuffer() {
    register_parameter("w", cr::ones({2}));
    register_buffer("b", cr::zeros({2}));
  }
  cr::Tensor forward(const cr::Tensor& x) override { return x; }
  std::string repr() const override { return "WithBuffer"; }
  void add(const std::string& name, const cr::Tensor& t) { register_buffer(name, t); }
  void add_parameter(const std::string& name, const cr::Tensor& t) { register_parameter(name, t); }
};
}  // namespace

TEST_CASE("register_buffer: names unique among parameters and buffers, defined") {
  WithBuffer m;
  check_error([&] { m.add("w", cr::zeros({1})); }, {"register_buffer", "WithBuffer", "'w'"});
  check_error([&] { m.add("b", cr::zeros({1})); }, {"register_buffer", "WithBuffer", "'b'"});
  check_error([&] { m.add("a.b", cr::zeros({1})); }, {"register_buffer", "'a.b'"});
  check_error([&] { m.add("c", cr::Tensor()); }, {"register_buffer", "undefined"});
  check_error([&] { m.add_parameter("b", cr::zeros({1})); }, {"register_parameter", "WithBuffer", "'b'"});
}
