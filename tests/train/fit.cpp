// The fit loop: loss decreases, bitwise resume, NaN stop keeping the last checkpoint, early stopping,
// checkpoint round trip and corruption errors, transfer from a pretraining checkpoint.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <longseq/train/checkpoint.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/transfer.hpp>

#include "train/toy.hpp"
#include "temp_root.hpp"

using namespace longseq;
using testing::ToyNet;
using testing::ToyTask;
using Cls = heads::ClassificationHead<float>;
using Net = ToyNet<float, Cls>;

namespace {

std::string temp_dir(const std::string& name) {
  auto d = testtmp::dir("train") / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

struct Run {
  Net net{testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2})};
  ParamStore<float> store;
  train::AdamW<float> opt;
  explicit Run(std::uint64_t seed = 42) : opt((store.bind(net), store), {.lr = 3e-3, .weight_decay = 0.01}) {
    Rng rng(seed);
    net.init(rng);
  }
  std::vector<float> params() {
    auto v = store.values();
    return std::vector<float>(v.data, v.data + v.numel());
  }
};

train::FitConfig quiet(std::string dir = {}) {
  train::FitConfig c;
  c.progress = false;
  c.checkpoint_dir = std::move(dir);
  c.epochs = 3;
  c.accum = 2;
  c.clip = 1.0;
  c.seed = 7;
  c.metadata["config"] = "{\"toy\": true}";
  return c;
}

const train::Schedule sched{train::Schedule::Kind::cosine, 3, 9, 0.0};

}  // namespace

TEST_CASE("fit: a tiny run learns (validation accuracy rises above chance, training loss falls)") {
  Run r;
  ToyTask<float> task;
  auto cfg = quiet();
  cfg.epochs = 8;
  cfg.accum = 1;
  cfg.log_every = 5;
  const std::string metrics = temp_dir("metrics") + "/metrics.jsonl";
  train::MetricsLog log(metrics);
  cfg.log = &log;
  r.opt = train::AdamW<float>(r.store, {.lr = 1e-2, .weight_decay = 0.0});
  auto res = train::fit(r.net, r.store, r.opt, train::Schedule{}, task, cfg);
  REQUIRE(res.history.size() == 8);
  CHECK(res.history.back().train.loss < res.history.front().train.loss);
  CHECK(res.best_val_acc >= 0.75);
  CHECK(res.steps == 8 * 6);
  // Metrics: one JSON object per line, step events every 5 updates (and the last), one per epoch.
  std::ifstream in(metrics);
  int steps = 0, epochs = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    CHECK(j.at("run") == "run");
    if (j.at("event") == "step") {
      ++steps;
      CHECK(j.at("tokens_per_s").get<double>() > 0);
      CHECK(std::isfinite(j.at("loss").get<double>()));
    } else {
      ++epochs;
      CHECK(j.at("val").at("accuracy").get<double>() >= 0);
      CHECK(j.contains("test"));
    }
  }
  CHECK(steps == 48 / 5 + 1);
  CHECK(epochs == 8);
}

TEST_CASE("fit: gradient accumulation over micro-batches equals one update on their mean gradient") {
  // Without dropout, accum = 2 with batch 8 takes the same steps as accum = 1 on batch 16.
  ToyTask<float> a, b;
  b.batch = 16;
  auto make = [] {
    auto c = testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2});
    c.backbone.block.dropout = 0.0;
    return c;
  };
  Net na(make()), nb(make());
  ParamStore<float> sa, sb;
  sa.bind(na);
  sb.bind(nb);
  Rng r1(5), r2(5);
  na.init(r1);
  nb.init(r2);
  train::AdamW<float> oa(sa, {.lr = 1e-2}), ob(sb, {.lr = 1e-2});
  auto ca = quiet(), cb = quiet();
  ca.epochs = cb.epochs = 1;
  ca.accum = 2;
  cb.accum = 1;
  ca.clip = cb.clip = 0;
  ca.test_eval = cb.test_eval = train::TestEval::never;
  auto ra = train::fit(na, sa, oa, train::Schedule{}, a, ca);
  auto rb = train::fit(nb, sb, ob, train::Schedule{}, b, cb);
  CHECK(ra.steps == rb.steps);
  auto va = sa.values(), vb = sb.values();
  double worst = 0;
  for (index_t i = 0; i < va.numel(); ++i) worst = std::max(worst, double(std::abs(va[i] - vb[i])));
  CHECK(worst < 1e-5);
}

TEST_CASE("fit: interrupting and resuming gives bitwise the same parameters and optimizer state") {
  ToyTask<float> task;
  std::vector<float> full, resumed;
  std::string dir_a = temp_dir("full"), dir_b = temp_dir("resumed");
  {
    Run r;
    auto res = train::fit(r.net, r.store, r.opt, sched, task, quiet(dir_a));
    CHECK(res.steps == 9);
    full = r.params();
  }
  {
    Run r;
    auto cfg = quiet(dir_b);
    cfg.stop_after = 4;  // mid-epoch 1 (3 updates per epoch)
    auto res = train::fit(r.net, r.store, r.opt, sched, task, cfg);
    CHECK(res.interrupted);
    CHECK(res.steps == 4);
  }
  {
    Run r(1234);  // a fresh process: new model and optimizer, a different init (overwritten by the checkpoint)
    auto cfg = quiet(dir_b);
    cfg.resume = true;
    auto res = train::fit(r.net, r.store, r.opt, sched, task, cfg);
    CHECK(res.resumed_from == 4);
    CHECK(res.steps == 9);
    CHECK(res.history.size() == 2);  // epochs 1 and 2
    resumed = r.params();
  }
  REQUIRE(full.size() == resumed.size());
  CHECK(std::memcmp(full.data(), resumed.data(), full.size() * sizeof(float)) == 0);
  // The final checkpoints agree too, moments included.
  auto a = interop::Safetensors::load(dir_a + "/last.safetensors");
  auto b = interop::Safetensors::load(dir_b + "/last.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    CAPTURE(a.tensors[i].name);
    CHECK(a.tensors[i].bytes == b.tensors[i].bytes);
  }
  CHECK(a.metadata.at("step") == "9");
  CHECK(a.metadata.at("best_metric") == b.metadata.at("best_metric"));
  CHECK(a.metadata.at("config") == "{\"toy\": true}");
}

TEST_CASE("fit: a NaN stops training with a clear message and keeps the last good checkpoint") {
  ToyTask<float> task;
  task.poison_at = 3;  // epoch 0, batch 3 (the second update's first micro-batch)
  std::string dir = temp_dir("nan");
  Run r;
  auto cfg = quiet(dir);
  cfg.save_every = 1;
  CHECK_THROWS_WITH_AS(train::fit(r.net, r.store, r.opt, sched, task, cfg),
                       doctest::Contains("non-finite loss (nan) at step 1 (epoch 0, batch 3); training stopped; the last "
                                         "good checkpoint is"),
                       Error);
  train::TrainState st;
  Run fresh;
  train::load_checkpoint(dir + "/last.safetensors", fresh.store, &fresh.opt, &st);
  CHECK(st.step == 1);
  for (float v : fresh.params()) CHECK(std::isfinite(v));
}

TEST_CASE("fit: early stopping and best-checkpoint selection") {
  ToyTask<float> task;
  std::string dir = temp_dir("early");
  Run r;
  r.opt = train::AdamW<float>(r.store, {.lr = 0.0});  // nothing changes: validation never improves
  auto cfg = quiet(dir);
  cfg.epochs = 10;
  cfg.patience = 2;
  auto res = train::fit(r.net, r.store, r.opt, train::Schedule{}, task, cfg);
  CHECK(res.early_stopped);
  CHECK(res.history.size() == 3);
  CHECK(res.best_epoch == 0);
  CHECK(std::filesystem::exists(dir + "/best.safetensors"));
  auto best = interop::Safetensors::load(dir + "/best.safetensors");
  CHECK(best.metadata.at("epoch") == "1");
}

TEST_CASE("checkpoint: round trip, readable metadata, and mismatched or corrupt files rejected") {
  std::string dir = temp_dir("ckpt");
  Run r;
  train::TrainState st;
  st.step = 12;
  st.epoch = 2;
  st.batch = 4;
  st.best_metric = 0.75;
  st.rng = Rng(5, 3);
  st.rng.next_u32();
  st.rng.next_u32();
  r.opt.exp_avg(r.store.entries()[0])[0] = 0.125f;
  r.opt.set_steps(12);
  const std::string path = dir + "/c.safetensors";
  train::save_checkpoint(path, r.store, &r.opt, st, {{"config", "{}"}});
  Run q;
  train::TrainState back;
  auto meta = train::load_checkpoint(path, q.store, &q.opt, &back);
  CHECK(meta.at("config") == "{}");
  CHECK(q.params() == r.params());
  CHECK(q.opt.steps() == 12);
  CHECK(q.opt.exp_avg(q.store.entries()[0])[0] == 0.125f);
  CHECK(back.step == 12);
  CHECK(back.batch == 4);
  CHECK(back.best_metric == 0.75);
  CHECK(back.rng.next_u32() == st.rng.next_u32());

  SUBCASE("different architecture: shape mismatch names the tensor") {
    Net wide(testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 3}));
    ParamStore<float> ws;
    ws.bind(wide);
    CHECK_THROWS_WITH_AS(train::load_checkpoint<float>(path, ws, nullptr, nullptr),
                         doctest::Contains("tensor 'model.head.decoder.linear.weight' has shape (2, 8), the model expects (3, 8)"),
                         Error);
  }
  SUBCASE("missing tensor") {
    auto f = interop::Safetensors::load(path);
    std::erase_if(f.tensors, [](const auto& t) { return t.name == "model.norm.bias"; });
    f.save(path);
    CHECK_THROWS_WITH_AS(train::load_checkpoint<float>(path, q.store, nullptr, nullptr),
                         doctest::Contains("lacks tensor 'model.norm.bias'"), Error);
  }
  SUBCASE("extra model tensor") {
    auto f = interop::Safetensors::load(path);
    Tensor<float> z(Shape{2});
    f.put<float>("model.extra.weight", z.view());
    f.save(path);
    CHECK_THROWS_WITH_AS(train::load_checkpoint<float>(path, q.store, nullptr, nullptr),
                         doctest::Contains("holds tensor 'model.extra.weight' that the model does not have"), Error);
  }
  SUBCASE("truncated file names the byte range") {
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
    CHECK_THROWS_WITH_AS(train::load_checkpoint<float>(path, q.store, &q.opt, &back),
                         doctest::Contains("outside the data block"), Error);
  }
  SUBCASE("not a checkpoint") {
    interop::Safetensors f;
    f.save(path);
    CHECK_THROWS_WITH_AS(train::load_checkpoint<float>(path, q.store, nullptr, nullptr),
                         doctest::Contains("lacks metadata entry 'format'"), Error);
  }
}

TEST_CASE("transfer: backbone loaded by name, SPT head dropped, mask column dropped, new head fresh") {
  using Spt = heads::MaskedDenoisingHead<float>;
  using PreNet = ToyNet<float, Spt>;
  std::string dir = temp_dir("transfer");
  PreNet pre(testing::toy_config<float, Spt>(8, {.dim = 8, .classes = 0, .loss = heads::DenoiseLoss::l1}, true));
  ParamStore<float> ps;
  ps.bind(pre);
  Rng rng(3);
  pre.init(rng);
  {
    // A few pretraining updates so the backbone differs from any initialization.
    ToyTask<float> task;
    task.pretrain = true;
    train::AdamW<float> opt(ps, {.lr = 1e-2});
    auto cfg = quiet(dir);
    cfg.epochs = 1;
    cfg.select = train::Select::loss;
    auto res = train::fit(pre, ps, opt, train::Schedule{}, task, cfg);
    CHECK(std::isfinite(res.best_val_loss));
    CHECK(res.best_val_loss > 0);
  }
  Run ft;
  std::vector<float> head_before(ft.net.head.decoder.first.weight.value.data,
                                 ft.net.head.decoder.first.weight.value.data + 16);
  auto rep = train::transfer<float>(dir + "/best.safetensors", ft.store);
  CHECK(rep.sliced == std::vector<std::string>{"encoder.linear.weight"});
  CHECK(rep.fresh == std::vector<std::string>{"head.decoder.linear.weight", "head.decoder.linear.bias"});
  CHECK(rep.dropped == std::vector<std::string>{"head.proj.weight", "head.proj.bias"});
  CHECK(rep.loaded.size() == ft.store.entries().size() - 3);
  // Backbone identical, mask column gone, new head untouched by the transfer.
  for (const auto& e : ft.store.entries()) {
    if (e.name.rfind("head.", 0) == 0 || e.name == "encoder.linear.weight") continue;
    const auto* src = ps.find(e.name);
    REQUIRE(src);
    CAPTURE(e.name);
    CHECK(std::memcmp(src->param->value.data, e.param->value.data, std::size_t(e.param->shape.numel()) * 4) == 0);
  }
  for (index_t o = 0; o < 8; ++o) CHECK(ft.net.encoder.linear.weight.value(o, 0) == pre.encoder.linear.weight.value(o, 0));
  CHECK(std::equal(head_before.begin(), head_before.end(), ft.net.head.decoder.first.weight.value.data));
  // Transfer into a model whose backbone differs fails naming the tensor.
  using Wide = ToyNet<float, Cls>;
  Wide wide(testing::toy_config<float, Cls>(16, {.dim = 16, .classes = 2}));
  ParamStore<float> ws;
  ws.bind(wide);
  CHECK_THROWS_WITH_AS(train::transfer<float>(dir + "/best.safetensors", ws),
                       doctest::Contains("tensor 'model.encoder.linear.weight' has shape (8, 2), the model expects (16, 1)"),
                       Error);
}
