// GPU SSMConv: the device layer against the host layer on the same parameters, inputs and dropout masks (output, input
// gradient, every accumulated parameter gradient) for diagonal kernels (Vandermonde sums on the device) and a generic
// kernel (S4, evaluated on the host); parameter names, shapes and groups agree.
#include <doctest/doctest.h>

#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/cuda/ssm_conv.cuh>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "../nn/device_compare.hpp"

using namespace longseq;
using namespace longseq::ssm;

static_assert(nn::assert_layer<SSMConv<S4D<float>, Causal, device::cuda>, float, device::cuda>());
static_assert(nn::assert_layer<SSMConv<S4<float>, Bidirectional, device::cuda>, float, device::cuda>());
static_assert(SSMConv<DSS<float>, Bidirectional, device::cuda>::device_vandermonde);
static_assert(!SSMConv<S4<float>, Bidirectional, device::cuda>::device_vandermonde);
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

TEST_CASE("GPU SSMConv with DSS and DLR (device Vandermonde sums) matches the host layer") {
  compare<DSS<float>, Bidirectional>({.kernel = {.H = 8, .N = 8}, .gelu = ops::Gelu::tanh}, 2, 47, 1e-4, 23);
  compare<DLR<float>, Causal>({.kernel = {.H = 8, .N = 8}}, 2, 33, 1e-4, 24);
}

TEST_CASE("GPU SSMConv with S4 and ConvKernel (kernel on the host) matches the host layer") {
  compare<S4<float>, Bidirectional>({.kernel = {.H = 8, .N = 8, .l_max = 52}}, 2, 52, 1e-4, 25);
  compare<ConvKernel<float>, Causal>({.kernel = {.H = 8, .l_max = 40}}, 2, 40, 1e-4, 26);
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
