// GPU MultiHeadAttention: the device layer (cuBLAS projections, CUDA flash kernels, device rotary) against
// the host layer on the same parameters, inputs and masks: output, input gradient and every parameter
// gradient, for bidirectional, causal, key-padded and block-local attention, rotary positions and dropout.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <longseq/attention/mha.hpp>
#include <longseq/core/cuda/memory.cuh>

#include "../nn/device_compare.hpp"

using namespace longseq;
using attention::MultiHeadAttention;

static_assert(nn::assert_layer<MultiHeadAttention<float, device::cuda>, float, device::cuda>());
static_assert(nn::assert_layer<MultiHeadAttention<float, device::cuda, attention::Rotary>, float, device::cuda>());

namespace {

struct Spec {
  const char* name;
  bool causal = false;
  index_t window = 0, look_back = 1, look_forward = 1;
  bool padding = false;
  double dropout = 0.0;
};

// Lengths not multiples of the CUDA tiles (rows 8/16, key tiles of 32), head_dim 32 (a tile size; 16 is padded).
constexpr index_t B = 2, L = 45, dim = 64, heads = 2;

template <class Pos, class D>
typename MultiHeadAttention<float, D, Pos>::Config config_of(const Spec& s, typename Pos::Config pos,
                                                             index_t n_heads = heads) {
  typename MultiHeadAttention<float, D, Pos>::Config c;
  c.dim = dim;
  c.heads = n_heads;
  c.causal = s.causal;
  c.dropout = s.dropout;
  c.stream = 3;
  c.window = s.window;
  c.look_back = s.look_back;
  c.look_forward = s.look_forward;
  c.position = pos;
  c.block = 16;  // several host tiles per sequence
  return c;
}

template <class Pos>
void compare_mha(const Spec& spec, typename Pos::Config pos = {}, index_t n_heads = heads) {
  INFO("case: ", spec.name, ", heads ", n_heads);
  using HostM = MultiHeadAttention<float, device::host, Pos>;
  using DevM = MultiHeadAttention<float, device::cuda, Pos>;
  HostM h(config_of<Pos, device::host>(spec, pos, n_heads));
  DevM d(config_of<Pos, device::cuda>(spec, pos, n_heads));
  ParamStore<float> hs;
  ParamStore<float, device::cuda> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(29);
  h.init(rng);
  testing::fill_uniform(hs.grads(), rng, 0.5);  // checks that parameter gradients accumulate
  testing::copy_store(hs, ds);

  Tensor<float> x(Shape{B, L, dim}), dy(Shape{B, L, dim}), y(Shape{B, L, dim}), dx(Shape{B, L, dim});
  testing::fill_uniform(x.view(), rng);
  testing::fill_uniform(dy.view(), rng);
  // Sequence 1 has 10 padded keys at its end; sequence 0 none.
  Tensor<std::uint8_t> pad(Shape{B, L});
  for (index_t l = L - 10; l < L; ++l) pad(1, l) = 1;
  auto pad_d = to_device(pad);
  if (spec.padding) {
    h.set_key_padding(pad.view());
    d.set_key_padding(pad_d.view());
  }

  HostContext hctx;
  Context<device::cuda> dctx;
  hctx.seed = dctx.seed = 1234;
  typename HostM::Saved hsaved;
  typename DevM::Saved dsaved;
  h.forward(hctx, x.view(), y.view(), hsaved);
  h.backward(hctx, hsaved, dy.view(), dx.view());

  auto xd = to_device(x), dyd = to_device(dy);
  Tensor<float, device::cuda> yd(y.shape()), dxd(dx.shape());
  d.forward(dctx, xd.view(), yd.view(), dsaved);
  d.backward(dctx, dsaved, dyd.view(), dxd.view());
  dctx.synchronize();

  // Saved projections after the position policy, and the log-sum-exp (fp32 on both sides for float).
  CHECK(testing::rel_error<float>(dsaved.q.view(), hsaved.q.view()) < 1e-5);
  CHECK(testing::rel_error<float>(dsaved.k.view(), hsaved.k.view()) < 1e-5);
  CHECK(testing::rel_error<float>(dsaved.lse.view(), hsaved.lse.view()) < 1e-4);
  CHECK(testing::rel_error<float>(dsaved.o.view(), hsaved.o.view()) < 1e-4);
  CHECK(testing::rel_error<float>(yd.view(), y.view()) < 1e-4);
  CHECK(testing::rel_error<float>(dxd.view(), dx.view()) < 1e-4);
  testing::check_grads(hs, ds, 1e-4);
}

const Spec specs[] = {
    {"bidirectional"},
    {"causal", true},
    {"key padding", false, 0, 1, 1, true},
    {"causal with key padding", true, 0, 1, 1, true},
    {"local blocks", false, 8, 1, 1},
    {"local causal blocks", true, 8, 2, 0},
    {"local blocks with key padding", false, 16, 1, 2, true},
    {"attention dropout (same Philox mask on both sides)", false, 0, 1, 1, false, 0.25},
};

}  // namespace

TEST_CASE("MultiHeadAttention on the GPU matches the host layer (forward and every gradient)") {
  for (const Spec& s : specs) compare_mha<attention::NoRotation>(s);
}

TEST_CASE("MultiHeadAttention with head_dim 16 (zero-padded to the 32 tile on the GPU) matches the host layer") {
  compare_mha<attention::NoRotation>({"causal with key padding", true, 0, 1, 1, true}, {}, 4);
  compare_mha<attention::NoRotation>({"attention dropout", false, 0, 1, 1, false, 0.25}, {}, 4);
}

TEST_CASE("MultiHeadAttention with rotary positions on the GPU matches the host layer") {
  compare_mha<attention::Rotary>({"rotary, causal", true});
  compare_mha<attention::Rotary>({"rotary, half the head rotated, interleaved, padded", false, 0, 1, 1, true},
                                 attention::Rotary::Config{0.5, 10000.0, true});
}

TEST_CASE("MultiHeadAttention on the GPU rejects bad inputs with readable errors") {
  using DevM = MultiHeadAttention<float, device::cuda>;
  DevM m(config_of<attention::NoRotation, device::cuda>({"bad"}, {}));
  ParamStore<float, device::cuda> store;
  store.bind(m);
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{B, L, dim}), y(Shape{B, L, dim});
  Tensor<std::uint8_t, device::cuda> pad(Shape{B, L + 1});
  m.set_key_padding(pad.view());
  DevM::Saved s;
  CHECK_THROWS_WITH_AS(m.forward(ctx, x.view(), y.view(), s),
                       doctest::Contains("tensor 'key_padding' has shape (2, 46), expected (2, 45)"), Error);
  // A head wider than the largest flash tile is refused when the layer is made.
  typename DevM::Config c = config_of<attention::NoRotation, device::cuda>({"bad"}, {});
  c.dim = 256;
  c.heads = 1;
  CHECK_THROWS_WITH_AS(DevM{c}, doctest::Contains("head_dim 256 (dim 256 / heads 1) is not supported"), Error);
}
