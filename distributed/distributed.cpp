#include "distributed.hpp"

#include "../autograd/kernels.hpp"

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <thread>

namespace chainrule::distributed {

namespace {

// The process's one MPI session. MPI is process-wide, so this is too.
struct State {
  bool active = false;
  bool broken = false;  // a collective failed: finalising would wait for the missing rank
  int rank = 0, size = 1;
  MPI_Comm comm = MPI_COMM_NULL;  // a private duplicate of MPI_COMM_WORLD
  std::chrono::milliseconds timeout{};
};
State state;

const State& active(const char* op) {
  if (!state.active)
    throw DistributedError(fmt::format("distributed::{}: no Session; create a chainrule::distributed::Session "
                                       "(after main's argc/argv) before any collective",
                                       op));
  if (state.broken)
    throw DistributedError(fmt::format("distributed::{}: an earlier collective failed on rank {}; the job cannot "
                                       "continue (the Session aborts it when it goes out of scope)",
                                       op, state.rank));
  return state;
}

[[noreturn]] void broken(std::string message) {
  state.broken = true;
  throw DistributedError(std::move(message));
}

void check(int rc, const char* op, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  broken(fmt::format("distributed::{}: {} failed on rank {} of {}: {}", op, call, state.rank, state.size,
                     std::string(text, static_cast<size_t>(len))));
}

// Polls the requests until all are done or the timeout passes. Spinning first keeps a
// quick collective quick; a long wait yields the core, then sleeps between polls. `what()`
// describes the collective for the timeout message (built only then, not on every call).
template <class Describe>
void wait_all(std::vector<MPI_Request>& requests, const char* op, Describe what) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now(), deadline = start + state.timeout;
  for (int64_t polls = 0;; ++polls) {
    int done = 0;
    check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE), op,
          "MPI_Testall");
    if (done) return;
    const auto now = clock::now();
    if (now >= deadline)
      broken(fmt::format(
          "distributed::{}: {} did not finish within {} ms on rank {} of {}: another rank died, is stuck, or did not "
          "make the same call (raise Options::timeout if a rank legitimately needs longer)",
          op, what(), state.timeout.count(), state.rank, state.size));
    if (now - start > std::chrono::milliseconds(100)) std::this_thread::sleep_for(std::chrono::microseconds(200));
    else if (polls > 10000) std::this_thread::yield();
  }
}

MPI_Datatype mpi_type(Dtype d) {
  switch (d) {
    case Dtype::float32: return MPI_FLOAT;
    case Dtype::float64: return MPI_DOUBLE;
    case Dtype::int64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

void check_root(int root, const State& s, const char* op) {
  if (root < 0 || root >= s.size)
    throw DistributedError(fmt::format("distributed::{}: root {} is not a rank of this world of {}", op, root, s.size));
}

struct Bucket {
  Dtype dtype;
  std::vector<size_t> members;  // indices into the tensor list
  int64_t numel = 0;
};

// Consecutive tensors of one dtype share a bucket up to bucket_bytes; a tensor larger than
// that is a bucket of its own. Every rank computes the same plan from the same shapes.
std::vector<Bucket> plan(const std::vector<Tensor>& tensors, int64_t bucket_bytes, const char* op) {
  if (bucket_bytes < 1) throw DistributedError(fmt::format("distributed::{}: bucket_bytes must be >= 1, got {}", op, bucket_bytes));
  std::vector<Bucket> buckets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined())
      throw DistributedError(fmt::format("distributed::{}: tensor {} of {} is undefined", op, i, tensors.size()));
    if (!tensors[i].is_contiguous())  // the result is written back into it: refused before any rank communicates
      kernels::check_no_internal_overlap(tensors[i], fmt::format("distributed::{}: tensor {} of {}", op, i, tensors.size()).c_str());
    const Dtype d = tensors[i].dtype();
    const int64_t n = tensors[i].numel();
    if (buckets.empty() || buckets.back().dtype != d ||
        (buckets.back().numel + n) * static_cast<int64_t>(dtype_size(d)) > bucket_bytes)
      buckets.push_back({d, {}, 0});
    buckets.back().members.push_back(i);
    buckets.back().numel += n;
    if (buckets.back().numel > INT_MAX)
      throw DistributedError(fmt::format("distributed::{}: tensor {} ({}) has more than {} elements, MPI's count limit; "
                                         "split it",
                                         op, i, describe(tensors[i]), INT_MAX));
  }
  return buckets;
}

// Packs each bucket into one contiguous buffer (a lone contiguous tensor is its own buffer),
// starts `start(buffer, bucket)` for all of them, waits, lets `finish` adjust each buffer, and
// copies the results back in place (copy_ also bumps the version of a tensor reduced in place).
template <class Start, class Finish>
void bucketed(const std::vector<Tensor>& tensors, int64_t bucket_bytes, const char* op, Start start, Finish finish) {
  const std::vector<Bucket> buckets = plan(tensors, bucket_bytes, op);
  NoGradGuard no_grad;
  std::vector<Tensor> buffers;
  std::vector<MPI_Request> requests(buckets.size(), MPI_REQUEST_NULL);
  int64_t total_bytes = 0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    std::vector<Tensor> parts;
    for (size_t i : buckets[b].members) parts.push_back(tensors[i].detach().reshape({-1}));
    // One contiguous tensor is reduced where it lies (reshape made a copy if it was strided).
    buffers.push_back(parts.size() == 1 ? parts[0] : cat(parts));
    total_bytes += buckets[b].numel * static_cast<int64_t>(dtype_size(buckets[b].dtype));
    requests[b] = start(buffers[b], buckets[b]);
  }
  wait_all(requests, op, [&] {
    return fmt::format("{} of {} tensor{} ({} bytes in {} bucket{})", op, tensors.size(), tensors.size() == 1 ? "" : "s",
                       total_bytes, buckets.size(), buckets.size() == 1 ? "" : "s");
  });
  for (size_t b = 0; b < buckets.size(); ++b) {
    finish(buffers[b]);
    int64_t offset = 0;
    for (size_t i : buckets[b].members) {
      Tensor t = tensors[i];
      t.copy_(buffers[b].narrow(0, offset, t.numel()).view(t.shape()));
      offset += t.numel();
    }
  }
}

}  // namespace

Session::Session(int& argc, char**& argv, Options options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (state.active || initialized)
    throw DistributedError("distributed::Session: MPI is already initialised in this process; create one Session");
  if (options.timeout.count() <= 0)
    throw DistributedError(fmt::format("distributed::Session: timeout must be positive, got {} ms", options.timeout.count()));
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw DistributedError("distributed::Session: MPI_Init_thread failed (is this an MPI launch? try mpirun -np 2 ...)");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_dup(MPI_COMM_WORLD, &state.comm);
  MPI_Comm_set_errhandler(state.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(state.comm, &state.rank);
  MPI_Comm_size(state.comm, &state.size);
  state.timeout = options.timeout;
  state.broken = false;
  state.active = true;
}

Session::~Session() {
  if (state.broken) {
    std::fprintf(stderr, "chainrule::distributed: rank %d aborts the job after a failed collective\n", state.rank);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Comm_free(&state.comm);
  state = State{};
  MPI_Finalize();
}

int Session::rank() const { return state.rank; }
int Session::world_size() const { return state.size; }

bool is_initialized() { return state.active; }
int rank() { return state.rank; }
int world_size() { return state.size; }
std::chrono::milliseconds timeout() { return state.timeout; }
void set_timeout(std::chrono::milliseconds timeout) {
  active("set_timeout");
  if (timeout.count() <= 0)
    throw DistributedError(fmt::format("distributed::set_timeout: timeout must be positive, got {} ms", timeout.count()));
  state.timeout = timeout;
}

void all_reduce(const std::vector<Tensor>& tensors, ReduceOp op, int64_t bucket_bytes) {
  const State& s = active("all_reduce");
  for (const Tensor& t : tensors)
    if (op == ReduceOp::average && t.defined() && !is_floating(t.dtype()))
      throw DistributedError(fmt::format("distributed::all_reduce: ReduceOp::average needs floating tensors, got {}; "
                                         "use ReduceOp::sum for counts",
                                         describe(t)));
  const MPI_Op mpi_op = op == ReduceOp::max ? MPI_MAX : op == ReduceOp::min ? MPI_MIN : MPI_SUM;
  bucketed(
      tensors, bucket_bytes, "all_reduce",
      [&](const Tensor& buffer, const Bucket& b) {
        MPI_Request r = MPI_REQUEST_NULL;
        check(MPI_Iallreduce(MPI_IN_PLACE, buffer.raw_data(), static_cast<int>(b.numel), mpi_type(b.dtype), mpi_op, s.comm, &r),
              "all_reduce", "MPI_Iallreduce");
        return r;
      },
      [&](Tensor& buffer) {  // division, not a multiplication by 1/N: one rounding, as in one process
        if (op == ReduceOp::average) buffer.div_(static_cast<double>(s.size));
      });
}

void broadcast(const std::vector<Tensor>& tensors, int root, int64_t bucket_bytes) {
  const State& s = active("broadcast");
  check_root(root, s, "broadcast");
  bucketed(
      tensors, bucket_bytes, "broadcast",
      [&](const Tensor& buffer, const Bucket& b) {
        MPI_Request r = MPI_REQUEST_NULL;
        check(MPI_Ibcast(buffer.raw_data(), static_cast<int>(b.numel), mpi_type(b.dtype), root, s.comm, &r), "broadcast",
              "MPI_Ibcast");
        return r;
      },
      [](Tensor&) {});
}

void barrier() {
  const State& s = active("barrier");
  std::vector<MPI_Request> r(1, MPI_REQUEST_NULL);
  check(MPI_Ibarrier(s.comm, r.data()), "barrier", "MPI_Ibarrier");
  wait_all(r, "barrier", [] { return "the barrier"; });
}

// ---------------------------------------------------------------- DataParallel

DataParallel::DataParallel(std::vector<Tensor> parameters, DataParallelOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  const State& s = active("DataParallel");
  (void)plan(parameters_, options_.bucket_bytes, "DataParallel");
  check_root(options_.root, s, "DataParallel");
  // Every rank must hold the same list of shapes and dtypes, or the buckets would not line up.
  uint64_t signature = 1469598103934665603ull;  // FNV-1a over (dtype, dims...) of each parameter
  auto mix = [&](uint64_t v) { signature = (signature ^ v) * 1099511628211ull; };
  std::string mine;
  for (const Tensor& p : parameters_) {
    mix(static_cast<uint64_t>(p.dtype()) + 1000);
    for (int64_t d : p.shape()) mix(static_cast<uint64_t>(d));
    mine += fmt::format("{}{} {}", mine.empty() ? "" : ", ", p.shape(), p.dtype());
  }
  std::vector<int64_t> all(2 * static_cast<size_t>(s.size));
  const int64_t here[2] = {static_cast<int64_t>(parameters_.size()), static_cast<int64_t>(signature)};
  std::vector<MPI_Request> r(1, MPI_REQUEST_NULL);
  check(MPI_Iallgather(here, 2, MPI_INT64_T, all.data(), 2, MPI_INT64_T, s.comm, r.data()), "DataParallel",
        "MPI_Iallgather");
  wait_all(r, "DataParallel", [] { return "comparing the parameter lists"; });
  for (int other = 0; other < s.size; ++other)
    if (all[2 * other] != here[0] || all[2 * other + 1] != here[1])
      throw DistributedError(fmt::format(
          "distributed::DataParallel: rank {} holds {} parameters ({}) but rank {} holds {} parameters of other shapes "
          "or dtypes; every rank must build the same model",
          s.rank, parameters_.size(), mine, other, all[2 * other]));
  broadcast_parameters();
}

void DataParallel::broadcast_parameters() { broadcast(parameters_, options_.root, options_.bucket_bytes); }

void DataParallel::average_gradients() {
  std::vector<Tensor> grads;
  grads.reserve(parameters_.size());
  for (Tensor& p : parameters_) {
    if (!p.requires_grad()) continue;  // frozen (on every rank): no gradient to average, and none to make
    if (!p.grad().defined()) p.set_grad(zeros_like(p));
    grads.push_back(p.grad());
  }
  all_reduce(grads, ReduceOp::average, options_.bucket_bytes);
}

int64_t DataParallel::num_buckets() const {
  return static_cast<int64_t>(plan(parameters_, options_.bucket_bytes, "DataParallel").size());
}

std::shared_ptr<nn::data::DistributedSampler> make_sampler(uint64_t seed, bool shuffle, bool drop_last) {
  return std::make_shared<nn::data::DistributedSampler>(nn::data::DistributedSamplerOptions{
      .num_replicas = world_size(), .rank = rank(), .shuffle = shuffle, .seed = seed, .drop_last = drop_last});
}

}  // namespace chainrule::distributed
