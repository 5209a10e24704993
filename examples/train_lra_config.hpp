// train_lra's settings: its options and their flags (the common ones in common_options.hpp), a preset (the
// paper's, or a user's file) applied to them, and --print-config, which shows them with the optimizer's groups.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <longseq/core/parameters.hpp>
#include <longseq/data/augment.hpp>
#include <longseq/data/tasks.hpp>
#include <longseq/train/optimizer.hpp>

#include "common_options.hpp"
#include "presets.hpp"

namespace lra {

using longseq::index_t;
namespace train = longseq::train;

// The common options (examples::CommonOptions) at this program's defaults, and the ones only it has.
struct Options : examples::CommonOptions {
  std::string task, model = "s4d", stage = "scratch", pretrained, objective = "masked";
  index_t epochs = 1, max_steps = 0, schedule_steps = 0, patience = 0;
  index_t ff_expand = 2, n_ssm = 0, head_hidden = 0, l_max = 0;
  double train_fraction = 1.0;
  bool shuffle_operands = false;  // ListOps: the training batches' operator arguments reordered per epoch
  double dt_min = -1, dt_max = -1;  // < 0: the kernel's own default
  std::string norm = "layer", residual = "pre";  // SSM blocks: LayerNorm or BatchNorm, pre- or post-norm
  index_t attn_window = 0, look_back = 1, look_forward = 1;  // Transformer: block-local attention (0: full)
  std::string preset = "none", preset_file, preset_row;  // preset "file": --preset-file
  std::set<std::string> preset_filled;  // flags whose value came from the preset
  bool print_config = false;
  Options() {
    out = "train_lra_out";
    init = "default";
    batch = 16;
    lr = 1e-3;
    warmup = 10;
    mask_p = -1;    // the paper's default for the task (resolve_defaults)
    spt_loss = "";  // by modality (resolve_defaults)
    seed = 0;
    save_every = 0;
    joint_weight = 1;  // --stage joint: equal weight
  }

  bool causal() const { return objective == "causal"; }
  bool joint() const { return stage == "joint"; }
};

inline constexpr examples::CommonHelp common_help{
    .data = "the task's folder as its release unpacks it (see data::load_task); required unless --print-config",
    .results = "result.json and the checkpoints (last/best.safetensors)",
    .own_init = "default",
    .stage_lr = "--lr",
    .lr = "learning rate",
    .batch = "global batch size (split over the ranks)",
    .gpu_extra = "; under mpirun, rank modulo the visible devices",
    .mask_p_default = "0.5 images, 0.15 text/retrieval, 0.1 listops",
    .spt_loss_default = "l1 without --preset, the reference's for images; token tasks always use ce",
    .augment_of = "image tasks: augmentations of the training batches",
    .joint_weight = "--stage joint: weight of the masked-denoising loss added to the supervised one (> 0; default "
                    "1, equal weight)",
    .resume = "continue from --out/last.safetensors (which must exist, with the same options)"};

// The paper's masking ratios: half of the pixels of images, 15% of text and retrieval tokens, 10% of ListOps
// (the presets name theirs; this is the default without one).
inline double default_mask_p(const std::string& task) {
  if (task == "listops") return 0.1;
  if (task == "text" || task == "retrieval") return 0.15;
  return 0.5;
}

// The flags, each with its range check (a bad value is refused before any work).
inline void add_options(CLI::App& app, Options& o) {
  namespace ls = longseq;
  app.add_option("--task", o.task, ls::data::task_names)->required()->check(
      CLI::IsMember({"listops", "text", "retrieval", "image", "pathfinder", "fashion-mnist", "mnist"}));
  using examples::at_least;
  using examples::positive;
  examples::add_common_options(app, o, common_help);
  auto* preset = app.add_option("--preset", o.preset, "paper: the paper's settings for (task, model, stage), "
                                                      "from the files of examples/presets built into the program; "
                                                      "flags given override them")
                     ->check(CLI::IsMember({"none", "paper"}));
  app.add_option("--preset-file", o.preset_file, "settings for (task, model, stage) from this file instead, in the "
                                                 "format of examples/presets/*.json; flags given override them")
      ->excludes(preset);
  app.add_flag("--print-config", o.print_config, "print the resolved settings and exit (no data needed)");
  app.add_option("--model", o.model, "s4, s4d, dss, dlr, conv or transformer")
      ->check(CLI::IsMember({"s4", "s4d", "dss", "dlr", "conv", "transformer"}));
  app.add_option("--stage", o.stage, "pretrain (SPT), finetune (from --pretrained), scratch, or joint (scratch "
                                     "plus --joint-weight x masked denoising of the same batch; presets: the "
                                     "scratch row)")
      ->check(CLI::IsMember({"pretrain", "finetune", "scratch", "joint"}));
  app.add_option("--pretrained", o.pretrained, "SPT checkpoint to fine-tune from (its best.safetensors)");
  app.add_option("--objective", o.objective, "masked (bidirectional models) or causal (causal models)")
      ->check(CLI::IsMember({"masked", "causal"}));
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
  app.add_option("--schedule-steps", o.schedule_steps, "cosine: updates to decay over (0: the run's length)")
      ->check(at_least(0));
  app.add_option("--epochs", o.epochs, "epochs")->check(at_least(1));
  app.add_option("--max-steps", o.max_steps, "stop after this many updates (0: no limit)")->check(at_least(0));
  app.add_option("--patience", o.patience, "early stopping after this many epochs without improvement (0: off)")
      ->check(at_least(0));
  app.add_option("--train-fraction", o.train_fraction, "share of the training set used (0, 1]")
      ->check(examples::fraction());
  app.add_flag("--shuffle-operands", o.shuffle_operands, "--task listops: reorder the arguments of every operator "
                                                         "of each training example, anew each epoch (the value "
                                                         "stays; Miralles-Gonzalez et al. 2025's augmentation)");
}
// The preset file for a run: --preset-file, or the paper's file for the task; the pathfinder task's length
// (--l-max, else the data's longest sequence) picks Pathfinder-32, Path-X or Path-X-256.
inline examples::Preset preset_for(const Options& o, index_t length) {
  if (!o.preset_file.empty()) {
    examples::Preset p = examples::load_preset_file(o.preset_file);
    LONGSEQ_CHECK(p.task == o.task, "preset file '", o.preset_file, "': key 'task' is for --task ", p.task,
                  ", not --task ", o.task);
    return p;
  }
  const examples::Preset* p = examples::paper_preset(o.task, length);
  LONGSEQ_CHECK(p != nullptr, "--preset paper has no settings for --task ", o.task,
                " (the paper's LRA tasks: listops, text, retrieval, image, pathfinder)");
  return *p;
}

// Fills every setting of the preset's family for (model, stage) that the command line left alone (CLI11
// counts the flags given), so an explicit flag always wins; keys the family leaves out stay as they are.
// S4D, DSS and the convolution kernel use the S4 settings. Returns what the run cannot follow, for the log.
inline std::vector<std::string> apply_preset(Options& o, const CLI::App& app, index_t data_length) {
  const examples::Preset p = preset_for(o, app.count("--l-max") > 0 ? o.l_max : data_length);
  const std::string family = o.model == "transformer" ? "transformer" : o.model == "dlr" ? "dlr" : "s4";
  const examples::PresetFamily& f = p.family(family);
  const examples::PresetStage& st = f.stages[o.stage == "pretrain" ? 0 : o.stage == "finetune" ? 1 : 2];
  const bool transformer = o.model == "transformer", ssm = !transformer && o.model != "conv";
  auto fill = [&](const char* flag, auto& field, auto value) {
    if (app.count(flag) > 0) return;
    field = static_cast<std::remove_reference_t<decltype(field)>>(value);
    o.preset_filled.insert(flag);
  };
  auto fill_if = [&](bool applies, const char* flag, auto& field, const auto& value) {
    if (applies && value) fill(flag, field, *value);
  };
  fill("--l-max", o.l_max, f.l_max);
  fill("--layers", o.layers, f.layers);
  fill("--d-model", o.d_model, f.d_model);
  fill_if(transformer, "--heads", o.heads, f.heads);
  fill_if(transformer, "--ff-expand", o.ff_expand, f.ff_expand);
  fill_if(transformer, "--attn-window", o.attn_window, f.attn_window);
  fill_if(!transformer, "--ssm-lr", o.ssm_lr, f.ssm_lr);
  fill_if(!transformer, "--norm", o.norm, f.norm);
  fill_if(!transformer, "--residual", o.residual, f.residual);
  fill_if(ssm, "--state", o.state, f.state);
  fill_if(ssm, "--n-ssm", o.n_ssm, f.n_ssm);
  fill_if(ssm, "--dt-min", o.dt_min, f.dt_min);
  fill_if(ssm, "--dt-max", o.dt_max, f.dt_max);
  fill("--dropout", o.dropout, f.dropout);
  fill_if(!transformer, "--layer-dropout", o.layer_dropout, f.layer_dropout);
  fill_if(!transformer, "--tie-dropout", o.tie_dropout, f.tie_dropout);
  fill("--batch", o.batch, st.batch);
  fill("--lr", o.lr, st.lr);
  fill("--wd", o.wd, f.wd);
  fill("--warmup", o.warmup, st.warmup);
  fill("--epochs", o.epochs, st.epochs);
  fill("--schedule", o.schedule, st.schedule);
  fill("--schedule-steps", o.schedule_steps, st.schedule_steps);
  fill_if(true, "--pool", o.pool, f.pool);
  fill("--head-hidden", o.head_hidden, f.mlp_head ? o.d_model : 0);
  fill("--mask-p", o.mask_p, p.mask_p);
  fill("--spt-loss", o.spt_loss, p.spt_loss);
  // The reference's optimizer decays every tensor that has no own setting, biases and norm scales included.
  fill("--decay-norms-biases", o.decay_norms_biases, p.decay_norms_biases);

  std::vector<std::string> ignored;
  if (o.model == "conv" || o.model == "dss")
    ignored.push_back("no row for --model " + o.model + " (the S4 row is used)");
  o.preset_row = p.name + "/" + family;
  return ignored;
}

// The settings no preset or flag gave: the task's masking ratio, and the pixel SPT loss L1 on the normalized
// value (the reference's loss for the image task); token tasks always use cross entropy.
inline void resolve_defaults(Options& o) {
  if (o.mask_p < 0) o.mask_p = default_mask_p(o.task);
  if (!o.spt_loss.empty()) return;
  const bool tokens = o.task == "listops" || o.task == "text" || o.task == "retrieval";
  o.spt_loss = tokens ? "ce" : "l1";
}

// The SSM blocks' dropout options: the Transformer's encoder layers have per-element residual dropout (--dropout)
// and no layer of their own to drop inside, so asking for either is refused rather than silently ignored.
inline void check_dropout_options(const Options& o) {
  LONGSEQ_CHECK(o.model != "transformer" || o.layer_dropout == 0, "--layer-dropout ", o.layer_dropout, " drops "
                "inside the SSM layer; --model transformer has none (its dropout is --dropout)");
  LONGSEQ_CHECK(o.model != "transformer" || !o.tie_dropout, "--tie-dropout ties the SSM blocks' dropout masks over "
                "the sequence; --model transformer drops per element (use --dropout alone)");
}

// --augment on an image task: settings the images cannot take (a shift as large as the image) named by the flag.
inline void check_augment_fits(const std::string& spec, const longseq::data::TaskInfo& info) {
  try {
    longseq::data::check_augment(longseq::data::parse_augment(spec), info.height, info.width);
  } catch (const std::exception& e) {
    LONGSEQ_FAIL("--augment ", spec, ": ", e.what());
  }
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
  if (!o.preset_file.empty()) std::printf("preset_file = %s\n", o.preset_file.c_str());
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
  line("layer_dropout", "--layer-dropout", o.layer_dropout);
  line("tie_dropout", "--tie-dropout", o.tie_dropout ? "true" : "false");
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
  line("joint_weight", "--joint-weight", o.joint_weight);
  line("augment", "--augment", o.augment);
  // What AdamW does with each parameter group (train::AdamW::group_lr / group_decay on this configuration).
  const train::AdamWConfig a = examples::adamw_config(o, o.lr);
  auto group = [&](longseq::ParamGroup g, double lr, double wd, const char* holds) {
    std::printf("group %s: lr = %g, weight_decay = %g  (%s)\n", longseq::group_name(g), lr, wd, holds);
  };
  group(longseq::ParamGroup::weight, a.lr, a.weight_decay, "linear and embedding weights, SSM output C");
  group(longseq::ParamGroup::no_decay, a.lr, a.no_decay_weight_decay, "biases, norm scales");
  group(longseq::ParamGroup::ssm, a.ssm_lr >= 0 ? a.ssm_lr : a.lr, a.ssm_weight_decay, "SSM A, B, P, Lambda");
  group(longseq::ParamGroup::dt, a.dt_lr >= 0 ? a.dt_lr : a.lr, a.dt_weight_decay, "S4/S4D log_dt");
  for (const auto& n : notes) std::printf("not applied: %s\n", n.c_str());
}

}  // namespace lra
