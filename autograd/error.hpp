/// \file
/// chainrule::Error: the one exception type the library throws for bad input or misuse.
/// Messages name the op, the shapes and dtypes involved, and what to do about it.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace chainrule {

/// The one exception type chainrule throws for bad input or misuse; the message names the op,
/// shapes and dtypes involved, and what to do.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}  ///< an error with message `what`
};

/// Throws Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

/// Throws Error "<op>: <what> must be finite and >= 0, got <value>" unless value is a finite
/// number >= 0 (a schedule's factor, a noise level: NaN there would spread to every result).
inline void require_finite_non_negative(const char* op, const char* what, double value) {
  if (!(value >= 0 && std::isfinite(value))) fail("{}: {} must be finite and >= 0, got {}", op, what, value);
}

}  // namespace chainrule
