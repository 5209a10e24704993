// GPU tests of the CUDA core: error checks, memory and copies, the context's resources, Philox on the device.
#include <doctest/doctest.h>

#include <cstdint>
#include <longseq/core/cuda/check.cuh>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/cuda/rng.cuh>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>

using namespace longseq;
using doctest::Contains;

namespace {
__global__ void noop_kernel() {}
}  // namespace

TEST_CASE("cuda checks throw with the call text, the error name and the caller's file") {
  CHECK(cuda::device_count() > 0);
  CHECK_THROWS_WITH_AS(LONGSEQ_CUDA_CHECK(cudaSetDevice(1 << 20)), Contains("cudaSetDevice(1 << 20)"), Error);
  CHECK_THROWS_WITH_AS(LONGSEQ_CUDA_CHECK(cudaSetDevice(1 << 20)), Contains("cudaErrorInvalidDevice"), Error);
  CHECK_THROWS_WITH_AS(LONGSEQ_CUDA_CHECK(cudaSetDevice(1 << 20)), Contains("tests/core/cuda.cu:"), Error);
  LONGSEQ_CUDA_CHECK(cudaSetDevice(0));

  cufftHandle plan;
  CHECK_THROWS_WITH_AS(LONGSEQ_CUFFT_CHECK(cufftPlan1d(&plan, 0, CUFFT_R2C, 1)), Contains("CUFFT_INVALID_SIZE"),
                       Error);
  CHECK(std::string(cuda::cufft_error_string(CUFFT_EXEC_FAILED)) == "CUFFT_EXEC_FAILED");

  Context<device::cuda> ctx;
  float dummy = 0;
  CHECK_THROWS_WITH_AS(LONGSEQ_CUBLAS_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, -1, 1, 1, &dummy,
                                                        nullptr, 1, nullptr, 1, &dummy, nullptr, 1)),
                       Contains("cuBLAS call 'cublasSgemm"), Error);

  // 2048 threads per block exceeds every device's limit: the launch itself fails.
  noop_kernel<<<1, 2048>>>();
  CHECK_THROWS_WITH_AS(LONGSEQ_CUDA_LAUNCH_CHECK("noop_kernel"), Contains("CUDA launch of 'noop_kernel' failed"),
                       Error);
  // The launch error was consumed: the next good launch passes its check.
  noop_kernel<<<1, 32>>>();
  CHECK_NOTHROW(LONGSEQ_CUDA_LAUNCH_CHECK("noop_kernel"));
  CHECK_NOTHROW(LONGSEQ_CUDA_CHECK(cudaDeviceSynchronize()));
}

TEST_CASE("device tensors round-trip through host copies") {
  Tensor<float> h(Shape{3, 5});
  for (index_t i = 0; i < h.numel(); ++i) h[i] = float(i) * 0.25f - 1.0f;
  Tensor<float, device::cuda> d = to_device(h);
  CHECK(d.shape() == h.shape());
  CHECK(d.data() != nullptr);
  Tensor<float> back = to_host(d);
  CHECK(back.shape() == h.shape());
  for (index_t i = 0; i < h.numel(); ++i) CHECK(back[i] == h[i]);

  Tensor<double> wrong(Shape{5, 3});
  Tensor<double, device::cuda> dd(Shape{3, 5});
  CHECK_THROWS_WITH_AS(copy_to_device<double>(wrong.view(), dd.view()),
                       Contains("host shape (5, 3) differs from device shape (3, 5)"), Error);

  // Empty tensors allocate nothing and copy nothing.
  Tensor<float> e(Shape{0, 4});
  Tensor<float, device::cuda> de = to_device(e);
  CHECK(de.data() == nullptr);
  CHECK(to_host(de).numel() == 0);
}

TEST_CASE("cuda context: stream, lazy cuBLAS handle, cached cuFFT plans, scratch and arena") {
  Context<device::cuda> ctx;
  CHECK(ctx.stream() != nullptr);
  cublasHandle_t h = ctx.cublas();
  CHECK(h != nullptr);
  CHECK(ctx.cublas() == h);
  cudaStream_t bound = nullptr;
  LONGSEQ_CUBLAS_CHECK(cublasGetStream(h, &bound));
  CHECK(bound == ctx.stream());

  cufftHandle p1 = ctx.fft_plan(CUFFT_R2C, 64, 3);
  CHECK(ctx.fft_plan(CUFFT_R2C, 64, 3) == p1);
  ctx.fft_plan(CUFFT_C2R, 64, 3);
  ctx.fft_plan(CUFFT_R2C, 64, 4);
  CHECK(ctx.fft_plan_count() == 3);
  CHECK_THROWS_WITH_AS(ctx.fft_plan(CUFFT_R2C, 0, 1), Contains("cuFFT plan of length 0"), Error);

  {
    auto s = ctx.scratch<double>(1000);
    CHECK(s.data() != nullptr);
    CHECK(s.size() == 1000);
    LONGSEQ_CUDA_CHECK(cudaMemsetAsync(s.data(), 0, 1000 * sizeof(double), ctx.stream()));
  }
  ctx.synchronize();

  ctx.arena.begin_count();
  auto a = ctx.arena.take<float>(Shape{10});
  auto b = ctx.arena.take<double>(Shape{7, 3});
  CHECK(a.data == nullptr);
  CHECK(b.data == nullptr);
  ctx.arena.allocate();
  a = ctx.arena.take<float>(Shape{10});
  b = ctx.arena.take<double>(Shape{7, 3});
  CHECK(a.data != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data) % 256 == 0);
  CHECK(reinterpret_cast<std::byte*>(b.data) - reinterpret_cast<std::byte*>(a.data) == 256);
}

TEST_CASE("philox on the device gives the host Rng's numbers for the same seed, stream and counter") {
  Context<device::cuda> ctx;
  struct Case { std::uint64_t seed, stream, skip_blocks; index_t n; };
  for (Case c : {Case{42, 0, 0, 1001}, Case{7, 3, 5, 37}, Case{~0ull, ~0ull >> 1, 1000, 64}}) {
    CAPTURE(c.seed);
    CAPTURE(c.stream);
    Tensor<float, device::cuda> du(Shape{c.n});
    Tensor<std::uint32_t, device::cuda> dw(Shape{c.n});
    fill_uniform(ctx, du.view(), c.seed, c.stream, c.skip_blocks);
    fill_u32(ctx, dw.view(), c.seed, c.stream, c.skip_blocks);
    ctx.synchronize();
    Tensor<float> hu = to_host(du);
    Tensor<std::uint32_t> hw = to_host(dw);

    Rng ru(c.seed, c.stream), rw(c.seed, c.stream);
    for (std::uint64_t k = 0; k < 4 * c.skip_blocks; ++k) { ru.next_u32(); rw.next_u32(); }
    int mismatches = 0;
    for (index_t i = 0; i < c.n; ++i) {
      mismatches += hu[i] != ru.uniform();
      mismatches += hw[i] != rw.next_u32();
    }
    CHECK(mismatches == 0);
  }
  // The known-answer vector of Philox-4x32-10 for zero key and counter, produced on the device.
  Tensor<std::uint32_t, device::cuda> z(Shape{4});
  fill_u32(ctx, z.view(), 0, 0, 0);
  Tensor<std::uint32_t> hz = to_host(z);
  CHECK(hz[0] == 0x6627e8d5u);
  CHECK(hz[3] == 0x9b00dbd8u);
}

TEST_CASE("cuda context: cuFFT plans share one work area, are capped (LRU) and may pass 2^31 elements") {
  Context<device::cuda> ctx;
  CHECK(ctx.plan_capacity() == Context<device::cuda>::default_plan_capacity);
  ctx.set_plan_capacity(4);
  CHECK_THROWS_WITH_AS(ctx.set_plan_capacity(3), Contains("plan capacity must be >= 4"), Error);
  for (index_t n : {64, 128, 256, 512, 1024, 4096}) ctx.fft_plan(CUFFT_R2C, n, 8);
  CHECK(ctx.fft_plan_count() == 4);
  const std::size_t work = ctx.fft_work_bytes();
  // The shared area only grows, to the largest plan made so far.
  ctx.fft_plan(CUFFT_R2C, 64, 8);
  CHECK(ctx.fft_work_bytes() >= work);

  // Every cached plan transforms correctly after the shared area was replaced: a constant row has all its
  // energy in bin 0.
  for (index_t n : {96, 1 << 16}) {
    const index_t rows = 3, bins = n / 2 + 1;
    Tensor<float> h(Shape{rows, n});
    for (index_t i = 0; i < h.numel(); ++i) h[i] = 1.0f;
    auto dx = to_device(h);
    Tensor<std::complex<float>, device::cuda> dX(Shape{rows, bins});
    LONGSEQ_CUFFT_CHECK(cufftExecR2C(ctx.fft_plan(CUFFT_R2C, n, rows), dx.data(),
                                     reinterpret_cast<cufftComplex*>(dX.data())));
    ctx.synchronize();
    auto X = to_host(dX);
    CHECK(X[0].real() == doctest::Approx(double(n)));
    CHECK(std::abs(X[1]) < 1e-3 * n);
    CHECK(X[bins + 0].real() == doctest::Approx(double(n)));
  }

  // A limit below what a plan needs fails with the sizes, not with a cuFFT allocation error.
  Context<device::cuda> small;
  small.fft_plan(CUFFT_R2C, 64, 1);
  small.set_fft_work_limit(small.fft_work_bytes());  // no room to grow past the tiny plan's need
  CHECK_THROWS_WITH_AS(small.fft_plan(CUFFT_R2C, (1 << 20) + 3, 64), Contains("fft_work_limit"), Error);
  CHECK(small.fft_plan_count() == 1);  // the refused plan was destroyed, not cached

  // 2^31 + 2^21 real inputs in one plan: cufftPlan1d's int sizes could not describe it (the plan needs no data).
  std::size_t free_b = 0, total_b = 0;
  LONGSEQ_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (free_b > (std::size_t(40) << 30)) {
    ctx.set_fft_work_limit(free_b / 2);
    CHECK_NOTHROW(ctx.fft_plan(CUFFT_R2C, 1 << 12, (index_t(1) << 19) + 512));
  }
}

namespace {
struct TwoParams {
  Param<float, device::cuda> a{Shape{5}}, b{Shape{3, 7}};
  template <class F>
  void parameters(F&& f) {
    f("a", a);
    f("b", b);
  }
};
}  // namespace

TEST_CASE("device ParamStore buffers are zero after bind (values, gradients and padding)") {
  // Dirty the pool first so that fresh allocations are likely to reuse non-zero memory.
  {
    Tensor<float> junk(Shape{4096});
    for (index_t i = 0; i < junk.numel(); ++i) junk[i] = 123.0f;
    for (int k = 0; k < 4; ++k) {
      auto d = to_device(junk);
    }
  }
  TwoParams m;
  ParamStore<float, device::cuda> store;
  store.bind(m);
  auto v = to_host(TensorView<float, device::cuda>(store.values()));
  auto g = to_host(TensorView<float, device::cuda>(store.grads()));
  REQUIRE(v.numel() == 16 + 32);
  int nonzero = 0;
  for (index_t i = 0; i < v.numel(); ++i) nonzero += v[i] != 0.0f || g[i] != 0.0f;
  CHECK(nonzero == 0);
}

namespace {
__global__ void write_device_ordinal(int* out) {
  int d = -1;
  cudaGetDevice(&d);
  *out = d;
}
int pointer_device(const void* p) {
  cudaPointerAttributes a{};
  LONGSEQ_CUDA_CHECK(cudaPointerGetAttributes(&a, p));
  return a.device;
}
}  // namespace

TEST_CASE("a context on ordinal 1 allocates and launches there whatever device is current") {
  if (cuda::device_count() < 2) {
    MESSAGE("one CUDA device: the non-zero ordinal case is skipped");
    return;
  }
  Context<device::cuda> ctx(1);
  CHECK(ctx.device() == 1);
  LONGSEQ_CUDA_CHECK(cudaSetDevice(0));  // another context or thread switched away
  auto s = ctx.scratch<int>(1);
  CHECK(pointer_device(s.data()) == 1);
  write_device_ordinal<<<1, 1, 0, ctx.stream()>>>(s.data());
  LONGSEQ_CUDA_LAUNCH_CHECK("write_device_ordinal");
  int got = -1;
  LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(&got, s.data(), sizeof(int), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  CHECK(got == 1);
  {
    LONGSEQ_CUDA_CHECK(cudaSetDevice(0));
    cuda::DeviceGuard on1(1);
    Tensor<float, device::cuda> t(Shape{8});
    CHECK(pointer_device(t.data()) == 1);
  }
  int cur = -1;
  LONGSEQ_CUDA_CHECK(cudaGetDevice(&cur));
  CHECK(cur == 0);  // the guard restored the previous device
  CHECK_THROWS_WITH_AS(Context<device::cuda>(cuda::device_count()), Contains("out of range"), Error);
}
