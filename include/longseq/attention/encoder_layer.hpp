// The Transformer encoder layer (self-attention block then feed-forward block, pre- or post-norm), the
// same computation as torch.nn.TransformerEncoderLayer with batch_first and its norm_first flag. Runs on
// either device policy D (on the GPU: float, head_dim 32, 64 or 128; see cuda/flash.cuh).
#pragma once
#include <type_traits>

#include "../nn/feed_forward.hpp"
#include "../nn/norm_layers.hpp"
#include "../nn/residual.hpp"
#include "mha.hpp"

namespace longseq::attention {

// NormFirst: x + Attn(LN1(x)) then h + FF(LN2(h)); otherwise LN1(x + Attn(x)) then LN2(h + FF(h)).
template <class T, bool NormFirst, class Position = NoRotation, class D = device::host>
struct TransformerEncoderLayer {
  using value_type = T;
  using device_type = D;
  using Norm = nn::LayerNorm<T, D>;
  using Attention = MultiHeadAttention<T, D, Position>;
  using FF = nn::FeedForward<T, D>;
  template <class N, class M>
  using Residual = std::conditional_t<NormFirst, nn::PreNormResidual<N, M>, nn::PostNormResidual<N, M>>;
  using AttnBlock = Residual<Norm, Attention>;
  using FFBlock = Residual<Norm, FF>;

  struct Config {
    index_t dim = 0, heads = 1, ff_hidden = 0;
    nn::Activation activation = nn::Activation::relu;  // PyTorch's default
    bool causal = false;
    double eps = 1e-5;
    double dropout = 0.0;  // residual dropout of both blocks
    std::uint64_t stream = 0;
    typename Position::Config position{};
    index_t window = 0;  // block-local attention (see MaskSpec); 0: full attention
    index_t look_back = 1, look_forward = 1;
  };
  struct Saved {
    typename AttnBlock::Saved attn;
    typename FFBlock::Saved ff;
    Tensor<T, D> h, dh;  // output of the attention block and its gradient
  };

  Config cfg;
  AttnBlock attn;
  FFBlock ff;

  explicit TransformerEncoderLayer(Config c) : cfg(c), attn(attn_config(c)), ff(ff_config(c)) {}

  // Names: attn.norm.*, attn.mixer.{q,k,v,out}_proj.*, ff.norm.*, ff.mixer.linear{1,2}.*
  template <class F>
  void parameters(F&& f) {
    attn.parameters(prefixed("attn", f));
    ff.parameters(prefixed("ff", f));
  }
  void init(Rng& rng) {
    attn.init(rng);
    ff.init(rng);
  }
  // Key padding (B, L) in D's memory, nonzero = padded, used by the following forward calls.
  void set_key_padding(TensorView<const std::uint8_t, D> m) { attn.set_key_padding(m); }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    s.h.resize(x.shape);
    attn.forward(ctx, x, s.h.view(), s.attn);
    ff.forward(ctx, s.h.view(), y, s.ff);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    s.dh.resize(dy.shape);
    ff.backward(ctx, s.ff, dy, s.dh.view());
    attn.backward(ctx, s.attn, s.dh.view(), dx);
  }

 private:
  static typename AttnBlock::Config attn_config(const Config& c) {
    typename AttnBlock::Config a;
    a.norm = {.dim = c.dim, .eps = c.eps};
    a.mixer.dim = c.dim;
    a.mixer.heads = c.heads;
    a.mixer.causal = c.causal;
    a.mixer.position = c.position;
    a.mixer.window = c.window;
    a.mixer.look_back = c.look_back;
    a.mixer.look_forward = c.look_forward;
    a.dropout = c.dropout;
    a.stream = 2 * c.stream + 1;
    return a;
  }
  static typename FFBlock::Config ff_config(const Config& c) {
    typename FFBlock::Config f;
    f.norm = {.dim = c.dim, .eps = c.eps};
    f.mixer.dim = c.dim;  // field by field: nvcc rejects designated initializers that skip a member
    f.mixer.hidden = c.ff_hidden;
    f.mixer.activation = c.activation;
    f.dropout = c.dropout;
    f.stream = 2 * c.stream + 2;
    return f;
  }
};

static_assert(nn::assert_layer<TransformerEncoderLayer<float, true>, float>());
static_assert(nn::assert_layer<TransformerEncoderLayer<double, false>, double>());

}  // namespace longseq::attention
