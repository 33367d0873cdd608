// A progress bar for the examples: "[#####.....] 512/1000  loss 0.31  2100 samples/s  ETA 4s".
// On a terminal it redraws one line; otherwise it prints a plain line every `every` percent.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace progress {

class Bar {
 public:
  Bar(std::string label, long total, int every_percent = 25)
      : label_(std::move(label)), total_(total), every_(every_percent), tty_(::isatty(STDOUT_FILENO) != 0),
        start_(std::chrono::steady_clock::now()) {}

  void update(long done, const std::string& extra = "") {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    const int pct = static_cast<int>(frac * 100);
    if (tty_) {
      const int width = 30, filled = static_cast<int>(frac * width);
      std::printf("\r%s [%s%s] %ld/%ld %s ETA %.0fs   ", label_.c_str(), std::string(filled, '#').c_str(),
                  std::string(width - filled, '.').c_str(), done, total_, extra.c_str(), eta);
      if (done >= total_) std::printf("\n");
      std::fflush(stdout);
    } else if (pct >= next_ || done >= total_) {
      std::printf("%s %3d%% (%ld/%ld) %s elapsed %.1fs\n", label_.c_str(), pct, done, total_, extra.c_str(), elapsed);
      std::fflush(stdout);
      while (next_ <= pct) next_ += every_;
    }
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::string label_;
  long total_;
  int every_, next_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace progress
