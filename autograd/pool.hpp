/// \file
/// Pooled memory for the many short-lived blocks a graph makes (tensor data, tensor handles,
/// nodes): thread-local free lists in size classes up to 64 MiB, so building and freeing a
/// graph, or a training step, rarely reaches the system allocator. Blocks up to 4 KiB are
/// carved in sequence from 64 KiB runs and kept for reuse (a thread's free ones pass to the
/// other threads when it exits); larger ones are cached up to 256 MiB per thread.
/// Under AddressSanitizer the pool is off, so every use-after-free is still caught.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
/// The pool is off under AddressSanitizer, so that every use-after-free is caught.
#define CHAINRULE_POOL 0
#else
/// The pool is on (it is off under AddressSanitizer, so that every use-after-free is caught).
#define CHAINRULE_POOL 1
#endif

namespace chainrule::pool {

/// The pool's per-thread state, here so that the common cases of allocate and deallocate
/// (a small block off or onto this thread's free list) are inlined where they are called,
/// where the size is usually a constant (docs/performance.md, item 15).
namespace detail {
constexpr std::size_t kAlign = 64;  ///< block alignment and the small classes' step
constexpr std::size_t kSmallClasses = 64;  ///< classes 1..64: 64-byte steps up to kSmallMax
constexpr std::size_t kSmallMax = kAlign * kSmallClasses;  ///< the largest small block, 4 KiB
constexpr std::size_t kLargeClasses = 14;  ///< classes 65..78: powers of two, 8 KiB .. 64 MiB
constexpr std::size_t kClasses = kSmallClasses + kLargeClasses;  ///< the number of classes
/// A free block: the next one on its list.
struct FreeBlock {
  FreeBlock* next;  ///< the next free block of the class (null: the last)
};
/// A thread's free lists and the runs it carves small blocks from. Trivially destructible and
/// constant-initialised, so reaching it costs no guard check; pool.cpp empties it at thread exit.
struct Cache {
  FreeBlock* head[kClasses + 1];  ///< the free list of each class (0: not pooled)
  unsigned char* run_next[kSmallClasses + 1];  ///< the next block to carve in each small class's run
  unsigned char* run_end[kSmallClasses + 1];  ///< the end of that run
  std::size_t cached_bytes;  ///< bytes on the large classes' lists
  /// unused: no block yet; live; dead: the thread is exiting
  enum State : unsigned char { unused, live, dead } state;
};
/// This thread's cache.
extern thread_local constinit Cache cache __attribute__((tls_model("initial-exec")));
void* allocate_slow(std::size_t bytes);  ///< allocate when the free list is empty or the block large
void deallocate_slow(void* p, std::size_t bytes) noexcept;  ///< deallocate when the fast path cannot
/// Whether `bytes` (from 1) is a small class's request.
constexpr bool small_request(std::size_t bytes) { return bytes - 1 < kSmallMax; }
/// The small class of such a request (also where two sizes would share a free list).
constexpr std::size_t small_class(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign; }
}  // namespace detail

/// A 64-byte aligned block of at least `bytes`.
inline void* allocate(std::size_t bytes) {
#if CHAINRULE_POOL
  if (detail::small_request(bytes)) {
    // Only a live cache holds blocks: no state check needed here.
    detail::FreeBlock*& head = detail::cache.head[detail::small_class(bytes)];
    if (detail::FreeBlock* b = head) {
      head = b->next;
      return b;
    }
  }
#endif
  return detail::allocate_slow(bytes);
}

/// Returns a block from allocate (same `bytes`) to this thread's pool.
inline void deallocate(void* p, std::size_t bytes) noexcept {
#if CHAINRULE_POOL
  if (detail::small_request(bytes) && p && detail::cache.state == detail::Cache::live) {
    auto* b = static_cast<detail::FreeBlock*>(p);
    detail::FreeBlock*& head = detail::cache.head[detail::small_class(bytes)];
    b->next = head;
    head = b;
    return;
  }
#endif
  detail::deallocate_slow(p, bytes);
}

/// A standard allocator over the pool, for containers.
template <class T>
struct Allocator {
  using value_type = T;  ///< the allocated type
  Allocator() = default;  ///< a stateless allocator
  template <class U>
  /// Rebinding: every Allocator draws on the same pool.
  Allocator(const Allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit by design
  /// N objects' worth of pooled memory.
  T* allocate(std::size_t n) { return static_cast<T*>(pool::allocate(n * sizeof(T))); }
  /// Returns memory from allocate(n).
  void deallocate(T* p, std::size_t n) noexcept { pool::deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const Allocator<U>&) const noexcept { return true; }  ///< always equal: one pool
};

}  // namespace chainrule::pool
