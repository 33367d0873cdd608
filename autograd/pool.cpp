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

constexpr std::size_t kAlign = 64, kClasses = 64, kMaxPooled = kAlign * kClasses;  // up to 4 KiB
constexpr std::size_t kBytesPerClass = std::size_t(32) << 20;  // cache at most 32 MiB per class per thread

void* system_allocate(std::size_t bytes) {
  void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
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
  std::size_t count[kClasses + 1] = {};
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
#if CHAINRULE_POOL
  const std::size_t c = (bytes + kAlign - 1) / kAlign;
  if (c <= kClasses && cache_alive) {
    if (FreeBlock* b = cache.head[c]) {
      cache.head[c] = b->next;
      --cache.count[c];
      return b;
    }
  }
#endif
  return system_allocate(bytes == 0 ? 1 : bytes);
}

void deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
#if CHAINRULE_POOL
  const std::size_t c = (bytes + kAlign - 1) / kAlign;
  if (c <= kClasses && c > 0 && cache_alive && cache.count[c] * c * kAlign < kBytesPerClass) {
    auto* b = static_cast<FreeBlock*>(p);
    b->next = cache.head[c];
    cache.head[c] = b;
    ++cache.count[c];
    return;
  }
#else
  (void)bytes;
#endif
  std::free(p);
}

}  // namespace chainrule::pool
