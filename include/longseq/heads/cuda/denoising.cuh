// CUDA ops of the denoising heads: the per-position targets, one thread per position.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"

namespace longseq::heads::detail {

namespace denoise_cuda {

template <Objective Obj>
struct TargetsCe {
  PositionRule<Obj> rule;
  const std::int32_t* classes;
  std::int32_t* ids;
  __device__ void operator()(index_t e) const {
    const index_t l = rule.l, i = e / l, p = e % l;
    index_t from;
    ids[e] = rule(i, p, from) ? classes[i * l + from] : ignore_index;
  }
};

template <Objective Obj, class T>
struct TargetsL1 {
  PositionRule<Obj> rule;
  const T* values;
  T* target;
  std::uint8_t* on_mask;
  __device__ void operator()(index_t e) const {
    const index_t l = rule.l, i = e / l, p = e % l;
    index_t from;
    const bool on = rule(i, p, from);
    on_mask[e] = on ? 1 : 0;
    target[e] = on ? values[i * l + from] : T(0);
  }
};

}  // namespace denoise_cuda

template <Objective Obj>
void position_targets_ce(Context<device::cuda>& ctx, PositionRule<Obj> rule,
                         TensorView<const std::int32_t, device::cuda> classes, index_t b,
                         TensorView<std::int32_t, device::cuda> ids) {
  longseq::cuda::for_each(ctx.stream(), b * rule.l, denoise_cuda::TargetsCe<Obj>{rule, classes.data, ids.data},
                          "position_targets_ce");
}

template <Objective Obj, class T>
void position_targets_l1(Context<device::cuda>& ctx, PositionRule<Obj> rule, TensorView<const T, device::cuda> values,
                         index_t b, TensorView<T, device::cuda> target,
                         TensorView<std::uint8_t, device::cuda> on_mask) {
  longseq::cuda::for_each(ctx.stream(), b * rule.l,
                          denoise_cuda::TargetsL1<Obj, T>{rule, values.data, target.data, on_mask.data},
                          "position_targets_l1");
}

}  // namespace longseq::heads::detail
