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

template <>
struct BatchStats<device::cuda> {
  Tensor<double, device::cuda> totals;  // (stat_slots) in StatSlot order

  // The device buffer, allocated on first use (its contents are written by whoever fills it).
  double* slots() {
    if (totals.numel() != stat_slots) totals.resize(Shape{stat_slots});
    return totals.data();
  }
  const double* slots() const { return totals.data(); }
  // Device address of the counted rows, which a loss's backward divides by without reading it back.
  const double* count_ptr() const { return totals.data() + slot_count; }

  LossStats read(Context<device::cuda>& ctx) const {
    LONGSEQ_CHECK(totals.numel() == stat_slots, "BatchStats: read before any loss wrote its statistics");
    double v[stat_slots];
    detail::read_slots(ctx, totals.data(), v, stat_slots);
    return from_slots(v);
  }
  // Statistics computed on the host (a head with only the LossStats-returning forward): uploaded in stream order.
  void set(Context<device::cuda>& ctx, const LossStats& s) {
    double v[stat_slots];
    to_slots(s, v);
    LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(slots(), v, sizeof v, cudaMemcpyHostToDevice, ctx.stream()));
    ctx.synchronize();  // v is on this function's stack
  }
  void copy_from(Context<device::cuda>& ctx, const BatchStats& o) {
    LONGSEQ_CUDA_CHECK(
        cudaMemcpyAsync(slots(), o.slots(), stat_slots * sizeof(double), cudaMemcpyDeviceToDevice, ctx.stream()));
  }
};

}  // namespace longseq::heads
