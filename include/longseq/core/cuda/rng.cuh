// Philox draws on the GPU: the same (seed, stream, counter) as the host Rng gives the same numbers.
#pragma once
#include <cstdint>

#include "../rng.hpp"
#include "context.cuh"
#include "launch.cuh"

namespace longseq::cuda {

// Element i is Philox(seed, stream, first_counter + i / 4)[i % 4] mapped to [0, 1), i.e. the values
// Rng(seed, stream) returns from uniform() after first_counter blocks have been consumed.
struct UniformFill {
  float* out;
  std::uint64_t seed, stream, first_counter;
  __device__ void operator()(index_t i) const {
    Philox::u32x4 r = Philox::generate(seed, stream, first_counter + std::uint64_t(i) / 4);
    out[i] = Philox::to_unit(r.v[i % 4]);
  }
};

struct U32Fill {
  std::uint32_t* out;
  std::uint64_t seed, stream, first_counter;
  __device__ void operator()(index_t i) const {
    out[i] = Philox::generate(seed, stream, first_counter + std::uint64_t(i) / 4).v[i % 4];
  }
};

}  // namespace longseq::cuda

namespace longseq {

inline void fill_uniform(Context<device::cuda>& ctx, TensorView<float, device::cuda> out, std::uint64_t seed,
                         std::uint64_t stream, std::uint64_t first_counter = 0) {
  expect_contiguous(out, "out");
  cuda::for_each(ctx.stream(), out.numel(), cuda::UniformFill{out.data, seed, stream, first_counter},
                 "fill_uniform");
}

inline void fill_u32(Context<device::cuda>& ctx, TensorView<std::uint32_t, device::cuda> out, std::uint64_t seed,
                     std::uint64_t stream, std::uint64_t first_counter = 0) {
  expect_contiguous(out, "out");
  cuda::for_each(ctx.stream(), out.numel(), cuda::U32Fill{out.data, seed, stream, first_counter}, "fill_u32");
}

}  // namespace longseq
