// train::RunningStats on CUDA: the running totals in one small device buffer (stat_slots doubles of merged
// LossStats, the window's loss sum, the first non-finite batch). Adding a batch is a one-thread kernel on the
// context's stream that applies LossStats::merge's formula with rounded operations (no contraction), so
// batches merge in order and nothing waits; read() is the one synchronizing copy back.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/tensor.hpp"
#include "../../heads/cuda/stats.cuh"
#include "../running_stats.hpp"

namespace longseq::train {

namespace running_cuda {

using namespace longseq::heads;

inline constexpr int slot_window = stat_slots, slot_first_bad = stat_slots + 1, slots = stat_slots + 2;

// acc (slots) merged with one batch's b (stat_slots), as LossStats::merge on the host.
__global__ inline void add_kernel(double* acc, const double* b, double batch) {
  const double c0 = acc[slot_count], c1 = b[slot_count], n = __dadd_rn(c0, c1);
  acc[slot_loss] = n > 0 ? __ddiv_rn(__dadd_rn(__dmul_rn(acc[slot_loss], c0), __dmul_rn(b[slot_loss], c1)), n) : 0.0;
  acc[slot_count] = n;
  for (int j = slot_correct; j < stat_slots; ++j) acc[j] = __dadd_rn(acc[j], b[j]);
  acc[slot_window] = __dadd_rn(acc[slot_window], b[slot_loss]);
  if (!isfinite(b[slot_loss]) && acc[slot_first_bad] < 0) acc[slot_first_bad] = batch;
}

// Zeroes slots [from, to) and, when reset_bad, marks no non-finite batch.
__global__ inline void clear_kernel(double* acc, int from, int to, bool reset_bad) {
  for (int j = from; j < to; ++j) acc[j] = 0;
  if (reset_bad) acc[slot_first_bad] = -1;
}

}  // namespace running_cuda

template <>
class RunningStats<device::cuda> {
 public:
  using Ctx = Context<device::cuda>;
  void reset_total(Ctx& ctx) {
    running_cuda::clear_kernel<<<1, 1, 0, ctx.stream()>>>(buffer(ctx), 0, heads::stat_slots, true);
    LONGSEQ_CUDA_LAUNCH_CHECK("RunningStats::reset_total");
  }
  void clear_window(Ctx& ctx) {
    running_cuda::clear_kernel<<<1, 1, 0, ctx.stream()>>>(buffer(ctx), running_cuda::slot_window,
                                                         running_cuda::slot_window + 1, false);
    LONGSEQ_CUDA_LAUNCH_CHECK("RunningStats::clear_window");
  }
  void add(Ctx& ctx, const heads::BatchStats<device::cuda>& b, index_t batch) {
    LONGSEQ_CHECK(b.totals.numel() == heads::stat_slots, "RunningStats::add: batch ", batch,
                  " has no statistics (no loss wrote them)");
    running_cuda::add_kernel<<<1, 1, 0, ctx.stream()>>>(buffer(ctx), b.slots(), double(batch));
    LONGSEQ_CUDA_LAUNCH_CHECK("RunningStats::add");
  }
  StatsSnapshot read(Ctx& ctx) {
    double v[running_cuda::slots];
    heads::detail::read_slots(ctx, buffer(ctx), v, running_cuda::slots);
    return {heads::from_slots(v), v[running_cuda::slot_window], index_t(v[running_cuda::slot_first_bad])};
  }

 private:
  // Allocated and cleared on first use, in stream order.
  double* buffer(Ctx& ctx) {
    if (acc_.numel() == 0) {
      acc_.resize(Shape{running_cuda::slots});
      running_cuda::clear_kernel<<<1, 1, 0, ctx.stream()>>>(acc_.data(), 0, running_cuda::slots, true);
      LONGSEQ_CUDA_LAUNCH_CHECK("RunningStats");
    }
    return acc_.data();
  }
  Tensor<double, device::cuda> acc_;
};

}  // namespace longseq::train
