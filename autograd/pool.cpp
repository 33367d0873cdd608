#include "pool.hpp"

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
  std::size_t size = kSmallMax * 2;
  for (std::size_t c = kSmallClasses + 1; c <= kClasses; ++c, size *= 2)
    if (bytes <= size) {
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
void cache_alive_off();

struct Cache {
  FreeBlock* head[kClasses + 1] = {};
  std::size_t cached_bytes = 0;
  ~Cache() {
    cache_alive_off();
    for (auto& h : head)
      while (h) {
        FreeBlock* next = h->next;
        std::free(h);
        h = next;
      }
  }
};

// initial-exec: one instruction to reach this thread's cache, not a __tls_get_addr call.
__attribute__((tls_model("initial-exec"))) thread_local Cache cache;
// False once this thread's cache is destroyed: blocks freed later during thread exit go
// straight back to the system. Constant-initialised, so reading it costs no init check.
__attribute__((tls_model("initial-exec"))) thread_local bool cache_alive = true;
void cache_alive_off() { cache_alive = false; }
#endif

}  // namespace

void* allocate(std::size_t bytes) {
  std::size_t block = 0;
  const std::size_t c = class_of(bytes, &block);
#if CHAINRULE_POOL
  if (c != 0 && cache_alive) {
    if (FreeBlock* b = cache.head[c]) {
      cache.head[c] = b->next;
      cache.cached_bytes -= block;
      return b;
    }
  }
#else
  (void)c;
#endif
  return system_allocate(block);
}

void deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
#if CHAINRULE_POOL
  std::size_t block = 0;
  const std::size_t c = class_of(bytes, &block);
  if (c != 0 && cache_alive && cache.cached_bytes + block <= kMaxCachedBytes) {
    auto* b = static_cast<FreeBlock*>(p);
    b->next = cache.head[c];
    cache.head[c] = b;
    cache.cached_bytes += block;
    return;
  }
#else
  (void)bytes;
#endif
  std::free(p);
}

}  // namespace chainrule::pool
