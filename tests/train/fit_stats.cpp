// Loss statistics in train::fit stay where the model computed them (train::RunningStats) and are read only
// where they are reported: the logged and returned metrics are those of merging every batch's LossStats in
// order, bit for bit, and the number of reads does not grow with the number of batches.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <longseq/train/fit.hpp>
#include <longseq/train/running_stats.hpp>

#include "temp_root.hpp"
#include "train/toy.hpp"

using namespace longseq;
using testing::ToyNet;
using testing::ToyTask;
using Cls = heads::ClassificationHead<float>;
using Net = ToyNet<float, Cls>;

namespace {

bool same_bits(const heads::LossStats& a, const heads::LossStats& b) {
  double va[heads::stat_slots], vb[heads::stat_slots];
  heads::to_slots(a, va);
  heads::to_slots(b, vb);
  return std::memcmp(va, vb, sizeof va) == 0;
}

// The toy model seen through its LossStats-returning forward only (as a user's model without the BatchStats
// form would be), recording what each training and evaluation batch returned.
struct Recorded {
  using value_type = float;
  using device_type = device::host;
  using Saved = Net::Saved;
  Net& net;
  std::vector<heads::LossStats> train, eval;
  heads::LossStats forward(HostContext& ctx, const models::Inputs<float>& in, const heads::Targets<float>& t,
                           Saved& s) {
    const heads::LossStats st = net.forward(ctx, in, t, s);
    (ctx.training ? train : eval).push_back(st);
    return st;
  }
  void backward(HostContext& ctx, Saved& s, double scale) { net.backward(ctx, s, scale); }
};

struct Run {
  Net net{testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2})};
  ParamStore<float> store;
  train::AdamW<float> opt;
  Run() : opt((store.bind(net), store), {.lr = 3e-3, .weight_decay = 0.01}) {
    Rng rng(42);
    net.init(rng);
  }
  std::vector<float> params() {
    auto v = store.values();
    return std::vector<float>(v.data, v.data + v.numel());
  }
};

std::string log_path(const std::string& name) {
  auto d = testtmp::dir("train") / "fit_stats";
  std::filesystem::create_directories(d);
  return (d / (name + ".jsonl")).string();
}

// Two epochs of 6 batches, 2 per update, a report every 2 updates: at steps 2, 4 and 6.
train::FitConfig config(train::MetricsLog* log) {
  train::FitConfig c;
  c.progress = false;
  c.epochs = 2;
  c.accum = 2;
  c.clip = 1.0;
  c.seed = 7;
  c.log_every = 2;
  c.log = log;
  return c;
}

std::vector<nlohmann::json> records(const std::string& path, const std::string& event) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line))
    if (auto j = nlohmann::json::parse(line); j["event"] == event) out.push_back(j);
  return out;
}

}  // namespace

TEST_CASE("fit: logged and returned metrics are the batches' statistics merged in order, bit for bit") {
  const auto direct_log = log_path("direct"), recorded_log = log_path("recorded");
  Run a, b;
  train::FitResult ra, rb;
  std::int64_t reads_direct = 0, reads_recorded = 0;
  {
    train::MetricsLog log(direct_log, true);
    ToyTask<float> task;
    const auto before = heads::stats_reads().load();
    ra = train::fit(a.net, a.store, a.opt, train::Schedule{}, task, config(&log));
    reads_direct = heads::stats_reads().load() - before;
  }
  Recorded rec{b.net, {}, {}};
  {
    train::MetricsLog log(recorded_log, true);
    ToyTask<float> task;
    const auto before = heads::stats_reads().load();
    rb = train::fit(rec, b.store, b.opt, train::Schedule{}, task, config(&log));
    reads_recorded = heads::stats_reads().load() - before;
  }
  REQUIRE(rec.train.size() == 12);  // 2 epochs x 6 batches
  REQUIRE(rec.eval.size() == 8);    // 2 epochs x (2 val + 2 test)
  CHECK(a.params() == b.params());
  REQUIRE(ra.history.size() == 2);
  REQUIRE(rb.history.size() == 2);
  for (std::size_t e = 0; e < 2; ++e) {
    CAPTURE(e);
    heads::LossStats train, val, test;
    for (std::size_t i = 0; i < 6; ++i) train.merge(rec.train[e * 6 + i]);
    for (std::size_t i = 0; i < 2; ++i) val.merge(rec.eval[e * 4 + i]);
    for (std::size_t i = 2; i < 4; ++i) test.merge(rec.eval[e * 4 + i]);
    CHECK(train.count == 48);
    for (const auto* r : {&ra, &rb}) {
      CHECK(same_bits(r->history[e].train, train));
      CHECK(same_bits(r->history[e].val, val));
      CHECK(same_bits(r->history[e].test, test));
    }
  }
  // Each step record's loss: the mean of the batch losses since the previous record, summed in order.
  const auto sa = records(direct_log, "step"), sb = records(recorded_log, "step");
  REQUIRE(sa.size() == 3);
  REQUIRE(sb.size() == 3);
  for (std::size_t k = 0; k < 3; ++k) {
    CAPTURE(k);
    double sum = 0;
    for (std::size_t i = 4 * k; i < 4 * k + 4; ++i) sum += rec.train[i].loss;
    CHECK(sa[k]["loss"].get<double>() == sum / 4);
    CHECK(sb[k]["loss"].get<double>() == sum / 4);
    CHECK(sa[k]["grad_norm"].get<double>() == sb[k]["grad_norm"].get<double>());
  }
  const auto ea = records(direct_log, "epoch"), eb = records(recorded_log, "epoch");
  REQUIRE(ea.size() == 2);
  for (std::size_t e = 0; e < 2; ++e)
    for (const char* split : {"train", "val", "test"}) CHECK(ea[e][split] == eb[e][split]);

  // Reads: one per report (3) and one per split at each epoch's end (2 x 3), none per batch; a model whose
  // forward returns LossStats reads every batch (12 training + 8 evaluation) on top.
  CHECK(reads_direct == 3 + 2 * 3);
  CHECK(reads_recorded == reads_direct + 12 + 8);
}

TEST_CASE("RunningStats: merges in order, keeps a window, names the first non-finite batch") {
  HostContext ctx;
  train::RunningStats<device::host> acc;
  heads::BatchStats<device::host> b;
  heads::LossStats want;
  double window = 0;
  const double losses[] = {0.5, 1.25, 0.75, 2.0};
  for (int i = 0; i < 4; ++i) {
    b.value = {losses[i], double(3 + i), double(i), 0.1 * i, 0.2 * i, 0.3 * i, 0.4 * i};
    acc.add(ctx, b, i);
    want.merge(b.value);
    window += losses[i];
    if (i == 1) {
      CHECK(acc.read(ctx).window_loss == window);
      acc.clear_window(ctx);
      window = 0;
    }
  }
  auto snap = acc.read(ctx);
  CHECK(same_bits(snap.total, want));
  CHECK(snap.window_loss == window);
  CHECK(snap.first_nonfinite == -1);
  b.value.loss = NAN;
  acc.add(ctx, b, 7);
  b.value.loss = INFINITY;
  acc.add(ctx, b, 9);
  CHECK(acc.read(ctx).first_nonfinite == 7);
  acc.reset_total(ctx);
  snap = acc.read(ctx);
  CHECK(snap.total.count == 0);
  CHECK(snap.first_nonfinite == -1);
}
