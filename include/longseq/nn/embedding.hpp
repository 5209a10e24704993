// nn::Embedding: token ids (B, L) -> vectors (B, L, H) by table lookup, with an optional padding id
// whose row stays zero and receives no gradient. One template for both device policies: the lookup and
// its scatter-add backward are ops with a host and a CUDA overload (nn/cuda/embedding.cuh).
#pragma once
#include <algorithm>
#include <cstdint>

#include "../ops/elementwise.hpp"
#include "layer.hpp"

namespace longseq::nn {

namespace detail {

// y[i, :] = weight[ids[i], :]; every id is checked first.
template <class T>
void embedding_gather(Context<device::host>&, TensorView<const std::int32_t> ids, TensorView<const T> weight,
                      TensorView<T> y) {
  const index_t n = ids.numel(), vocab = weight.size(0), h = weight.size(1);
  for (index_t i = 0; i < n; ++i)
    LONGSEQ_CHECK(ids[i] >= 0 && ids[i] < vocab, "Embedding: tensor 'ids' holds id ", ids[i], " at flat index ", i,
                  ", expected 0 <= id < ", vocab);
#pragma omp parallel for if (n * h > 65536)
  for (index_t i = 0; i < n; ++i) std::copy_n(weight.data + index_t(ids[i]) * h, h, y.data + i * h);
}

// grad[ids[i], :] += dy[i, :] for every i in order, skipping padding_idx.
template <class T>
void embedding_scatter_add(Context<device::host>&, TensorView<const std::int32_t> ids, TensorView<const T> dy,
                           TensorView<T> grad, index_t padding_idx) {
  const index_t n = ids.numel(), h = grad.size(1);
  for (index_t i = 0; i < n; ++i) {
    const index_t id = ids[i];
    if (id == padding_idx) continue;
    T* g = grad.data + id * h;
    const T* d = dy.data + i * h;
    for (index_t k = 0; k < h; ++k) g[k] += d[k];
  }
}

}  // namespace detail
}  // namespace longseq::nn

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads of the lookup ops
#include "cuda/embedding.cuh"
#endif

namespace longseq::nn {

template <class T, class D = device::host>
struct Embedding {
  using value_type = T;
  using device_type = D;
  using id_type = std::int32_t;
  struct Config {
    index_t vocab = 0, dim = 0;
    index_t padding_idx = -1;  // < 0: none
    double init_std = 1.0;     // N(0, init_std^2) as PyTorch's nn.Embedding
  };
  struct Saved {
    Tensor<id_type, D> ids;  // copy of the input ids
  };

  Config cfg;
  Param<T, D> weight;  // (vocab, dim)

  explicit Embedding(Config c) : cfg(c), weight(Shape{c.vocab, c.dim}, ParamGroup::weight) {
    LONGSEQ_CHECK(c.vocab > 0 && c.dim > 0, "Embedding needs positive sizes, got vocab=", c.vocab, " dim=", c.dim);
    LONGSEQ_CHECK(c.padding_idx < c.vocab, "Embedding: padding_idx ", c.padding_idx, " is outside the vocabulary of ",
                  c.vocab);
  }
  template <class F>
  void parameters(F&& f) { f("weight", weight); }
  void init(Rng& rng) {
    static_assert(!D::is_gpu, "Embedding::init fills host memory; initialize on the host and copy");
    for (index_t i = 0; i < weight.value.numel(); ++i) weight.value[i] = T(rng.normal(0.0, cfg.init_std));
    if (cfg.padding_idx >= 0)
      std::fill(weight.value.data + cfg.padding_idx * cfg.dim, weight.value.data + (cfg.padding_idx + 1) * cfg.dim,
                T(0));
  }

  // On the device an id outside the vocabulary gives a zero row (the host throws).
  void forward(Context<D>& ctx, TensorView<const id_type, D> ids, TensorView<T, D> y, Saved& s) {
    expect_contiguous(ids, "ids");
    Shape want = ids.shape;
    LONGSEQ_CHECK(want.rank < Shape::max_rank, "Embedding: ids of rank ", want.rank, " are too many dims");
    want.dims[want.rank++] = cfg.dim;
    expect_shape(y, want, "y");
    expect_contiguous(y, "y");
    LONGSEQ_CHECK(weight.value.data != nullptr, "Embedding: parameters are not bound (call ParamStore::bind)");
    detail::embedding_gather<T>(ctx, ids, TensorView<const T, D>(weight.value), y);
    s.ids.resize(ids.shape);
    ops::copy<id_type, id_type>(ctx, ids, s.ids.view());
  }

  // Accumulates dy into the rows that were looked up (padding row excluded); ids have no gradient.
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) {
    const index_t n = s.ids.numel(), h = cfg.dim;
    LONGSEQ_CHECK(dy.numel() == n * h && dy.size(-1) == h, "Embedding: tensor 'dy' has shape ", dy.shape,
                  ", expected the ids' shape ", s.ids.shape(), " plus ", h);
    expect_contiguous(dy, "dy");
    detail::embedding_scatter_add<T>(ctx, TensorView<const id_type, D>(s.ids.view()), dy, weight.grad,
                                     cfg.padding_idx);
  }
};

}  // namespace longseq::nn
