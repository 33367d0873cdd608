// The helper pool behind parallel_for: threads started on first use (as many as
// get_num_threads() asks for, less one for the caller), each serving one piece of every loop.
// A job is published by bumping `epoch`; every started helper acknowledges it by lowering
// `pending` (those beyond the job's thread count without work), so the next job's fields are
// never written while a helper may still read them.
#include "parallel.hpp"

#include "tensor.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <system_error>
#include <thread>
#include <utility>

namespace chainrule::kernels::detail {

namespace {

constexpr int kMaxHelpers = 63;

struct Pool {
  std::atomic<bool> busy{false};    // a job is running (others run on their own thread)
  std::atomic<uint32_t> epoch{0};   // bumped to publish a job
  std::atomic<int> pending{0};      // helpers that have not finished the current job
  int helpers = 0;                  // started so far; only the thread holding `busy` changes it
  // The job, written before `epoch` is bumped and read by helpers after they see it.
  PieceFn piece = nullptr;
  void* body = nullptr;
  int64_t n = 0, chunk = 0;
  int parties = 0;
  // The first exception a piece threw (a user's function in make_unary, say), rethrown on the
  // calling thread once every piece has finished. Before, one thrown on a helper ended the
  // process (std::terminate), and one thrown by the caller's own piece returned while helpers
  // still ran on its destroyed stack frame, with the pool left busy for good.
  std::atomic<bool> failed{false};
  std::exception_ptr error;

  void run_piece(int k) noexcept {
    const int64_t begin = std::min(n, k * chunk), end = std::min(n, begin + chunk);
    if (begin >= end) return;
    try {
      piece(body, begin, end);
    } catch (...) {
      if (!failed.exchange(true, std::memory_order_relaxed)) error = std::current_exception();
    }
  }

  // A helper sleeps between jobs (std::atomic::wait: a short poll, then a futex). Polling for
  // long, as OpenBLAS's own workers do, took the matrix products' cores from them: with a
  // helper polling for up to 20 ms, the 784-1024-1024-10 MLP's forward and backward took up
  // to 35% longer (9-35% in four of six runs).
  [[noreturn]] void serve(int k, uint32_t seen) {
    for (;;) {
      epoch.wait(seen, std::memory_order_acquire);
      const uint32_t e = epoch.load(std::memory_order_acquire);
      if (e == seen) continue;  // woken spuriously
      seen = e;
      if (k < parties) run_piece(k);
      pending.fetch_sub(1, std::memory_order_release);
    }
  }
};

Pool* g_pool = nullptr;

Pool& pool() {
  static const bool made = [] {
    g_pool = new Pool;  // never freed: helpers serve it until the process ends
    // A forked child has none of the parent's helpers; it starts its own.
    pthread_atfork(nullptr, nullptr, [] {
      g_pool->busy.store(false);
      g_pool->pending.store(0);
      g_pool->helpers = 0;
      g_pool->failed.store(false);
      g_pool->error = nullptr;
    });
    return true;
  }();
  (void)made;
  return *g_pool;
}

}  // namespace

void parallel_run(int64_t n, int64_t work, PieceFn piece, void* body, int64_t align) {
  const int64_t useful = std::min(work / kParallelGrain, (n + align - 1) / align);
  const int threads = static_cast<int>(std::min<int64_t>({get_num_threads(), useful, kMaxHelpers + 1}));
  Pool& p = pool();
  if (threads < 2 || p.busy.exchange(true, std::memory_order_acquire)) {
    piece(body, 0, n);
    return;
  }
  try {
    for (; p.helpers < threads - 1; ++p.helpers) {
      const int k = p.helpers + 1;
      std::thread([&p, k, seen = p.epoch.load()] { p.serve(k, seen); }).detach();
    }
  } catch (const std::system_error&) {  // no more threads to be had: use those there are
  }
  const int parties = std::min(threads, p.helpers + 1);
  if (parties < 2) {
    p.busy.store(false, std::memory_order_release);
    piece(body, 0, n);
    return;
  }
  p.piece = piece;
  p.body = body;
  p.n = n;
  p.parties = parties;
  p.chunk = ((n + parties - 1) / parties + align - 1) / align * align;
  p.pending.store(p.helpers, std::memory_order_relaxed);
  p.epoch.fetch_add(1, std::memory_order_release);
  p.epoch.notify_all();
  p.run_piece(0);
  for (int polls = 1; p.pending.load(std::memory_order_acquire) != 0; ++polls)
    if (polls > 256) std::this_thread::yield();
  std::exception_ptr error;
  if (p.failed.load(std::memory_order_relaxed)) {  // every helper is done: nothing writes these now
    error = std::exchange(p.error, nullptr);
    p.failed.store(false, std::memory_order_relaxed);
  }
  p.busy.store(false, std::memory_order_release);
  if (error) std::rethrow_exception(error);
}

}  // namespace chainrule::kernels::detail
