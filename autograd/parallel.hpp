/// \file
/// Threads for large elementwise loops. A loop of at least 2 * kParallelGrain elements is
/// split into contiguous pieces, one per thread (get_num_threads(), the count the BLAS
/// library uses too); the calling thread runs the first piece and helper threads the rest.
/// Smaller loops, loops started while another is running, and loops started from inside a
/// piece run on the calling thread: results are the same either way, since every element is
/// computed by the same expression whichever thread computes it.
#pragma once

#include <cstdint>
#include <type_traits>

namespace chainrule::kernels {

/// The fewest elements a piece gets. A hand-off costs a few microseconds; 2^16 elements take
/// ~20 us in the cheapest loop (a copy, a scale) and ~350 us in glibc's tanhf.
constexpr int64_t kParallelGrain = int64_t(1) << 16;

namespace detail {
using PieceFn = void (*)(void* body, int64_t begin, int64_t end);
/// Runs piece(body, begin, end) over [0, n) on the pool (or here when it is busy); `work`
/// elements in all; pieces but the last a multiple of `align` indices long.
void parallel_run(int64_t n, int64_t work, PieceFn piece, void* body, int64_t align);
}  // namespace detail

/// Calls f(begin, end) for pieces that cover [0, n) exactly once, in parallel when the loop
/// has at least 2 * kParallelGrain elements, counting `per_index` elements per index (a
/// column sum over r rows: n columns, r per index). Each piece but the last is a multiple of
/// `align` indices long: 64 (a cache line of any dtype) unless an index is a large task of its
/// own (a convolution's part of a batch, one of a batch's products). If f throws, the first
/// exception is rethrown here once every piece has finished (the other pieces still run to
/// their end).
template <class F>
void parallel_for(int64_t n, F&& f, int64_t per_index = 1, int64_t align = 64) {
  if (n * per_index < 2 * kParallelGrain) {
    f(int64_t(0), n);
    return;
  }
  using Body = std::remove_reference_t<F>;
  detail::parallel_run(
      n, n * per_index, [](void* body, int64_t begin, int64_t end) { (*static_cast<Body*>(body))(begin, end); },
      const_cast<void*>(static_cast<const void*>(&f)), align);
}

}  // namespace chainrule::kernels
