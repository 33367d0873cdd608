// Shared by the benchmarks: a best-of-N timer and the result table.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace bench {

// Best wall time of `reps` runs of f, in seconds (after one warm-up run).
inline double best_of(int reps, const std::function<void()>& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct Row {
  std::string what;
  double seconds;
  std::string unit_value;  // e.g. "0.27 us/step"
};

inline void print_table(const std::string& title, const std::vector<Row>& rows, const std::string& reference) {
  fmt::print("\n{}\n{:<34} {:>12} {:>18} {:>12}\n", title, "", "time", "per unit", "vs " + reference);
  double ref = 0;
  for (const auto& r : rows)
    if (r.what == reference) ref = r.seconds;
  for (const auto& r : rows)
    fmt::print("{:<34} {:>10.2f}ms {:>18} {:>11.2f}x\n", r.what, r.seconds * 1e3, r.unit_value,
               ref > 0 ? r.seconds / ref : 0.0);
}

}  // namespace bench
