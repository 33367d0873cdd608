// Convolution and pooling: unfold against a hand-built im2col, conv2d (groups too) against a direct loop,
// 1-d and 2-d pooling by hand, gradients by gradcheck (first and second order), the modules, and errors.
#include "helpers.hpp"

#include <cblas.h>

#include <cmath>

namespace F = cr::nn::functional;
using V = const std::vector<cr::Tensor>&;

namespace {
// conv2d written as its definition: out[n, o, y, x] = b[o] + sum_{c, i, j} w[o, c, i, j] *
// in[n, c, y s + i d - p, x s + j d - p] (0 outside), in plain loops.
// With groups, output channel o sees input channels g C/G .. (g + 1) C/G - 1 of its group g = o / (O/G).
std::vector<double> direct_conv(const cr::Tensor& x, const cr::Tensor& w, const cr::Tensor& b, F::Size2 s, F::Size2 p,
                                F::Size2 d, int64_t groups = 1) {
  const auto xv = values(x), wv = values(w);
  const int64_t n = x.size(0), h = x.size(2), wd = x.size(3);
  const int64_t o = w.size(0), c = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1, ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
  std::vector<double> out;
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t oi = 0; oi < o; ++oi)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xx = 0; xx < ow; ++xx) {
          double acc = b.defined() ? values(b)[oi] : 0.0;
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t r = y * s[0] + i * d[0] - p[0], q = xx * s[1] + j * d[1] - p[1];
                if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                const int64_t xc = oi / (o / groups) * c + ci;  // the input channel
                acc += wv[((oi * c + ci) * kh + i) * kw + j] * xv[((ni * x.size(1) + xc) * h + r) * wd + q];
              }
          out.push_back(acc);
        }
  return out;
}

// conv2d with stride 1 and padding 1 written as unfold and a batched matmul per group: the
// reference for the tests of blocks and parts of a batch.
cr::Tensor conv_by_unfold(const cr::Tensor& x, const cr::Tensor& w, int64_t groups) {
  const F::Size2 one{1, 1};
  const int64_t n = x.size(0), o = w.size(0), oh = x.size(2) + 3 - w.size(2), ow = x.size(3) + 3 - w.size(3);
  const cr::Tensor cols = F::unfold(x, {w.size(2), w.size(3)}, one, one, one).reshape({n, groups, -1, oh * ow});
  return cr::matmul(w.reshape({groups, o / groups, -1}), cols).reshape({n, o, oh, ow});
}
}  // namespace

TEST_CASE("unfold: the sliding blocks as columns, as torch.nn.functional.unfold") {
  const cr::Tensor x = cr::arange(1.0, 10.0, 1.0, cr::float64).reshape({1, 1, 3, 3});
  const cr::Tensor cols = F::unfold(x, {2, 2});
  CHECK(cols.shape() == cr::Shape{1, 4, 4});
  // rows: the kernel positions (0,0) (0,1) (1,0) (1,1); columns: the block positions, row-major
  CHECK(values(cols) == std::vector<double>{1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9});
  const cr::Tensor padded = F::unfold(x, {3, 3}, {1, 1}, {1, 1}, {2, 2});  // 2x2 positions, zeros outside
  CHECK(padded.shape() == cr::Shape{1, 9, 4});
  CHECK(values(padded.select(1, 4)) == std::vector<double>{1, 3, 7, 9});  // the centre of each block
  CHECK(values(padded.select(1, 0)) == std::vector<double>{0, 0, 0, 5});
  CHECK(values(F::unfold(x, {2, 2}, {2, 2}).reshape({-1})) == std::vector<double>{1, 3, 7, 9});  // dilation 2
}

TEST_CASE("unfold and its gradient (fold) against plain loops, large enough to split between threads") {
  // unfold_into and fold_add_into: stride, dilation and padding in both dims, positions outside
  // the input, the rows split between threads; the gradient of sum(unfold(x) * r) is each r
  // added at the position its column element was read from.
  const int64_t n = 3, c = 16, h = 61, wd = 58, kh = 3, kw = 2;  // 178,560 column elements
  const F::Size2 dil{2, 1}, pad{2, 1}, st{2, 3};
  const int64_t oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) / st[0] + 1,
                ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) / st[1] + 1;
  const cr::Tensor x = (cr::arange(static_cast<double>(n * c * h * wd), cr::float32).reshape({n, c, h, wd}) * 0.25)
                           .requires_grad_();
  const cr::Tensor cols = F::unfold(x, {kh, kw}, dil, pad, st);
  REQUIRE(cols.shape() == cr::Shape{n, c * kh * kw, oh * ow});
  const cr::Tensor r = cr::arange(static_cast<double>(cols.numel()), cr::float32).reshape(cols.shape()) * 0.5;
  cr::sum(cols * r).backward();
  const std::vector<double> xs = values(x), cs = values(cols), rs = values(r), gs = values(x.grad());
  std::vector<double> grad(xs.size(), 0.0);
  bool same = true;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j)
          for (int64_t y = 0; y < oh; ++y)
            for (int64_t xx = 0; xx < ow; ++xx) {
              const int64_t row = (ch * kh + i) * kw + j, at = (b * c * kh * kw + row) * oh * ow + y * ow + xx;
              const int64_t py = y * st[0] + i * dil[0] - pad[0], px = xx * st[1] + j * dil[1] - pad[1];
              const bool in = py >= 0 && py < h && px >= 0 && px < wd;
              const auto from = static_cast<size_t>(((b * c + ch) * h + py) * wd + px);
              same = same && cs[static_cast<size_t>(at)] == (in ? xs[from] : 0.0);
              if (in) grad[from] += rs[static_cast<size_t>(at)];
            }
  CHECK(same);
  CHECK(gs == grad);  // sums of at most 6 products of exact halves in float32: exact
}

TEST_CASE("conv2d equals its definition (stride, padding, dilation, bias, several channels)") {
  const cr::Tensor x = input({2, 3, 5, 6}, -1, 1, 11), w = input({4, 3, 3, 2}, -1, 1, 12), b = input({4}, -1, 1, 13);
  for (const auto& sizes : std::vector<std::tuple<F::Size2, F::Size2, F::Size2>>{
           {{1, 1}, {0, 0}, {1, 1}}, {{2, 1}, {1, 2}, {1, 1}}, {{1, 2}, {2, 0}, {2, 1}}, {{3, 3}, {1, 1}, {1, 2}}}) {
    const F::Size2 &s = std::get<0>(sizes), &p = std::get<1>(sizes), &d = std::get<2>(sizes);  // (CAPTURE: no binding)
    CAPTURE(s[0]);
    CAPTURE(p[0]);
    CAPTURE(d[0]);
    const cr::Tensor y = F::conv2d(x, w, b, s, p, d);
    const auto expected = direct_conv(x, w, b, s, p, d);
    const auto got = values(y);
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  }
  CHECK(F::conv2d(x, w, {}, {2, 1}, {1, 2}).shape() == cr::Shape{2, 4, 3, 9});
  // the bias is written into the output before the product adds onto it, in the one recorded op
  // (it was an add after): the same values here, and the bias's gradient is g summed over N, H, W
  const cr::Tensor yb = F::conv2d(x, w, b);
  CHECK(values(F::conv2d(x, w) + b.reshape({1, 4, 1, 1})) == values(yb));
  CHECK(yb.grad_fn()->name == std::string("conv2d"));
  const cr::Tensor gy = input(yb.shape(), -1, 1, 16).detach();
  CHECK(cr::allclose(cr::autograd::grad({cr::sum(yb * gy)}, {b})[0], cr::sum(gy, cr::Shape{0, 2, 3}), 1e-14, 1e-14));
  // an unbatched [C, H, W] input gives [O, H', W'], as PyTorch's
  CHECK(values(F::conv2d(x.select(0, 1), w, b)) == values(F::conv2d(x, w, b).select(0, 1)));
  // conv1d is conv2d over a height of 1
  const cr::Tensor x1 = input({2, 3, 7}, -1, 1, 14), w1 = input({2, 3, 3}, -1, 1, 15);
  CHECK(values(F::conv1d(x1, w1, {}, 2, 1, 1)) ==
        values(F::conv2d(x1.unsqueeze(2), w1.unsqueeze(2), {}, {1, 2}, {0, 1}).squeeze(2)));
}

TEST_CASE("grouped convolution (groups, depthwise) equals its definition; conv1d with groups") {
  const cr::Tensor x = input({2, 4, 5, 5}, -1, 1, 16), b = input({6}, -1, 1, 17);
  for (const auto& c : {std::pair{input({6, 2, 3, 3}, -1, 1, 18), int64_t{2}},
                        std::pair{input({4, 1, 2, 3}, -1, 1, 19), int64_t{4}},  // depthwise
                        std::pair{input({6, 4, 3, 3}, -1, 1, 20), int64_t{1}}}) {
    const cr::Tensor& w = c.first;  // (not a structured binding: CAPTURE captures it)
    const int64_t groups = c.second;
    CAPTURE(groups);
    const cr::Tensor bias = b.narrow(0, 0, w.size(0));
    const auto expected = direct_conv(x, w, bias, {2, 1}, {1, 1}, {1, 1}, groups);
    const auto got = values(F::conv2d(x, w, bias, {2, 1}, {1, 1}, {1, 1}, groups));
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  }
  // groups = 2 is two convolutions side by side
  const cr::Tensor w = input({6, 2, 3, 3}, -1, 1, 18);
  const cr::Tensor halves = cr::cat({F::conv2d(x.narrow(1, 0, 2), w.narrow(0, 0, 3)),
                                     F::conv2d(x.narrow(1, 2, 2), w.narrow(0, 3, 3))}, 1);
  const auto grouped = values(F::conv2d(x, w, {}, {1, 1}, {0, 0}, {1, 1}, 2)), split = values(halves);
  for (size_t i = 0; i < split.size(); ++i) CHECK(grouped[i] == doctest::Approx(split[i]).epsilon(1e-12));
  const cr::Tensor x1 = input({2, 4, 7}, -1, 1, 24), w1 = input({2, 2, 3}, -1, 1, 25);
  CHECK(values(F::conv1d(x1, w1, {}, 1, 1, 2, 2)) ==
        values(F::conv2d(x1.unsqueeze(2), w1.unsqueeze(2), {}, {1, 1}, {0, 1}, {1, 2}, 2).squeeze(2)));
}

TEST_CASE("conv2d is one node that goes block by block of samples: gradients against plain loops") {
  // The gradients of sum(conv2d(x, w) * r): x's is each r w added at the position its product
  // read x from, w's each r x. A batch of 3 (weight's gradient accumulated over samples), 2
  // groups, stride, dilation and padding, GEMMs large enough for BLAS (3 x 99 x 18 per group).
  const int64_t n = 3, c = 4, h = 9, wd = 12, o = 6, groups = 2, kh = 3, kw = 3;
  const F::Size2 st{1, 1}, pad{1, 2}, dil{1, 2};
  const cr::Tensor x = input({n, c, h, wd}, -1, 1, 31), w = input({o, c / groups, kh, kw}, -1, 1, 32);
  const cr::Tensor y = F::conv2d(x, w, {}, st, pad, dil, groups);
  CHECK(y.grad_fn()->name == std::string("conv2d"));  // not unfold's columns and a batched matmul
  const int64_t oh = y.size(2), ow = y.size(3);
  const cr::Tensor r = input(y.shape(), -1, 1, 33).detach();
  cr::sum(y * r).backward();
  const auto xv = values(x), wv = values(w), rv = values(r);
  std::vector<double> gx(xv.size(), 0.0), gw(wv.size(), 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oi = 0; oi < o; ++oi)
      for (int64_t ci = 0; ci < c / groups; ++ci)
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j)
            for (int64_t yy = 0; yy < oh; ++yy)
              for (int64_t xx = 0; xx < ow; ++xx) {
                const int64_t py = yy * st[0] + i * dil[0] - pad[0], px = xx * st[1] + j * dil[1] - pad[1];
                if (py < 0 || py >= h || px < 0 || px >= wd) continue;
                const int64_t xc = oi / (o / groups) * (c / groups) + ci;  // the input channel
                const auto at = static_cast<size_t>(((b * c + xc) * h + py) * wd + px);
                const auto wi = static_cast<size_t>(((oi * (c / groups) + ci) * kh + i) * kw + j);
                const double g = rv[static_cast<size_t>(((b * o + oi) * oh + yy) * ow + xx)];
                gx[at] += g * wv[wi];
                gw[wi] += g * xv[at];
              }
  const auto got_x = values(x.grad()), got_w = values(w.grad());
  for (size_t i = 0; i < gx.size(); ++i) CHECK(got_x[i] == doctest::Approx(gx[i]).epsilon(1e-12));
  for (size_t i = 0; i < gw.size(); ++i) CHECK(got_w[i] == doctest::Approx(gw[i]).epsilon(1e-12));
  // float32, and operands that are views (a transposed input, a permuted weight): the same within rounding
  const cr::Tensor xt = x.detach().to(cr::float32).transpose(2, 3).contiguous().transpose(2, 3).requires_grad_();
  const cr::Tensor wt =
      w.detach().to(cr::float32).permute({1, 0, 2, 3}).contiguous().permute({1, 0, 2, 3}).requires_grad_();
  REQUIRE_FALSE(xt.is_contiguous());
  REQUIRE_FALSE(wt.is_contiguous());
  cr::sum(F::conv2d(xt, wt, {}, st, pad, dil, groups) * r.to(cr::float32)).backward();
  const auto got_x32 = values(xt.grad()), got_w32 = values(wt.grad());
  for (size_t i = 0; i < gx.size(); ++i) CHECK(got_x32[i] == doctest::Approx(gx[i]).epsilon(1e-4).scale(1));
  for (size_t i = 0; i < gw.size(); ++i) CHECK(got_w32[i] == doctest::Approx(gw[i]).epsilon(1e-4).scale(1));
  // an empty batch: an empty output, x's gradient empty and weight's zero
  const cr::Tensor none = cr::zeros({0, c, h, wd}, cr::float64).requires_grad_();
  const cr::Tensor w0 = w.detach().clone().requires_grad_();
  cr::sum(F::conv2d(none, w0, {}, st, pad, dil, groups)).backward();
  CHECK(none.grad().shape() == none.shape());
  CHECK(w0.grad().shape() == w0.shape());
  CHECK(values(w0.grad()) == std::vector<double>(wv.size(), 0.0));
  // one dtype for input and weight
  check_error([&] { (void)F::conv2d(x, wt, {}, st, pad, dil, groups); },
              {"conv2d", "dtype", "[3, 4, 9, 12]", "float32"});
  // Samples whose columns take 720 KiB (4 x 9 x 2,560 float64): a block of one sample on 1
  // thread, of two on 2 (the last block then partial), against the same convolution written as
  // unfold and a batched matmul, values and both gradients.
  const cr::Tensor big = input({n, c, 40, 64}, -1, 1, 34);
  const F::Size2 one{1, 1};
  const cr::Tensor rb = input({n, o, 40, 64}, -1, 1, 35).detach();
  const cr::Tensor expected_y = conv_by_unfold(big, w, groups);
  const auto expected = cr::autograd::grad({cr::sum(expected_y * rb)}, {big, w});
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const Threads scope(threads);
    const cr::Tensor yb = F::conv2d(big, w, {}, one, one, one, groups);
    const auto got = cr::autograd::grad({cr::sum(yb * rb)}, {big, w});
    CHECK(cr::allclose(yb, expected_y, 1e-12, 1e-14));
    CHECK(cr::allclose(got[0], expected[0], 1e-12, 1e-14));
    CHECK(cr::allclose(got[1], expected[1], 1e-12, 1e-14));
  }
}

TEST_CASE("conv2d shares a batch's parts between threads: the same bits on 1 and 2 threads, BLAS's threads restored") {
  // 12 samples in 8 parts (of 1 and 2 samples), each sample's float32 columns over 512 KiB (a
  // block of one sample, so a part of two goes in two blocks): on 2 threads the parts are shared
  // and each runs its GEMMs on one OpenBLAS thread. Weight's gradient adds the parts' sums in
  // their order whatever the thread count, so the bits do not change (a sum per thread would).
  const int64_t n = 12, c = 4, o = 6, groups = 2;
  const F::Size2 one{1, 1};
  const cr::Tensor x = input({n, c, 64, 64}, -1, 1, 36).to(cr::float32).detach().requires_grad_();
  const cr::Tensor w = input({o, c / groups, 3, 3}, -1, 1, 37).to(cr::float32).detach().requires_grad_();
  const cr::Tensor r = input({n, o, 64, 64}, -1, 1, 38).to(cr::float32).detach();
  // the reference: unfold and a batched matmul in float64
  const cr::Tensor x64 = x.detach().to(cr::float64).requires_grad_(), w64 = w.detach().to(cr::float64).requires_grad_();
  const cr::Tensor y64 = conv_by_unfold(x64, w64, groups);
  const auto expected = cr::autograd::grad({cr::sum(y64 * r.to(cr::float64))}, {x64, w64});
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const Threads scope(threads);
    const cr::Tensor y = F::conv2d(x, w, {}, one, one, one, groups);
    const auto got = cr::autograd::grad({cr::sum(y * r)}, {x, w});
    CHECK(cr::get_num_threads() == threads);
    CHECK(openblas_get_num_threads() == threads);
    CHECK(cr::allclose(y.to(cr::float64), y64, 1e-5, 1e-5));
    CHECK(cr::allclose(got[0].to(cr::float64), expected[0], 1e-5, 1e-5));
    CHECK(cr::allclose(got[1].to(cr::float64), expected[1], 1e-4, 1e-2));  // sums of 49,152 products
    for (const cr::Tensor& t : {y, got[0], got[1]}) runs.push_back(t.to_vector<float>());
  }
  CHECK(runs[0] == runs[3]);  // y
  CHECK(runs[1] == runs[4]);  // x's gradient
  CHECK(runs[2] == runs[5]);  // weight's gradient
}

TEST_CASE("max_pool1d and avg_pool1d by hand, on [N, C, L] and [C, L]") {
  const cr::Tensor x = cr::tensor({1, 3, 2, 5, 4, 0, -1, 6}, {1, 2, 4}, cr::float64);
  CHECK(values(F::max_pool1d(x, 2)) == std::vector<double>{3, 5, 4, 6});
  CHECK(values(F::avg_pool1d(x, 2)) == std::vector<double>{2, 3.5, 2, 2.5});
  CHECK(F::max_pool1d(x, 2).shape() == cr::Shape{1, 2, 2});
  CHECK(values(F::max_pool1d(x.select(0, 0), 3, 1)) == std::vector<double>{3, 5, 4, 6});  // [C, L]
  CHECK(F::max_pool1d(x.select(0, 0), 3, 1).shape() == cr::Shape{2, 2});
  // padding 1: -inf for max, zeros counted in the mean
  CHECK(values(F::max_pool1d(x, 2, 2, 1)) == std::vector<double>{1, 3, 5, 4, 0, 6});
  CHECK(values(F::avg_pool1d(x, 3, 1, 1)) ==
        std::vector<double>{4.0 / 3, 2, 10.0 / 3, 7.0 / 3, 4.0 / 3, 1, 5.0 / 3, 5.0 / 3});
}

TEST_CASE("max_pool2d and avg_pool2d by hand") {
  const cr::Tensor x = cr::tensor({1, 5, 2, 0, 3, 4, 7, 1, 6, 2, 8, 3, 0, 9, 1, 2}, {1, 1, 4, 4}, cr::float64);
  CHECK(values(F::max_pool2d(x, {2, 2})) == std::vector<double>{5, 7, 9, 8});
  CHECK(values(F::avg_pool2d(x, {2, 2})) == std::vector<double>{13.0 / 4, 10.0 / 4, 17.0 / 4, 14.0 / 4});
  CHECK(values(F::max_pool2d(x, {3, 3}, F::Size2{1, 1})) == std::vector<double>{8, 8, 9, 9});
  // padding: -inf for max, zeros counted for avg (count_include_pad)
  CHECK(values(F::max_pool2d(x, {2, 2}, F::Size2{2, 2}, {1, 1})) == std::vector<double>{1, 5, 0, 6, 8, 3, 0, 9, 2});
  CHECK(values(F::avg_pool2d(x, {2, 2}, F::Size2{2, 2}, {1, 1})).front() == 0.25);
  // the gradient of max goes to the first maximum of each window; avg spreads 1/k
  cr::Tensor t = cr::tensor({1, 3, 3, 0}, {1, 1, 2, 2}, cr::float64).requires_grad_();
  cr::sum(F::max_pool2d(t, {2, 2})).backward();
  CHECK(values(t.grad()) == std::vector<double>{0, 1, 0, 0});
  t.set_grad({});
  cr::sum(F::avg_pool2d(t, {2, 2})).backward();
  CHECK(values(t.grad()) == std::vector<double>{0.25, 0.25, 0.25, 0.25});
}

TEST_CASE("max_pool2d finds each window's maximum as PyTorch does and gathers it: NaN, -inf windows, threads") {
  // values and gradients from torch 1.13: F.max_pool2d(x, 2) and F.max_pool2d(x, 2, 2, 1), then
  // backward of g = [1 .. 4] and [1 .. 9]. A NaN wins over any number and a later NaN over an
  // earlier one; a window of -inf passes its gradient to its first position inside x (before,
  // the second window gave it to the first NaN, and the padded -inf windows to the padding).
  const double nan = std::nan(""), inf = INFINITY;
  const cr::Tensor x =
      cr::tensor({nan, 1, 2, nan, nan, 0, -1, 5, -inf, -inf, 4, 4, -inf, -inf, 4, 1}, {1, 1, 4, 4}, cr::float64)
          .requires_grad_();
  const cr::Tensor y = F::max_pool2d(x, {2, 2});
  CHECK(same_values(values(y), {nan, nan, -inf, 4}));
  const cr::Tensor g4 = cr::arange(1.0, 5.0, 1.0, cr::float64).reshape({1, 1, 2, 2});
  CHECK(values(cr::autograd::grad({cr::sum(y * g4)}, {x})[0]) ==
        std::vector<double>{0, 0, 0, 2, 1, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0});
  const cr::Tensor padded = F::max_pool2d(x, {2, 2}, F::Size2{2, 2}, {1, 1});
  CHECK(same_values(values(padded), {nan, 2, nan, nan, 4, 5, -inf, 4, 1}));
  const cr::Tensor g9 = cr::arange(1.0, 10.0, 1.0, cr::float64).reshape({1, 1, 3, 3});
  CHECK(values(cr::autograd::grad({cr::sum(padded * g9)}, {x})[0]) ==
        std::vector<double>{1, 0, 2, 3, 4, 0, 0, 6, 0, 0, 5, 0, 7, 0, 8, 9});
  // Planes split between threads: the same values and gradients as the maxima of unfold's
  // windows (distinct values, so no ties), on 1 and 2 threads; a transposed (non-contiguous) input
  const cr::Tensor big = input({8, 16, 30, 30}, -1, 1, 47), r = input({8, 16, 15, 15}, -1, 1, 48).detach();
  const cr::Tensor windows = F::unfold(big, {2, 2}, {1, 1}, {0, 0}, {2, 2}).reshape({8, 16, 4, -1});
  const cr::Tensor expected = cr::max(windows, 2).values.reshape({8, 16, 15, 15});
  const cr::Tensor expected_grad = cr::autograd::grad({cr::sum(expected * r)}, {big})[0];
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const Threads scope(threads);
    const cr::Tensor got = F::max_pool2d(big, {2, 2});
    CHECK(values(got) == values(expected));
    CHECK(values(cr::autograd::grad({cr::sum(got * r)}, {big})[0]) == values(expected_grad));
    const cr::Tensor t = big.transpose(2, 3);
    CHECK(values(F::max_pool2d(t, {2, 2})) == values(F::max_pool2d(t.contiguous(), {2, 2})));
  }
}

TEST_CASE("pooling with ceil_mode and count_include_pad=false: the values torch 1.13 gives") {
  const cr::Tensor x = cr::arange(1.0, 21.0, 1.0, cr::float64).reshape({1, 1, 4, 5});
  // ceil_mode: a last window that overhangs the input is kept (the overhang adds nothing)
  CHECK(values(F::max_pool2d(x, {2, 2}, std::nullopt, {0, 0}, true)) == std::vector<double>{7, 9, 10, 17, 19, 20});
  CHECK(values(F::avg_pool2d(x, {2, 2}, std::nullopt, {0, 0}, true)) == std::vector<double>{4, 6, 7.5, 14, 16, 17.5});
  CHECK(F::max_pool2d(x, {2, 2}).shape() == cr::Shape{1, 1, 2, 2});  // floor without it
  // count_include_pad=false divides by the window's positions inside the input
  CHECK(values(F::avg_pool2d(x, {3, 3}, F::Size2{2, 2}, {1, 1}, false, false)) ==
        std::vector<double>{4, 5.5, 7, 11.5, 13, 14.5});
  // both: the padding counts (count_include_pad) but not the overhang past it
  const cr::Tensor both = F::avg_pool2d(x, {3, 3}, F::Size2{2, 2}, {1, 1}, true);
  CHECK(both.shape() == cr::Shape{1, 1, 3, 3});
  const std::vector<double> want{16 / 9.0, 33 / 9.0, 28 / 9.0, 69 / 9.0, 13, 87 / 9.0, 33 / 6.0, 54 / 6.0, 39 / 6.0};
  for (size_t i = 0; i < want.size(); ++i) CHECK(values(both)[i] == doctest::Approx(want[i]).epsilon(1e-14));
  CHECK(values(F::avg_pool2d(x, {3, 3}, F::Size2{2, 2}, {1, 1}, true, false)) ==
        std::vector<double>{4, 5.5, 7, 11.5, 13, 14.5, 16.5, 18, 19.5});
  // 1-d; a window may not start past the input and its left padding (5 into windows of 3, stride 3)
  const cr::Tensor line = cr::arange(1.0, 6.0, 1.0, cr::float64).reshape({1, 1, 5});
  CHECK(values(F::max_pool1d(line, 2, std::nullopt, 0, true)) == std::vector<double>{2, 4, 5});
  CHECK(values(F::avg_pool1d(line, 2, std::nullopt, 0, true)) == std::vector<double>{1.5, 3.5, 5});
  CHECK(values(F::avg_pool1d(line, 3, 3, 1, true)) == std::vector<double>{1, 4});
  CHECK(values(F::avg_pool1d(line, 3, 3, 1, false, false)) == std::vector<double>{1.5, 4});
  // gradients: the overhang and the uncounted padding pass none
  check_gradients([](V v) { return F::max_pool2d(v[0], {2, 2}, F::Size2{2, 2}, {1, 1}, true); }, {input({1, 2, 4, 5}, -1, 1, 44)});
  check_gradients([](V v) { return F::avg_pool2d(v[0] * v[0], {3, 2}, F::Size2{2, 2}, {1, 1}, true, false); },
                  {input({2, 1, 5, 4}, -1, 1, 45)});
  check_gradients([](V v) { return F::avg_pool1d(v[0] * v[0], 2, 2, 1, true); }, {input({2, 6}, -1, 1, 46)});
  // the modules
  cr::nn::MaxPool2d maxpool({2, 2}, std::nullopt, {0, 0}, true);
  CHECK(values(maxpool(x)) == values(F::max_pool2d(x, {2, 2}, std::nullopt, {0, 0}, true)));
  CHECK(maxpool.repr() == "MaxPool2d(kernel_size=[2, 2], stride=[2, 2], padding=[0, 0], ceil_mode=true)");
  cr::nn::AvgPool2d avgpool({3, 3}, F::Size2{2, 2}, {1, 1}, true, false);
  CHECK(values(avgpool(x)) == values(F::avg_pool2d(x, {3, 3}, F::Size2{2, 2}, {1, 1}, true, false)));
  CHECK(avgpool.repr() == "AvgPool2d(kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], ceil_mode=true, count_include_pad=false)");
  cr::nn::AvgPool1d avg1(3, 3, 1, false, false);
  CHECK(values(avg1(line)) == std::vector<double>{1.5, 4});
  CHECK(avg1.repr() == "AvgPool1d(kernel_size=3, stride=3, padding=1, count_include_pad=false)");
  cr::nn::MaxPool1d max1(2, std::nullopt, 0, true);
  CHECK(values(max1(line)) == std::vector<double>{2, 4, 5});
}

TEST_CASE("adaptive_avg_pool2d and adaptive_avg_pool1d: PyTorch's windows, by hand") {
  // 5 rows into 3: rows 0-1, 1-3, 3-4 (start floor(i 5 / 3), end ceil((i + 1) 5 / 3)); 4 columns into 2
  const cr::Tensor x = cr::arange(0.0, 20.0, 1.0, cr::float64).reshape({1, 1, 5, 4});
  const cr::Tensor y = F::adaptive_avg_pool2d(x, {3, 2});
  CHECK(y.shape() == cr::Shape{1, 1, 3, 2});
  const std::vector<double> got = values(y), expected{(0 + 1 + 4 + 5) / 4.0,   (2 + 3 + 6 + 7) / 4.0,
                                                      (4 + 5 + 8 + 9 + 12 + 13) / 6.0, (6 + 7 + 10 + 11 + 14 + 15) / 6.0,
                                                      (12 + 13 + 16 + 17) / 4.0, (14 + 15 + 18 + 19) / 4.0};
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-14));
  // output 1 x 1 is global average pooling; a larger output repeats rows (2 into 3: 0, 0-1, 1)
  const cr::Tensor img = input({2, 3, 4, 6}, -1, 1, 34);
  const auto global = values(F::adaptive_avg_pool2d(img, {1, 1})), mean = values(cr::mean(img, cr::Shape{2, 3}));
  for (size_t i = 0; i < mean.size(); ++i) CHECK(global[i] == doctest::Approx(mean[i]).epsilon(1e-14));
  const cr::Tensor two = cr::tensor({1.0, 3.0}, {1, 2}, cr::float64);
  CHECK(values(F::adaptive_avg_pool1d(two, 3)) == std::vector<double>{1, 2, 3});
  CHECK(F::adaptive_avg_pool2d(img.select(0, 0), {2, 3}).shape() == cr::Shape{3, 2, 3});  // [C, H, W]
  CHECK(values(F::adaptive_avg_pool1d(img.select(2, 0), 3)) == values(F::avg_pool1d(img.select(2, 0), 2)));
  cr::nn::AdaptiveAvgPool2d head({1, 1});
  CHECK(values(head(img)) == values(F::adaptive_avg_pool2d(img, {1, 1})));
  CHECK(head.repr() == "AdaptiveAvgPool2d(output_size=[1, 1])");
  cr::nn::AdaptiveAvgPool1d seq(2);
  CHECK(values(seq(img.select(2, 1))) == values(F::adaptive_avg_pool1d(img.select(2, 1), 2)));
  CHECK(seq.repr() == "AdaptiveAvgPool1d(output_size=2)");
  check_gradients([](V v) { return F::adaptive_avg_pool2d(v[0] * v[0], {3, 2}); }, {input({1, 2, 5, 3}, -1, 1, 35)});
  check_gradients([](V v) { return F::adaptive_avg_pool1d(v[0] * v[0], 4); }, {input({2, 3}, -1, 1, 36)});
  check_error([&] { (void)F::adaptive_avg_pool2d(img, {0, 2}); }, {"adaptive_avg_pool2d", "output_size [0, 2]"});
  check_error([] { (void)F::adaptive_avg_pool2d(cr::zeros({1, 1, 0, 3}), {1, 1}); },
              {"adaptive_avg_pool2d", "[1, 1, 0, 3]", "empty"});
  check_error([] { (void)F::adaptive_avg_pool2d(cr::zeros({4, 4}), {1, 1}); }, {"adaptive_avg_pool2d", "[4, 4]"});
  check_error([] { (void)F::adaptive_avg_pool1d(cr::zeros({2, 4}, cr::int64), 2); }, {"adaptive_avg_pool1d", "int64"});
}

TEST_CASE("adaptive_max_pool2d and adaptive_max_pool1d: the same windows' maxima, the gradient to each first maximum") {
  using V = const std::vector<cr::Tensor>&;
  // values and gradients from torch 1.13 (F.adaptive_max_pool2d(x, (3, 2)), .sum().backward()):
  // uneven, overlapping windows (5 rows to 3: rows 0-1, 1-3, 3-4) and repeated maxima
  std::vector<double> v;
  for (int i = 0; i < 30; ++i) v.push_back(static_cast<double>((i * 7) % 11) - 5);
  const cr::Tensor x = cr::tensor(v, {1, 2, 5, 3}, cr::float64).requires_grad_();
  const cr::Tensor y = F::adaptive_max_pool2d(x, {3, 2});
  CHECK(y.shape() == cr::Shape{1, 2, 3, 2});
  CHECK(values(y) == std::vector<double>{5, 2, 5, 1, 3, 5, 1, 4, 5, 5, 5, 5});
  y.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 1, 0, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1,
                                                1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0});
  // 1-d: windows [0, 2), [1, 3), [3, 5), [4, 6); a tie (3, 3) sends the gradient to the first
  const cr::Tensor t = cr::tensor({1, 3, 3, 2, 0, 3}, {1, 6}, cr::float64).requires_grad_();
  const cr::Tensor z = F::adaptive_max_pool1d(t, 4);
  CHECK(values(z) == std::vector<double>{3, 3, 2, 3});
  z.sum().backward();
  CHECK(values(t.grad()) == std::vector<double>{0, 2, 0, 1, 0, 1});
  // against max_pool2d where the windows are a kernel's, and a global max
  const cr::Tensor img = input({2, 3, 4, 6}, -1, 1, 37);
  CHECK(values(F::adaptive_max_pool2d(img, {2, 3})) == values(F::max_pool2d(img, {2, 2})));
  CHECK(values(F::adaptive_max_pool2d(img, {1, 1})) == values(cr::amax(img, cr::Shape{2, 3}, true)));
  CHECK(F::adaptive_max_pool2d(img.select(0, 0), {3, 5}).shape() == cr::Shape{3, 3, 5});  // [C, H, W]
  CHECK(values(F::adaptive_max_pool1d(img.select(2, 0), 3)) == values(F::max_pool1d(img.select(2, 0), 2)));
  cr::nn::AdaptiveMaxPool2d head({1, 1});
  CHECK(values(head(img)) == values(F::adaptive_max_pool2d(img, {1, 1})));
  CHECK(head.repr() == "AdaptiveMaxPool2d(output_size=[1, 1])");
  cr::nn::AdaptiveMaxPool1d seq(2);
  CHECK(values(seq(img.select(2, 1))) == values(F::adaptive_max_pool1d(img.select(2, 1), 2)));
  CHECK(seq.repr() == "AdaptiveMaxPool1d(output_size=2)");
  // more outputs than inputs: windows of one position, repeated
  CHECK(values(F::adaptive_max_pool1d(cr::tensor({1, 2}, {1, 2}, cr::float64), 3)) == std::vector<double>{1, 2, 2});
  check_gradients([](V v) { return F::adaptive_max_pool2d(v[0] * v[0], {3, 2}); }, {input({1, 2, 5, 3}, -1, 1, 38)});
  check_gradients([](V v) { return F::adaptive_max_pool1d(v[0] * v[0], 4); }, {input({2, 7}, -1, 1, 39)});
  check_error([&] { (void)F::adaptive_max_pool2d(img, {0, 2}); }, {"adaptive_max_pool2d", "output_size [0, 2]"});
  check_error([] { (void)F::adaptive_max_pool2d(cr::zeros({1, 1, 3, 0}), {1, 1}); },
              {"adaptive_max_pool2d", "[1, 1, 3, 0]", "empty"});
  check_error([] { (void)F::adaptive_max_pool1d(cr::zeros({2, 4}, cr::int64), 2); }, {"adaptive_max_pool1d", "int64"});
  check_error([] { (void)F::adaptive_max_pool1d(cr::zeros({4}), 2); }, {"adaptive_max_pool1d", "[4]"});
}

TEST_CASE("pad: constant, reflect, replicate and circular, by hand (the values torch.nn.functional.pad gives)") {
  const cr::Tensor x = cr::tensor({1.0, 2, 3, 4, 5, 6}, {2, 3}, cr::float64);
  using M = F::PadMode;
  CHECK(values(F::pad(x, {1, 2})) == std::vector<double>{0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 0, 0});
  CHECK(F::pad(x, {1, 2}).shape() == cr::Shape{2, 6});
  CHECK(values(F::pad(x, {1, 1, 1, 0}, M::constant, 9)) ==
        std::vector<double>{9, 9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 4, 5, 6, 9});
  CHECK(values(F::pad(x, {-1, 1})) == std::vector<double>{2, 3, 0, 5, 6, 0});  // a negative amount crops
  CHECK(values(F::pad(x, {0, -2, -1, 0})) == std::vector<double>{4});
  CHECK(values(F::pad(x, {2, 1}, M::reflect)) == std::vector<double>{3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5});
  CHECK(values(F::pad(x, {2, 1}, M::replicate)) == std::vector<double>{1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6});
  CHECK(values(F::pad(x, {2, 1}, M::circular)) == std::vector<double>{2, 3, 1, 2, 3, 1, 5, 6, 4, 5, 6, 4});
  CHECK(values(F::pad(x, {1, 1, 1, 1}, M::reflect)) ==
        std::vector<double>{5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5, 2, 1, 2, 3, 2});
  CHECK(values(F::pad(x, {-1, 0}, M::reflect)) == std::vector<double>{2, 3, 5, 6});
  CHECK(values(F::pad(x, {0, 0, 1, 0}, M::replicate)) == std::vector<double>{1, 2, 3, 1, 2, 3, 4, 5, 6});
  // an empty padding is x itself; a dimension left alone keeps its size; dtype kept (int64 too)
  CHECK(values(F::pad(x, {})) == values(x));
  CHECK(F::pad(x.to(cr::float32), {1, 1}, M::reflect).dtype() == cr::float32);
  const cr::Tensor i = cr::tensor({1.0, 2}, {2}, cr::int64);
  CHECK(F::pad(i, {1, 1}, M::constant, 7).to_vector<int64_t>() == std::vector<int64_t>{7, 1, 2, 7});
  CHECK(F::pad(cr::zeros({2, 0}), {1, 2}).shape() == cr::Shape{2, 3});  // constant padding of an empty dim
  // the gradient: a position copied twice (reflect, replicate) gets both of its gradients
  cr::Tensor v = cr::tensor({1.0, 2, 3}, {3}, cr::float64).requires_grad_();
  cr::sum(F::pad(v, {2, 2}, M::replicate) * cr::arange(1.0, 8.0, 1.0, cr::float64)).backward();
  CHECK(values(v.grad()) == std::vector<double>{1 + 2 + 3, 4, 5 + 6 + 7});
  v.set_grad({});
  cr::sum(F::pad(v, {2, 2}, M::reflect) * cr::arange(1.0, 8.0, 1.0, cr::float64)).backward();
  CHECK(values(v.grad()) == std::vector<double>{3 + 7, 2 + 4 + 6, 1 + 5});  // 3 2 | 1 2 3 | 2 1
  v.set_grad({});
  cr::sum(F::pad(v, {1, -1}) * cr::arange(1.0, 4.0, 1.0, cr::float64)).backward();  // 0 | 1 2
  CHECK(values(v.grad()) == std::vector<double>{2, 3, 0});
  const cr::Tensor img = input({2, 2, 3, 4}, -1, 1, 41);
  check_gradients([](V v) { return F::pad(v[0], {1, 2, 2, 1}, F::PadMode::reflect); }, {img});
  check_gradients([](V v) { return F::pad(v[0] * v[0], {2, 3, 1, 0}, F::PadMode::replicate); }, {img});
  check_gradients([](V v) { return F::pad(v[0] * v[0], {4, 1}, F::PadMode::circular); }, {img});
  check_gradients([](V v) { return F::pad(v[0] * v[0], {1, -1, 0, 0, 1, 1}, F::PadMode::constant, 0.5); }, {img});
  // errors name the op, the mode, the amounts and the input
  check_error([&] { (void)F::pad(x, {1}); }, {"pad", "[1]", "pairs", "[2, 3]"});
  check_error([&] { (void)F::pad(x, {1, 1, 1, 1, 1, 1}); }, {"pad", "at most 2", "[2, 3]"});
  check_error([&] { (void)F::pad(x, {3, 0}, M::reflect); }, {"pad (reflect mode)", "(3, 0)", "dimension 1", "[2, 3]",
                                                             "smaller than the dimension"});
  check_error([&] { (void)F::pad(x, {-2, -2}); }, {"pad (constant mode)", "(-2, -2)", "removes more elements"});
  check_error([&] { (void)F::pad(x, {0, 0, -2, -1}, M::replicate); }, {"pad (replicate mode)", "dimension 0"});
  check_error([] { (void)F::pad(cr::zeros({2, 0}), {1, 0}, M::circular); }, {"pad (circular mode)", "empty"});
}

TEST_CASE("padding modules: functional::pad with their mode, amounts and value; ranks checked") {
  const cr::Tensor seq = input({2, 3, 5}, -1, 1, 42), img = input({2, 3, 4, 5}, -1, 1, 43);
  using M = F::PadMode;
  cr::nn::ReflectionPad1d reflect1(2);
  CHECK(reflect1.padding == std::vector<int64_t>{2, 2});
  CHECK(values(reflect1(seq)) == values(F::pad(seq, {2, 2}, M::reflect)));
  CHECK(values(reflect1(seq.select(0, 1))) == values(F::pad(seq.select(0, 1), {2, 2}, M::reflect)));  // [C, L]
  CHECK(reflect1.repr() == "ReflectionPad1d(padding=[2, 2])");
  cr::nn::ReflectionPad2d reflect2({1, 0, 2, 3});
  CHECK(values(reflect2(img)) == values(F::pad(img, {1, 0, 2, 3}, M::reflect)));
  CHECK(reflect2.repr() == "ReflectionPad2d(padding=[1, 0, 2, 3])");
  cr::nn::ReplicationPad1d replicate1({3, 1});
  CHECK(values(replicate1(seq)) == values(F::pad(seq, {3, 1}, M::replicate)));
  cr::nn::ReplicationPad2d replicate2(1);
  CHECK(values(replicate2(img)) == values(F::pad(img, {1, 1, 1, 1}, M::replicate)));
  CHECK(replicate2.repr() == "ReplicationPad2d(padding=[1, 1, 1, 1])");
  cr::nn::CircularPad1d circular1({1, 2});
  CHECK(values(circular1(seq)) == values(F::pad(seq, {1, 2}, M::circular)));
  cr::nn::CircularPad2d circular2(2);
  CHECK(values(circular2(img)) == values(F::pad(img, {2, 2, 2, 2}, M::circular)));
  cr::nn::ConstantPad1d constant1({1, -1}, 0.5);
  CHECK(values(constant1(seq)) == values(F::pad(seq, {1, -1}, M::constant, 0.5)));
  CHECK(constant1.repr() == "ConstantPad1d(padding=[1, -1], value=0.5)");
  cr::nn::ConstantPad2d constant2(1, -3);
  CHECK(values(constant2(img.select(0, 0))) == values(F::pad(img.select(0, 0), {1, 1, 1, 1}, M::constant, -3)));
  cr::nn::ZeroPad2d zero({0, 1, 2, 0});
  CHECK(values(zero(img)) == values(F::pad(img, {0, 1, 2, 0})));
  CHECK(zero.repr() == "ZeroPad2d(padding=[0, 1, 2, 0], value=0)");
  CHECK(zero.parameters().empty());
  // in a Sequential, with gradients through it
  cr::nn::Sequential net({std::make_shared<cr::nn::ReflectionPad2d>(1), std::make_shared<cr::nn::Flatten>()});
  cr::Tensor x = img.detach().requires_grad_();
  cr::sum(net(x)).backward();
  CHECK(x.grad().shape() == img.shape());
  CHECK(cr::sum(x.grad()).item<double>() == doctest::Approx(2.0 * 3 * 6 * 7));  // every output position is one input
  check_error([&] { (void)reflect1(img); }, {"ReflectionPad1d", "[2, 3, 4, 5]", "[C, L] or [N, C, L]", "padding=[2, 2]"});
  check_error([&] { (void)zero(seq.select(0, 0)); }, {"ZeroPad2d", "[3, 5]", "[C, H, W] or [N, C, H, W]"});
  check_error([&] { (void)cr::nn::ReflectionPad1d(5)(seq); }, {"pad (reflect mode)", "(5, 5)"});
}

TEST_CASE("interpolate and Upsample: nearest, linear and bilinear, the values torch 1.13 gives") {
  const cr::Tensor x = cr::tensor({1.0, 2, 4, 3, 5, 9}, {1, 1, 2, 3}, cr::float64);
  using M = F::InterpolateMode;
  const auto close = [](const cr::Tensor& got, const std::vector<double>& want) {
    REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
    for (size_t i = 0; i < want.size(); ++i) CHECK(values(got)[i] == doctest::Approx(want[i]).epsilon(1e-14));
  };
  close(F::interpolate(x, {.scale_factor = {2}}), {1, 1, 2, 2, 4, 4, 1, 1, 2, 2, 4, 4, 3, 3, 5, 5, 9, 9, 3, 3, 5, 5, 9, 9});
  close(F::interpolate(x, {.size = {3, 4}}), {1, 1, 2, 4, 1, 1, 2, 4, 3, 3, 5, 9});
  close(F::interpolate(x, {.size = {3, 4}, .mode = M::bilinear}),
        {1, 1.625, 2.75, 4, 2, 2.9375, 4.625, 6.5, 3, 4.25, 6.5, 9});
  close(F::interpolate(x, {.size = {3, 4}, .mode = M::bilinear, .align_corners = true}),
        {1, 5 / 3.0, 8 / 3.0, 4, 2, 3, 4.5, 6.5, 3, 13 / 3.0, 19 / 3.0, 9});
  // a scale_factor sets the step between source positions (1 / 1.5), not in / out
  const cr::Tensor scaled = F::interpolate(x, {.scale_factor = {1.5, 1.5}, .mode = M::bilinear});
  CHECK(scaled.shape() == cr::Shape{1, 1, 3, 4});
  close(scaled, {1, 1.5, 7 / 3.0, 11 / 3.0, 2, 2.75, 4, 6, 3, 4, 17 / 3.0, 25 / 3.0});
  const cr::Tensor line = cr::tensor({1.0, 2, 4, 8}, {1, 1, 4}, cr::float64);
  close(F::interpolate(line, {.size = {6}, .mode = M::linear}), {1, 1.5, 7 / 3.0, 11 / 3.0, 6, 8});
  close(F::interpolate(line, {.scale_factor = {0.5}, .mode = M::linear}), {1.5, 6});
  close(F::interpolate(line, {.size = {3}}), {1, 2, 4});
  close(F::interpolate(line, {.scale_factor = {1.7}}), {1, 1, 2, 2, 4, 4});
  CHECK(F::interpolate(x.to(cr::float32), {.scale_factor = {2}}).dtype() == cr::float32);
  // gradients (a position copied twice adds both), first and second order
  cr::Tensor v = line.detach().requires_grad_();
  cr::sum(F::interpolate(v, {.scale_factor = {2}})).backward();
  CHECK(values(v.grad()) == std::vector<double>{2, 2, 2, 2});
  check_gradients([](V v) { return F::interpolate(v[0] * v[0], {.size = {3, 5}, .mode = F::InterpolateMode::bilinear}); },
                  {input({1, 2, 2, 3}, -1, 1, 47)});
  check_gradients([](V v) {
    return F::interpolate(v[0] * v[0], {.scale_factor = {1.5}, .mode = F::InterpolateMode::linear, .align_corners = true});
  }, {input({2, 1, 4}, -1, 1, 48)});
  check_gradients([](V v) { return F::interpolate(v[0] * v[0], {.size = {5, 2}}); }, {input({1, 1, 3, 3}, -1, 1, 49)});
  // the linear modes' one loop over the output reads a transposed or float32 input as the same values
  const cr::Tensor wide = input({1, 2, 4, 3}, -1, 1, 50).detach();
  const F::InterpolateOptions grow{.size = {5, 7}, .mode = M::bilinear};
  CHECK(values(F::interpolate(wide.transpose(2, 3), grow)) == values(F::interpolate(wide.transpose(2, 3).contiguous(), grow)));
  const auto single = values(F::interpolate(wide.to(cr::float32), grow)), twice = values(F::interpolate(wide, grow));
  for (size_t i = 0; i < twice.size(); ++i) CHECK(single[i] == doctest::Approx(twice[i]).epsilon(1e-6));
  // the module
  cr::nn::Upsample up({.scale_factor = {2}, .mode = M::bilinear});
  CHECK(values(up(x)) == values(F::interpolate(x, {.scale_factor = {2}, .mode = M::bilinear})));
  CHECK(up.repr() == "Upsample(scale_factor=[2], mode=bilinear)");
  CHECK(cr::nn::Upsample({.size = {3, 4}, .mode = M::bilinear, .align_corners = true}).repr() ==
        "Upsample(size=[3, 4], mode=bilinear, align_corners=true)");
  // errors
  check_error([&] { (void)F::interpolate(x, {}); }, {"interpolate", "either size or scale_factor", "[1, 1, 2, 3]"});
  check_error([&] { (void)F::interpolate(x, {.size = {3, 4}, .scale_factor = {2}}); }, {"interpolate", "either"});
  check_error([&] { (void)F::interpolate(x, {.size = {3, 4, 5}}); }, {"interpolate", "one per resized dimension"});
  check_error([&] { (void)F::interpolate(x, {.size = {4}, .mode = M::linear}); }, {"interpolate", "mode linear", "[N, C, L]"});
  check_error([&] { (void)F::interpolate(line, {.size = {4}, .mode = M::bilinear}); }, {"interpolate", "bilinear"});
  check_error([&] { (void)F::interpolate(x, {.size = {4}, .align_corners = true}); }, {"interpolate", "align_corners", "nearest"});
  check_error([&] { (void)F::interpolate(x, {.scale_factor = {-1}}); }, {"interpolate", "scale_factor [-1]", "positive"});
  check_error([&] { (void)F::interpolate(line, {.scale_factor = {0.1}}); }, {"interpolate", "dimension 2", "[1, 1, 4]", "0 elements"});
  check_error([&] { (void)F::interpolate(line.select(0, 0), {.size = {2}}); }, {"interpolate", "[1, 4]", "[N, C, L]"});
}

TEST_CASE("convolution and pooling gradients (gradcheck, first and second order)") {
  const cr::Tensor x = input({2, 2, 4, 5}, -1, 1, 21), w = input({3, 2, 2, 3}, -1, 1, 22), b = input({3}, -1, 1, 23);
  check_gradients([](V v) { return F::conv2d(v[0], v[1], v[2]); }, {x, w, b});
  check_gradients([](V v) { return F::conv2d(v[0], v[1], {}, {2, 1}, {1, 1}, {1, 2}); }, {x, w});
  check_gradients([](V v) { return F::conv1d(v[0], v[1], v[2], 2, 1); }, {x.select(2, 0), w.select(2, 0), b});
  check_gradients([](V v) { return F::unfold(v[0], {2, 2}, {1, 1}, {1, 0}, {1, 2}); }, {x});
  check_gradients([](V v) { return F::max_pool2d(v[0], {2, 2}, F::Size2{1, 2}, {1, 1}); }, {x});
  check_gradients([](V v) { return F::avg_pool2d(v[0] * v[0], {3, 2}, std::nullopt, {1, 0}); }, {x});
  const cr::Tensor wg = input({4, 1, 2, 2}, -1, 1, 26);  // groups = 2: two output channels per group
  check_gradients([](V v) { return F::conv2d(v[0], v[1], v[2], {1, 2}, {1, 0}, {1, 1}, 2); },
                  {x, wg, input({4}, -1, 1, 27)});
  check_gradients([](V v) { return F::conv1d(v[0], v[1], {}, 1, 1, 1, 2); }, {x.select(2, 1), wg.select(2, 0)});
  check_gradients([](V v) { return F::max_pool1d(v[0], 2, 1, 1); }, {x.select(2, 0)});
  check_gradients([](V v) { return F::avg_pool1d(v[0] * v[0], 3, 2, 1); }, {x.select(3, 0)});
}

TEST_CASE("Conv2d, MaxPool2d and AvgPool2d modules") {
  cr::Generator gen(5);
  cr::nn::Conv2d conv(3, 8, {3, 3}, {.padding = {1, 1}, .dtype = cr::float64, .generator = &gen});
  CHECK(conv.weight.shape() == cr::Shape{8, 3, 3, 3});
  CHECK(conv.bias.shape() == cr::Shape{8});
  CHECK(conv.named_parameters().size() == 2);
  // PyTorch's initialisation: both within 1 / sqrt(fan_in), fan_in = 3 * 3 * 3
  const double bound = 1.0 / std::sqrt(27.0);
  CHECK(cr::max(cr::abs(conv.weight)).item<double>() <= bound);
  CHECK(cr::max(cr::abs(conv.weight)).item<double>() > 0.8 * bound);
  CHECK(cr::max(cr::abs(conv.bias)).item<double>() <= bound);
  const cr::Tensor x = input({2, 3, 6, 6}, -1, 1, 31);
  CHECK(values(conv(x)) == values(F::conv2d(x, conv.weight, conv.bias, {1, 1}, {1, 1})));
  CHECK(conv.repr() ==
        "Conv2d(3, 8, kernel_size=[3, 3], stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1, bias=true)");
  cr::nn::Conv2d no_bias(3, 2, {2, 2}, {.stride = {2, 2}, .bias = false});
  CHECK(!no_bias.bias.defined());
  CHECK(no_bias(x.to(cr::float32)).shape() == cr::Shape{2, 2, 3, 3});
  cr::nn::MaxPool2d pool({2, 2});
  CHECK(values(pool(x)) == values(F::max_pool2d(x, {2, 2})));
  CHECK(pool.repr() == "MaxPool2d(kernel_size=[2, 2], stride=[2, 2], padding=[0, 0])");
  cr::nn::AvgPool2d avg({3, 3}, F::Size2{1, 1}, {1, 1});
  CHECK(values(avg(x)) == values(F::avg_pool2d(x, {3, 3}, F::Size2{1, 1}, {1, 1})));
  CHECK(avg.repr() == "AvgPool2d(kernel_size=[3, 3], stride=[1, 1], padding=[1, 1])");
  // a small CNN in a Sequential trains: the loss falls
  cr::nn::Sequential net;
  net.push_back(std::make_shared<cr::nn::Conv2d>(1, 4, F::Size2{3, 3}, cr::nn::Conv2dOptions{.padding = {1, 1}, .dtype = cr::float64, .generator = &gen}));
  net.push_back(std::make_shared<cr::nn::MaxPool2d>(F::Size2{2, 2}));
  net.push_back(std::make_shared<cr::nn::Flatten>());
  net.push_back(std::make_shared<cr::nn::Linear>(16, 2, cr::nn::LinearOptions{.dtype = cr::float64, .generator = &gen}));
  const cr::Tensor images = input({8, 1, 4, 4}, -1, 1, 41).detach();
  const cr::Tensor labels = cr::tensor({0, 1, 0, 1, 1, 0, 1, 0}, cr::int64);
  cr::optim::SGD opt(net.parameters(), {.lr = 0.5});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    const cr::Tensor loss = F::cross_entropy(net(images), labels);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  CHECK(last < 0.5 * first);
}

TEST_CASE("Conv1d (groups), MaxPool1d and AvgPool1d modules; Conv2d with groups") {
  cr::Generator gen(6);
  cr::nn::Conv1d conv(4, 6, 3, {.padding = 1, .groups = 2, .dtype = cr::float64, .generator = &gen});
  CHECK(conv.weight.shape() == cr::Shape{6, 2, 3});  // PyTorch's [out, in / groups, k]
  CHECK(conv.bias.shape() == cr::Shape{6});
  const double bound = 1.0 / std::sqrt(2.0 * 3);  // fan_in = in / groups * k
  CHECK(cr::max(cr::abs(conv.weight)).item<double>() <= bound);
  CHECK(cr::max(cr::abs(conv.weight)).item<double>() > 0.8 * bound);
  CHECK(cr::max(cr::abs(conv.bias)).item<double>() <= bound);
  const cr::Tensor x = input({2, 4, 9}, -1, 1, 32);
  CHECK(values(conv(x)) == values(F::conv1d(x, conv.weight, conv.bias, 1, 1, 1, 2)));
  CHECK(conv(x).shape() == cr::Shape{2, 6, 9});
  CHECK(conv.repr() == "Conv1d(4, 6, kernel_size=3, stride=1, padding=1, dilation=1, groups=2, bias=true)");
  cr::nn::Conv1d plain(4, 2, 2, {.stride = 2, .bias = false});
  CHECK(!plain.bias.defined());
  CHECK(plain(x.to(cr::float32)).shape() == cr::Shape{2, 2, 4});
  cr::nn::Conv2d depthwise(4, 8, {3, 3}, {.groups = 4, .dtype = cr::float64, .generator = &gen});
  CHECK(depthwise.weight.shape() == cr::Shape{8, 1, 3, 3});
  CHECK(cr::max(cr::abs(depthwise.weight)).item<double>() <= 1.0 / 3);  // fan_in = 1 * 3 * 3
  const cr::Tensor img = input({1, 4, 5, 5}, -1, 1, 33);
  CHECK(values(depthwise(img)) == values(F::conv2d(img, depthwise.weight, depthwise.bias, {1, 1}, {0, 0}, {1, 1}, 4)));
  cr::nn::MaxPool1d pool(2);
  CHECK(values(pool(x)) == values(F::max_pool1d(x, 2)));
  CHECK(pool.repr() == "MaxPool1d(kernel_size=2, stride=2, padding=0)");
  cr::nn::AvgPool1d avg(3, 1, 1);
  CHECK(values(avg(x)) == values(F::avg_pool1d(x, 3, 1, 1)));
  CHECK(avg.repr() == "AvgPool1d(kernel_size=3, stride=1, padding=1)");
  check_error([] { (void)cr::nn::Conv1d(3, 4, 2, {.groups = 2}); }, {"Conv1d", "groups (2)", "in_channels (3)"});
  check_error([] { (void)cr::nn::Conv2d(4, 3, {2, 2}, {.groups = 2}); }, {"Conv2d", "groups (2)", "out_channels (3)"});
  check_error([] { (void)cr::nn::Conv1d(2, 2, 0); }, {"Conv1d", "kernel_size 0"});
}

TEST_CASE("convolution and pooling errors name the op and the shapes") {
  const cr::Tensor x = cr::zeros({1, 3, 5, 5});
  check_error([&] { (void)F::conv2d(x, cr::zeros({2, 4, 3, 3})); }, {"conv2d", "[2, 4, 3, 3]", "[1, 3, 5, 5]", "channels"});
  check_error([&] { (void)F::conv2d(cr::zeros({3, 5}), cr::zeros({2, 3, 3, 3})); }, {"conv2d", "[3, 5]"});
  check_error([&] { (void)F::conv2d(x, cr::zeros({2, 3, 7, 3})); }, {"conv2d", "kernel", "[7, 3]", "[5, 5]"});
  check_error([&] { (void)F::conv2d(x, cr::zeros({2, 3, 3, 3}), cr::zeros({3})); }, {"conv2d", "bias", "[3]", "[2]"});
  check_error([&] { (void)F::conv2d(x, cr::zeros({2, 3, 3, 3}), {}, {0, 1}); }, {"conv2d", "stride", "[0, 1]"});
  check_error([&] { (void)F::conv2d(x, cr::zeros({2, 3, 3, 3}), {}, {1, 1}, {-1, 0}); }, {"conv2d", "padding", "[-1, 0]"});
  check_error([&] { (void)F::max_pool2d(x, {2, 2}, std::nullopt, {2, 0}); }, {"max_pool2d", "padding", "half"});
  check_error([&] { (void)F::avg_pool2d(x, {6, 1}); }, {"avg_pool2d", "[6, 1]", "[5, 5]"});
  check_error([&] { (void)F::unfold(cr::zeros({3, 5, 5}), {2, 2}); }, {"unfold", "[3, 5, 5]", "4-d"});
  check_error([] { (void)F::max_pool2d(cr::zeros({1, 1, 4, 4}, cr::int64), {2, 2}); }, {"max_pool2d", "floating", "int64"});
  check_error([] { (void)cr::nn::Conv2d(0, 2, {3, 3}); }, {"Conv2d", "0"});
  // groups: the weight's in_channels times groups must be the input's, and divide out_channels
  check_error([&] { (void)F::conv2d(x, cr::zeros({2, 3, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 3); },
              {"conv2d", "groups 3", "[2, 3, 3, 3]", "[1, 3, 5, 5]"});
  check_error([&] { (void)F::conv2d(x, cr::zeros({4, 1, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 3); },
              {"conv2d", "groups 3", "[4, 1, 3, 3]", "out_channels"});
  check_error([&] { (void)F::conv2d(x, cr::zeros({3, 1, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 0); },
              {"conv2d", "groups 0"});
  check_error([&] { (void)F::conv1d(cr::zeros({1, 4, 5}), cr::zeros({2, 2, 3}), {}, 1, 0, 1, 3); },
              {"conv1d", "groups 3", "[2, 2, 3]", "[1, 4, 5]"});
  check_error([] { (void)F::max_pool1d(cr::zeros({1, 1, 4, 4}), 2); }, {"max_pool1d", "[1, 1, 4, 4]", "[N, C, L]"});
  check_error([] { (void)F::avg_pool1d(cr::zeros({1, 4}), 2, 1, 2); }, {"avg_pool1d", "padding", "half"});
}
