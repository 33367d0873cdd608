#include "pool.hpp"

#include <bit>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define CHAINRULE_POOL 0
#else
#define CHAINRULE_POOL 1
#endif

namespace chainrule::pool {

namespace {

// Size classes: 64-byte steps up to 4 KiB (classes 1..64), then powers of two up to 4 MiB
// (classes 65..74). Larger blocks are not cached. Caching the large classes matters as much as
// the small ones: a training loop frees and re-allocates the same tensor buffers every step,
// and handing them back to glibc lets it trim the heap and fault the pages in again.
constexpr std::size_t kAlign = 64, kSmallClasses = 64, kSmallMax = kAlign * kSmallClasses;
constexpr int kLargeClasses = 10;  // 8 KiB .. 4 MiB
constexpr std::size_t kClasses = kSmallClasses + kLargeClasses;
constexpr std::size_t kMaxCachedBytes = std::size_t(256) << 20;  // per thread

// The class of a request (0: not pooled) and the bytes a block of that class holds.
std::size_t class_of(std::size_t bytes, std::size_t* block) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallMax) {
    const std::size_t c = (bytes + kAlign - 1) / kAlign;
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
struct FreeBlock {
  FreeBlock* next;
};

// This thread's free lists. Trivially destructible and constant-initialised, so reaching it
// costs no guard check (a thread_local with a destructor is checked on every access: 7 of
// the ~35 instructions of an allocation); the Reaper below frees its blocks at thread exit.
struct Cache {
  FreeBlock* head[kClasses + 1];
  std::size_t cached_bytes;
  enum State : unsigned char { unused, live, dead } state;  // dead: the thread is exiting
};
__attribute__((tls_model("initial-exec"))) constinit thread_local Cache cache = {};

// Made on a thread's first cached block: its destructor, run at thread exit, empties the
// free lists, and later frees (other thread_locals' destructors) go to the system.
struct Reaper {
  Reaper() { cache.state = Cache::live; }
  ~Reaper() {
    cache.state = Cache::dead;
    for (auto& h : cache.head)
      while (h) {
        FreeBlock* next = h->next;
        std::free(h);
        h = next;
      }
    cache.cached_bytes = 0;
  }
};

[[gnu::noinline]] void start_cache() {
  static thread_local Reaper reaper;  // NOLINT: constructed here, on the thread's first use
  (void)reaper;
}
#endif

}  // namespace

void* allocate(std::size_t bytes) {
  std::size_t block = 0;
  const std::size_t c = class_of(bytes, &block);
#if CHAINRULE_POOL
  // Only a live cache holds blocks (and class 0 never does): no state check needed here.
  if (FreeBlock* b = cache.head[c]) {
    cache.head[c] = b->next;
    cache.cached_bytes -= block;
    return b;
  }
#else
  (void)c;
#endif
  return system_allocate(block);
}

#if CHAINRULE_POOL
namespace {
bool push(void* p, std::size_t c, std::size_t block) {
  if (c == 0 || cache.state != Cache::live || cache.cached_bytes + block > kMaxCachedBytes) return false;
  auto* b = static_cast<FreeBlock*>(p);
  b->next = cache.head[c];
  cache.head[c] = b;
  cache.cached_bytes += block;
  return true;
}
// Out of line, so that the fast path saves no registers.
[[gnu::noinline]] void deallocate_slow(void* p, std::size_t c, std::size_t block) noexcept {
  if (!p) return;
  if (cache.state == Cache::unused) {
    start_cache();
    if (push(p, c, block)) return;
  }
  std::free(p);
}
}  // namespace
#endif

void deallocate(void* p, std::size_t bytes) noexcept {
#if CHAINRULE_POOL
  std::size_t block = 0;
  const std::size_t c = class_of(bytes, &block);
  if (p && push(p, c, block)) return;
  deallocate_slow(p, c, block);
#else
  (void)bytes;
  std::free(p);
#endif
}

}  // namespace chainrule::pool
