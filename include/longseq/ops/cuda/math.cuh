// Device scalar math for the CUDA ops, overloaded on float and double (the accumulator types).
#pragma once
#include <cuda_runtime.h>

#include "../../core/shape.hpp"
#include "../../core/tensor.hpp"
#include "../common.hpp"

namespace longseq::ops::cuda_detail {

__device__ inline float dexp(float x) { return expf(x); }
__device__ inline double dexp(double x) { return exp(x); }
__device__ inline float dlog(float x) { return logf(x); }
__device__ inline double dlog(double x) { return log(x); }
__device__ inline float derf(float x) { return erff(x); }
__device__ inline double derf(double x) { return erf(x); }
__device__ inline float dtanh(float x) { return tanhf(x); }
__device__ inline double dtanh(double x) { return tanh(x); }
__device__ inline float dsqrt(float x) { return sqrtf(x); }
__device__ inline double dsqrt(double x) { return sqrt(x); }

// Split by sign so exp never overflows (the host formula).
template <class W>
__device__ inline W dsigmoid(W x) {
  if (x >= W(0)) return W(1) / (W(1) + dexp(-x));
  W e = dexp(x);
  return e / (W(1) + e);
}

// The host ops' checks, for views on any device.
template <class T, class U, class D>
void expect_same_shape_as(const TensorView<T, D>& t, const TensorView<U, D>& other, std::string_view name,
                          std::string_view other_name,
                          std::source_location loc = std::source_location::current()) {
  if (!(t.shape == other.shape))
    throw Error(longseq::detail::concat("tensor '", name, "' has shape ", t.shape, ", expected ", other.shape,
                                        " (the shape of '", other_name, "')"),
                loc);
}

using detail::leading_rows;

template <class T>
using CudaIn = std::type_identity_t<TensorView<const T, device::cuda>>;

}  // namespace longseq::ops::cuda_detail
