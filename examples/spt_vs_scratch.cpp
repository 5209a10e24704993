// Self-pretraining vs. training from scratch on sequential Fashion-MNIST (784 pixels per image as a
// sequence): for each model, (a) a classifier trained from random initialization and (b) the same
// backbone first self-pretrained by masked pixel denoising on the training images, then fine-tuned with
// the same budget. With --joint-weight W, (c) a third arm: the classifier trained with W x masked denoising of
// the same batch added (the joint objective, no separate pretraining). Prints a table of test accuracies and
// writes metrics (JSON lines) and results (JSON).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/data/idx.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/joint.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/tasks.hpp>
#include <longseq/train/transfer.hpp>

#include "dispatch.hpp"
#include "shards.hpp"
#include "spt_config.hpp"
#include "stage_runner.hpp"

using namespace longseq;
namespace fs = std::filesystem;
using spt::Options;
using spt::StageResult;

// The residual blocks compared: a pre-LN Transformer encoder layer (attention then feed-forward) and a
// pre-LN bidirectional SSM convolution block. Each family is a struct with a `block<T, D>` alias (storage
// type T on device policy D) and a `config<Block>()` that fills any block of it, host or CUDA.
namespace spt {
// Position is the scheme applied to queries and keys (attention::Rotary, the paper's Table 2) or NoRotation.
template <class Position>
struct TransformerBlocks {
  template <class T, class D>
  using block = attention::TransformerEncoderLayer<T, true, Position, D>;
  using narrow = examples::NarrowTypes<true, true>;  // bf16 and fp16 on the GPU (examples::dispatch_device)
  index_t d, heads;
  double dropout;
  template <class Block>
  typename Block::Config config() const {
    typename Block::Config c;
    c.dim = d;
    c.heads = heads;
    c.ff_hidden = 2 * d;
    c.activation = nn::Activation::gelu;
    c.dropout = dropout;
    return c;
  }
};
// An SSM block: pre-LN residual around a bidirectional SSMConv whose kernel is the one template
// argument that differs between S4, S4D, DSS, DLR and a directly learned convolution kernel.
// `random` is the paper's ablation: every parameter of the mixer drawn from N(0, 0.1) instead of the
// parameterization's structured initialization.
template <class Kernel>
struct SSMBlocks {
  template <class T, class D>
  using block =
      nn::PreNormResidual<nn::LayerNorm<T, D>, ssm::SSMConv<ssm::kernel_with_value_t<Kernel, T>, ssm::Bidirectional, D>>;
  using narrow = examples::NarrowTypes<true, false>;  // bf16 on the GPU, kernel and FFTs in float32
  index_t d, state, length;
  bool random;
  double dropout, layer_dropout;  // on the residual branch; inside the SSM layer, after its activation
  bool tied;                      // both masks: one per (batch, channel) over the sequence (tie_dropout)
  template <class Block>
  typename Block::Config config() const {
    typename Block::Config c;
    c.norm = {.dim = d};
    auto& k = c.mixer.kernel;
    k.H = d;
    k.channels = 2;
    if constexpr (requires { k.N; }) k.N = state;
    if constexpr (requires { k.l_max; }) k.l_max = length;
    if constexpr (requires { k.L_max; }) k.L_max = length;
    c.mixer.random = {.enabled = random, .sigma = 0.1};
    const nn::DropoutMask mask = tied ? nn::DropoutMask::tied : nn::DropoutMask::element;
    c.dropout = dropout;
    c.dropout_mask = mask;
    c.mixer.dropout = layer_dropout;
    c.mixer.dropout_mask = mask;
    return c;
  }
};
}  // namespace spt

// One model's stages on storage type T and device policy D (examples::dispatch_device): the encoder, the
// stack of Blocks, the final norm, the head, the store and AdamW all live on D.
template <class Blocks, class T = float, class D = device::host>
struct Pipeline {
  template <class T2, class D2>
  using Backbone = nn::Stack<typename Blocks::template block<T2, D2>>;
  template <class T2, class D2>
  using ClassifierOn = models::Model<models::AnyPositionLinearEncoder<T2, D2>, Backbone<T2, D2>,
                                     nn::LayerNorm<T2, D2>, heads::ClassificationHead<T2, D2>>;
  template <class T2, class D2>
  using DenoiserOn = models::Model<models::AnyPositionLinearEncoder<T2, D2>, Backbone<T2, D2>,
                                   nn::LayerNorm<T2, D2>, heads::MaskedDenoisingHead<T2, D2>>;
  // The joint arm: the denoiser's encoder and backbone, the classifier's head as "task." and the SPT head as
  // "denoise.".
  template <class T2, class D2>
  using JointOn = models::Model<typename DenoiserOn<T2, D2>::encoder_type, Backbone<T2, D2>, nn::LayerNorm<T2, D2>,
                                heads::JointHead<heads::ClassificationHead<T2, D2>, heads::MaskedDenoisingHead<T2, D2>>>;
  using Classifier = ClassifierOn<T, D>;
  using Denoiser = DenoiserOn<T, D>;
  using Joint = JointOn<T, D>;

  const Options& o;
  std::string name;
  Blocks blocks;
  train::MetricsLog& log;
  const data::Splits& data;

  // The encoder's positions (--position); a learned table (and the sinusoidal code's bound) covers the longest
  // sequence of the data.
  attention::AnyPositionConfig position() const {
    return examples::position_config(
        name, o.position,
        std::max({data.train.info().max_length, data.val.info().max_length, data.test.info().max_length}));
  }
  template <class T2, class D2>
  typename Backbone<T2, D2>::Config backbone() const {
    return {o.layers, blocks.template config<typename Backbone<T2, D2>::block_type>()};
  }
  template <class T2 = T, class D2 = D>
  typename ClassifierOn<T2, D2>::Config classifier_config() const {
    return {{.channels = 1, .dim = o.d_model, .mask_channel = false, .position = position()},
            backbone<T2, D2>(),
            {.dim = o.d_model},
            {.dim = o.d_model, .classes = data.train.info().num_classes, .pool = nn::parse_pool(o.pool)}};
  }
  template <class T2 = T, class D2 = D>
  typename DenoiserOn<T2, D2>::Config denoiser_config() const {
    const auto loss = heads::parse_denoise_loss(o.spt_loss);
    return {{.channels = 1, .dim = o.d_model, .mask_channel = true, .position = position()},
            backbone<T2, D2>(),
            {.dim = o.d_model},
            {.dim = o.d_model, .classes = 256, .loss = loss}};
  }
  // The classifier's and the denoiser's heads on the denoiser's encoder (it reads [value, mask] in both passes).
  template <class T2 = T, class D2 = D>
  typename JointOn<T2, D2>::Config joint_config() const {
    const auto c = classifier_config<T2, D2>();
    const auto d = denoiser_config<T2, D2>();
    return {d.encoder, d.backbone, d.norm, {c.head, d.head}};
  }
  // One stage's settings (examples::run_stage): masks drawn per (epoch, image, split), checkpoints in
  // --out/MODEL/STAGE, the test split only for classifiers (at their best validation epoch).
  examples::StageSettings settings(const std::string& stage, train::Objective objective, index_t epochs, double lr,
                                train::Select select) const {
    const bool spt = stage == "spt";
    examples::StageSettings s;
    s.run = name + "/" + stage;
    s.objective = objective;
    s.select = select;
    s.lr = lr;
    s.epochs = epochs;
    s.test_eval = spt ? train::TestEval::never : train::TestEval::on_improvement;
    s.streams = train::MaskStreams::by_split;
    s.checkpoint_dir = (fs::path(o.out) / name / stage).string();
    s.log = &log;
    s.stopped_prefix = name + " stopped at ";
    // What shapes this stage's numbers; a resume refuses changes to any of it (--allow-changed).
    s.config = {{"model", name}, {"stage", stage}, {"d_model", o.d_model},
                {"layers", o.layers}, {"state", o.state}, {"heads", o.heads},
                {"batch", o.batch}, {"mask_p", o.mask_p}, {"spt_loss", o.spt_loss},
                {"seed", o.seed}, {"device", o.device}, {"precision", o.precision},
                {"data_dir", o.data}, {"train_subset", o.train_subset}, {"val_subset", o.val_subset},
                {"test_subset", o.test_subset}, {"init", o.init}, {"ssm_lr", o.ssm_lr},
                {"dt_lr", o.dt_lr}, {"decay_norms_biases", o.decay_norms_biases},
                {"position", o.position},
                {"weight_decay", o.wd}, {"dropout", o.dropout}, {"warmup", o.warmup},
                {"layer_dropout", o.layer_dropout}, {"tie_dropout", o.tie_dropout},
                {"schedule", o.schedule}, {"clip", o.clip}, {"pool", o.pool}};
    // Keys only the new options set, so a default run's checkpoints carry the same configuration as before.
    if (stage == "joint") s.config["joint_weight"] = o.joint_weight;
    if (stage == "joint" && o.joint_scheme != "longseq") s.config["joint_scheme"] = o.joint_scheme;
    if (o.augment != "none") s.config["augment"] = o.augment;
    s.config[spt ? "pretrain_epochs" : "finetune_epochs"] = epochs;
    s.config[spt ? "pretrain_lr" : "lr"] = spt ? o.pretrain_lr : o.lr;
    return s;
  }
  static StageResult result(const train::FitResult& r) {
    StageResult s;
    s.test_acc = r.best_test_acc;
    s.val_acc = r.best_val_acc;
    s.test_loss = r.best_test_loss;
    s.val_loss = r.best_val_loss;
    s.seconds = r.seconds;
    s.cpu_seconds = r.cpu_seconds;
    s.steps = r.steps;
    s.best_epoch = r.best_epoch;
    return s;
  }

  StageResult scratch() {
    auto s = settings("scratch", train::Objective::classify, o.finetune_epochs, o.lr, train::Select::accuracy);
    s.announce = [&](index_t n) { std::fprintf(stderr, "== %s from scratch: %ld parameters\n", name.c_str(), long(n)); };
    return result(examples::run_stage<Classifier, ClassifierOn<float, device::host>>(
        classifier_config(), [&] { return classifier_config<float, device::host>(); }, o, data, s));
  }

  // The joint arm: scratch's budget (epochs, lr), its loss plus weight x the SPT loss on a masked copy.
  StageResult joint() {
    auto s = settings("joint", train::Objective::joint, o.finetune_epochs, o.lr, train::Select::accuracy);
    s.announce = [&](index_t n) {
      const auto [w, p] = examples::joint_weight_and_p(o);
      std::fprintf(stderr, "== %s joint (%s): supervised + %g x masked denoising (p=%.2f, %s loss): %ld parameters\n",
                   name.c_str(), o.joint_scheme.c_str(), w, p, o.spt_loss.c_str(), long(n));
    };
    return result(examples::run_stage<Joint, JointOn<float, device::host>>(
        joint_config(), [&] { return joint_config<float, device::host>(); }, o, data, s));
  }

  std::pair<StageResult, StageResult> spt_then_finetune() {
    const auto sel = o.spt_loss == "ce" ? train::Select::accuracy : train::Select::loss;
    auto pre = settings("spt", train::Objective::masked, o.pretrain_epochs, o.pretrain_lr, sel);
    pre.announce = [&](index_t) {
      std::fprintf(stderr, "== %s self-pretraining (masked denoising, p=%.2f, %s loss)\n", name.c_str(), o.mask_p,
                   o.spt_loss.c_str());
    };
    const StageResult pretrained = result(examples::run_stage<Denoiser, DenoiserOn<float, device::host>>(
        denoiser_config(), [&] { return denoiser_config<float, device::host>(); }, o, data, pre));

    auto ft = settings("finetune", train::Objective::classify, o.finetune_epochs, o.lr, train::Select::accuracy);
    ft.transfer_from = (fs::path(o.out) / name / "spt" / "best.safetensors").string();
    ft.transferred = [&](const train::TransferReport& rep) {
      std::fprintf(stderr, "== %s fine-tuning from %s: %zu tensors loaded, %zu sliced (mask column), %zu new\n",
                   name.c_str(), ft.transfer_from.c_str(), rep.loaded.size(), rep.sliced.size(), rep.fresh.size());
    };
    return {pretrained, result(examples::run_stage<Classifier, ClassifierOn<float, device::host>>(
                     classifier_config(), [&] { return classifier_config<float, device::host>(); }, o, data, ft))};
  }
};

// The blocks of model m (examples::dispatch_model turns the name into a type): fn(blocks).
template <class Fn>
void for_model(const Options& o, const std::string& m, index_t length, Fn&& fn) {
  examples::dispatch_model(
      m, o.position,
      [&]<class Kernel>(std::type_identity<Kernel>) {
        fn(spt::SSMBlocks<Kernel>{o.d_model, o.state, length, o.init == "random-mixer", o.dropout, o.layer_dropout,
                                  o.tie_dropout});
      },
      [&]<class Position>(std::type_identity<Position>) {
        fn(spt::TransformerBlocks<Position>{o.d_model, o.heads, o.dropout});
      });
}

// The whole model of `Blocks` on the device and in the storage --device / --precision name: fn(pipeline).
template <class Blocks, class Fn>
void on_device(const Options& o, const std::string& m, const Blocks& blocks, train::MetricsLog& log,
               const data::Splits& d, Fn&& fn) {
  examples::dispatch_device(o.device, o.gpu, o.precision, m, typename Blocks::narrow{},
                            [&]<class T, class D>(std::type_identity<T>, std::type_identity<D>) {
                              fn(Pipeline<Blocks, T, D>{o, m, blocks, log, d});
                            });
}

// One model's arms (--mode: from scratch, self-pretraining then fine-tuning; --joint-weight: joint) on the device
// and in the storage --device / --precision name, recorded in its table row and the results JSON. main reaches it
// through examples::shards::run, so each model's arms are compiled in one translation unit of the build.
struct ModelStages {
  const Options& o;
  const std::string& m;
  train::MetricsLog& log;
  const data::Splits& d;
  spt::Row& r;
  nlohmann::json& results;
  template <class Blocks>
  void run(const Blocks& blocks) {
    on_device(o, m, blocks, log, d, [&](auto pipeline) {
      if (o.mode != "spt") {
        r.scratch = pipeline.scratch();
        results["models"][m]["scratch"] = r.scratch.json();
      }
      if (o.mode != "scratch") {
        std::tie(r.spt, r.ft) = pipeline.spt_then_finetune();
        results["models"][m]["spt"] = r.spt.json();
        results["models"][m]["finetune"] = r.ft.json();
      }
      if (o.joint()) {
        r.joint = pipeline.joint();
        results["models"][m]["joint"] = r.joint.json();
      }
    });
  }
};

#if EXAMPLES_SHARD_HAS_MAIN  // main (and what only it uses) in one translation unit (examples/shards.hpp)
static data::Dataset head_of(const data::Dataset& d, index_t n) {
  if (n <= 0 || n >= d.size()) return d;
  std::vector<index_t> idx(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
  return d.select(idx);
}

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Self-pretraining vs. training from scratch on sequential Fashion-MNIST"};
  spt::add_options(app, o);
  CLI11_PARSE(app, argc, argv);

  try {
    examples::check_joint_scheme(app, o, {"--joint-weight"});  // --mask-p stays the SPT arm's
    if (o.joint_scheme != "longseq") o.joint_weight = examples::joint_weight_and_p(o).first;
    examples::single_threaded_blas();
    examples::check_device(o.device, o.gpu);
    examples::check_precision(o.device, o.precision);
    if (o.mode != "scratch" || o.joint()) examples::check_mask_p(o.mask_p);
    for (const auto& m : o.models) {
      LONGSEQ_CHECK(o.init != "random-mixer" || m != "transformer", "--init random-mixer redraws SSM layers; "
                    "--models transformer has none (use --init random, or leave the Transformer out)");
      LONGSEQ_CHECK(o.position != "rotary" || m == "transformer", "--position rotary rotates attention queries and "
                    "keys; --models ", m, " has no attention (use sinusoidal or none, or run the Transformer alone)");
    }
    examples::RunFolder folder(o.out, "spt_vs_scratch");
    train::StopOnSignal on_signal;
    spt::check_resume(o);
    const auto t0 = std::chrono::steady_clock::now();
    data::Splits all = data::load_idx_task(o.data, "fashion-mnist");
    data::Splits d{head_of(all.train, o.train_subset), head_of(all.val, o.val_subset), head_of(all.test, o.test_subset)};
    std::fprintf(stderr, "fashion-mnist: %ld train / %ld val / %ld test images of %ld pixels\n", long(d.train.size()),
                 long(d.val.size()), long(d.test.size()), long(d.train.info().max_length));
    examples::check_batch_fits(o.batch, d.train.size());
    if (o.augment != "none") {
      try {
        data::check_augment(data::parse_augment(o.augment), d.train.info().height, d.train.info().width);
      } catch (const std::exception& e) {
        LONGSEQ_FAIL("--augment ", o.augment, ": ", e.what());
      }
    }
    // A fresh run starts a fresh log; a resumed one appends after its checkpoints (fit drops what follows them).
    train::MetricsLog log((fs::path(o.out) / "metrics.jsonl").string(), !o.resume);

    nlohmann::json results = nlohmann::json::object();
    results["dataset"] = {{"name", "fashion-mnist"}, {"train", d.train.size()}, {"val", d.val.size()},
                          {"test", d.test.size()}, {"length", d.train.info().max_length}};
    results["options"] = {{"d_model", o.d_model}, {"layers", o.layers}, {"state", o.state}, {"heads", o.heads},
                          {"batch", o.batch}, {"pretrain_epochs", o.pretrain_epochs},
                          {"finetune_epochs", o.finetune_epochs}, {"lr", o.lr}, {"pretrain_lr", o.pretrain_lr},
                          {"mask_p", o.mask_p}, {"spt_loss", o.spt_loss}, {"seed", o.seed},
                          {"device", o.device}, {"precision", o.precision}};
    if (o.joint()) results["options"]["joint_weight"] = o.joint_weight;
    if (o.joint() && o.joint_scheme != "longseq") results["options"]["joint_scheme"] = o.joint_scheme;
    if (o.augment != "none") results["options"]["augment"] = o.augment;
    std::vector<spt::Row> rows;
    for (const auto& m : o.models) {
      spt::Row r{.model = m};
      ModelStages stages{o, m, log, d, r, results};
      for_model(o, m, d.train.info().max_length, [&](auto blocks) { examples::shards::run(stages, blocks); });
      rows.push_back(r);
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    results["seconds"] = total;
    examples::write_json(fs::path(o.out) / "results.json", results);
    spt::print_table(o, rows, d.train.size(), total);
  } catch (const examples::Interrupted& e) {
    return examples::report_interrupted(e, "spt_vs_scratch");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
#endif  // EXAMPLES_SHARD_HAS_MAIN

// ---- shards -----------------------------------------------------------------------------------------
// The block families for_model reaches, dealt out in this order over the translation units the build compiles
// this file as (examples/shards.hpp): each is compiled in exactly one. check_shard_list is compiled, never run:
// a family the dispatch reaches but the list lacks stops the build.
using SptSpecs =
    examples::shards::List<spt::SSMBlocks<ssm::S4D<float>>, spt::SSMBlocks<ssm::S4<float>>,
                           spt::TransformerBlocks<attention::Rotary>, spt::TransformerBlocks<attention::NoRotation>,
                           spt::SSMBlocks<ssm::DSS<float>>, spt::SSMBlocks<ssm::DLR<float>>,
                           spt::SSMBlocks<ssm::ConvKernel<float>>>;
[[maybe_unused]] static void check_shard_list(const Options& o) {
  for_model(o, "", 0, examples::shards::expect_listed<SptSpecs>);
}
EXAMPLES_SHARDS_DEFINE(ModelStages, SptSpecs)
