// GPU SSMConv: the one SSMConv template on device::cuda against the host policy on the same parameters, inputs and
// dropout masks (output, input gradient, every accumulated parameter gradient) for every parameterization, each
// computing its kernel on the device (Vandermonde sums, S4's Cauchy / Woodbury code, ConvKernel's taps), up to the
// Path-X lengths L = 16384 and 65536; bf16 storage against the float layer; parameter names, shapes and groups agree.
#include <doctest/doctest.h>

#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "../nn/device_compare.hpp"
#include "cuda_test_util.cuh"

using namespace longseq;
using namespace longseq::ssm;

static_assert(nn::assert_layer<SSMConv<S4D<float>, Causal, device::cuda>, float, device::cuda>());
static_assert(nn::assert_layer<SSMConv<S4<float>, Bidirectional, device::cuda>, float, device::cuda>());
// A parameterization named without a policy follows the layer's; one named on the device sets the layer's default.
static_assert(std::is_same_v<SSMConv<S4D<float>, Causal, device::cuda>::kernel_type, S4D<float, ZOH, device::cuda>>);
static_assert(std::is_same_v<SSMConv<S4<float, device::cuda>, Causal>::device_type, device::cuda>);
static_assert(std::is_same_v<SSMConv<S4D<float>, Causal>::device_type, device::host>);
static_assert(std::is_same_v<SSMConv<S4D<float>, Causal>::Config, SSMConv<S4D<bf16>, Causal, device::cuda>::Config>,
              "one Config serves every storage type and policy");
static_assert(std::is_move_constructible_v<SSMConv<S4D<float>, Bidirectional, device::cuda>>,
              "layers are held in std::vector by nn::Stack");

namespace {

struct Slot {
  std::string name;
  Shape shape;
  ParamGroup group;
  bool operator==(const Slot&) const = default;
};

template <class Layer>
std::vector<Slot> slots(Layer& layer) {
  std::vector<Slot> r;
  layer.parameters([&](std::string_view name, auto& p) { r.push_back({std::string(name), p.shape, p.group}); });
  return r;
}

// Builds the host and the device layer from one Config and compares them on (B, L, H) inputs.
template <class Kernel, class Dir>
void compare(typename SSMConv<Kernel, Dir>::Config cfg, index_t B, index_t L, double tol, std::uint64_t seed) {
  SSMConv<Kernel, Dir> h(cfg);
  SSMConv<Kernel, Dir, device::cuda> d(cfg);
  const index_t H = h.width();
  REQUIRE(d.width() == H);
  testing::compare_layer(h, d, Shape{B, L, H}, Shape{B, L, H}, tol, seed);
}

}  // namespace

TEST_CASE("GPU SSMConv names, shapes and groups its parameters like the host layer") {
  SSMConv<S4D<float>, Bidirectional> h({.kernel = {.H = 8, .N = 16}});
  SSMConv<S4D<float>, Bidirectional, device::cuda> d({.kernel = {.H = 8, .N = 16}});
  CHECK(slots(h) == slots(d));
  CHECK(slots(d).front().name == "kernel.log_dt");
  SSMConv<S4<float>, Causal> hs({.kernel = {.H = 4, .N = 8, .l_max = 16}});
  SSMConv<S4<float>, Causal, device::cuda> ds({.kernel = {.H = 4, .N = 8, .l_max = 16}});
  CHECK(slots(hs) == slots(ds));
  SSMConv<ConvKernel<float>, Bidirectional> hc({.kernel = {.H = 4, .l_max = 16}});
  SSMConv<ConvKernel<float>, Bidirectional, device::cuda> dc({.kernel = {.H = 4, .l_max = 16}});
  CHECK(slots(hc) == slots(dc));
}

TEST_CASE("GPU SSMConv with S4D, causal, matches the host layer") {
  compare<S4D<float>, Causal>({.kernel = {.H = 8, .N = 16}}, 2, 50, 1e-4, 21);
}

TEST_CASE("GPU SSMConv with S4D, bidirectional, dropout 0.1, matches the host layer") {
  compare<S4D<float>, Bidirectional>({.kernel = {.H = 8, .N = 16}, .dropout = 0.1, .stream = 3}, 2, 50, 1e-4, 22);
}

TEST_CASE("GPU SSMConv with S4D (bilinear, shared copies) matches the host layer") {
  compare<S4D<float, Bilinear>, Bidirectional>({.kernel = {.H = 8, .N = 16, .n_ssm = 2, .init = S4DInit::lin}}, 2, 37,
                                               1e-4, 27);
}

TEST_CASE("GPU SSMConv with DSS and DLR matches the host layer") {
  compare<DSS<float>, Bidirectional>({.kernel = {.H = 8, .N = 8}, .gelu = ops::Gelu::tanh}, 2, 47, 1e-4, 23);
  compare<DSS<float, DSSVariant::softmax>, Causal>({.kernel = {.H = 8, .N = 8}}, 2, 30, 1e-4, 28);
  compare<DLR<float>, Causal>({.kernel = {.H = 8, .N = 8}}, 2, 33, 1e-4, 24);
}

TEST_CASE("GPU SSMConv with S4 and ConvKernel matches the host layer") {
  compare<S4<float>, Bidirectional>({.kernel = {.H = 8, .N = 8, .l_max = 52}}, 2, 52, 1e-4, 25);
  compare<S4<float>, Causal>({.kernel = {.H = 6, .N = 8, .l_max = 64, .n_ssm = 3}}, 2, 40, 1e-4, 29);
  compare<ConvKernel<float>, Causal>({.kernel = {.H = 8, .l_max = 40}}, 2, 40, 1e-4, 26);
  compare<ConvKernel<float>, Bidirectional>({.kernel = {.H = 4, .l_max = 40, .decay = 0.5, .smooth = 0.25}}, 2, 33,
                                            1e-4, 30);
}

TEST_CASE("GPU SSMConv at the Path-X lengths L = 16384 and 65536 matches the host layer") {
  compare<S4D<float>, Bidirectional>({.kernel = {.H = 2, .N = 8}}, 1, 16384, 1e-3, 31);
  compare<S4D<float>, Causal>({.kernel = {.H = 2, .N = 8}}, 1, 65536, 1e-3, 32);
  compare<DSS<float>, Causal>({.kernel = {.H = 2, .N = 4}}, 1, 65536, 1e-3, 33);
  compare<DLR<float>, Bidirectional>({.kernel = {.H = 2, .N = 4}}, 1, 16384, 1e-3, 34);
  compare<S4<float>, Causal>({.kernel = {.H = 2, .N = 4, .l_max = 16384}}, 1, 16384, 1e-3, 35);
  compare<S4<float>, Bidirectional>({.kernel = {.H = 1, .N = 4, .l_max = 65536}}, 1, 65536, 2e-3, 36);
  compare<ConvKernel<float>, Bidirectional>({.kernel = {.H = 2, .l_max = 65536}}, 1, 65536, 1e-3, 37);
}

// Mixed precision: parameters and activations stored in bf16 on the device, the kernel, its gradients and the
// FFTs in float; against the float host layer run on the bf16-rounded parameters and inputs.
template <class KernelF, class KernelB, class Dir>
void compare_bf16(typename SSMConv<KernelF, Dir>::Config cfg, index_t B, index_t L, double tol, std::uint64_t seed) {
  SSMConv<KernelF, Dir> h(cfg);
  SSMConv<KernelB, Dir, device::cuda> d(cfg);
  ParamStore<float> hs;
  ParamStore<bf16, device::cuda> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(seed);
  h.init(rng);
  Tensor<float> hv(hs.values().shape);
  std::copy(hs.values().data, hs.values().data + hv.numel(), hv.data());
  hv = test::bf16_rounded(hv);
  std::copy(hv.data(), hv.data() + hv.numel(), hs.values().data);
  copy_to_device<bf16>(test::to_bf16(hv).view(), ds.values());
  const index_t H = h.width();
  Tensor<float> x(Shape{B, L, H}), dy(Shape{B, L, H}), y(Shape{B, L, H}), dx(Shape{B, L, H});
  testing::fill_uniform(x.view(), rng);
  testing::fill_uniform(dy.view(), rng);
  x = test::bf16_rounded(x);
  dy = test::bf16_rounded(dy);
  HostContext hctx;
  Context<device::cuda> dctx;
  typename SSMConv<KernelF, Dir>::Saved hsaved;
  typename SSMConv<KernelB, Dir, device::cuda>::Saved dsaved;
  h.forward(hctx, x.view(), y.view(), hsaved);
  h.backward(hctx, hsaved, dy.view(), dx.view());
  auto xd = to_device(test::to_bf16(x)), dyd = to_device(test::to_bf16(dy));
  Tensor<bf16, device::cuda> yd(Shape{B, L, H}), dxd(Shape{B, L, H});
  d.forward(dctx, xd.view(), yd.view(), dsaved);
  d.backward(dctx, dsaved, dyd.view(), dxd.view());
  dctx.synchronize();
  auto err = [](const Tensor<bf16>& got, TensorView<const float> want) {
    double m = 1e-3, e = 0;
    for (index_t i = 0; i < want.numel(); ++i) m = std::max(m, std::abs(double(want[i])));
    for (index_t i = 0; i < want.numel(); ++i) {
      double d = std::abs(double(float(got[i])) - double(want[i]));
      if (!(d <= e)) e = std::isfinite(d) ? d : INFINITY;
    }
    return e / m;
  };
  CHECK(err(to_host(yd.view()), y.view()) < tol);
  CHECK(err(to_host(dxd.view()), dx.view()) < tol);
  const Tensor<bf16> g = to_host(TensorView<const bf16, device::cuda>(ds.grads()));
  for (const auto& e : hs.entries()) {
    Tensor<bf16> got(e.param->shape);
    std::copy(g.data() + e.offset, g.data() + e.offset + got.numel(), got.data());
    INFO("gradient of '", e.name, "'");
    CHECK(err(got, e.param->grad) < tol);
  }
}

TEST_CASE("GPU SSMConv in bf16 storage (float kernel and FFTs) tracks the float layer") {
  compare_bf16<S4D<float>, S4D<bf16>, Bidirectional>({.kernel = {.H = 8, .N = 16}}, 2, 64, 5e-2, 41);
  compare_bf16<S4<float>, S4<bf16>, Causal>({.kernel = {.H = 4, .N = 8, .l_max = 64}}, 2, 64, 5e-2, 42);
  compare_bf16<DLR<float>, DLR<bf16>, Causal>({.kernel = {.H = 4, .N = 8}}, 2, 48, 5e-2, 43);
  compare_bf16<ConvKernel<float>, ConvKernel<bf16>, Causal>({.kernel = {.H = 4, .l_max = 48}}, 2, 48, 5e-2, 44);
}

TEST_CASE("GPU SSMConv rejects bad shapes and unbound parameters") {
  using Layer = SSMConv<S4D<float>, Causal, device::cuda>;
  Layer layer({.kernel = {.H = 4, .N = 4}});
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{2, 16, 4}), y(Shape{2, 16, 4});
  Layer::Saved s;
  CHECK_THROWS_WITH_AS(layer.forward(ctx, x.view(), y.view(), s), doctest::Contains("parameters are not bound"), Error);
  ParamStore<float, device::cuda> store;
  store.bind(layer);
  Tensor<float, device::cuda> xb(Shape{2, 16, 5});
  CHECK_THROWS_WITH_AS(layer.forward(ctx, xb.view(), xb.view(), s),
                       doctest::Contains("SSMConv: tensor 'x' has shape (2, 16, 5), expected (B, L, 4)"), Error);
  CHECK_THROWS_WITH_AS((Layer({.kernel = {.H = 4}, .dropout = 1.0})), doctest::Contains("expected [0, 1)"), Error);
}
