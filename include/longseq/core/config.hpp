// Compile-time switches shared by every header: host/device function markers and CUDA detection.
#pragma once

#if defined(__CUDACC__)
#define LONGSEQ_HD __host__ __device__
#define LONGSEQ_DEVICE_COMPILE 1
#else
#define LONGSEQ_HD
#define LONGSEQ_DEVICE_COMPILE 0
#endif

// Defined by the CMake target when the CUDA toolkit was found and LONGSEQ_CUDA is ON.
#ifndef LONGSEQ_WITH_CUDA
#define LONGSEQ_WITH_CUDA 0
#endif
