// One trainer for every Long Range Arena task and for sequential (Fashion-)MNIST: self-pretraining
// (masked denoising for bidirectional models, next-token prediction for causal ones), fine-tuning from
// a self-pretraining checkpoint, or training from scratch. The model is one template argument chosen in
// one place (dispatch_model); everything else is shared. Runs data parallel under mpirun.
//
//   train_lra --task listops --data listops-1000 --model s4d --stage pretrain --out runs/spt
//   train_lra --task listops --data listops-1000 --model s4d --stage finetune \
//             --pretrained runs/spt/best.safetensors --out runs/ft
//   mpirun -np 4 train_lra ... (each rank computes a quarter of every batch)
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <type_traits>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/data/batching.hpp>
#include <longseq/data/masking.hpp>
#include <longseq/data/tasks.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/retrieval.hpp>
#include <longseq/nn/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/distributed.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/transfer.hpp>
#ifdef LONGSEQ_WITH_MPI
#include <longseq/train/distributed_mpi.hpp>
#endif

using namespace longseq;
namespace fs = std::filesystem;
using F = float;

struct Options {
  std::string task, data, model = "s4d", stage = "scratch", pretrained, objective = "masked";
  double mask_p = -1;  // < 0: the paper's default for the task
  std::string spt_loss = "ce", pool = "mean", schedule = "cosine", out = "train_lra_out";
  index_t d_model = 64, layers = 2, state = 64, heads = 4, batch = 16, warmup = 10, epochs = 1, max_steps = 0;
  double lr = 1e-3, ssm_lr = 1e-3, wd = 0.05, dropout = 0.0, clip = 0.0, train_fraction = 1.0;
  std::uint64_t seed = 0;
  index_t log_every = 20, save_every = 0, patience = 0;
  bool resume = false;

  bool causal() const { return objective == "causal"; }
};

// The paper's masking ratios: half of the pixels of images, 15% of text and retrieval tokens, 10% of ListOps.
inline double default_mask_p(const std::string& task) {
  if (task == "listops") return 0.1;
  if (task == "text" || task == "retrieval") return 0.15;
  return 0.5;
}

// ---- ranks ----------------------------------------------------------------------------------------

// One communicator type for the whole program (so fit is instantiated once per model): a single
// process, or MPI when the program was launched by mpirun with more than one rank.
class Comm {
 public:
  Comm() {
#ifdef LONGSEQ_WITH_MPI
    if (launched_ranks() > 1) mpi_ = std::make_unique<train::MpiCommunicator>();
#endif
  }
  int rank() const {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) return mpi_->rank();
#endif
    return 0;
  }
  int size() const {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) return mpi_->size();
#endif
    return 1;
  }
  template <class T>
  void allreduce_sum(T* p, index_t n) {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) mpi_->allreduce_sum(p, n);
#endif
    (void)p, (void)n;
  }
  template <class T>
  void broadcast(T* p, index_t n, int root = 0) {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) mpi_->broadcast(p, n, root);
#endif
    (void)p, (void)n, (void)root;
  }
  void barrier() {
#ifdef LONGSEQ_WITH_MPI
    if (mpi_) mpi_->barrier();
#endif
  }
  // Ranks announced by the launcher (Open MPI, MPICH/PMI); 1 when started directly.
  static int launched_ranks() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
      if (const char* e = std::getenv(v)) return std::max(1, std::atoi(e));
    return 1;
  }

 private:
#ifdef LONGSEQ_WITH_MPI
  std::unique_ptr<train::MpiCommunicator> mpi_;
#endif
};
static_assert(train::Communicator<Comm>, "Comm must satisfy train::Communicator");

// ---- models ---------------------------------------------------------------------------------------

// A model choice: the residual block type, how to configure it, and whether the encoder adds positions.
// SSM blocks: pre-LN residual around an SSM convolution layer whose kernel parameterization and
// direction are template arguments.
template <class Kernel, class Dir>
struct SsmModel {
  using Block = nn::PreNormResidual<nn::LayerNorm<F>, ssm::SSMConv<Kernel, Dir>>;
  static constexpr bool sinusoidal = false;
  static typename Block::Config block(const Options& o, index_t length) {
    typename Block::Config c;
    c.norm = {.dim = o.d_model};
    c.mixer.kernel = kernel(o, length);
    c.dropout = o.dropout;
    return c;
  }
  static typename Kernel::Config kernel(const Options& o, index_t length) {
    typename Kernel::Config k;
    k.H = o.d_model;
    if constexpr (std::is_same_v<Kernel, ssm::ConvKernel<F>>) {
      k.L_max = length;
    } else {
      k.N = o.state;
      if constexpr (std::is_same_v<Kernel, ssm::S4<F>>) k.l_max = length;
    }
    return k;
  }
};

// Pre-LN Transformer encoder layer (causal attention for the causal objective) with sinusoidal positions.
struct TransformerModel {
  using Block = attention::TransformerEncoderLayer<F, true>;
  static constexpr bool sinusoidal = true;
  static Block::Config block(const Options& o, index_t) {
    Block::Config c;
    c.dim = o.d_model;
    c.heads = o.heads;
    c.ff_hidden = 2 * o.d_model;
    c.activation = nn::Activation::gelu;
    c.causal = o.causal();
    c.dropout = o.dropout;
    return c;
  }
};

// Every (model, direction, encoder, head) combination is a separate instantiation of the trainer, so
// the causal direction is compiled for S4D (and the Transformer) only; define TRAIN_LRA_ALL_CAUSAL to
// build causal S4, DSS, DLR and convolution models as well (about half again the compile time).
#ifdef TRAIN_LRA_ALL_CAUSAL
inline constexpr bool all_causal = true;
#else
inline constexpr bool all_causal = false;
#endif

// The one place where a model name becomes a type. Bidirectional SSMs serve masked denoising and
// classification; the causal objective needs causal SSMs (and causal attention, a runtime flag).
template <class Fn>
void dispatch_model(const Options& o, Fn&& fn) {
  auto ssm_kind = [&]<class Dir>(Dir) {
    constexpr bool all = !std::is_same_v<Dir, ssm::Causal> || all_causal;
    if (o.model == "s4d") return fn(SsmModel<ssm::S4D<F>, Dir>{});
    if constexpr (all) {
      if (o.model == "s4") return fn(SsmModel<ssm::S4<F>, Dir>{});
      if (o.model == "dss") return fn(SsmModel<ssm::DSS<F>, Dir>{});
      if (o.model == "dlr") return fn(SsmModel<ssm::DLR<F>, Dir>{});
      if (o.model == "conv") return fn(SsmModel<ssm::ConvKernel<F>, Dir>{});
    } else {
      LONGSEQ_FAIL("--objective causal with --model ", o.model, ": this build has causal S4D and Transformer "
                   "models only (compile with -DTRAIN_LRA_ALL_CAUSAL for the others)");
    }
    LONGSEQ_FAIL("unknown model '", o.model, "', expected s4, s4d, dss, dlr, conv or transformer");
  };
  if (o.model == "transformer") fn(TransformerModel{});
  else if (o.causal()) ssm_kind(ssm::Causal{});
  else ssm_kind(ssm::Bidirectional{});
}

// ---- data -----------------------------------------------------------------------------------------

// Batches of one stage. Each global batch is planned on every rank from (seed, epoch); a rank builds
// only its shard of the examples (a retrieval pair stays whole, so its rows keep the [first documents,
// second documents] layout). Sequences are padded to the longest one of the GLOBAL batch, so the
// numbers do not depend on the number of ranks.
class LraTask {
 public:
  enum class Mode { classify, masked, causal };
  LraTask(const data::Splits& d, const Options& o, Mode m) : d_(&d), o_(o), mode_(m) {
    mask_.p = o.mask_p;
    mask_.seed = o.seed;
    for (int s = 0; s < 3; ++s) {
      data::LoaderOptions lo;
      lo.batch_size = o.batch;
      lo.seed = o.seed;
      lo.shuffle = s == 0;
      lo.drop_last = s == 0;
      loaders_.emplace_back(set(train::Split(s)), lo);
    }
  }
  void set_shard(int rank, int ranks) {
    rank_ = rank;
    ranks_ = ranks;
  }
  index_t num_batches(train::Split s, index_t epoch) {
    auto& l = loaders_[std::size_t(s)];
    if (l.epoch() != epoch) l.set_epoch(epoch);
    return l.num_batches();
  }
  void load(train::Split s, index_t epoch, index_t i) {
    auto& l = loaders_[std::size_t(s)];
    if (l.epoch() != epoch) l.set_epoch(epoch);
    const auto& idx = l.batch_indices(i);
    const train::Shard sh = train::shard(index_t(idx.size()), ranks_, rank_);
    data::PadOptions pad;
    for (index_t k : idx) pad.fixed_length = std::max(pad.fixed_length, set(s).length(k));
    rows_ = sh.count;
    if (sh.count == 0) return;
    batch_ = data::make_batch(set(s), std::span<const index_t>(idx).subspan(std::size_t(sh.begin), std::size_t(sh.count)), pad);
    const index_t R = batch_.rows, L = batch_.length;
    const bool pixels = batch_.modality == data::Modality::pixels;
    lengths_ = view(batch_.lengths, Shape{R});
    labels_ = view(batch_.labels, Shape{batch_.size});
    classes_ = view(batch_.ids, Shape{R, L});
    // Validation and test masks are drawn as in epoch 0 so their losses compare across epochs.
    if (mode_ == Mode::masked) masked_ = data::mask_batch(batch_, mask_, s == train::Split::train ? epoch : 0);
    if (pixels) {
      values_ = mode_ == Mode::masked ? view(masked_.values, Shape{R, L, 2}) : view(batch_.values, Shape{R, L, 1});
      target_values_ = view(batch_.values, Shape{R, L});
    } else {
      ids_ = mode_ == Mode::masked ? view(masked_.ids, Shape{R, L}) : view(batch_.ids, Shape{R, L});
    }
    if (mode_ == Mode::masked) mask_view_ = view(masked_.masked, Shape{R, L});
    tokens_ = R * L;
  }
  bool empty() const { return rows_ == 0; }
  nn::Inputs<F> inputs() const { return {ids_, values_, lengths_}; }
  heads::Targets<F> targets() const {
    if (mode_ == Mode::classify) return {labels_, {}, {}, lengths_};
    return {classes_, target_values_, mode_ == Mode::masked ? mask_view_ : TensorView<const std::uint8_t>{}, lengths_};
  }
  index_t tokens() const { return tokens_; }

 private:
  const data::Dataset& set(train::Split s) const { return s == train::Split::train ? d_->train : s == train::Split::val ? d_->val : d_->test; }
  template <class T>
  static TensorView<const T> view(const std::vector<T>& v, Shape s) { return TensorView<const T>(v.data(), s); }

  const data::Splits* d_;
  Options o_;
  Mode mode_;
  data::MaskOptions mask_;
  std::vector<data::Loader<data::Dataset>> loaders_;
  int rank_ = 0, ranks_ = 1;
  index_t rows_ = 0, tokens_ = 0;
  data::Batch batch_;
  data::MaskedBatch masked_;
  TensorView<const std::int32_t> ids_, lengths_, labels_, classes_;
  TensorView<const F> values_, target_values_;
  TensorView<const std::uint8_t> mask_view_;
};

// ---- one stage ------------------------------------------------------------------------------------

struct Stage {
  const Options& o;
  const data::Splits& d;
  Comm& comm;
  bool root() const { return train::is_root(comm); }
  bool pixels() const { return d.train.info().modality == data::Modality::pixels; }
  bool retrieval() const { return d.train.info().docs == 2; }
  index_t length() const {
    index_t l = 0;
    for (const auto* s : {&d.train, &d.val, &d.test}) l = std::max(l, s->info().max_length);
    return l;
  }
  index_t vocab() const { return pixels() ? 256 : std::max<index_t>(d.vocab.size(), d.train.info().vocab_size); }

  template <class Spec>
  void run() {
    if (pixels()) with_encoder<Spec, nn::LinearEncoder<F>>();
    else with_encoder<Spec, nn::TokenEncoder<F>>();
  }

  template <class Spec, class Enc>
  typename Enc::Config encoder(bool mask_channel) const {
    if constexpr (std::is_same_v<Enc, nn::TokenEncoder<F>>)
      return {.vocab = vocab(), .dim = o.d_model, .padding_idx = data::Vocab::pad_id, .sinusoidal = Spec::sinusoidal};
    else
      return {.channels = 1, .dim = o.d_model, .mask_channel = mask_channel, .sinusoidal = Spec::sinusoidal};
  }

  template <class Spec, class Enc>
  void with_encoder() {
    using Backbone = nn::Stack<typename Spec::Block>;
    const typename Backbone::Config backbone{o.layers, Spec::block(o, length())};
    const nn::LayerNorm<F>::Config norm{.dim = o.d_model};
    if (o.stage == "pretrain") {
      const auto loss = pixels() ? heads::parse_denoise_loss(o.spt_loss) : heads::DenoiseLoss::ce;
      const auto select = loss == heads::DenoiseLoss::ce ? train::Select::accuracy : train::Select::loss;
      if (o.causal()) {
        using Net = nn::Model<Enc, Backbone, nn::LayerNorm<F>, heads::CausalLMHead<F>>;
        train_model<Net>({encoder<Spec, Enc>(false), backbone, norm, {.dim = o.d_model, .classes = vocab(), .loss = loss}},
                         LraTask::Mode::causal, select);
      } else {
        using Net = nn::Model<Enc, Backbone, nn::LayerNorm<F>, heads::MaskedDenoisingHead<F>>;
        train_model<Net>({encoder<Spec, Enc>(true), backbone, norm, {.dim = o.d_model, .classes = vocab(), .loss = loss}},
                         LraTask::Mode::masked, select);
      }
      return;
    }
    const index_t classes = d.train.info().num_classes;
    if (retrieval()) {
      if constexpr (std::is_same_v<Enc, nn::TokenEncoder<F>>) {
        using Net = nn::Model<Enc, Backbone, nn::LayerNorm<F>, heads::RetrievalHead<F>>;
        train_model<Net>({encoder<Spec, Enc>(false), backbone, norm, {.dim = o.d_model, .classes = classes}},
                         LraTask::Mode::classify, train::Select::accuracy);
      }
      return;
    }
    using Net = nn::Model<Enc, Backbone, nn::LayerNorm<F>, heads::ClassificationHead<F>>;
    train_model<Net>({encoder<Spec, Enc>(false), backbone, norm,
                      {.dim = o.d_model, .classes = classes, .pool = nn::parse_pool(o.pool)}},
                     LraTask::Mode::classify, train::Select::accuracy);
  }

  template <class Net>
  void train_model(typename Net::Config cfg, LraTask::Mode mode, train::Select select) {
    Net model(cfg);
    ParamStore<F> store;
    store.bind(model);
    Rng rng(o.seed, 1);
    model.init(rng);
    if (root()) std::fprintf(stderr, "[train_lra] %s %s on %s: %ld parameters, %d rank(s)\n", o.stage.c_str(),
                             o.model.c_str(), o.task.c_str(), long(store.count()), comm.size());
    nlohmann::json transfer_info;
    if (o.stage == "finetune") {
      // Every rank reads the checkpoint (fit broadcasts rank 0's parameters anyway).
      const auto rep = train::transfer<F>(o.pretrained, store);
      if (root())
        std::fprintf(stderr, "[train_lra] loaded backbone from %s: %zu tensors loaded, %zu sliced (mask column), "
                             "%zu new (head), %zu dropped (SPT head)\n",
                     o.pretrained.c_str(), rep.loaded.size(), rep.sliced.size(), rep.fresh.size(), rep.dropped.size());
      transfer_info = {{"event", "transfer"}, {"from", o.pretrained}, {"loaded", rep.loaded.size()},
                       {"sliced", rep.sliced.size()}, {"fresh", rep.fresh}, {"dropped", rep.dropped}};
    }
    train::AdamW<F> opt(store, {.lr = o.lr, .weight_decay = o.wd, .ssm_lr = o.ssm_lr, .ssm_weight_decay = 0.0});
    LraTask task(d, o, mode);
    const index_t per_epoch = task.num_batches(train::Split::train, 0);
    index_t total = o.epochs * per_epoch;
    if (o.max_steps > 0) total = std::min(total, o.max_steps);
    const train::Schedule sched{train::Schedule::parse(o.schedule), o.warmup, total, 0.0};

    std::unique_ptr<train::MetricsLog> log;
    if (root()) {
      fs::create_directories(o.out);
      if (!o.resume) fs::remove(fs::path(o.out) / "metrics.jsonl");
      log = std::make_unique<train::MetricsLog>((fs::path(o.out) / "metrics.jsonl").string());
      if (!transfer_info.is_null()) log->write(transfer_info);
    }
    train::FitConfig fc;
    fc.run = o.task + "/" + o.model + "/" + o.stage;
    fc.epochs = o.epochs;
    fc.max_steps = o.max_steps;
    fc.clip = o.clip;
    fc.select = select;
    fc.patience = o.patience;
    fc.test_eval = o.stage == "pretrain" ? train::TestEval::never : train::TestEval::on_improvement;
    fc.checkpoint_dir = o.out;
    fc.save_every = o.save_every;
    fc.resume = o.resume;
    fc.seed = o.seed;
    fc.log_every = o.log_every;
    fc.log = log.get();
    fc.metadata["config"] = nlohmann::json{{"task", o.task}, {"model", o.model}, {"stage", o.stage},
                                           {"objective", o.objective}, {"d_model", o.d_model}, {"layers", o.layers},
                                           {"state", o.state}, {"heads", o.heads}, {"mask_p", o.mask_p},
                                           {"spt_loss", o.spt_loss}, {"seed", o.seed}}.dump();
    const train::FitResult r = train::fit(model, store, opt, sched, task, fc, comm);
    if (!root()) return;
    const nlohmann::json result{{"task", o.task}, {"model", o.model}, {"stage", o.stage}, {"steps", r.steps},
                                {"best_epoch", r.best_epoch}, {"val_loss", r.best_val_loss},
                                {"val_acc", r.best_val_acc}, {"test_loss", r.best_test_loss},
                                {"test_acc", r.best_test_acc}, {"seconds", r.seconds}, {"ranks", comm.size()},
                                {"interrupted", r.interrupted}, {"best_checkpoint", r.best_path}};
    std::ofstream(fs::path(o.out) / "result.json") << result.dump(2) << "\n";
    std::printf("%s %s %s: %ld steps, best epoch %ld, val loss %.4f acc %.4f", o.task.c_str(), o.model.c_str(),
                o.stage.c_str(), long(r.steps), long(r.best_epoch), r.best_val_loss, r.best_val_acc);
    if (o.stage != "pretrain") std::printf(", test acc %.4f", r.best_test_acc);
    std::printf("\n");
  }
};

static data::Dataset fraction_of(const data::Dataset& d, double f, std::uint64_t seed) {
  if (f >= 1.0) return d;
  LONGSEQ_CHECK(f > 0, "--train-fraction must be in (0, 1], got ", f);
  const index_t n = std::max<index_t>(1, index_t(f * double(d.size())));
  auto perm = data::permutation(d.size(), seed, 77);
  perm.resize(std::size_t(n));
  return d.select(perm);
}

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Self-pretraining, fine-tuning or training from scratch on an LRA task"};
  app.add_option("--task", o.task, data::task_names)->required()->check(
      CLI::IsMember({"listops", "text", "retrieval", "image", "pathfinder", "fashion-mnist", "mnist"}));
  app.add_option("--data", o.data, "the task's folder as its release unpacks it (see data::load_task)")->required();
  app.add_option("--model", o.model, "s4, s4d, dss, dlr, conv or transformer")
      ->check(CLI::IsMember({"s4", "s4d", "dss", "dlr", "conv", "transformer"}));
  app.add_option("--stage", o.stage, "pretrain (SPT), finetune (from --pretrained) or scratch")
      ->check(CLI::IsMember({"pretrain", "finetune", "scratch"}));
  app.add_option("--pretrained", o.pretrained, "SPT checkpoint to fine-tune from (its best.safetensors)");
  app.add_option("--objective", o.objective, "masked (bidirectional models) or causal (causal models)")
      ->check(CLI::IsMember({"masked", "causal"}));
  app.add_option("--mask-p", o.mask_p, "masking ratio (default: 0.5 images, 0.15 text/retrieval, 0.1 listops)");
  app.add_option("--spt-loss", o.spt_loss, "pixel SPT loss: ce (256 intensities) or l1 (normalized value)")
      ->check(CLI::IsMember({"ce", "l1"}));
  app.add_option("--pool", o.pool, "classifier pooling")->check(CLI::IsMember({"mean", "max", "last"}));
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--layers", o.layers, "residual blocks");
  app.add_option("--state", o.state, "SSM state size N");
  app.add_option("--heads", o.heads, "attention heads");
  app.add_option("--batch", o.batch, "global batch size (split over the ranks)");
  app.add_option("--lr", o.lr, "learning rate");
  app.add_option("--ssm-lr", o.ssm_lr, "learning rate of the SSM dynamics (no weight decay)");
  app.add_option("--wd", o.wd, "AdamW weight decay");
  app.add_option("--dropout", o.dropout, "residual dropout");
  app.add_option("--clip", o.clip, "gradient clipping by global norm (0: off)");
  app.add_option("--warmup", o.warmup, "linear warmup updates");
  app.add_option("--schedule", o.schedule, "after warmup")->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--epochs", o.epochs, "epochs");
  app.add_option("--max-steps", o.max_steps, "stop after this many updates (0: no limit)");
  app.add_option("--patience", o.patience, "early stopping after this many epochs without improvement (0: off)");
  app.add_option("--seed", o.seed, "seed of initialization, data order, masks and dropout");
  app.add_option("--out", o.out, "folder for last/best.safetensors, metrics.jsonl and result.json");
  app.add_option("--log-every", o.log_every, "updates between progress lines");
  app.add_option("--save-every", o.save_every, "updates between resumable checkpoints (besides epoch ends)");
  app.add_flag("--resume", o.resume, "continue from --out/last.safetensors");
  app.add_option("--train-fraction", o.train_fraction, "share of the training set used (0, 1]");
  CLI11_PARSE(app, argc, argv);

  try {
    Comm comm;
    if (o.mask_p < 0) o.mask_p = default_mask_p(o.task);
    LONGSEQ_CHECK(o.stage != "finetune" || !o.pretrained.empty(), "--stage finetune needs --pretrained CHECKPOINT");
    LONGSEQ_CHECK(o.batch >= comm.size(), "--batch ", o.batch, " is smaller than the number of ranks ", comm.size());
    data::Splits d = data::load_task(o.task, o.data);
    d.train = fraction_of(d.train, o.train_fraction, o.seed);
    train::root_printf(comm, "[train_lra] %s: %ld train / %ld val / %ld test, longest %ld, mask p %.2f\n",
                       o.task.c_str(), long(d.train.size()), long(d.val.size()), long(d.test.size()),
                       long(d.train.info().max_length), o.mask_p);
    Stage stage{o, d, comm};
    dispatch_model(o, [&](auto spec) { stage.run<decltype(spec)>(); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_lra: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
