// Command-line parsing shared by the examples: options that take values, checked numbers,
// and a usage message with a non-zero exit (code 2) for anything malformed; and run(), which
// turns an error met while running into a message and exit code 1.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace cli {

class Parser {
 public:
  Parser(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  // A flag without a value (--quick) or an option with one (--steps 100).
  void flag(const std::string& name, std::function<void()> on) { flags_[name] = std::move(on); }
  void option(const std::string& name, std::function<void(const std::string&)> on) { options_[name] = std::move(on); }

  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::fputs(usage_.c_str(), stdout);
        std::exit(0);
      }
      if (auto f = flags_.find(a); f != flags_.end()) {
        f->second();
      } else if (auto o = options_.find(a); o != options_.end()) {
        if (i + 1 >= argc) fail(a + " needs a value");
        o->second(argv[++i]);
      } else {
        fail("unknown option '" + a + "'");
      }
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::fprintf(stderr, "%s: %s\n%s", program_.c_str(), what.c_str(), usage_.c_str());
    std::exit(2);
  }

  long integer(const std::string& s, const std::string& flag, long lo, long hi = 1000000000) const {
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < lo || v > hi)
      fail(flag + " expects a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got '" + s + "'");
    return v;
  }

  double number(const std::string& s, const std::string& flag, double lo, double hi) const {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
      fail(flag + " expects a number in [" + fmt(lo) + ", " + fmt(hi) + "], got '" + s + "'");
    return v;
  }

  std::vector<double> numbers(const std::string& s, const std::string& flag, double lo, double hi) const {
    std::vector<double> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) out.push_back(number(item, flag, lo, hi));
    if (out.empty()) fail(flag + " expects a comma-separated list of numbers");
    return out;
  }

 private:
  static std::string fmt(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  }
  std::string program_, usage_;
  std::map<std::string, std::function<void()>> flags_;
  std::map<std::string, std::function<void(const std::string&)>> options_;
};

// Runs an example's body. An exception that escapes it (an output folder that cannot be made,
// a checkpoint that cannot be read or does not fit the model) ends the program with one line,
// "<program>: <what went wrong>", and exit code 1, instead of std::terminate's abort.
inline int run(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace cli
