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
#include <set>
#include <sstream>
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
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/runtime_norm.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/distributed.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/init.hpp>
#include <longseq/train/transfer.hpp>
#ifdef LONGSEQ_WITH_MPI
#include <longseq/train/distributed_mpi.hpp>
#endif

#include "device_option.hpp"
#include "dispatch.hpp"
#include "options.hpp"
#include "run_dir.hpp"

using namespace longseq;
namespace fs = std::filesystem;
using F = float;

struct Options {
  std::string task, data, model = "s4d", stage = "scratch", pretrained, objective = "masked";
  double mask_p = -1;  // < 0: the paper's default for the task
  std::string spt_loss, pool = "mean", schedule = "cosine", out = "train_lra_out";  // spt_loss "": by modality
  index_t d_model = 64, layers = 2, state = 64, heads = 4, batch = 16, warmup = 10, epochs = 1, max_steps = 0;
  index_t ff_expand = 2, n_ssm = 0, head_hidden = 0, l_max = 0, schedule_steps = 0;
  double lr = 1e-3, ssm_lr = 1e-3, wd = 0.05, dropout = 0.0, clip = 0.0, train_fraction = 1.0;
  double dt_min = -1, dt_max = -1;  // < 0: the kernel's own default
  double dt_lr = -1;                 // S4/S4D log_dt; < 0: the global lr (the reference's `dt: null`)
  bool decay_norms_biases = false;   // weight decay on biases and norm scales too (the reference; preset paper)
  std::string init = "default";      // default, random (every parameter ~ N(0, 0.1)) or random-mixer
  std::string position = "default";  // default: sinusoidal for the Transformer, none for SSMs; or rotary
  std::string norm = "layer", residual = "pre";  // SSM blocks: LayerNorm or BatchNorm, pre- or post-norm
  index_t attn_window = 0, look_back = 1, look_forward = 1;  // Transformer: block-local attention (0: full)
  std::string preset = "none", preset_row;
  std::set<std::string> preset_filled;  // flags whose value came from the preset
  bool print_config = false;
  std::uint64_t seed = 0;
  index_t log_every = 20, save_every = 0, patience = 0;
  bool resume = false;
  std::vector<std::string> allow_changed;  // options a resume may change
  std::string device = "host", precision = "fp32";  // where the residual stack runs, in which storage
  int gpu = -1;
  double loss_scale = -1;  // initial dynamic loss scale; < 0: 65536 for fp16, off otherwise

  bool causal() const { return objective == "causal"; }
};

// The paper's masking ratios: half of the pixels of images, 15% of text and retrieval tokens, 10% of ListOps.
inline double default_mask_p(const std::string& task) {
  if (task == "listops") return 0.1;
  if (task == "text" || task == "retrieval") return 0.15;
  return 0.5;
}

// ---- the paper's settings (--preset paper) --------------------------------------------------------

// One row per (task, model family) of "Never Train from Scratch" (Amos, Berant, Gupta, ICLR 2024),
// Appendix C.1 and the LRA experiment configurations of its code release: Transformer, S4 (also used
// for S4D, DSS and the convolution kernel, which have no rows of their own) and DLR. Stage-dependent
// values are {pretrain, finetune, scratch}; scratch trains the fine-tuning architecture with the
// fine-tuning recipe except where the paper names other values (S4 on PathX-256). `pathx` and
// `pathx256` are the pathfinder task at 128x128 and 256x256 pixels. Where the DLR table is silent
// (retrieval, pathfinder, PathX-256, dropout and schedules) the paper says "same as S4, LayerNorm".
// n_ssm 0 means one (A, B) copy per channel; pool "pair" is the retrieval head.
struct PaperRow {
  const char* task;
  const char* family;
  index_t l_max, layers, d_model, heads, ff_expand;
  bool batch_norm, prenorm;
  double dropout;
  index_t state, n_ssm;
  double dt_min, dt_max, ssm_lr;
  index_t batch[3];
  double lr[3];
  double wd;
  index_t cosine_steps[3];  // 0: constant learning rate after warmup; else cosine decay over this many updates
  index_t warmup[3], epochs[3];
  const char* pool;
  bool mlp_head;   // Linear(d, d) - ReLU - Linear(d, classes) instead of one Linear
  index_t window;  // local attention blocks (look back and forward one block); 0: full attention
};

// clang-format off
inline constexpr PaperRow paper_rows[] = {
  // Transformer: pre-LN, LayerNorm, no dropout, sinusoidal positions.
  {"listops",    "transformer",  2048, 6, 512, 8, 4, false, true, 0.0,    0,   0,    0,    0,     0, {32, 32, 32}, {0.05, 0.05, 0.05},   0.0,  {0, 0, 0},           {2000, 2000, 2000},   {100, 100, 100}, "mean", false,    0},
  {"text",       "transformer",  4096, 6, 512, 8, 4, false, true, 0.0,    0,   0,    0,    0,     0, {32, 32, 32}, {0.05, 0.05, 0.05},   0.1,  {0, 0, 0},           {5000, 2000, 2000},   {32, 65, 65},    "mean", true,     0},
  {"retrieval",  "transformer",  4000, 4, 128, 4, 4, false, true, 0.0,    0,   0,    0,    0,     0, {32, 32, 32}, {0.05, 0.05, 0.05},   0.0,  {0, 0, 0},           {2000, 5000, 5000},   {32, 32, 32},    "pair", false,    0},
  {"image",      "transformer",  1024, 3,  64, 4, 2, false, true, 0.0,    0,   0,    0,    0,     0, {32, 50, 50}, {1e-3, 1e-3, 1e-3},   0.0,  {0, 0, 0},           {2500, 2000, 2000},   {50, 200, 200},  "mean", true,     0},
  {"pathfinder", "transformer",  1024, 4, 128, 8, 1, false, true, 0.0,    0,   0,    0,    0,     0, {32, 32, 32}, {5e-4, 5e-4, 5e-4},   0.0,  {0, 0, 0},           {2500, 5000, 5000},   {50, 200, 200},  "mean", false,    0},
  {"pathx",      "transformer", 16384, 4, 128, 4, 1, false, true, 0.0,    0,   0,    0,    0,     0, {32, 32, 32}, {5e-4, 5e-4, 5e-4},   0.0,  {0, 0, 0},           {5000, 5000, 5000},   {200, 200, 200}, "max",  false, 4096},
  // PathX-256: the released pretraining config has 8 layers, fine-tuning 4; 4 in both so the checkpoint transfers.
  {"pathx256",   "transformer", 65536, 4, 128, 4, 4, false, true, 0.0,    0,   0,    0,    0,     0, {32, 32, 32}, {5e-4, 5e-4, 5e-4},   0.0,  {0, 0, 0},           {5000, 5000, 5000},   {200, 200, 200}, "max",  false, 8192},
  // S4: bidirectional, GELU + GLU, HiPPO-LegS, state 64.
  {"listops",    "s4",           2048, 8, 128, 0, 0, true, false, 0.0,   64,   0, 1e-3,  0.1,  1e-3, {50, 50, 50}, {0.01, 0.01, 0.01},   0.05, {0, 0, 0},           {2000, 2000, 2000},   {100, 40, 40},   "mean", false,    0},
  {"text",       "s4",           4096, 6, 256, 0, 0, true, true,  0.0,   64,   0, 1e-3,  0.1,  1e-3, {16, 16, 16}, {0.01, 0.01, 0.01},   0.05, {0, 50000, 50000},   {1000, 5000, 5000},   {32, 32, 32},    "mean", false,    0},
  {"retrieval",  "s4",           4000, 6, 256, 0, 0, true, true,  0.0,   64,   0, 1e-3,  0.1,  1e-3, {64, 64, 64}, {0.01, 0.01, 0.01},   0.05, {0, 0, 0},           {2500, 2500, 2500},   {20, 20, 20},    "pair", false,    0},
  {"image",      "s4",           1024, 6, 512, 0, 0, false, false, 0.1,  64,   2, 1e-3,  0.1,  1e-3, {50, 50, 50}, {0.01, 0.01, 0.01},   0.05, {0, 200000, 200000}, {1000, 1000, 1000},   {200, 200, 200}, "mean", false,    0},
  {"pathfinder", "s4",           1024, 6, 256, 0, 0, true, true,  0.0,   64,   0, 1e-3,  0.1,  1e-3, {64, 64, 64}, {4e-3, 4e-3, 4e-3},   0.03, {0, 0, 0},           {2500, 2500, 2500},   {200, 200, 200}, "last", false,    0},
  {"pathx",      "s4",          16384, 6, 256, 0, 0, true, true,  0.0,   64,   0, 1e-4,  0.1,  5e-4, {32, 16, 16}, {5e-4, 5e-4, 5e-4},   0.05, {0, 500000, 500000}, {5000, 10000, 10000}, {50, 50, 50},    "mean", false,    0},
  {"pathx256",   "s4",          65536, 6, 256, 0, 0, true, true,  0.0,   64,   0, 1e-4,  0.1,  5e-4, {8, 64, 16},  {1e-3, 1e-3, 1e-4},   0.05, {0, 500000, 500000}, {5000, 10000, 10000}, {50, 50, 50},    "max",  false,    0},
  // DLR: LayerNorm always, 1024 complex modes, decay rates in [1e-4, 1e-3], Lambda and W at lr 1e-4.
  {"listops",    "dlr",          2048, 8, 128, 0, 0, false, false, 0.0, 1024,  0, 1e-4, 1e-3,  1e-4, {50, 50, 50}, {0.01, 0.01, 0.01},   0.05, {0, 0, 0},           {2000, 2000, 2000},   {100, 40, 40},   "mean", false,    0},
  {"text",       "dlr",          4096, 6, 256, 0, 0, false, true,  0.0, 1024,  0, 1e-4, 1e-3,  1e-4, {16, 16, 16}, {0.01, 0.01, 0.01},   0.05, {0, 50000, 50000},   {1000, 2000, 2000},   {32, 32, 32},    "mean", false,    0},
  {"retrieval",  "dlr",          4000, 6, 256, 0, 0, false, true,  0.0, 1024,  0, 1e-4, 1e-3,  1e-4, {64, 64, 64}, {0.01, 0.01, 0.01},   0.05, {0, 0, 0},           {2500, 2500, 2500},   {20, 20, 20},    "pair", false,    0},
  {"image",      "dlr",          1024, 6, 512, 0, 0, false, true,  0.1, 1024,  0, 1e-4, 1e-3,  1e-4, {50, 50, 50}, {0.01, 0.01, 0.01},   0.05, {0, 200000, 200000}, {1000, 1000, 1000},   {200, 200, 200}, "mean", false,    0},
  {"pathfinder", "dlr",          1024, 6, 256, 0, 0, false, true,  0.0, 1024,  0, 1e-4, 1e-3,  1e-4, {64, 64, 64}, {4e-3, 4e-3, 4e-3},   0.03, {0, 0, 0},           {2500, 2500, 2500},   {200, 200, 200}, "last", false,    0},
  {"pathx",      "dlr",         16384, 6, 256, 0, 0, false, true,  0.0, 1024,  0, 1e-4, 1e-3,  1e-4, {32, 32, 32}, {5e-4, 5e-4, 5e-4},   0.05, {0, 250000, 250000}, {5000, 5000, 5000},   {50, 50, 50},    "max",  false,    0},
  {"pathx256",   "dlr",         65536, 6, 256, 0, 0, false, true,  0.0, 1024,  0, 1e-4, 1e-3,  1e-4, {8, 64, 16},  {1e-3, 1e-3, 1e-4},   0.05, {0, 250000, 250000}, {5000, 5000, 5000},   {50, 50, 50},    "max",  false,    0},
};
// clang-format on

// The row for a run: the pathfinder task's resolution picks Pathfinder-32, PathX or PathX-256 from the
// sequence length (--l-max, else the data's longest sequence).
inline const PaperRow& paper_row(const Options& o, index_t length) {
  std::string task = o.task;
  if (task == "pathfinder") task = length > 16384 ? "pathx256" : length > 1024 ? "pathx" : "pathfinder";
  const std::string family = o.model == "transformer" ? "transformer" : o.model == "dlr" ? "dlr" : "s4";
  for (const auto& r : paper_rows)
    if (task == r.task && family == r.family) return r;
  LONGSEQ_FAIL("--preset paper has no settings for --task ", o.task,
               " (the paper's LRA tasks: listops, text, retrieval, image, pathfinder)");
}

// Fills every setting of the paper's row that the command line left alone (CLI11 counts the flags
// given), so an explicit flag always wins. Returns what the run cannot follow, for the log.
inline std::vector<std::string> apply_paper_preset(Options& o, const CLI::App& app, index_t data_length) {
  const bool user_l_max = app.count("--l-max") > 0;
  const PaperRow& r = paper_row(o, user_l_max ? o.l_max : data_length);
  const int s = o.stage == "pretrain" ? 0 : o.stage == "finetune" ? 1 : 2;
  const bool transformer = o.model == "transformer", ssm = !transformer && o.model != "conv";
  auto fill = [&](const char* flag, auto& field, auto value) {
    if (app.count(flag) > 0) return;
    field = static_cast<std::remove_reference_t<decltype(field)>>(value);
    o.preset_filled.insert(flag);
  };
  fill("--l-max", o.l_max, r.l_max);
  fill("--layers", o.layers, r.layers);
  fill("--d-model", o.d_model, r.d_model);
  if (transformer) {
    fill("--heads", o.heads, r.heads);
    fill("--ff-expand", o.ff_expand, r.ff_expand);
  } else {
    fill("--ssm-lr", o.ssm_lr, r.ssm_lr);
  }
  if (transformer) {
    fill("--attn-window", o.attn_window, r.window);
  } else {
    fill("--norm", o.norm, std::string(r.batch_norm ? "batch" : "layer"));
    fill("--residual", o.residual, std::string(r.prenorm ? "pre" : "post"));
  }
  if (ssm) {
    fill("--state", o.state, r.state);
    fill("--n-ssm", o.n_ssm, r.n_ssm);
    fill("--dt-min", o.dt_min, r.dt_min);
    fill("--dt-max", o.dt_max, r.dt_max);
  }
  fill("--dropout", o.dropout, r.dropout);
  fill("--batch", o.batch, r.batch[s]);
  fill("--lr", o.lr, r.lr[s]);
  fill("--wd", o.wd, r.wd);
  fill("--warmup", o.warmup, r.warmup[s]);
  fill("--epochs", o.epochs, r.epochs[s]);
  fill("--schedule", o.schedule, std::string(r.cosine_steps[s] > 0 ? "cosine" : "constant"));
  fill("--schedule-steps", o.schedule_steps, r.cosine_steps[s]);
  if (std::string(r.pool) != "pair") fill("--pool", o.pool, std::string(r.pool));
  fill("--head-hidden", o.head_hidden, r.mlp_head ? o.d_model : 0);
  fill("--mask-p", o.mask_p, default_mask_p(o.task));
  fill("--spt-loss", o.spt_loss, std::string(o.task == "image" ? "l1" : "ce"));
  // The reference's optimizer decays every tensor that has no own setting, biases and norm scales included.
  fill("--decay-norms-biases", o.decay_norms_biases, true);

  std::vector<std::string> ignored;
  if (o.model == "conv" || o.model == "dss")
    ignored.push_back("no row for --model " + o.model + " (the S4 row is used)");
  o.preset_row = std::string(r.task) + "/" + r.family;
  return ignored;
}

// The optimizer's groups: SSM dynamics at --ssm-lr without decay, dt at --dt-lr (the global lr unless given),
// biases and norm scales decayed only with --decay-norms-biases.
inline train::AdamWConfig adamw_config(const Options& o) {
  return {.lr = o.lr, .weight_decay = o.wd, .no_decay_weight_decay = o.decay_norms_biases ? o.wd : 0.0,
          .ssm_lr = o.ssm_lr, .ssm_weight_decay = 0.0, .dt_lr = o.dt_lr, .dt_weight_decay = 0.0};
}

// Pixel tasks self-pretrain with L1 on the normalized value unless told otherwise (the reference's loss for
// the image task); token tasks always use cross entropy.
inline void resolve_spt_loss(Options& o) {
  if (!o.spt_loss.empty()) return;
  const bool tokens = o.task == "listops" || o.task == "text" || o.task == "retrieval";
  o.spt_loss = tokens ? "ce" : "l1";
}

// --print-config: the resolved settings, one `name = value  (source)` line each.
inline void print_config(const Options& o, const CLI::App& app, const std::vector<std::string>& notes) {
  auto line = [&](const char* name, const char* flag, const auto& value) {
    std::ostringstream v;
    v << value;
    const char* from = app.count(flag) ? "command line" : o.preset_filled.count(flag) ? "preset" : "default";
    std::printf("%s = %s  (%s)\n", name, v.str().c_str(), from);
  };
  std::printf("task = %s\nmodel = %s\nstage = %s\npreset = %s\n", o.task.c_str(), o.model.c_str(),
              o.stage.c_str(), o.preset.c_str());
  if (!o.preset_row.empty()) std::printf("preset_row = %s\n", o.preset_row.c_str());
  line("objective", "--objective", o.objective);
  line("l_max", "--l-max", o.l_max);
  line("layers", "--layers", o.layers);
  line("d_model", "--d-model", o.d_model);
  line("heads", "--heads", o.heads);
  line("ff_expand", "--ff-expand", o.ff_expand);
  line("state", "--state", o.state);
  line("n_ssm", "--n-ssm", o.n_ssm);
  line("dt_min", "--dt-min", o.dt_min);
  line("dt_max", "--dt-max", o.dt_max);
  line("norm", "--norm", o.norm);
  line("residual", "--residual", o.residual);
  line("attn_window", "--attn-window", o.attn_window);
  line("look_back", "--look-back", o.look_back);
  line("look_forward", "--look-forward", o.look_forward);
  line("dropout", "--dropout", o.dropout);
  line("batch", "--batch", o.batch);
  line("lr", "--lr", o.lr);
  line("ssm_lr", "--ssm-lr", o.ssm_lr);
  line("dt_lr", "--dt-lr", o.dt_lr);
  line("wd", "--wd", o.wd);
  line("decay_norms_biases", "--decay-norms-biases", o.decay_norms_biases ? "true" : "false");
  line("init", "--init", o.init);
  line("position", "--position", o.position);
  line("warmup", "--warmup", o.warmup);
  line("schedule", "--schedule", o.schedule);
  line("schedule_steps", "--schedule-steps", o.schedule_steps);
  line("epochs", "--epochs", o.epochs);
  line("pool", "--pool", o.pool);
  line("head_hidden", "--head-hidden", o.head_hidden);
  line("mask_p", "--mask-p", o.mask_p);
  line("spt_loss", "--spt-loss", o.spt_loss);
  line("device", "--device", o.device);
  line("precision", "--precision", o.precision);
  line("loss_scale", "--loss-scale", examples::initial_loss_scale(o.loss_scale, o.precision));
  // What AdamW does with each parameter group (train::AdamW::group_lr / group_decay on this configuration).
  const train::AdamWConfig a = adamw_config(o);
  auto group = [&](ParamGroup g, double lr, double wd, const char* holds) {
    std::printf("group %s: lr = %g, weight_decay = %g  (%s)\n", group_name(g), lr, wd, holds);
  };
  group(ParamGroup::weight, a.lr, a.weight_decay, "linear and embedding weights, SSM output C");
  group(ParamGroup::no_decay, a.lr, a.no_decay_weight_decay, "biases, norm scales");
  group(ParamGroup::ssm, a.ssm_lr >= 0 ? a.ssm_lr : a.lr, a.ssm_weight_decay, "SSM A, B, P, Lambda");
  group(ParamGroup::dt, a.dt_lr >= 0 ? a.dt_lr : a.lr, a.dt_weight_decay, "S4/S4D log_dt");
  for (const auto& n : notes) std::printf("not applied: %s\n", n.c_str());
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

// A model choice: the residual block type in storage T on device policy D (`block<T, D>`; `narrow` says
// whether T may be bf16 / fp16 on the GPU, examples::dispatch_device), how to configure such a block,
// whether the encoder adds positions, and the final norm (the blocks' norm after pre-norm blocks, none
// after post-norm ones).
// SSM blocks: a residual block (pre- or post-norm, LayerNorm or BatchNorm, chosen at run time) around
// an SSM convolution layer whose kernel parameterization and direction are template arguments.
template <class Kernel, class Dir>
struct SsmModel {
  template <class T, class D>
  using block = nn::Residual<nn::RuntimeNorm<T, D>, ssm::SSMConv<Kernel, Dir, D>>;
  using narrow = examples::FloatOnly;  // the whole device model runs in fp32 (examples::dispatch_device)
  static bool sinusoidal(const Options& o) { return o.position == "sinusoidal"; }
  template <class Block>
  static typename Block::Config block_config(const Options& o, index_t length) {
    typename Block::Config c;
    c.norm = {.dim = o.d_model, .kind = nn::norm_kind(o.norm)};
    c.mixer.kernel = kernel(o, length);
    c.mixer.random = {.enabled = o.init == "random-mixer", .sigma = 0.1};
    c.dropout = o.dropout;
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
  using narrow = examples::FloatOnly;  // the whole device model runs in fp32 (examples::dispatch_device)
  static bool sinusoidal(const Options& o) {
    return !std::is_same_v<Position, attention::Rotary> && o.position != "none";
  }
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
  if (o.model == "transformer" && o.position == "rotary") fn(TransformerModel<attention::Rotary>{});
  else if (o.model == "transformer") fn(TransformerModel<attention::NoRotation>{});
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
  models::Inputs<F> inputs() const { return {ids_, values_, lengths_}; }
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
                                if (pixels()) with_head<Spec, T, D, models::LinearEncoder>();
                                else with_head<Spec, T, D, models::TokenEncoder>();
                              });
  }

  template <class Spec, class Enc>
  typename Enc::Config encoder(bool mask_channel) const {
    if constexpr (requires(typename Enc::Config c) { c.vocab; })
      return {.vocab = vocab(), .dim = o.d_model, .padding_idx = data::Vocab::pad_id, .sinusoidal = Spec::sinusoidal(o)};
    else
      return {.channels = 1, .dim = o.d_model, .mask_channel = mask_channel, .sinusoidal = Spec::sinusoidal(o)};
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
        train_model<Spec, T, D, EncOn, heads::CausalLMHead>(false, head, LraTask::Mode::causal, select);
      else
        train_model<Spec, T, D, EncOn, heads::MaskedDenoisingHead>(true, head, LraTask::Mode::masked, select);
      return;
    }
    const index_t classes = d.train.info().num_classes;
    if (retrieval()) {
      if constexpr (std::is_same_v<EncOn<F, device::host>, models::TokenEncoder<F>>) {
        auto head = [&](auto& h) {
          h.dim = o.d_model;
          h.classes = classes;
        };
        train_model<Spec, T, D, EncOn, heads::RetrievalHead>(false, head, LraTask::Mode::classify,
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
    train_model<Spec, T, D, EncOn, heads::ClassificationHead>(false, head, LraTask::Mode::classify,
                                                              train::Select::accuracy);
  }

  template <class Spec, class T, class D, template <class, class> class EncOn, template <class, class> class HeadOn,
            class FillHead>
  void train_model(bool mask_channel, const FillHead& head, LraTask::Mode mode, train::Select select) {
    using Net = NetOf<Spec, T, D, EncOn, HeadOn>;
    using HostNet = NetOf<Spec, F, device::host, EncOn, HeadOn>;
    Net model(net_config<Spec, T, D, EncOn, HeadOn>(mask_channel, head));
    ParamStore<T, D> store;
    store.bind(model);
    auto draw = [&](auto& net, auto& st) {
      Rng rng(o.seed, 1);
      net.init(rng);
      // The paper's ablation redraws the whole model (encoder, norms, head too); random-mixer did so in init.
      if (o.init == "random") train::redraw_normal(st, rng, 0.1);
    };
    if constexpr (std::is_same_v<Net, HostNet>) {
      draw(model, store);
    } else {
      // init is host-only: the float host twin is drawn and copied over, so every device and precision starts
      // from the host run's parameters.
      HostNet twin(net_config<Spec, F, device::host, EncOn, HeadOn>(mask_channel, head));
      ParamStore<F> host;
      host.bind(twin);
      draw(twin, host);
      examples::copy_initial(host, store);
    }
    if (root()) std::fprintf(stderr, "[train_lra] %s %s on %s: %ld parameters, %d rank(s)\n", o.stage.c_str(),
                             o.model.c_str(), o.task.c_str(), long(store.count()), comm.size());
    nlohmann::json transfer_info;
    if (o.stage == "finetune") {
      LONGSEQ_CHECK(!fs::is_directory(o.pretrained), "--pretrained '", o.pretrained, "' is a folder; give the "
                    "checkpoint file in it (e.g. '", (fs::path(o.pretrained) / "best.safetensors").string(), "')");
      // Every rank reads the checkpoint (fit broadcasts rank 0's parameters anyway).
      const auto rep = train::transfer<T>(o.pretrained, store);
      if (root())
        std::fprintf(stderr, "[train_lra] loaded backbone from %s: %zu tensors loaded, %zu sliced (mask column), "
                             "%zu new (head), %zu dropped (SPT head)\n",
                     o.pretrained.c_str(), rep.loaded.size(), rep.sliced.size(), rep.fresh.size(), rep.dropped.size());
      transfer_info = {{"event", "transfer"}, {"from", o.pretrained}, {"loaded", rep.loaded.size()},
                       {"sliced", rep.sliced.size()}, {"fresh", rep.fresh}, {"dropped", rep.dropped}};
    }
    train::AdamW<T, D> opt(store, adamw_config(o));
    LraTask task(d, o, mode);
    const index_t per_epoch = task.num_batches(train::Split::train, 0);
    index_t total = o.epochs * per_epoch;
    if (o.max_steps > 0) total = std::min(total, o.max_steps);
    // The paper's cosine schedules decay over a fixed number of updates, not over the run's length.
    const train::Schedule sched{train::Schedule::parse(o.schedule), o.warmup,
                                o.schedule_steps > 0 ? o.schedule_steps : total, 0.0};

    std::unique_ptr<train::MetricsLog> log;
    if (root()) {
      // A fresh run starts a fresh log; a resumed one keeps it up to its checkpoint (fit drops the rest).
      log = std::make_unique<train::MetricsLog>((fs::path(o.out) / "metrics.jsonl").string(), !o.resume);
      if (!transfer_info.is_null() && !o.resume) log->write(transfer_info);
    }
    train::FitConfig fc;
    fc.run = o.task + "/" + o.model + "/" + o.stage;
    fc.epochs = o.epochs;
    fc.max_steps = o.max_steps;
    fc.clip = o.clip;
    fc.select = select;
    fc.loss_scale.initial = examples::initial_loss_scale(o.loss_scale, o.precision);
    fc.patience = o.patience;
    fc.test_eval = o.stage == "pretrain" ? train::TestEval::never : train::TestEval::on_improvement;
    fc.checkpoint_dir = o.out;
    fc.save_every = o.save_every;
    fc.resume = o.resume;
    fc.resume_required = true;
    fc.allow_changed = examples::allowed_changes(o.allow_changed);
    fc.stop_on_signal = true;
    fc.seed = o.seed;
    fc.log_every = o.log_every;
    fc.log = log.get();
    fc.metadata["config"] = nlohmann::json{{"task", o.task}, {"model", o.model}, {"stage", o.stage},
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
                                           {"clip", o.clip}, {"train_fraction", o.train_fraction},
                                           {"dt_min", o.dt_min}, {"dt_max", o.dt_max}, {"norm", o.norm},
                                           {"residual", o.residual}, {"attn_window", o.attn_window},
                                           {"look_back", o.look_back}, {"look_forward", o.look_forward},
                                           {"pool", o.pool}, {"patience", o.patience},
                                           {"pretrained", o.pretrained}}.dump();
    const train::FitResult r = [&] {
      if constexpr (std::is_same_v<T, F>) {
        return train::fit(model, store, opt, sched, task, fc, comm);
      } else {
        examples::TypedTask<T, LraTask> typed(task);  // bf16 / half batches
        return train::fit(model, store, opt, sched, typed, fc, comm);
      }
    }();
    if (r.signal != 0)
      throw examples::Interrupted(r.signal, "step " + std::to_string(r.steps) + ", checkpoint " + r.last_path);
    if (!root()) return;
    const nlohmann::json result{{"task", o.task}, {"model", o.model}, {"stage", o.stage}, {"steps", r.steps},
                                {"best_epoch", r.best_epoch}, {"val_loss", r.best_val_loss},
                                {"val_acc", r.best_val_acc}, {"test_loss", r.best_test_loss},
                                {"test_acc", r.best_test_acc}, {"seconds", r.seconds}, {"ranks", comm.size()},
                                {"interrupted", r.interrupted}, {"best_checkpoint", r.best_path},
                                {"device", o.device}, {"precision", o.precision}, {"loss_scale", r.loss_scale},
                                {"skipped_updates", r.skipped}};
    examples::write_json(fs::path(o.out) / "result.json", result);
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
  using examples::at_least;
  using examples::positive;
  app.add_option("--data,--data-dir", o.data, "the task's folder as its release unpacks it (see data::load_task); "
                                   "required unless --print-config");
  app.add_option("--preset", o.preset, "paper: the paper's settings for (task, model, stage); flags given "
                                       "override them")
      ->check(CLI::IsMember({"none", "paper"}));
  app.add_flag("--print-config", o.print_config, "print the resolved settings and exit (no data needed)");
  app.add_option("--model", o.model, "s4, s4d, dss, dlr, conv or transformer")
      ->check(CLI::IsMember({"s4", "s4d", "dss", "dlr", "conv", "transformer"}));
  app.add_option("--stage", o.stage, "pretrain (SPT), finetune (from --pretrained) or scratch")
      ->check(CLI::IsMember({"pretrain", "finetune", "scratch"}));
  app.add_option("--pretrained", o.pretrained, "SPT checkpoint to fine-tune from (its best.safetensors)");
  app.add_option("--objective", o.objective, "masked (bidirectional models) or causal (causal models)")
      ->check(CLI::IsMember({"masked", "causal"}));
  app.add_option("--mask-p", o.mask_p, "masking ratio in (0, 1) (default: 0.5 images, 0.15 text/retrieval, 0.1 listops)")
      ->check(examples::probability());
  app.add_option("--spt-loss", o.spt_loss, "pixel SPT loss: ce (256 intensities) or l1 (normalized value; the "
                                           "default without --preset, the reference's for images)")
      ->check(CLI::IsMember({"ce", "l1"}));
  app.add_option("--pool", o.pool, "classifier pooling")->check(CLI::IsMember({"mean", "max", "last"}));
  app.add_option("--d-model", o.d_model, "model width")->check(at_least(1));
  app.add_option("--layers", o.layers, "residual blocks")->check(at_least(1));
  app.add_option("--state", o.state, "SSM state size N")->check(at_least(1));
  app.add_option("--heads", o.heads, "attention heads")->check(at_least(1));
  app.add_option("--ff-expand", o.ff_expand, "Transformer feed-forward width as a multiple of --d-model")
      ->check(at_least(1));
  app.add_option("--n-ssm", o.n_ssm, "S4/S4D: independent (A, B) copies shared across channels (0: one per channel)")
      ->check(at_least(0));
  app.add_option("--dt-min", o.dt_min, "SSM: smallest initial step / decay rate (default: the kernel's)")
      ->check(positive());
  app.add_option("--dt-max", o.dt_max, "SSM: largest initial step / decay rate (default: the kernel's)")
      ->check(positive());
  app.add_option("--l-max", o.l_max, "sequence length the kernels are built for, at least the longest sequence "
                                     "(0: the reader's maximum); selects PathX (16384) or PathX-256 (65536) rows "
                                     "of --preset paper")
      ->check(at_least(0));
  app.add_option("--head-hidden", o.head_hidden, "classifier: hidden width of a two-layer MLP head (0: linear)")
      ->check(at_least(0));
  app.add_option("--batch", o.batch, "global batch size (split over the ranks)")->check(at_least(1));
  app.add_option("--lr", o.lr, "learning rate")->check(positive());
  app.add_option("--ssm-lr", o.ssm_lr, "learning rate of the SSM dynamics (no weight decay; 0: frozen)")
      ->check(at_least(0));
  app.add_option("--wd,--weight-decay", o.wd, "AdamW weight decay")->check(at_least(0));
  app.add_option("--dt-lr", o.dt_lr, "S4/S4D: learning rate of log_dt, no weight decay (default: --lr, as the "
                                     "reference's dt: null; --dt-lr equal to --ssm-lr groups it with the dynamics)")
      ->check(at_least(0));
  app.add_flag("--decay-norms-biases", o.decay_norms_biases, "decay biases and norm scales at --wd too (the "
                                                             "reference does; default with --preset paper)");
  app.add_option("--init", o.init, "default (each layer's own init), random (every parameter of the model ~ "
                                   "N(0, 0.1): the paper's ablation) or random-mixer (the SSM layers only)")
      ->check(CLI::IsMember({"default", "random", "random-mixer"}));
  app.add_option("--position", o.position, "default (sinusoidal for the Transformer, none for SSMs), sinusoidal "
                                           "(added by the encoder), rotary (attention queries and keys; the paper's "
                                           "Table 2 Transformers) or none")
      ->check(CLI::IsMember({"default", "sinusoidal", "rotary", "none"}));
  app.add_option("--norm", o.norm, "SSM blocks: layer (LayerNorm) or batch (BatchNorm)")
      ->check(CLI::IsMember({"layer", "batch"}));
  app.add_option("--residual", o.residual, "SSM blocks: pre (x + M(N(x)), final norm) or post (N(x + M(x)), "
                                           "no final norm)")
      ->check(CLI::IsMember({"pre", "post"}));
  app.add_option("--attn-window", o.attn_window, "Transformer: block-local attention with blocks of this many "
                                                 "positions (0: full attention)")
      ->check(at_least(0));
  app.add_option("--look-back", o.look_back, "block-local attention: earlier blocks each query block sees")
      ->check(at_least(0));
  app.add_option("--look-forward", o.look_forward, "block-local attention: later blocks each query block sees "
                                                   "(not with --objective causal)")
      ->check(at_least(0));
  app.add_option("--dropout", o.dropout, "residual dropout")->check(examples::probability());
  app.add_option("--clip", o.clip, "gradient clipping by global norm (0: off)")->check(at_least(0));
  app.add_option("--warmup", o.warmup, "linear warmup updates")->check(at_least(0));
  app.add_option("--schedule", o.schedule, "after warmup")->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--schedule-steps", o.schedule_steps, "cosine: updates to decay over (0: the run's length)")
      ->check(at_least(0));
  app.add_option("--epochs", o.epochs, "epochs")->check(at_least(1));
  app.add_option("--max-steps", o.max_steps, "stop after this many updates (0: no limit)")->check(at_least(0));
  app.add_option("--patience", o.patience, "early stopping after this many epochs without improvement (0: off)")
      ->check(at_least(0));
  app.add_option("--seed", o.seed, "seed of initialization, data order, masks and dropout");
  app.add_option("--out,--out-dir", o.out, "folder for last/best.safetensors, metrics.jsonl and result.json (one "
                                           "run at a time)");
  app.add_option("--log-every", o.log_every, "updates between progress lines (0: none)")->check(at_least(0));
  app.add_option("--save-every", o.save_every, "updates between resumable checkpoints (besides epoch ends; 0: only "
                 "those)")->check(at_least(0));
  app.add_flag("--resume", o.resume, "continue from --out/last.safetensors (which must exist, with the same options)");
  app.add_option("--allow-changed", o.allow_changed, examples::allow_changed_help)->delimiter(',');
  app.add_option("--device", o.device, examples::device_help)->check(CLI::IsMember({"host", "cuda"}));
  app.add_option("--gpu", o.gpu, "CUDA device ordinal with --device cuda (-1: the current one; under mpirun, "
                 "rank modulo the visible devices)")->check(at_least(-1));
  app.add_option("--precision", o.precision, examples::precision_help)->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--loss-scale", o.loss_scale, examples::loss_scale_help)->check(at_least(0));
  app.add_option("--train-fraction", o.train_fraction, "share of the training set used (0, 1]")
      ->check(examples::fraction());
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<std::string> not_applied;
    if (o.print_config) {
      if (o.preset == "paper") not_applied = apply_paper_preset(o, app, 0);
      if (o.mask_p < 0) o.mask_p = default_mask_p(o.task);
      resolve_spt_loss(o);
      print_config(o, app, not_applied);
      return 0;
    }
    LONGSEQ_CHECK(!o.data.empty(), "--data is required (the task's folder)");
    LONGSEQ_CHECK(o.stage != "finetune" || !o.pretrained.empty(), "--stage finetune needs --pretrained CHECKPOINT");
    examples::single_threaded_blas();
    examples::check_device(o.device, o.gpu);
    examples::check_precision(o.device, o.precision);
    Comm comm;
    // Rank 0 owns --out for the whole run; the others write nothing there.
    std::unique_ptr<examples::RunFolder> folder;
    if (train::is_root(comm)) folder = std::make_unique<examples::RunFolder>(o.out, "train_lra");
    train::StopOnSignal on_signal;
    data::Splits d = data::load_task(o.task, o.data);
    if (o.preset == "paper") {
      index_t longest = 0;
      for (const auto* s : {&d.train, &d.val, &d.test}) longest = std::max(longest, s->info().max_length);
      not_applied = apply_paper_preset(o, app, longest);
      train::root_printf(comm, "[train_lra] preset paper: row %s, batch %ld, lr %g, %ld epochs\n",
                         o.preset_row.c_str(), long(o.batch), o.lr, long(o.epochs));
      for (const auto& n : not_applied) train::root_printf(comm, "[train_lra] preset paper: not applied: %s\n", n.c_str());
    }
    if (o.mask_p < 0) o.mask_p = default_mask_p(o.task);
    resolve_spt_loss(o);
    LONGSEQ_CHECK(o.init != "random-mixer" || o.model != "transformer", "--init random-mixer redraws SSM layers; "
                  "--model transformer has none (use --init random)");
    LONGSEQ_CHECK(o.position != "rotary" || o.model == "transformer", "--position rotary rotates attention queries "
                  "and keys; --model ", o.model, " has no attention (use sinusoidal or none)");
    if (o.stage == "pretrain" && !o.causal()) examples::check_mask_p(o.mask_p);
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
    dispatch_model(o, [&](auto spec) { stage.run<decltype(spec)>(); });
  } catch (const examples::Interrupted& e) {
    return examples::report_interrupted(e, "train_lra");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_lra: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
