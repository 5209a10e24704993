// CIFAR-10 binary-batch reader (data_batch_1..5.bin, test_batch.bin: records of 1 label byte and
// 3x1024 channel-planar RGB bytes) as the LRA Image task: grayscale, 1024 steps, normalized.
#pragma once
#include <string>
#include <vector>

#include "dataset.hpp"
#include "files.hpp"

namespace longseq::data {

inline constexpr index_t cifar_record_bytes = 1 + 3 * 1024;

// Pillow's convert("L") (what torchvision's Grayscale does to a PIL image): the ITU-R 601-2 luma
// 299/587/114 per mille, in 16-bit fixed point with rounding.
inline std::uint8_t luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  return std::uint8_t((std::uint32_t(r) * 19595u + std::uint32_t(g) * 38470u + std::uint32_t(b) * 7471u + 0x8000u) >> 16);
}

struct CifarOptions {
  double val_fraction = 0.1;  // of the training batches, as the reference (seed 42)
  std::uint64_t seed = 42;
  PixelNorm norm{122.6f / 255.0f, 61.0f / 255.0f};
};

inline TaskInfo cifar_info(const CifarOptions& opt = {}) {
  TaskInfo info;
  info.name = "image";
  info.modality = Modality::pixels;
  info.num_classes = 10;
  info.vocab_size = 256;
  info.max_length = 1024;
  info.width = info.height = 32;
  info.norm = opt.norm;
  return info;
}

// Appends the records of one batch file's bytes (file name `f`) to `d` as grayscale images.
inline void parse_cifar_batch(std::string_view bytes, const std::string& f, Dataset& d) {
  auto n = index_t(bytes.size()) / cifar_record_bytes, rem = index_t(bytes.size()) % cifar_record_bytes;
  LONGSEQ_CHECK(rem == 0, "file '", f, "', record ", n, " (byte offset ", n * cifar_record_bytes,
                "): truncated, expected ", cifar_record_bytes, " bytes (label + 3x32x32 pixels), got ", rem);
  LONGSEQ_CHECK(n > 0, "file '", f, "': empty, expected records of ", cifar_record_bytes, " bytes");
  std::vector<std::uint8_t> gray(1024);
  for (index_t r = 0; r < n; ++r) {
    const auto* rec = reinterpret_cast<const std::uint8_t*>(bytes.data()) + r * cifar_record_bytes;
    LONGSEQ_CHECK(rec[0] <= 9, "file '", f, "', record ", r, ": expected a label in 0..9, got ", int(rec[0]));
    for (int k = 0; k < 1024; ++k) gray[std::size_t(k)] = luma(rec[1 + k], rec[1 + 1024 + k], rec[1 + 2048 + k]);
    d.add_pixels(rec[0], gray);
  }
}

inline void read_cifar_batch(const fs::path& path, Dataset& d) { parse_cifar_batch(read_file(path), path.string(), d); }

// dir holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the cifar-10-batches-bin folder).
inline Splits load_cifar10(const fs::path& dir, const CifarOptions& opt = {}) {
  require_directory(dir, "the cifar-10-batches-bin folder holding data_batch_1..5.bin and test_batch.bin");
  Dataset all(cifar_info(opt));
  for (int b = 1; b <= 5; ++b) read_cifar_batch(dir / ("data_batch_" + std::to_string(b) + ".bin"), all);
  Splits s;
  s.test = Dataset(cifar_info(opt));
  read_cifar_batch(dir / "test_batch.bin", s.test);
  auto idx = split_indices(all.size(), opt.val_fraction, 0.0, opt.seed);
  s.train = all.select(idx.train);
  s.val = all.select(idx.val);
  return s;
}

}  // namespace longseq::data
