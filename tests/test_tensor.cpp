// Tensor basics: factories, dtypes, element access, randomness, printing.
#include "helpers.hpp"
#include <cmath>
#include <limits>

TEST_CASE("factories: values, shapes, dtypes") {
  CHECK(cr::zeros({2, 3}).dtype() == cr::float32);
  CHECK(values(cr::ones({2})) == std::vector<double>{1, 1});
  CHECK(values(cr::full({2}, 7.5, cr::float64)) == std::vector<double>{7.5, 7.5});
  CHECK(values(cr::arange(5)) == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(values(cr::arange(1, 2, 0.25, cr::float64)) == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(values(cr::linspace(0, 1, 5, cr::float64)) == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(values(cr::eye(2)) == std::vector<double>{1, 0, 0, 1});
  CHECK(cr::zeros_like(cr::ones({2, 2}, cr::float64)).dtype() == cr::float64);
  CHECK(values(cr::ones_like(cr::zeros({3}))) == std::vector<double>{1, 1, 1});
  CHECK(cr::tensor(2.5).dim() == 0);
  CHECK(cr::tensor({1, 2, 3}, {3}, cr::int64).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});
  CHECK(cr::tensor(std::vector<double>{1, 2}, {2, 1}).shape() == cr::Shape{2, 1});
  check_error([] { (void)cr::tensor({1, 2, 3}, {2, 2}); }, {"tensor", "3 values", "[2, 2]"});
  check_error([] { (void)cr::zeros({-1}); }, {"negative", "[-1]"});
  // found by the checkpoint fuzzer: a zero-size shape whose strides would overflow
  check_error([] { (void)cr::zeros({0, int64_t(1) << 40, int64_t(1) << 40}); }, {"too large", "[0, 1099511627776"});
  // empty() checks exactly only shapes whose dimensions' bit widths sum past 48: this one
  // (6 x 8 + 1 bits) takes that path and is still valid (255^6 < 2^48), so it is made.
  CHECK(cr::zeros({0, 255, 255, 255, 255, 255, 255}).numel() == 0);
  check_error([] { (void)cr::zeros({0, 257, 257, 257, 257, 257, 257}); }, {"too large", "[0, 257, 257"});
  check_error([] { (void)cr::zeros({2, -3}); }, {"negative", "[2, -3]"});
  check_error([] { (void)cr::arange(0, 1, 0); }, {"arange", "step=0"});
}

TEST_CASE("default dtype is float32 and settable") {
  CHECK(cr::default_dtype() == cr::float32);
  cr::set_default_dtype(cr::float64);
  CHECK(cr::zeros({1}).dtype() == cr::float64);
  CHECK(cr::tensor(1.0).dtype() == cr::float64);
  cr::set_default_dtype(cr::float32);
  check_error([] { cr::set_default_dtype(cr::int64); }, {"set_default_dtype", "int64"});
}

TEST_CASE("element access: item, data, to_vector") {
  cr::Tensor x = cr::arange(6, cr::float64).reshape({2, 3});
  CHECK(x.data<double>()[4] == 4);
  CHECK(x.t().to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(x[1][2].item<double>() == 5);
  CHECK(x[1][2].item<int64_t>() == 5);
  check_error([&] { (void)x.item<double>(); }, {"item", "[2, 3]"});
  check_error([&] { (void)x.data<float>(); }, {"data", "float64", "float32"});
  check_error([&] { (void)x.t().data<double>(); }, {"data", "contiguous"});
  check_error([] { (void)cr::Tensor().shape(); }, {"undefined"});
  CHECK(x.size(-1) == 3);
  CHECK(x.numel() == 6);
  CHECK(x.dim() == 2);
}

TEST_CASE("randomness is reproducible: manual_seed and Generator") {
  cr::manual_seed(123);
  const auto a = values(cr::rand({5}));
  cr::manual_seed(123);
  CHECK(values(cr::rand({5})) == a);
  cr::Generator g1(9), g2(9);
  CHECK(values(cr::randn({4}, cr::float64, &g1)) == values(cr::randn({4}, cr::float64, &g2)));
  for (double v : values(cr::rand({1000}, cr::float64, &g1))) {
    CHECK(v >= 0);
    CHECK(v < 1);
  }
  const auto r = cr::randint(-2, 3, {1000}, {}, &g1).to_vector<int64_t>();
  CHECK(*std::min_element(r.begin(), r.end()) == -2);
  CHECK(*std::max_element(r.begin(), r.end()) == 2);
  const auto n = values(cr::randn({20000}, cr::float64, &g1));
  double mean = 0, sq = 0;
  for (double v : n) mean += v / n.size();
  for (double v : n) sq += (v - mean) * (v - mean) / n.size();
  CHECK(std::abs(mean) < 0.03);
  CHECK(std::abs(sq - 1) < 0.05);
  check_error([] { (void)cr::randint(3, 3, {1}); }, {"randint", "low < high"});
}

TEST_CASE("printing tensors, shapes and dtypes with fmt") {
  CHECK(fmt::format("{}", cr::Shape{2, 3}) == "[2, 3]");
  CHECK(fmt::format("{}", cr::float64) == "float64");
  CHECK(fmt::format("{}", cr::tensor({1, 2.5}, {2})) == "tensor([1.0000, 2.5000])");
  CHECK(fmt::format("{}", cr::tensor({1, 2, 3, 4}, {2, 2}, cr::int64)) == "tensor([[1, 2],\n        [3, 4]], dtype=int64)");
  cr::Tensor w = cr::ones({2}, cr::float64).requires_grad_();
  CHECK(fmt::format("{}", w) == "tensor([1., 1.], dtype=float64, requires_grad=true)");  // whole floats as "1."
  CHECK(fmt::format("{}", w * 2.0).find("grad_fn=<MulBackward>") != std::string::npos);
  const std::string big = fmt::format("{}", cr::arange(2000));
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 200);
  CHECK(fmt::format("{}", cr::tensor(3.0)) == "tensor(3.)");
  // scientific notation when magnitudes are tiny, huge or far apart, as PyTorch (fixed notation
  // printed a gradient of 1e-7 as 0.000000); an empty tensor shows its shape
  CHECK(fmt::format("{}", cr::tensor({1e-7, -2e-7}, cr::float64)) == "tensor([ 1.000000e-07, -2.000000e-07], dtype=float64)");
  CHECK(fmt::format("{}", cr::tensor({0.5, 1e9})) == "tensor([5.0000e-01, 1.0000e+09])");
  CHECK(fmt::format("{}", cr::tensor({0.0, NAN, 0.5, 2.0})) == "tensor([0.0000,    nan, 0.5000, 2.0000])");
  CHECK(fmt::format("{}", cr::zeros({0, 3})) == "tensor([], size=[0, 3])");
  CHECK(fmt::format("{}", cr::zeros({0})) == "tensor([])");
  CHECK(cr::describe(cr::zeros({2, 3}, cr::float64)) == "[2, 3] float64");
}

TEST_CASE("printing lays tensors out as PyTorch does (strings from python3-torch 1.13's print)") {
  // columns padded to the widest element, whole floats as "3.", vectors wrapped at 80 columns,
  // a blank line between the blocks of a 3-d tensor, "..." past 1000 elements
  CHECK(fmt::format("{}", cr::tensor({1.0, 2.5, -3.0})) == "tensor([ 1.0000,  2.5000, -3.0000])");
  CHECK(fmt::format("{}", cr::tensor({NAN, INFINITY, -1.5})) == "tensor([    nan,     inf, -1.5000])");
  CHECK(fmt::format("{}", cr::arange(12).reshape({3, 4})) ==
        "tensor([[ 0.,  1.,  2.,  3.],\n        [ 4.,  5.,  6.,  7.],\n        [ 8.,  9., 10., 11.]])");
  CHECK(fmt::format("{}", cr::tensor({-0.0, 0.0})) == "tensor([-0., 0.])");
  // int64 beyond 2^53 prints exactly (it went through double: ...256 for ...267)
  CHECK(fmt::format("{}", cr::pow(cr::tensor({3, -1}, cr::int64), 39)) == "tensor([4052555153018976267,                  -1], dtype=int64)");
  CHECK(fmt::format("{}", cr::tensor({100.0, 200.0})) == "tensor([100., 200.])");
  CHECK(fmt::format("{}", cr::arange(30) * 0.5 + 0.25) ==
        "tensor([ 0.2500,  0.7500,  1.2500,  1.7500,  2.2500,  2.7500,  3.2500,  3.7500,\n"
        "         4.2500,  4.7500,  5.2500,  5.7500,  6.2500,  6.7500,  7.2500,  7.7500,\n"
        "         8.2500,  8.7500,  9.2500,  9.7500, 10.2500, 10.7500, 11.2500, 11.7500,\n"
        "        12.2500, 12.7500, 13.2500, 13.7500, 14.2500, 14.7500])");
  CHECK(fmt::format("{}", (cr::arange(8) - 4.0).reshape({2, 2, 2})) ==
        "tensor([[[-4., -3.],\n         [-2., -1.]],\n\n        [[ 0.,  1.],\n         [ 2.,  3.]]])");
  CHECK(fmt::format("{}", cr::arange(2000)) == "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])");
  CHECK(fmt::format("{}", cr::arange(2000).reshape({40, 50}) * 0.5).find(
            "tensor([[0.0000e+00, 5.0000e-01, 1.0000e+00,  ..., 2.3500e+01, 2.4000e+01,\n         2.4500e+01],\n") == 0);
}

TEST_CASE("gradcheck reports catch a wrong rule and say where") {
  // A deliberately wrong "square": forward x^2 but backward 3x (instead of 2x).
  auto wrong_square = [](const std::vector<cr::Tensor>& v) {
    cr::Tensor x = v[0];
    cr::Tensor out = (x * x).detach();
    return cr::record(out, "wrong_square", {x}, {x}, [](const cr::Tensor& g, const cr::BackwardContext& c) -> cr::Grads {
      return {g * c.saved(0) * 3.0};
    });
  };
  const auto report = cr::autograd::gradcheck(wrong_square, {input({3}, 1, 2)});
  CHECK_FALSE(report.ok);
  REQUIRE(report.inputs.size() == 1);
  CHECK(report.inputs[0].analytic == doctest::Approx(1.5 * report.inputs[0].numeric));
  CHECK(report.to_string().find("FAILED") != std::string::npos);
  CHECK(report.to_string().find("analytic") != std::string::npos);
  const auto good = cr::autograd::gradcheck([](const std::vector<cr::Tensor>& v) { return v[0] * v[0]; }, {input({3})});
  CHECK(good.ok);
  CHECK(good.inputs[0].max_abs_error < 1e-8);
  check_error([] { (void)cr::autograd::gradcheck([](const std::vector<cr::Tensor>& v) { return v[0]; },
                                                 {cr::ones({2}).requires_grad_()}); },
              {"gradcheck", "float64"});
  // A NaN tolerance passed every comparison (the wrong rule above was reported correct), a zero
  // or NaN step failed correct rules: the options are checked.
  for (const cr::autograd::GradcheckOptions bad : {cr::autograd::GradcheckOptions{.atol = NAN},
                                                   {.rtol = NAN}, {.atol = -1}, {.eps = 0}, {.eps = NAN}})
    check_error([&] { (void)cr::autograd::gradcheck(wrong_square, {input({3}, 1, 2)}, bad); },
                {"gradcheck", "eps > 0", "atol >= 0"});
  check_error([] { (void)cr::autograd::gradcheck([](const std::vector<cr::Tensor>&) { return cr::Tensor(); },
                                                 {input({2})}); },
              {"gradcheck", "undefined"});
  // A function that gives other values for the same inputs (dropout or random ops without a
  // fixed Generator) cannot be checked by finite differences: said so, with where and the fix
  // (it was reported as a wrong gradient of 8e5).
  check_error([] { (void)cr::autograd::gradcheck([](const std::vector<cr::Tensor>& v) {
                     return cr::nn::functional::dropout(v[0], 0.5); }, {input({6})}); },
              {"gradcheck", "not deterministic", "output element", "Generator"});
  {  // a fixed generator inside the function: the same mask on every call, so it checks
    const auto fixed = cr::autograd::gradcheck(
        [](const std::vector<cr::Tensor>& v) {
          cr::Generator g(1);
          return cr::nn::functional::dropout(v[0], 0.5, true, &g);
        },
        {input({6})});
    CHECK(fixed.ok);
  }
  // A NaN on either side is the largest error (std::max skipped it: "max abs err 0" on a failure).
  const auto nan_rule = cr::autograd::gradcheck(
      [](const std::vector<cr::Tensor>& v) {
        return cr::record((v[0] * 2.0).detach(), "nan_rule", {v[0]}, {},
                          [](const cr::Tensor& g, const cr::BackwardContext&) -> cr::Grads { return {g * NAN}; });
      },
      {input({3})});
  CHECK_FALSE(nan_rule.ok);
  CHECK(std::isnan(nan_rule.inputs[0].max_abs_error));
  CHECK(std::isnan(nan_rule.inputs[0].max_rel_error));
  CHECK(std::isnan(nan_rule.inputs[0].analytic));
}

TEST_CASE("a floating value int64 cannot hold is an Error in every conversion, not -2^63") {
  // static_cast of NaN, an infinity or a value beyond 2^63 to int64 is undefined behaviour;
  // on x86 it gave -9223372036854775808 silently.
  const double big = 1e30, inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  check_error([&] { (void)cr::tensor({1, big}, cr::int64); }, {"tensor", "1e+30", "int64"});
  check_error([&] { (void)cr::tensor(nan, cr::int64); }, {"tensor", "nan", "int64"});
  check_error([&] { (void)cr::full({2}, -inf, cr::int64); }, {"full", "-inf", "int64"});
  const cr::Tensor x = cr::tensor({1.5, -2.5, big}, cr::float64);
  check_error([&] { (void)x.to(cr::int64); }, {"to", "1e+30", "int64"});
  check_error([&] { (void)(x / 0.0).to(cr::int64); }, {"to", "inf", "int64"});
  check_error([&] { (void)x.t().to_vector<int64_t>(); }, {"to_vector", "1e+30"});
  {  // a tensor large enough to be split over threads: the helper's piece holds the NaN
    cr::Tensor big = cr::ones({1 << 20}, cr::float64);
    big.slice(0, (1 << 20) - 3, (1 << 20) - 2).fill_(nan);
    check_error([&] { (void)big.to_vector<int64_t>(); }, {"to_vector", "nan", "int64"});
    check_error([&] { (void)big.to(cr::int64); }, {"to", "nan", "int64"});
  }
  check_error([&] { (void)x.select(0, 2).item<int64_t>(); }, {"item", "1e+30"});
  check_error([&] { (void)cr::arange(1e19, 1e19 + 1e5, 1e4, cr::int64); }, {"arange", "int64"});
  check_error([&] { (void)cr::linspace(0, nan, 3, cr::int64); }, {"linspace", "nan"});
  check_error([&] { (void)cr::arange(1e30, cr::float32); }, {"arange", "too many"});
  cr::Tensor labels = cr::zeros({3}, cr::int64);
  check_error([&] { labels.copy_(x); }, {"to", "1e+30"});
  CHECK(values(labels) == std::vector<double>{0, 0, 0});  // the destination is left as it was
  // the conversions that fit truncate toward zero, as static_cast (and PyTorch) do
  const cr::Tensor fits = cr::tensor({1.5, -2.5, -0x1p63, 0x1p62}, cr::float64);
  CHECK(fits.to(cr::int64).to_vector<int64_t>() ==
        std::vector<int64_t>{1, -2, std::numeric_limits<int64_t>::min(), int64_t(1) << 62});
  CHECK(fits.to_vector<int64_t>()[1] == -2);
  CHECK(cr::tensor(-2.9).item<int64_t>() == -2);
  CHECK(cr::arange(0, 10, 4, cr::int64).to_vector<int64_t>() == std::vector<int64_t>{0, 4, 8});
  CHECK(cr::full({1}, 7.9, cr::int64).item<int64_t>() == 7);
}

TEST_CASE("in-place ops read an operand that overlaps the target as it was; an expanded target is an Error") {
  // t[1:].add_(t[:-1]) read elements the loop had already written: [0, 1, 3, 6] (a running sum)
  // instead of [0, 1, 3, 5]; copy_ the other way round smeared t[0] over the whole slice.
  for (const cr::Dtype dt : {cr::float32, cr::float64, cr::int64}) {
    CAPTURE(dt);
    cr::Tensor t = cr::arange(4.0).to(dt);
    t.slice(0, 1, 4).add_(t.slice(0, 0, 3));
    CHECK(values(t) == std::vector<double>{0, 1, 3, 5});
    cr::Tensor u = cr::arange(4.0).to(dt);
    u.slice(0, 1, 4).copy_(u.slice(0, 0, 3));
    CHECK(values(u) == std::vector<double>{0, 0, 1, 2});
    cr::Tensor v = cr::arange(4.0).to(dt);
    v.slice(0, 0, 3).mul_(v.slice(0, 1, 4));
    CHECK(values(v) == std::vector<double>{0, 2, 6, 3});
    cr::Tensor m = cr::arange(4.0).to(dt).reshape({2, 2});
    m.copy_(m.t());  // a transpose of itself: same memory, another order
    CHECK(values(m) == std::vector<double>{0, 2, 1, 3});
    cr::Tensor w = cr::arange(4.0).to(dt);
    w.add_(w);  // the same view: element for element, no copy needed
    CHECK(values(w) == std::vector<double>{0, 2, 4, 6});
  }
  // an expanded target: which row's value would land in the shared memory depends on the loop
  cr::Tensor e = cr::zeros({1, 3}).expand({2, 3});
  check_error([&] { e.add_(cr::tensor({1, 1, 1, 2, 2, 2}, {2, 3})); }, {"add_", "[2, 3] float32", "expanded", "clone()"});
  check_error([&] { e.fill_(1.0); }, {"fill_", "expanded"});
  check_error([&] { e.copy_(cr::ones({2, 3})); }, {"copy_", "expanded"});
  cr::Tensor f = cr::zeros({1, 3}).expand({1, 3});  // stride 0 on a size-1 dim is harmless
  f.add_(1.0);
  CHECK(values(f) == std::vector<double>{1, 1, 1});
}

TEST_CASE("in-place ops on int64 tensors: a floating result is an Error, not truncated") {
  // int64 += 0.5 left the tensor unchanged, div_ by 2 gave 0, alpha 0.5 was cast to 0
  cr::Tensor a = cr::tensor({1, 2}, cr::int64);
  check_error([&] { a.add_(cr::full({2}, 0.5)); }, {"add_", "float32", "int64", "[2] int64"});
  check_error([&] { a.add_(0.5); }, {"add_", "int64"});
  check_error([&] { a.mul_(1e30); }, {"mul_", "int64"});
  check_error([&] { a.div_(2.0); }, {"div_", "int64"});
  check_error([&] { a.div_(cr::tensor({2, 2}, cr::int64)); }, {"div_", "int64"});  // true division
  check_error([&] { a.sub_(cr::full({2}, 1.0, cr::float64)); }, {"sub_", "float64"});
  check_error([&] { a.add_(cr::tensor({1, 1}, cr::int64), 0.5); }, {"add_", "alpha 0.5", "whole"});
  CHECK(values(a) == std::vector<double>{1, 2});  // untouched by the failed ops
  // whole-number operations stay in int64, contiguous or not
  a.add_(cr::tensor({10, 20}, cr::int64), 2.0);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{21, 42});
  cr::Tensor m = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::int64).t();  // not contiguous: the general path
  m.add_(cr::tensor({1, 1}, cr::int64), -3.0);
  CHECK(m.to_vector<int64_t>() == std::vector<int64_t>{-2, 0, -1, 1});
  a.mul_(cr::tensor({2, 3}, cr::int64)).sub_(cr::tensor({1, 1}, cr::int64));
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{41, 125});
  a.fill_(7.0);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{7, 7});
  a.copy_(cr::full({2}, 2.9));  // copy_ converts, as PyTorch's does
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{2, 2});
  // Out of place, the scalar's C++ type decides, as in PyTorch's C++ frontend: an integer keeps
  // int64, a double goes to the default floating dtype whatever its value (a * 3.0 was int64
  // and a * 3.5 float32, so a runtime scale of 1.0 changed the result's dtype).
  CHECK((a * 3).dtype() == cr::int64);
  CHECK((a * 3).to_vector<int64_t>() == std::vector<int64_t>{6, 6});
  CHECK((3 * a).dtype() == cr::int64);
  CHECK((a + int64_t{1}).to_vector<int64_t>() == std::vector<int64_t>{3, 3});
  CHECK((10 - a).to_vector<int64_t>() == std::vector<int64_t>{8, 8});
  CHECK((a - 1L).dtype() == cr::int64);
  CHECK((a / 4).dtype() == cr::float32);  // true division
  CHECK((a / 4).to_vector<double>() == std::vector<double>{0.5, 0.5});
  for (double scale : {3.0, 1.0, 3.5, 0.0}) {
    CAPTURE(scale);
    CHECK((a * scale).dtype() == cr::float32);
    CHECK((scale * a).dtype() == cr::float32);
    CHECK((a + scale).dtype() == cr::float32);
    CHECK((scale - a).dtype() == cr::float32);
    CHECK((a * scale).to_vector<double>() == std::vector<double>{2 * scale, 2 * scale});
  }
  cr::set_default_dtype(cr::float64);
  CHECK((a * 3.0).dtype() == cr::float64);
  cr::set_default_dtype(cr::float32);
  // A floating tensor keeps its dtype with either scalar.
  CHECK((cr::full({2}, 1.5, cr::float64) * 2).dtype() == cr::float64);
  CHECK((cr::full({2}, 1.5) * 2).to_vector<double>() == std::vector<double>{3, 3});
  // Comparisons compare the values exactly: 2^24 + 1 is not rounded to a float32 2^24.
  const cr::Tensor big = cr::tensor({16777217.0}, cr::int64);
  CHECK((big == 16777216.0).item<double>() == 0);
  CHECK((big > 16777216.0).item<double>() == 1);
  CHECK((a * 1e30).dtype() == cr::float32);
  CHECK((a * 1e30).to_vector<double>()[0] == doctest::Approx(2e30));
  CHECK((a + std::numeric_limits<double>::infinity()).dtype() == cr::float32);
}
