// Targets 3-5: an MLP training step (forward, cross-entropy, backward, SGD momentum step),
// float32, for 784-256-256-10 at batch 128, 784-1024-1024-10 at batch 256 and the
// Fashion-MNIST model 784-256-128-10 at batch 128 (469 steps = one epoch of compute), at 1 and
// 2 threads; chainrule against libtorch (when built with -Dtorch=enabled) and against the
// sgemm rate measured in the same run. Each measurement runs in a child process, which also
// gives its peak RSS.
#include "common.hpp"

#include <chainrule.hpp>

#include <sys/resource.h>
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>

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

// Resident memory now, in MiB (from /proc/self/statm).
double rss_now() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// The peak resident set since the last reset, in MiB (VmHWM in /proc/self/status); -1 if unknown.
double peak_rss() {
  double peak = -1;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (long kb = 0; std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) peak = static_cast<double>(kb) / 1024.0;
    std::fclose(f);
  }
  return peak;
}

// Runs f in a child process; returns {seconds, peak RSS growth in MiB}: the child's peak
// resident set minus what it had at the start (pages shared with the parent). A forked child
// inherits its parent's high-water mark, which would hide a smaller peak of its own, so the
// child resets it first (`5` into clear_refs).
std::pair<double, double> in_child(const std::function<double()>& f) {
  int fd[2];
  if (::pipe(fd) != 0) return {0, 0};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fd[0]);
    bool reset = false;
    if (FILE* c = std::fopen("/proc/self/clear_refs", "w")) {
      reset = std::fputs("5", c) >= 0;
      reset = std::fclose(c) == 0 && reset;
    }
    const double start = rss_now();
    const double t = f();
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const double hwm = reset ? peak_rss() : -1;
    const double peak = hwm >= 0 ? hwm : static_cast<double>(u.ru_maxrss) / 1024.0;
    const double out[2] = {t, peak - start};
    if (::write(fd[1], out, sizeof out) != sizeof out) ::_exit(1);
    ::_exit(0);
  }
  ::close(fd[1]);
  double out[2] = {0, 0};
  if (::read(fd[0], out, sizeof out) != sizeof out) out[0] = out[1] = 0;
  ::close(fd[0]);
  ::waitpid(pid, nullptr, 0);
  return {out[0], out[1]};
}

// Each side in its own child process, the sides in turn for `rounds` rounds (as
// bench::best_of_each, so that they meet the same slow and quick spells of a shared machine):
// each side's best time and its largest peak RSS growth.
struct Measured {
  double seconds = 1e30, rss = 0;
};
std::vector<Measured> in_children_in_turn(int rounds, const std::vector<std::function<double()>>& sides) {
  std::vector<Measured> m(sides.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < sides.size(); ++i) {
      const auto [t, rss] = in_child(sides[i]);
      m[i].seconds = std::min(m[i].seconds, t);
      m[i].rss = std::max(m[i].rss, rss);
    }
  return m;
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
      const std::vector<Measured> m = in_children_in_turn(2, sides);
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
