/// \file
/// chainrule::distributed: data-parallel training over MPI (Open MPI from Debian).
///
/// Every rank runs the same program on its own shard of the data; gradients are averaged
/// across ranks after backward, so every rank takes the same optimizer step:
///
///   cr::distributed::Session session(argc, argv);          // MPI from mpirun's environment
///   cr::distributed::DataParallel ddp(model.parameters());  // rank 0's parameters everywhere
///   DataLoader loader(data, {.batch_size = B, .sampler = cr::distributed::make_sampler(seed)});
///   ... loss.backward(); ddp.average_gradients(); optimizer.step();
///
/// Every collective runs non-blocking and is polled against a deadline (Options::timeout):
/// when a rank dies or stops taking part, the others throw DistributedError naming the
/// collective instead of waiting forever, and the Session aborts the job on its way out.
/// An optional component: built when meson finds MPI (`chainrule-distributed`).
#pragma once

#include "../autograd/autograd.hpp"
#include "../nn/data.hpp"

#include <chrono>
#include <memory>
#include <vector>

namespace chainrule::distributed {

/// A collective that timed out, an MPI error, or ranks that disagree (shapes, dtypes).
class DistributedError : public Error {
 public:
  using Error::Error;  ///< an error with a message
};

/// Session options.
struct Options {
  std::chrono::milliseconds timeout = std::chrono::minutes(5);  ///< for every collective call
};

/// Initialises MPI from the environment mpirun sets up (a plain run is a world of one) and
/// finalises it when it goes out of scope. One per process, before any collective. If a
/// collective failed, the destructor calls MPI_Abort instead of MPI_Finalize, which would
/// wait for the missing rank; mpirun then stops the other ranks too.
class Session {
 public:
  /// MPI_Init_thread from main's arguments; a DistributedError if MPI is already initialised or fails.
  Session(int& argc, char**& argv, Options options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  int rank() const;  ///< this process's rank, 0..world_size()-1
  int world_size() const;  ///< the number of ranks
};

bool is_initialized();  ///< a Session is alive
int rank();             ///< 0 without a Session
int world_size();       ///< 1 without a Session
std::chrono::milliseconds timeout();  ///< the deadline of every collective
void set_timeout(std::chrono::milliseconds timeout);  ///< changes the deadline of the collectives that follow

/// How all_reduce combines the ranks' values.
enum class ReduceOp {
  sum,      ///< the sum over ranks
  average,  ///< the sum divided by world_size() (floating tensors)
  max,      ///< the largest value
  min,      ///< the smallest value
};

inline constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;  ///< PyTorch DDP's bucket_cap_mb = 25

/// In place on every rank: each tensor becomes the reduction over all ranks. The tensors are
/// packed into buckets of at most `bucket_bytes` (consecutive tensors of one dtype; a larger
/// tensor is a bucket of its own), one non-blocking MPI call per bucket, all in flight at
/// once. Every rank passes tensors of the same shapes and dtypes in the same order. An
/// expanded tensor (stride 0; it cannot hold a result per element) is an Error before any
/// rank communicates.
/// ReduceOp::average divides the sum by world_size() (floating-point tensors only).
void all_reduce(const std::vector<Tensor>& tensors, ReduceOp op = ReduceOp::sum,
                int64_t bucket_bytes = kDefaultBucketBytes);
/// In place: every rank's tensors become the root's.
void broadcast(const std::vector<Tensor>& tensors, int root = 0, int64_t bucket_bytes = kDefaultBucketBytes);
/// Returns when every rank has called it (or throws after the timeout).
void barrier();

/// DataParallel's options.
struct DataParallelOptions {
  int64_t bucket_bytes = kDefaultBucketBytes;  ///< the largest bucket of gradients sent in one MPI call
  int root = 0;  ///< whose initial parameters everybody starts from
};

/// Data-parallel training of a fixed set of parameters. The constructor checks that every
/// rank holds parameters of the same shapes and dtypes (a DistributedError names the first
/// difference otherwise) and broadcasts the root's values. After each backward,
/// average_gradients() replaces every .grad by its mean over ranks; a parameter without a
/// gradient on some rank counts as a zero gradient there (and gets a defined .grad); a frozen
/// one (requires_grad off, the same on every rank) is skipped.
/// With mean-reduced losses and equal per-rank batches B, N ranks then take exactly the
/// step of one process with batch N*B.
class DataParallel {
 public:
  /// Checks the ranks' parameter lists agree, then broadcast_parameters().
  explicit DataParallel(std::vector<Tensor> parameters, DataParallelOptions options = {});
  void broadcast_parameters();  ///< every rank's parameters become the root's (in place)
  void average_gradients();  ///< after backward: every .grad becomes its mean over the ranks
  const std::vector<Tensor>& parameters() const { return parameters_; }  ///< the parameters it keeps in step
  int64_t num_buckets() const;  ///< MPI calls per average_gradients()

 private:
  std::vector<Tensor> parameters_;
  DataParallelOptions options_;
};

/// A DistributedSampler for this rank of this world, every rank with the shared `seed`.
std::shared_ptr<nn::data::DistributedSampler> make_sampler(uint64_t seed, bool shuffle = true, bool drop_last = false);

}  // namespace chainrule::distributed
