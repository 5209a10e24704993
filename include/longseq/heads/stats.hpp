// heads::LossStats (one batch's or a split's loss statistics, on the host) and heads::BatchStats<D> (where a
// loss leaves one batch's statistics on the model's device, so a training loop reads them only when it logs).
#pragma once
#include <atomic>
#include <cstdint>

#include "../core/context.hpp"
#include "../core/tensor.hpp"

namespace longseq::heads {

// Running sums a loss reports for one batch; merged across batches for epoch metrics.
struct LossStats {
  double loss = 0;      // mean over `count`
  double count = 0;     // rows (positions or examples) that carried loss
  double correct = 0;   // argmax hits (classification losses)
  double abs_err = 0;   // sum |pred - target| (regression losses)
  double sq_err = 0;    // sum (pred - target)^2
  double target_sum = 0, target_sq = 0;  // for R^2
  void merge(const LossStats& o) {
    const double n = count + o.count;
    loss = n > 0 ? (loss * count + o.loss * o.count) / n : 0.0;
    count = n;
    correct += o.correct;
    abs_err += o.abs_err;
    sq_err += o.sq_err;
    target_sum += o.target_sum;
    target_sq += o.target_sq;
  }
  double accuracy() const { return count > 0 ? correct / count : 0.0; }
  double r2() const {
    if (count <= 0) return 0.0;
    const double mean = target_sum / count, ss_tot = target_sq - count * mean * mean;
    return ss_tot > 0 ? 1.0 - sq_err / ss_tot : 0.0;
  }
};

// A device keeps LossStats as stat_slots doubles in this order (the fields of LossStats).
enum StatSlot : int { slot_loss, slot_count, slot_correct, slot_abs_err, slot_sq_err, slot_target_sum, slot_target_sq };
inline constexpr int stat_slots = 7;

inline void to_slots(const LossStats& s, double* v) {
  v[slot_loss] = s.loss;
  v[slot_count] = s.count;
  v[slot_correct] = s.correct;
  v[slot_abs_err] = s.abs_err;
  v[slot_sq_err] = s.sq_err;
  v[slot_target_sum] = s.target_sum;
  v[slot_target_sq] = s.target_sq;
}
inline LossStats from_slots(const double* v) {
  return {v[slot_loss], v[slot_count], v[slot_correct], v[slot_abs_err], v[slot_sq_err], v[slot_target_sum],
          v[slot_target_sq]};
}

// Reads of loss statistics that a device model pays for with a synchronizing copy back (BatchStats::read,
// train::RunningStats::read). Counted on every policy, so host tests see the pattern a loop would have on
// the device (how many reads per step); the value only grows.
inline std::atomic<std::int64_t>& stats_reads() {
  static std::atomic<std::int64_t> n{0};
  return n;
}

// One batch's statistics where the loss left them. On the host they are a LossStats at hand; on CUDA
// (heads/cuda/stats.cuh) they stay in a small device buffer written in stream order by the loss kernels,
// and read() is the one copy back.
template <class D>
struct BatchStats;

template <>
struct BatchStats<device::host> {
  LossStats value;
  LossStats read(Context<device::host>&) const {
    ++stats_reads();
    return value;
  }
  // Statistics computed elsewhere (a head with only the LossStats-returning forward).
  void set(Context<device::host>&, const LossStats& s) { value = s; }
  void copy_from(Context<device::host>&, const BatchStats& o) { value = o.value; }
  double count() const { return value.count; }
};

// Declared here, so that a model on device::cuda (whose Saved holds one) is a complete type in any
// translation unit, a host compiler's or a build without CUDA included; the functions are defined in
// heads/cuda/stats.cuh, for nvcc translation units, which are the only ones that run a device model.
template <>
struct BatchStats<device::cuda> {
  Tensor<double, device::cuda> totals;  // (stat_slots) in StatSlot order

  // The device buffer, allocated on first use (its contents are written by whoever fills it).
  double* slots();
  const double* slots() const;
  // Device address of the counted rows, which a loss's backward divides by without reading it back.
  const double* count_ptr() const;
  LossStats read(Context<device::cuda>& ctx) const;
  // Statistics computed on the host (a head with only the LossStats-returning forward): uploaded in stream order.
  void set(Context<device::cuda>& ctx, const LossStats& s);
  void copy_from(Context<device::cuda>& ctx, const BatchStats& o);
};

}  // namespace longseq::heads

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
#include "cuda/stats.cuh"
#endif
