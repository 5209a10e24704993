// One temporary folder per test process, removed with everything in it when the process exits, so that
// repeated test runs leave nothing behind in the system's temp directory.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>

namespace testtmp {

// <temp>/longseq_test_<pid>/<sub>, created on first use.
inline std::filesystem::path dir(const std::string& sub) {
  struct Root {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("longseq_test_" + std::to_string(::getpid()));
    ~Root() {
      std::error_code ec;  // a destructor at exit must not throw; a leftover folder is only untidy
      std::filesystem::remove_all(path, ec);
    }
  };
  static Root root;
  auto d = root.path / sub;
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace testtmp
