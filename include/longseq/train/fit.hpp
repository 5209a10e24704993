// train::fit: the training loop. Each epoch trains on the task's batches (gradient accumulation,
// clipping, AdamW with a schedule), then evaluates validation and test; the best validation epoch is
// checkpointed, early stopping watches it, and `last.safetensors` lets an interrupted run resume to the
// same numbers. A NaN/Inf loss or gradient stops with an error; checkpoints already written stay intact.
// With dynamic loss scaling on (FitConfig::loss_scale), a non-finite gradient instead skips that update
// and lowers the scale; only a scale that would fall below its minimum stops the run.
// Data parallel: given a Communicator, every rank computes its shard of each global batch, gradients and
// metrics are summed over ranks, and only rank 0 writes checkpoints, logs and progress.
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
#include <vector>

#include "../heads/head.hpp"
#include "../models/model.hpp"
#include "adamw.hpp"
#include "checkpoint.hpp"
#include "clip.hpp"
#include "distributed.hpp"
#include "loss_scale.hpp"
#include "metrics.hpp"
#include "resume.hpp"
#include "schedule.hpp"
#include "step.hpp"
#include "signals.hpp"

namespace longseq::train {

enum class Split { train, val, test };
inline const char* split_name(Split s) { return s == Split::train ? "train" : s == Split::val ? "val" : "test"; }

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

namespace detail {
// A rank whose share of the loaded batch is empty (a global batch smaller than the number of ranks)
// computes nothing for it but still joins the collectives. Tasks say so through an optional empty().
template <class K>
bool shard_empty(const K& task) {
  if constexpr (requires { { task.empty() } -> std::convertible_to<bool>; }) return task.empty();
  else return false;
}
}  // namespace detail

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
  bool tested = false;
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

template <class M, class K>
heads::LossStats evaluate(M& model, K& task, Split split, index_t epoch, HostContext& ctx,
                          typename M::Saved& saved) {
  const bool was = ctx.training;
  ctx.training = false;
  heads::LossStats total;
  const index_t nb = task.num_batches(split, epoch);
  for (index_t i = 0; i < nb; ++i) {
    task.load(split, epoch, i);
    if (detail::shard_empty(task)) continue;
    total.merge(model.forward(ctx, task.inputs(), task.targets(), saved));
  }
  ctx.training = was;
  return total;
}

namespace detail {
inline nlohmann::json stats_json(const heads::LossStats& s) {
  return {{"loss", s.loss}, {"accuracy", s.accuracy()}, {"count", s.count}, {"r2", s.r2()}};
}
// Dropout key of one micro-batch: distinct per (seed, update, micro-batch), reproducible on resume.
inline std::uint64_t step_seed(std::uint64_t seed, index_t step, index_t micro, int rank = 0) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + std::uint64_t(step) * 0xBF58476D1CE4E5B9ull + std::uint64_t(micro);
  x ^= x >> 31;
  return x ^ (std::uint64_t(rank) * 0xD1B54A32D192ED03ull);  // rank 0 keeps the single-process key
}
}  // namespace detail

// Data-parallel fit: every rank calls it with the same arguments (same seed, same global batches). The
// result (metrics, steps, history) is the same on every rank.
template <class M, class K, Communicator C>
FitResult fit(M& model, ParamStore<typename M::value_type>& store, AdamW<typename M::value_type>& opt,
              const Schedule& schedule, K& task, const FitConfig& cfg, C& comm) {
  using T = typename M::value_type;
  static_assert(Task<K, T>, "train::fit: the task must provide num_batches(Split, epoch), load(Split, epoch, i), "
                            "inputs(), targets() and tokens() (see train::Task)");
  LONGSEQ_CHECK(cfg.accum >= 1, "fit: accum must be >= 1, got ", cfg.accum);
  const bool parallel = comm.size() > 1, root = is_root(comm);
  LONGSEQ_CHECK(&opt.store() == &store, "fit: the optimizer must update the store passed to fit");
  if constexpr (ShardableTask<K>) {
    task.set_shard(comm.rank(), comm.size());
  } else {
    LONGSEQ_CHECK(!parallel, "fit: running on ", comm.size(), " ranks needs a task with set_shard(rank, ranks) "
                             "(train::ShardableTask) so each rank loads its own part of every batch");
  }
  // Reduces a split's statistics over ranks (every rank evaluated its shard of each batch).
  auto reduce = [&](const heads::LossStats& s) { return parallel ? allreduce_stats(comm, s) : s; };
  // Only rank 0 writes; the others wait until the file is complete (a resume may read it next).
  auto write_checkpoint = [&](const std::string& path, const TrainState& st) {
    if (root) save_checkpoint(path, store, &opt, st, cfg.metadata);
    if (parallel) comm.barrier();
  };
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  const std::clock_t cpu_start = std::clock();
  auto cpu_since = [&] { return double(std::clock() - cpu_start) / CLOCKS_PER_SEC; };
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };

  FitResult res;
  TrainState state;
  state.rng = Rng(cfg.seed, 0x7472);
  LossScaler scaler(cfg.loss_scale);
  std::string last_path, best_path;
  if (!cfg.checkpoint_dir.empty()) {
    std::filesystem::create_directories(cfg.checkpoint_dir);
    last_path = (std::filesystem::path(cfg.checkpoint_dir) / "last.safetensors").string();
    best_path = (std::filesystem::path(cfg.checkpoint_dir) / "best.safetensors").string();
  }
  res.last_path = last_path;
  index_t last_saved_step = -1;
  if (!cfg.checkpoint_dir.empty() && parallel) comm.barrier();  // the folder exists before anyone reads it
  const bool resuming = cfg.resume && !last_path.empty() && std::filesystem::exists(last_path);
  LONGSEQ_CHECK(resuming || !cfg.resume || !cfg.resume_required, "run '", cfg.run, "': cannot resume: '",
                last_path.empty() ? std::string("(no checkpoint folder)") : last_path,
                "' does not exist (nothing to resume; start without resuming to begin a new run)");
  if (resuming) {
    // Every rank reads the same file: the state is global (step, epoch, global batch index), so a run
    // may resume on a different number of ranks.
    check_resume_config(last_path, cfg.metadata, cfg.allow_changed);
    load_checkpoint(last_path, store, &opt, &state);
    scaler.restore(state.loss_scale);
    last_saved_step = state.step;
    res.resumed_from = state.step;
    if (cfg.progress && root) std::fprintf(stderr, "[%s] resumed from %s at step %ld (epoch %ld, batch %ld)\n", cfg.run.c_str(),
                                   last_path.c_str(), long(state.step), long(state.epoch), long(state.batch));
    if (cfg.log && root) cfg.log->rewind(cfg.run, long(state.step), long(state.epoch));  // no repeated records
  }
  if (parallel) broadcast_parameters(comm, store);  // every rank starts from rank 0's parameters
  state.loss_scale = scaler.state();  // scaling off: nothing stored, whatever the checkpoint held
  // With a bucketed communicator the gradient all-reduce overlaps the backward: on the last micro-batch
  // of an update, each finished part of the model starts the buckets that became final.
  constexpr bool bucketed = BucketedCommunicator<C, T>;
  constexpr bool hooked = requires(M& m, HostContext& c, typename M::Saved& sv) {
    m.backward(c, sv, 1.0, [](auto&) {});
  };
  struct Detach {  // leaves the communicator as it was found, also when an exception ends the loop
    C& c;
    bool on;
    ~Detach() {
      if constexpr (BucketedCommunicator<C, T>)
        if (on) c.detach_gradients();
    }
  } detach{comm, false};
  if constexpr (bucketed)
    if (parallel) {
      comm.attach_gradients(store);
      detach.on = true;
    }
  auto save_last = [&] {
    if (last_path.empty()) return;
    write_checkpoint(last_path, state);
    last_saved_step = state.step;
  };
  auto fail_nonfinite = [&](const std::string& what, index_t epoch, index_t batch) {
    std::string keep = last_saved_step >= 0 ? "the last good checkpoint is '" + last_path + "' (step " +
                                                  std::to_string(last_saved_step) + ")"
                                            : std::string("no checkpoint was written");
    LONGSEQ_FAIL("run '", cfg.run, "': ", what, " at step ", state.step, " (epoch ", epoch, ", batch ", batch,
                 "); training stopped; ", keep);
  };

  HostContext ctx;
  typename M::Saved saved;
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
    res.loss_scale = scaler.enabled() ? scaler.scale() : 0.0;
    res.skipped = scaler.skipped();
    res.seconds = since(t_start);
    res.cpu_seconds = cpu_since();
  };
  const index_t first_step = state.step;
  auto t_train = clock::now();
  double tokens_window = 0, loss_window = 0, n_window = 0;
  auto t_window = clock::now();
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
    heads::LossStats train_stats;
    for (index_t i = state.batch; i < nb; ++i) {
      const index_t group_start = (i / cfg.accum) * cfg.accum;
      const index_t group = std::min(cfg.accum, nb - group_start);
      if (cfg.stop_on_signal && i == group_start && signalled()) {  // between updates: state is consistent
        save_last();
        progress.flush();
        res.interrupted = true;
        res.signal = stop_requested() != 0 ? stop_requested() : SIGTERM;
        if (cfg.progress && root)
          std::fprintf(stderr, "[%s] stopped by %s at step %ld; resumable checkpoint: %s\n", cfg.run.c_str(),
                       signal_name(res.signal), long(state.step), last_path.empty() ? "(none)" : last_path.c_str());
        finish();
        return res;
      }
      ctx.training = true;
      ctx.seed = detail::step_seed(cfg.seed, state.step, i - group_start, comm.rank());
      task.load(Split::train, epoch, i);
      const bool idle = detail::shard_empty(task);
      const heads::LossStats st = idle ? heads::LossStats{} : model.forward(ctx, task.inputs(), task.targets(), saved);
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
      const double backward_scale = weight / double(group) * scaler.scale();
      if (!idle) {
        if constexpr (bucketed && hooked) {
          if (parallel && last_micro) {
            model.backward(ctx, saved, backward_scale, [&](auto& part) {
              comm.start_buckets_from(first_grad_offset(part, store));
              comm.poll();
            });
          } else {
            model.backward(ctx, saved, backward_scale);
          }
        } else {
          model.backward(ctx, saved, backward_scale);
        }
      }
      train_stats.merge(st);
      if (!idle) {
        tokens_window += double(task.tokens());
        loss_window += st.loss;
        n_window += 1;
      }
      if (!last_micro) continue;

      if (parallel) {
        if constexpr (bucketed) comm.finish();  // starts what the backward did not, waits for all
        else allreduce_gradients(comm, store);
      }
      const double factor = schedule.factor(state.step);
      // Unscale, clip, check and step (train::apply_update). The gradients were summed over ranks above, so
      // every rank sees the same buffer and takes the same decision.
      const UpdateResult update = apply_update(opt, scaler, cfg.clip, factor);
      const double norm = update.grad_norm;
      state.loss_scale = scaler.state();
      if (update.status == UpdateStatus::nonfinite) {
        if (!scaler.enabled())
          fail_nonfinite("non-finite gradient (first in '" + first_nonfinite_grad(store) + "')", epoch, i);
        fail_nonfinite("non-finite gradient (first in '" + first_nonfinite_grad(store) + "') at loss scale " +
                           detail::fmt_double(scaler.scale()) + ", which cannot back off below min_scale " +
                           detail::fmt_double(cfg.loss_scale.min_scale),
                       epoch, i);
      }
      if (update.status == UpdateStatus::skipped) {
        // Overflow under loss scaling: the update was skipped and the scale lowered. As PyTorch's GradScaler
        // skips the scheduler step too, state.step (the schedule's position, the dropout key and what
        // max_steps, save_every, log_every and stop_after count) does not advance; the group's batches are
        // consumed all the same.
        total_updates = count_updates();
        state.batch = i + 1;
        progress.flush();
        if (cfg.progress && root)
          std::fprintf(stderr, "[%s] step %ld: non-finite gradient at loss scale %g, update skipped; scale now %g (%ld skipped)\n",
                       cfg.run.c_str(), long(state.step), update.loss_scale, scaler.scale(), long(scaler.skipped()));
        if (cfg.log && root)
          cfg.log->write({{"event", "loss_scale"}, {"run", cfg.run}, {"step", state.step}, {"epoch", epoch},
                          {"scale", scaler.scale()}, {"skipped", scaler.skipped()}, {"elapsed_s", since(t_start)}});
        continue;
      }
      ++state.step;
      ++updates_this_call;
      state.batch = i + 1;
      if (cfg.log_every > 0 && (state.step % cfg.log_every == 0 || state.step == total_updates)) {
        if (parallel) {  // the loss of the window over all ranks, tokens of all ranks
          double v[3] = {loss_window, n_window, tokens_window};
          comm.allreduce_sum(v, 3);
          loss_window = v[0];
          n_window = v[1];
          tokens_window = v[2];
        }
        const double dt = std::max(1e-9, since(t_window));
        const double done = double(state.step - first_step), left = double(total_updates - state.step);
        const double eta = done > 0 ? since(t_train) / done * left : -1;
        progress.line(cfg.run, long(state.step), long(total_updates), loss_window / std::max(1.0, n_window),
                      opt.config().lr * factor, tokens_window / dt, eta);
        if (cfg.log && root) {
          nlohmann::json j{{"event", "step"}, {"run", cfg.run}, {"step", state.step}, {"epoch", epoch},
                           {"loss", loss_window / std::max(1.0, n_window)}, {"lr", opt.config().lr * factor},
                           {"grad_norm", norm}, {"tokens_per_s", tokens_window / dt},
                           {"elapsed_s", since(t_start)}};
          if (scaler.enabled()) j["loss_scale"] = scaler.scale();
          cfg.log->write(j);
        }
        tokens_window = loss_window = n_window = 0;
        t_window = clock::now();
      }
      if (cfg.save_every > 0 && state.step % cfg.save_every == 0) save_last();
      if (cfg.max_steps > 0 && state.step >= cfg.max_steps) { stop = true; break; }
      if (cfg.stop_after > 0 && updates_this_call >= cfg.stop_after) {
        save_last();
        progress.flush();
        res.interrupted = true;
        finish();
        return res;
      }
    }
    progress.flush();
    state.batch = 0;
    EpochRecord rec;
    rec.epoch = epoch;
    rec.step = state.step;
    rec.train = reduce(train_stats);
    rec.val = reduce(evaluate(model, task, Split::val, epoch, ctx, saved));
    const double metric = cfg.select == Select::accuracy ? rec.val.accuracy() : -rec.val.loss;
    const bool better = metric > state.best_metric;
    if (cfg.test_eval == TestEval::every_epoch || (better && cfg.test_eval == TestEval::on_improvement)) {
      rec.test = reduce(evaluate(model, task, Split::test, epoch, ctx, saved));
      rec.tested = true;
    }
    rec.seconds = since(t_epoch);
    if (better) {
      state.best_metric = metric;
      state.best_epoch = epoch;
      state.bad_epochs = 0;
      state.best_val_loss = rec.val.loss;
      state.best_val_acc = rec.val.accuracy();
      state.best_test_loss = rec.test.loss;
      state.best_test_acc = rec.test.accuracy();
    } else {
      ++state.bad_epochs;
    }
    if (cfg.progress && root) {
      std::fprintf(stderr, "[%s] epoch %ld: train loss %.4f acc %.4f | val loss %.4f acc %.4f", cfg.run.c_str(),
                   long(epoch), rec.train.loss, rec.train.accuracy(), rec.val.loss, rec.val.accuracy());
      if (rec.tested) std::fprintf(stderr, " | test loss %.4f acc %.4f", rec.test.loss, rec.test.accuracy());
      std::fprintf(stderr, "%s (%.0fs)\n", better ? "  (best)" : "", rec.seconds);
    }
    if (cfg.log && root) {
      nlohmann::json j{{"event", "epoch"}, {"run", cfg.run}, {"epoch", epoch}, {"step", state.step},
                       {"train", detail::stats_json(rec.train)}, {"val", detail::stats_json(rec.val)},
                       {"best", better}, {"seconds", rec.seconds}, {"elapsed_s", since(t_start)}};
      if (rec.tested) j["test"] = detail::stats_json(rec.test);
      cfg.log->write(j);
    }
    res.history.push_back(rec);
    const bool early = cfg.patience > 0 && state.bad_epochs >= cfg.patience;
    // Checkpoints describe the state after this epoch: a resumed run starts the next one.
    TrainState after = state;
    after.epoch = epoch + 1;
    if (better && !best_path.empty()) write_checkpoint(best_path, after);
    if (!last_path.empty()) {
      write_checkpoint(last_path, after);
      last_saved_step = state.step;
    }
    if (early) {
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
  res.best_path = best_path;
  finish();
  return res;
}

// One process (the default).
template <class M, class K>
FitResult fit(M& model, ParamStore<typename M::value_type>& store, AdamW<typename M::value_type>& opt,
              const Schedule& schedule, K& task, const FitConfig& cfg) {
  SingleProcess one;
  return fit(model, store, opt, schedule, task, cfg, one);
}

}  // namespace longseq::train
