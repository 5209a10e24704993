// train::fit: the training loop. Each epoch trains on the task's batches (gradient accumulation,
// clipping, AdamW with a schedule), then evaluates validation and test; the best validation epoch is
// checkpointed, early stopping watches it, and `last.safetensors` lets an interrupted run resume to the
// same numbers. A NaN/Inf loss or gradient stops with an error; checkpoints already written stay intact.
// With dynamic loss scaling on (FitConfig::loss_scale), a non-finite gradient instead skips that update
// and lowers the scale; only a scale that would fall below its minimum stops the run.
// Data parallel: given a Communicator, every rank computes its shard of each global batch, gradients and
// metrics are summed over ranks, and only rank 0 writes checkpoints, logs and progress.
// One loop for every device policy: with a CUDA model (its device ParamStore, AdamW<T, device::cuda> and the
// DeviceLossScaler) batches are staged through pinned memory (train::BatchStage, the next one while the
// current one trains) and the update is decided on the device (train::apply_update); the loop reads the
// update's outcome only when it needs it (loss scaling on: whether the step was taken; otherwise at the log
// interval, checkpoints and epoch ends). Loss statistics likewise stay where the model computed them: each
// batch's go into a train::RunningStats on the model's device, read at the log interval, checkpoints and
// epoch ends (a non-finite loss on the device is therefore reported there, naming its batch; the host still
// stops before that batch's backward). The pieces: BatchStage, RunningStats, UpdateLog (logging),
// Checkpoints, EarlyStopping; fit() strings them together.
// The joint objective: a task that also gives each training batch a masked copy with denoising targets
// (train::JointTask, with a weight > 0) gets a second forward and backward per batch on that copy, its
// gradients scaled by the weight and added to the supervised ones; validation and test stay supervised, and
// the logs carry the denoising loss beside the supervised one.
#pragma once
#include <chrono>
#include <cmath>
#include <ctime>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "../heads/head.hpp"
#include "../models/model.hpp"
#include "adamw.hpp"
#include "checkpoint.hpp"
#include "clip.hpp"
#include "device_batch.hpp"
#include "distributed.hpp"
#include "loss_scale.hpp"
#include "metrics.hpp"
#include "resume.hpp"
#include "running_stats.hpp"
#include "schedule.hpp"
#include "step.hpp"
#include "signals.hpp"
#include "staging.hpp"

namespace longseq::train {

// A task feeds the loop: how many batches a split has in an epoch, and for batch i the model inputs,
// the targets and the number of tokens (for throughput). Batch contents must depend only on
// (split, epoch, i) so that a resumed run sees the same data.
template <class K, class T>
concept Task = requires(K& k, Split s, index_t epoch, index_t i) {
  { k.num_batches(s, epoch) } -> std::convertible_to<index_t>;
  k.load(s, epoch, i);
  { k.inputs() } -> std::convertible_to<models::Inputs<T>>;
  { k.targets() } -> std::convertible_to<heads::Targets<T>>;
  { k.tokens() } -> std::convertible_to<index_t>;
};

// A task that can run data parallel: after set_shard(rank, ranks), load() fills only this rank's share
// of each global batch (train::shard over examples; a retrieval pair stays on one rank, so its two
// documents keep their [first B, second B] row layout). Batch counts stay those of the global batches.
template <class K>
concept ShardableTask = requires(K& k, int rank, int ranks) { k.set_shard(rank, ranks); };

// A task that can train the joint objective: after load(), the masked copy of the training batch and its
// denoising targets, and the weight of the denoising loss (0: this task runs no second pass). A second
// load() of the batch just loaded should be cheap (the second pass's stage asks for it again).
template <class K, class T>
concept JointTask = Task<K, T> && requires(K& k) {
  { k.joint_weight() } -> std::convertible_to<double>;
  { k.denoise_inputs() } -> std::convertible_to<models::Inputs<T>>;
  { k.denoise_targets() } -> std::convertible_to<heads::Targets<T>>;
};

// Which validation number picks the best checkpoint: accuracy (higher is better) or loss (lower).
enum class Select { accuracy, loss };
// When the test split is evaluated: every epoch, only in epochs that improve on validation (the number
// reported is the test metric at the best validation epoch either way), or never.
enum class TestEval { every_epoch, on_improvement, never };

struct FitConfig {
  std::string run = "run";
  index_t epochs = 1;
  index_t max_steps = 0;       // stop after this many updates in total (0: no limit)
  index_t accum = 1;           // micro-batches per update
  double clip = 0;             // global gradient-norm clipping (0: off)
  Select select = Select::accuracy;
  index_t patience = 0;        // stop after this many epochs without a better validation metric (0: off)
  TestEval test_eval = TestEval::every_epoch;
  std::string checkpoint_dir;  // empty: no checkpoints; otherwise last.safetensors and best.safetensors
  index_t save_every = 0;      // also write last.safetensors every this many updates (0: at epoch ends only)
  bool resume = false;         // continue from checkpoint_dir/last.safetensors when it exists
  bool resume_required = false;  // with resume: a missing last.safetensors is an error, not a fresh start
  std::set<std::string> allow_changed;  // metadata["config"] keys a resume may change ("all": any)
  bool stop_on_signal = false;  // SIGTERM/SIGINT (StopOnSignal) end the run with a resumable checkpoint
  index_t stop_after = 0;      // return (as if interrupted) after this many updates in this call; 0: off
  std::uint64_t seed = 0;      // keys dropout and the run's generator
  LossScaleConfig loss_scale{};  // dynamic loss scaling (initial 0: off)
  index_t log_every = 50;
  bool progress = true;
  std::map<std::string, std::string> metadata;  // stored in every checkpoint (e.g. "config")
  MetricsLog* log = nullptr;
};

struct EpochRecord {
  index_t epoch = 0, step = 0;
  heads::LossStats train, val, test;
  heads::LossStats denoise;  // joint objective: the training batches' denoising loss
  bool tested = false, joint = false;
  double seconds = 0;
};

struct FitResult {
  bool interrupted = false, early_stopped = false;
  int signal = 0;  // the signal that interrupted the run (stop_on_signal), else 0
  index_t steps = 0, best_epoch = -1;  // steps: optimizer updates taken (skipped ones not counted)
  index_t resumed_from = -1;  // step of the checkpoint a resumed run started from
  double best_metric = 0;
  double best_val_loss = 0, best_val_acc = 0, best_test_loss = 0, best_test_acc = 0;
  double loss_scale = 0;  // final loss scale (0: scaling off)
  index_t skipped = 0;    // updates skipped for non-finite scaled gradients, over the whole run (resumes included)
  std::vector<EpochRecord> history;
  double seconds = 0;
  double cpu_seconds = 0;  // process CPU time (all threads) spent in this call
  std::string best_path, last_path;
};

// The loss scaler of a device policy: LossScaler on the host, DeviceLossScaler (state on the device) on CUDA.
template <class D>
struct scaler_for {
  using type = LossScaler;
};
#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
template <>
struct scaler_for<device::cuda> {
  using type = DeviceLossScaler;
};
#endif
template <class D>
using scaler_for_t = typename scaler_for<D>::type;

// Sums a split's loss statistics over its batches in evaluation mode. The stage carries the batches to the
// model's device (on the host it is the task's own views); the sums stay there until the end (one read).
template <class M, class K>
heads::LossStats evaluate(M& model, K& task, Split split, index_t epoch, Context<typename M::device_type>& ctx,
                          typename M::Saved& saved, BatchStage<typename M::value_type, typename M::device_type>& stage) {
  using D = typename M::device_type;
  const bool was = ctx.training;
  ctx.training = false;
  RunningStats<D> totals;
  heads::BatchStats<D> batch_stats;
  const index_t nb = task.num_batches(split, epoch);
  for (index_t i = 0; i < nb; ++i) {
    const auto& b = stage.get(ctx, task, {split, epoch, i});
    if (b.empty) continue;
    heads::forward_stats(model, ctx, b.inputs, b.targets, saved, batch_stats);
    totals.add(ctx, batch_stats, i);
  }
  ctx.training = was;
  return totals.read(ctx).total;
}
template <class M, class K>
heads::LossStats evaluate(M& model, K& task, Split split, index_t epoch, Context<typename M::device_type>& ctx,
                          typename M::Saved& saved) {
  BatchStage<typename M::value_type, typename M::device_type> stage;
  return evaluate(model, task, split, epoch, ctx, saved, stage);
}

namespace detail {
inline nlohmann::json stats_json(const heads::LossStats& s) {
  return {{"loss", s.loss}, {"accuracy", s.accuracy()}, {"count", s.count}, {"r2", s.r2()}};
}
// The second pass of a joint task over the same batch, seen by a BatchStage as a task of its own.
template <class K>
struct DenoisingPart {
  K& task;
  void load(Split s, index_t epoch, index_t i) { task.load(s, epoch, i); }
  auto inputs() const { return task.denoise_inputs(); }
  auto targets() const { return task.denoise_targets(); }
  index_t tokens() const { return index_t(task.tokens()); }
  bool empty() const { return shard_empty(task); }
};
// Dropout key of one micro-batch: distinct per (seed, update, micro-batch), reproducible on resume.
inline std::uint64_t step_seed(std::uint64_t seed, index_t step, index_t micro, int rank = 0) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + std::uint64_t(step) * 0xBF58476D1CE4E5B9ull + std::uint64_t(micro);
  x ^= x >> 31;
  return x ^ (std::uint64_t(rank) * 0xD1B54A32D192ED03ull);  // rank 0 keeps the single-process key
}

// The update after an accumulated group. On the host its outcome is known at once. On CUDA it is decided on
// the device; with loss scaling on the loop must know now whether the step was taken (the schedule, the
// dropout key and the step count depend on it), so the outcome is read (a few bytes in pinned memory); with
// scaling off an update is never skipped, and the outcome stays pending until logging or a checkpoint.
template <class O, class S>
UpdateResult run_update(O& opt, S& scaler, double clip, double factor) {
  if constexpr (O::device_type::is_gpu) {
    apply_update(opt, scaler, clip, factor);
    if (scaler.enabled()) return scaler.last();
    UpdateResult r;
    r.pending = true;
    return r;
  } else {
    return apply_update(opt, scaler, clip, factor);
  }
}
// Whether an update the device decided (and the loop did not read) found gradients nothing could absorb.
template <class S>
bool pending_failed(S& scaler) {
  if constexpr (requires { scaler.last(); }) return scaler.last().status == UpdateStatus::nonfinite;
  else return false;
}
// An update's outcome, read from the device when the loop left it pending.
template <class S>
UpdateResult settled(S& scaler, const UpdateResult& r) {
  if constexpr (requires { scaler.last(); })
    if (r.pending) return scaler.last();
  return r;
}
// The scale of the next backward: 1 without scaling (a device scaler is then not read at all).
template <class S>
double backward_loss_scale(S& scaler) {
  return scaler.enabled() ? scaler.scale() : 1.0;
}
}  // namespace detail

// Logging: the loss, tokens and time of the updates since the last report; a progress line and a "step"
// record every log_every updates (and at the last one), a "loss_scale" record for each skipped update.
struct UpdateLog {
  double tokens = 0, loss = 0, n = 0;
  double denoise = 0;   // joint objective: the denoising losses' sum over the window
  bool joint = false;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();

  void add(double batch_tokens, double batch_loss) {
    tokens += batch_tokens;
    loss += batch_loss;
    n += 1;
  }
  // A batch whose loss stays in a RunningStats window until the report (set `loss` from it then).
  void add_deferred(double batch_tokens) {
    tokens += batch_tokens;
    n += 1;
  }
  bool due(const FitConfig& cfg, index_t step, index_t total) const {
    return cfg.log_every > 0 && (step % cfg.log_every == 0 || step == total);
  }
  // The window summed over ranks (every rank calls this at the same update).
  template <Communicator C>
  void reduce(C& comm) {
    if (comm.size() <= 1) return;
    double v[4] = {loss, n, tokens, denoise};
    comm.allreduce_sum(v, joint ? 4 : 3);
    loss = v[0];
    n = v[1];
    tokens = v[2];
    denoise = v[3];
  }
  // eta_s: < 0 when unknown; grad_norm and loss_scale (0: off) of the update being reported.
  void report(const FitConfig& cfg, bool root, Progress& progress, index_t step, index_t epoch, index_t total,
              double lr, double grad_norm, double loss_scale, double eta_s, double elapsed_s) {
    const double dt = std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
    const double mean = loss / std::max(1.0, n);
    progress.line(cfg.run, long(step), long(total), mean, lr, tokens / dt, eta_s);
    if (cfg.log && root) {
      nlohmann::json j{{"event", "step"}, {"run", cfg.run}, {"step", step}, {"epoch", epoch},
                       {"loss", mean}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens_per_s", tokens / dt},
                       {"elapsed_s", elapsed_s}};
      if (loss_scale != 0) j["loss_scale"] = loss_scale;
      if (joint) j["denoise_loss"] = denoise / std::max(1.0, n);
      cfg.log->write(j);
    }
    tokens = loss = n = denoise = 0;
    since = std::chrono::steady_clock::now();
  }
  static void skipped(const FitConfig& cfg, bool root, Progress& progress, index_t step, index_t epoch,
                      double used_scale, double scale, index_t skipped, double elapsed_s) {
    progress.flush();
    if (cfg.progress && root)
      std::fprintf(stderr, "[%s] step %ld: non-finite gradient at loss scale %g, update skipped; scale now %g (%ld skipped)\n",
                   cfg.run.c_str(), long(step), used_scale, scale, long(skipped));
    if (cfg.log && root)
      cfg.log->write({{"event", "loss_scale"}, {"run", cfg.run}, {"step", step}, {"epoch", epoch},
                      {"scale", scale}, {"skipped", skipped}, {"elapsed_s", elapsed_s}});
  }
  static void epoch(const FitConfig& cfg, bool root, const EpochRecord& rec, bool better, double elapsed_s) {
    if (cfg.progress && root) {
      std::fprintf(stderr, "[%s] epoch %ld: train loss %.4f acc %.4f | val loss %.4f acc %.4f", cfg.run.c_str(),
                   long(rec.epoch), rec.train.loss, rec.train.accuracy(), rec.val.loss, rec.val.accuracy());
      if (rec.tested) std::fprintf(stderr, " | test loss %.4f acc %.4f", rec.test.loss, rec.test.accuracy());
      if (rec.joint) std::fprintf(stderr, " | denoise loss %.4f", rec.denoise.loss);
      std::fprintf(stderr, "%s (%.0fs)\n", better ? "  (best)" : "", rec.seconds);
    }
    if (cfg.log && root) {
      nlohmann::json j{{"event", "epoch"}, {"run", cfg.run}, {"epoch", rec.epoch}, {"step", rec.step},
                       {"train", detail::stats_json(rec.train)}, {"val", detail::stats_json(rec.val)},
                       {"best", better}, {"seconds", rec.seconds}, {"elapsed_s", elapsed_s}};
      if (rec.tested) j["test"] = detail::stats_json(rec.test);
      if (rec.joint) j["denoise"] = detail::stats_json(rec.denoise);
      cfg.log->write(j);
    }
  }
};

// Checkpointing: last.safetensors (resumable) and best.safetensors in cfg.checkpoint_dir; only rank 0
// writes, the others wait until the file is complete (a resume may read it next). The loss scaler's state
// is taken at the moment of writing (on CUDA that is when it is read from the device).
template <class T, class D, class Scaler, Communicator C>
struct Checkpoints {
  ParamStore<T, D>& store;
  AdamW<T, D>& opt;
  Scaler& scaler;
  C& comm;
  const FitConfig& cfg;
  std::string last_path, best_path;
  index_t last_saved_step = -1;

  Checkpoints(ParamStore<T, D>& s, AdamW<T, D>& o, Scaler& sc, C& c, const FitConfig& f)
      : store(s), opt(o), scaler(sc), comm(c), cfg(f) {
    if (cfg.checkpoint_dir.empty()) return;
    std::filesystem::create_directories(cfg.checkpoint_dir);
    last_path = (std::filesystem::path(cfg.checkpoint_dir) / "last.safetensors").string();
    best_path = (std::filesystem::path(cfg.checkpoint_dir) / "best.safetensors").string();
  }
  void write(const std::string& path, TrainState st) {
    st.loss_scale = scaler.state();
    if (is_root(comm)) save_checkpoint(path, store, &opt, st, cfg.metadata);
    if (comm.size() > 1) comm.barrier();
  }
  void save_last(const TrainState& st) {
    if (last_path.empty()) return;
    write(last_path, st);
    last_saved_step = st.step;
  }
  void save_best(const TrainState& st) {
    if (!best_path.empty()) write(best_path, st);
  }
  // Whether a run can resume, and its state restored when it does.
  bool resume(TrainState& state) {
    const bool resuming = cfg.resume && !last_path.empty() && std::filesystem::exists(last_path);
    LONGSEQ_CHECK(resuming || !cfg.resume || !cfg.resume_required, "run '", cfg.run, "': cannot resume: '",
                  last_path.empty() ? std::string("(no checkpoint folder)") : last_path,
                  "' does not exist (nothing to resume; start without resuming to begin a new run)");
    if (!resuming) return false;
    // Every rank reads the same file: the state is global (step, epoch, global batch index), so a run
    // may resume on a different number of ranks.
    check_resume_config(last_path, cfg.metadata, cfg.allow_changed);
    load_checkpoint(last_path, store, &opt, &state);
    scaler.restore(state.loss_scale);
    last_saved_step = state.step;
    return true;
  }
  std::string keep_note() const {
    return last_saved_step >= 0 ? "the last good checkpoint is '" + last_path + "' (step " +
                                      std::to_string(last_saved_step) + ")"
                                : std::string("no checkpoint was written");
  }
};

// Early stopping and the best epoch: the validation metric of each epoch against the best so far.
struct EarlyStopping {
  // Updates the best-epoch fields of `state` with this epoch's record; returns whether it is the new best.
  static bool record(TrainState& state, const FitConfig& cfg, const EpochRecord& rec) {
    const double metric = cfg.select == Select::accuracy ? rec.val.accuracy() : -rec.val.loss;
    const bool better = metric > state.best_metric;
    if (better) {
      state.best_metric = metric;
      state.best_epoch = rec.epoch;
      state.bad_epochs = 0;
      state.best_val_loss = rec.val.loss;
      state.best_val_acc = rec.val.accuracy();
      state.best_test_loss = rec.test.loss;
      state.best_test_acc = rec.test.accuracy();
    } else {
      ++state.bad_epochs;
    }
    return better;
  }
  // Whether the test split is evaluated this epoch (before record(): `better` is whether it will improve).
  static bool improves(const TrainState& state, const FitConfig& cfg, const heads::LossStats& val) {
    const double metric = cfg.select == Select::accuracy ? val.accuracy() : -val.loss;
    return metric > state.best_metric;
  }
  static bool stop(const TrainState& state, const FitConfig& cfg) {
    return cfg.patience > 0 && state.bad_epochs >= cfg.patience;
  }
};

// Data-parallel fit: every rank calls it with the same arguments (same seed, same global batches). The
// result (metrics, steps, history) is the same on every rank. The model's device policy picks the store,
// the optimizer and the scaler: a CUDA model trains with ParamStore<T, device::cuda> and
// AdamW<T, device::cuda> (compiled by nvcc), the task still loads host batches.
template <class M, class K, Communicator C>
FitResult fit(M& model, ParamStore<typename M::value_type, typename M::device_type>& store,
              AdamW<typename M::value_type, typename M::device_type>& opt, const Schedule& schedule, K& task,
              const FitConfig& cfg, C& comm) {
  using T = typename M::value_type;
  using D = typename M::device_type;
  using Scaler = scaler_for_t<D>;
  static_assert(Task<K, T>, "train::fit: the task must provide num_batches(Split, epoch), load(Split, epoch, i), "
                            "inputs(), targets() and tokens() (see train::Task)");
  static_assert(!D::is_gpu || !std::is_same_v<Scaler, LossScaler>,
                "train::fit: a CUDA model's loop must be compiled by nvcc (a .cu file, or a source set to LANGUAGE "
                "CUDA), where the device update and batch stage are visible");
  LONGSEQ_CHECK(cfg.accum >= 1, "fit: accum must be >= 1, got ", cfg.accum);
  const bool parallel = comm.size() > 1, root = is_root(comm);
  LONGSEQ_CHECK(&opt.store() == &store, "fit: the optimizer must update the store passed to fit");
  if constexpr (ShardableTask<K>) {
    task.set_shard(comm.rank(), comm.size());
  } else {
    LONGSEQ_CHECK(!parallel, "fit: running on ", comm.size(), " ranks needs a task with set_shard(rank, ranks) "
                             "(train::ShardableTask) so each rank loads its own part of every batch");
  }
  // A device store's gradients and parameters go through host memory with a host communicator (train::Staging).
  Staging<T, D> staging;
  constexpr bool direct_collectives = requires { allreduce_gradients(comm, store); broadcast_parameters(comm, store); };
  constexpr bool device_collectives =
      direct_collectives || requires { allreduce_gradients(comm, store, staging); broadcast_parameters(comm, store, staging); };
  auto sum_gradients = [&] {
    if constexpr (direct_collectives) allreduce_gradients(comm, store);
    else if constexpr (device_collectives) allreduce_gradients(comm, store, staging);
  };
  auto share_parameters = [&] {
    if constexpr (direct_collectives) broadcast_parameters(comm, store);
    else if constexpr (device_collectives) broadcast_parameters(comm, store, staging);
  };
  LONGSEQ_CHECK(!parallel || device_collectives, "fit: this communicator cannot all-reduce a ", D::name,
                " store's gradients");
  // The joint objective: a second, weighted pass over each training batch's masked copy.
  constexpr bool joint_task = JointTask<K, T>;
  double joint_weight = 0;
  if constexpr (joint_task) joint_weight = double(task.joint_weight());
  LONGSEQ_CHECK(std::isfinite(joint_weight) && joint_weight >= 0, "fit: the task's joint_weight() is ", joint_weight,
                ", expected a finite number >= 0 (0: no denoising pass)");
  const bool joint = joint_weight > 0;
  // Reduces a split's statistics over ranks (every rank evaluated its shard of each batch).
  auto reduce = [&](const heads::LossStats& s) { return parallel ? allreduce_stats(comm, s) : s; };
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  const std::clock_t cpu_start = std::clock();
  auto cpu_since = [&] { return double(std::clock() - cpu_start) / CLOCKS_PER_SEC; };
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };

  FitResult res;
  TrainState state;
  state.rng = Rng(cfg.seed, 0x7472);
  Scaler scaler(cfg.loss_scale);
  Checkpoints<T, D, Scaler, C> ckpt(store, opt, scaler, comm, cfg);
  res.last_path = ckpt.last_path;
  if (!cfg.checkpoint_dir.empty() && parallel) comm.barrier();  // the folder exists before anyone reads it
  if (ckpt.resume(state)) {
    res.resumed_from = state.step;
    if (cfg.progress && root) std::fprintf(stderr, "[%s] resumed from %s at step %ld (epoch %ld, batch %ld)\n", cfg.run.c_str(),
                                   ckpt.last_path.c_str(), long(state.step), long(state.epoch), long(state.batch));
    if (cfg.log && root) cfg.log->rewind(cfg.run, long(state.step), long(state.epoch));  // no repeated records
  }
  if (parallel) share_parameters();  // every rank starts from rank 0's parameters
  // With a bucketed communicator the gradient all-reduce overlaps the backward: on the last micro-batch
  // of an update, each finished part of the model starts the buckets that became final.
  constexpr bool bucketed = !D::is_gpu && BucketedCommunicator<C, T>;
  constexpr bool hooked = requires(M& m, Context<D>& c, typename M::Saved& sv) {
    m.backward(c, sv, 1.0, [](auto&) {});
  };
  struct Detach {  // leaves the communicator as it was found, also when an exception ends the loop
    C& c;
    bool on;
    ~Detach() {
      if constexpr (!D::is_gpu && BucketedCommunicator<C, T>)
        if (on) c.detach_gradients();
    }
  } detach{comm, false};
  if constexpr (bucketed)
    if (parallel) {
      comm.attach_gradients(store);
      detach.on = true;
    }
  auto fail_nonfinite = [&](const std::string& what, index_t epoch, index_t batch) {
    LONGSEQ_FAIL("run '", cfg.run, "': ", what, " at step ", state.step, " (epoch ", epoch, ", batch ", batch,
                 "); training stopped; ", ckpt.keep_note());
  };
  auto fail_gradient = [&](index_t epoch, index_t batch) {
    if (!scaler.enabled())
      fail_nonfinite("non-finite gradient (first in '" + first_nonfinite_grad(store) + "')", epoch, batch);
    fail_nonfinite("non-finite gradient (first in '" + first_nonfinite_grad(store) + "') at loss scale " +
                       detail::fmt_double(scaler.state().scale) + ", which cannot back off below min_scale " +
                       detail::fmt_double(cfg.loss_scale.min_scale),
                   epoch, batch);
  };
  // A device update left pending (scaling off) is checked here: before a checkpoint, a log line, an epoch's
  // end. The update that failed and every one after it changed nothing (the device gates them all).
  auto check_pending = [&](index_t epoch, index_t batch) {
    if (detail::pending_failed(scaler)) fail_gradient(epoch, batch);
  };

  Context<D> ctx;
  typename M::Saved saved;
  BatchStage<T, D> stage;
  // One process: each batch's statistics stay on the model's device, summed in train_totals (this epoch, and
  // the logging window's loss), and are read only where they are reported. Data parallel: every batch's
  // count is needed at once (the ranks' gradient weights), so they are read per batch as LossStats.
  heads::BatchStats<D> batch_stats;
  RunningStats<D> train_totals;
  // The joint objective's second pass: its own stage (the masked copy on the device), statistics and totals.
  BatchStage<T, D> den_stage;
  heads::BatchStats<D> den_stats;
  RunningStats<D> den_totals;
  auto read_denoise = [&](index_t epoch) {
    const StatsSnapshot snap = den_totals.read(ctx);
    if (snap.first_nonfinite >= 0)
      fail_nonfinite("non-finite denoising loss in batch " + std::to_string(snap.first_nonfinite), epoch,
                     snap.first_nonfinite);
    return snap;
  };
  // The totals so far; a batch whose loss was not finite stops the run here (on the host it never gets here).
  auto read_totals = [&](index_t epoch) {
    const StatsSnapshot snap = train_totals.read(ctx);
    if (snap.first_nonfinite >= 0)
      fail_nonfinite("non-finite loss in batch " + std::to_string(snap.first_nonfinite), epoch,
                     snap.first_nonfinite);
    return snap;
  };
  Progress progress(cfg.progress && root);
  const index_t nb0 = task.num_batches(Split::train, state.epoch);
  // Updates the run can still take: every group of micro-batches, less those skipped for overflow.
  const index_t total_groups = cfg.epochs * ((nb0 + cfg.accum - 1) / cfg.accum);
  auto count_updates = [&] {
    const index_t n = total_groups - scaler.skipped();
    return cfg.max_steps > 0 ? std::min(n, cfg.max_steps) : n;
  };
  index_t total_updates = count_updates();
  auto finish = [&] {
    res.steps = state.step;
    res.loss_scale = scaler.enabled() ? scaler.state().scale : 0.0;
    res.skipped = scaler.skipped();
    res.seconds = since(t_start);
    res.cpu_seconds = cpu_since();
  };
  auto interrupt = [&](index_t epoch, index_t batch) {
    if (!parallel) read_totals(epoch);
    check_pending(epoch, batch);
    ckpt.save_last(state);
    progress.flush();
    res.interrupted = true;
    finish();
  };
  const index_t first_step = state.step;
  auto t_train = clock::now();
  UpdateLog window;
  window.joint = joint;
  index_t updates_this_call = 0;
  bool stop = false;
  // A stop signal on any rank stops every rank at the same update (one small all-reduce per update).
  auto signalled = [&] {
    double v = stop_requested() != 0 ? 1.0 : 0.0;
    if (parallel) comm.allreduce_sum(&v, 1);
    return v > 0;
  };
  opt.zero_grad();

  for (; state.epoch < cfg.epochs && !stop; ++state.epoch) {
    const index_t epoch = state.epoch;
    const auto t_epoch = clock::now();
    const index_t nb = task.num_batches(Split::train, epoch);
    heads::LossStats train_stats, denoise_stats;
    train_totals.reset_total(ctx);
    if (joint) den_totals.reset_total(ctx);
    for (index_t i = state.batch; i < nb; ++i) {
      const index_t group_start = (i / cfg.accum) * cfg.accum;
      const index_t group = std::min(cfg.accum, nb - group_start);
      if (cfg.stop_on_signal && i == group_start && signalled()) {  // between updates: state is consistent
        interrupt(epoch, i);
        res.signal = stop_requested() != 0 ? stop_requested() : SIGTERM;
        if (cfg.progress && root)
          std::fprintf(stderr, "[%s] stopped by %s at step %ld; resumable checkpoint: %s\n", cfg.run.c_str(),
                       signal_name(res.signal), long(state.step),
                       ckpt.last_path.empty() ? "(none)" : ckpt.last_path.c_str());
        return res;
      }
      ctx.training = true;
      ctx.seed = detail::step_seed(cfg.seed, state.step, i - group_start, comm.rank());
      const auto& batch = stage.get(ctx, task, {Split::train, epoch, i});
      const bool idle = batch.empty;
      if (!idle) heads::forward_stats(model, ctx, batch.inputs, batch.targets, saved, batch_stats);
      // Data parallel only: the batch's statistics now (one process leaves them where they are).
      const heads::LossStats st = idle || !parallel ? heads::LossStats{} : batch_stats.read(ctx);
      if (!parallel) {
        train_totals.add(ctx, batch_stats, i);
        if constexpr (!D::is_gpu)  // at hand on the host: stop before this batch's backward, as always
          if (!std::isfinite(batch_stats.value.loss))
            fail_nonfinite("non-finite loss (" + std::to_string(batch_stats.value.loss) + ")", epoch, i);
      }
      // The loss is a mean over the rows or positions this rank counted; weighting it by the rank's share
      // of the counted items makes the summed gradient that of the global batch's mean. The non-finite
      // flag travels with the count so that every rank stops together.
      double weight = 1.0;
      bool finite = std::isfinite(st.loss);
      if (parallel) {
        double v[2] = {finite ? st.count : 0.0, finite ? 0.0 : 1.0};
        const double local = v[0];
        comm.allreduce_sum(v, 2);
        finite = v[1] == 0;
        weight = v[0] > 0 ? local / v[0] : 0.0;
      }
      if (!finite)
        fail_nonfinite(std::isfinite(st.loss) ? std::string("non-finite loss on another rank")
                                              : "non-finite loss (" + std::to_string(st.loss) + ")",
                       epoch, i);
      const bool last_micro = i + 1 == group_start + group;
      // The loss scale is a power of two (1 when off), so this product and its undoing below are exact.
      const double backward_scale = weight / double(group) * detail::backward_loss_scale(scaler);
      // The backward that completes an update's gradients: on the last micro-batch of a bucketed run it
      // starts the all-reduce of each part as it finishes.
      auto run_backward = [&](double scale, bool completes) {
        if constexpr (bucketed && hooked) {
          if (parallel && last_micro && completes) {
            model.backward(ctx, saved, scale, [&](auto& part) {
              comm.start_buckets_from(first_grad_offset(part, store));
              comm.poll();
            });
          } else {
            model.backward(ctx, saved, scale);
          }
        } else {
          model.backward(ctx, saved, scale);
        }
      };
      if (!idle) run_backward(backward_scale, !joint);
      // The joint objective: the masked copy of the same batch, its gradients weighted and added.
      if constexpr (joint_task) {
        if (joint) {
          detail::DenoisingPart<K> part{task};
          ctx.seed ^= 0x6A6F696E74ull;  // dropout masks of their own
          const auto& db = den_stage.get(ctx, part, {Split::train, epoch, i});
          if (!idle) heads::forward_stats(model, ctx, db.inputs, db.targets, saved, den_stats);
          const heads::LossStats dst = idle || !parallel ? heads::LossStats{} : den_stats.read(ctx);
          if (!parallel) {
            den_totals.add(ctx, den_stats, i);
            if constexpr (!D::is_gpu)
              if (!std::isfinite(den_stats.value.loss))
                fail_nonfinite("non-finite denoising loss (" + std::to_string(den_stats.value.loss) + ")", epoch, i);
          }
          double dweight = 1.0;
          bool dfinite = std::isfinite(dst.loss);
          if (parallel) {
            double v[2] = {dfinite ? dst.count : 0.0, dfinite ? 0.0 : 1.0};
            const double local = v[0];
            comm.allreduce_sum(v, 2);
            dfinite = v[1] == 0;
            dweight = v[0] > 0 ? local / v[0] : 0.0;
          }
          if (!dfinite)
            fail_nonfinite(std::isfinite(dst.loss) ? std::string("non-finite denoising loss on another rank")
                                                   : "non-finite denoising loss (" + std::to_string(dst.loss) + ")",
                           epoch, i);
          if (!idle)
            run_backward(dweight / double(group) * joint_weight * detail::backward_loss_scale(scaler), true);
          if (parallel) {
            denoise_stats.merge(dst);
            if (!idle) window.denoise += dst.loss;
          }
        }
      }
      const index_t tokens = batch.tokens;
      // The next batch is loaded and sent while this backward (and update) run on the device.
      if constexpr (D::is_gpu)
        if (i + 1 < nb) {
          stage.prefetch(ctx, task, {Split::train, epoch, i + 1});
          if constexpr (joint_task)
            if (joint) {
              detail::DenoisingPart<K> part{task};
              den_stage.prefetch(ctx, part, {Split::train, epoch, i + 1});
            }
        }
      if (parallel) {
        train_stats.merge(st);
        if (!idle) window.add(double(tokens), st.loss);
      } else {
        window.add_deferred(double(tokens));
      }
      if (!last_micro) continue;

      if (parallel) {
        if constexpr (bucketed) comm.finish();  // starts what the backward did not, waits for all
        else sum_gradients();
      }
      const double factor = schedule.factor(state.step);
      // Unscale, clip, check and step (train::apply_update). The gradients were summed over ranks above, so
      // every rank sees the same buffer and takes the same decision.
      const UpdateResult update = detail::run_update(opt, scaler, cfg.clip, factor);
      if (update.status == UpdateStatus::nonfinite) fail_gradient(epoch, i);
      if (update.status == UpdateStatus::skipped) {
        // Overflow under loss scaling: the update was skipped and the scale lowered. As PyTorch's GradScaler
        // skips the scheduler step too, state.step (the schedule's position, the dropout key and what
        // max_steps, save_every, log_every and stop_after count) does not advance; the group's batches are
        // consumed all the same.
        total_updates = count_updates();
        state.batch = i + 1;
        UpdateLog::skipped(cfg, root, progress, state.step, epoch, update.loss_scale, scaler.state().scale,
                           scaler.skipped(), since(t_start));
        continue;
      }
      ++state.step;
      ++updates_this_call;
      state.batch = i + 1;
      if (window.due(cfg, state.step, total_updates)) {
        if (parallel) {
          window.reduce(comm);  // the loss of the window over all ranks, tokens of all ranks
        } else {
          window.loss = read_totals(epoch).window_loss;  // the one read of this report
          train_totals.clear_window(ctx);
          if (joint) {
            window.denoise = read_denoise(epoch).window_loss;
            den_totals.clear_window(ctx);
          }
        }
        if (update.pending) check_pending(epoch, i);
        const double norm = detail::settled(scaler, update).grad_norm;
        const double done = double(state.step - first_step), left = double(total_updates - state.step);
        const double eta = done > 0 ? since(t_train) / done * left : -1;
        window.report(cfg, root, progress, state.step, epoch, total_updates, opt.config().lr * factor, norm,
                      scaler.enabled() ? scaler.state().scale : 0.0, eta, since(t_start));
      }
      if (cfg.save_every > 0 && state.step % cfg.save_every == 0) {
        if (!parallel) read_totals(epoch);
        check_pending(epoch, i);
        ckpt.save_last(state);
      }
      if (cfg.max_steps > 0 && state.step >= cfg.max_steps) { stop = true; break; }
      if (cfg.stop_after > 0 && updates_this_call >= cfg.stop_after) {
        interrupt(epoch, i);
        return res;
      }
    }
    progress.flush();
    const heads::LossStats epoch_train = parallel ? train_stats : read_totals(epoch).total;
    check_pending(epoch, state.batch);
    state.batch = 0;
    EpochRecord rec;
    rec.epoch = epoch;
    rec.step = state.step;
    rec.train = reduce(epoch_train);
    if (joint) {
      rec.joint = true;
      rec.denoise = parallel ? reduce(denoise_stats) : read_denoise(epoch).total;
    }
    rec.val = reduce(evaluate(model, task, Split::val, epoch, ctx, saved, stage));
    const bool improves = EarlyStopping::improves(state, cfg, rec.val);
    if (cfg.test_eval == TestEval::every_epoch || (improves && cfg.test_eval == TestEval::on_improvement)) {
      rec.test = reduce(evaluate(model, task, Split::test, epoch, ctx, saved, stage));
      rec.tested = true;
    }
    rec.seconds = since(t_epoch);
    const bool better = EarlyStopping::record(state, cfg, rec);
    UpdateLog::epoch(cfg, root, rec, better, since(t_start));
    res.history.push_back(rec);
    // Checkpoints describe the state after this epoch: a resumed run starts the next one.
    TrainState after = state;
    after.epoch = epoch + 1;
    if (better) ckpt.save_best(after);
    if (!ckpt.last_path.empty()) {
      ckpt.write(ckpt.last_path, after);
      ckpt.last_saved_step = state.step;
    }
    if (EarlyStopping::stop(state, cfg)) {
      res.early_stopped = true;
      if (cfg.progress && root) std::fprintf(stderr, "[%s] early stop: no better validation metric for %ld epochs\n",
                                     cfg.run.c_str(), long(cfg.patience));
      stop = true;
    }
  }
  res.best_epoch = state.best_epoch;
  res.best_metric = state.best_metric;
  res.best_val_loss = state.best_val_loss;
  res.best_val_acc = state.best_val_acc;
  res.best_test_loss = state.best_test_loss;
  res.best_test_acc = state.best_test_acc;
  res.best_path = ckpt.best_path;
  finish();
  return res;
}

// One process (the default).
template <class M, class K>
FitResult fit(M& model, ParamStore<typename M::value_type, typename M::device_type>& store,
              AdamW<typename M::value_type, typename M::device_type>& opt, const Schedule& schedule, K& task,
              const FitConfig& cfg) {
  SingleProcess one;
  return fit(model, store, opt, schedule, task, cfg, one);
}

}  // namespace longseq::train
