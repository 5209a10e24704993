// Self-pretraining vs. training from scratch on sequential Fashion-MNIST (784 pixels per image as a
// sequence): for each model, (a) a classifier trained from random initialization and (b) the same
// backbone first self-pretrained by masked pixel denoising on the training images, then fine-tuned with
// the same budget. Prints a table of test accuracies and writes metrics (JSON lines) and results (JSON).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/data/batching.hpp>
#include <longseq/data/idx.hpp>
#include <longseq/data/masking.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/init.hpp>
#include <longseq/train/transfer.hpp>

#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>

#include "device_option.hpp"
#include "dispatch.hpp"
#include "options.hpp"
#include "run_dir.hpp"

using namespace longseq;
namespace fs = std::filesystem;

// The residual blocks compared: a pre-LN Transformer encoder layer (attention then feed-forward) and a
// pre-LN bidirectional SSM convolution block. Each family is a struct with a `block<T, D>` alias (storage
// type T on device policy D) and a `config<Block>()` that fills any block of it, host or CUDA.
namespace spt {
// Position is the scheme applied to queries and keys (attention::Rotary, the paper's Table 2) or NoRotation.
template <class Position>
struct TransformerBlocks {
  template <class T, class D>
  using block = attention::TransformerEncoderLayer<T, true, Position, D>;
  using narrow = examples::FloatOnly;  // the whole device model runs in fp32 (examples::dispatch_device)
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
  using block = nn::PreNormResidual<nn::LayerNorm<T, D>, ssm::SSMConv<Kernel, ssm::Bidirectional, D>>;
  using narrow = examples::FloatOnly;  // the whole device model runs in fp32 (examples::dispatch_device)
  index_t d, state, length;
  bool random;
  double dropout;
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
    c.dropout = dropout;
    return c;
  }
};
}  // namespace spt

struct Options {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = "spt_vs_scratch_out";
  std::string device = "host";
  int gpu = -1;
  std::string precision = "fp32";  // storage of the GPU stack
  double loss_scale = -1;          // initial dynamic loss scale; < 0: 65536 for fp16, off otherwise
  std::vector<std::string> models{"s4d", "transformer"};
  std::string init = "structured";
  std::string position = "default";  // default: sinusoidal for the Transformer, none for SSMs
  std::string mode = "both";
  index_t train_subset = 1000, val_subset = 200, test_subset = 500;
  index_t d_model = 64, layers = 2, state = 64, heads = 4;
  index_t batch = 32;
  index_t pretrain_epochs = 3, finetune_epochs = 3;
  double lr = 5e-3, pretrain_lr = 5e-3, ssm_lr = 1e-3, weight_decay = 0.05, dropout = 0.0;
  double dt_lr = -1;                // S4/S4D log_dt; < 0: the stage's lr (the reference's `dt: null`)
  bool decay_norms_biases = false;  // weight decay on biases and norm scales too (as the reference)
  index_t warmup = 20;
  std::string schedule = "cosine";
  double mask_p = 0.5;
  std::string spt_loss = "l1";
  std::string pool = "mean";
  double clip = 0;
  std::uint64_t seed = 2222;
  index_t log_every = 20;
  index_t save_every = 20;
  bool resume = false;
  std::vector<std::string> allow_changed;  // options a resume may change
};

// Sequential Fashion-MNIST batches for one stage: classification (input [value]) or masked denoising
// (input [value * (1 - m), m], targets the normalized value (L1) or the raw intensity (CE) where m = 1).
class PixelTask {
 public:
  enum class Mode { classify, pretrain };
  PixelTask(const data::Dataset& train, const data::Dataset& val, const data::Dataset& test, const Options& o, Mode m)
      : sets_{&train, &val, &test}, o_(o), mode_(m) {}

  index_t num_batches(train::Split s, index_t) const {
    const index_t n = set(s).size();
    return s == train::Split::train ? n / o_.batch : (n + o_.batch - 1) / o_.batch;  // drop_last for training
  }
  void load(train::Split s, index_t epoch, index_t i) {
    const data::Dataset& d = set(s);
    const index_t n = d.size(), L = d.info().max_length;
    const index_t b0 = i * o_.batch, rows = std::min(o_.batch, n - b0);
    const bool pre = mode_ == Mode::pretrain;
    if (s == train::Split::train && epoch != order_epoch_) {
      order_ = data::epoch_order(n, o_.seed, epoch);
      order_epoch_ = epoch;
    }
    values_.resize(Shape{rows, L, pre ? 2 : 1});
    targets_.resize(Shape{rows, L});
    classes_.resize(Shape{rows, L});
    mask_.resize(Shape{rows, L});
    labels_.resize(Shape{rows});
    for (index_t r = 0; r < rows; ++r) {
      const index_t ex = s == train::Split::train ? order_[std::size_t(b0 + r)] : b0 + r;
      labels_[r] = d.label(ex);
      auto px = d.pixels(ex);
      // Validation and test masks are fixed (epoch 0) so their denoising losses are comparable.
      std::vector<std::uint8_t> m;
      if (pre) {
        const std::uint64_t stream = data::mask_stream(s == train::Split::train ? epoch : 0, ex, 3, int(s));
        m = data::bernoulli_mask(L, o_.mask_p, o_.seed, stream);
      }
      for (index_t t = 0; t < L; ++t) {
        const float v = d.info().norm(px[std::size_t(t)]);
        const bool masked = pre && m[std::size_t(t)];
        targets_(r, t) = v;
        classes_(r, t) = px[std::size_t(t)];
        mask_(r, t) = masked ? 1 : 0;
        if (pre) {
          values_(r, t, 0) = masked ? 0.0f : v;
          values_(r, t, 1) = masked ? 1.0f : 0.0f;
        } else {
          values_(r, t, 0) = v;
        }
      }
    }
    tokens_ = rows * L;
  }
  models::Inputs<float> inputs() const { return {{}, values_.view(), {}}; }
  heads::Targets<float> targets() const {
    if (mode_ == Mode::pretrain) return {classes_.view(), targets_.view(), mask_.view(), {}};
    return {labels_.view(), {}, {}, {}};
  }
  index_t tokens() const { return tokens_; }

 private:
  const data::Dataset& set(train::Split s) const { return *sets_[int(s)]; }
  const data::Dataset* sets_[3];
  Options o_;
  Mode mode_;
  std::vector<index_t> order_;
  index_t order_epoch_ = -1;
  Tensor<float> values_, targets_;
  Tensor<std::int32_t> classes_, labels_;
  Tensor<std::uint8_t> mask_;
  index_t tokens_ = 0;
};

struct StageResult {
  double test_acc = 0, val_acc = 0, test_loss = 0, val_loss = 0, seconds = 0, cpu_seconds = 0;
  index_t steps = 0, best_epoch = -1;
  nlohmann::json json() const {
    return {{"test_acc", test_acc}, {"val_acc", val_acc}, {"test_loss", test_loss}, {"val_loss", val_loss},
            {"seconds", seconds}, {"cpu_seconds", cpu_seconds}, {"steps", steps}, {"best_epoch", best_epoch}};
  }
};

// One model's stages on storage type T and device policy D (examples::dispatch_device): the encoder, the
// stack of Blocks, the final norm, the head, the store and AdamW all live on D.
template <class Blocks, class T = float, class D = device::host>
struct Pipeline {
  template <class T2, class D2>
  using Backbone = nn::Stack<typename Blocks::template block<T2, D2>>;
  template <class T2, class D2>
  using ClassifierOn = models::Model<models::LinearEncoder<T2, D2>, Backbone<T2, D2>, nn::LayerNorm<T2, D2>,
                                     heads::ClassificationHead<T2, D2>>;
  template <class T2, class D2>
  using DenoiserOn = models::Model<models::LinearEncoder<T2, D2>, Backbone<T2, D2>, nn::LayerNorm<T2, D2>,
                                   heads::MaskedDenoisingHead<T2, D2>>;
  using Classifier = ClassifierOn<T, D>;
  using Denoiser = DenoiserOn<T, D>;

  const Options& o;
  std::string name;
  Blocks blocks;
  bool sinusoidal;
  train::MetricsLog& log;
  const data::Splits& data;

  template <class T2, class D2>
  typename Backbone<T2, D2>::Config backbone() const {
    return {o.layers, blocks.template config<typename Backbone<T2, D2>::block_type>()};
  }
  template <class T2 = T, class D2 = D>
  typename ClassifierOn<T2, D2>::Config classifier_config() const {
    return {{.channels = 1, .dim = o.d_model, .mask_channel = false, .sinusoidal = sinusoidal},
            backbone<T2, D2>(),
            {.dim = o.d_model},
            {.dim = o.d_model, .classes = data.train.info().num_classes, .pool = nn::parse_pool(o.pool)}};
  }
  template <class T2 = T, class D2 = D>
  typename DenoiserOn<T2, D2>::Config denoiser_config() const {
    const auto loss = heads::parse_denoise_loss(o.spt_loss);
    return {{.channels = 1, .dim = o.d_model, .mask_channel = true, .sinusoidal = sinusoidal},
            backbone<T2, D2>(),
            {.dim = o.d_model},
            {.dim = o.d_model, .classes = 256, .loss = loss}};
  }
  train::Schedule schedule(index_t epochs) const {
    const index_t per_epoch = data.train.size() / o.batch;
    return {train::Schedule::parse(o.schedule), o.warmup, epochs * per_epoch, 0.0};
  }
  train::AdamWConfig adamw(double lr) const {
    return {.lr = lr, .weight_decay = o.weight_decay,
            .no_decay_weight_decay = o.decay_norms_biases ? o.weight_decay : 0.0, .ssm_lr = o.ssm_lr,
            .ssm_weight_decay = 0.0, .dt_lr = o.dt_lr, .dt_weight_decay = 0.0};
  }
  train::FitConfig fit_config(const std::string& stage, index_t epochs, train::Select select) const {
    train::FitConfig c;
    c.run = name + "/" + stage;
    c.epochs = epochs;
    c.clip = o.clip;
    c.select = select;
    c.loss_scale.initial = examples::initial_loss_scale(o.loss_scale, o.precision);
    // Pretraining never needs the test split; classifiers report test accuracy at the best validation epoch.
    c.test_eval = stage == "spt" ? train::TestEval::never : train::TestEval::on_improvement;
    c.checkpoint_dir = (fs::path(o.out_dir) / name / stage).string();
    c.resume = o.resume;
    c.allow_changed = examples::allowed_changes(o.allow_changed);
    c.stop_on_signal = true;
    c.save_every = o.save_every;
    c.seed = o.seed;
    c.log_every = o.log_every;
    c.log = &log;
    // What shapes this stage's numbers; a resume refuses changes to any of it (--allow-changed).
    const bool spt = stage == "spt";
    nlohmann::json config{{"model", name}, {"stage", stage}, {"d_model", o.d_model},
                          {"layers", o.layers}, {"state", o.state}, {"heads", o.heads},
                          {"batch", o.batch}, {"mask_p", o.mask_p}, {"spt_loss", o.spt_loss},
                          {"seed", o.seed}, {"device", o.device}, {"precision", o.precision},
                          {"data_dir", o.data_dir}, {"train_subset", o.train_subset}, {"val_subset", o.val_subset},
                          {"test_subset", o.test_subset}, {"init", o.init}, {"ssm_lr", o.ssm_lr},
                          {"dt_lr", o.dt_lr}, {"decay_norms_biases", o.decay_norms_biases},
                          {"position", o.position},
                          {"weight_decay", o.weight_decay}, {"dropout", o.dropout}, {"warmup", o.warmup},
                          {"schedule", o.schedule}, {"clip", o.clip}, {"pool", o.pool}};
    config[spt ? "pretrain_epochs" : "finetune_epochs"] = epochs;
    config[spt ? "pretrain_lr" : "lr"] = spt ? o.pretrain_lr : o.lr;
    c.metadata["config"] = config.dump();
    return c;
  }
  StageResult result(const train::FitResult& r) const {
    if (r.signal != 0) throw examples::Interrupted(r.signal, name + " stopped at step " + std::to_string(r.steps) +
                                                                 ", checkpoint " + r.last_path);
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

  // Each layer's own init; --init random then redraws the whole model (encoder, norms, head too) from
  // N(0, 0.1), the paper's ablation (random-mixer redrew the SSM layers inside their init already).
  // init is host-only: a model on another (T, D) is drawn as its float host twin HostNet and copied over,
  // so every device and precision starts from the host run's parameters.
  template <class HostNet, class M>
  void init_model(M& model, ParamStore<T, D>& store, const typename HostNet::Config& host_config) const {
    auto draw = [&](auto& net, auto& st) {
      Rng rng(o.seed, 1);
      net.init(rng);
      if (o.init == "random") train::redraw_normal(st, rng, 0.1);
    };
    if constexpr (std::is_same_v<M, HostNet>) {
      draw(model, store);
    } else {
      HostNet twin(host_config);
      ParamStore<float> host;
      host.bind(twin);
      draw(twin, host);
      examples::copy_initial(host, store);
    }
  }

  template <class M>
  train::FitResult train_model(M& model, ParamStore<T, D>& store, PixelTask::Mode mode, const std::string& stage,
                               index_t epochs, double lr, train::Select select) {
    train::AdamW<T, D> opt(store, adamw(lr));
    PixelTask task(data.train, data.val, data.test, o, mode);
    if constexpr (std::is_same_v<T, float>) {
      return train::fit(model, store, opt, schedule(epochs), task, fit_config(stage, epochs, select));
    } else {
      examples::TypedTask<T, PixelTask> typed(task);  // bf16 / half batches
      return train::fit(model, store, opt, schedule(epochs), typed, fit_config(stage, epochs, select));
    }
  }

  StageResult scratch() {
    Classifier model(classifier_config());
    ParamStore<T, D> store;
    store.bind(model);
    init_model<ClassifierOn<float, device::host>>(model, store, classifier_config<float, device::host>());
    std::fprintf(stderr, "== %s from scratch: %ld parameters\n", name.c_str(), long(store.count()));
    return result(train_model(model, store, PixelTask::Mode::classify, "scratch", o.finetune_epochs, o.lr,
                              train::Select::accuracy));
  }

  std::pair<StageResult, StageResult> spt_then_finetune() {
    StageResult pre;
    {
      Denoiser model(denoiser_config());
      ParamStore<T, D> store;
      store.bind(model);
      init_model<DenoiserOn<float, device::host>>(model, store, denoiser_config<float, device::host>());
      std::fprintf(stderr, "== %s self-pretraining (masked denoising, p=%.2f, %s loss)\n", name.c_str(), o.mask_p,
                   o.spt_loss.c_str());
      const auto sel = o.spt_loss == "ce" ? train::Select::accuracy : train::Select::loss;
      pre = result(train_model(model, store, PixelTask::Mode::pretrain, "spt", o.pretrain_epochs, o.pretrain_lr, sel));
    }
    Classifier model(classifier_config());
    ParamStore<T, D> store;
    store.bind(model);
    init_model<ClassifierOn<float, device::host>>(model, store, classifier_config<float, device::host>());
    const std::string ckpt = (fs::path(o.out_dir) / name / "spt" / "best.safetensors").string();
    auto rep = train::transfer<T>(ckpt, store);
    std::fprintf(stderr, "== %s fine-tuning from %s: %zu tensors loaded, %zu sliced (mask column), %zu new\n",
                 name.c_str(), ckpt.c_str(), rep.loaded.size(), rep.sliced.size(), rep.fresh.size());
    StageResult ft = result(train_model(model, store, PixelTask::Mode::classify, "finetune", o.finetune_epochs, o.lr,
                                        train::Select::accuracy));
    return {pre, ft};
  }
};

static data::Dataset head_of(const data::Dataset& d, index_t n) {
  if (n <= 0 || n >= d.size()) return d;
  std::vector<index_t> idx(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
  return d.select(idx);
}

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Self-pretraining vs. training from scratch on sequential Fashion-MNIST"};
  using examples::at_least;
  app.add_option("--data-dir,--data", o.data_dir, "folder with the Fashion-MNIST IDX files (Debian: dataset-fashion-mnist)");
  app.add_option("--out-dir,--out", o.out_dir, "where checkpoints, metrics.jsonl and results.json go (one run at a time)");
  app.add_option("--device", o.device, examples::device_help)->check(CLI::IsMember({"host", "cuda"}));
  app.add_option("--gpu", o.gpu, "CUDA device ordinal with --device cuda (-1: the current one)")->check(at_least(-1));
  app.add_option("--precision", o.precision, examples::precision_help)->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--loss-scale", o.loss_scale, examples::loss_scale_help)->check(at_least(0));
  app.add_option("--models", o.models, "models to compare: s4, s4d, dss, dlr, conv, transformer")->delimiter(',');
  app.add_option("--init", o.init, "structured (each layer's own), random (every parameter of the model ~ "
                                   "N(0, 0.1), the paper's ablation) or random-mixer (the SSM layers only)")
      ->check(CLI::IsMember({"structured", "random", "random-mixer"}));
  app.add_option("--position", o.position, "default (sinusoidal for the Transformer, none for SSMs), sinusoidal "
                                           "(added by the encoder), rotary (attention queries and keys, the paper's "
                                           "Table 2 Transformers) or none")
      ->check(CLI::IsMember({"default", "sinusoidal", "rotary", "none"}));
  app.add_option("--mode", o.mode, "both, scratch (only the baseline) or spt (only pretraining + fine-tuning)")
      ->check(CLI::IsMember({"both", "scratch", "spt"}));
  app.add_option("--train-subset", o.train_subset, "training images used (0: all 54000)")->check(at_least(0));
  app.add_option("--val-subset", o.val_subset, "validation images used (0: all 6000)")->check(at_least(0));
  app.add_option("--test-subset", o.test_subset, "test images used (0: all 10000)")->check(at_least(0));
  app.add_option("--d-model", o.d_model, "model width")->check(at_least(1));
  app.add_option("--layers", o.layers, "residual blocks")->check(at_least(1));
  app.add_option("--state", o.state, "SSM state size N (S4, S4D, DSS, DLR)")->check(at_least(1));
  app.add_option("--heads", o.heads, "attention heads")->check(at_least(1));
  app.add_option("--batch", o.batch, "batch size")->check(at_least(1));
  app.add_option("--pretrain-epochs", o.pretrain_epochs, "self-pretraining epochs")->check(at_least(1));
  app.add_option("--finetune-epochs", o.finetune_epochs, "epochs of fine-tuning and of training from scratch")
      ->check(at_least(1));
  app.add_option("--lr", o.lr, "learning rate (scratch and fine-tuning)")->check(examples::positive());
  app.add_option("--pretrain-lr", o.pretrain_lr, "learning rate of self-pretraining")->check(examples::positive());
  app.add_option("--ssm-lr", o.ssm_lr, "learning rate of the SSM dynamics (no weight decay; 0: frozen)")
      ->check(at_least(0));
  app.add_option("--weight-decay,--wd", o.weight_decay, "AdamW weight decay")->check(at_least(0));
  app.add_option("--dt-lr", o.dt_lr, "S4/S4D: learning rate of log_dt, no weight decay (default: the stage's "
                                     "lr, as the reference's dt: null; equal to --ssm-lr: with the dynamics)")
      ->check(at_least(0));
  app.add_flag("--decay-norms-biases", o.decay_norms_biases, "decay biases and norm scales at --weight-decay too "
                                                             "(as the reference)");
  app.add_option("--dropout", o.dropout, "residual dropout")->check(examples::probability());
  app.add_option("--warmup", o.warmup, "linear warmup updates")->check(at_least(0));
  app.add_option("--schedule", o.schedule, "constant or cosine after warmup")->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--mask-p", o.mask_p, "masking ratio of self-pretraining, in (0, 1)")->check(examples::probability());
  app.add_option("--spt-loss", o.spt_loss, "l1 (normalized value) or ce (256 intensities)")->check(CLI::IsMember({"l1", "ce"}));
  app.add_option("--pool", o.pool, "classifier pooling: mean, max or last")->check(CLI::IsMember({"mean", "max", "last"}));
  app.add_option("--clip", o.clip, "gradient clipping by global norm (0: off)")->check(at_least(0));
  app.add_option("--seed", o.seed, "seed of initialization, data order, masks and dropout");
  app.add_option("--log-every", o.log_every, "updates between progress lines (0: none)")->check(at_least(0));
  app.add_option("--save-every", o.save_every, "updates between resumable checkpoints (besides epoch ends; 0: only "
                 "those)")->check(at_least(0));
  app.add_flag("--resume", o.resume, "continue an interrupted run (same options) from its last checkpoints");
  app.add_option("--allow-changed", o.allow_changed, examples::allow_changed_help)->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  try {
    examples::single_threaded_blas();
    examples::check_device(o.device, o.gpu);
    examples::check_precision(o.device, o.precision);
    if (o.mode != "scratch") examples::check_mask_p(o.mask_p);
    for (const auto& m : o.models) {
      LONGSEQ_CHECK(o.init != "random-mixer" || m != "transformer", "--init random-mixer redraws SSM layers; "
                    "--models transformer has none (use --init random, or leave the Transformer out)");
      LONGSEQ_CHECK(o.position != "rotary" || m == "transformer", "--position rotary rotates attention queries and "
                    "keys; --models ", m, " has no attention (use sinusoidal or none, or run the Transformer alone)");
    }
    examples::RunFolder folder(o.out_dir, "spt_vs_scratch");
    train::StopOnSignal on_signal;
    if (o.resume && !o.models.empty()) {
      // An interrupted run has a checkpoint of its first stage. A folder without any checkpoint holds no
      // run to resume (a run killed before its first save): say so and start one; anything else is refused.
      const fs::path first = fs::path(o.out_dir) / o.models.front() / (o.mode == "spt" ? "spt" : "scratch") /
                             "last.safetensors";
      bool any = false;
      for (const auto& e : fs::recursive_directory_iterator(o.out_dir))
        any = any || e.path().extension() == ".safetensors";
      LONGSEQ_CHECK(fs::exists(first) || !any, "--resume: '", first.string(), "' does not exist, but '", o.out_dir,
                    "' holds checkpoints of another run (other --models or --mode?); resume with the options it "
                    "was started with, or start without --resume");
      if (!any) {
        std::fprintf(stderr, "[spt_vs_scratch] --resume: '%s' holds no checkpoint yet, starting a new run\n",
                     o.out_dir.c_str());
        o.resume = false;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    data::Splits all = data::load_idx_task(o.data_dir, "fashion-mnist");
    data::Splits d{head_of(all.train, o.train_subset), head_of(all.val, o.val_subset), head_of(all.test, o.test_subset)};
    std::fprintf(stderr, "fashion-mnist: %ld train / %ld val / %ld test images of %ld pixels\n", long(d.train.size()),
                 long(d.val.size()), long(d.test.size()), long(d.train.info().max_length));
    examples::check_batch_fits(o.batch, d.train.size());
    // A fresh run starts a fresh log; a resumed one appends after its checkpoints (fit drops what follows them).
    train::MetricsLog log((fs::path(o.out_dir) / "metrics.jsonl").string(), !o.resume);

    nlohmann::json results = nlohmann::json::object();
    results["dataset"] = {{"name", "fashion-mnist"}, {"train", d.train.size()}, {"val", d.val.size()},
                          {"test", d.test.size()}, {"length", d.train.info().max_length}};
    results["options"] = {{"d_model", o.d_model}, {"layers", o.layers}, {"state", o.state}, {"heads", o.heads},
                          {"batch", o.batch}, {"pretrain_epochs", o.pretrain_epochs},
                          {"finetune_epochs", o.finetune_epochs}, {"lr", o.lr}, {"pretrain_lr", o.pretrain_lr},
                          {"mask_p", o.mask_p}, {"spt_loss", o.spt_loss}, {"seed", o.seed},
                          {"device", o.device}, {"precision", o.precision}};
    struct Row { std::string model; StageResult scratch, spt, ft; };
    std::vector<Row> rows;
    auto run = [&](auto pipeline) {
      Row r;
      r.model = pipeline.name;
      if (o.mode != "spt") {
        r.scratch = pipeline.scratch();
        results["models"][r.model]["scratch"] = r.scratch.json();
      }
      if (o.mode != "scratch") {
        std::tie(r.spt, r.ft) = pipeline.spt_then_finetune();
        results["models"][r.model]["spt"] = r.spt.json();
        results["models"][r.model]["finetune"] = r.ft.json();
      }
      rows.push_back(r);
    };
    const index_t length = d.train.info().max_length;
    const bool random = o.init == "random-mixer";
    // The whole model of `Blocks` on the device and in the storage --device / --precision name.
    auto run_on_device = [&]<class Blocks>(const std::string& m, const Blocks& blocks, bool sinusoidal) {
      examples::dispatch_device(o.device, o.gpu, o.precision, m, typename Blocks::narrow{},
                                [&]<class T, class D>(std::type_identity<T>, std::type_identity<D>) {
                                  run(Pipeline<Blocks, T, D>{o, m, blocks, sinusoidal, log, d});
                                });
    };
    for (const auto& m : o.models) {
      auto run_ssm = [&]<class Kernel>(std::type_identity<Kernel>) {
        run_on_device(m, spt::SSMBlocks<Kernel>{o.d_model, o.state, length, random, o.dropout},
                      o.position == "sinusoidal");
      };
      if (m == "transformer" && o.position == "rotary")
        run_on_device(m, spt::TransformerBlocks<attention::Rotary>{o.d_model, o.heads, o.dropout}, false);
      else if (m == "transformer")
        run_on_device(m, spt::TransformerBlocks<attention::NoRotation>{o.d_model, o.heads, o.dropout},
                      o.position != "none");
      else if (m == "s4")
        run_ssm(std::type_identity<ssm::S4<float>>{});
      else if (m == "s4d")
        run_ssm(std::type_identity<ssm::S4D<float>>{});
      else if (m == "dss")
        run_ssm(std::type_identity<ssm::DSS<float>>{});
      else if (m == "dlr")
        run_ssm(std::type_identity<ssm::DLR<float>>{});
      else if (m == "conv")
        run_ssm(std::type_identity<ssm::ConvKernel<float>>{});
      else
        LONGSEQ_FAIL("unknown model '", m, "', expected s4, s4d, dss, dlr, conv or transformer");
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    results["seconds"] = total;
    examples::write_json(fs::path(o.out_dir) / "results.json", results);

    std::printf("\nSequential Fashion-MNIST (784 steps), %ld train images, seed %llu: test accuracy at the best "
                "validation epoch\n",
                long(d.train.size()), static_cast<unsigned long long>(o.seed));
    std::printf("| model       | scratch acc | SPT + FT acc |  gain  | scratch time | SPT time  | FT time   |\n");
    std::printf("|-------------|-------------|--------------|--------|--------------|-----------|-----------|\n");
    // A stage that --mode skipped prints as "-".
    const bool with_scratch = o.mode != "spt", with_spt = o.mode != "scratch";
    auto cell = [](bool ran, const char* fmt, double v) {
      char buf[32];
      if (ran) std::snprintf(buf, sizeof buf, fmt, v); else std::snprintf(buf, sizeof buf, "-");
      return std::string(buf);
    };
    for (const auto& r : rows)
      std::printf("| %-11s | %11s | %12s | %6s | %12s | %9s | %9s |\n", r.model.c_str(),
                  cell(with_scratch, "%.2f%%", 100 * r.scratch.test_acc).c_str(),
                  cell(with_spt, "%.2f%%", 100 * r.ft.test_acc).c_str(),
                  cell(with_scratch && with_spt, "%+.2f", 100 * (r.ft.test_acc - r.scratch.test_acc)).c_str(),
                  cell(with_scratch, "%.0fs", r.scratch.seconds).c_str(), cell(with_spt, "%.0fs", r.spt.seconds).c_str(),
                  cell(with_spt, "%.0fs", r.ft.seconds).c_str());
    double cpu = 0;
    for (const auto& r : rows) cpu += r.scratch.cpu_seconds + r.spt.cpu_seconds + r.ft.cpu_seconds;
    std::printf("times are wall clock; CPU time of all stages: %.0fs. Same fine-tuning budget (%ld epochs) for "
                "scratch and SPT + FT; SPT: %ld epochs of masked denoising (p = %.2f, %s).\n",
                cpu, long(o.finetune_epochs), long(o.pretrain_epochs), o.mask_p, o.spt_loss.c_str());
    std::printf("results: %s, metrics: %s (total %.0fs)\n", (fs::path(o.out_dir) / "results.json").string().c_str(),
                (fs::path(o.out_dir) / "metrics.jsonl").string().c_str(), total);
  } catch (const examples::Interrupted& e) {
    return examples::report_interrupted(e, "spt_vs_scratch");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
