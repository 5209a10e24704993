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

#include "common_options.hpp"

namespace spt {

using longseq::index_t;

// The common options (examples::CommonOptions) at this program's defaults, and the ones only it has.
struct Options : examples::CommonOptions {
  std::vector<std::string> models{"s4d", "transformer"};
  std::string mode = "both";
  index_t train_subset = 1000, val_subset = 200, test_subset = 500;
  index_t pretrain_epochs = 3, finetune_epochs = 3;
  double pretrain_lr = 5e-3;
  Options() {
    data = "/usr/share/datasets/fashion-mnist";
    out = "spt_vs_scratch_out";
    init = "structured";
    batch = 32;
    lr = 5e-3;
    warmup = 20;
    mask_p = 0.5;
    spt_loss = "l1";
    seed = 2222;
    save_every = 20;
    joint_weight = 0;  // no joint arm
  }
  // The joint arm: --joint-weight, or --joint-scheme lra2025 (weight 1).
  bool joint() const { return joint_weight > 0 || joint_scheme != "longseq"; }
};

inline constexpr examples::CommonHelp common_help{
    .data = "folder with the Fashion-MNIST IDX files (Debian: dataset-fashion-mnist)",
    .results = "results.json and the checkpoints, a folder per model and stage",
    .own_init = "structured",
    .stage_lr = "the stage's lr",
    .lr = "learning rate of training from scratch, fine-tuning and the joint arm",
    .batch = "batch size",
    .gpu_extra = "",
    .mask_p_default = "0.5",
    .spt_loss_default = "l1",
    .augment_of = "image augmentations of every arm's training batches",
    .joint_weight = "adds a third arm per model: supervised training plus this weight x masked denoising of the "
                    "same batch (the joint objective, same epochs and lr as scratch; > 0)",
    .resume = "continue an interrupted run (same options) from its last checkpoints"};

// The flags, each with its range check (a bad value is refused before any work).
inline void add_options(CLI::App& app, Options& o) {
  using examples::at_least;
  examples::add_common_options(app, o, common_help);
  app.add_option("--models", o.models, "models to compare: s4, s4d, dss, dlr, conv, transformer")->delimiter(',');
  app.add_option("--mode", o.mode, "both, scratch (only the baseline) or spt (only pretraining + fine-tuning)")
      ->check(CLI::IsMember({"both", "scratch", "spt"}));
  app.add_option("--train-subset", o.train_subset, "training images used (0: all 54000)")->check(at_least(0));
  app.add_option("--val-subset", o.val_subset, "validation images used (0: all 6000)")->check(at_least(0));
  app.add_option("--test-subset", o.test_subset, "test images used (0: all 10000)")->check(at_least(0));
  app.add_option("--pretrain-epochs", o.pretrain_epochs, "self-pretraining epochs")->check(at_least(1));
  app.add_option("--finetune-epochs", o.finetune_epochs, "epochs of fine-tuning and of training from scratch")
      ->check(at_least(1));
  app.add_option("--pretrain-lr", o.pretrain_lr, "learning rate of self-pretraining")->check(examples::positive());
}

// --resume: an interrupted run has a checkpoint of its first stage. A folder without any checkpoint holds no
// run to resume (a run killed before its first save): say so and start one (o.resume becomes false); anything
// else is refused.
inline void check_resume(Options& o) {
  namespace fs = std::filesystem;
  if (!o.resume || o.models.empty()) return;
  const fs::path first = fs::path(o.out) / o.models.front() / (o.mode == "spt" ? "spt" : "scratch") /
                         "last.safetensors";
  bool any = false;
  for (const auto& e : fs::recursive_directory_iterator(o.out)) any = any || e.path().extension() == ".safetensors";
  LONGSEQ_CHECK(fs::exists(first) || !any, "--resume: '", first.string(), "' does not exist, but '", o.out,
                "' holds checkpoints of another run (other --models or --mode?); resume with the options it "
                "was started with, or start without --resume");
  if (!any) {
    std::fprintf(stderr, "[spt_vs_scratch] --resume: '%s' holds no checkpoint yet, starting a new run\n",
                 o.out.c_str());
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
  if (joint) {
    const auto [w, p] = examples::joint_weight_and_p(o);
    std::printf("joint (%s): supervised + %g x masked denoising (p = %.2f, %s) on the same batch, %ld epochs at the "
                "scratch lr; gain is joint - scratch.\n",
                o.joint_scheme.c_str(), w, p, o.spt_loss.c_str(), long(o.finetune_epochs));
  }
  if (o.augment != "none") std::printf("training batches augmented: %s\n", o.augment.c_str());
  std::printf("results: %s, metrics: %s (total %.0fs)\n", (fs::path(o.out) / "results.json").string().c_str(),
              (fs::path(o.out) / "metrics.jsonl").string().c_str(), total);
}

}  // namespace spt
