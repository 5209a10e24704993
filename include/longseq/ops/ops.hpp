// Umbrella header for the host ops: every forward/backward primitive in one include.
#pragma once
#include "activation.hpp"
#include "dropout.hpp"
#include "elementwise.hpp"
#include "fft.hpp"
#include "fft_conv.hpp"
#include "gemm.hpp"
#include "norm.hpp"
#include "reduce.hpp"
#include "softmax.hpp"
