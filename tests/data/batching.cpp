#include <doctest/doctest.h>

#include <longseq/data/batching.hpp>
#include <longseq/data/pathfinder.hpp>

#include "helpers.hpp"

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;

namespace {
// Token dataset whose example i has length lens[i] and ids 10*i + t.
Dataset toy_tokens(const std::vector<index_t>& lens, int docs = 1) {
  TaskInfo info;
  info.name = "toy";
  info.docs = docs;
  Dataset d(info);
  for (std::size_t i = 0; i < lens.size(); ++i) {
    std::vector<std::int32_t> a, b;
    for (index_t t = 0; t < lens[i]; ++t) a.push_back(std::int32_t(10 * i + t));
    for (index_t t = 0; t < lens[i] + 1; ++t) b.push_back(std::int32_t(1000 + t));
    if (docs == 2) d.add_tokens(std::int32_t(i % 2), a, b);
    else d.add_tokens(std::int32_t(i % 3), a);
  }
  return d;
}
}  // namespace

TEST_CASE("padding to the batch maximum: pad id 1, masks, lengths, labels") {
  Dataset d = toy_tokens({3, 5, 2});
  std::vector<index_t> idx{2, 0, 1};
  Batch b = make_batch(d, std::span<const index_t>(idx));
  CHECK(b.size == 3);
  CHECK(b.rows == 3);
  CHECK(b.length == 5);
  CHECK(b.lengths == std::vector<std::int32_t>{2, 3, 5});
  CHECK(b.labels == std::vector<std::int32_t>{2, 0, 1});
  CHECK(b.indices == idx);
  CHECK(std::vector<std::int32_t>(b.ids.begin(), b.ids.begin() + 5) == std::vector<std::int32_t>{20, 21, 1, 1, 1});
  CHECK(std::vector<std::uint8_t>(b.mask.begin(), b.mask.begin() + 5) == std::vector<std::uint8_t>{1, 1, 0, 0, 0});
  CHECK(std::vector<std::int32_t>(b.ids.begin() + 10, b.ids.end()) == std::vector<std::int32_t>{10, 11, 12, 13, 14});
  CHECK(b.values.empty());
}

TEST_CASE("padding to a fixed length, and the error when a sequence is longer") {
  Dataset d = toy_tokens({3, 5});
  std::vector<index_t> idx{0, 1};
  PadOptions p;
  p.fixed_length = 8;
  Batch b = make_batch(d, std::span<const index_t>(idx), p);
  CHECK(b.length == 8);
  CHECK(b.ids.size() == 16);
  CHECK(b.ids[7] == Vocab::pad_id);
  p.fixed_length = 4;
  CHECK_THROWS_WITH_AS(make_batch(d, std::span<const index_t>(idx), p),
                       doctest::Contains("a sequence of length 5 exceeds the fixed padded length 4"), Error);
  std::vector<index_t> bad{0, 7};
  CHECK_THROWS_WITH_AS(make_batch(d, std::span<const index_t>(bad)), doctest::Contains("example index 7 out of range for dataset 'toy' of size 2"), Error);
}

TEST_CASE("retrieval batches stack first documents, then second documents") {
  Dataset d = toy_tokens({2, 4}, 2);
  std::vector<index_t> idx{1, 0};
  Batch b = make_batch(d, std::span<const index_t>(idx));
  CHECK(b.rows == 4);
  CHECK(b.length == 5);  // second document of example 1
  CHECK(b.lengths == std::vector<std::int32_t>{4, 2, 5, 3});
  CHECK(b.ids[0] == 10);
  CHECK(b.ids[5] == 0);
  CHECK(b.ids[10] == 1000);
  CHECK(b.ids[15 + 2] == 1002);
  CHECK(b.ids[15 + 3] == Vocab::pad_id);
  CHECK(b.labels == std::vector<std::int32_t>{1, 0});
}

TEST_CASE("pixel batches carry intensities and normalized values") {
  TaskInfo info;
  info.name = "px";
  info.modality = Modality::pixels;
  info.norm = {0.5f, 0.5f};
  Dataset d(info);
  std::vector<std::uint8_t> a{0, 255, 51}, c{255, 0, 0};
  d.add_pixels(1, a);
  d.add_pixels(0, c);
  std::vector<index_t> idx{0, 1};
  Batch b = make_batch(d, std::span<const index_t>(idx));
  CHECK(b.ids == std::vector<std::int32_t>{0, 255, 51, 255, 0, 0});
  CHECK(b.values[0] == doctest::Approx(-1.0));
  CHECK(b.values[1] == doctest::Approx(1.0));
  CHECK(b.values[2] == doctest::Approx(-0.6));
  CHECK_THROWS_WITH_AS(d.add_tokens(0, std::vector<std::int32_t>{1}), doctest::Contains("holds pixels, not tokens"), Error);
}

TEST_CASE("epoch shuffling is a deterministic permutation per (seed, epoch)") {
  auto a = epoch_order(100, 7, 3), b = epoch_order(100, 7, 3), c = epoch_order(100, 7, 4), e = epoch_order(100, 8, 3);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != e);
  auto s = a;
  std::sort(s.begin(), s.end());
  for (index_t i = 0; i < 100; ++i) CHECK(s[std::size_t(i)] == i);
  CHECK(epoch_order(5, 7, 3, false) == std::vector<index_t>{0, 1, 2, 3, 4});
}

TEST_CASE("loader: every example once per epoch, drop_last, reproducible across instances") {
  std::vector<index_t> lens;
  for (int i = 0; i < 23; ++i) lens.push_back(1 + (i * 7) % 13);
  Dataset d = toy_tokens(lens);
  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 9;
  Loader<Dataset> l1(d, o), l2(d, o);
  CHECK(l1.num_batches() == 5);
  std::vector<index_t> seen;
  for (index_t b = 0; b < l1.num_batches(); ++b) {
    CHECK(l1.batch_indices(b) == l2.batch_indices(b));
    seen.insert(seen.end(), l1.batch_indices(b).begin(), l1.batch_indices(b).end());
  }
  std::sort(seen.begin(), seen.end());
  for (index_t i = 0; i < 23; ++i) CHECK(seen[std::size_t(i)] == i);
  Batch x = l1.batch(2), y = l2.batch(2);
  CHECK(x.ids == y.ids);
  auto first = l1.batch_indices(0);
  l1.set_epoch(1);
  CHECK(l1.batch_indices(0) != first);
  l1.set_epoch(0);
  CHECK(l1.batch_indices(0) == first);
  o.drop_last = true;
  CHECK(Loader<Dataset>(d, o).num_batches() == 4);
  CHECK_THROWS_WITH_AS(l1.batch_indices(5), doctest::Contains("batch 5 out of range: the epoch has 5 batches"), Error);
}

TEST_CASE("length bucketing reduces padding and still covers every example") {
  std::vector<index_t> lens;
  for (int i = 0; i < 64; ++i) lens.push_back(1 + (i * 37) % 50);
  Dataset d = toy_tokens(lens);
  LoaderOptions plain;
  plain.batch_size = 8;
  plain.seed = 1;
  LoaderOptions bucketed = plain;
  bucketed.bucket_batches = 8;
  auto padding = [&](const LoaderOptions& o) {
    Loader<Dataset> l(d, o);
    index_t pad = 0, count = 0;
    for (index_t b = 0; b < l.num_batches(); ++b) {
      Batch x = l.batch(b);
      count += x.size;
      for (auto v : x.mask) pad += v == 0;
    }
    CHECK(count == 64);
    return pad;
  };
  CHECK(padding(bucketed) * 4 < padding(plain));
  Loader<Dataset> a(d, bucketed), b(d, bucketed);
  for (index_t k = 0; k < a.num_batches(); ++k) CHECK(a.batch_indices(k) == b.batch_indices(k));
}

#if LONGSEQ_WITH_PNG
TEST_CASE("streaming: a loader over lazily decoded Pathfinder images") {
  PathfinderStream stream(testdata::fixtures() / "pathfinder32");
  auto sp = split_pathfinder(stream);
  LoaderOptions o;
  o.batch_size = 4;
  Loader<Subset<PathfinderStream>> l(sp.train, o);
  CHECK(l.num_batches() == 2);
  Batch b = l.batch(0);
  CHECK(b.length == 1024);
  CHECK(b.values.size() == 4 * 1024);
  for (index_t r = 0; r < b.size; ++r) {
    index_t image = sp.train.indices()[std::size_t(b.indices[std::size_t(r)])];
    CHECK(b.labels[std::size_t(r)] == image % 2);
    CHECK(b.ids[std::size_t(r * 1024 + image)] == 255);
  }
}
#endif

#include <longseq/data/summary.hpp>

TEST_CASE("split summary: counts, label balance, lengths, frequent ids") {
  Dataset d = toy_tokens({3, 5, 2, 6});
  auto s = summarize(d, 2);
  CHECK(s.count == 4);
  CHECK(s.labels == std::map<std::int32_t, index_t>{{0, 2}, {1, 1}, {2, 1}});
  CHECK(s.min_length == 2);
  CHECK(s.max_length == 6);
  CHECK(s.mean_length == doctest::Approx(4.0));
  REQUIRE(s.top_ids.size() == 2);
  CHECK(s.top_ids[0].second == 1);
  Dataset pairs = toy_tokens({2, 4}, 2);
  auto p = summarize(pairs);
  CHECK(p.min_length == 2);
  CHECK(p.max_length == 5);
  CHECK(p.mean_length == doctest::Approx((2 + 3 + 4 + 5) / 4.0));
  CHECK(p.top_ids[0] == std::pair<std::int32_t, index_t>{1000, 2});
  auto q = summarize(d, 3, false);
  CHECK(q.max_length == 6);
  CHECK(q.top_ids.empty());
}

#if LONGSEQ_WITH_ZLIB
#include <longseq/data/idx.hpp>
#include <longseq/data/masking.hpp>

TEST_CASE("Fashion-MNIST as a sequence task: splits, loader, masked pretraining batch") {
  Splits s = load_idx_task(testdata::fixtures() / "fashion-mnist", "fashion-mnist");
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 5;
  Loader<Dataset> train(s.train, o);
  REQUIRE(train.num_batches() == 2);
  Batch x = train.batch(0);
  CHECK(x.size == 4);
  CHECK(x.length == 784);
  CHECK(x.values.size() == 4 * 784);
  CHECK(x.lengths == std::vector<std::int32_t>(4, 784));
  for (index_t r = 0; r < 4; ++r) CHECK(x.labels[std::size_t(r)] == s.train.label(x.indices[std::size_t(r)]));
  MaskedBatch m = mask_batch(x, {.p = 0.5, .seed = 11}, 0);
  CHECK(m.values.size() == 4 * 784 * 2);
  index_t masked = 0;
  for (auto v : m.masked) masked += v;
  CHECK(masked > 4 * 784 / 3);
  CHECK(masked < 2 * 4 * 784 / 3);
  Batch t = Loader<Dataset>(s.test, {.batch_size = 8, .shuffle = false}).batch(0);
  CHECK(t.labels == std::vector<std::int32_t>{5, 6, 7, 8});
}
#endif
