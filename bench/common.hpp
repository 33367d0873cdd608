// Shared by the benchmarks: a best-of-N timer and the result table.
#pragma once

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

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

// Resident memory now, in MiB (from /proc/self/statm).
inline double rss_now() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// The peak resident set since the last reset, in MiB (VmHWM in /proc/self/status); -1 if unknown.
inline double peak_rss() {
  double peak = -1;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (long kb = 0; std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) peak = static_cast<double>(kb) / 1024.0;
    std::fclose(f);
  }
  return peak;
}

// Runs f in a child process; returns {seconds, peak RSS growth in MiB}: the child's peak
// resident set minus what it had at the start (pages shared with the parent). A forked child
// inherits its parent's high-water mark, which would hide a smaller peak of its own, so the
// child resets it first (`5` into clear_refs).
inline std::pair<double, double> in_child(const std::function<double()>& f) {
  int fd[2];
  if (::pipe(fd) != 0) return {0, 0};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fd[0]);
    bool reset = false;
    if (FILE* c = std::fopen("/proc/self/clear_refs", "w")) {
      reset = std::fputs("5", c) >= 0;
      reset = std::fclose(c) == 0 && reset;
    }
    const double start = rss_now();
    const double t = f();
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const double hwm = reset ? peak_rss() : -1;
    const double peak = hwm >= 0 ? hwm : static_cast<double>(u.ru_maxrss) / 1024.0;
    const double out[2] = {t, peak - start};
    if (::write(fd[1], out, sizeof out) != sizeof out) ::_exit(1);
    ::_exit(0);
  }
  ::close(fd[1]);
  double out[2] = {0, 0};
  if (::read(fd[0], out, sizeof out) != sizeof out) out[0] = out[1] = 0;
  ::close(fd[0]);
  ::waitpid(pid, nullptr, 0);
  return {out[0], out[1]};
}

// Each side in its own child process, the sides in turn for `rounds` rounds (as
// bench::best_of_each, so that they meet the same slow and quick spells of a shared machine):
// each side's best time and its largest peak RSS growth.
struct Measured {
  double seconds = 1e30, rss = 0;
};
inline std::vector<Measured> in_children_in_turn(int rounds, const std::vector<std::function<double()>>& sides) {
  std::vector<Measured> m(sides.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < sides.size(); ++i) {
      const auto [t, rss] = in_child(sides[i]);
      m[i].seconds = std::min(m[i].seconds, t);
      m[i].rss = std::max(m[i].rss, rss);
    }
  return m;
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
