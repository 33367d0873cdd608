// Runtime element types: float32, float64 and int64 (labels, indices), and the dispatch
// that turns a runtime Dtype into a compile-time element type for kernels.
#pragma once

#include "error.hpp"

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace chainrule {

enum class Dtype : uint8_t { float32, float64, int64 };

inline constexpr Dtype float32 = Dtype::float32;
inline constexpr Dtype float64 = Dtype::float64;
inline constexpr Dtype int64 = Dtype::int64;

constexpr std::string_view dtype_name(Dtype d) {
  switch (d) {
    case Dtype::float32: return "float32";
    case Dtype::float64: return "float64";
    case Dtype::int64: return "int64";
  }
  return "?";
}

constexpr size_t dtype_size(Dtype d) { return d == Dtype::float32 ? 4 : 8; }
constexpr bool is_floating(Dtype d) { return d != Dtype::int64; }

// The dtype of a binary op's result: int64 < float32 < float64 (as PyTorch promotes).
constexpr Dtype promote(Dtype a, Dtype b) { return a > b ? (a == Dtype::int64 ? b : a) : (b == Dtype::int64 ? a : b); }

// Default dtype of floating factories; float32 unless changed (per thread).
Dtype default_dtype();
void set_default_dtype(Dtype d);

template <class T> constexpr Dtype dtype_of();
template <> constexpr Dtype dtype_of<float>() { return Dtype::float32; }
template <> constexpr Dtype dtype_of<double>() { return Dtype::float64; }
template <> constexpr Dtype dtype_of<int64_t>() { return Dtype::int64; }

// Calls f.template operator()<T>() with T the element type of `d`.
template <class F>
decltype(auto) dispatch(Dtype d, F&& f) {
  switch (d) {
    case Dtype::float32: return f.template operator()<float>();
    case Dtype::float64: return f.template operator()<double>();
    case Dtype::int64: return f.template operator()<int64_t>();
  }
  fail("dispatch: unknown dtype {}", static_cast<int>(d));
}

// Like dispatch, for kernels that only exist for floating types.
template <class F>
decltype(auto) dispatch_floating(Dtype d, std::string_view op, F&& f) {
  switch (d) {
    case Dtype::float32: return f.template operator()<float>();
    case Dtype::float64: return f.template operator()<double>();
    default: fail("{}: expected a floating dtype (float32 or float64), got {}", op, dtype_name(d));
  }
}

}  // namespace chainrule

template <>
struct fmt::formatter<chainrule::Dtype> : fmt::formatter<std::string_view> {
  auto format(chainrule::Dtype d, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(chainrule::dtype_name(d), ctx);
  }
};
