// The options both trainers have: one field, one flag (with its aliases), one range check and one help text
// each, registered by add_common_options. Each trainer's Options derives from CommonOptions, sets its own
// defaults (they differ: lr, batch, warmup, seed, ...) and adds the options only it has.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <longseq/core/error.hpp>
#include <longseq/core/shape.hpp>
#include <longseq/train/optimizer.hpp>
#include <longseq/train/tasks.hpp>

#include "device_option.hpp"
#include "options.hpp"
#include "run_dir.hpp"

namespace examples {

struct CommonOptions {
  std::string data, out;                               // the data's folder; the run's folder
  std::string device = "host", precision = "fp32";     // where the model runs, in which storage
  int gpu = -1;
  double loss_scale = -1;                              // initial dynamic loss scale; < 0: 65536 for fp16, else off
  std::string init = "default";                        // the layers' own init, random or random-mixer
  std::string position = "default";                    // default: sinusoidal for the Transformer, none for SSMs
  longseq::index_t d_model = 64, layers = 2, state = 64, heads = 4;
  longseq::index_t batch = 32, warmup = 10;
  double lr = 1e-3, ssm_lr = 1e-3, wd = 0.05;
  double dt_lr = -1;                 // S4/S4D log_dt; < 0: the stage's lr (the reference's `dt: null`)
  bool decay_norms_biases = false;   // weight decay on biases and norm scales too (as the reference)
  double dropout = 0.0;
  double layer_dropout = 0.0;        // SSM blocks: dropout inside the SSM layer, after its activation
  bool tie_dropout = false;          // SSM blocks: one dropout mask per (batch, channel), shared over the sequence
  std::string schedule = "cosine";
  double mask_p = 0.5;
  std::string spt_loss = "l1";
  std::string pool = "mean";
  double clip = 0.0;
  std::uint64_t seed = 0;
  longseq::index_t log_every = 20, save_every = 0;
  bool resume = false;
  std::vector<std::string> allow_changed;  // options a resume may change
  std::string augment = "none";            // image augmentations of the training batches (data::parse_augment)
  double joint_weight = 1;                 // weight of the masked-denoising loss in the joint objective
  std::string joint_scheme = "longseq";    // the joint objective's variant (train::set_joint_scheme)
};

// The phrases of the common options' help that depend on the trainer.
struct CommonHelp {
  const char* data;          // --data: what the folder holds
  const char* results;       // the results file --out receives
  const char* own_init;      // --init's name for each layer's own initialization
  const char* stage_lr;      // the learning rate --dt-lr defaults to
  const char* lr;            // --lr
  const char* batch;         // --batch
  const char* gpu_extra;     // appended to --gpu's help ("" for none)
  const char* mask_p_default;
  const char* spt_loss_default;
  const char* augment_of;    // what --augment augments
  const char* joint_weight;  // --joint-weight
  const char* resume;        // --resume
};

// The common flags, each with its range check (a bad value is refused before any work).
inline void add_common_options(CLI::App& app, CommonOptions& o, const CommonHelp& h) {
  const std::string s = "";  // makes the help texts below std::string concatenations
  app.add_option("--data,--data-dir", o.data, h.data);
  app.add_option("--out,--out-dir", o.out, s + "the run's folder: metrics.jsonl, " + h.results + " (one run at a "
                                                "time)");
  app.add_option("--device", o.device, device_help)->check(CLI::IsMember({"host", "cuda"}));
  app.add_option("--gpu", o.gpu, s + "CUDA device ordinal with --device cuda (-1: the current one" + h.gpu_extra + ")")
      ->check(at_least(-1));
  app.add_option("--precision", o.precision, precision_help)->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--loss-scale", o.loss_scale, loss_scale_help)->check(at_least(0));
  app.add_option("--init", o.init, s + h.own_init + " (each layer's own init), random (every parameter of the "
                                       "model ~ N(0, 0.1): the paper's ablation) or random-mixer (the SSM layers only)")
      ->check(CLI::IsMember(std::vector<std::string>{h.own_init, "random", "random-mixer"}));
  app.add_option("--position", o.position, "default (sinusoidal for the Transformer, none for SSMs), sinusoidal "
                                           "(added by the encoder), rotary (attention queries and keys; the paper's "
                                           "Table 2 Transformers), learned (a table added by the encoder) or none")
      ->check(CLI::IsMember({"default", "sinusoidal", "rotary", "learned", "none"}));
  app.add_option("--d-model", o.d_model, "model width")->check(at_least(1));
  app.add_option("--layers", o.layers, "residual blocks")->check(at_least(1));
  app.add_option("--state", o.state, "SSM state size N (S4, S4D, DSS, DLR)")->check(at_least(1));
  app.add_option("--heads", o.heads, "attention heads")->check(at_least(1));
  app.add_option("--batch", o.batch, h.batch)->check(at_least(1));
  app.add_option("--lr", o.lr, h.lr)->check(positive());
  app.add_option("--ssm-lr", o.ssm_lr, s + "learning rate of the SSM dynamics A, B, P, Lambda (no weight decay; 0: "
                                           "frozen); dt is not in this group, it follows --dt-lr (default: " +
                                           h.stage_lr + ", no decay, as the reference)")
      ->check(at_least(0));
  app.add_option("--wd,--weight-decay", o.wd, "AdamW weight decay")->check(at_least(0));
  app.add_option("--dt-lr", o.dt_lr, s + "S4/S4D: learning rate of log_dt, no weight decay (default: " + h.stage_lr +
                                         ", as the reference's dt: null; equal to --ssm-lr: with the dynamics)")
      ->check(at_least(0));
  app.add_flag("--decay-norms-biases", o.decay_norms_biases, "decay biases and norm scales at --wd too (as the "
                                                             "reference)");
  app.add_option("--dropout", o.dropout, "residual dropout")->check(probability());
  app.add_option("--layer-dropout", o.layer_dropout, "SSM blocks: dropout inside the SSM layer, after its "
                                                     "activation (the reference S4 layer's), in [0, 1); the "
                                                     "Transformer has none")
      ->check(probability());
  app.add_flag("--tie-dropout", o.tie_dropout, "SSM blocks: one dropout mask per (batch, channel), shared by every "
                                               "step of the sequence, for --dropout and --layer-dropout (the "
                                               "reference's tie_dropout); the Transformer has per-element masks");
  app.add_option("--warmup", o.warmup, "linear warmup updates")->check(at_least(0));
  app.add_option("--schedule", o.schedule, "constant or cosine after warmup")
      ->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--mask-p", o.mask_p, s + "masking ratio of self-pretraining, in (0, 1) (default: " +
                                           h.mask_p_default + ")")
      ->check(probability());
  app.add_option("--spt-loss", o.spt_loss, s + "pixel SPT loss: l1 (normalized value) or ce (256 intensities) "
                                               "(default: " + h.spt_loss_default + ")")
      ->check(CLI::IsMember({"l1", "ce"}));
  app.add_option("--pool", o.pool, "classifier pooling: mean, max or last")->check(CLI::IsMember({"mean", "max", "last"}));
  app.add_option("--clip", o.clip, "gradient clipping by global norm (0: off)")->check(at_least(0));
  app.add_option("--seed", o.seed, "seed of initialization, data order, masks and dropout");
  app.add_option("--log-every", o.log_every, "updates between progress lines (0: none)")->check(at_least(0));
  app.add_option("--save-every", o.save_every, "updates between resumable checkpoints (besides epoch ends; 0: only "
                                               "those)")
      ->check(at_least(0));
  app.add_flag("--resume", o.resume, h.resume);
  app.add_option("--allow-changed", o.allow_changed, allow_changed_help)->delimiter(',');
  app.add_option("--augment", o.augment, s + h.augment_of + ": none, or a list of translate=T (pad and crop back, "
                                             "shifts up to T pixels), flip[=P] (horizontal, probability P, 0.5 by "
                                             "default), cutout=S (a black S x S square), e.g. translate=2,flip; or a named policy, "
                                             "lra2025-image or lra2025-pathfinder (Miralles-Gonzalez et al. 2025's "
                                             "image and Pathfinder augmentations, docs/usage.md)")
      ->check(augment_spec());
  app.add_option("--joint-weight", o.joint_weight, h.joint_weight)->check(positive());
  app.add_option("--joint-scheme", o.joint_scheme, "the joint objective's variant: longseq (the classifier reads the "
                                                   "clean batch, denoising loss at the masked positions) or lra2025 "
                                                   "(Miralles-Gonzalez et al. 2025: weight 1, p = 0.3, a third of the "
                                                   "masked positions random, the classifier on the corrupted batch, "
                                                   "denoising loss at every position; excludes --mask-p and "
                                                   "--joint-weight)")
      ->check(CLI::IsMember({"longseq", "lra2025"}));
}

// --joint-scheme lra2025 sets the weight and the joint objective's masking ratio itself: a flag among `fixed` given
// too would be overridden, so it is refused instead.
inline void check_joint_scheme(const CLI::App& app, const CommonOptions& o, std::initializer_list<const char*> fixed) {
  if (o.joint_scheme == "longseq") return;
  for (const char* flag : fixed)
    LONGSEQ_CHECK(app.count(flag) == 0, "--joint-scheme ", o.joint_scheme, " sets the joint objective's masking "
                  "ratio and denoising weight itself; leave out ", flag, " (or use --joint-scheme longseq)");
}

// The joint objective's denoising weight and masking ratio once --joint-scheme is applied (for messages).
inline std::pair<double, double> joint_weight_and_p(const CommonOptions& o) {
  longseq::train::TaskOptions t;
  t.joint_weight = o.joint_weight;
  t.mask.p = o.mask_p;
  longseq::train::set_joint_scheme(t, o.joint_scheme);
  return {t.joint_weight, t.mask.p};
}

// The optimizer's groups at a stage's learning rate: SSM dynamics at --ssm-lr without decay, dt at --dt-lr
// (the stage's lr unless given), biases and norm scales decayed only with --decay-norms-biases.
inline longseq::train::AdamWConfig adamw_config(const CommonOptions& o, double lr) {
  return {.lr = lr, .weight_decay = o.wd, .no_decay_weight_decay = o.decay_norms_biases ? o.wd : 0.0,
          .ssm_lr = o.ssm_lr, .ssm_weight_decay = 0.0, .dt_lr = o.dt_lr, .dt_weight_decay = 0.0};
}

}  // namespace examples
