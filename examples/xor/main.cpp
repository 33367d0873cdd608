// The seed, answered. Reproduces the original NumPy network exactly, lets the engine find its
// derivative bug, trains it with autodiff gradients, and answers "is it stuck in a local
// optimum?" with a sweep over learning rate x momentum x initialisations x four variants.
#include "../common/cli.hpp"
#include "../common/plot.hpp"
#include "../common/progress.hpp"
#include "xor.hpp"

#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

namespace cr = chainrule;
using namespace xorseed;

namespace {

struct Options {
  int steps = 10000, seeds = 100, threads = 2;
  std::vector<double> lrs = SweepConfig{}.lrs, momenta = SweepConfig{}.momenta;
  std::string out;
  bool quick = false;
};

const char* kUsage =
    "usage: xor [options]\n"
    "  --steps N        training steps per run in parts 3 and 4 (default 10000)\n"
    "  --lr LIST        learning rates of the sweep, comma-separated (default 0.05,0.1,0.25,0.5,1,2,4)\n"
    "  --momentum LIST  momenta (EMA beta) of the sweep (default 0,0.5,0.9,0.95,0.99)\n"
    "  --seeds N        random initialisations per sweep cell (default 100)\n"
    "  --threads N      worker threads for the sweep (default 2)\n"
    "  --out DIR        where to write the CSV and SVG files (default: a new folder here)\n"
    "  --quick          a small sweep (2000 steps, 8 seeds, 3 x 3 cells), for tests\n"
    "  --help           this text\n";

Options parse(int argc, char** argv) {
  Options o;
  bool steps_set = false, seeds_set = false, lr_set = false, m_set = false;
  cli::Parser p("xor", kUsage);
  p.option("--steps", [&](const std::string& v) { o.steps = static_cast<int>(p.integer(v, "--steps", 1)); steps_set = true; });
  p.option("--seeds", [&](const std::string& v) { o.seeds = static_cast<int>(p.integer(v, "--seeds", 1, 100000)); seeds_set = true; });
  p.option("--threads", [&](const std::string& v) { o.threads = static_cast<int>(p.integer(v, "--threads", 1, 256)); });
  p.option("--lr", [&](const std::string& v) { o.lrs = p.numbers(v, "--lr", 0, 1e6); lr_set = true; });
  p.option("--momentum", [&](const std::string& v) { o.momenta = p.numbers(v, "--momentum", 0, 0.999999); m_set = true; });
  p.option("--out", [&](const std::string& v) { o.out = v; });
  p.flag("--quick", [&] { o.quick = true; });
  p.parse(argc, argv);
  if (o.quick) {
    if (!steps_set) o.steps = 2000;
    if (!seeds_set) o.seeds = 8;
    if (!lr_set) o.lrs = {0.5, 2, 4};
    if (!m_set) o.momenta = {0, 0.5, 0.9};
  }
  if (o.out.empty()) {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    o.out = fmt::format("xor-out-{}", stamp);
  }
  return o;
}

std::string fmt_outputs(const std::vector<double>& v) { return fmt::format("[{:.6f}]", fmt::join(v, ", ")); }

}  // namespace

int run_example(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  std::filesystem::create_directories(opt.out);
  fmt::print("chainrule answers the XOR seed program. Files go to {}/\n\n", opt.out);

  // ---------------------------------------------------------------- 1. exact reproduction
  fmt::print("1. Exact reproduction: the seed's network, weights, hand gradient and EMA momentum (alpha 0.5, beta 0.5)\n");
  const Run seed_run = train(Variant::seed_gradient, seed_W1(), seed_W2(), 0.5, 0.5, 10000);
  const std::pair<int, double> reference[] = {{1, 1.298103813489028}, {10, 1.0003483549564625},
                                              {100, 0.9989363307073739}, {1000, 1.0013054746229684},
                                              {10000, 0.9953616327276258}};
  double worst = 0;
  for (auto [k, want] : reference) {
    const double got = seed_run.loss[k - 1], rel = std::abs(got - want) / want;
    worst = std::max(worst, rel);
    fmt::print("   step {:>5}: loss {:.16f}   NumPy {:.16f}   rel. diff {:.1e}\n", k, got, want, rel);
  }
  const std::vector<double> ref_out = {0.4540014877472333, 0.505666295311887, 0.5081982888841791, 0.5504630298247111};
  for (size_t i = 0; i < 4; ++i) worst = std::max(worst, std::abs(seed_run.outputs[i] - ref_out[i]) / ref_out[i]);
  fmt::print("   final outputs {}  (NumPy {})\n", fmt_outputs(seed_run.outputs), fmt_outputs(ref_out));
  fmt::print("   largest relative difference from NumPy: {:.1e} -> {}\n\n", worst, worst < 1e-9 ? "reproduced" : "NOT reproduced");

  // ---------------------------------------------------------------- 2. the bug, found by the engine
  fmt::print("2. The bug, found by the engine: the seed's hand gradients vs autodiff at the initial weights\n");
  {
    const cr::Tensor W1 = seed_W1().requires_grad_(), W2 = seed_W2().requires_grad_();
    const Forward f = forward(W1, W2);
    const auto [d1, d2] = hand_gradients(f, W2, false);
    fmt::print("   the loss, as chainrule recorded it: {}\n",
               cr::autograd::to_string(f.loss, {{inputs(), "X"}, {targets(), "y"}, {W1, "W1"}, {W2, "W2"}}));
    const cr::Tensor X = inputs(), y = targets();
    const std::string dot = cr::autograd::to_dot(
        [&](const std::vector<cr::Tensor>& w) {
          return cr::sum(cr::pow(y - cr::sigmoid(cr::matmul(cr::sigmoid(cr::matmul(X, w[0])), w[1])), 2));
        },
        {W1, W2}, {{W1, "W1"}, {W2, "W2"}, {X, "X"}, {y, "y"}});
    fmt::print("   {}\n", plot::write_graph(opt.out + "/graph", dot));
    const auto report = cr::autograd::gradient_doctor(f.loss, {W1, W2}, {d1, d2}, {.names = {"W1", "W2"}});
    fmt::print("   with the seed's sigmoid_derivative:\n   {}\n", report.to_string());
    const auto [c1, c2] = hand_gradients(f, W2, true);
    const auto fixed = cr::autograd::gradient_doctor(f.loss, {W1, W2}, {-c1, -c2}, {.rtol = 1e-12, .names = {"W1", "W2"}});
    fmt::print("   with the corrected derivative x * (1 - x), negated:\n   {}\n", fixed.to_string());
    fmt::print("   In words: the seed's d_weights are the negative gradient, which is fine since it adds them; what is\n"
               "   wrong is that sigmoid_derivative applies sigmoid again to values that are already sigmoid outputs.\n");
    fmt::print("   Along the seed's run, its update direction vs the true descent direction (cosine; 1 = same direction):\n");
    fmt::print("   {:>6} {:>9} {:>9} {:>9} {:>11}   outputs\n", "step", "loss", "cos W1", "cos W2", "|gradient|");
    for (const Probe& p : probe_seed_run({1, 10, 100, 1000, 5000, 10000}))
      fmt::print("   {:>6} {:>9.6f} {:>9.4f} {:>9.4f} {:>11.3e}   {}\n", p.step, p.loss, p.cos_W1, p.cos_W2, p.grad_norm,
                 fmt_outputs(p.outputs));
    fmt::print("\n");
  }

  // ---------------------------------------------------------------- 3. training with autodiff
  fmt::print("3. Training from the same weights with the same optimizer, gradients by autodiff\n");
  const Run fixed_run = train(Variant::autodiff, seed_W1(), seed_W2(), 0.5, 0.5, opt.steps);
  const Run bias_run = train(Variant::autodiff_bias, seed_W1(), seed_W2(), 0.5, 0.5, opt.steps);
  for (int k : {1, 10, 100, 1000, 10000})
    if (k <= opt.steps)
      fmt::print("   step {:>5}: loss {:.6f} (seed's gradient {:.6f}, with output bias {:.6f})\n", k, fixed_run.loss[k - 1],
                 k <= 10000 ? seed_run.loss[k - 1] : NAN, bias_run.loss[k - 1]);
  fmt::print("   final loss {:.3e}, outputs {} -> {}\n", fixed_run.loss.back(), fmt_outputs(fixed_run.outputs),
             fixed_run.loss.back() < 0.05 ? "solves XOR" : "does not solve XOR");
  fmt::print("   with an output bias: final loss {:.3e}, outputs {}\n\n", bias_run.loss.back(), fmt_outputs(bias_run.outputs));

  // ---------------------------------------------------------------- 5. loss curves
  {
    plot::LineChart chart{.title = "XOR, seed's weights, alpha 0.5, beta 0.5", .x_label = "step",
                          .y_label = "sum of squared errors", .log_y = true, .series = {}};
    auto series = [&](const char* name, const Run& r) {
      plot::Series s{name, {}, {}};
      // about 1000 points, always including the last step
      const size_t stride = std::max<size_t>(1, r.loss.size() / 1000);
      for (size_t i = 0; i < r.loss.size(); i += stride) {
        s.x.push_back(static_cast<double>(i + 1));
        s.y.push_back(r.loss[i]);
      }
      if (s.x.back() != static_cast<double>(r.loss.size())) {
        s.x.push_back(static_cast<double>(r.loss.size()));
        s.y.push_back(r.loss.back());
      }
      chart.series.push_back(s);
    };
    series("seed's gradient", seed_run);
    series("autodiff", fixed_run);
    series("autodiff + bias", bias_run);
    plot::write_file(opt.out + "/loss_curves.svg", plot::svg(chart));
  }

  // ---------------------------------------------------------------- 4. the sweep
  SweepConfig config;
  config.lrs = opt.lrs;
  config.momenta = opt.momenta;
  config.seeds = opt.seeds;
  config.steps = opt.steps;
  config.threads = opt.threads;
  const long runs = 4L * static_cast<long>(config.lrs.size() * config.momenta.size()) * config.seeds;
  fmt::print("4. Local optima? {} training runs ({} lr x {} momentum x {} initialisations x 4 variants), {} steps each\n",
             runs, config.lrs.size(), config.momenta.size(), config.seeds, config.steps);
  progress::Bar bar("   sweep", 100);
  const SweepResult result = sweep(config, [&](long done, long total) {
    const double net_steps = static_cast<double>(done) * static_cast<double>(config.lrs.size()) * config.seeds;
    bar.update(done * 100 / std::max(total, 1L), fmt::format("{:.0f}M network-steps", net_steps / 1e6));
  });
  fmt::print("   {:.1f} s for {:.0f} million network-steps ({:.0f} ns per network-step, {} threads)\n", result.seconds,
             result.net_steps / 1e6, result.seconds * 1e9 / static_cast<double>(result.net_steps), config.threads);
  std::string csv = "variant,lr,momentum,solved_fraction,seeds,steps\n";
  std::vector<plot::Heatmap> maps;
  for (size_t v = 0; v < 4; ++v) {
    fmt::print("\n   {} (share of runs ending with loss < 0.05)\n   {:>8}", variant_name(kVariants[v]), "lr \\ m");
    for (double m : config.momenta) fmt::print("{:>8g}", m);
    fmt::print("\n");
    plot::Heatmap map{.title = variant_name(kVariants[v]), .row_labels = {}, .col_labels = {}, .values = {},
                      .row_title = "learning rate", .col_title = "momentum (EMA beta)"};
    for (double m : config.momenta) map.col_labels.push_back(fmt::format("{:g}", m));
    for (size_t l = 0; l < config.lrs.size(); ++l) {
      fmt::print("   {:>8g}", config.lrs[l]);
      map.row_labels.push_back(fmt::format("{:g}", config.lrs[l]));
      map.values.push_back(result.rate[v][l]);
      for (size_t m = 0; m < config.momenta.size(); ++m) {
        fmt::print("{:>7.0f}%", 100 * result.rate[v][l][m]);
        csv += fmt::format("{},{:g},{:g},{:.4f},{},{}\n", variant_name(kVariants[v]), config.lrs[l], config.momenta[m],
                           result.rate[v][l][m], config.seeds, config.steps);
      }
      fmt::print("\n");
    }
    maps.push_back(map);
  }
  plot::write_file(opt.out + "/sweep.csv", csv);
  plot::write_file(opt.out + "/sweep.svg",
                   plot::svg(maps, 0, 1, fmt::format("XOR solved (loss < 0.05 after {} steps), {} initialisations per cell",
                                                     config.steps, config.seeds)));
  fmt::print("\n5. Wrote {0}/loss_curves.svg, {0}/sweep.svg and {0}/sweep.csv\n", opt.out);
  return 0;
}

int main(int argc, char** argv) {
  return cli::run("xor", [&] { return run_example(argc, argv); });
}
