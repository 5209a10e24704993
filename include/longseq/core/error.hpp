// Errors: every failed check throws longseq::Error carrying the source location and what was expected.
#pragma once
#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace longseq {

class Error : public std::runtime_error {
 public:
  Error(const std::string& what, std::source_location loc = std::source_location::current())
      : std::runtime_error(format(what, loc)), file_(loc.file_name()), line_(loc.line()) {}
  const char* file() const noexcept { return file_; }
  unsigned line() const noexcept { return line_; }

 private:
  static std::string format(const std::string& what, const std::source_location& loc) {
    std::string f = loc.file_name();
    // Keep the path from "include/longseq/" or "tests/" on so messages are stable across checkouts.
    for (const char* root : {"include/longseq/", "tests/", "examples/"})
      if (auto p = f.rfind(root); p != std::string::npos) { f = f.substr(p); break; }
    return "longseq: " + what + " [" + f + ":" + std::to_string(loc.line()) + "]";
  }
  const char* file_;
  unsigned line_;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace longseq

// LONGSEQ_CHECK(cond, parts...): throws longseq::Error with the concatenated parts when cond is false.
#define LONGSEQ_CHECK(cond, ...)                                                          \
  do {                                                                                    \
    if (!(cond)) throw ::longseq::Error(::longseq::detail::concat(__VA_ARGS__));          \
  } while (0)

#define LONGSEQ_FAIL(...) throw ::longseq::Error(::longseq::detail::concat(__VA_ARGS__))
