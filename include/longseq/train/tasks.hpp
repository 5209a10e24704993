// Task adapters over data:: datasets, so that a trainer or a user need not write one for the standard
// cases: classification, masked denoising (self-pretraining), next-token prediction and the joint objective
// (classification plus masked denoising of the same batch), for pixel inputs (continuous values; masked:
// [value * (1 - m), m]) and token inputs (masked: <mask> ids), with data-parallel shards and optional image
// augmentations of the training batches. They satisfy train::Task, train::ShardableTask and
// train::JointTask, so fit and step take them as they are.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "../data/augment.hpp"
#include "../data/augment_listops.hpp"
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
  joint,     // classify the clean batch and denoise its masked copy (denoise_inputs / denoise_targets),
             // weighted by TaskOptions::joint_weight; validation and test are classified only
};

// Which Philox stream a masked position is drawn from (data::mask_stream(epoch, example, docs, doc)).
// by_example: (epoch, example, the batch's documents, doc), validation and test at epoch 0, exactly as
// data::mask_batch draws. by_split: (epoch, example, 3, split) for single-document sets, so the fixed
// validation and test masks differ from the training masks of epoch 0 (the Fashion-MNIST trainer's rule).
enum class MaskStreams { by_example, by_split };

// The joint objective's variants. longseq's own: the classifier reads the clean batch, the denoiser its masked
// copy, the denoising loss is taken at the masked positions. Miralles-Gonzalez et al. 2025 (their
// DenoiseTask.preprocess_input corrupts the batch in place, then one forward pass feeds both losses, summed):
// the classifier reads the corrupted copy too, a third of the masked positions get a random token instead of
// <mask>, and the denoising loss is taken at every position of the sequence.
enum class JointInputs { clean, corrupted };  // what the classification pass reads during training
enum class JointLoss { masked, all };         // where the denoising loss is taken

struct TaskOptions {
  Objective objective = Objective::classify;
  index_t batch = 32;             // examples per global batch (before sharding)
  std::uint64_t seed = 0;         // training order and masks
  data::MaskOptions mask{};       // masked: p, kind, span length; its seed is replaced by `seed`
  MaskStreams streams = MaskStreams::by_example;
  index_t bucket_batches = 0;     // training batches: length bucketing (data::LoaderOptions)
  double joint_weight = 1;        // joint: the weight of the denoising loss (> 0)
  JointInputs joint_inputs = JointInputs::clean;  // joint: the classifier's training input
  JointLoss joint_loss = JointLoss::masked;       // joint: the positions of the denoising loss
  double joint_random = 0;        // joint: share of masked positions given a random token (pixels: a random
                                  // intensity, mask channel 0) instead of <mask>, in [0, 1]
  data::AugmentOptions augment{}; // training batches of image tasks (off by default); its seed is replaced by `seed`
  // ListOps training batches: every operator's arguments reordered per (seed, epoch, example) (Miralles-Gonzalez
  // et al.'s token augmentation; data::listops_ids gives the ids). Empty `open`: off.
  data::ListOpsIds shuffle_operands{};
};

// Sets the joint objective's variant by name, for the trainers' flags. "longseq" (the defaults above; weight and
// mask left as given) or "lra2025": Miralles-Gonzalez et al.'s configs (configs/task/denoise.yaml and the
// summed losses of their trainer): weight 1, Bernoulli masking with p = 0.3, a random token at 0.333 of the
// masked positions, the classifier on the corrupted batch, the denoising loss at every position.
inline void set_joint_scheme(TaskOptions& o, const std::string& name) {
  if (name == "longseq") {
    o.joint_inputs = JointInputs::clean;
    o.joint_loss = JointLoss::masked;
    o.joint_random = 0;
  } else if (name == "lra2025") {
    o.joint_weight = 1;
    o.mask.p = 0.3;
    o.mask.kind = data::MaskKind::bernoulli;
    o.joint_inputs = JointInputs::corrupted;
    o.joint_loss = JointLoss::all;
    o.joint_random = 0.333;
  } else {
    LONGSEQ_FAIL("joint scheme '", name, "': expected longseq or lra2025");
  }
}

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
    LONGSEQ_CHECK(o.objective != Objective::joint || (std::isfinite(o.joint_weight) && o.joint_weight > 0),
                  "DatasetTask: option 'joint_weight' must be a finite number > 0 with the joint objective, got ",
                  o.joint_weight);
    LONGSEQ_CHECK(o.joint_random >= 0 && o.joint_random <= 1, "DatasetTask: option 'joint_random' must be a share "
                  "in [0, 1], got ", o.joint_random);
    if (o.augment.enabled()) {
      LONGSEQ_CHECK(train.info().modality == data::Modality::pixels, "DatasetTask: option 'augment' applies to "
                    "image tasks; dataset '", train.info().name, "' holds tokens");
      data::check_augment(o.augment, train.info().height, train.info().width);
    }
    if (!o.shuffle_operands.open.empty()) {
      LONGSEQ_CHECK(train.info().modality == data::Modality::tokens && train.info().docs == 1, "DatasetTask: option "
                    "'shuffle_operands' reorders ListOps expressions; dataset '", train.info().name, "' holds ",
                    train.info().modality == data::Modality::tokens ? "document pairs" : "pixels");
      LONGSEQ_CHECK(o.shuffle_operands.close >= 0, "DatasetTask: option 'shuffle_operands' has operators but no "
                    "closing-bracket id (data::listops_ids fills both)");
    }
    o_.mask.seed = o.seed;
    o_.augment.seed = o.seed;
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
    loaded_ = {};
  }
  index_t num_batches(Split s, index_t epoch) { return loader(s, epoch).num_batches(); }

  // A batch depends only on (split, epoch, i) and the shard, so loading the batch already loaded keeps it
  // (the joint objective's second stage asks for the same batch again).
  void load(Split s, index_t epoch, index_t i) {
    const Loaded key{s, epoch, i};
    if (key == loaded_) return;
    loaded_ = {};  // a throwing load leaves nothing marked as loaded
    load_batch(s, epoch, i);
    loaded_ = key;
  }

  bool empty() const { return rows_ == 0; }
  models::Inputs<T> inputs() const { return {ids_, values_, lengths_}; }
  heads::Targets<T> targets() const {
    if (o_.objective == Objective::classify || o_.objective == Objective::joint) return {labels_, {}, {}, lengths_};
    return {classes_, target_values_, mask_, lengths_};
  }
  // The joint objective's second pass (training batches only): the masked copy of the batch and the
  // denoising targets, exactly as the masked objective gives them. Empty views for other objectives.
  models::Inputs<T> denoise_inputs() const { return {denoise_ids_, denoise_values_, lengths_}; }
  heads::Targets<T> denoise_targets() const {
    return {classes_, target_values_, o_.joint_loss == JointLoss::all ? every_ : mask_, lengths_};
  }
  // The weight of the denoising loss: 0 (no second pass) unless the objective is joint.
  double joint_weight() const { return o_.objective == Objective::joint ? o_.joint_weight : 0.0; }
  index_t tokens() const { return tokens_; }
  // The loaded batch as data:: sees it (this rank's rows, augmented), and its masks (masked objective).
  const data::Batch& batch() const { return batch_; }
  const data::MaskedBatch& masked_batch() const { return masked_; }

 private:
  struct Loaded {
    Split split = Split::train;
    index_t epoch = -1, index = -1;
    bool operator==(const Loaded&) const = default;
  };

  void load_batch(Split s, index_t epoch, index_t i) {
    const auto& idx = loader(s, epoch).batch_indices(i);
    const data::Dataset& d = *sets_[std::size_t(s)];
    const Shard sh = shard(index_t(idx.size()), ranks_, rank_);
    data::PadOptions pad;
    for (index_t k : idx) pad.fixed_length = std::max(pad.fixed_length, d.length(k));
    rows_ = sh.count;
    if (rows_ == 0) return;
    batch_ = data::make_batch(d, std::span<const index_t>(idx).subspan(std::size_t(sh.begin), std::size_t(sh.count)), pad);
    const index_t R = batch_.rows, L = batch_.length;
    if (s == Split::train) data::augment_batch(batch_, o_.augment, d.info(), epoch);
    if (s == Split::train && !o_.shuffle_operands.open.empty())
      data::shuffle_listops_batch(batch_, o_.shuffle_operands, o_.seed, epoch);
    const bool joint = o_.objective == Objective::joint;
    // The joint objective masks its training batches only: validation and test are classified.
    const bool masked = o_.objective == Objective::masked || (joint && s == Split::train);
    if (masked) mask(s, s == Split::train ? epoch : 0);
    if (joint && masked && o_.joint_random > 0) randomize(d.info(), epoch);
    lengths_ = view(batch_.lengths, Shape{R});
    labels_ = view(batch_.labels, Shape{batch_.size});
    classes_ = view(batch_.ids, Shape{R, L});
    denoise_ids_ = {};
    denoise_values_ = {};
    // The classifier reads the corrupted copy (JointInputs::corrupted) on training batches only.
    const bool corrupted = joint && masked && o_.joint_inputs == JointInputs::corrupted;
    if (pixels()) {
      target_values_in_.assign(batch_.values.begin(), batch_.values.end());
      target_values_ = view(target_values_in_, Shape{R, L});
      ids_ = {};
      if (joint) {
        // One encoder reads both passes, so the clean batch carries the mask channel too, at 0: [value, 0].
        values_in_.assign(std::size_t(2 * R * L), T(0));
        for (std::size_t k = 0; k < batch_.values.size(); ++k) values_in_[2 * k] = batch_.values[k];
        values_ = view(values_in_, Shape{R, L, 2});
        if (masked) {
          denoise_values_in_.assign(masked_.values.begin(), masked_.values.end());
          denoise_values_ = view(denoise_values_in_, Shape{R, L, 2});
          if (corrupted) values_ = denoise_values_;
        }
      } else {
        const auto& in = masked ? masked_.values : batch_.values;
        values_in_.assign(in.begin(), in.end());
        values_ = view(values_in_, Shape{R, L, masked ? 2 : 1});
      }
    } else {
      ids_ = (masked && !joint) || corrupted ? view(masked_.ids, Shape{R, L}) : view(batch_.ids, Shape{R, L});
      if (joint && masked) denoise_ids_ = view(masked_.ids, Shape{R, L});
      values_ = target_values_ = {};
    }
    mask_ = masked ? view(masked_.masked, Shape{R, L}) : TensorView<const std::uint8_t>{};
    every_ = {};
    if (joint && masked && o_.joint_loss == JointLoss::all) {
      // Every position of each sequence carries denoising loss; padding none.
      every_in_.assign(std::size_t(R * L), 0);
      for (index_t r = 0; r < R; ++r)
        std::fill_n(every_in_.begin() + std::ptrdiff_t(r * L), batch_.lengths[std::size_t(r)], std::uint8_t(1));
      every_ = view(every_in_, Shape{R, L});
    }
    tokens_ = R * L;
  }
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

  // TaskOptions::joint_random: each masked position draws u ~ U[0, 1) and, when u < share, a uniform token of the
  // vocabulary (pixels: an intensity 0..255, shown unmasked) from its own Philox stream per (epoch, example,
  // document), so the masks themselves do not change. The targets stay the clean batch's.
  void randomize(const data::TaskInfo& info, index_t epoch) {
    const index_t L = batch_.length;
    const auto vocab = std::uint64_t(pixels() ? 256 : info.vocab_size);
    LONGSEQ_CHECK(vocab > 0, "DatasetTask: option 'joint_random' needs a vocabulary, dataset '", info.name,
                  "' has vocab_size ", info.vocab_size);
    for (index_t r = 0; r < batch_.rows; ++r) {
      const index_t example = batch_.indices[std::size_t(r % batch_.size)];
      Rng rng(o_.seed ^ 0x72616E646F6D2121ull, data::mask_stream(epoch, example, int(batch_.docs), int(r / batch_.size)));
      for (index_t t = 0; t < batch_.lengths[std::size_t(r)]; ++t) {
        const auto k = std::size_t(r * L + t);
        if (!masked_.masked[k]) continue;
        const bool replace = double(rng.uniform()) < o_.joint_random;
        const auto token = std::int32_t(rng.below(vocab));  // drawn either way: one draw pattern per position
        if (!replace) continue;
        masked_.ids[k] = token;
        if (pixels()) {
          masked_.values[2 * k] = info.norm(std::uint8_t(token));
          masked_.values[2 * k + 1] = 0.0f;
        }
      }
    }
  }

  std::array<const data::Dataset*, 3> sets_;
  TaskOptions o_;
  std::vector<data::Loader<data::Dataset>> loaders_;
  int rank_ = 0, ranks_ = 1;
  Loaded loaded_;
  index_t rows_ = 0, tokens_ = 0;
  data::Batch batch_;
  data::MaskedBatch masked_;
  std::vector<T> values_in_, target_values_in_, denoise_values_in_;
  TensorView<const std::int32_t> ids_, lengths_, labels_, classes_, denoise_ids_;
  TensorView<const T> values_, target_values_, denoise_values_;
  std::vector<std::uint8_t> every_in_;
  TensorView<const std::uint8_t> mask_, every_;
};

}  // namespace longseq::train
