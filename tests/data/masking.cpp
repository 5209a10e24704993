#include <doctest/doctest.h>

#include <cmath>

#include <longseq/data/masking.hpp>

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;

TEST_CASE("bernoulli masking: rate p, deterministic per (seed, epoch, example), varies otherwise") {
  const index_t L = 20000;
  for (double p : {0.1, 0.15, 0.5}) {
    auto m = bernoulli_mask(L, p, 3, mask_stream(0, 5));
    double rate = 0;
    for (auto v : m) rate += v;
    rate /= double(L);
    CHECK(std::abs(rate - p) < 4 * std::sqrt(p * (1 - p) / double(L)));
    // Neighbouring positions are uncorrelated: P(both masked) ~ p^2.
    double both = 0;
    for (index_t t = 0; t + 1 < L; ++t) both += m[std::size_t(t)] && m[std::size_t(t + 1)];
    CHECK(both / double(L - 1) == doctest::Approx(p * p).epsilon(0.15));
  }
  auto a = bernoulli_mask(100, 0.5, 3, mask_stream(2, 7)), b = bernoulli_mask(100, 0.5, 3, mask_stream(2, 7));
  CHECK(a == b);
  CHECK(a != bernoulli_mask(100, 0.5, 3, mask_stream(3, 7)));
  CHECK(a != bernoulli_mask(100, 0.5, 3, mask_stream(2, 8)));
  CHECK(a != bernoulli_mask(100, 0.5, 4, mask_stream(2, 7)));
  // A prefix of a longer mask is the shorter mask: position t depends on t alone.
  auto c = bernoulli_mask(37, 0.5, 3, mask_stream(2, 7));
  CHECK(std::equal(c.begin(), c.end(), a.begin()));
  for (auto v : bernoulli_mask(50, 0.0, 1, 0)) CHECK(v == 0);
  for (auto v : bernoulli_mask(50, 1.0, 1, 0)) CHECK(v == 1);
}

TEST_CASE("span masking: int(L p / s) non-overlapping spans of length s inside [0, L-1)") {
  const index_t L = 1000;
  auto m = span_mask(L, 0.3, 5, 1, 2);
  index_t masked = 0, runs = 0;
  for (index_t t = 0; t < L; ++t) {
    masked += m[std::size_t(t)];
    if (m[std::size_t(t)] && (t == 0 || !m[std::size_t(t - 1)])) {
      ++runs;
      index_t e = t;
      while (e < L && m[std::size_t(e)]) ++e;
      CHECK((e - t) % 5 == 0);  // spans may touch (a start at start+s is allowed) but never overlap
    }
  }
  CHECK(masked == 300);  // int(1000 * 0.3 / 5) = 60 spans of 5
  CHECK(runs > 30);
  CHECK(m[std::size_t(L - 1)] == 0);  // starts are drawn from [0, L-s)
  CHECK(m == span_mask(L, 0.3, 5, 1, 2));
  CHECK(m != span_mask(L, 0.3, 5, 1, 3));
  // A fractional span length is a share of the sequence.
  auto f = span_mask(200, 0.1, 0.05, 1, 0);  // s = 10, two spans
  index_t n = 0;
  for (auto v : f) n += v;
  CHECK(n == 20);
  // When the sequence is too crowded, masking stops once no start is allowed.
  auto crowded = span_mask(20, 0.9, 4, 1, 0);
  index_t k = 0;
  for (auto v : crowded) k += v;
  CHECK(k <= 16);
  CHECK(k % 4 == 0);
  CHECK_THROWS_WITH_AS(span_mask(20, 0.5, 0, 1, 0), doctest::Contains("span_length must be positive"), Error);
  MaskOptions bad;
  bad.p = 1.5;
  CHECK_THROWS_WITH_AS(make_mask(10, bad, 0), doctest::Contains("masking probability must be in [0, 1], got 1.5"), Error);
}

namespace {
Batch token_batch() {
  TaskInfo info;
  info.name = "t";
  Dataset d(info);
  std::vector<std::int32_t> a(40), b(25);
  for (int i = 0; i < 40; ++i) a[std::size_t(i)] = 4 + i % 10;
  for (int i = 0; i < 25; ++i) b[std::size_t(i)] = 4 + (i * 3) % 10;
  d.add_tokens(0, a);
  d.add_tokens(1, b);
  std::vector<index_t> idx{1, 0};
  return make_batch(d, std::span<const index_t>(idx));
}
}  // namespace

TEST_CASE("token masking: masked ids become <mask>, targets hold the originals, padding untouched") {
  Batch b = token_batch();
  MaskOptions o;
  o.p = 0.5;
  o.seed = 4;
  auto m = mask_batch(b, o, 2);
  index_t count = 0;
  for (index_t r = 0; r < b.rows; ++r) {
    auto ref = bernoulli_mask(b.lengths[std::size_t(r)], 0.5, 4, mask_stream(2, b.indices[std::size_t(r)]));
    for (index_t t = 0; t < b.length; ++t) {
      std::size_t k = std::size_t(r * b.length + t);
      bool real = t < b.lengths[std::size_t(r)];
      bool want = real && ref[std::size_t(t)];
      CHECK(bool(m.masked[k]) == want);
      CHECK(m.ids[k] == (want ? Vocab::mask_id : b.ids[k]));
      CHECK(m.targets[k] == (want ? b.ids[k] : ignore_index));
      count += want;
    }
  }
  CHECK(count > 15);
  CHECK(m.values.empty());
  // The same example in another batch position gets the same mask.
  auto again = mask_batch(b, o, 2);
  CHECK(again.ids == m.ids);
  CHECK(mask_batch(b, o, 3).ids != m.ids);
}

TEST_CASE("pixel masking: value zeroed, indicator channel, L1 and class targets") {
  TaskInfo info;
  info.name = "p";
  info.modality = Modality::pixels;
  info.norm = {0.5f, 0.5f};
  Dataset d(info);
  std::vector<std::uint8_t> img(64);
  for (int i = 0; i < 64; ++i) img[std::size_t(i)] = std::uint8_t(i * 4);
  d.add_pixels(1, img);
  std::vector<index_t> idx{0};
  Batch b = make_batch(d, std::span<const index_t>(idx));
  MaskOptions o;
  o.p = 0.5;
  auto m = mask_batch(b, o, 0);
  REQUIRE(m.values.size() == 128);
  index_t n = 0;
  for (std::size_t t = 0; t < 64; ++t) {
    if (m.masked[t]) {
      ++n;
      CHECK(m.values[2 * t] == 0.0f);
      CHECK(m.values[2 * t + 1] == 1.0f);
      CHECK(m.value_targets[t] == b.values[t]);
      CHECK(m.targets[t] == int(t) * 4);
    } else {
      CHECK(m.values[2 * t] == b.values[t]);
      CHECK(m.values[2 * t + 1] == 0.0f);
      CHECK(m.value_targets[t] == ignore_value);
      CHECK(m.targets[t] == ignore_index);
    }
  }
  CHECK(n > 10);
  CHECK(n < 54);
}

TEST_CASE("causal targets: shifted by one, last real position and padding ignored") {
  Batch b = token_batch();
  auto c = causal_targets(b);
  // Row 0 is example 1 (length 25), padded to 40.
  for (index_t t = 0; t < 24; ++t) CHECK(c.targets[std::size_t(t)] == b.ids[std::size_t(t + 1)]);
  for (index_t t = 24; t < 40; ++t) CHECK(c.targets[std::size_t(t)] == ignore_index);
  CHECK(c.targets[std::size_t(40 + 38)] == b.ids[std::size_t(40 + 39)]);
  CHECK(c.targets[std::size_t(40 + 39)] == ignore_index);
  CHECK(c.value_targets.empty());
}

TEST_CASE("retrieval pairs: the two documents of a pair are masked independently") {
  TaskInfo info;
  info.name = "pairs";
  info.docs = 2;
  Dataset d(info);
  std::vector<std::int32_t> a(64, 7), b(64, 7);
  d.add_tokens(1, a, b);
  std::vector<index_t> idx{0};
  Batch batch = make_batch(d, std::span<const index_t>(idx));
  REQUIRE(batch.rows == 2);
  MaskOptions o;
  o.p = 0.5;
  auto m = mask_batch(batch, o, 0);
  CHECK(!std::equal(m.masked.begin(), m.masked.begin() + 64, m.masked.begin() + 64));
  auto ref = bernoulli_mask(64, 0.5, 0, mask_stream(0, 0, 2, 1));
  CHECK(std::equal(ref.begin(), ref.end(), m.masked.begin() + 64));
}
