/// \file
/// Runtime element types: float32, float64 and int64 (labels, indices), and the dispatch
/// that turns a runtime Dtype into a compile-time element type for kernels.
#pragma once

#include "error.hpp"

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace chainrule {

/// The element type of a tensor, chosen at run time.
enum class Dtype : uint8_t { float32, float64, int64 };

inline constexpr Dtype float32 = Dtype::float32;  ///< 32-bit IEEE float (the default dtype)
inline constexpr Dtype float64 = Dtype::float64;  ///< 64-bit IEEE float (gradcheck's dtype)
inline constexpr Dtype int64 = Dtype::int64;  ///< 64-bit signed integer (labels, indices)

constexpr std::string_view dtype_name(Dtype d) {  ///< "float32", "float64" or "int64"
  switch (d) {
    case Dtype::float32: return "float32";
    case Dtype::float64: return "float64";
    case Dtype::int64: return "int64";
  }
  return "?";
}

constexpr size_t dtype_size(Dtype d) { return d == Dtype::float32 ? 4 : 8; }  ///< bytes per element
constexpr bool is_floating(Dtype d) { return d != Dtype::int64; }  ///< float32 or float64

/// The dtype of a binary op's result: int64 < float32 < float64 (as PyTorch promotes).
constexpr Dtype promote(Dtype a, Dtype b) { return a > b ? (a == Dtype::int64 ? b : a) : (b == Dtype::int64 ? a : b); }

/// The dtype of floating factories when none is given; float32 unless changed (per thread).
Dtype default_dtype();
void set_default_dtype(Dtype d);  ///< sets the dtype floating factories use when none is given (this thread)

template <class T> constexpr Dtype dtype_of();  ///< the Dtype of element type T (float, double, int64_t)
template <> constexpr Dtype dtype_of<float>() { return Dtype::float32; }  ///< float32
template <> constexpr Dtype dtype_of<double>() { return Dtype::float64; }  ///< float64
template <> constexpr Dtype dtype_of<int64_t>() { return Dtype::int64; }  ///< int64

/// v is a larger error than `max`, a NaN larger than any number (so that the largest error of a
/// comparison with a NaN on either side is reported as NaN, not skipped by `v > max`).
constexpr bool larger_error(double v, double max) { return v != v ? max == max : v > max; }

/// True when int64 holds the integer part of v (false for NaN and infinities).
constexpr bool fits_int64(double v) { return v >= -0x1p63 && v < 0x1p63; }

/// `v` as a T, for every conversion between element types. A floating value that int64 cannot
/// hold (NaN, an infinity, or outside [-2^63, 2^63)) is an Error naming `op`: static_cast would
/// be undefined behaviour (on x86 it gives -2^63). Other conversions are static_cast's.
template <class T, class S>
T convert(S v, std::string_view op) {
  if constexpr (std::is_integral_v<T> && std::is_floating_point_v<S>) {
    if (!fits_int64(static_cast<double>(v))) [[unlikely]]
      fail("{}: {} cannot be converted to {} (not finite, or outside its range)", op, v, dtype_name(dtype_of<T>()));
  }
  return static_cast<T>(v);
}

/// Calls `f.template operator()<T>()` with T the element type of `d`.
template <class F>
decltype(auto) dispatch(Dtype d, F&& f) {
  switch (d) {
    case Dtype::float32: return f.template operator()<float>();
    case Dtype::float64: return f.template operator()<double>();
    case Dtype::int64: return f.template operator()<int64_t>();
  }
  fail("dispatch: unknown dtype {}", static_cast<int>(d));
}

/// Like dispatch, for kernels that only exist for floating types.
template <class F>
decltype(auto) dispatch_floating(Dtype d, std::string_view op, F&& f) {
  switch (d) {
    case Dtype::float32: return f.template operator()<float>();
    case Dtype::float64: return f.template operator()<double>();
    default: fail("{}: expected a floating dtype (float32 or float64), got {}", op, dtype_name(d));
  }
}

}  // namespace chainrule

// fmt::formatter specialisation (printing with fmt), hidden from the API reference.
/// \cond
template <>
struct fmt::formatter<chainrule::Dtype> : fmt::formatter<std::string_view> {
  auto format(chainrule::Dtype d, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(chainrule::dtype_name(d), ctx);
  }
};
/// \endcond
