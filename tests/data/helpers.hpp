// Shared helpers of the data tests: fixture paths and self-removing temporary folders.
#pragma once
#include <atomic>
#include <filesystem>
#include <string>

#include <longseq/data/files.hpp>

#include "temp_root.hpp"

namespace testdata {

namespace fs = std::filesystem;

inline fs::path fixtures() { return fs::path(LONGSEQ_TEST_DATA_DIR) / "files"; }

// A fresh folder under the system temp directory, removed with its contents at scope end.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = testtmp::dir("data_" + std::to_string(counter++));  // inside the process's folder (temp_root.hpp)
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& rel) const { return path / rel; }
};

// Copies a fixture folder into a temp folder so that a test can break one of its files.
inline void copy_fixture(const std::string& name, const fs::path& to) {
  fs::copy(fixtures() / name, to, fs::copy_options::recursive);
}

}  // namespace testdata
