// One training stage of either trainer: the model built from its configuration on its device, its
// parameters drawn (as its float host twin's), optionally started from a checkpoint, then AdamW, the task over
// the data splits, the schedule and train::fit. What differs between the trainers and their stages (where the
// checkpoints go, what the metadata records, the messages, early stopping, masks by split) comes in a
// StageSettings; the common options give the rest.
#pragma once
#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include <longseq/core/parameters.hpp>
#include <longseq/data/augment.hpp>
#include <longseq/data/augment_listops.hpp>
#include <longseq/data/tasks.hpp>
#include <longseq/train/distributed.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/optimizer.hpp>
#include <longseq/train/tasks.hpp>
#include <longseq/train/transfer.hpp>

#include "common_options.hpp"
#include "device_option.hpp"
#include "dispatch.hpp"
#include "run_dir.hpp"

namespace examples {

// What a stage adds to the common options.
struct StageSettings {
  std::string run;  // names the stage in the progress lines and the metrics (train::FitConfig::run)
  longseq::train::Objective objective = longseq::train::Objective::classify;
  longseq::train::Select select = longseq::train::Select::accuracy;
  double lr = 0;
  longseq::index_t epochs = 1;
  longseq::index_t max_steps = 0;       // 0: no limit
  longseq::index_t schedule_steps = 0;  // cosine decay length; 0: the stage's length
  longseq::index_t patience = 0;        // early stopping (0: off)
  longseq::train::TestEval test_eval = longseq::train::TestEval::on_improvement;
  longseq::train::MaskStreams streams = longseq::train::MaskStreams::by_example;
  std::string checkpoint_dir;
  bool resume_required = false;  // with --resume: a missing last.safetensors is an error
  longseq::train::MetricsLog* log = nullptr;
  nlohmann::json config;         // what shapes the numbers: checkpoint metadata a resume compares
  std::string transfer_from;     // checkpoint whose tensors start the model ("": none)
  longseq::data::ListOpsIds shuffle_operands{};  // ListOps training batches: operands reordered (empty: off)
  std::string stopped_prefix;    // begins the message of an interruption
  std::function<void(longseq::index_t parameters)> announce;                // after init, if set
  std::function<void(const longseq::train::TransferReport&)> transferred;  // after the transfer, if set
};

// Trains model Net (built from `config`) on `d`; HostNet is its float host twin, built from host_config(),
// whose init every device and precision starts from. A stop by SIGTERM / SIGINT becomes examples::Interrupted.
template <class Net, class HostNet, class MakeHostConfig, longseq::train::Communicator C>
longseq::train::FitResult run_stage(const typename Net::Config& config, MakeHostConfig&& host_config,
                                    const CommonOptions& o, const longseq::data::Splits& d, const StageSettings& s,
                                    C& comm) {
  namespace train = longseq::train;
  using T = typename Net::value_type;
  using D = typename Net::device_type;
  Net model(config);
  longseq::ParamStore<T, D> store;
  store.bind(model);
  // The paper's ablation (--init random) redraws the whole model; random-mixer did so in the mixers' init.
  init_model<HostNet>(model, store, o.seed, o.init == "random", host_config);
  if (s.announce) s.announce(store.count());
  if (!s.transfer_from.empty()) {
    // Every rank reads the checkpoint (fit broadcasts rank 0's parameters anyway).
    const train::TransferReport rep = train::transfer<T>(s.transfer_from, store);
    if (s.transferred) s.transferred(rep);
  }
  train::AdamW<T, D> opt(store, adamw_config(o, s.lr));
  train::TaskOptions to{.objective = s.objective, .batch = o.batch, .seed = o.seed};
  to.mask.p = o.mask_p;
  to.streams = s.streams;
  if (s.objective == train::Objective::joint) {
    to.joint_weight = o.joint_weight;
    train::set_joint_scheme(to, o.joint_scheme);  // lra2025 replaces the weight and the mask (checked in main)
  }
  to.augment = longseq::data::parse_augment(o.augment);
  to.shuffle_operands = s.shuffle_operands;
  train::DatasetTask<T> task(d, to);
  longseq::index_t total = s.epochs * task.num_batches(train::Split::train, 0);
  if (s.max_steps > 0) total = std::min(total, s.max_steps);
  // The paper's cosine schedules decay over a fixed number of updates, not over the run's length.
  const train::Schedule schedule{train::Schedule::parse(o.schedule), o.warmup,
                                 s.schedule_steps > 0 ? s.schedule_steps : total, 0.0};
  train::FitConfig fc;
  fc.run = s.run;
  fc.epochs = s.epochs;
  fc.max_steps = s.max_steps;
  fc.clip = o.clip;
  fc.select = s.select;
  fc.loss_scale.initial = initial_loss_scale(o.loss_scale, o.precision);
  fc.patience = s.patience;
  fc.test_eval = s.test_eval;
  fc.checkpoint_dir = s.checkpoint_dir;
  fc.save_every = o.save_every;
  fc.resume = o.resume;
  fc.resume_required = s.resume_required;
  fc.allow_changed = allowed_changes(o.allow_changed);
  fc.stop_on_signal = true;
  fc.seed = o.seed;
  fc.log_every = o.log_every;
  fc.log = s.log;
  fc.metadata["config"] = s.config.dump();
  if constexpr (D::is_gpu && requires { comm.use_gpu(); }) comm.use_gpu();  // NCCL between the ranks' GPUs
  train::FitResult r = train::fit(model, store, opt, schedule, task, fc, comm);
  if (r.signal != 0)
    throw Interrupted(r.signal, s.stopped_prefix + "step " + std::to_string(r.steps) + ", checkpoint " + r.last_path);
  return r;
}

// One process.
template <class Net, class HostNet, class MakeHostConfig>
longseq::train::FitResult run_stage(const typename Net::Config& config, MakeHostConfig&& host_config,
                                    const CommonOptions& o, const longseq::data::Splits& d, const StageSettings& s) {
  longseq::train::SingleProcess one;
  return run_stage<Net, HostNet>(config, std::forward<MakeHostConfig>(host_config), o, d, s, one);
}

}  // namespace examples
