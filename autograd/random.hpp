/// \file
/// Reproducible randomness. Every random factory takes an optional Generator; without one it
/// uses the global generator, which manual_seed resets. Same seed, same bits, on any machine
/// (the draws are our own arithmetic on a 64-bit Mersenne Twister, not std:: distributions).
#pragma once

#include <cstdint>
#include <mutex>
#include <random>

namespace chainrule {

/// A reproducible random stream (64-bit Mersenne Twister); factories and initialisers take one.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : engine_(seed), seed_(seed) {}  ///< a stream starting from `seed`
  void manual_seed(uint64_t seed) {  ///< restarts the stream from `seed`
    engine_.seed(seed);
    seed_ = seed;
    has_spare_normal_ = false;
  }
  uint64_t seed() const { return seed_; }  ///< the seed it was last started from

  uint64_t next_u64() { return engine_(); }  ///< the next raw 64-bit value
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  ///< [0, 1)
  /// A float in [0, 1) from 24 random bits.
  float uniform_float() { return static_cast<float>(engine_() >> 40) * 0x1.0p-24f; }
  double normal();                           ///< N(0, 1), Box-Muller
  int64_t integer(int64_t low, int64_t high);  ///< uniform in [low, high)

 private:
  std::mt19937_64 engine_;
  uint64_t seed_;
  double spare_normal_ = 0;
  bool has_spare_normal_ = false;
};

Generator& default_generator();  ///< the global generator factories use when given none (see with_generator)
/// Guards the global generator: the factories hold it while they draw, so threads that share the
/// global generator take turns instead of racing on its state (as PyTorch's default generator).
std::mutex& default_generator_mutex();
void manual_seed(uint64_t seed);  ///< restarts the global generator: runs after it are bit-reproducible

/// Runs f(g) with g = *gen, or the global generator under its lock when gen is null: how code
/// that draws from "the given generator or the global one" stays safe on several threads.
template <class F>
decltype(auto) with_generator(Generator* gen, F&& f) {
  if (gen) return f(*gen);
  std::lock_guard lock(default_generator_mutex());
  return f(default_generator());
}

}  // namespace chainrule
