// Incremental causal decoding: a key/value cache and a step that attends new tokens to everything
// cached so far, giving the same outputs as the full causal forward over the whole prefix.
#pragma once
#include <algorithm>
#include <type_traits>

#include "mha.hpp"

namespace longseq::attention {

template <class T>
struct KVCache {
  Tensor<T> k, v;  // (B, capacity, dim): projected (and rotated) keys and values of past positions
  index_t batch = 0, capacity = 0, dim = 0, len = 0;
  KVCache() = default;
  KVCache(index_t b, index_t cap, index_t d)
      : k(Shape{b, cap, d}), v(Shape{b, cap, d}), batch(b), capacity(cap), dim(d) {}
  void reset() { len = 0; }
};

// Scratch of one decode step (kept by the caller so repeated steps do not allocate).
template <class T>
struct DecodeScratch {
  Tensor<T> q, kn, vn, o, lse;
};

// Consumes x (B, n, dim) = the next n positions and writes y (B, n, dim). Padding masks are not used
// while decoding; dropout is off (inference).
template <class T, class Position>
void decode_step(MultiHeadAttention<T, device::host, Position>& m, Context<device::host>& ctx, KVCache<T>& cache,
                 std::type_identity_t<TensorView<const T>> x, std::type_identity_t<TensorView<T>> y,
                 DecodeScratch<T>& s) {
  LONGSEQ_CHECK(m.cfg.causal, "decode_step needs a causal attention layer (got a bidirectional one)");
  expect_rank(x, 3, "x");
  const index_t B = x.size(0), n = x.size(1), Dm = m.cfg.dim;
  LONGSEQ_CHECK(B == cache.batch && x.size(2) == Dm && cache.dim == Dm, "decode_step: tensor 'x' has shape ", x.shape,
                ", expected (", cache.batch, ", n, ", Dm, ") to match the cache");
  expect_shape(y, x.shape, "y");
  LONGSEQ_CHECK(cache.len + n <= cache.capacity, "decode_step: cache of capacity ", cache.capacity, " holds ",
                cache.len, " positions, cannot append ", n);
  for (auto* t : {&s.q, &s.kn, &s.vn, &s.o}) t->resize(x.shape);
  s.lse.resize(Shape{B, m.cfg.heads, n});
  m.q_proj.apply(ctx, x, s.q.view());
  m.k_proj.apply(ctx, x, s.kn.view());
  m.v_proj.apply(ctx, x, s.vn.view());
  m.position.apply(s.q.data(), B, n, m.cfg.heads, cache.len, Dm);
  m.position.apply(s.kn.data(), B, n, m.cfg.heads, cache.len, Dm);
  for (index_t b = 0; b < B; ++b) {
    std::copy(s.kn.data() + b * n * Dm, s.kn.data() + (b + 1) * n * Dm,
              cache.k.data() + (b * cache.capacity + cache.len) * Dm);
    std::copy(s.vn.data() + b * n * Dm, s.vn.data() + (b + 1) * n * Dm,
              cache.v.data() + (b * cache.capacity + cache.len) * Dm);
  }
  FlashArgs<T> a;
  a.batch = B;
  a.heads = m.cfg.heads;
  a.len_q = n;
  a.len_k = cache.len + n;
  a.head_dim = m.head_dim;
  a.q = s.q.data();
  a.q_batch = n * Dm;
  a.k = cache.k.data();
  a.v = cache.v.data();
  a.k_batch = a.v_batch = cache.capacity * Dm;
  a.q_row = a.k_row = a.v_row = Dm;
  a.scale = 1.0 / std::sqrt(double(m.head_dim));
  a.mask = m.mask_spec();
  a.mask.q_offset = cache.len;
  a.block_q = a.block_k = m.cfg.block;
  flash_forward(ctx, a, s.o.data(), n * Dm, Dm, s.lse.data());
  m.out_proj.apply(ctx, s.o.view(), y);
  cache.len += n;
}

}  // namespace longseq::attention
