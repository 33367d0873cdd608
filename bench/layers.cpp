// The layers of a small convolutional network, each timed alone: forward and backward (every
// input's and parameter's gradient) of conv2d, max_pool2d and the three normalisations, float32,
// on 1 and 2 threads, next to libtorch's same layer when built with -Dtorch=enabled, each
// backward given the same fixed output gradient. Each side runs in a child process, the sides in
// turn (bench::in_children_in_turn): in one process, the threads each engine leaves spinning
// after its parallel work (libtorch's OpenMP workers, OpenBLAS's) took the other's second core.
#include "common.hpp"

#include <chainrule.hpp>

#ifdef CHAINRULE_BENCH_TORCH
#include <torch/torch.h>
#endif

namespace cr = chainrule;
namespace F = cr::nn::functional;

namespace {

// A layer: its name, the shapes of its input and parameters, and what it computes in each engine.
struct Layer {
  const char* name;
  std::vector<int64_t> x;                    // the input's shape
  std::vector<std::vector<int64_t>> params;  // each parameter's shape
  std::function<cr::Tensor(const cr::Tensor&, const std::vector<cr::Tensor>&)> ours;
#ifdef CHAINRULE_BENCH_TORCH
  std::function<torch::Tensor(const torch::Tensor&, const std::vector<torch::Tensor>&)> theirs;
#endif
};

// Forward and backward once: y, then backward of the fixed gradient r; the gradients dropped.
void ours_once(const Layer& l, const cr::Tensor& x, const std::vector<cr::Tensor>& p, cr::Tensor& r) {
  cr::Tensor y = l.ours(x, p);
  if (!r.defined()) r = cr::randn(y.shape());
  y.backward(r);
  cr::Tensor(x).set_grad({});
  for (cr::Tensor t : p) t.set_grad({});
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  const std::vector<Layer> layers = {
      {"conv2d [32,16,28,28] * [32,16,3,3], pad 1", {32, 16, 28, 28}, {{32, 16, 3, 3}, {32}},
       [](const cr::Tensor& x, const std::vector<cr::Tensor>& p) { return F::conv2d(x, p[0], p[1], {1, 1}, {1, 1}); },
#ifdef CHAINRULE_BENCH_TORCH
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return torch::conv2d(x, p[0], p[1], 1, 1); }
#endif
      },
      {"max_pool2d 2x2 of [32,32,28,28]", {32, 32, 28, 28}, {},
       [](const cr::Tensor& x, const std::vector<cr::Tensor>&) { return F::max_pool2d(x, {2, 2}); },
#ifdef CHAINRULE_BENCH_TORCH
       [](const torch::Tensor& x, const std::vector<torch::Tensor>&) { return torch::max_pool2d(x, 2); }
#endif
      },
      {"batch_norm [32,32,28,28], weight, bias", {32, 32, 28, 28}, {{32}, {32}},
       [](const cr::Tensor& x, const std::vector<cr::Tensor>& p) { return F::batch_norm(x, {}, {}, p[0], p[1], true); },
#ifdef CHAINRULE_BENCH_TORCH
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
         return torch::batch_norm(x, p[0], p[1], {}, {}, true, 0.1, 1e-5, false);
       }
#endif
      },
      {"group_norm 8 of [32,32,28,28], w, b", {32, 32, 28, 28}, {{32}, {32}},
       [](const cr::Tensor& x, const std::vector<cr::Tensor>& p) { return F::group_norm(x, 8, p[0], p[1]); },
#ifdef CHAINRULE_BENCH_TORCH
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return torch::group_norm(x, 8, p[0], p[1]); }
#endif
      },
      {"layer_norm [128,16,256] over 256, w, b", {128, 16, 256}, {{256}, {256}},
       [](const cr::Tensor& x, const std::vector<cr::Tensor>& p) { return F::layer_norm(x, {256}, p[0], p[1]); },
#ifdef CHAINRULE_BENCH_TORCH
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return torch::layer_norm(x, {256}, p[0], p[1]); }
#endif
      },
  };
  for (int threads : {1, 2}) {
    cr::set_num_threads(threads);
#ifdef CHAINRULE_BENCH_TORCH
    torch::set_num_threads(threads);
#endif
    fmt::print("\n=== layers, forward + backward, float32, {} thread{}, best of {} ===", threads,
               threads > 1 ? "s" : "", rounds);
    for (const Layer& l : layers) {
      const cr::Tensor x = cr::randn(l.x).requires_grad_();
      std::vector<cr::Tensor> p;
      for (const auto& shape : l.params) p.push_back(cr::randn(shape).requires_grad_());
      std::vector<std::function<double()>> sides{[&] {
        cr::Tensor r;
        return bench::best_of(rounds, [&] { ours_once(l, x, p, r); });
      }};
#ifdef CHAINRULE_BENCH_TORCH
      sides.push_back([&] {  // the same values in torch's tensors
        const auto to_torch = [](const cr::Tensor& t) {
          const std::vector<float> v = t.to_vector<float>();
          return torch::tensor(v).reshape(std::vector<int64_t>(t.shape().begin(), t.shape().end()));
        };
        const torch::Tensor tx = to_torch(x).requires_grad_();
        std::vector<torch::Tensor> tp;
        for (const cr::Tensor& t : p) tp.push_back(to_torch(t).requires_grad_());
        torch::Tensor tr;
        return bench::best_of(rounds, [&] {
          torch::Tensor y = l.theirs(tx, tp);
          if (!tr.defined()) tr = torch::randn(y.sizes());
          y.backward(tr);
          tx.mutable_grad().reset();
          for (torch::Tensor& t : tp) t.mutable_grad().reset();
        });
      });
#endif
      std::vector<double> best;
      for (const bench::Measured& m : bench::in_children_in_turn(2, sides)) best.push_back(m.seconds);
      std::vector<bench::Row> rows{{"chainrule", best[0], fmt::format("{:.3f} ms", best[0] * 1e3)}};
#ifdef CHAINRULE_BENCH_TORCH
      rows.push_back({"libtorch", best[1], fmt::format("{:.3f} ms", best[1] * 1e3)});
      bench::print_table(l.name, rows, "libtorch");
#else
      bench::print_table(l.name, rows, "chainrule");
#endif
    }
  }
}
