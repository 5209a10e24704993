// train::BatchStage: a task's batch as views in the model's device memory. On the host the task's own
// views are used as they are (no copy). On CUDA (train/cuda/device_batch.cuh) each batch is copied into
// pinned host memory and from there to the device asynchronously on the model's stream, into one of two
// slots: the fit loop stages batch i + 1 while batch i's backward and update run on the device.
#pragma once
#include <concepts>
#include <cstdint>

#include "../core/context.hpp"
#include "../heads/head.hpp"
#include "../models/inputs.hpp"

namespace longseq::train {

enum class Split { train, val, test };
inline const char* split_name(Split s) { return s == Split::train ? "train" : s == Split::val ? "val" : "test"; }

namespace detail {
// A rank whose share of the loaded batch is empty (a global batch smaller than the number of ranks)
// computes nothing for it but still joins the collectives. Tasks say so through an optional empty().
template <class K>
bool shard_empty(const K& task) {
  if constexpr (requires { { task.empty() } -> std::convertible_to<bool>; }) return task.empty();
  else return false;
}
}  // namespace detail

// Which batch a slot holds: (split, epoch, index).
struct BatchKey {
  Split split = Split::train;
  index_t epoch = -1, index = -1;
  bool operator==(const BatchKey&) const = default;
};

// One loaded batch as the model reads it.
template <class T, class D>
struct StagedBatch {
  models::Inputs<T, D> inputs;
  heads::Targets<T, D> targets;
  index_t tokens = 0;
  bool empty = false;  // this rank's share is empty (detail::shard_empty)
};

template <class T, class D>
class BatchStage;

// Host: load() and the task's views; prefetch() has nothing to overlap with and does nothing, so the host
// loop loads each batch exactly when it did before.
template <class T>
class BatchStage<T, device::host> {
 public:
  template <class K>
  const StagedBatch<T, device::host>& get(Context<device::host>&, K& task, BatchKey key) {
    task.load(key.split, key.epoch, key.index);
    b_.inputs = task.inputs();
    b_.targets = task.targets();
    b_.tokens = index_t(task.tokens());
    b_.empty = detail::shard_empty(task);
    return b_;
  }
  template <class K>
  void prefetch(Context<device::host>&, K&, BatchKey) {}

 private:
  StagedBatch<T, device::host> b_;
};

}  // namespace longseq::train

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the pinned, double-buffered device stage
#include "cuda/device_batch.cuh"
#endif
