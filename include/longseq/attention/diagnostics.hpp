// Where attention looks: per head, the mean attention distance sum_j p_ij |i - j| and the share of
// attention mass within windows |i - j| <= w, averaged over the valid queries of each input and then over
// inputs; and the probabilities of a host MultiHeadAttention forward, recomputed from its saved queries
// and keys (the layer's own path is untouched).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/context.hpp"
#include "../core/tensor.hpp"
#include "../ops/gemm.hpp"
#include "encoder_layer.hpp"
#include "mha.hpp"

namespace longseq::attention {

// One head's statistics over the inputs added so far.
struct HeadLocality {
  // E[sum_j p_ij |i - j|]: for each input the mean over its valid queries i, then the mean over inputs.
  double mean_distance = 0;
  // Same averaging of sum_{|i - j| <= w} p_ij, one entry per window w (in the order they were given).
  std::vector<double> window_share;
  // Same averaging of the mass on padded keys (0 when the layer masked them out).
  double padding_share = 0;
};

// Which positions of an input are real. Queries at other positions are skipped; keys there are padding.
// Probabilities are taken as given (never renormalized), so mass a layer puts on padding shows up in
// padding_share and in the distance.
struct Validity {
  const std::int32_t* lengths = nullptr;  // (B): positions < lengths[b] are real
  const std::uint8_t* padding = nullptr;  // (B, L): nonzero marks a padded position
  index_t stride = 0;                     // elements between batch rows of `padding`
  bool valid(index_t b, index_t pos) const {
    if (lengths) return pos < index_t(lengths[b]);
    if (padding) return padding[b * stride + pos] == 0;
    return true;
  }
};

// The mean distance uniform attention over the first `length` keys would have (full, bidirectional):
// (L^2 - 1) / (3 L). A reference for the measured distances of inputs of that length.
inline double uniform_mean_distance(index_t length) {
  LONGSEQ_CHECK(length >= 1, "uniform_mean_distance: length ", length, ", expected >= 1");
  const double L = double(length);
  return (L * L - 1.0) / (3.0 * L);
}

namespace detail {

// Per-thread scratch of AttentionLocality: running sums of a row, one block of probabilities, q and k.
struct LocalityScratch {
  std::vector<double> prefix, probs, qk;
};

// Sums over the valid queries of one (input, head) block of probabilities.
struct BlockSums {
  double distance = 0, padding = 0;
  std::vector<double> window;
  index_t queries = 0;
};

// p: (L, L) probabilities of input b, row i at p + i * ld. prefix: scratch of L + 1 doubles.
template <class T>
void block_sums(const T* p, index_t L, index_t ld, index_t b, const Validity& v, const std::vector<index_t>& windows,
                double* prefix, BlockSums& out) {
  out.distance = out.padding = 0;
  out.window.assign(windows.size(), 0.0);
  out.queries = 0;
  for (index_t i = 0; i < L; ++i) {
    if (!v.valid(b, i)) continue;
    const T* row = p + i * ld;
    double dist = 0, pad = 0;
    prefix[0] = 0;
    for (index_t j = 0; j < L; ++j) {
      const double x = double(row[j]);
      dist += x * double(j > i ? j - i : i - j);
      if (!v.valid(b, j)) pad += x;
      prefix[j + 1] = prefix[j] + x;
    }
    // Mass within |i - j| <= w from the running sums: keys [i - w, i + w] clipped to [0, L).
    for (std::size_t k = 0; k < windows.size(); ++k) {
      const index_t w = windows[k];
      const index_t lo = std::max<index_t>(0, i - w), hi = std::min<index_t>(L, i + w + 1);
      out.window[k] += prefix[hi] - prefix[lo];
    }
    out.distance += dist;
    out.padding += pad;
    ++out.queries;
  }
}

inline void check_lengths(TensorView<const std::int32_t> lengths, index_t B, index_t L) {
  if (lengths.data == nullptr) return;
  LONGSEQ_CHECK(lengths.shape == Shape({B}), "attention locality: tensor 'lengths' has shape ", lengths.shape,
                ", expected (", B, ")");
  expect_contiguous(lengths, "lengths");
  for (index_t b = 0; b < B; ++b)
    LONGSEQ_CHECK(lengths[b] >= 0 && lengths[b] <= L, "attention locality: tensor 'lengths' holds ", lengths[b],
                  " at batch ", b, ", expected a length in [0, ", L, "]");
}

// Whether s holds a forward of m (q, k of shape (B, L, dim), the padding copy (B, L) when used).
template <class M, class S>
void check_saved(const M& m, const S& s) {
  const Shape& q = s.q.shape();
  LONGSEQ_CHECK(q.rank == 3 && q.numel() > 0 && q[2] == m.cfg.dim && s.k.shape() == q,
                "attention_probabilities: the Saved struct holds no forward of this layer (tensor 'q' has shape ", q,
                ", expected (B, L, ", m.cfg.dim, "))");
  LONGSEQ_CHECK(!s.has_pad || s.pad.shape() == Shape({q[0], q[1]}), "attention_probabilities: tensor 'pad' has "
                "shape ", s.pad.shape(), ", expected ", Shape({q[0], q[1]}));
}

}  // namespace detail

// The attention probabilities of head h for input b of m's last forward, P (L, L) row-major with
// leading dimension ld: softmax(q k^T / sqrt(head_dim)) under the layer's mask and key padding,
// recomputed in double from the saved (position-rotated) q and k. A query that sees no key gets a zero
// row, as in the forward. Dropout is not applied: these are the probabilities before it.
template <class T, class Pos>
void attention_probabilities(Context<device::host>& ctx, const MultiHeadAttention<T, device::host, Pos>& m,
                             const typename MultiHeadAttention<T, device::host, Pos>::Saved& s, index_t b,
                             index_t h, double* P, index_t ld, std::vector<double>& scratch) {
  detail::check_saved(m, s);
  const index_t B = s.q.size(0), L = s.q.size(1), dh = m.head_dim, dim = m.cfg.dim;
  LONGSEQ_CHECK(b >= 0 && b < B && h >= 0 && h < m.cfg.heads, "attention_probabilities: (input ", b, ", head ", h,
                ") out of range for ", B, " inputs and ", m.cfg.heads, " heads");
  LONGSEQ_CHECK(ld >= L, "attention_probabilities: leading dimension ", ld, " < length ", L);
  // The head's q and k rows, widened to double, then one GEMM for all scores.
  scratch.resize(std::size_t(2 * L * dh));
  double* q = scratch.data();
  double* k = q + L * dh;
  for (index_t i = 0; i < L; ++i)
    for (index_t c = 0; c < dh; ++c) {
      q[i * dh + c] = double(s.q.data()[(b * L + i) * dim + h * dh + c]);
      k[i * dh + c] = double(s.k.data()[(b * L + i) * dim + h * dh + c]);
    }
  ops::gemm<double>(ctx, ops::Trans::N, ops::Trans::T, L, L, dh, 1.0 / std::sqrt(double(dh)), q, dh, k, dh, 0.0,
                    P, ld);
  MaskSpec mask = m.mask_spec();
  if (s.has_pad) {
    mask.key_padding = s.pad.data();
    mask.key_padding_stride = L;
  }
  constexpr double neg_inf = -std::numeric_limits<double>::infinity();
  for (index_t i = 0; i < L; ++i) {
    double* row = P + i * ld;
    double mx = neg_inf;
    for (index_t j = 0; j < L; ++j) {
      if (!mask.allowed(i, j) || mask.padded(b, j)) row[j] = neg_inf;
      mx = std::max(mx, row[j]);
    }
    if (mx == neg_inf) {
      std::fill(row, row + L, 0.0);
      continue;
    }
    double z = 0;
    for (index_t j = 0; j < L; ++j) z += (row[j] = std::exp(row[j] - mx));
    for (index_t j = 0; j < L; ++j) row[j] /= z;
  }
}

// All of them at once: P (B, heads, L, L). Needs B * heads * L^2 doubles; AttentionLocality::add on the
// layer goes one (input, head) block at a time instead.
template <class T, class Pos>
Tensor<double> attention_probabilities(Context<device::host>& ctx, const MultiHeadAttention<T, device::host, Pos>& m,
                                       const typename MultiHeadAttention<T, device::host, Pos>::Saved& s) {
  detail::check_saved(m, s);
  const index_t B = s.q.size(0), L = s.q.size(1), H = m.cfg.heads;
  Tensor<double> P(Shape{B, H, L, L});
  std::vector<double> scratch;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) attention_probabilities(ctx, m, s, b, h, P.data() + (b * H + h) * L * L, L, scratch);
  return P;
}

// Accumulates the locality statistics of one attention layer over batches of inputs.
class AttentionLocality {
 public:
  explicit AttentionLocality(index_t heads, std::vector<index_t> windows = {1, 4, 16, 64})
      : heads_(heads), windows_(std::move(windows)), distance_(std::size_t(heads), 0.0),
        padding_(std::size_t(heads), 0.0), window_(std::size_t(heads), std::vector<double>(windows_.size(), 0.0)) {
    LONGSEQ_CHECK(heads >= 1, "AttentionLocality: heads = ", heads, ", expected >= 1");
    for (index_t w : windows_) LONGSEQ_CHECK(w >= 0, "AttentionLocality: option 'windows' holds ", w, ", expected >= 0");
  }

  index_t heads() const { return heads_; }
  const std::vector<index_t>& windows() const { return windows_; }
  index_t inputs() const { return inputs_; }  // inputs with at least one valid query

  // P (B, heads, L, L): the probabilities of one layer. lengths (B), optional: queries at positions >=
  // lengths[b] are skipped and keys there count as padding.
  template <class T>
  void add(TensorView<T> P, TensorView<const std::int32_t> lengths = {}) {
    const auto [B, L] = check_probs(P);
    detail::check_lengths(lengths, B, L);
    const Validity v{lengths.data, nullptr, 0};
    add_blocks(B, L, [&](index_t b, index_t h, detail::BlockSums& out, detail::LocalityScratch& w) {
      detail::block_sums(P.data + (b * heads_ + h) * L * L, L, L, b, v, windows_, w.prefix.data(), out);
    });
  }
  // The same with a key padding mask (B, L), nonzero = padded, as MultiHeadAttention::set_key_padding takes it.
  template <class T>
  void add_padded(TensorView<T> P, TensorView<const std::uint8_t> key_padding) {
    const auto [B, L] = check_probs(P);
    LONGSEQ_CHECK(key_padding.shape == Shape({B, L}), "attention locality: tensor 'key_padding' has shape ",
                  key_padding.shape, ", expected ", Shape({B, L}));
    expect_contiguous(key_padding, "key_padding");
    const Validity v{nullptr, key_padding.data, L};
    add_blocks(B, L, [&](index_t b, index_t h, detail::BlockSums& out, detail::LocalityScratch& w) {
      detail::block_sums(P.data + (b * heads_ + h) * L * L, L, L, b, v, windows_, w.prefix.data(), out);
    });
  }
  // The probabilities of m's last forward (see attention_probabilities), one (input, head) block at a time.
  // Valid positions: `lengths` when given, else the key padding the forward used, else all.
  template <class T, class Pos>
  void add(Context<device::host>& ctx, const MultiHeadAttention<T, device::host, Pos>& m,
           const typename MultiHeadAttention<T, device::host, Pos>::Saved& s,
           TensorView<const std::int32_t> lengths = {}) {
    LONGSEQ_CHECK(m.cfg.heads == heads_, "AttentionLocality: the layer has ", m.cfg.heads,
                  " heads, the statistics were set up for ", heads_);
    detail::check_saved(m, s);  // before the parallel region: nothing in it throws
    const index_t B = s.q.size(0), L = s.q.size(1);
    detail::check_lengths(lengths, B, L);
    Validity v{lengths.data, nullptr, 0};
    if (!lengths.data && s.has_pad) v = Validity{nullptr, s.pad.data(), L};
    add_blocks(B, L, [&](index_t b, index_t h, detail::BlockSums& out, detail::LocalityScratch& w) {
      w.probs.resize(std::size_t(L * L));
      attention_probabilities(ctx, m, s, b, h, w.probs.data(), L, w.qk);
      detail::block_sums(w.probs.data(), L, L, b, v, windows_, w.prefix.data(), out);
    });
  }
  // A Transformer encoder layer's attention (its last forward).
  template <class T, bool NormFirst, class Pos>
  void add(Context<device::host>& ctx, const TransformerEncoderLayer<T, NormFirst, Pos, device::host>& layer,
           const typename TransformerEncoderLayer<T, NormFirst, Pos, device::host>::Saved& s,
           TensorView<const std::int32_t> lengths = {}) {
    add(ctx, layer.attn.mixer, s.attn.mixer, lengths);
  }

  // Per head: the means over the inputs added so far (all zero before any input).
  std::vector<HeadLocality> result() const {
    std::vector<HeadLocality> out(static_cast<std::size_t>(heads_));
    const double n = inputs_ > 0 ? double(inputs_) : 1.0;
    for (std::size_t h = 0; h < out.size(); ++h) {
      out[h].mean_distance = distance_[h] / n;
      out[h].padding_share = padding_[h] / n;
      out[h].window_share.resize(windows_.size());
      for (std::size_t k = 0; k < windows_.size(); ++k) out[h].window_share[k] = window_[h][k] / n;
    }
    return out;
  }

 private:
  template <class T>
  std::pair<index_t, index_t> check_probs(const TensorView<T>& P) const {
    expect_rank(P, 4, "P");
    LONGSEQ_CHECK(P.size(1) == heads_ && P.size(2) == P.size(3), "attention locality: tensor 'P' has shape ", P.shape,
                  ", expected (B, ", heads_, ", L, L)");
    expect_contiguous(P, "P");
    return {P.size(0), P.size(2)};
  }
  // Computes every (input, head) block's sums (in parallel), then folds them in input order, so the
  // result does not depend on the thread count.
  template <class F>
  void add_blocks(index_t B, index_t L, F&& block) {
    std::vector<detail::BlockSums> sums(std::size_t(B * heads_));
    const index_t n = B * heads_;
#pragma omp parallel if (n > 1 && L >= 64)
    {
      detail::LocalityScratch w;
      w.prefix.resize(std::size_t(L + 1));
#pragma omp for schedule(dynamic)
      for (index_t k = 0; k < n; ++k) block(k / heads_, k % heads_, sums[std::size_t(k)], w);
    }
    for (index_t b = 0; b < B; ++b) {
      const auto* first = &sums[std::size_t(b * heads_)];
      if (first->queries == 0) continue;  // an empty input has no query to average over
      for (index_t h = 0; h < heads_; ++h) {
        const auto& s = sums[std::size_t(b * heads_ + h)];
        const double q = double(s.queries);
        distance_[std::size_t(h)] += s.distance / q;
        padding_[std::size_t(h)] += s.padding / q;
        for (std::size_t k = 0; k < windows_.size(); ++k) window_[std::size_t(h)][k] += s.window[k] / q;
      }
      ++inputs_;
    }
  }

  index_t heads_;
  std::vector<index_t> windows_;
  std::vector<double> distance_, padding_;
  std::vector<std::vector<double>> window_;
  index_t inputs_ = 0;
};

}  // namespace longseq::attention
