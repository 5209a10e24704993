// One trainer for every Long Range Arena task and for sequential (Fashion-)MNIST: self-pretraining
// (masked denoising for bidirectional models, next-token prediction for causal ones), fine-tuning from
// a self-pretraining checkpoint, training from scratch, or the joint objective (training from scratch with a
// weighted masked-denoising loss on the same batch added, --stage joint). The model is one template argument
// chosen in one place (dispatch_model); everything else is shared. Runs data parallel under mpirun.
//
//   train_lra --task listops --data listops-1000 --model s4d --stage pretrain --out runs/spt
//   train_lra --task listops --data listops-1000 --model s4d --stage finetune \
//             --pretrained runs/spt/best.safetensors --out runs/ft
//   mpirun -np 4 train_lra ... (each rank computes a quarter of every batch)
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/data/batching.hpp>
#include <longseq/data/tasks.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/joint.hpp>
#include <longseq/heads/retrieval.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/runtime_norm.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/tasks.hpp>
#include <longseq/train/transfer.hpp>

#include "comm.hpp"
#include "dispatch.hpp"
#include "shards.hpp"
#include "stage_runner.hpp"
#include "train_lra_config.hpp"

using namespace longseq;
namespace fs = std::filesystem;
using F = float;
using lra::Options;

// ---- models ---------------------------------------------------------------------------------------

// A model choice: the residual block type in storage T on device policy D (`block<T, D>`; `narrow` says
// whether T may be bf16 / fp16 on the GPU, examples::dispatch_device), how to configure such a block, and
// the final norm (the blocks' norm after pre-norm blocks, none after post-norm ones).
// SSM blocks: a residual block (pre- or post-norm, LayerNorm or BatchNorm, chosen at run time) around
// an SSM convolution layer whose kernel parameterization and direction are template arguments.
template <class Kernel, class Dir>
struct SsmModel {
  template <class T, class D>
  using block = nn::Residual<nn::RuntimeNorm<T, D>, ssm::SSMConv<ssm::kernel_with_value_t<Kernel, T>, Dir, D>>;
  using narrow = examples::NarrowTypes<true, false>;  // bf16 on the GPU, kernel and FFTs in float32
  template <class Block>
  static typename Block::Config block_config(const Options& o, index_t length) {
    typename Block::Config c;
    c.norm = {.dim = o.d_model, .kind = nn::norm_kind(o.norm)};
    c.mixer.kernel = kernel(o, length);
    c.mixer.random = {.enabled = o.init == "random-mixer", .sigma = 0.1};
    // The reference S4 block: residual dropout and, with --layer-dropout, dropout after the layer's GELU;
    // --tie-dropout gives both one mask per (batch, channel) over the sequence.
    const nn::DropoutMask mask = o.tie_dropout ? nn::DropoutMask::tied : nn::DropoutMask::element;
    c.dropout = o.dropout;
    c.dropout_mask = mask;
    c.mixer.dropout = o.layer_dropout;
    c.mixer.dropout_mask = mask;
    c.prenorm = o.residual == "pre";
    return c;
  }
  static nn::RuntimeNorm<F>::Config final_norm(const Options& o) {
    return {.dim = o.d_model, .kind = o.residual == "pre" ? nn::norm_kind(o.norm) : nn::NormKind::none};
  }
  static typename Kernel::Config kernel(const Options& o, index_t length) {
    typename Kernel::Config k;
    k.H = o.d_model;
    if constexpr (std::is_same_v<Kernel, ssm::ConvKernel<F>>) {
      k.l_max = length;
    } else {
      k.N = o.state;
      if (o.dt_min > 0) k.dt_min = o.dt_min;
      if (o.dt_max > 0) k.dt_max = o.dt_max;
      if constexpr (requires { k.n_ssm; }) k.n_ssm = o.n_ssm;
      if constexpr (std::is_same_v<Kernel, ssm::S4<F>>) k.l_max = length;
    }
    return k;
  }
};

// Pre-LN Transformer encoder layer (causal attention for the causal objective, block-local attention
// with --attn-window) and a final LayerNorm; positions are rotary (Position = attention::Rotary, on queries
// and keys, the paper's Table 2) or sinusoidal codes added by the encoder (NoRotation, --position none: neither).
template <class Position>
struct TransformerModel {
  template <class T, class D>
  using block = attention::TransformerEncoderLayer<T, true, Position, D>;
  using narrow = examples::NarrowTypes<true, true>;  // bf16 and fp16 on the GPU (examples::dispatch_device)
  template <class Block>
  static typename Block::Config block_config(const Options& o, index_t) {
    LONGSEQ_CHECK(o.norm == "layer" && o.residual == "pre", "--model transformer: the encoder layers are pre-norm "
                  "with LayerNorm (as in the paper); --norm ", o.norm, " --residual ", o.residual,
                  " applies to SSM models only");
    typename Block::Config c;
    c.dim = o.d_model;
    c.heads = o.heads;
    c.ff_hidden = o.ff_expand * o.d_model;
    c.activation = nn::Activation::gelu;
    c.causal = o.causal();
    c.dropout = o.dropout;
    c.window = o.attn_window;
    c.look_back = o.look_back;
    c.look_forward = o.look_forward;
    return c;
  }
  static nn::RuntimeNorm<F>::Config final_norm(const Options& o) { return {.dim = o.d_model}; }
};

// Every (model, direction, encoder, head) combination is a separate instantiation of the trainer, so
// the causal direction is compiled for S4D (and the Transformer) only; define TRAIN_LRA_ALL_CAUSAL to
// build causal S4, DSS, DLR and convolution models as well (about half again the compile time).
#ifdef TRAIN_LRA_ALL_CAUSAL
inline constexpr bool all_causal = true;
#else
inline constexpr bool all_causal = false;
#endif

// A model name becomes a type in examples::dispatch_model. Bidirectional SSMs serve masked denoising and
// classification; the causal objective needs causal SSMs (and causal attention, a runtime flag).
template <class Fn>
void dispatch_model(const Options& o, Fn&& fn) {
  auto transformer = [&]<class Position>(std::type_identity<Position>) { fn(TransformerModel<Position>{}); };
  auto ssm_in = [&]<class Dir>(Dir) {
    return [&]<class Kernel>(std::type_identity<Kernel>) { fn(SsmModel<Kernel, Dir>{}); };
  };
  if (!o.causal()) return examples::dispatch_model(o.model, o.position, ssm_in(ssm::Bidirectional{}), transformer);
  LONGSEQ_CHECK(all_causal || o.model == "s4d" || o.model == "transformer", "--objective causal with --model ", o.model,
                ": this build has causal S4D and Transformer models only (compile with -DTRAIN_LRA_ALL_CAUSAL for the "
                "others)");
  examples::dispatch_model<all_causal>(o.model, o.position, ssm_in(ssm::Causal{}), transformer);
}

// ---- one stage ------------------------------------------------------------------------------------

// --stage joint: the classifier's head ("task.") and the SPT head ("denoise.") on one model.
template <class T, class D>
using JointClassifier = heads::JointHead<heads::ClassificationHead<T, D>, heads::MaskedDenoisingHead<T, D>>;

struct Stage {
  const Options& o;
  const data::Splits& d;
  examples::Comm& comm;
  bool root() const { return train::is_root(comm); }
  bool pixels() const { return d.train.info().modality == data::Modality::pixels; }
  bool retrieval() const { return d.train.info().docs == 2; }
  // The length the kernels are built for: --l-max (main checked that it covers the data), else the readers' cap.
  index_t length() const {
    if (o.l_max > 0) return o.l_max;
    index_t l = 0;
    for (const auto* s : {&d.train, &d.val, &d.test}) l = std::max(l, s->info().max_length);
    return l;
  }
  index_t vocab() const { return pixels() ? 256 : std::max<index_t>(d.vocab.size(), d.train.info().vocab_size); }

  // The whole model (encoder, blocks, final norm, head, store and AdamW) on the device and in the storage
  // --device / --precision name.
  template <class Spec>
  void run() {
    int gpu = o.gpu;
#if defined(__CUDACC__)
    // Under mpirun without --gpu, rank r takes device r modulo the visible ones.
    if (o.device == "cuda" && gpu < 0 && comm.size() > 1) gpu = comm.rank() % longseq::cuda::device_count();
#endif
    examples::dispatch_device(o.device, gpu, o.precision, o.model, typename Spec::narrow{},
                              [&]<class T, class D>(std::type_identity<T>, std::type_identity<D>) {
                                if (pixels()) with_head<Spec, T, D, models::AnyPositionLinearEncoder>();
                                else with_head<Spec, T, D, models::AnyPositionTokenEncoder>();
                              });
  }

  template <class Spec, class Enc>
  typename Enc::Config encoder(bool mask_channel) const {
    // A learned table (and the sinusoidal code's bound) covers the longest sequence.
    const auto position = examples::position_config(o.model, o.position, length());
    if constexpr (requires(typename Enc::Config c) { c.vocab; })
      return {.vocab = vocab(), .dim = o.d_model, .padding_idx = data::Vocab::pad_id, .position = position};
    else
      return {.channels = 1, .dim = o.d_model, .mask_channel = mask_channel, .position = position};
  }

  // The model of Spec's blocks with encoder EncOn and head HeadOn in storage T2 on policy D2.
  template <class Spec, class T2, class D2, template <class, class> class EncOn, template <class, class> class HeadOn>
  using NetOf = models::Model<EncOn<T2, D2>, nn::Stack<typename Spec::template block<T2, D2>>, nn::RuntimeNorm<T2, D2>,
                              HeadOn<T2, D2>>;

  // Its configuration on any (T2, D2): the trained model's and its float host twin's are built by the same code.
  template <class Spec, class T2, class D2, template <class, class> class EncOn, template <class, class> class HeadOn,
            class FillHead>
  typename NetOf<Spec, T2, D2, EncOn, HeadOn>::Config net_config(bool mask_channel, const FillHead& fill_head) const {
    using Stack = nn::Stack<typename Spec::template block<T2, D2>>;
    const nn::RuntimeNorm<F>::Config n = Spec::final_norm(o);
    typename NetOf<Spec, T2, D2, EncOn, HeadOn>::Config c;
    c.encoder = encoder<Spec, EncOn<T2, D2>>(mask_channel);
    c.backbone = {o.layers, Spec::template block_config<typename Stack::block_type>(o, length())};
    c.norm = {.dim = n.dim, .kind = n.kind, .eps = n.eps, .momentum = n.momentum};
    fill_head(c.head);
    return c;
  }

  template <class Spec, class T, class D, template <class, class> class EncOn>
  void with_head() {
    if (o.stage == "pretrain") {
      const auto loss = pixels() ? heads::parse_denoise_loss(o.spt_loss) : heads::DenoiseLoss::ce;
      const auto select = loss == heads::DenoiseLoss::ce ? train::Select::accuracy : train::Select::loss;
      auto head = [&](auto& h) {
        h.dim = o.d_model;
        h.classes = vocab();
        h.loss = loss;
      };
      if (o.causal())
        train_model<Spec, T, D, EncOn, heads::CausalLMHead>(false, head, train::Objective::causal, select);
      else
        train_model<Spec, T, D, EncOn, heads::MaskedDenoisingHead>(true, head, train::Objective::masked, select);
      return;
    }
    const index_t classes = d.train.info().num_classes;
    if (o.joint()) {
      // The denoising term is the pretraining stage's masked objective (bidirectional models, main checked).
      const auto loss = pixels() ? heads::parse_denoise_loss(o.spt_loss) : heads::DenoiseLoss::ce;
      auto head = [&](auto& h) {
        h.supervised.dim = o.d_model;
        h.supervised.classes = classes;
        h.supervised.pool = nn::parse_pool(o.pool);
        h.supervised.hidden = o.head_hidden;
        h.denoising.dim = o.d_model;
        h.denoising.classes = vocab();
        h.denoising.loss = loss;
      };
      train_model<Spec, T, D, EncOn, JointClassifier>(true, head, train::Objective::joint, train::Select::accuracy);
      return;
    }
    if (retrieval()) {
      if constexpr (std::is_same_v<EncOn<F, device::host>, models::AnyPositionTokenEncoder<F>>) {
        auto head = [&](auto& h) {
          h.dim = o.d_model;
          h.classes = classes;
        };
        train_model<Spec, T, D, EncOn, heads::RetrievalHead>(false, head, train::Objective::classify,
                                                             train::Select::accuracy);
      }
      return;
    }
    auto head = [&](auto& h) {
      h.dim = o.d_model;
      h.classes = classes;
      h.pool = nn::parse_pool(o.pool);
      h.hidden = o.head_hidden;
    };
    train_model<Spec, T, D, EncOn, heads::ClassificationHead>(false, head, train::Objective::classify,
                                                              train::Select::accuracy);
  }

  // The stage's settings (examples::run_stage): checkpoints in --out, the test split only for classifiers.
  examples::StageSettings settings(train::Objective objective, train::Select select) const {
    examples::StageSettings s;
    s.run = o.task + "/" + o.model + "/" + o.stage;
    s.objective = objective;
    s.select = select;
    s.lr = o.lr;
    s.epochs = o.epochs;
    s.max_steps = o.max_steps;
    s.schedule_steps = o.schedule_steps;
    s.patience = o.patience;
    s.test_eval = o.stage == "pretrain" ? train::TestEval::never : train::TestEval::on_improvement;
    s.checkpoint_dir = o.out;
    s.resume_required = true;
    if (o.stage == "finetune") s.transfer_from = o.pretrained;
    s.config = {{"task", o.task}, {"model", o.model}, {"stage", o.stage},
                {"objective", o.objective}, {"d_model", o.d_model}, {"layers", o.layers},
                {"state", o.state}, {"heads", o.heads}, {"mask_p", o.mask_p},
                {"ff_expand", o.ff_expand}, {"n_ssm", o.n_ssm}, {"l_max", o.l_max},
                {"head_hidden", o.head_hidden}, {"preset", o.preset},
                {"spt_loss", o.spt_loss}, {"seed", o.seed},
                {"device", o.device}, {"precision", o.precision},
                // what else shapes the numbers: a resume refuses changes to it
                {"data", o.data}, {"batch", o.batch}, {"lr", o.lr}, {"ssm_lr", o.ssm_lr},
                {"dt_lr", o.dt_lr}, {"decay_norms_biases", o.decay_norms_biases},
                {"init", o.init}, {"position", o.position},
                {"wd", o.wd}, {"epochs", o.epochs}, {"max_steps", o.max_steps},
                {"warmup", o.warmup}, {"schedule", o.schedule},
                {"schedule_steps", o.schedule_steps}, {"dropout", o.dropout},
                {"layer_dropout", o.layer_dropout}, {"tie_dropout", o.tie_dropout},
                {"clip", o.clip}, {"train_fraction", o.train_fraction},
                {"dt_min", o.dt_min}, {"dt_max", o.dt_max}, {"norm", o.norm},
                {"residual", o.residual}, {"attn_window", o.attn_window},
                {"look_back", o.look_back}, {"look_forward", o.look_forward},
                {"pool", o.pool}, {"patience", o.patience},
                {"pretrained", o.pretrained}};
    // Keys only the new options set, so the checkpoints of other runs carry the same configuration as before.
    if (o.joint()) s.config["joint_weight"] = o.joint_weight;
    if (o.joint() && o.joint_scheme != "longseq") s.config["joint_scheme"] = o.joint_scheme;
    if (o.augment != "none") s.config["augment"] = o.augment;
    if (o.shuffle_operands) {
      s.config["shuffle_operands"] = true;
      s.shuffle_operands = data::listops_ids(d.vocab);
    }
    return s;
  }

  template <class Spec, class T, class D, template <class, class> class EncOn, template <class, class> class HeadOn,
            class FillHead>
  void train_model(bool mask_channel, const FillHead& head, train::Objective objective, train::Select select) {
    std::unique_ptr<train::MetricsLog> log;
    // A fresh run starts a fresh log; a resumed one keeps it up to its checkpoint (fit drops the rest).
    if (root()) log = std::make_unique<train::MetricsLog>((fs::path(o.out) / "metrics.jsonl").string(), !o.resume);
    examples::StageSettings s = settings(objective, select);
    s.log = log.get();
    s.announce = [&](index_t n) {
      if (root()) std::fprintf(stderr, "[train_lra] %s %s on %s: %ld parameters, %d rank(s)\n", o.stage.c_str(),
                               o.model.c_str(), o.task.c_str(), long(n), comm.size());
    };
    s.transferred = [&](const train::TransferReport& rep) {
      if (!root()) return;
      std::fprintf(stderr, "[train_lra] loaded backbone from %s: %zu tensors loaded, %zu sliced (mask column), "
                           "%zu new (head), %zu dropped (SPT head)\n",
                   o.pretrained.c_str(), rep.loaded.size(), rep.sliced.size(), rep.fresh.size(), rep.dropped.size());
      if (!o.resume)
        log->write({{"event", "transfer"}, {"from", o.pretrained}, {"loaded", rep.loaded.size()},
                    {"sliced", rep.sliced.size()}, {"fresh", rep.fresh}, {"dropped", rep.dropped}});
    };
    using Net = NetOf<Spec, T, D, EncOn, HeadOn>;
    using HostNet = NetOf<Spec, F, device::host, EncOn, HeadOn>;
    const train::FitResult r = examples::run_stage<Net, HostNet>(
        net_config<Spec, T, D, EncOn, HeadOn>(mask_channel, head),
        [&] { return net_config<Spec, F, device::host, EncOn, HeadOn>(mask_channel, head); }, o, d, s, comm);
    if (root()) write_result(r);
  }

  // --out/result.json and the summary line (rank 0).
  void write_result(const train::FitResult& r) const {
    nlohmann::json out{{"task", o.task}, {"model", o.model}, {"stage", o.stage}, {"steps", r.steps},
                       {"best_epoch", r.best_epoch}, {"val_loss", r.best_val_loss},
                       {"val_acc", r.best_val_acc}, {"test_loss", r.best_test_loss},
                       {"test_acc", r.best_test_acc}, {"seconds", r.seconds}, {"ranks", comm.size()},
                       {"interrupted", r.interrupted}, {"best_checkpoint", r.best_path},
                       {"device", o.device}, {"precision", o.precision}, {"loss_scale", r.loss_scale},
                       {"skipped_updates", r.skipped}};
    if (o.joint()) {
      out["joint_weight"] = examples::joint_weight_and_p(o).first;
      if (o.joint_scheme != "longseq") out["joint_scheme"] = o.joint_scheme;
      // The last epoch's denoising loss on the training batches (the supervised numbers are above).
      if (!r.history.empty()) out["train_denoise_loss"] = r.history.back().denoise.loss;
    }
    if (o.augment != "none") out["augment"] = o.augment;
    if (o.shuffle_operands) out["shuffle_operands"] = true;
    examples::write_json(fs::path(o.out) / "result.json", out);
    std::printf("%s %s %s: %ld steps, best epoch %ld, val loss %.4f acc %.4f", o.task.c_str(), o.model.c_str(),
                o.stage.c_str(), long(r.steps), long(r.best_epoch), r.best_val_loss, r.best_val_acc);
    if (o.stage != "pretrain") std::printf(", test acc %.4f", r.best_test_acc);
    std::printf("\n");
  }
};

#if EXAMPLES_SHARD_HAS_MAIN  // main (and what only it uses) in one translation unit (examples/shards.hpp)
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
  lra::add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  if (!o.preset_file.empty()) o.preset = "file";

  try {
    std::vector<std::string> not_applied;
    if (o.print_config) {
      if (o.preset != "none") not_applied = lra::apply_preset(o, app, 0);
      lra::resolve_defaults(o);
      lra::print_config(o, app, not_applied);
      return 0;
    }
    LONGSEQ_CHECK(!o.data.empty(), "--data is required (the task's folder)");
    LONGSEQ_CHECK(o.stage != "finetune" || !o.pretrained.empty(), "--stage finetune needs --pretrained CHECKPOINT");
    LONGSEQ_CHECK(o.stage != "finetune" || !fs::is_directory(o.pretrained), "--pretrained '", o.pretrained, "' is a "
                  "folder; give the checkpoint file in it (e.g. '",
                  (fs::path(o.pretrained) / "best.safetensors").string(), "')");
    examples::single_threaded_blas();
    examples::check_device(o.device, o.gpu);
    examples::check_precision(o.device, o.precision);
    examples::Comm comm;
    // Rank 0 owns --out for the whole run; the others write nothing there.
    std::unique_ptr<examples::RunFolder> folder;
    if (train::is_root(comm)) folder = std::make_unique<examples::RunFolder>(o.out, "train_lra");
    train::StopOnSignal on_signal;
    data::Splits d = data::load_task(o.task, o.data);
    if (o.preset != "none") {
      index_t longest = 0;
      for (const auto* s : {&d.train, &d.val, &d.test}) longest = std::max(longest, s->info().max_length);
      not_applied = lra::apply_preset(o, app, longest);
      train::root_printf(comm, "[train_lra] preset %s: row %s, batch %ld, lr %g, %ld epochs\n", o.preset.c_str(),
                         o.preset_row.c_str(), long(o.batch), o.lr, long(o.epochs));
      for (const auto& n : not_applied)
        train::root_printf(comm, "[train_lra] preset %s: not applied: %s\n", o.preset.c_str(), n.c_str());
    }
    lra::resolve_defaults(o);
    LONGSEQ_CHECK(o.init != "random-mixer" || o.model != "transformer", "--init random-mixer redraws SSM layers; "
                  "--model transformer has none (use --init random)");
    LONGSEQ_CHECK(o.position != "rotary" || o.model == "transformer", "--position rotary rotates attention queries "
                  "and keys; --model ", o.model, " has no attention (use sinusoidal or none)");
    lra::check_dropout_options(o);
    if ((o.stage == "pretrain" || o.joint()) && !o.causal()) examples::check_mask_p(o.mask_p);
    LONGSEQ_CHECK(!o.joint() || !o.causal(), "--stage joint adds masked denoising (bidirectional models); "
                  "--objective causal does not apply to it");
    LONGSEQ_CHECK(!o.joint() || d.train.info().docs == 1, "--stage joint: --task ", o.task, " pairs two documents; "
                  "the joint objective is built for single-sequence classification (listops, text, image, "
                  "pathfinder, fashion-mnist, mnist)");
    LONGSEQ_CHECK(o.augment == "none" || d.train.info().modality == data::Modality::pixels, "--augment ", o.augment,
                  ": --task ", o.task, " holds tokens; augmentations apply to image tasks only");
    if (o.augment != "none") lra::check_augment_fits(o.augment, d.train.info());
    examples::check_joint_scheme(app, o, {"--joint-weight", "--mask-p"});
    LONGSEQ_CHECK(o.joint_scheme == "longseq" || o.joint(), "--joint-scheme ", o.joint_scheme, " shapes the joint "
                  "objective; --stage ", o.stage, " has none (use --stage joint)");
    LONGSEQ_CHECK(!o.shuffle_operands || o.task == "listops", "--shuffle-operands reorders ListOps expressions; "
                  "--task ", o.task, " is not ListOps");
    LONGSEQ_CHECK(o.dt_min <= 0 || o.dt_max <= 0 || o.dt_min <= o.dt_max, "--dt-min ", o.dt_min,
                  " is larger than --dt-max ", o.dt_max);
    LONGSEQ_CHECK(o.batch >= comm.size(), "--batch ", o.batch, " is smaller than the number of ranks ", comm.size());
    d.train = fraction_of(d.train, o.train_fraction, o.seed);
    examples::check_batch_fits(o.batch, d.train.size());
    index_t longest = 0;
    for (const auto* s : {&d.train, &d.val, &d.test}) longest = std::max(longest, examples::longest_sequence(*s));
    LONGSEQ_CHECK(o.l_max == 0 || o.l_max >= longest, "--l-max ", o.l_max, " is shorter than the longest sequence of ",
                  "the data (", longest, " positions); use at least ", longest, " or 0 (the reader's maximum)");
    train::root_printf(comm, "[train_lra] %s: %ld train / %ld val / %ld test, longest %ld, mask p %.2f\n",
                       o.task.c_str(), long(d.train.size()), long(d.val.size()), long(d.test.size()),
                       long(longest), o.mask_p);
    Stage stage{o, d, comm};
    dispatch_model(o, [&](auto spec) { examples::shards::run(stage, spec); });  // Stage::run<Spec> in its shard
  } catch (const examples::Interrupted& e) {
    return examples::report_interrupted(e, "train_lra");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_lra: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
#endif  // EXAMPLES_SHARD_HAS_MAIN

// ---- shards -----------------------------------------------------------------------------------------
// The models dispatch_model reaches, dealt out in this order over the translation units the build compiles this
// file as (examples/shards.hpp): each is compiled in exactly one. check_shard_list is compiled, never run: a model
// the dispatch reaches but the list lacks stops the build.
using LraSpecs = examples::shards::Join<
    examples::shards::List<SsmModel<ssm::S4D<F>, ssm::Bidirectional>, SsmModel<ssm::S4<F>, ssm::Bidirectional>,
                           TransformerModel<attention::Rotary>, TransformerModel<attention::NoRotation>,
                           SsmModel<ssm::DSS<F>, ssm::Bidirectional>, SsmModel<ssm::DLR<F>, ssm::Bidirectional>,
                           SsmModel<ssm::ConvKernel<F>, ssm::Bidirectional>, SsmModel<ssm::S4D<F>, ssm::Causal>>,
    std::conditional_t<all_causal,
                       examples::shards::List<SsmModel<ssm::S4<F>, ssm::Causal>, SsmModel<ssm::DSS<F>, ssm::Causal>,
                                              SsmModel<ssm::DLR<F>, ssm::Causal>, SsmModel<ssm::ConvKernel<F>, ssm::Causal>>,
                       examples::shards::List<>>>;
[[maybe_unused]] static void check_shard_list(const Options& o) {
  dispatch_model(o, examples::shards::expect_listed<LraSpecs>);
}
EXAMPLES_SHARDS_DEFINE(Stage, LraSpecs)
