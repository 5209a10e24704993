// Multi-head attention mixer: q, k, v, out projections with bias; full, causal or block-local masks,
// key padding, attention dropout and a q/k position policy (NoRotation or Rotary). The host path runs
// flash.hpp; the CUDA policy (in .cu translation units) runs cuda/flash.cuh and cuda/rotary.cuh, with the
// same saved tensors on the device.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../nn/layer.hpp"
#include "../nn/linear.hpp"
#include "../ops/elementwise.hpp"
#include "flash.hpp"
#include "rotary.hpp"

namespace longseq::attention {

template <class T, class D = device::host, class Position = NoRotation>
struct MultiHeadAttention {
  static_assert(QKPosition<Position, T>,
                "MultiHeadAttention: Position must be a q/k position policy "
                "(NoRotation, Rotary) with apply/apply_backward");
  static_assert(!D::is_gpu || !std::is_same_v<T, double>,
                "MultiHeadAttention: the CUDA flash kernels take float, half or bf16, not double");
  using value_type = T;
  using device_type = D;
  // The log-sum-exp per query: T on the host, fp32 for every T in the CUDA kernels.
  using lse_type = std::conditional_t<D::is_gpu, float, T>;
  struct Config {
    index_t dim = 0;  // model width = heads * head_dim
    index_t heads = 1;
    bool causal = false;
    double dropout = 0.0;  // on the attention probabilities, training only
    std::uint64_t stream = 0;
    index_t window = 0;  // 0: full attention; > 0: block-local attention (see MaskSpec)
    index_t look_back = 1, look_forward = 1;
    bool bias = true;
    typename Position::Config position{};
    index_t block = 256;  // flash tile; see FlashArgs for measured sizes
  };
  struct Saved {
    Tensor<T, D> x;                 // input
    Tensor<T, D> q, k, v;           // projections after the position policy, (B, L, dim)
    Tensor<T, D> o;                 // attention output before out_proj
    Tensor<lse_type, D> lse;        // (B, heads, L)
    Tensor<std::uint8_t, D> pad;    // key padding copy, (B, L); meaningful only when has_pad
    bool has_pad = false;
    double dropout_used = 0.0;
    std::uint64_t seed = 0;
    Tensor<T, D> d_o, dq, dk, dv, tmp;  // backward scratch
  };

  Config cfg;
  index_t head_dim;
  nn::Linear<T, D> q_proj, k_proj, v_proj, out_proj;
  Position position;
  // Optional (B, L) key padding, nonzero = padded key, in D's memory; read by the next forward calls.
  TensorView<const std::uint8_t, D> key_padding;

  explicit MultiHeadAttention(Config c)
      : cfg(c),
        head_dim(checked_head_dim(c)),
        q_proj({c.dim, c.dim, c.bias}),
        k_proj({c.dim, c.dim, c.bias}),
        v_proj({c.dim, c.dim, c.bias}),
        out_proj({c.dim, c.dim, c.bias}),
        position(c.position, head_dim) {
    LONGSEQ_CHECK(c.dropout >= 0 && c.dropout < 1, "attention dropout must be in [0, 1), got ", c.dropout);
    LONGSEQ_CHECK(c.window >= 0 && c.look_back >= 0 && c.look_forward >= 0,
                  "attention window and look_back/look_forward must be >= 0");
    if constexpr (D::is_gpu)
      LONGSEQ_CHECK(head_dim <= 128, "MultiHeadAttention (CUDA): head_dim ", head_dim, " (dim ", c.dim, " / heads ",
                    c.heads, ") is not supported by the CUDA flash kernels; expected at most 128");
  }

  template <class F>
  void parameters(F&& f) {
    q_proj.parameters(prefixed("q_proj", f));
    k_proj.parameters(prefixed("k_proj", f));
    v_proj.parameters(prefixed("v_proj", f));
    out_proj.parameters(prefixed("out_proj", f));
    position.parameters(prefixed("position", f));
  }
  void init(Rng& rng) {
    q_proj.init(rng);
    k_proj.init(rng);
    v_proj.init(rng);
    out_proj.init(rng);
    position.init(rng);
  }

  // Key padding (B, L), nonzero = padded; the view must stay valid through the next forward.
  void set_key_padding(TensorView<const std::uint8_t, D> m) { key_padding = m; }

  MaskSpec mask_spec() const {
    MaskSpec m;
    m.causal = cfg.causal;
    m.window = cfg.window;
    m.look_back = cfg.look_back;
    m.look_forward = cfg.causal ? 0 : cfg.look_forward;
    return m;
  }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_rank(x, 3, "x");
    LONGSEQ_CHECK(x.size(2) == cfg.dim, "MultiHeadAttention: tensor 'x' has shape ", x.shape, ", expected (B, L, ",
                  cfg.dim, ")");
    expect_shape(y, x.shape, "y");
    const index_t B = x.size(0), L = x.size(1);
    s.has_pad = key_padding.data != nullptr;
    if (s.has_pad) {
      LONGSEQ_CHECK(key_padding.shape == Shape({B, L}), "MultiHeadAttention: tensor 'key_padding' has shape ",
                    key_padding.shape, ", expected ", Shape({B, L}));
      expect_contiguous(key_padding, "key_padding");
      s.pad.resize(Shape{B, L});
      ops::copy<std::uint8_t, std::uint8_t>(ctx, key_padding, s.pad.view());
    }
    s.x.resize(x.shape);
    ops::copy<T, T>(ctx, x, s.x.view());
    for (auto* t : {&s.q, &s.k, &s.v, &s.o}) t->resize(x.shape);
    s.lse.resize(Shape{B, cfg.heads, L});
    q_proj.apply(ctx, x, s.q.view());
    k_proj.apply(ctx, x, s.k.view());
    v_proj.apply(ctx, x, s.v.view());
    rotate(ctx, s.q.data(), B, L, false);
    rotate(ctx, s.k.data(), B, L, false);
    s.dropout_used = ctx.training ? cfg.dropout : 0.0;
    s.seed = ctx.seed;
    const auto a = args(s, B, L);
    flash_forward(ctx, a, s.o.data(), L * cfg.dim, cfg.dim, s.lse.data());
    out_proj.apply(ctx, s.o.view(), y);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dy, s.x.shape(), "dy");
    expect_shape(dx, s.x.shape(), "dx");
    const index_t B = s.x.size(0), L = s.x.size(1);
    for (auto* t : {&s.d_o, &s.dq, &s.dk, &s.dv, &s.tmp}) t->resize(s.x.shape());
    out_proj.backward_from(ctx, s.o.view(), dy, s.d_o.view());
    const auto a = args(s, B, L);
    flash_backward(ctx, a, s.o.data(), L * cfg.dim, cfg.dim, s.lse.data(), s.d_o.data(), s.dq.data(), s.dk.data(),
                   s.dv.data());
    rotate(ctx, s.dq.data(), B, L, true);
    rotate(ctx, s.dk.data(), B, L, true);
    q_proj.backward_from(ctx, s.x.view(), s.dq.view(), dx);
    k_proj.backward_from(ctx, s.x.view(), s.dk.view(), s.tmp.view());
    ops::add_inplace(ctx, dx, TensorView<const T, D>(s.tmp.view()));
    v_proj.backward_from(ctx, s.x.view(), s.dv.view(), s.tmp.view());
    ops::add_inplace(ctx, dx, TensorView<const T, D>(s.tmp.view()));
  }

 private:
  static index_t checked_head_dim(const Config& c) {
    LONGSEQ_CHECK(c.dim > 0 && c.heads > 0 && c.dim % c.heads == 0, "MultiHeadAttention: dim ", c.dim,
                  " must be a positive multiple of heads ", c.heads);
    return c.dim / c.heads;
  }
  // The position policy on q, k (forward) or their gradients (backward), (B, L, dim) in D's memory. The
  // device overloads position_apply (NoRotation, Rotary) live in cuda/rotary.cuh and are found by ADL.
  void rotate(Context<D>& ctx, T* p, index_t B, index_t L, bool backward) const {
    if constexpr (D::is_gpu) {
      position_apply(ctx, position, p, B, L, cfg.heads, index_t(0), cfg.dim, backward);
    } else {
      (void)ctx;
      if (backward)
        position.apply_backward(p, B, L, cfg.heads, 0, cfg.dim);
      else
        position.apply(p, B, L, cfg.heads, 0, cfg.dim);
    }
  }
  FlashArgs<T> args(const Saved& s, index_t B, index_t L) const {
    FlashArgs<T> a;
    a.batch = B;
    a.heads = cfg.heads;
    a.len_q = a.len_k = L;
    a.head_dim = head_dim;
    a.q = s.q.data();
    a.k = s.k.data();
    a.v = s.v.data();
    a.q_batch = a.k_batch = a.v_batch = L * cfg.dim;
    a.q_row = a.k_row = a.v_row = cfg.dim;
    a.scale = 1.0 / std::sqrt(double(head_dim));
    a.mask = mask_spec();
    if (s.has_pad) {
      a.mask.key_padding = s.pad.data();
      a.mask.key_padding_stride = L;
    }
    a.dropout = s.dropout_used;
    a.seed = s.seed;
    a.stream = cfg.stream;
    a.block_q = a.block_k = cfg.block;
    return a;
  }
};

static_assert(nn::assert_layer<MultiHeadAttention<float>, float>());
static_assert(nn::assert_layer<MultiHeadAttention<double, device::host, Rotary>, double>());

}  // namespace longseq::attention
