// Targets 3-5: an MLP training step (forward, cross-entropy, backward, SGD momentum step),
// float32, for 784-256-256-10 at batch 128, 784-1024-1024-10 at batch 256 and the
// Fashion-MNIST model 784-256-128-10 at batch 128 (469 steps = one epoch of compute), at 1 and
// 2 threads; chainrule against libtorch (when built with -Dtorch=enabled) and against the
// sgemm rate measured in the same run. Each measurement runs in a child process, which also
// gives its peak RSS.
#include "common.hpp"

#include <chainrule.hpp>

#ifdef CHAINRULE_BENCH_TORCH
#include <torch/torch.h>
#endif

namespace cr = chainrule;

namespace {

struct Config {
  const char* name;
  std::vector<int64_t> sizes;
  int64_t batch;
  int steps;
};

double step_flops(const Config& c) {  // forward 2BNM per layer, backward twice that (no input grad for layer 1)
  double f = 0;
  for (size_t i = 0; i + 1 < c.sizes.size(); ++i) f += 6.0 * c.batch * c.sizes[i] * c.sizes[i + 1];
  return f - 2.0 * c.batch * c.sizes[0] * c.sizes[1];
}

double chainrule_steps(const Config& c) {
  cr::Generator g(0);
  const cr::Tensor x = cr::randn({c.batch, c.sizes[0]}, cr::float32, &g);
  const cr::Tensor y = cr::randint(0, c.sizes.back(), {c.batch}, {}, &g);
  cr::nn::MLP mlp(c.sizes, {.activation = std::string("relu"), .generator = &g});
  cr::optim::SGD sgd(mlp.parameters(), {.lr = 0.01, .momentum = 0.9});
  return bench::best_of(1, [&] {
    for (int s = 0; s < c.steps; ++s) {
      sgd.zero_grad();
      cr::nn::functional::cross_entropy(mlp(x), y).backward();
      sgd.step();
    }
  });
}

#ifdef CHAINRULE_BENCH_TORCH
double torch_steps(const Config& c) {
  torch::manual_seed(0);
  const auto x = torch::randn({c.batch, c.sizes[0]});
  const auto y = torch::randint(0, c.sizes.back(), {c.batch});
  torch::nn::Sequential mlp;
  for (size_t i = 0; i + 1 < c.sizes.size(); ++i) {
    mlp->push_back(torch::nn::Linear(c.sizes[i], c.sizes[i + 1]));
    if (i + 2 < c.sizes.size()) mlp->push_back(torch::nn::ReLU());
  }
  torch::optim::SGD sgd(mlp->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  return bench::best_of(1, [&] {
    for (int s = 0; s < c.steps; ++s) {
      sgd.zero_grad();
      torch::nn::functional::cross_entropy(mlp->forward(x), y).backward();
      sgd.step();
    }
  });
}
#endif

double sgemm_seconds() {
  const cr::Tensor a = cr::randn({2048, 2048}), b = cr::randn({2048, 2048});
  return bench::best_of(2, [&] { (void)cr::matmul(a, b); });
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const std::vector<Config> configs = {
      {"784-256-256-10, batch 128", {784, 256, 256, 10}, 128, quick ? 5 : 50},
      {"784-1024-1024-10, batch 256", {784, 1024, 1024, 10}, 256, quick ? 2 : 20},
      {"Fashion-MNIST epoch: 784-256-128-10, batch 128", {784, 256, 128, 10}, 128, quick ? 10 : 469},
  };
  for (int threads : {1, 2}) {
    cr::set_num_threads(threads);
#ifdef CHAINRULE_BENCH_TORCH
    torch::set_num_threads(threads);
#endif
    fmt::print("\n=== {} thread{} ===", threads, threads > 1 ? "s" : "");
    for (const Config& c : configs) {
      // The sgemm reference in a child too, so that every measurement starts from the same small
      // parent heap (glibc would keep the freed matrices' pages resident for the next child).
      std::vector<std::function<double()>> sides{sgemm_seconds, [&] { return chainrule_steps(c); }};
#ifdef CHAINRULE_BENCH_TORCH
      sides.push_back([&] { return torch_steps(c); });
#endif
      const std::vector<bench::Measured> m = bench::in_children_in_turn(2, sides);
      const double gemm = 2.0 * 2048 * 2048 * 2048 / m[0].seconds, per = m[1].seconds / c.steps;
      std::vector<bench::Row> rows{{"chainrule", m[1].seconds, fmt::format("{:.2f} ms/step", per * 1e3)}};
      fmt::print("\n");
      std::string extra = fmt::format(
          "chainrule: {:.1f} GFLOP/s = {:.0f}% of sgemm (2048x2048, {:.1f} GFLOP/s); peak RSS growth {:.0f} MiB",
          step_flops(c) / per / 1e9, 100 * step_flops(c) / per / gemm, gemm / 1e9, m[1].rss);
#ifdef CHAINRULE_BENCH_TORCH
      rows.push_back({"libtorch", m[2].seconds, fmt::format("{:.2f} ms/step", m[2].seconds / c.steps * 1e3)});
      extra += fmt::format("; libtorch {:.0f} MiB", m[2].rss);
      bench::print_table(c.name, rows, "libtorch");
#else
      bench::print_table(c.name, rows, "chainrule");
#endif
      fmt::print("{}\n", extra);
    }
  }
}
