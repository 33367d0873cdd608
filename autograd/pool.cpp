#include "pool.hpp"

#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>

#include <pthread.h>

namespace chainrule::pool {

namespace detail {
// Defined in every build, also under AddressSanitizer where it stays empty, so that code built
// with the pool inlines against a library built without it and vice versa.
constinit thread_local Cache cache = {};
}  // namespace detail

namespace {

using detail::Cache;
using detail::FreeBlock;
using detail::kAlign;
using detail::kClasses;
using detail::kSmallClasses;
using detail::kSmallMax;
using detail::cache;

// Size classes: 64-byte steps up to 4 KiB (classes 1..64), then powers of two up to 64 MiB
// (classes 65..78). Larger blocks are not cached. Caching the large classes matters as much as
// the small ones: a training loop frees and re-allocates the same tensor buffers every step,
// and handing them back to glibc lets it trim the heap and fault the pages in again (up to
// 4 MiB until a convolution's 14 MiB columns spent a quarter of its step in page faults). The
// cost is memory held for blocks nobody asks for again: code that makes large one-off
// temporaries should make them in pieces instead (nn::init draws its values 512 KiB at a time).
//
// Small blocks (handles, nodes, small tensors) are carved one after another from 64 KiB runs,
// one run per class at a time, so the nodes of a graph made in sequence lie in sequence
// whatever was freed before. Taken one by one from glibc, their layout followed the history
// of the heap: a 10,000-link chain ran 25% slower after a different chain had run first. A
// carved block is never returned to the system, only reused (when a thread exits, its free
// blocks pass to the other threads); large blocks are cached up to kMaxCachedBytes per thread.
constexpr std::size_t kMaxCachedBytes = std::size_t(256) << 20;  // per thread, large classes
constexpr std::size_t kRunBytes = std::size_t(64) << 10;
constexpr bool is_small(std::size_t c) { return c >= 1 && c <= kSmallClasses; }

// The class of a request (0: not pooled) and the bytes a block of that class holds.
std::size_t class_of(std::size_t bytes, std::size_t* block) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallMax) {
    const std::size_t c = detail::small_class(bytes);
    *block = c * kAlign;
    return c;
  }
  const std::size_t size = std::bit_ceil(bytes);  // 8 KiB -> class 65, 16 KiB -> 66, ...
  const std::size_t c = kSmallClasses + 1 + (std::countr_zero(size) - std::countr_zero(kSmallMax * 2));
  if (c <= kClasses) {
    *block = size;
    return c;
  }
  *block = (bytes + kAlign - 1) / kAlign * kAlign;
  return 0;
}

void* system_allocate(std::size_t block) {
  void* p = std::aligned_alloc(kAlign, block);
  if (!p) throw std::bad_alloc();
  return p;
}

#if CHAINRULE_POOL
// Small blocks of exited threads, and those freed while a thread exits; taken by the next
// thread whose free list of that class runs dry. Constant-initialised, so usable from any
// destructor.
struct Orphans {
  std::mutex mutex;
  FreeBlock* head[kSmallClasses + 1] = {};
};
constinit Orphans g_orphans;
std::atomic<bool> g_have_orphans{false};

void orphan(FreeBlock* first, FreeBlock* last, std::size_t c) {
  std::lock_guard lock(g_orphans.mutex);
  last->next = g_orphans.head[c];
  g_orphans.head[c] = first;
  g_have_orphans.store(true, std::memory_order_relaxed);
}

// Made on a thread's first carved or cached block: its destructor, run at thread exit, passes
// the small free blocks and the rest of the runs to g_orphans and frees the large blocks;
// later frees (other thread_locals' destructors) go to g_orphans or the system.
struct Reaper {
  Reaper() { cache.state = Cache::live; }
  ~Reaper() {
    cache.state = Cache::dead;
    for (std::size_t c = 1; c <= kClasses; ++c) {
      FreeBlock*& h = cache.head[c];
      if (is_small(c)) {
        std::size_t block = c * kAlign;
        for (; cache.run_next[c] != cache.run_end[c]; cache.run_next[c] += block) {
          auto* b = reinterpret_cast<FreeBlock*>(cache.run_next[c]);
          b->next = h;
          h = b;
        }
        if (!h) continue;
        FreeBlock* last = h;
        while (last->next) last = last->next;
        orphan(h, last, c);
        h = nullptr;
        continue;
      }
      while (h) {
        FreeBlock* next = h->next;
        std::free(h);
        h = next;
      }
    }
    cache.cached_bytes = 0;
  }
};

[[gnu::noinline]] void start_cache() {
  // A child forked while another thread held g_orphans.mutex would wait for it forever.
  static const bool fork_safe = [] {
    pthread_atfork([] { g_orphans.mutex.lock(); }, [] { g_orphans.mutex.unlock(); },
                   [] { g_orphans.mutex.unlock(); });
    return true;
  }();
  (void)fork_safe;
  static thread_local Reaper reaper;  // NOLINT: constructed here, on the thread's first use
  (void)reaper;
}

// A small class's free list is empty: adopt orphaned blocks, else carve the next block.
[[gnu::noinline]] void* allocate_small(std::size_t c, std::size_t block) {
  if (cache.state == Cache::dead) return system_allocate(block);  // freed later, it joins g_orphans
  if (cache.state == Cache::unused) start_cache();
  if (g_have_orphans.load(std::memory_order_relaxed)) {
    std::lock_guard lock(g_orphans.mutex);
    if (FreeBlock* b = g_orphans.head[c]) {
      g_orphans.head[c] = nullptr;
      cache.head[c] = b->next;
      return b;
    }
  }
  if (cache.run_next[c] == cache.run_end[c]) {
    auto* run = static_cast<unsigned char*>(system_allocate(kRunBytes));
    cache.run_next[c] = run;
    cache.run_end[c] = run + kRunBytes / block * block;
  }
  void* p = cache.run_next[c];
  cache.run_next[c] += block;
  return p;
}
#endif

}  // namespace

void* detail::allocate_slow(std::size_t bytes) {
  std::size_t block = 0;
  const std::size_t c = class_of(bytes, &block);
#if CHAINRULE_POOL
  // Only a live cache holds blocks (and class 0 never does): no state check needed here.
  if (FreeBlock* b = cache.head[c]) {
    cache.head[c] = b->next;
    if (!is_small(c)) cache.cached_bytes -= block;
    return b;
  }
  if (is_small(c)) return allocate_small(c, block);
#else
  (void)c;
#endif
  return system_allocate(block);
}

#if CHAINRULE_POOL
namespace {
bool push(void* p, std::size_t c, std::size_t block) {
  if (c == 0 || cache.state != Cache::live) return false;
  if (!is_small(c)) {
    if (cache.cached_bytes + block > kMaxCachedBytes) return false;
    cache.cached_bytes += block;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = cache.head[c];
  cache.head[c] = b;
  return true;
}
}  // namespace
#endif

void detail::deallocate_slow(void* p, std::size_t bytes) noexcept {
#if CHAINRULE_POOL
  if (!p) return;
  std::size_t block = 0;
  const std::size_t c = class_of(bytes, &block);
  if (push(p, c, block)) return;
  if (cache.state == Cache::unused) {
    start_cache();
    if (push(p, c, block)) return;
  }
  if (is_small(c)) {  // part of a run: never to the system
    auto* b = static_cast<FreeBlock*>(p);
    orphan(b, b, c);
    return;
  }
  std::free(p);
#else
  (void)bytes;
  std::free(p);
#endif
}

}  // namespace chainrule::pool
