// spt_vs_scratch's settings: its options and their flags, what --resume finds in --out, and the printed table.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <longseq/core/error.hpp>
#include <longseq/core/shape.hpp>
#include <longseq/data/augment.hpp>

#include "device_option.hpp"
#include "options.hpp"
#include "run_dir.hpp"

namespace spt {

using longseq::index_t;

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
  double layer_dropout = 0.0;       // SSM models: dropout inside the SSM layer, after its activation
  bool tie_dropout = false;         // SSM models: one mask per (batch, channel), shared over the sequence
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
  double joint_weight = 0;       // > 0: a third arm per model, supervised + this x masked denoising
  std::string augment = "none";  // image augmentations of every arm's training batches (data::parse_augment)
  bool joint() const { return joint_weight > 0; }
};

// The flags, each with its range check (a bad value is refused before any work).
inline void add_options(CLI::App& app, Options& o) {
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
                                           "Table 2 Transformers), learned (a table added by the encoder) or none")
      ->check(CLI::IsMember({"default", "sinusoidal", "rotary", "learned", "none"}));
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
  app.add_option("--ssm-lr", o.ssm_lr, "learning rate of the SSM dynamics A, B, P, Lambda (no weight decay; 0: "
                                     "frozen); dt is not in this group, it follows --dt-lr (default: the stage's lr, "
                                     "no decay, as the reference)")
      ->check(at_least(0));
  app.add_option("--weight-decay,--wd", o.weight_decay, "AdamW weight decay")->check(at_least(0));
  app.add_option("--dt-lr", o.dt_lr, "S4/S4D: learning rate of log_dt, no weight decay (default: the stage's "
                                     "lr, as the reference's dt: null; equal to --ssm-lr: with the dynamics)")
      ->check(at_least(0));
  app.add_flag("--decay-norms-biases", o.decay_norms_biases, "decay biases and norm scales at --weight-decay too "
                                                             "(as the reference)");
  app.add_option("--dropout", o.dropout, "residual dropout")->check(examples::probability());
  app.add_option("--layer-dropout", o.layer_dropout, "SSM models: dropout inside the SSM layer, after its activation "
                                                     "(the reference S4 layer's), in [0, 1); the Transformer has none")
      ->check(examples::probability());
  app.add_flag("--tie-dropout", o.tie_dropout, "SSM models: one dropout mask per (batch, channel), shared by every "
                                               "step of the sequence, for --dropout and --layer-dropout (the "
                                               "reference's tie_dropout); the Transformer keeps per-element masks");
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
  app.add_option("--joint-weight", o.joint_weight, "adds a third arm per model: supervised training plus this "
                                                   "weight x masked denoising of the same batch (the joint "
                                                   "objective, same epochs and lr as scratch; > 0)")
      ->check(examples::positive());
  app.add_option("--augment", o.augment, "image augmentations of every arm's training batches: none, or a list "
                                         "of translate=T (pad and crop back, shifts up to T pixels), flip[=P] "
                                         "(horizontal, probability P, 0.5 by default), cutout=S (a black S x S "
                                         "square), e.g. translate=2,flip")
      ->check(examples::augment_spec());
}

// --resume: an interrupted run has a checkpoint of its first stage. A folder without any checkpoint holds no
// run to resume (a run killed before its first save): say so and start one (o.resume becomes false); anything
// else is refused.
inline void check_resume(Options& o) {
  namespace fs = std::filesystem;
  if (!o.resume || o.models.empty()) return;
  const fs::path first = fs::path(o.out_dir) / o.models.front() / (o.mode == "spt" ? "spt" : "scratch") /
                         "last.safetensors";
  bool any = false;
  for (const auto& e : fs::recursive_directory_iterator(o.out_dir)) any = any || e.path().extension() == ".safetensors";
  LONGSEQ_CHECK(fs::exists(first) || !any, "--resume: '", first.string(), "' does not exist, but '", o.out_dir,
                "' holds checkpoints of another run (other --models or --mode?); resume with the options it "
                "was started with, or start without --resume");
  if (!any) {
    std::fprintf(stderr, "[spt_vs_scratch] --resume: '%s' holds no checkpoint yet, starting a new run\n",
                 o.out_dir.c_str());
    o.resume = false;
  }
}

// One model's results: test accuracy at the best validation epoch of each stage, and its times.
struct StageResult {
  double test_acc = 0, val_acc = 0, test_loss = 0, val_loss = 0, seconds = 0, cpu_seconds = 0;
  index_t steps = 0, best_epoch = -1;
  nlohmann::json json() const {
    return {{"test_acc", test_acc}, {"val_acc", val_acc}, {"test_loss", test_loss}, {"val_loss", val_loss},
            {"seconds", seconds}, {"cpu_seconds", cpu_seconds}, {"steps", steps}, {"best_epoch", best_epoch}};
  }
};
struct Row {
  std::string model;
  StageResult scratch, spt, ft, joint;
};

// The comparison as a Markdown table, then where the results went.
inline void print_table(const Options& o, const std::vector<Row>& rows, index_t train_images, double total) {
  namespace fs = std::filesystem;
  std::printf("\nSequential Fashion-MNIST (784 steps), %ld train images, seed %llu: test accuracy at the best "
              "validation epoch\n",
              long(train_images), static_cast<unsigned long long>(o.seed));
  // The joint arm's columns only when it ran (the default table is unchanged).
  const bool joint = o.joint();
  std::printf("| model       | scratch acc | SPT + FT acc |  gain  |%s scratch time | SPT time  | FT time   |%s\n",
              joint ? " joint acc | joint gain |" : "", joint ? " joint time |" : "");
  std::printf("|-------------|-------------|--------------|--------|%s--------------|-----------|-----------|%s\n",
              joint ? "-----------|------------|" : "", joint ? "------------|" : "");
  // A stage that --mode skipped prints as "-".
  const bool with_scratch = o.mode != "spt", with_spt = o.mode != "scratch";
  auto cell = [](bool ran, const char* fmt, double v) {
    char buf[32];
    if (ran) std::snprintf(buf, sizeof buf, fmt, v); else std::snprintf(buf, sizeof buf, "-");
    return std::string(buf);
  };
  for (const auto& r : rows) {
    std::string joint_cells, joint_time;
    if (joint) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %10s |", cell(true, "%.0fs", r.joint.seconds).c_str());
      joint_time = buf;
      std::snprintf(buf, sizeof buf, " %9s | %10s |", cell(true, "%.2f%%", 100 * r.joint.test_acc).c_str(),
                    cell(with_scratch, "%+.2f", 100 * (r.joint.test_acc - r.scratch.test_acc)).c_str());
      joint_cells = buf;
    }
    std::printf("| %-11s | %11s | %12s | %6s |%s %12s | %9s | %9s |%s\n", r.model.c_str(),
                cell(with_scratch, "%.2f%%", 100 * r.scratch.test_acc).c_str(),
                cell(with_spt, "%.2f%%", 100 * r.ft.test_acc).c_str(),
                cell(with_scratch && with_spt, "%+.2f", 100 * (r.ft.test_acc - r.scratch.test_acc)).c_str(),
                joint_cells.c_str(), cell(with_scratch, "%.0fs", r.scratch.seconds).c_str(),
                cell(with_spt, "%.0fs", r.spt.seconds).c_str(), cell(with_spt, "%.0fs", r.ft.seconds).c_str(),
                joint_time.c_str());
  }
  double cpu = 0;
  for (const auto& r : rows) cpu += r.scratch.cpu_seconds + r.spt.cpu_seconds + r.ft.cpu_seconds + r.joint.cpu_seconds;
  std::printf("times are wall clock; CPU time of all stages: %.0fs. Same fine-tuning budget (%ld epochs) for "
              "scratch and SPT + FT; SPT: %ld epochs of masked denoising (p = %.2f, %s).\n",
              cpu, long(o.finetune_epochs), long(o.pretrain_epochs), o.mask_p, o.spt_loss.c_str());
  if (joint)
    std::printf("joint: supervised + %g x masked denoising (p = %.2f, %s) on the same batch, %ld epochs at the "
                "scratch lr; gain is joint - scratch.\n",
                o.joint_weight, o.mask_p, o.spt_loss.c_str(), long(o.finetune_epochs));
  if (o.augment != "none") std::printf("training batches augmented: %s\n", o.augment.c_str());
  std::printf("results: %s, metrics: %s (total %.0fs)\n", (fs::path(o.out_dir) / "results.json").string().c_str(),
              (fs::path(o.out_dir) / "metrics.jsonl").string().c_str(), total);
}

}  // namespace spt
