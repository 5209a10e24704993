// nn::Offload on a chosen CUDA ordinal: the device layer, its store and the saved tensors live on that device
// even when another one is current. The ordinal-1 case needs two devices and is skipped on one.
#include <doctest/doctest.h>

#include <longseq/nn/cuda/offload.cuh>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/linear.hpp>

using namespace longseq;
using doctest::Contains;

namespace {
using Host = nn::Linear<float>;
using Dev = nn::Linear<float, device::cuda>;
using Off = nn::Offload<Host, Dev>;

int pointer_device(const void* p) {
  cudaPointerAttributes a{};
  LONGSEQ_CUDA_CHECK(cudaPointerGetAttributes(&a, p));
  return a.device;
}
}  // namespace

TEST_CASE("Offload refuses an ordinal past the devices present") {
  Off::Config c{{.in = 4, .out = 3}, {.in = 4, .out = 3}, cuda::device_count()};
  CHECK_THROWS_WITH_AS([&] { Off o(c); }(), Contains("out of range"), Error);
}

TEST_CASE("Offload on ordinal 1 allocates its device parameters there, whatever device is current") {
  if (cuda::device_count() < 2) {
    MESSAGE("one CUDA device: the non-zero ordinal case is skipped");
    return;
  }
  LONGSEQ_CUDA_CHECK(cudaSetDevice(0));
  Off off({{.in = 4, .out = 3}, {.in = 4, .out = 3}, 1});
  CHECK(pointer_device(off.dev.weight.value.data) == 1);
  ParamStore<float> store;
  store.bind(off);
  Rng rng(3);
  off.init(rng);
  LONGSEQ_CUDA_CHECK(cudaSetDevice(0));
  Context<device::host> hctx;
  Tensor<float> x(Shape{2, 4}, 0.5f), y(Shape{2, 3});
  Off::Saved s;
  off.forward(hctx, x.view(), y.view(), s);
  CHECK(off.context().device() == 1);
  CHECK(pointer_device(s.x.data()) == 1);
  // Same numbers as the host layer on the same parameters.
  Tensor<float> yh(Shape{2, 3});
  Host::Saved hs;
  off.host.forward(hctx, x.view(), yh.view(), hs);
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == doctest::Approx(yh[i]).epsilon(1e-5));
}
