// Every CUDA op in one include: the overloads on Context<device::cuda> of the host ops in ops/*.hpp.
#pragma once
#include "activation.cuh"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "fft.cuh"
#include "fft_conv.cuh"
#include "gemm.cuh"
#include "norm.cuh"
#include "reduce.cuh"
#include "softmax.cuh"
