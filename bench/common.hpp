// Shared by the benchmarks: a best-of-N timer and the result table.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace bench {

// The best wall time of each of `fs`, in seconds, over `rounds` rounds that run them in turn
// (after one warm-up run of each). On a machine whose speed changes from second to second (a
// virtual machine with a busy neighbour) the sides then meet the same slow and quick spells,
// so their ratio holds steadier than when one side's runs all come before the other's.
inline std::vector<double> best_of_each(int rounds, const std::vector<std::function<void()>>& fs) {
  for (const auto& f : fs) f();
  std::vector<double> best(fs.size(), 1e30);
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < fs.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fs[i]();
      best[i] = std::min(best[i], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  return best;
}

// Best wall time of `reps` runs of f, in seconds (after one warm-up run).
inline double best_of(int reps, const std::function<void()>& f) { return best_of_each(reps, {f})[0]; }

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
