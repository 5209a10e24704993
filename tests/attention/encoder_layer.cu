// GPU TransformerEncoderLayer: the device layer against the host layer on the same parameters, inputs and
// masks (output, input gradient, every parameter gradient), pre- and post-norm, causal, key padding, dropout.
#include <doctest/doctest.h>

#include <cstdint>
#include <longseq/attention/encoder_layer.hpp>

#include "../nn/device_compare.hpp"

using namespace longseq;
using attention::TransformerEncoderLayer;

static_assert(nn::assert_layer<TransformerEncoderLayer<float, true, attention::NoRotation, device::cuda>, float,
                               device::cuda>());
static_assert(nn::assert_layer<TransformerEncoderLayer<float, false, attention::Rotary, device::cuda>, float,
                               device::cuda>());

namespace {

constexpr index_t B = 2, L = 37, dim = 64, heads = 2;  // head_dim 32

template <bool Pre, class Pos, class D>
typename TransformerEncoderLayer<float, Pre, Pos, D>::Config config_of(bool causal, double dropout,
                                                                        nn::Activation act) {
  typename TransformerEncoderLayer<float, Pre, Pos, D>::Config c;
  c.dim = dim;
  c.heads = heads;
  c.ff_hidden = 96;
  c.activation = act;
  c.causal = causal;
  c.dropout = dropout;
  c.stream = 1;
  return c;
}

template <bool Pre, class Pos = attention::NoRotation>
void compare_encoder(bool causal, bool padding, double dropout, nn::Activation act) {
  INFO("pre-norm ", Pre, ", causal ", causal, ", padding ", padding, ", dropout ", dropout);
  TransformerEncoderLayer<float, Pre, Pos> h(config_of<Pre, Pos, device::host>(causal, dropout, act));
  TransformerEncoderLayer<float, Pre, Pos, device::cuda> d(config_of<Pre, Pos, device::cuda>(causal, dropout, act));
  Tensor<std::uint8_t> pad(Shape{B, L});
  for (index_t l = L - 7; l < L; ++l) pad(1, l) = 1;
  auto pad_d = to_device(pad);
  if (padding) {
    h.set_key_padding(pad.view());
    d.set_key_padding(pad_d.view());
  }
  testing::compare_layer(h, d, Shape{B, L, dim}, Shape{B, L, dim}, 1e-4, 17);
}

}  // namespace

TEST_CASE("TransformerEncoderLayer on the GPU matches the host layer") {
  using nn::Activation;
  compare_encoder<true>(false, false, 0.0, Activation::relu);
  compare_encoder<false>(false, false, 0.0, Activation::relu);
  compare_encoder<true>(true, false, 0.0, Activation::gelu);
  compare_encoder<true>(false, true, 0.0, Activation::gelu);
  compare_encoder<false>(true, true, 0.2, Activation::relu);
  compare_encoder<true, attention::Rotary>(true, false, 0.1, Activation::gelu);
}
