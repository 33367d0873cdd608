// Shared test helpers: gradient checks at several shapes, and error-message assertions.
#pragma once

#include <chainrule.hpp>
#include <doctest/doctest.h>

#include <cmath>
#include <string>

namespace cr = chainrule;

// Random float64 input that requires grad, values in [lo, hi).
inline cr::Tensor input(const cr::Shape& shape, double lo = -2.0, double hi = 2.0, uint64_t seed = 7) {
  cr::Generator gen(seed);
  return (cr::rand(shape, cr::float64, &gen) * (hi - lo) + lo).detach().requires_grad_();
}

// First- and second-order gradcheck of fn at the given inputs; prints the report on failure.
inline void check_gradients(const cr::autograd::TensorFn& fn, const std::vector<cr::Tensor>& inputs,
                            bool second_order = true) {
  const auto first = cr::autograd::gradcheck(fn, inputs);
  INFO(first.to_string());
  CHECK(first.ok);
  if (second_order) {
    const auto second = cr::autograd::gradgradcheck(fn, inputs);
    INFO(second.to_string());
    CHECK(second.ok);
  }
}

// Runs `body`, expects a chainrule::Error whose message contains every fragment.
template <class F>
void check_error(F&& body, std::initializer_list<std::string> fragments) {
  try {
    body();
    FAIL("expected chainrule::Error, none was thrown");
  } catch (const cr::Error& e) {
    const std::string what = e.what();
    for (const auto& f : fragments) {
      INFO("message: " << what);
      INFO("missing: " << f);
      CHECK(what.find(f) != std::string::npos);
    }
  }
}

inline std::vector<double> values(const cr::Tensor& t) { return t.to_vector<double>(); }

// Sets the thread count for a scope.
struct Threads {
  int before = cr::get_num_threads();
  explicit Threads(int n) { cr::set_num_threads(n); }
  ~Threads() { cr::set_num_threads(before); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

// a and b hold the same values, NaN counting as equal to NaN.
inline bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}
