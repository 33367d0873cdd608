/// \file
/// Pooled memory for the many short-lived blocks a graph makes (tensor data, tensor handles,
/// nodes): thread-local free lists in size classes up to 4 MiB, so building and freeing a
/// graph, or a training step, rarely reaches the system allocator. Blocks up to 4 KiB are
/// carved in sequence from 64 KiB runs and kept for reuse (a thread's free ones pass to the
/// other threads when it exits); larger ones are cached up to 256 MiB per thread.
/// Under AddressSanitizer the pool is off, so every use-after-free is still caught.
#pragma once

#include <cstddef>

namespace chainrule::pool {

void* allocate(std::size_t bytes);  ///< 64-byte aligned
/// Returns a block from allocate (same `bytes`) to this thread's pool.
void deallocate(void* p, std::size_t bytes) noexcept;

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
