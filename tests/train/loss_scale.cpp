// Dynamic loss scaling: the scaler's growth, backoff and limits; in fit, a power-of-two scale without
// overflow changes nothing (bitwise), overflows skip updates and lower the scale, the scaler state survives
// a checkpoint and a resumed run reaches the same numbers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include <longseq/train/checkpoint.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/loss_scale.hpp>

#include "train/toy.hpp"
#include "temp_root.hpp"

using namespace longseq;
using testing::ToyNet;
using testing::ToyTask;

namespace {

std::string scaler_dir(const std::string& name) {
  auto d = testtmp::dir("scale") / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// The toy classifier (float) or, for overflow in double, a regressor of the whole sequence from its
// pooled features whose targets are amplified: its gradients exceed 1 and overflow near the top of the range.
template <class T, class Head = heads::ClassificationHead<T>>
struct ScaleRun {
  using Net = ToyNet<T, Head>;
  static typename Head::Config head() {
    if constexpr (std::is_same_v<Head, heads::RegressionHead<T>>) return {.dim = 8, .outputs = 6};
    else return {.dim = 8, .classes = 2};
  }
  Net net{testing::toy_config<T, Head>(8, head())};
  ParamStore<T> store;
  train::AdamW<T> opt;
  explicit ScaleRun(std::uint64_t seed = 42) : opt((store.bind(net), store), {.lr = 3e-3, .weight_decay = 0.01}) {
    Rng rng(seed);
    net.init(rng);
  }
  std::vector<T> params() {
    auto v = store.values();
    return std::vector<T>(v.data, v.data + v.numel());
  }
};
using Regressor = ScaleRun<double, heads::RegressionHead<double>>;

struct AmplifiedTask : ToyTask<double> {
  double amp = 16;
  void load(train::Split s, index_t epoch, index_t i) {
    ToyTask<double>::load(s, epoch, i);
    for (index_t k = 0; k < raw.numel(); ++k) raw[k] *= amp;
  }
};

train::FitConfig scaled_config(double initial, std::string dir = {}) {
  train::FitConfig c;
  c.progress = false;
  c.checkpoint_dir = std::move(dir);
  c.epochs = 3;  // 6 batches of 8 per epoch, accum 2: 3 groups per epoch, 9 in all
  c.accum = 2;
  c.clip = 1.0;
  c.seed = 7;
  c.loss_scale.initial = initial;
  return c;
}

// 2^1020 with window 2 on the regressor: with these settings the first two groups overflow (2^1020 ->
// 2^1018), then the scale grows after two good updates and overflows again, four skips in nine groups.
train::FitConfig overflow_config(std::string dir = {}) {
  auto c = scaled_config(0x1p1020, std::move(dir));
  c.loss_scale.window = 2;
  c.select = train::Select::loss;
  return c;
}

const train::Schedule cosine{train::Schedule::Kind::cosine, 3, 9, 0.0};

struct Events {
  int steps = 0;
  std::vector<nlohmann::json> scale;
};
Events read_events(const std::string& path) {
  Events e;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.at("event") == "step") ++e.steps;
    if (j.at("event") == "loss_scale") e.scale.push_back(j);
  }
  return e;
}

}  // namespace

TEST_CASE("LossScaler: grows after a window of good updates, backs off and skips on overflow") {
  train::LossScaler s({.initial = 1024, .growth = 2, .backoff = 0.5, .window = 3, .min_scale = 1});
  CHECK(s.enabled());
  CHECK(s.scale() == 1024);
  CHECK(s.update(true));
  CHECK(s.update(true));
  CHECK(s.scale() == 1024);
  CHECK(s.state().good_steps == 2);
  CHECK(s.update(true));  // the third good update in a row doubles the scale
  CHECK(s.scale() == 2048);
  CHECK(s.state().good_steps == 0);
  CHECK(s.update(true));
  CHECK_FALSE(s.update(false));  // overflow: skip, halve, restart the window
  CHECK(s.scale() == 1024);
  CHECK(s.state().good_steps == 0);
  CHECK(s.skipped() == 1);
  CHECK_FALSE(s.update(false));
  CHECK(s.scale() == 512);
  CHECK(s.skipped() == 2);
  for (int k = 0; k < 3; ++k) CHECK(s.update(true));
  CHECK(s.scale() == 1024);
  CHECK(s.skipped() == 2);

  SUBCASE("off: scale 1 and every step taken") {
    train::LossScaler off;
    CHECK_FALSE(off.enabled());
    CHECK(off.scale() == 1.0);
    CHECK(off.update(false));
    CHECK(off.skipped() == 0);
    CHECK(off.state().scale == 0);
  }
  SUBCASE("the scale stays finite at the top of the range") {
    train::LossScaler top({.initial = 0x1p1023, .window = 1});
    CHECK(top.update(true));
    CHECK(top.scale() == 0x1p1023);
  }
  SUBCASE("below min_scale: gives up with an error") {
    train::LossScaler low({.initial = 4, .backoff = 0.5, .min_scale = 2});
    CHECK(low.can_back_off());
    CHECK_FALSE(low.update(false));
    CHECK(low.scale() == 2);
    CHECK_FALSE(low.can_back_off());
    CHECK_THROWS_WITH_AS(low.update(false),
                         doctest::Contains("gradients are non-finite at scale 2 and backing off would go below "
                                           "min_scale = 2"),
                         Error);
  }
  SUBCASE("restore continues from a saved state; an empty state keeps the fresh one") {
    train::LossScaler r({.initial = 1024, .window = 3});
    r.restore({.scale = 0, .good_steps = 5, .skipped = 5});
    CHECK(r.scale() == 1024);
    CHECK(r.skipped() == 0);
    r.restore({.scale = 256, .good_steps = 2, .skipped = 7});
    CHECK(r.scale() == 256);
    CHECK(r.skipped() == 7);
    CHECK(r.update(true));
    CHECK(r.scale() == 512);
    CHECK_THROWS_WITH_AS(r.restore({.scale = 300, .good_steps = 0, .skipped = 0}),
                         doctest::Contains("saved state (scale 300, good_steps 0, skipped 0) is invalid"), Error);
  }
}

TEST_CASE("LossScaler: invalid configurations are rejected with the offending value") {
  using C = train::LossScaleConfig;
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1000}),
                       doctest::Contains("initial = 1000 must be a power of two"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = -2}), doctest::Contains("initial = -2 must be a power of two"),
                       Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .growth = 1}),
                       doctest::Contains("growth = 1 must be a power of two > 1"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .growth = 3}),
                       doctest::Contains("growth = 3 must be a power of two > 1"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .backoff = 1}),
                       doctest::Contains("backoff = 1 must be a power of two in (0, 1)"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .backoff = 0}),
                       doctest::Contains("backoff = 0 must be a power of two in (0, 1)"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .backoff = 0.3}),
                       doctest::Contains("backoff = 0.3 must be a power of two in (0, 1)"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .window = 0}),
                       doctest::Contains("window = 0 must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(train::LossScaler(C{.initial = 1024, .min_scale = 2048}),
                       doctest::Contains("min_scale = 2048 must be in (0, initial = 1024]"), Error);
  // The same errors come out of fit before any work.
  ScaleRun<float> r;
  ToyTask<float> task;
  CHECK_THROWS_WITH_AS(train::fit(r.net, r.store, r.opt, cosine, task, scaled_config(48)),
                       doctest::Contains("initial = 48 must be a power of two"), Error);
}

TEST_CASE("fit: a power-of-two loss scale without overflow gives bitwise the same run as no scaling") {
  ToyTask<float> task;
  ScaleRun<float> plain, scaled;
  const auto a = train::fit(plain.net, plain.store, plain.opt, cosine, task, scaled_config(0));
  auto cfg = scaled_config(0x1p10);
  cfg.loss_scale.window = 2;  // grows four times over the 9 updates: 2^10 -> 2^14
  const auto b = train::fit(scaled.net, scaled.store, scaled.opt, cosine, task, cfg);
  CHECK(a.loss_scale == 0);
  CHECK(a.skipped == 0);
  CHECK(b.loss_scale == 0x1p14);
  CHECK(b.skipped == 0);
  CHECK(a.steps == 9);
  CHECK(b.steps == 9);
  const auto pa = plain.params(), pb = scaled.params();
  REQUIRE(pa.size() == pb.size());
  CHECK(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
  REQUIRE(a.history.size() == b.history.size());
  for (std::size_t e = 0; e < a.history.size(); ++e) {
    CAPTURE(e);
    CHECK(a.history[e].train.loss == b.history[e].train.loss);
    CHECK(a.history[e].val.loss == b.history[e].val.loss);
  }
  // The runs really differ in what the backward saw: a scale that overflows float changes the run.
  ScaleRun<float> huge;
  const auto c = train::fit(huge.net, huge.store, huge.opt, cosine, task, scaled_config(0x1p200));
  CHECK(c.skipped > 0);
}

TEST_CASE("fit: overflowing updates are skipped, the scale backs off and training goes on (double)") {
  AmplifiedTask task;
  Regressor r;
  const std::string metrics = scaler_dir("overflow") + "/metrics.jsonl";
  train::MetricsLog log(metrics);
  auto cfg = overflow_config();
  cfg.log = &log;
  cfg.log_every = 1;
  const auto res = train::fit(r.net, r.store, r.opt, cosine, task, cfg);
  CHECK(res.skipped > 0);
  CHECK(res.loss_scale < 0x1p1020);
  CHECK(res.steps + res.skipped == 9);  // every group either updates or is skipped
  CHECK(res.steps > 0);
  CHECK(res.history.size() == 3);
  for (double v : r.params()) REQUIRE(std::isfinite(v));
  CHECK(r.opt.steps() == res.steps);
  const Events ev = read_events(metrics);
  CHECK(ev.steps == res.steps);  // log_every 1: one step event per update taken, none for a skipped group
  REQUIRE(ev.scale.size() == std::size_t(res.skipped));
  for (std::size_t k = 0; k < ev.scale.size(); ++k) {
    CHECK(ev.scale[k].at("skipped").get<index_t>() == index_t(k + 1));
    CHECK(ev.scale[k].at("scale").get<double>() < 0x1p1020);
  }
  CHECK(ev.scale.front().at("step") == 0);  // the very first update overflowed
  CHECK(ev.scale.front().at("scale").get<double>() == 0x1p1019);
  // The parameters moved: the updates taken were real ones.
  Regressor init;
  CHECK(init.params() != r.params());
}

TEST_CASE("fit: loss scaling gives up below min_scale, and a non-finite loss still stops at once") {
  ToyTask<float> task;
  SUBCASE("every scale overflows float: stops when the scale would pass min_scale") {
    ScaleRun<float> r;
    auto cfg = scaled_config(0x1p200);
    cfg.loss_scale.min_scale = 0x1p197;  // three backoffs allowed (2^200 -> 2^197), the fourth is not
    // Epoch 0's three groups back off to 2^197; the first group of epoch 1 cannot.
    const std::string m = train::detail::fmt_double(0x1p197);
    const std::string want = "at loss scale " + m + ", which cannot back off below min_scale " + m +
                             " at step 0 (epoch 1, batch 1); training stopped; no checkpoint was written";
    CHECK_THROWS_WITH_AS(train::fit(r.net, r.store, r.opt, cosine, task, cfg), doctest::Contains(want.c_str()), Error);
  }
  SUBCASE("a NaN loss") {
    task.poison_at = 3;
    ScaleRun<float> r;
    CHECK_THROWS_WITH_AS(train::fit(r.net, r.store, r.opt, cosine, task, scaled_config(0x1p10)),
                         doctest::Contains("non-finite loss (nan) at step 1 (epoch 0, batch 3); training stopped"),
                         Error);
  }
}

TEST_CASE("checkpoint: the loss-scaler state round-trips; files without it give the defaults") {
  const std::string dir = scaler_dir("ckpt");
  ScaleRun<float> r;
  train::TrainState st;
  st.loss_scale = {.scale = 0x1p12, .good_steps = 3, .skipped = 5};
  train::save_checkpoint(dir + "/on.safetensors", r.store, &r.opt, st);
  train::TrainState back;
  train::load_checkpoint(dir + "/on.safetensors", r.store, &r.opt, &back);
  CHECK(back.loss_scale.scale == 0x1p12);
  CHECK(back.loss_scale.good_steps == 3);
  CHECK(back.loss_scale.skipped == 5);

  st.loss_scale = {};  // scaling off: no entries written, and reading gives the defaults
  train::save_checkpoint(dir + "/off.safetensors", r.store, &r.opt, st);
  auto f = interop::Safetensors::load(dir + "/off.safetensors");
  CHECK_FALSE(f.metadata.count("loss_scale.scale"));
  train::load_checkpoint(dir + "/off.safetensors", r.store, &r.opt, &back);
  CHECK(back.loss_scale.scale == 0);
  CHECK(back.loss_scale.good_steps == 0);
  CHECK(back.loss_scale.skipped == 0);

  f = interop::Safetensors::load(dir + "/on.safetensors");
  f.metadata["loss_scale.good_steps"] = "three";
  f.save(dir + "/bad.safetensors");
  CHECK_THROWS_WITH_AS(train::load_checkpoint(dir + "/bad.safetensors", r.store, &r.opt, &back),
                       doctest::Contains("metadata entry 'loss_scale.good_steps' = 'three' is not an integer"), Error);
}

TEST_CASE("fit: with loss scaling and skipped updates, interrupting and resuming reaches the same numbers") {
  // Skips at the start, one right before the interruption (mid-epoch 1, after update 3) and one after it.
  AmplifiedTask task;
  const std::string dir_a = scaler_dir("full"), dir_b = scaler_dir("resumed");
  std::vector<double> full, resumed;
  train::FitResult ra, rb, rc;
  {
    Regressor r;
    ra = train::fit(r.net, r.store, r.opt, cosine, task, overflow_config(dir_a));
    full = r.params();
  }
  {
    Regressor r;
    auto cfg = overflow_config(dir_b);
    cfg.stop_after = 3;
    rb = train::fit(r.net, r.store, r.opt, cosine, task, cfg);
    CHECK(rb.interrupted);
    CHECK(rb.steps == 3);
  }
  {
    Regressor r(1234);  // overwritten by the checkpoint
    auto cfg = overflow_config(dir_b);
    cfg.resume = true;
    rc = train::fit(r.net, r.store, r.opt, cosine, task, cfg);
    CHECK(rc.resumed_from == 3);
    resumed = r.params();
  }
  CAPTURE(ra.skipped);
  CAPTURE(rb.skipped);
  CHECK(rb.skipped > 0);           // skips before the interruption...
  CHECK(ra.skipped > rb.skipped);  // ...and after it
  CHECK(rc.skipped == ra.skipped);
  CHECK(rc.steps == ra.steps);
  CHECK(rc.loss_scale == ra.loss_scale);
  REQUIRE(full.size() == resumed.size());
  CHECK(std::memcmp(full.data(), resumed.data(), full.size() * sizeof(double)) == 0);
  auto a = interop::Safetensors::load(dir_a + "/last.safetensors");
  auto b = interop::Safetensors::load(dir_b + "/last.safetensors");
  CHECK(a.metadata.at("loss_scale.scale") == b.metadata.at("loss_scale.scale"));
  CHECK(a.metadata.at("loss_scale.skipped") == b.metadata.at("loss_scale.skipped"));
  CHECK(a.metadata.at("loss_scale.good_steps") == b.metadata.at("loss_scale.good_steps"));
}
