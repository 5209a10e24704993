// train::DatasetTask: batches, masks and shards as the trainers' own adapters build them, and a fit on the
// adapter that reproduces, bit for bit, a fit on a hand-written Fashion-MNIST-style pixel adapter.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <longseq/data/generate_listops.hpp>
#include <longseq/data/listops.hpp>
#include <longseq/train/tasks.hpp>

#include "toy.hpp"

using namespace longseq;
using testing::ToyNet;

namespace {

// n images of L pixels, label = whether the first pixel is bright; pixels drawn from Philox.
data::Dataset pixel_set(index_t n, index_t L, std::uint64_t stream) {
  data::TaskInfo info;
  info.name = "tiny-pixels";
  info.modality = data::Modality::pixels;
  info.num_classes = 2;
  info.vocab_size = 256;
  info.max_length = L;
  data::Dataset d(info);
  Rng rng(11, stream);
  for (index_t i = 0; i < n; ++i) {
    std::vector<std::uint8_t> img(static_cast<std::size_t>(L));
    for (auto& p : img) p = std::uint8_t(rng.below(256));
    d.add_pixels(img[0] > 127 ? 1 : 0, img);
  }
  return d;
}

// Token sequences of varying length 3..L over ids 4..19.
data::Dataset token_set(index_t n, index_t L, std::uint64_t stream) {
  data::TaskInfo info;
  info.name = "tiny-tokens";
  info.num_classes = 3;
  info.vocab_size = 20;
  info.max_length = L;
  data::Dataset d(info);
  Rng rng(12, stream);
  for (index_t i = 0; i < n; ++i) {
    std::vector<std::int32_t> ids(std::size_t(3 + index_t(rng.below(std::uint64_t(L - 2)))));
    for (auto& t : ids) t = std::int32_t(4 + rng.below(16));
    d.add_tokens(std::int32_t(i % 3), ids);
  }
  return d;
}

// The Fashion-MNIST trainer's adapter, written out from its rules: training order epoch_order(n, seed,
// epoch) without the last partial batch, masks bernoulli(p) on stream mask_stream(epoch or 0, ex, 3, split).
struct HandPixelTask {
  const data::Dataset* sets[3];
  index_t batch;
  std::uint64_t seed;
  double p;
  bool pre;
  Tensor<float> values, target;
  Tensor<std::int32_t> classes, labels;
  Tensor<std::uint8_t> mask;
  index_t num_batches(train::Split s, index_t) const {
    const index_t n = sets[int(s)]->size();
    return s == train::Split::train ? n / batch : (n + batch - 1) / batch;
  }
  void load(train::Split s, index_t epoch, index_t i) {
    const data::Dataset& d = *sets[int(s)];
    const index_t n = d.size(), L = d.info().max_length, b0 = i * batch, rows = std::min(batch, n - b0);
    const auto order = data::epoch_order(n, seed, epoch);
    values.resize(Shape{rows, L, pre ? 2 : 1});
    target.resize(Shape{rows, L});
    classes.resize(Shape{rows, L});
    mask.resize(Shape{rows, L});
    labels.resize(Shape{rows});
    for (index_t r = 0; r < rows; ++r) {
      const index_t ex = s == train::Split::train ? order[std::size_t(b0 + r)] : b0 + r;
      labels[r] = d.label(ex);
      const auto px = d.pixels(ex);
      std::vector<std::uint8_t> m(std::size_t(L), 0);
      if (pre) m = data::bernoulli_mask(L, p, seed, data::mask_stream(s == train::Split::train ? epoch : 0, ex, 3, int(s)));
      for (index_t t = 0; t < L; ++t) {
        const float v = d.info().norm(px[std::size_t(t)]);
        target(r, t) = v;
        classes(r, t) = px[std::size_t(t)];
        mask(r, t) = m[std::size_t(t)];
        values(r, t, 0) = m[std::size_t(t)] ? 0.0f : v;
        if (pre) values(r, t, 1) = float(m[std::size_t(t)]);
      }
    }
  }
  models::Inputs<float> inputs() const { return {{}, values.view(), {}}; }
  heads::Targets<float> targets() const {
    if (pre) return {classes.view(), target.view(), mask.view(), {}};
    return {labels.view(), {}, {}, {}};
  }
  index_t tokens() const { return values.size(0) * values.size(1); }
};

template <class A, class B>
void check_same_view(TensorView<const A> a, TensorView<const B> b, const char* what) {
  INFO(what);
  REQUIRE(a.shape == b.shape);
  index_t differ = 0;
  for (index_t k = 0; k < a.shape.numel(); ++k) differ += a.data[k] != b.data[k];
  CHECK(differ == 0);
}

}  // namespace

TEST_CASE("DatasetTask: pixel batches and masks (by_split) are the Fashion-MNIST trainer's, split by split") {
  const auto tr = pixel_set(13, 10, 1), va = pixel_set(5, 10, 2), te = pixel_set(5, 10, 3);
  for (bool pre : {false, true}) {
    train::TaskOptions o{.objective = pre ? train::Objective::masked : train::Objective::classify, .batch = 4, .seed = 5};
    o.mask.p = 0.4;
    o.streams = train::MaskStreams::by_split;
    train::DatasetTask<float> task(tr, va, te, o);
    HandPixelTask hand{{&tr, &va, &te}, 4, 5, 0.4, pre, {}, {}, {}, {}, {}};
    index_t masked = 0;
    for (auto s : {train::Split::train, train::Split::val, train::Split::test})
      for (index_t epoch : {0, 1}) {
        REQUIRE(task.num_batches(s, epoch) == hand.num_batches(s, epoch));
        for (index_t i = 0; i < task.num_batches(s, epoch); ++i) {
          task.load(s, epoch, i);
          hand.load(s, epoch, i);
          check_same_view(task.inputs().values, hand.inputs().values, "values");
          const auto a = task.targets(), b = hand.targets();
          check_same_view(a.classes, b.classes, pre ? "classes" : "labels");
          if (pre) {
            check_same_view(a.values, b.values, "target values");
            check_same_view(a.mask, b.mask, "mask");
            for (index_t k = 0; k < a.mask.shape.numel(); ++k) masked += a.mask.data[k];
          }
          CHECK(task.tokens() == hand.tokens());
        }
      }
    if (pre) CHECK(masked > 0);
  }
}

TEST_CASE("DatasetTask: token batches are data::mask_batch of the loader's batches; shards partition them") {
  const auto tr = token_set(10, 9, 1), va = token_set(4, 9, 2), te = token_set(4, 9, 3);
  train::TaskOptions o{.objective = train::Objective::masked, .batch = 4, .seed = 9};
  o.mask = {.p = 0.3, .kind = data::MaskKind::span, .span_length = 2};
  train::DatasetTask<float> task(tr, va, te, o);
  data::Loader<data::Dataset> loader(tr, {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 9});
  loader.set_epoch(2);
  REQUIRE(task.num_batches(train::Split::train, 2) == 2);
  for (index_t i = 0; i < 2; ++i) {
    task.load(train::Split::train, 2, i);
    const auto b = loader.batch(i);
    const auto want = data::mask_batch(b, {.p = 0.3, .kind = data::MaskKind::span, .span_length = 2, .seed = 9}, 2);
    const auto in = task.inputs();
    CHECK(in.values.data == nullptr);
    REQUIRE(in.ids.shape == Shape{b.rows, b.length});
    CHECK(std::equal(want.ids.begin(), want.ids.end(), in.ids.data));
    const auto tg = task.targets();
    CHECK(std::equal(b.ids.begin(), b.ids.end(), tg.classes.data));
    CHECK(std::equal(want.masked.begin(), want.masked.end(), tg.mask.data));
    CHECK(std::equal(b.lengths.begin(), b.lengths.end(), in.lengths.data));
    // Masked positions show <mask> and are counted by the loss; the head reads their ids from classes.
    for (index_t k = 0; k < b.rows * b.length; ++k)
      if (tg.mask.data[k]) CHECK(in.ids.data[k] == data::Vocab::mask_id);
  }

  // Two ranks: each loads its share, padded to the global batch's longest sequence, rows in order.
  train::DatasetTask<float> r0(tr, va, te, o), r1(tr, va, te, o);
  r0.set_shard(0, 2);
  r1.set_shard(1, 2);
  task.load(train::Split::val, 0, 0);
  r0.load(train::Split::val, 0, 0);
  r1.load(train::Split::val, 0, 0);
  const index_t L = task.inputs().length();
  CHECK(r0.inputs().length() == L);
  CHECK(r1.inputs().length() == L);
  std::vector<std::int32_t> joined(r0.inputs().ids.data, r0.inputs().ids.data + r0.inputs().ids.shape.numel());
  joined.insert(joined.end(), r1.inputs().ids.data, r1.inputs().ids.data + r1.inputs().ids.shape.numel());
  CHECK(std::equal(joined.begin(), joined.end(), task.inputs().ids.data, task.inputs().ids.data + joined.size()));
  CHECK(joined.size() == std::size_t(task.inputs().ids.shape.numel()));

  // Classification: labels per example, unmasked ids.
  train::DatasetTask<float> cls(tr, va, te, {.objective = train::Objective::classify, .batch = 4, .seed = 9});
  cls.load(train::Split::test, 0, 0);
  CHECK(cls.targets().classes.shape == Shape{4});
  for (index_t k = 0; k < 4; ++k) CHECK(cls.targets().classes.data[k] == te.label(k));
  CHECK(cls.targets().mask.data == nullptr);

  // Next token: the batch unchanged as input and as per-position targets (the head shifts them), no mask.
  train::DatasetTask<float> lm(tr, va, te, {.objective = train::Objective::causal, .batch = 4, .seed = 9});
  lm.load(train::Split::train, 2, 1);
  const auto b = loader.batch(1);
  CHECK(std::equal(b.ids.begin(), b.ids.end(), lm.inputs().ids.data));
  CHECK(std::equal(b.ids.begin(), b.ids.end(), lm.targets().classes.data));
  CHECK(lm.targets().classes.shape == Shape{b.rows, b.length});
  CHECK(lm.targets().mask.data == nullptr);
  CHECK(std::equal(b.lengths.begin(), b.lengths.end(), lm.targets().lengths.data));
}

TEST_CASE("DatasetTask: bad options are named") {
  const auto tr = token_set(4, 6, 1);
  CHECK_THROWS_WITH_AS(train::DatasetTask<float>(tr, tr, tr, {.batch = 0}), doctest::Contains("option 'batch'"), Error);
  CHECK_THROWS_WITH_AS(train::DatasetTask<float>(tr, tr, pixel_set(2, 6, 1), {}), doctest::Contains("tiny-pixels"),
                       Error);
}

TEST_CASE("DatasetTask: fit on the adapter reproduces fit on the hand-written pixel adapter bit for bit") {
  const auto tr = pixel_set(16, 6, 1), va = pixel_set(4, 6, 2), te = pixel_set(4, 6, 3);
  using Spt = heads::MaskedDenoisingHead<float>;
  using Net = ToyNet<float, Spt>;
  auto run = [&](auto& task) {
    Net net(testing::toy_config<float, Spt>(8, {.dim = 8, .classes = 0, .loss = heads::DenoiseLoss::l1}, true));
    ParamStore<float> store;
    store.bind(net);
    Rng rng(3);
    net.init(rng);
    train::AdamW<float> opt(store, {.lr = 1e-2});
    train::FitConfig cfg;
    cfg.progress = false;
    cfg.epochs = 2;
    cfg.seed = 7;
    cfg.select = train::Select::loss;
    const auto res = train::fit(net, store, opt, train::Schedule{}, task, cfg);
    CHECK(res.steps == 2 * 4);
    const auto v = store.values();
    return std::vector<float>(v.data, v.data + v.numel());
  };
  train::TaskOptions o{.objective = train::Objective::masked, .batch = 4, .seed = 5};
  o.mask.p = 0.5;
  o.streams = train::MaskStreams::by_split;
  train::DatasetTask<float> task(tr, va, te, o);
  HandPixelTask hand{{&tr, &va, &te}, 4, 5, 0.5, true, {}, {}, {}, {}, {}};
  const auto a = run(task), b = run(hand);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST_CASE("DatasetTask: shuffle_operands reorders ListOps training batches only, keeping every value and label") {
  Rng g(5, 0);
  const auto rows = data::generate_listops(24, {.max_depth = 3, .max_args = 4, .min_length = 8, .max_length = 40}, g);
  data::TokenCounter counter;
  for (const auto& r : rows) counter.add(data::tokenize_listops(r.source));
  const data::Vocab vocab = data::Vocab::build(counter, 1);
  data::Dataset set(data::listops_info(vocab.size(), 64));
  for (const auto& r : rows) set.add_tokens(r.target, data::encode(data::tokenize_listops(r.source), vocab, 64, true));

  train::TaskOptions o{.objective = train::Objective::classify, .batch = 8, .seed = 4};
  train::TaskOptions s = o;
  s.shuffle_operands = data::listops_ids(vocab);
  train::DatasetTask<float> plain(set, set, set, o), shuffled(set, set, set, s);
  // The value of row r of a loaded batch, read back through the vocabulary (up to <eos>).
  auto value_of = [&](const train::DatasetTask<float>& t, index_t r) {
    const auto in = t.inputs();
    std::vector<std::string> toks;
    for (index_t k = 0; k < in.lengths.data[r]; ++k) {
      const auto id = in.ids.data[r * in.ids.shape[1] + k];
      if (id == data::Vocab::eos_id) break;
      toks.push_back(vocab.token(id));
    }
    return data::evaluate_listops_tokens(toks);
  };
  index_t changed = 0;
  for (index_t epoch : {0, 1}) {
    for (index_t i = 0; i < plain.num_batches(train::Split::train, epoch); ++i) {
      plain.load(train::Split::train, epoch, i);
      shuffled.load(train::Split::train, epoch, i);
      const auto a = plain.inputs(), b = shuffled.inputs();
      REQUIRE(a.ids.shape == b.ids.shape);
      const index_t R = a.ids.shape[0], L = a.ids.shape[1];
      for (index_t r = 0; r < R; ++r) {
        CHECK(plain.targets().classes.data[r] == shuffled.targets().classes.data[r]);
        CHECK(value_of(shuffled, r) == shuffled.targets().classes.data[r]);
        std::vector<std::int32_t> x(a.ids.data + r * L, a.ids.data + (r + 1) * L), y(b.ids.data + r * L, b.ids.data + (r + 1) * L);
        changed += x != y;
        std::sort(x.begin(), x.end());
        std::sort(y.begin(), y.end());
        CHECK(x == y);  // the same tokens, reordered
      }
    }
  }
  CHECK(changed > 8);  // most expressions have an operator with two different arguments
  // Validation and test batches are never reordered.
  for (auto split : {train::Split::val, train::Split::test}) {
    plain.load(split, 1, 0);
    shuffled.load(split, 1, 0);
    const auto a = plain.inputs(), b = shuffled.inputs();
    CHECK(std::equal(a.ids.data, a.ids.data + a.ids.shape.numel(), b.ids.data));
  }
  // Pixels, or a vocabulary without ListOps operators, are refused by name.
  CHECK_THROWS_WITH_AS(train::DatasetTask<float>(pixel_set(4, 6, 1), pixel_set(4, 6, 2), pixel_set(4, 6, 3), s),
                       doctest::Contains("shuffle_operands"), Error);
  CHECK_THROWS_WITH_AS(data::listops_ids(data::Vocab{}), doctest::Contains("no ListOps operator"), Error);
}
