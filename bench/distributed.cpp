// chainrule::distributed against raw MPI, under mpirun: averaging the gradients of the
// Fashion-MNIST model (784-256-128-10, 235,146 float32) with DataParallel, bucketed or per
// tensor, next to one blocking MPI_Allreduce of the same bytes; and the share of a training
// step (batch 64 per rank) the averaging takes.
//   mpirun -np 2 --allow-run-as-root build-release/bench/distributed
#include "common.hpp"

#include <chainrule.hpp>
#include <distributed/distributed.hpp>

#include <mpi.h>

namespace cr = chainrule;
namespace dist = cr::distributed;
namespace F = cr::nn::functional;

namespace {

// Best of `reps`, every rank starting together (a barrier before each run).
double timed(int reps, const std::function<void()>& f) {
  return bench::best_of(reps, [&] {
    MPI_Barrier(MPI_COMM_WORLD);
    f();
  });
}

}  // namespace

int main(int argc, char** argv) {
  dist::Session session(argc, argv);
  cr::set_num_threads(1);
  const int reps = argc > 1 ? std::atoi(argv[1]) : 200;
  cr::Generator gen(1);
  cr::nn::MLP model({784, 256, 128, 10}, {.generator = &gen});
  dist::DataParallel bucketed(model.parameters());
  dist::DataParallel small_buckets(model.parameters(), {.bucket_bytes = 64 << 10});
  dist::DataParallel per_tensor(model.parameters(), {.bucket_bytes = 1});
  int64_t n = 0;
  for (cr::Tensor& p : model.parameters()) {
    p.set_grad(cr::randn(p.shape(), cr::float32, &gen));
    n += p.numel();
  }
  std::vector<float> raw(static_cast<size_t>(n), 1.0f);
  const double world = dist::world_size();

  const cr::Tensor x = cr::rand({64, 784}, cr::float32, &gen);
  const cr::Tensor y = cr::randint(0, 10, {64}, cr::int64, &gen);
  cr::optim::SGD sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9, .nesterov = true});
  auto step = [&](bool average) {
    sgd.zero_grad();
    F::cross_entropy(model(x), y).backward();
    if (average) bucketed.average_gradients();
    sgd.step();
  };

  const std::string bytes = fmt::format("{:.2f} MB", static_cast<double>(n) * 4 / 1e6);
  std::vector<bench::Row> rows = {
      {"MPI_Allreduce (raw, blocking)", timed(reps, [&] {
         MPI_Allreduce(MPI_IN_PLACE, raw.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
         for (float& v : raw) v = static_cast<float>(v / world);
       }), bytes},
      {"average_gradients, 25 MiB buckets", timed(reps, [&] { bucketed.average_gradients(); }),
       fmt::format("{} call", bucketed.num_buckets())},
      {"average_gradients, 64 KiB buckets", timed(reps, [&] { small_buckets.average_gradients(); }),
       fmt::format("{} calls", small_buckets.num_buckets())},
      {"average_gradients, per tensor", timed(reps, [&] { per_tensor.average_gradients(); }),
       fmt::format("{} calls", per_tensor.num_buckets())},
      {"training step, batch 64 per rank", timed(reps / 4, [&] { step(true); }), "with averaging"},
      {"training step without averaging", timed(reps / 4, [&] { step(false); }), "(not in step)"},
  };
  if (dist::rank() == 0)
    bench::print_table(fmt::format("Gradient averaging over {} ranks (1 BLAS thread each), best of {}", dist::world_size(), reps),
                       rows, "MPI_Allreduce (raw, blocking)");
  return 0;
}
