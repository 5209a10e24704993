// Shared helpers of the data tests: fixture paths, self-removing temporary folders and tiny image sets.
#pragma once
#include <atomic>
#include <filesystem>
#include <cstdint>
#include <string>
#include <vector>

#include <longseq/data/dataset.hpp>
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

// n gray h x w images, pixel k of image i = (di * i + dk * k) mod 251 + offset (never 0 or 255 for small
// offsets, so black fills and inversions show), labels alternating 0, 1.
inline longseq::data::Dataset tiny_images(longseq::index_t n, longseq::index_t h, longseq::index_t w, int di, int dk,
                                          int offset) {
  longseq::data::TaskInfo info;
  info.name = "tiny-images";
  info.modality = longseq::data::Modality::pixels;
  info.num_classes = 2;
  info.vocab_size = 256;
  info.max_length = h * w;
  info.height = h;
  info.width = w;
  longseq::data::Dataset d(info);
  for (longseq::index_t i = 0; i < n; ++i) {
    std::vector<std::uint8_t> img(std::size_t(h * w));
    for (longseq::index_t k = 0; k < h * w; ++k) img[std::size_t(k)] = std::uint8_t((di * i + dk * k) % 251 + offset);
    d.add_pixels(std::int32_t(i % 2), img);
  }
  return d;
}

}  // namespace testdata
