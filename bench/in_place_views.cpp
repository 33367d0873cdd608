// In-place writes through views while recording: a buffer filled row by row from tensors that
// require grad (`out.select(0, i).copy_(x_i)`, PyTorch's CopySlices), forward and backward, next
// to the same loop in libtorch (when built with -Dtorch=enabled). Each write's cost should grow
// with the row, not with the buffer: n rows in O(n) forward work, as in PyTorch.
#include "common.hpp"

#include <chainrule.hpp>

#include <cstdlib>

#ifdef CHAINRULE_BENCH_TORCH
#include <torch/torch.h>
#endif

namespace cr = chainrule;

namespace {

constexpr int64_t kCols = 8;

// Fills an n x kCols buffer row by row from 2 x_i, then backpropagates sum(out * out).
double chainrule_fill(int64_t n, cr::Tensor x) {
  cr::Tensor out = cr::zeros({n, kCols}, cr::float64);
  for (int64_t i = 0; i < n; ++i) out.select(0, i).copy_(x.select(0, i) * 2.0);
  cr::sum(out * out).backward();
  const double g = x.grad().data<double>()[0];
  x.set_grad(cr::Tensor());
  return g;
}

#ifdef CHAINRULE_BENCH_TORCH
double torch_fill(int64_t n, const torch::Tensor& x) {
  torch::Tensor out = torch::zeros({n, kCols}, torch::kFloat64);
  for (int64_t i = 0; i < n; ++i) out.select(0, i).copy_(x.select(0, i) * 2.0);
  (out * out).sum().backward();
  const double g = x.grad().data_ptr<double>()[0];
  x.mutable_grad().reset();
  return g;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 1000;
  const int rounds = 5;
  const cr::Tensor x = cr::rand({n, kCols}, cr::float64).requires_grad_();
  double g = 0;
  std::vector<std::function<void()>> sides = {[&] { g = chainrule_fill(n, x); }};
#ifdef CHAINRULE_BENCH_TORCH
  torch::set_num_threads(1);
  const torch::Tensor tx =
      torch::from_blob(x.data<double>(), {n, kCols}, torch::kFloat64).clone().requires_grad_();
  double tg = 0;
  sides.push_back([&] { tg = torch_fill(n, tx); });
#endif
  const std::vector<double> best = bench::best_of_each(rounds, sides);
  std::vector<bench::Row> rows = {
      {"chainrule", best[0], fmt::format("{:.2f} us/row", best[0] * 1e6 / static_cast<double>(n))}};
#ifdef CHAINRULE_BENCH_TORCH
  rows.push_back({"libtorch (1 thread)", best[1], fmt::format("{:.2f} us/row", best[1] * 1e6 / static_cast<double>(n))});
#endif
  bench::print_table(fmt::format("In-place writes through views: {} rows of {} float64 filled by copy_, forward + backward, best of {}",
                                 n, kCols, rounds),
                     rows, rows.back().what);
  // d sum(out^2) / dx = 8 x (out = 2 x)
  fmt::print("gradient check: {} (8 x = {})\n", g, 8 * x.data<double>()[0]);
#ifdef CHAINRULE_BENCH_TORCH
  fmt::print("chainrule is {:.2f}x libtorch's time\n", best[0] / best[1]);
  if (tg != g) fmt::print("libtorch's gradient differs: {}\n", tg);
#endif
  return g == 8 * x.data<double>()[0] ? 0 : 1;
}
