// Entry point of the CUDA test executables: exits 77 (ctest's "skipped") when no device is present.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <cstdio>
#include <cuda_runtime.h>

int main(int argc, char** argv) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("no CUDA device present: skipping GPU tests\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
