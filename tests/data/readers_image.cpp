#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include <longseq/data/cifar.hpp>
#include <longseq/data/idx.hpp>
#include <longseq/data/pathfinder.hpp>

#include "helpers.hpp"

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;
using testdata::TempDir;
using testdata::fixtures;

namespace {
std::string cifar_record(std::uint8_t label, std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  std::string rec(1, char(label));
  rec += std::string(1024, char(r)) + std::string(1024, char(g)) + std::string(1024, char(b));
  return rec;
}
std::string be32(std::uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}
std::string idx_images(int n, int rows, int cols, int seed) {
  std::string s = std::string("\0\0\x08\x03", 4) + be32(std::uint32_t(n)) + be32(std::uint32_t(rows)) + be32(std::uint32_t(cols));
  for (int i = 0; i < n * rows * cols; ++i) s += char((i * 7 + seed) & 0xff);
  return s;
}
std::string idx_labels(const std::vector<int>& y) {
  std::string s = std::string("\0\0\x08\x01", 4) + be32(std::uint32_t(y.size()));
  for (int v : y) s += char(v);
  return s;
}
#if LONGSEQ_WITH_ZLIB
std::string gzip(const std::string& raw) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(compressBound(uLong(raw.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = uInt(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}
#endif
}  // namespace

TEST_CASE("luma is Pillow's convert('L')") {
  CHECK(luma(255, 255, 255) == 255);
  CHECK(luma(0, 0, 0) == 0);
  CHECK(luma(255, 0, 0) == 76);   // 255 * 0.299 = 76.2
  CHECK(luma(0, 255, 0) == 150);  // 149.7, rounded
  CHECK(luma(0, 0, 255) == 29);   // 29.07
  CHECK(luma(10, 200, 30) == 124);  // 2.99 + 117.4 + 3.42 = 123.81, rounded
}

TEST_CASE("cifar reader: binary batches, grayscale, normalization, 10% validation") {
  auto s = load_cifar10(fixtures() / "cifar-10-batches-bin");
  CHECK(s.train.size() + s.val.size() == 10);
  CHECK(s.val.size() == 1);
  CHECK(s.test.size() == 2);
  CHECK(s.test.labels() == std::vector<std::int32_t>{7, 0});
  CHECK(s.test.length(0) == 1024);
  CHECK(s.test.info().num_classes == 10);
  // Recompute test record 0 pixel 5 from the raw bytes.
  std::string raw = read_file(fixtures() / "cifar-10-batches-bin/test_batch.bin");
  auto px = [&](int c, int k) { return std::uint8_t(raw[std::size_t(1 + c * 1024 + k)]); };
  std::uint8_t g = luma(px(0, 5), px(1, 5), px(2, 5));
  CHECK(s.test.pixels(0)[5] == g);
  Example e;
  s.test.read(0, e);
  CHECK(e.ids[5] == g);
  CHECK(e.values[5] == doctest::Approx((g / 255.0 - 122.6 / 255.0) / (61.0 / 255.0)).epsilon(1e-6));
  // Splits are disjoint and together hold every training record.
  std::multiset<std::int32_t> labels(s.train.labels().begin(), s.train.labels().end());
  labels.insert(s.val.labels().begin(), s.val.labels().end());
  CHECK(labels == std::multiset<std::int32_t>{1, 3, 2, 6, 3, 9, 4, 2, 5, 5});
}

TEST_CASE("cifar reader: truncated records, bad labels, missing batches") {
  TempDir tmp;
  Dataset d(cifar_info());
  write_file(tmp / "b.bin", cifar_record(3, 10, 20, 30) + cifar_record(4, 0, 0, 0).substr(0, 100));
  CHECK_THROWS_WITH_AS(read_cifar_batch(tmp / "b.bin", d),
                       doctest::Contains("record 1 (byte offset 3073): truncated, expected 3073 bytes (label + 3x32x32 pixels), got 100"), Error);
  write_file(tmp / "b.bin", cifar_record(3, 10, 20, 30) + cifar_record(12, 0, 0, 0));
  CHECK_THROWS_WITH_AS(read_cifar_batch(tmp / "b.bin", d), doctest::Contains("record 1: expected a label in 0..9, got 12"), Error);
  write_file(tmp / "b.bin", "");
  CHECK_THROWS_WITH_AS(read_cifar_batch(tmp / "b.bin", d), doctest::Contains("empty, expected records of 3073 bytes"), Error);
  testdata::copy_fixture("cifar-10-batches-bin", tmp / "c");
  fs::remove(tmp / "c/data_batch_4.bin");
  CHECK_THROWS_WITH_AS(load_cifar10(tmp / "c"), doctest::Contains("data_batch_4.bin' (missing or unreadable)"), Error);
}

TEST_CASE("idx reader: gzip fixture and raw files, 784 steps") {
#if LONGSEQ_WITH_ZLIB
  auto s = load_idx_task(fixtures() / "fashion-mnist");
  CHECK(s.train.size() == 6);  // 6 - floor(0.6) = 6
  CHECK(s.val.size() == 0);
  CHECK(s.test.size() == 4);
  CHECK(s.test.labels() == std::vector<std::int32_t>{5, 6, 7, 8});
  CHECK(s.test.info().max_length == 784);
  CHECK(s.test.info().width == 28);
  Example e;
  s.test.read(1, e);
  CHECK(e.values.size() == 784);
  CHECK(e.values[3] == doctest::Approx((e.ids[3] / 255.0 - 0.5) / 0.5));
#endif

  TempDir tmp;
  write_file(tmp / "train-images-idx3-ubyte", idx_images(20, 4, 3, 1));
  write_file(tmp / "train-labels-idx1-ubyte", idx_labels({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  write_file(tmp / "t10k-images-idx3-ubyte", idx_images(2, 4, 3, 5));
  write_file(tmp / "t10k-labels-idx1-ubyte", idx_labels({3, 1}));
  auto r = load_idx_task(tmp.path, "mnist");
  CHECK(r.train.size() == 18);
  CHECK(r.val.size() == 2);
  CHECK(r.test.length(0) == 12);
  CHECK(r.test.pixels(1)[0] == 12 * 7 + 5);  // image 1 starts at byte 12 of the data
  CHECK(r.test.pixels(1)[11] == 23 * 7 + 5);
}

TEST_CASE("idx reader: bad magic, truncation, count mismatch, bad labels") {
  TempDir tmp;
  auto f = tmp / "x";
  write_file(f, "PK\x03\x04....");
  CHECK_THROWS_WITH_AS(read_idx(f), doctest::Contains("bad magic number, expected 00 00 <type> <rank>"), Error);
  write_file(f, std::string("\0\0\x0d\x01", 4) + be32(1) + "aaaa");
  CHECK_THROWS_WITH_AS(read_idx(f), doctest::Contains("IDX type code 13, expected 8 (unsigned byte)"), Error);
  write_file(f, idx_images(3, 4, 3, 0).substr(0, 16 + 2 * 12 + 5));
  CHECK_THROWS_WITH_AS(read_idx(f), doctest::Contains("record 2: truncated, expected 3 records of 12 bytes (36 data bytes), got 29"), Error);
  write_file(f, std::string("\0\0\x08\x03", 4) + be32(2));
  CHECK_THROWS_WITH_AS(read_idx(f), doctest::Contains("truncated header, expected 16 bytes, got 8"), Error);
  write_file(tmp / "train-images-idx3-ubyte", idx_images(3, 2, 2, 0));
  write_file(tmp / "train-labels-idx1-ubyte", idx_labels({1, 2}));
  CHECK_THROWS_WITH_AS(load_idx_task(tmp.path), doctest::Contains("3 images but 2 labels, expected equal counts"), Error);
  write_file(tmp / "train-labels-idx1-ubyte", idx_labels({1, 2, 10}));
  CHECK_THROWS_WITH_AS(load_idx_task(tmp.path), doctest::Contains("record 2: label 10, expected 0..9"), Error);
  write_file(tmp / "train-labels-idx1-ubyte", idx_labels({1, 2, 3}));
  CHECK_THROWS_WITH_AS(load_idx_task(tmp.path), doctest::Contains("missing file '"), Error);
#if LONGSEQ_WITH_ZLIB
  std::string gz = gzip(idx_images(3, 4, 3, 0));
  write_file(f, gz.substr(0, gz.size() / 2));
  CHECK_THROWS_WITH_AS(read_idx(f), doctest::Contains("gzip"), Error);
  write_file(f, gz);
  CHECK(read_idx(f).dims == std::vector<index_t>{3, 4, 3});
#endif
}

TEST_CASE("idx reader: real Fashion-MNIST test files when installed") {
  fs::path dir = "/usr/share/datasets/fashion-mnist";
#if !LONGSEQ_WITH_ZLIB
  return;
#endif
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz")) return;
  auto im = read_idx(dir / "t10k-images-idx3-ubyte.gz");
  auto lb = read_idx(dir / "t10k-labels-idx1-ubyte.gz");
  CHECK(im.dims == std::vector<index_t>{10000, 28, 28});
  CHECK(lb.dims == std::vector<index_t>{10000});
  std::vector<int> count(10, 0);
  for (auto y : lb.data) ++count.at(y);
  for (int c : count) CHECK(c == 1000);  // the test set is balanced
}

#if LONGSEQ_WITH_PNG
TEST_CASE("pathfinder reader: metadata lines, PNG decoding, [-1, 1] pixels, 80/10/10 split") {
  auto s = load_pathfinder(fixtures() / "pathfinder32");
  CHECK(s.train.size() == 8);
  CHECK(s.val.size() == 1);
  CHECK(s.test.size() == 1);
  CHECK(s.train.info().max_length == 1024);
  CHECK(s.train.info().name == "pathfinder32");
  PathfinderStream stream(fixtures() / "pathfinder32");
  REQUIRE(stream.size() == 10);
  for (index_t i = 0; i < 10; ++i) {
    Example e;
    stream.read(i, e);
    CHECK(e.label == i % 2);
    CHECK(e.ids[std::size_t(i)] == 255);  // the fixture script marks pixel i of image i
    CHECK(e.ids[std::size_t(1023 - i)] == 128);
    CHECK(e.values[std::size_t(i)] == doctest::Approx(1.0));
    CHECK(e.values[std::size_t(1023 - i)] == doctest::Approx((128 / 255.0 - 0.5) / 0.5));
    CHECK(e.values[std::size_t(500)] == doctest::Approx(-1.0));
  }
  auto sp = split_pathfinder(stream);
  CHECK(sp.train.size() == 8);
  std::vector<index_t> all = sp.train.indices();
  all.insert(all.end(), sp.val.indices().begin(), sp.val.indices().end());
  all.insert(all.end(), sp.test.indices().begin(), sp.test.indices().end());
  std::sort(all.begin(), all.end());
  for (index_t i = 0; i < 10; ++i) CHECK(all[std::size_t(i)] == i);
}

TEST_CASE("pathfinder reader: missing, empty, truncated and wrong-size images; bad metadata") {
  TempDir tmp;
  fs::path root = tmp / "pathfinder32", level = root / "curv_contour_length_14";
  testdata::copy_fixture("pathfinder32", root);
  fs::remove(level / "imgs/0/sample_3.png");
  CHECK_THROWS_WITH_AS(read_pathfinder_index(root), doctest::Contains("line 4: image '"), Error);
  CHECK_THROWS_WITH_AS(read_pathfinder_index(root), doctest::Contains("sample_3.png' is missing"), Error);
  PathfinderOptions skip;
  skip.skip_missing = true;
  auto idx = read_pathfinder_index(root, skip);
  CHECK(idx.entries.size() == 9);
  CHECK(idx.skipped == std::vector<std::string>{"pathfinder32/curv_contour_length_14/imgs/0/sample_3.png"});

  std::string png = read_file(level / "imgs/0/sample_4.png");
  write_file(level / "imgs/0/sample_4.png", png.substr(0, png.size() - 30));
  PathfinderStream stream(root, skip);
  Example e;
  CHECK_THROWS_WITH_AS(stream.read(3, e), doctest::Contains("sample_4.png': truncated or corrupt PNG data"), Error);
  write_file(level / "imgs/0/sample_4.png", "not a png at all");
  CHECK_THROWS_WITH_AS(stream.read(3, e), doctest::Contains("sample_4.png': not a readable PNG"), Error);
  write_file(level / "imgs/0/sample_4.png", png);
  CHECK_NOTHROW(stream.read(3, e));
  PathfinderOptions wrong = skip;
  wrong.resolution = 64;
  CHECK_THROWS_WITH_AS(load_pathfinder(root, wrong), doctest::Contains("image is 32x32, expected 64x64"), Error);

  fs::copy_file(fixtures() / "pathfinder32/curv_contour_length_14/imgs/0/sample_3.png", level / "imgs/0/sample_3.png");
  write_file(level / "imgs/0/sample_5.png", "");
  CHECK_THROWS_WITH_AS(read_pathfinder_index(root, {}), doctest::Contains("sample_5.png' is empty"), Error);
  CHECK(read_pathfinder_index(root, skip).entries.size() == 9);

  write_file(level / "metadata/1.npy", "imgs/0 sample_0.png 0\n");
  CHECK_THROWS_WITH_AS(read_pathfinder_index(root, skip),
                       doctest::Contains("1.npy', line 1: expected at least 4 whitespace-separated fields (folder, file, index, label), got 3"), Error);
  write_file(level / "metadata/1.npy", "imgs/0 sample_0.png 0 x\n");
  CHECK_THROWS_WITH_AS(read_pathfinder_index(root, skip), doctest::Contains("field 4 (label): expected an integer label, got 'x'"), Error);
  write_file(level / "metadata/one.npy", "");
  CHECK_THROWS_WITH_AS(read_pathfinder_index(root, skip), doctest::Contains("one.npy': expected an integer file name"), Error);
  CHECK_THROWS_WITH_AS(read_pathfinder_index(tmp / "pathfinder64"), doctest::Contains("missing directory"), Error);
}

TEST_CASE("pathfinder reader: the release blacklist is skipped") {
  TempDir tmp;
  fs::path root = tmp / "pathfinder32";
  testdata::copy_fixture("pathfinder32", root);
  fs::path base = root / "curv_baseline";
  fs::create_directories(base / "imgs/0");
  fs::create_directories(base / "metadata");
  fs::copy_file(root / "curv_contour_length_14/imgs/0/sample_1.png", base / "imgs/0/sample_1.png");
  write_file(base / "imgs/0/sample_172.png", "");
  write_file(base / "metadata/0.npy", "imgs/0 sample_172.png 172 1\nimgs/0 sample_1.png 1 1\n");
  PathfinderOptions o;
  o.difficulty = "curv_baseline";
  auto idx = read_pathfinder_index(root, o);
  CHECK(idx.entries.size() == 1);
  CHECK(idx.skipped == std::vector<std::string>{"pathfinder32/curv_baseline/imgs/0/sample_172.png"});
}
#endif
