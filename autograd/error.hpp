/// \file
/// chainrule::Error: the one exception type the library throws for bad input or misuse.
/// Messages name the op, the shapes and dtypes involved, and what to do about it.
#pragma once

#include <fmt/format.h>

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

}  // namespace chainrule
