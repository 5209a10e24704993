// Task adapters over data:: datasets, so that a trainer or a user need not write one for the standard
// cases: classification, masked denoising (self-pretraining) and next-token prediction, for pixel inputs
// (continuous values; masked: [value * (1 - m), m]) and token inputs (masked: <mask> ids), with data-parallel
// shards. They satisfy train::Task and train::ShardableTask, so fit and step take them as they are.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "../data/batching.hpp"
#include "../data/dataset.hpp"
#include "../data/masking.hpp"
#include "../heads/head.hpp"
#include "../models/inputs.hpp"
#include "distributed.hpp"
#include "device_batch.hpp"

namespace longseq::train {

enum class Objective {
  classify,  // one label per example (a pair of documents for retrieval)
  masked,    // masked denoising: the model sees the masked batch, the loss is taken where m = 1
  causal,    // next-token prediction: the head shifts the targets itself
};

// Which Philox stream a masked position is drawn from (data::mask_stream(epoch, example, docs, doc)).
// by_example: (epoch, example, the batch's documents, doc), validation and test at epoch 0, exactly as
// data::mask_batch draws. by_split: (epoch, example, 3, split) for single-document sets, so the fixed
// validation and test masks differ from the training masks of epoch 0 (the Fashion-MNIST trainer's rule).
enum class MaskStreams { by_example, by_split };

struct TaskOptions {
  Objective objective = Objective::classify;
  index_t batch = 32;             // examples per global batch (before sharding)
  std::uint64_t seed = 0;         // training order and masks
  data::MaskOptions mask{};       // masked: p, kind, span length; its seed is replaced by `seed`
  MaskStreams streams = MaskStreams::by_example;
  index_t bucket_batches = 0;     // training batches: length bucketing (data::LoaderOptions)
};

// Batches of a data::Splits (or three datasets) for one objective. The training split is shuffled per
// epoch from (seed, epoch) and drops its last partial batch; validation and test keep their order and
// every example, and draw their masks as in epoch 0, so their losses compare across epochs. Each global
// batch is padded to its longest sequence, so the numbers do not depend on the number of ranks. The
// returned views point into the task and stay valid until the next load().
template <class T = float>
class DatasetTask {
 public:
  DatasetTask(const data::Dataset& train, const data::Dataset& val, const data::Dataset& test, TaskOptions o)
      : sets_{&train, &val, &test}, o_(o) {
    LONGSEQ_CHECK(o.batch > 0, "DatasetTask: option 'batch' must be positive, got ", o.batch);
    LONGSEQ_CHECK(o.mask.p >= 0 && o.mask.p <= 1, "DatasetTask: option 'mask.p' must be in [0, 1], got ", o.mask.p);
    for (const auto* d : sets_)
      LONGSEQ_CHECK(d->info().modality == train.info().modality && d->info().docs == train.info().docs,
                    "DatasetTask: dataset '", d->info().name, "' differs from the training set '",
                    train.info().name, "' in modality or documents per example");
    LONGSEQ_CHECK(o.streams == MaskStreams::by_example || train.info().docs == 1,
                  "DatasetTask: option 'streams' = by_split needs single-document examples, dataset '",
                  train.info().name, "' has ", train.info().docs);
    o_.mask.seed = o.seed;
    for (int s = 0; s < 3; ++s) {
      data::LoaderOptions lo;
      lo.batch_size = o.batch;
      lo.seed = o.seed;
      lo.shuffle = lo.drop_last = s == 0;
      lo.bucket_batches = s == 0 ? o.bucket_batches : 0;
      loaders_.emplace_back(*sets_[std::size_t(s)], lo);
    }
  }
  DatasetTask(const data::Splits& d, TaskOptions o) : DatasetTask(d.train, d.val, d.test, o) {}
  // The task keeps pointers to the datasets: a temporary (data::load_task(...) passed directly) would dangle.
  DatasetTask(const data::Splits&&, TaskOptions) = delete;

  const TaskOptions& options() const { return o_; }
  bool pixels() const { return sets_[0]->info().modality == data::Modality::pixels; }

  void set_shard(int rank, int ranks) {
    LONGSEQ_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, "DatasetTask: rank ", rank, " of ", ranks);
    rank_ = rank;
    ranks_ = ranks;
  }
  index_t num_batches(Split s, index_t epoch) { return loader(s, epoch).num_batches(); }

  void load(Split s, index_t epoch, index_t i) {
    const auto& idx = loader(s, epoch).batch_indices(i);
    const data::Dataset& d = *sets_[std::size_t(s)];
    const Shard sh = shard(index_t(idx.size()), ranks_, rank_);
    data::PadOptions pad;
    for (index_t k : idx) pad.fixed_length = std::max(pad.fixed_length, d.length(k));
    rows_ = sh.count;
    if (rows_ == 0) return;
    batch_ = data::make_batch(d, std::span<const index_t>(idx).subspan(std::size_t(sh.begin), std::size_t(sh.count)), pad);
    const index_t R = batch_.rows, L = batch_.length;
    const bool masked = o_.objective == Objective::masked;
    if (masked) mask(s, s == Split::train ? epoch : 0);
    lengths_ = view(batch_.lengths, Shape{R});
    labels_ = view(batch_.labels, Shape{batch_.size});
    classes_ = view(batch_.ids, Shape{R, L});
    if (pixels()) {
      const auto& in = masked ? masked_.values : batch_.values;
      values_in_.assign(in.begin(), in.end());
      target_values_in_.assign(batch_.values.begin(), batch_.values.end());
      values_ = view(values_in_, Shape{R, L, masked ? 2 : 1});
      target_values_ = view(target_values_in_, Shape{R, L});
      ids_ = {};
    } else {
      ids_ = masked ? view(masked_.ids, Shape{R, L}) : view(batch_.ids, Shape{R, L});
      values_ = target_values_ = {};
    }
    mask_ = masked ? view(masked_.masked, Shape{R, L}) : TensorView<const std::uint8_t>{};
    tokens_ = R * L;
  }

  bool empty() const { return rows_ == 0; }
  models::Inputs<T> inputs() const { return {ids_, values_, lengths_}; }
  heads::Targets<T> targets() const {
    if (o_.objective == Objective::classify) return {labels_, {}, {}, lengths_};
    return {classes_, target_values_, mask_, lengths_};
  }
  index_t tokens() const { return tokens_; }
  // The loaded batch as data:: sees it (this rank's rows), and its masks (masked objective).
  const data::Batch& batch() const { return batch_; }
  const data::MaskedBatch& masked_batch() const { return masked_; }

 private:
  data::Loader<data::Dataset>& loader(Split s, index_t epoch) {
    auto& l = loaders_[std::size_t(s)];
    if (l.epoch() != epoch) l.set_epoch(epoch);
    return l;
  }
  template <class U>
  static TensorView<const U> view(const std::vector<U>& v, Shape s) { return TensorView<const U>(v.data(), s); }

  void mask(Split s, index_t epoch) {
    if (o_.streams == MaskStreams::by_example) {
      masked_ = data::mask_batch(batch_, o_.mask, epoch);
      return;
    }
    // by_split: the same fill as data::mask_batch, one stream per (epoch, example, split).
    masked_ = data::mask_batch(batch_, {.p = 0, .kind = data::MaskKind::bernoulli, .span_length = 1, .seed = 0}, 0);
    const index_t L = batch_.length;
    for (index_t r = 0; r < batch_.rows; ++r) {
      const auto m = data::make_mask(batch_.lengths[std::size_t(r)], o_.mask,
                                     data::mask_stream(epoch, batch_.indices[std::size_t(r)], 3, int(s)));
      for (index_t t = 0; t < index_t(m.size()); ++t) {
        const auto k = std::size_t(r * L + t);
        if (!m[std::size_t(t)]) continue;
        masked_.masked[k] = 1;
        masked_.targets[k] = batch_.ids[k];
        masked_.ids[k] = data::Vocab::mask_id;
        if (pixels()) {
          masked_.values[2 * k] = 0.0f;
          masked_.values[2 * k + 1] = 1.0f;
          masked_.value_targets[k] = batch_.values[k];
        }
      }
    }
  }

  std::array<const data::Dataset*, 3> sets_;
  TaskOptions o_;
  std::vector<data::Loader<data::Dataset>> loaders_;
  int rank_ = 0, ranks_ = 1;
  index_t rows_ = 0, tokens_ = 0;
  data::Batch batch_;
  data::MaskedBatch masked_;
  std::vector<T> values_in_, target_values_in_;
  TensorView<const std::int32_t> ids_, lengths_, labels_, classes_;
  TensorView<const T> values_, target_values_;
  TensorView<const std::uint8_t> mask_;
};

}  // namespace longseq::train
