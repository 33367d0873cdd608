// chainrule::distributed under mpirun: collectives (every op, dtype, several buckets,
// non-contiguous tensors), DataParallel's broadcast and model check, and the contract of
// issue #10: N ranks with batch B take exactly the steps of one process with batch N*B.
// Every rank runs every test case in the same order (the collectives pair up); run with
//   mpirun -np 2 --allow-run-as-root --oversubscribe build/tests/distributed/distributed_tests
// or without mpirun (a world of one).
#define DOCTEST_CONFIG_IMPLEMENT
#include "../helpers.hpp"

#include <distributed/distributed.hpp>

#include <cmath>

namespace dist = cr::distributed;
namespace D = cr::nn::data;
namespace F = cr::nn::functional;

namespace {

double max_relative_difference(const std::vector<cr::Tensor>& a, const std::vector<cr::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = a[i].to_vector<double>(), y = b[i].to_vector<double>();
    for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::abs(x[k] - y[k]) / std::max(1.0, std::abs(y[k])));
  }
  return worst;
}

// K steps of training a small tanh MLP (float64, mean cross-entropy) with `make_optimizer`.
// world = 1: one process, batch N*B, shuffled with `seed`. Otherwise this rank's shard of
// batch B from a DistributedSampler of the same seed, gradients averaged by DataParallel.
template <class MakeOptimizer>
std::vector<cr::Tensor> train(bool distributed, int64_t N, int64_t B, int64_t steps, MakeOptimizer make_optimizer,
                              int64_t bucket_bytes) {
  cr::Generator data_gen(99);
  const cr::Tensor x = cr::randn({96, 5}, cr::float64, &data_gen);
  const cr::Tensor y = cr::randint(0, 3, {96}, cr::int64, &data_gen);
  auto dataset = std::make_shared<D::TensorDataset>(x, y);
  // Rank-dependent initialisation: DataParallel must replace it with rank 0's.
  cr::Generator init(distributed ? 1000 + static_cast<uint64_t>(dist::rank()) : 1000);
  cr::nn::MLP model({5, 16, 16, 3}, {.activation = std::string("tanh"), .dtype = cr::float64, .generator = &init});
  std::unique_ptr<dist::DataParallel> ddp;
  if (distributed) ddp = std::make_unique<dist::DataParallel>(model.parameters(), dist::DataParallelOptions{.bucket_bytes = bucket_bytes});
  auto optimizer = make_optimizer(model.parameters());
  const D::DataLoader loader(dataset, distributed ? D::DataLoaderOptions{.batch_size = B, .sampler = dist::make_sampler(5)}
                                                  : D::DataLoaderOptions{.batch_size = N * B, .shuffle = true, .seed = 5});
  int64_t step = 0;
  for (int64_t epoch = 0; step < steps; ++epoch)
    for (const D::Batch& b : loader.epoch(epoch)) {
      if (step++ == steps) break;
      optimizer.zero_grad();
      F::cross_entropy(model(b.inputs), b.targets).backward();
      if (ddp) ddp->average_gradients();
      optimizer.step();
    }
  std::vector<cr::Tensor> out;
  for (const cr::Tensor& p : model.parameters()) out.push_back(p.detach().clone());
  return out;
}

}  // namespace

TEST_CASE("distributed: the world") {
  REQUIRE(dist::is_initialized());
  CHECK(dist::world_size() >= 1);
  CHECK(dist::rank() >= 0);
  CHECK(dist::rank() < dist::world_size());
  dist::barrier();
}

TEST_CASE("distributed: all_reduce (sum, average, max, min) over dtypes, buckets, strided views") {
  const double r = dist::rank(), n = dist::world_size();
  const double sum_r = n * (n - 1) / 2;  // 0 + 1 + ... + (n-1)
  for (int64_t bucket_bytes : {int64_t{16}, int64_t{100}, dist::kDefaultBucketBytes}) {
    CAPTURE(bucket_bytes);
    // float64 [2, 3] holding k + r, float32 [4] holding 10r, a transposed float64 view, int64 counts.
    cr::Tensor a = cr::arange(6, cr::float64).reshape({2, 3}) + r;
    cr::Tensor b = cr::full({4}, 10 * r, cr::float32);
    cr::Tensor base = cr::arange(6, cr::float64).reshape({3, 2}) * (r + 1);
    cr::Tensor view = base.t();  // non-contiguous: the result must land in base's storage
    cr::Tensor c = cr::full({3}, r + 1, cr::int64);
    dist::all_reduce({a, b, view, c}, dist::ReduceOp::sum, bucket_bytes);
    for (int k = 0; k < 6; ++k) CHECK(values(a)[k] == n * k + sum_r);
    CHECK(values(b) == std::vector<double>(4, 10 * sum_r));
    for (int k = 0; k < 6; ++k) CHECK(values(base)[k] == k * (sum_r + n));
    CHECK(values(c) == std::vector<double>(3, sum_r + n));

    cr::Tensor avg = cr::full({5}, r, cr::float64);
    cr::Tensor mx = cr::tensor({r, -r}, cr::float64), mn = cr::tensor({r, -r}, cr::float64);
    dist::all_reduce({avg}, dist::ReduceOp::average, bucket_bytes);
    dist::all_reduce({mx}, dist::ReduceOp::max, bucket_bytes);
    dist::all_reduce({mn}, dist::ReduceOp::min, bucket_bytes);
    CHECK(values(avg) == std::vector<double>(5, sum_r / n));
    CHECK(values(mx) == std::vector<double>{n - 1, 0});
    CHECK(values(mn) == std::vector<double>{0, -(n - 1)});
  }
  // The empty list is a no-op on every rank.
  dist::all_reduce({});
  // Local misuse fails before any rank calls MPI, so the ranks stay in step.
  check_error([] { dist::all_reduce({cr::ones({2}, cr::int64)}, dist::ReduceOp::average); },
              {"all_reduce", "average", "int64"});
  check_error([] { dist::all_reduce({cr::Tensor()}); }, {"all_reduce", "undefined"});
  check_error([] { dist::broadcast({cr::ones({2})}, dist::world_size()); }, {"broadcast", "root"});
  check_error([] { dist::all_reduce({cr::ones({2})}, dist::ReduceOp::sum, 0); }, {"bucket_bytes"});
  // An expanded tensor cannot take the result (several elements are one memory location): the
  // error comes before any rank communicates, names the collective, and leaves the tensors
  // before it in the list unchanged (it came from copy_ after the reduction, half the list
  // already written).
  cr::Tensor first = cr::full({2}, r, cr::float64);
  const cr::Tensor expanded = cr::full({1}, r, cr::float64).expand({3});
  check_error([&] { dist::all_reduce({first, expanded}); }, {"distributed::all_reduce", "tensor 1 of 2", "expanded"});
  check_error([&] { dist::broadcast({first, expanded}); }, {"distributed::broadcast", "tensor 1 of 2", "expanded"});
  CHECK(values(first) == std::vector<double>(2, r));
}

TEST_CASE("distributed: broadcast from the last rank") {
  const int root = dist::world_size() - 1;
  cr::Tensor a = cr::full({3, 2}, dist::rank(), cr::float32), b = cr::full({7}, 100 + dist::rank(), cr::float64);
  dist::broadcast({a, b}, root, 8);
  CHECK(values(a) == std::vector<double>(6, root));
  CHECK(values(b) == std::vector<double>(7, 100 + root));
}

TEST_CASE("distributed: DataParallel broadcasts rank 0's parameters, buckets, checks the models agree") {
  cr::Generator mine(7 + static_cast<uint64_t>(dist::rank())), rank0(7);
  cr::nn::MLP model({4, 8, 2}, {.dtype = cr::float64, .generator = &mine});
  cr::nn::MLP expected({4, 8, 2}, {.dtype = cr::float64, .generator = &rank0});
  dist::DataParallel ddp(model.parameters(), {.bucket_bytes = 8 * 40});
  CHECK(max_relative_difference(model.parameters(), expected.parameters()) == 0);
  CHECK(ddp.num_buckets() == 2);  // 4*8 + 8 doubles, then 8*2 + 2
  CHECK(dist::DataParallel(model.parameters()).num_buckets() == 1);

  // Gradients: rank r's gradient is r + 1 everywhere, the average (n + 1) / 2; a parameter
  // without a gradient on this rank counts as zeros.
  const double n = dist::world_size();
  for (cr::Tensor& p : model.parameters()) p.set_grad(cr::full_like(p, dist::rank() + 1));
  model.parameters().back().set_grad(cr::Tensor());
  ddp.average_gradients();
  auto params = model.parameters();
  for (size_t i = 0; i + 1 < params.size(); ++i)
    CHECK(values(params[i].grad()) == std::vector<double>(static_cast<size_t>(params[i].numel()), (n + 1) / 2));
  CHECK(values(params.back().grad()) == std::vector<double>(2, 0.0));
  // A frozen parameter (requires_grad off on every rank) is left without a gradient: a zero one
  // would let weight decay or momentum move it in an optimizer that skips it otherwise.
  params.front().requires_grad_(false);
  params.front().set_grad(cr::Tensor());
  ddp.average_gradients();
  CHECK_FALSE(params.front().grad().defined());
  const auto frozen = values(params.front());
  cr::optim::SGD(params, {.lr = 0.1, .weight_decay = 0.5}).step();
  CHECK(values(params.front()) == frozen);
  params.front().requires_grad_(true);

  // A root that is not a rank is refused by the constructor, before it compares the models.
  check_error([&] { dist::DataParallel bad(model.parameters(), {.root = dist::world_size()}); },
              {"distributed::DataParallel", "root", "not a rank"});

  // A rank with a different model: every rank gets the error, none hangs.
  cr::nn::MLP odd({4, dist::rank() == 0 ? 8 : 9, 2}, {.dtype = cr::float64});
  if (dist::world_size() > 1)
    check_error([&] { dist::DataParallel bad(odd.parameters()); }, {"DataParallel", "rank", "same model"});
}

TEST_CASE("distributed: N ranks with batch B equal one process with batch N*B (float64, 1e-12)") {
  const int64_t N = dist::world_size(), B = 4, K = 30;  // 96 / (N*B) steps per epoch: K spans epochs
  auto sgd = [](std::vector<cr::Tensor> p) {
    return cr::optim::SGD(std::move(p), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  };
  auto adam = [](std::vector<cr::Tensor> p) { return cr::optim::Adam(std::move(p), {.lr = 0.01}); };
  for (int64_t bucket_bytes : {int64_t{512}, dist::kDefaultBucketBytes}) {
    CAPTURE(bucket_bytes);
    const auto single_sgd = train(false, N, B, K, sgd, bucket_bytes), ranks_sgd = train(true, N, B, K, sgd, bucket_bytes);
    const auto single_adam = train(false, N, B, K, adam, bucket_bytes), ranks_adam = train(true, N, B, K, adam, bucket_bytes);
    const double d_sgd = max_relative_difference(ranks_sgd, single_sgd), d_adam = max_relative_difference(ranks_adam, single_adam);
    MESSAGE("rank " << dist::rank() << " of " << N << ": max relative difference SGD " << d_sgd << ", Adam " << d_adam);
    CHECK(d_sgd <= 1e-12);
    CHECK(d_adam <= 1e-12);
    // The steps moved the parameters (the comparison is not between two untouched models).
    cr::Generator init(1000);
    cr::nn::MLP start({5, 16, 16, 3}, {.activation = std::string("tanh"), .dtype = cr::float64, .generator = &init});
    CHECK(max_relative_difference(ranks_sgd, start.parameters()) > 1e-3);
  }
}

int main(int argc, char** argv) {
  dist::Session session(argc, argv, {.timeout = std::chrono::seconds(60)});
  doctest::Context context(argc, argv);
  if (dist::rank() != 0) context.setOption("out", "/dev/null");  // one rank's report; failures still set the exit code
  const int failed = context.run();
  // Every rank learns whether any failed, so mpirun's exit code reflects the whole job.
  cr::Tensor flag = cr::tensor(failed ? 1.0 : 0.0, cr::int64);
  dist::all_reduce({flag}, dist::ReduceOp::max);
  return flag.item<int64_t>() != 0 ? 1 : 0;
}
