// train::RunningStats<D>: a split's loss statistics summed over its batches where the model's device keeps
// them, with the loss sum of the current logging window and the first batch whose loss was not finite. The
// fit loop adds every batch's heads::BatchStats and reads the totals only at the log interval, checkpoints
// and the end of an epoch: on CUDA (train/cuda/running_stats.cuh) each add is a one-thread kernel in stream
// order, and a read is the one copy back. Batches are merged in the order they come, with LossStats::merge's
// formula, so the host numbers are those of merging the returned LossStats one by one.
#pragma once
#include <cmath>

#include "../heads/stats.hpp"

namespace longseq::train {

// What a read returns.
struct StatsSnapshot {
  heads::LossStats total;       // every batch added since reset_total()
  double window_loss = 0;       // sum of the batches' mean losses since clear_window()
  index_t first_nonfinite = -1;  // index (as passed to add) of the first batch with a non-finite loss; -1: none
};

template <class D>
class RunningStats;

template <>
class RunningStats<device::host> {
 public:
  using Ctx = Context<device::host>;
  void reset_total(Ctx&) {
    total_ = {};
    first_nonfinite_ = -1;
  }
  void clear_window(Ctx&) { window_ = 0; }
  void add(Ctx&, const heads::BatchStats<device::host>& b, index_t batch) {
    total_.merge(b.value);
    window_ += b.value.loss;
    if (!std::isfinite(b.value.loss) && first_nonfinite_ < 0) first_nonfinite_ = batch;
  }
  StatsSnapshot read(Ctx&) const {
    ++heads::stats_reads();
    return {total_, window_, first_nonfinite_};
  }

 private:
  heads::LossStats total_;
  double window_ = 0;
  index_t first_nonfinite_ = -1;
};

}  // namespace longseq::train

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
#include "cuda/running_stats.cuh"
#endif
