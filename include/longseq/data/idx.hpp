// IDX reader (MNIST / Fashion-MNIST: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...; raw
// or gzip-compressed) as sequential pixel tasks of 784 steps.
#pragma once
#include <string>
#include <vector>

#if LONGSEQ_WITH_ZLIB
#include <zlib.h>
#endif

#include "dataset.hpp"
#include "files.hpp"

namespace longseq::data {

// Decompressed IDX files larger than this are rejected (the largest real one, MNIST train images, is 47 MB).
inline constexpr std::size_t max_idx_bytes = std::size_t(1) << 32;

// The bytes gunzipped when they start with the gzip magic 1f 8b, else unchanged; `f` names the file.
inline std::string maybe_gunzip(std::string raw, const std::string& f) {
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
#if LONGSEQ_WITH_ZLIB
  std::string out;
  z_stream zs{};
  LONGSEQ_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "file '", f, "': zlib initialisation failed");
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = uInt(raw.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      std::string msg = zs.msg ? zs.msg : (rc == Z_BUF_ERROR ? "unexpected end of compressed data" : "corrupt data");
      inflateEnd(&zs);
      LONGSEQ_FAIL("file '", f, "': gzip decompression failed after ", out.size() + (sizeof buf - zs.avail_out),
                   " bytes: ", msg, " (expected a complete gzip stream)");
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > max_idx_bytes) {
      inflateEnd(&zs);
      LONGSEQ_FAIL("file '", f, "': decompresses to more than ", max_idx_bytes, " bytes, expected an IDX file");
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      LONGSEQ_FAIL("file '", f, "': gzip stream truncated after ", out.size(),
                   " decompressed bytes (expected a complete gzip stream)");
    }
  }
  inflateEnd(&zs);
  return out;
#else
  LONGSEQ_FAIL("file '", f, "' is gzip-compressed but longseq was built without zlib; gunzip it first");
#endif
}

// A decoded IDX array of unsigned bytes (type code 0x08).
struct IdxArray {
  std::vector<index_t> dims;
  std::vector<std::uint8_t> data;
};

// Parses (possibly gzipped) IDX bytes of the file named f.
inline IdxArray parse_idx(std::string bytes, const std::string& f) {
  std::string b = maybe_gunzip(std::move(bytes), f);
  auto u8 = [&](std::size_t i) { return static_cast<std::uint8_t>(b[i]); };
  LONGSEQ_CHECK(b.size() >= 4, "file '", f, "': truncated header, expected the 4-byte IDX magic number");
  LONGSEQ_CHECK(u8(0) == 0 && u8(1) == 0, "file '", f, "': bad magic number, expected 00 00 <type> <rank>");
  LONGSEQ_CHECK(u8(2) == 0x08, "file '", f, "': IDX type code ", int(u8(2)), ", expected 8 (unsigned byte)");
  int rank = u8(3);
  LONGSEQ_CHECK(rank >= 1 && rank <= 4, "file '", f, "': IDX rank ", rank, ", expected 1 to 4");
  std::size_t header = 4 + 4 * std::size_t(rank);
  LONGSEQ_CHECK(b.size() >= header, "file '", f, "': truncated header, expected ", header, " bytes, got ", b.size());
  IdxArray a;
  index_t inner = 1;
  for (int d = 0; d < rank; ++d) {
    std::size_t o = 4 + 4 * std::size_t(d);
    index_t v = (index_t(u8(o)) << 24) | (index_t(u8(o + 1)) << 16) | (index_t(u8(o + 2)) << 8) | index_t(u8(o + 3));
    a.dims.push_back(v);
    // Checked before multiplying: two extents near 2^32 overflow index_t.
    LONGSEQ_CHECK(d == 0 || v == 0 || inner <= index_t(max_idx_bytes) / v, "file '", f,
                  "': IDX dimensions describe more than ", max_idx_bytes, " bytes");
    if (d > 0) inner *= v;
    LONGSEQ_CHECK(a.dims[0] <= index_t(max_idx_bytes), "file '", f, "': IDX dimensions describe more than ",
                  max_idx_bytes, " bytes");
  }
  LONGSEQ_CHECK(inner == 0 || a.dims[0] <= index_t(max_idx_bytes) / inner, "file '", f,
                "': IDX dimensions describe more than ", max_idx_bytes, " bytes");
  index_t expect = a.dims[0] * inner;
  index_t got = index_t(b.size() - header);
  if (got < expect) {
    index_t rec = inner > 0 ? got / inner : 0;
    LONGSEQ_FAIL("file '", f, "', record ", rec, ": truncated, expected ", a.dims[0], " records of ", inner,
                 " bytes (", expect, " data bytes), got ", got);
  }
  LONGSEQ_CHECK(got == expect, "file '", f, "': ", got - expect, " trailing bytes after ", a.dims[0], " records");
  a.data.assign(b.begin() + std::ptrdiff_t(header), b.end());
  return a;
}

inline IdxArray read_idx(const fs::path& path) { return parse_idx(read_file(path), path.string()); }

struct IdxOptions {
  double val_fraction = 0.1;  // held out of the training files
  std::uint64_t seed = 42;
  PixelNorm norm{0.5f, 0.5f};  // to [-1, 1], as the Pathfinder images
};

// First existing of name and name.gz in dir.
inline fs::path find_idx_file(const fs::path& dir, const std::string& name) {
  for (const auto& cand : {dir / name, dir / (name + ".gz")})
    if (fs::exists(cand)) return cand;
  LONGSEQ_FAIL("missing file '", (dir / name).string(), "' (or '", name, ".gz'): expected the IDX files of MNIST/Fashion-MNIST");
}

// Images (N, rows, cols) with labels (N) into a pixel dataset of rows*cols steps.
inline Dataset read_idx_pair(const fs::path& images, const fs::path& labels, TaskInfo info) {
  auto im = read_idx(images);
  auto lb = read_idx(labels);
  LONGSEQ_CHECK(im.dims.size() == 3, "file '", images.string(), "': expected a rank-3 image array (N, rows, cols), got rank ", im.dims.size());
  LONGSEQ_CHECK(lb.dims.size() == 1, "file '", labels.string(), "': expected a rank-1 label array, got rank ", lb.dims.size());
  LONGSEQ_CHECK(im.dims[0] == lb.dims[0], "files '", images.string(), "' and '", labels.string(), "': ", im.dims[0],
                " images but ", lb.dims[0], " labels, expected equal counts");
  info.height = im.dims[1];
  info.width = im.dims[2];
  info.max_length = im.dims[1] * im.dims[2];
  Dataset d(info);
  index_t step = info.max_length;
  d.reserve(im.dims[0], im.dims[0] * step);
  for (index_t i = 0; i < im.dims[0]; ++i) {
    std::uint8_t y = lb.data[std::size_t(i)];
    LONGSEQ_CHECK(index_t(y) < info.num_classes, "file '", labels.string(), "', record ", i, ": label ", int(y),
                  ", expected 0..", info.num_classes - 1);
    d.add_pixels(y, std::span<const std::uint8_t>(im.data.data() + i * step, std::size_t(step)));
  }
  return d;
}

// dir holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; val is a seeded share of train.
inline Splits load_idx_task(const fs::path& dir, const std::string& name = "fashion-mnist", const IdxOptions& opt = {}) {
  require_directory(dir, "the folder holding the MNIST/Fashion-MNIST IDX files");
  TaskInfo info;
  info.name = name;
  info.modality = Modality::pixels;
  info.num_classes = 10;
  info.vocab_size = 256;
  info.norm = opt.norm;
  Dataset all = read_idx_pair(find_idx_file(dir, "train-images-idx3-ubyte"), find_idx_file(dir, "train-labels-idx1-ubyte"), info);
  Splits s;
  s.test = read_idx_pair(find_idx_file(dir, "t10k-images-idx3-ubyte"), find_idx_file(dir, "t10k-labels-idx1-ubyte"), info);
  auto idx = split_indices(all.size(), opt.val_fraction, 0.0, opt.seed);
  s.train = all.select(idx.train);
  s.val = all.select(idx.val);
  return s;
}

}  // namespace longseq::data
