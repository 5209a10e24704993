// The joint objective in the fit loop: DatasetTask's joint batches (the clean batch with a zero mask channel,
// the masked copy exactly as the masked objective draws it), the update's gradient = supervised + weight *
// denoising computed separately (double), a run that learns, bitwise resume, the logs, transfer of a joint
// checkpoint; the lra2025 scheme (corrupted classifier input, random tokens, loss at every position); and image
// augmentations of the training batches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <longseq/heads/joint.hpp>
#include <longseq/train/tasks.hpp>
#include <longseq/train/transfer.hpp>

#include "temp_root.hpp"
#include "toy.hpp"

using namespace longseq;

namespace {

template <class T>
using Joint = heads::JointHead<heads::ClassificationHead<T>, heads::MaskedDenoisingHead<T>>;
template <class T>
using JNet = testing::ToyNet<T, Joint<T>>;
static_assert(train::JointTask<train::DatasetTask<float>, float>);

constexpr index_t H = 8;

template <class T>
typename JNet<T>::Config joint_config(double dropout) {
  return {{.channels = 1, .dim = H, .mask_channel = true},
          {.depth = 2, .block = {{.dim = H}, {.dim = H, .expand = 2}, dropout}},
          {.dim = H},
          {{.dim = H, .classes = 2}, {.dim = H, .classes = 0, .loss = heads::DenoiseLoss::l1}}};
}

// n images of h x w pixels, label = whether the image is brighter than mid-grey on average (a model without
// positions can learn it).
data::Dataset pixel_set(index_t n, std::uint64_t stream, index_t h = 2, index_t w = 3) {
  data::TaskInfo info;
  info.name = "tiny-images";
  info.modality = data::Modality::pixels;
  info.num_classes = 2;
  info.vocab_size = 256;
  info.max_length = h * w;
  info.height = h;
  info.width = w;
  data::Dataset d(info);
  Rng rng(21, stream);
  for (index_t i = 0; i < n; ++i) {
    std::vector<std::uint8_t> img(std::size_t(h * w));
    double sum = 0;
    for (auto& p : img) sum += double(p = std::uint8_t(rng.below(256)));
    d.add_pixels(sum > 127.5 * double(h * w) ? 1 : 0, img);
  }
  return d;
}

data::Dataset token_set(index_t n, std::uint64_t stream) {
  data::TaskInfo info;
  info.name = "tiny-tokens";
  info.num_classes = 3;
  info.vocab_size = 20;
  info.max_length = 7;
  data::Dataset d(info);
  Rng rng(22, stream);
  for (index_t i = 0; i < n; ++i) {
    std::vector<std::int32_t> ids(std::size_t(3 + index_t(rng.below(5))));
    for (auto& t : ids) t = std::int32_t(4 + rng.below(16));
    d.add_tokens(std::int32_t(i % 3), ids);
  }
  return d;
}

std::string temp_dir(const std::string& name) {
  auto d = testtmp::dir("train") / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

template <class A, class B>
bool same_view(TensorView<const A> a, TensorView<const B> b) {
  if (!(a.shape == b.shape)) return false;
  for (index_t k = 0; k < a.shape.numel(); ++k)
    if (a.data[k] != b.data[k]) return false;
  return true;
}

train::TaskOptions options(train::Objective objective, double weight = 1.0) {
  train::TaskOptions o{.objective = objective, .batch = 4, .seed = 5};
  o.mask.p = 0.5;
  o.streams = train::MaskStreams::by_split;
  o.joint_weight = weight;
  return o;
}

// The model of fit, recording the store's gradients after every backward.
struct Recording {
  using value_type = double;
  using device_type = device::host;
  using Saved = JNet<double>::Saved;
  JNet<double>& net;
  ParamStore<double>& store;
  std::vector<std::vector<double>> grads;
  heads::LossStats forward(HostContext& c, const models::Inputs<double>& in, const heads::Targets<double>& t,
                           Saved& s) {
    return net.forward(c, in, t, s);
  }
  void backward(HostContext& c, Saved& s, double scale) {
    net.backward(c, s, scale);
    auto g = store.grads();
    grads.emplace_back(g.data, g.data + g.numel());
  }
};

// The gradients of batch 0 (epoch 0) at parameters `init`: the supervised pass alone and the denoising pass alone.
std::pair<std::vector<double>, std::vector<double>> separate_grads(const std::vector<double>& init,
                                                                   train::DatasetTask<double>& task) {
  JNet<double> alone(joint_config<double>(0.0));
  ParamStore<double> s2;
  s2.bind(alone);
  std::copy(init.begin(), init.end(), s2.values().data);
  task.load(train::Split::train, 0, 0);
  HostContext ctx;
  ctx.training = true;
  JNet<double>::Saved saved;
  auto grads = [&] {
    auto g = s2.grads();
    return std::vector<double>(g.data, g.data + g.numel());
  };
  alone.forward(ctx, task.inputs(), task.targets(), saved);
  alone.backward(ctx, saved, 1.0);
  const auto g_sup = grads();
  std::fill(s2.grads().data, s2.grads().data + s2.grads().numel(), 0.0);
  alone.forward(ctx, task.denoise_inputs(), task.denoise_targets(), saved);
  alone.backward(ctx, saved, 1.0);
  return {g_sup, grads()};
}

// One fit update of a fresh joint model (parameters drawn from seed 3) on the training batches of tr under
// options o: the initial parameters and the gradients each backward of the update left.
struct OneJointStep {
  std::vector<double> init;
  std::vector<std::vector<double>> grads;
};
OneJointStep fit_one_joint_step(const data::Dataset& tr, const data::Dataset& va, const data::Dataset& te,
                                const train::TaskOptions& o) {
  JNet<double> net(joint_config<double>(0.0));
  ParamStore<double> store;
  store.bind(net);
  Rng rng(3);
  net.init(rng);
  const auto v0 = store.values();
  OneJointStep out{{v0.data, v0.data + v0.numel()}, {}};
  train::AdamW<double> opt(store, {.lr = 1e-2});
  train::DatasetTask<double> task(tr, va, te, o);
  Recording rec{net, store, {}};
  train::FitConfig cfg;
  cfg.progress = false;
  cfg.max_steps = 1;
  cfg.seed = 7;
  const auto res = train::fit(rec, store, opt, train::Schedule{}, task, cfg);
  CHECK(res.steps == 1);
  out.grads = std::move(rec.grads);
  return out;
}

// Checks the recorded gradients: after the first backward the supervised one, after the second
// supervised + w * denoising.
void check_joint_grads(const std::vector<std::vector<double>>& grads, const std::vector<double>& g_sup,
                       const std::vector<double>& g_den, double w) {
  REQUIRE(grads.size() >= 2);
  REQUIRE(g_sup.size() == grads[1].size());
  double worst = 0, scale = 0, first = 0, differ = 0;
  for (std::size_t k = 0; k < g_sup.size(); ++k) {
    const double want = g_sup[k] + w * g_den[k];
    worst = std::max(worst, std::abs(grads[1][k] - want));
    first = std::max(first, std::abs(grads[0][k] - g_sup[k]));
    scale = std::max(scale, std::abs(want));
    differ = std::max(differ, std::abs(g_den[k]));
  }
  CHECK(scale > 0);
  CHECK(differ > 1e-6);  // the denoising pass contributes: a wrong weight would show
  CHECK(first <= 1e-13 * scale);
  CHECK(worst <= 1e-12 * scale);
}

}  // namespace

TEST_CASE("DatasetTask joint: the clean batch with a zero mask channel, and the masked objective's copy") {
  const auto tr = pixel_set(16, 1), va = pixel_set(4, 2), te = pixel_set(4, 3);
  train::DatasetTask<float> joint(tr, va, te, options(train::Objective::joint, 0.25));
  train::DatasetTask<float> masked(tr, va, te, options(train::Objective::masked));
  train::DatasetTask<float> classify(tr, va, te, options(train::Objective::classify));
  CHECK(joint.joint_weight() == 0.25);
  CHECK(masked.joint_weight() == 0);
  for (auto* t : {&joint, &masked, &classify}) t->load(train::Split::train, 1, 2);
  const auto in = joint.inputs();
  const auto plain = classify.inputs();
  REQUIRE(in.values.shape == Shape{4, 6, 2});
  for (index_t r = 0; r < 4; ++r)
    for (index_t t = 0; t < 6; ++t) {
      CHECK(in.values(r, t, 0) == plain.values(r, t, 0));
      CHECK(in.values(r, t, 1) == 0.0f);
    }
  CHECK(same_view(joint.targets().classes, classify.targets().classes));
  CHECK(joint.targets().mask.data == nullptr);
  CHECK(same_view(joint.denoise_inputs().values, masked.inputs().values));
  CHECK(same_view(joint.denoise_targets().mask, masked.targets().mask));
  CHECK(same_view(joint.denoise_targets().values, masked.targets().values));
  index_t hidden = 0;
  for (index_t k = 0; k < 24; ++k) hidden += joint.denoise_targets().mask.data[k];
  CHECK(hidden > 0);
  // Validation is classified only: no masked copy.
  joint.load(train::Split::val, 1, 0);
  classify.load(train::Split::val, 1, 0);
  CHECK(joint.denoise_inputs().values.data == nullptr);
  CHECK(same_view(joint.targets().classes, classify.targets().classes));
  // Token batches: the clean ids, and the masked ids of the masked objective.
  const auto tk = token_set(12, 1);
  train::TaskOptions to{.objective = train::Objective::joint, .batch = 4, .seed = 3};
  to.mask.p = 0.3;
  train::DatasetTask<float> tj(tk, tk, tk, to);
  to.objective = train::Objective::masked;
  train::DatasetTask<float> tm(tk, tk, tk, to);
  to.objective = train::Objective::classify;
  train::DatasetTask<float> tc(tk, tk, tk, to);
  for (auto* t : {&tj, &tm, &tc}) t->load(train::Split::train, 0, 1);
  CHECK(same_view(tj.inputs().ids, tc.inputs().ids));
  CHECK(same_view(tj.denoise_inputs().ids, tm.inputs().ids));
  CHECK(same_view(tj.denoise_targets().classes, tm.targets().classes));
  CHECK(same_view(tj.denoise_targets().mask, tm.targets().mask));
  // A weight that is no weight is refused naming the option.
  for (double w : {0.0, -1.0, std::nan("")})
    CHECK_THROWS_WITH_AS(train::DatasetTask<float>(tr, va, te, options(train::Objective::joint, w)),
                         doctest::Contains("option 'joint_weight'"), Error);
}

TEST_CASE("fit joint: an update's gradient is supervised + weight * denoising, each computed alone (double)") {
  const auto tr = pixel_set(16, 1), va = pixel_set(4, 2), te = pixel_set(4, 3);
  const double w = 0.7;
  const auto step = fit_one_joint_step(tr, va, te, options(train::Objective::joint, w));
  // The same batch through a fresh copy of the initial model, one objective at a time.
  train::DatasetTask<double> same(tr, va, te, options(train::Objective::joint, w));
  const auto [g_sup, g_den] = separate_grads(step.init, same);
  check_joint_grads(step.grads, g_sup, g_den, w);
}

TEST_CASE("step joint: the same update from train::step with a DenoisingPass; a bad weight is refused") {
  const auto tr = pixel_set(16, 1), va = pixel_set(4, 2), te = pixel_set(4, 3);
  const double w = 1.5;
  JNet<double> net(joint_config<double>(0.0));
  ParamStore<double> store;
  store.bind(net);
  Rng rng(8);
  net.init(rng);
  const auto v0 = store.values();
  const std::vector<double> init(v0.data, v0.data + v0.numel());
  train::AdamW<double> opt(store, {.lr = 1e-2});
  train::DatasetTask<double> task(tr, va, te, options(train::Objective::joint, w));
  task.load(train::Split::train, 0, 0);
  const auto in = task.inputs();
  const auto tg = task.targets();
  const auto din = task.denoise_inputs();
  const auto dtg = task.denoise_targets();
  Recording rec{net, store, {}};
  train::LossScaler scaler(train::LossScaleConfig{});
  HostContext ctx;
  Recording::Saved saved;
  const train::DenoisingPass<models::Inputs<double>, heads::Targets<double>> den{din, dtg, w};
  const auto r = train::step(rec, ctx, saved, opt, scaler, in, tg, den);
  CHECK(r.update.taken());
  CHECK(r.stats.denoising.count > 0);
  CHECK(r.stats.supervised.count == 4);
  const auto [g_sup, g_den] = separate_grads(init, task);
  check_joint_grads(rec.grads, g_sup, g_den, w);
  const train::DenoisingPass<models::Inputs<double>, heads::Targets<double>> bad{din, dtg, 0.0};
  CHECK_THROWS_WITH_AS(train::step(rec, ctx, saved, opt, scaler, in, tg, bad), doctest::Contains("weight is 0"), Error);
}

TEST_CASE("fit joint: a tiny run learns both objectives and logs the denoising loss") {
  const auto tr = pixel_set(64, 1), va = pixel_set(16, 2), te = pixel_set(16, 3);
  JNet<float> net(joint_config<float>(0.0));
  ParamStore<float> store;
  store.bind(net);
  Rng rng(4);
  net.init(rng);
  train::AdamW<float> opt(store, {.lr = 1e-2});
  auto o = options(train::Objective::joint, 1.0);
  o.batch = 8;
  train::DatasetTask<float> task(tr, va, te, o);
  const std::string dir = temp_dir("joint_learns");
  train::MetricsLog log(dir + "/metrics.jsonl", true);
  train::FitConfig cfg;
  cfg.progress = false;
  cfg.epochs = 8;
  cfg.seed = 7;
  cfg.log_every = 4;
  cfg.log = &log;
  const auto res = train::fit(net, store, opt, train::Schedule{}, task, cfg);
  REQUIRE(res.history.size() == 8);
  const auto& a = res.history.front();
  const auto& b = res.history.back();
  CHECK(a.joint);
  CHECK(b.train.loss < a.train.loss);
  CHECK(b.denoise.loss < a.denoise.loss);
  CHECK(a.denoise.count > 0);
  CHECK(a.val.count == 16);  // validation classifies every image, nothing else
  CHECK(b.val.accuracy() > 0.6);
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  index_t steps = 0, epochs = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string event = j.value("event", "");
    if (event == "step") steps += j.contains("denoise_loss");
    if (event == "epoch") epochs += j.contains("denoise") && j["denoise"]["count"].get<double>() > 0;
  }
  CHECK(steps == 8 * 8 / 4);
  CHECK(epochs == 8);
}

TEST_CASE("fit joint: resuming gives the same bits; a joint checkpoint fine-tunes like an SPT one") {
  const auto tr = pixel_set(24, 1), va = pixel_set(8, 2), te = pixel_set(8, 3);
  auto run = [&](const std::string& dir, index_t stop_after, bool resume, std::uint64_t init_seed) {
    JNet<float> net(joint_config<float>(0.1));
    ParamStore<float> store;
    store.bind(net);
    Rng rng(init_seed);
    net.init(rng);
    train::AdamW<float> opt(store, {.lr = 5e-3, .weight_decay = 0.01});
    train::DatasetTask<float> task(tr, va, te, options(train::Objective::joint, 0.5));
    train::FitConfig cfg;
    cfg.progress = false;
    cfg.epochs = 3;
    cfg.seed = 11;
    cfg.checkpoint_dir = dir;
    cfg.stop_after = stop_after;
    cfg.resume = resume;
    const auto res = train::fit(net, store, opt, train::Schedule{}, task, cfg);
    const auto v = store.values();
    return std::make_pair(res, std::vector<float>(v.data, v.data + v.numel()));
  };
  const std::string full = temp_dir("joint_full"), parts = temp_dir("joint_parts");
  const auto [ra, a] = run(full, 0, false, 9);
  CHECK(ra.steps == 3 * 6);
  const auto [rb, b0] = run(parts, 8, false, 9);
  CHECK(rb.interrupted);
  const auto [rc, c] = run(parts, 0, true, 1234);
  CHECK(rc.resumed_from == 8);
  REQUIRE(a.size() == c.size());
  CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0);

  // Fine-tuning a classifier from it: backbone by name, the mask column sliced, both heads dropped.
  using Cls = heads::ClassificationHead<float>;
  testing::ToyNet<float, Cls> ft(testing::toy_config<float, Cls>(H, {.dim = H, .classes = 2}));
  ParamStore<float> fs;
  fs.bind(ft);
  Rng rng(5);
  ft.init(rng);
  const auto rep = train::transfer<float>(full + "/best.safetensors", fs);
  CHECK(rep.sliced == std::vector<std::string>{"encoder.linear.weight"});
  CHECK(rep.fresh == std::vector<std::string>{"head.decoder.linear.weight", "head.decoder.linear.bias"});
  CHECK(rep.dropped.size() == 4);
  for (const auto& n : rep.dropped) CHECK((n.rfind("head.task.", 0) == 0 || n.rfind("head.denoise.", 0) == 0));
  CHECK(rep.loaded.size() == fs.entries().size() - 3);
  const interop::Safetensors st = interop::Safetensors::load(full + "/best.safetensors");
  for (const auto& name : rep.loaded) {
    CAPTURE(name);
    const Tensor<float> src = st.get<float>("model." + name);
    const auto* e = fs.find(name);
    REQUIRE(e);
    CHECK(std::memcmp(src.data(), e->param->value.data, std::size_t(src.numel()) * sizeof(float)) == 0);
  }
}

TEST_CASE("DatasetTask augment: training batches augmented per (seed, epoch, image), the others untouched") {
  const auto tr = pixel_set(16, 1, 4, 5), va = pixel_set(4, 2, 4, 5), te = pixel_set(4, 3, 4, 5);
  auto o = options(train::Objective::classify);
  train::DatasetTask<float> plain(tr, va, te, o);
  o.augment = {.translate = 1, .flip = 0.5, .cutout = 2};
  train::DatasetTask<float> aug(tr, va, te, o);
  aug.load(train::Split::train, 2, 1);
  plain.load(train::Split::train, 2, 1);
  data::Batch want = plain.batch();
  data::augment_batch(want, {.translate = 1, .flip = 0.5, .cutout = 2, .seed = 5}, tr.info(), 2);
  CHECK(aug.batch().ids == want.ids);
  CHECK(aug.batch().ids != plain.batch().ids);
  const auto v = aug.inputs().values;
  for (index_t k = 0; k < v.shape.numel(); ++k) CHECK(v.data[k] == want.values[std::size_t(k)]);
  aug.load(train::Split::val, 2, 0);
  plain.load(train::Split::val, 2, 0);
  CHECK(aug.batch().ids == plain.batch().ids);
  // Refused: a token task, an image without a size, a shift as large as the image.
  const auto tk = token_set(8, 1);
  train::TaskOptions to{.batch = 4};
  to.augment.flip = 0.5;
  CHECK_THROWS_WITH_AS(train::DatasetTask<float>(tk, tk, tk, to), doctest::Contains("option 'augment'"), Error);
  o.augment = {.translate = 4};
  CHECK_THROWS_WITH_AS(train::DatasetTask<float>(tr, va, te, o), doctest::Contains("translate = 4"), Error);
}

TEST_CASE("joint scheme lra2025: the classifier reads the corrupted copy, a third of the masks are random tokens, "
          "the denoising loss covers every position") {
  train::TaskOptions base{.objective = train::Objective::joint, .batch = 4, .seed = 3};
  base.mask.p = 0.5;
  base.joint_weight = 0.25;
  train::TaskOptions ref = base;
  train::set_joint_scheme(ref, "lra2025");
  CHECK(ref.joint_weight == 1);
  CHECK(ref.mask.p == 0.3);
  CHECK(ref.mask.kind == data::MaskKind::bernoulli);
  CHECK(ref.joint_inputs == train::JointInputs::corrupted);
  CHECK(ref.joint_loss == train::JointLoss::all);
  CHECK(ref.joint_random == 0.333);
  train::TaskOptions back = ref;
  train::set_joint_scheme(back, "longseq");
  CHECK(back.joint_inputs == train::JointInputs::clean);
  CHECK(back.joint_loss == train::JointLoss::masked);
  CHECK(back.joint_random == 0);
  CHECK_THROWS_WITH_AS(train::set_joint_scheme(back, "bert"), doctest::Contains("joint scheme 'bert'"), Error);

  // Tokens: the same masks as without random tokens; the classifier and the denoiser read one corrupted batch.
  const auto tk = token_set(64, 4);
  train::TaskOptions plain = ref;
  plain.joint_random = 0;
  train::DatasetTask<float> tr(tk, tk, tk, ref), tp(tk, tk, tk, plain), again(tk, tk, tk, ref);
  index_t masked = 0, random = 0, mask_tokens = 0;
  for (index_t e = 0; e < 8; ++e) {
    for (index_t i = 0; i < tr.num_batches(train::Split::train, e); ++i) {
      for (auto* t : {&tr, &tp, &again}) t->load(train::Split::train, e, i);
      CHECK(tr.inputs().ids.data == tr.denoise_inputs().ids.data);
      CHECK(same_view(tr.inputs().ids, again.inputs().ids));  // deterministic
      CHECK(same_view(tr.denoise_targets().classes, tp.denoise_targets().classes));  // the clean batch's tokens
      const auto& b = tr.batch();
      const auto mk = tp.masked_batch().masked;
      const auto ids = tr.inputs().ids, plain_ids = tp.inputs().ids;
      const auto every = tr.denoise_targets().mask;
      for (index_t r = 0; r < b.rows; ++r)
        for (index_t t = 0; t < b.length; ++t) {
          const auto k = r * b.length + t;
          CHECK(tr.masked_batch().masked[std::size_t(k)] == mk[std::size_t(k)]);
          CHECK(every.data[k] == (t < b.lengths[std::size_t(r)] ? 1 : 0));
          if (!mk[std::size_t(k)]) {
            CHECK(ids.data[k] == b.ids[std::size_t(k)]);
            continue;
          }
          ++masked;
          CHECK(plain_ids.data[k] == data::Vocab::mask_id);
          CHECK(ids.data[k] >= 0);
          CHECK(ids.data[k] < 20);
          if (ids.data[k] == data::Vocab::mask_id) ++mask_tokens;
          else ++random;
        }
    }
  }
  // 0.333 of the masked positions draw a token; 1 in 20 of those draws is <mask> itself.
  REQUIRE(masked > 400);
  CHECK(double(random) / double(masked) == doctest::Approx(0.333 * 19.0 / 20.0).epsilon(0.25));
  CHECK(mask_tokens > random);
  // Validation is classified on the clean batch.
  train::DatasetTask<float> tc(tk, tk, tk, {.objective = train::Objective::classify, .batch = 4, .seed = 3});
  tr.load(train::Split::val, 2, 0);
  tc.load(train::Split::val, 2, 0);
  CHECK(same_view(tr.inputs().ids, tc.inputs().ids));
  CHECK(tr.denoise_inputs().ids.data == nullptr);

  // Pixels: random intensities are shown unmasked (channel 1 = 0), the rest of the copy is the masked one.
  const auto px = pixel_set(32, 6, 4, 5);
  train::TaskOptions pr = ref;
  pr.streams = train::MaskStreams::by_split;
  train::TaskOptions pp = pr;
  pp.joint_random = 0;
  train::DatasetTask<float> ptr(px, px, px, pr), ptp(px, px, px, pp);
  index_t shown = 0;
  for (index_t i = 0; i < ptr.num_batches(train::Split::train, 1); ++i) {
    ptr.load(train::Split::train, 1, i);
    ptp.load(train::Split::train, 1, i);
    CHECK(ptr.inputs().values.data == ptr.denoise_inputs().values.data);
    const auto v = ptr.inputs().values, vp = ptp.denoise_inputs().values;
    REQUIRE(v.shape == Shape{4, 20, 2});
    for (index_t r = 0; r < 4; ++r)
      for (index_t t = 0; t < 20; ++t) {
        if (vp(r, t, 1) == 0.0f) {
          CHECK(v(r, t, 0) == vp(r, t, 0));
          CHECK(v(r, t, 1) == 0.0f);
        } else if (v(r, t, 1) == 0.0f) {
          ++shown;
          const float x = (v(r, t, 0) * 0.5f + 0.5f) * 255.0f;
          CHECK(std::abs(x - std::round(x)) < 1e-3f);  // an intensity's normalized value
        }
      }
  }
  CHECK(shown > 0);
  pr.joint_random = 1.5;
  CHECK_THROWS_WITH_AS(train::DatasetTask<float>(px, px, px, pr), doctest::Contains("option 'joint_random'"), Error);
}

TEST_CASE("fit joint lra2025: the update is the supervised gradient on the corrupted batch + the all-position "
          "denoising gradient (one pass with summed losses, without dropout)") {
  const auto tr = pixel_set(16, 1), va = pixel_set(4, 2), te = pixel_set(4, 3);
  auto o = options(train::Objective::joint, 0.4);
  train::set_joint_scheme(o, "lra2025");
  const auto step = fit_one_joint_step(tr, va, te, o);
  train::DatasetTask<double> same(tr, va, te, o);
  same.load(train::Split::train, 0, 0);
  // The classifier's input is the corrupted copy, and the loss covers more than the masked positions.
  CHECK(same.inputs().values.data == same.denoise_inputs().values.data);
  index_t every = 0, hidden = 0;
  for (index_t k = 0; k < 24; ++k) {
    every += same.denoise_targets().mask.data[k];
    hidden += same.masked_batch().masked[std::size_t(k)];
  }
  CHECK(every == 24);
  CHECK(hidden > 0);
  CHECK(hidden < 24);
  const auto [g_sup, g_den] = separate_grads(step.init, same);
  check_joint_grads(step.grads, g_sup, g_den, 1.0);
}
