// The CUDA BatchStage: two slots, each with pinned host buffers and device tensors for every field a batch
// may carry. A batch is loaded by the task (its own host buffers), copied into a slot's pinned buffers and
// sent to the device by cudaMemcpyAsync on the context's stream, so the copy is ordered before the forward
// that reads it and runs while earlier work is still queued. A slot's pinned memory is rewritten only after
// its previous copies have finished (an event per slot); its device tensors are reused in stream order.
#pragma once
#include <cuda_runtime.h>

#include <cstring>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/memory.cuh"
#include "../../core/cuda/pinned.cuh"
#include "../device_batch.hpp"

namespace longseq::train {

namespace cuda_detail {

// One field of a batch (ids, values, lengths, ...): host view -> pinned -> device, asynchronously.
template <class U>
struct StagedField {
  longseq::cuda::PinnedBytes pinned;  // grown only after the slot's event says it is no longer read
  Tensor<U, device::cuda> dev;
  TensorView<const U, device::cuda> stage(TensorView<const U, device::host> src, const char* name, cudaStream_t s) {
    if (!src.data) return {};
    expect_contiguous(src, name);
    const std::size_t bytes = std::size_t(src.numel()) * sizeof(U);
    dev.resize(src.shape);
    if (bytes) {
      void* p = pinned.reserve(bytes);
      std::memcpy(p, src.data, bytes);
      LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(dev.data(), p, bytes, cudaMemcpyHostToDevice, s));
    }
    return TensorView<const U, device::cuda>(dev.view());
  }
};

}  // namespace cuda_detail

template <class T>
class BatchStage<T, device::cuda> {
  using D = device::cuda;

 public:
  BatchStage() = default;
  BatchStage(const BatchStage&) = delete;
  BatchStage& operator=(const BatchStage&) = delete;
  ~BatchStage() {
    for (auto& s : slots_)
      if (s.copied) {
        cudaEventSynchronize(s.copied);
        cudaEventDestroy(s.copied);
      }
  }

  // The batch `key` on the device: the prefetched slot when it holds that batch, else loaded now.
  template <class K>
  const StagedBatch<T, D>& get(Context<D>& ctx, K& task, BatchKey key) {
    for (auto& s : slots_)
      if (s.key == key) {
        current_ = &s;
        return s.batch;
      }
    Slot& s = fill(ctx, task, key, next_slot());
    current_ = &s;
    return s.batch;
  }
  // Loads `key` into the slot not in use and queues its copy; a later get(key) returns it.
  template <class K>
  void prefetch(Context<D>& ctx, K& task, BatchKey key) {
    for (auto& s : slots_)
      if (s.key == key) return;
    fill(ctx, task, key, next_slot());
  }

 private:
  struct Slot {
    BatchKey key;
    StagedBatch<T, D> batch;
    cuda_detail::StagedField<std::int32_t> ids, in_lengths, classes, t_lengths;
    cuda_detail::StagedField<T> values, t_values;
    cuda_detail::StagedField<std::uint8_t> mask;
    cudaEvent_t copied = nullptr;
  };
  Slot& next_slot() { return current_ == &slots_[0] ? slots_[1] : slots_[0]; }

  template <class K>
  Slot& fill(Context<D>& ctx, K& task, BatchKey key, Slot& s) {
    cudaStream_t st = ctx.stream();
    if (!s.copied) LONGSEQ_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
    LONGSEQ_CUDA_CHECK(cudaEventSynchronize(s.copied));  // its pinned buffers are no longer being read
    s.key = BatchKey{};  // invalid until complete (a throwing load leaves no stale batch behind)
    task.load(key.split, key.epoch, key.index);
    const models::Inputs<T> in = task.inputs();
    const heads::Targets<T> tg = task.targets();
    s.batch.inputs = {s.ids.stage(in.ids, "ids", st), s.values.stage(in.values, "values", st),
                      s.in_lengths.stage(in.lengths, "lengths", st)};
    s.batch.targets = {s.classes.stage(tg.classes, "classes", st), s.t_values.stage(tg.values, "target values", st),
                       s.mask.stage(tg.mask, "mask", st), s.t_lengths.stage(tg.lengths, "target lengths", st)};
    s.batch.tokens = index_t(task.tokens());
    s.batch.empty = detail::shard_empty(task);
    LONGSEQ_CUDA_CHECK(cudaEventRecord(s.copied, st));
    s.key = key;
    return s;
  }

  Slot slots_[2];
  Slot* current_ = nullptr;
};

}  // namespace longseq::train
