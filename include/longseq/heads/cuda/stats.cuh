// heads::BatchStats on CUDA: one batch's loss statistics in a small device buffer (stat_slots doubles),
// written by the loss kernels in stream order; nothing waits for them until read() copies them back.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/tensor.hpp"
#include "../stats.hpp"

namespace longseq::heads {

namespace detail {
// The one synchronizing copy of a device buffer of statistics (n doubles) back to the host.
inline void read_slots(Context<device::cuda>& ctx, const double* dev, double* host, int n) {
  LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(host, dev, std::size_t(n) * sizeof(double), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  ++stats_reads();
}
}  // namespace detail

// The functions of BatchStats<device::cuda> (declared in heads/stats.hpp).
inline double* BatchStats<device::cuda>::slots() {
  if (totals.numel() != stat_slots) totals.resize(Shape{stat_slots});
  return totals.data();
}
inline const double* BatchStats<device::cuda>::slots() const { return totals.data(); }
inline const double* BatchStats<device::cuda>::count_ptr() const { return totals.data() + slot_count; }

inline LossStats BatchStats<device::cuda>::read(Context<device::cuda>& ctx) const {
  LONGSEQ_CHECK(totals.numel() == stat_slots, "BatchStats: read before any loss wrote its statistics");
  double v[stat_slots];
  detail::read_slots(ctx, totals.data(), v, stat_slots);
  return from_slots(v);
}
inline void BatchStats<device::cuda>::set(Context<device::cuda>& ctx, const LossStats& s) {
  double v[stat_slots];
  to_slots(s, v);
  LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(slots(), v, sizeof v, cudaMemcpyHostToDevice, ctx.stream()));
  ctx.synchronize();  // v is on this function's stack
}
inline void BatchStats<device::cuda>::copy_from(Context<device::cuda>& ctx, const BatchStats& o) {
  LONGSEQ_CUDA_CHECK(
      cudaMemcpyAsync(slots(), o.slots(), stat_slots * sizeof(double), cudaMemcpyDeviceToDevice, ctx.stream()));
}

}  // namespace longseq::heads
