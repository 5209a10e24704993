// Self-pretraining inputs and targets: i.i.d. Bernoulli(p) or SpanBERT-like span masking (masked
// token -> <mask> = 0; masked pixel -> value 0 plus a mask-indicator channel), and causal next-token
// targets. Targets carry ignore_index (-100, class targets) or ignore_value (-10000, L1 targets)
// wherever no loss is taken. Masks depend only on (seed, epoch, example, document), via Philox.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../core/rng.hpp"
#include "batching.hpp"

namespace longseq::data {

inline constexpr std::int32_t ignore_index = -100;
inline constexpr float ignore_value = -10000.0f;

enum class MaskKind { bernoulli, span };

struct MaskOptions {
  double p = 0.5;            // share of positions masked
  MaskKind kind = MaskKind::bernoulli;
  double span_length = 3;    // span masking: tokens per span; below 1 a fraction of the length
  std::uint64_t seed = 0;
};

// Philox stream of one document in one epoch: epoch in the high 32 bits, example*docs+doc below.
inline std::uint64_t mask_stream(index_t epoch, index_t example, int docs = 1, int doc = 0) {
  return (std::uint64_t(epoch) << 32) | std::uint32_t(example * docs + doc);
}

// Position t is masked when Philox(seed, stream, t / 4)[t % 4] as a 24-bit uniform is below p
// (the same rule a device kernel can evaluate independently per position).
inline std::vector<std::uint8_t> bernoulli_mask(index_t length, double p, std::uint64_t seed, std::uint64_t stream) {
  std::vector<std::uint8_t> m(std::size_t(length), 0);
  for (index_t t = 0; t < length; t += 4) {
    auto r = Philox::generate(seed, stream, std::uint64_t(t / 4));
    for (index_t j = 0; j < 4 && t + j < length; ++j) m[std::size_t(t + j)] = double(Philox::to_unit(r.v[j])) < p;
  }
  return m;
}

// SpanBERT-like: span length s (s < 1: s*L), int(L*p/s) spans placed one after another at starts
// drawn uniformly from [0, L-s) among those still allowed; after a start is taken, every start in
// [start-s, start+s) is forbidden, so spans neither overlap nor touch. Stops early when none is left.
inline std::vector<std::uint8_t> span_mask(index_t length, double p, double span_length, std::uint64_t seed, std::uint64_t stream) {
  LONGSEQ_CHECK(span_length > 0, "span masking: span_length must be positive, got ", span_length);
  std::vector<std::uint8_t> m(std::size_t(length), 0);
  index_t s = span_length < 1 ? index_t(span_length * double(length)) : index_t(span_length);
  s = std::max<index_t>(s, 1);
  index_t n_spans = index_t(double(length) * p / double(s)), n_starts = length - s;
  if (n_spans <= 0 || n_starts <= 0) return m;
  // Allowed starts kept in a vector with a position map so that draws and removals are O(1).
  std::vector<index_t> allowed(static_cast<std::size_t>(n_starts)), where(static_cast<std::size_t>(n_starts));
  for (index_t i = 0; i < n_starts; ++i) allowed[std::size_t(i)] = where[std::size_t(i)] = i;
  auto forbid = [&](index_t x) {
    index_t w = where[std::size_t(x)];
    if (w < 0) return;
    index_t last = allowed.back();
    allowed[std::size_t(w)] = last;
    where[std::size_t(last)] = w;
    allowed.pop_back();
    where[std::size_t(x)] = -1;
  };
  Rng rng(seed, stream);
  for (index_t k = 0; k < n_spans && !allowed.empty(); ++k) {
    index_t start = allowed[std::size_t(rng.below(allowed.size()))];
    std::fill_n(m.begin() + std::ptrdiff_t(start), s, std::uint8_t(1));
    for (index_t x = std::max<index_t>(0, start - s); x < std::min(n_starts, start + s); ++x) forbid(x);
  }
  return m;
}

inline std::vector<std::uint8_t> make_mask(index_t length, const MaskOptions& o, std::uint64_t stream) {
  LONGSEQ_CHECK(o.p >= 0 && o.p <= 1, "masking probability must be in [0, 1], got ", o.p);
  return o.kind == MaskKind::bernoulli ? bernoulli_mask(length, o.p, o.seed, stream)
                                       : span_mask(length, o.p, o.span_length, o.seed, stream);
}

// Masked-denoising inputs and targets for one batch, all (rows, length) row-major except `values`.
struct MaskedBatch {
  index_t rows = 0, length = 0;
  std::vector<std::int32_t> ids;          // input ids, masked positions set to <mask> = 0
  std::vector<float> values;              // pixel tasks: (rows, length, 2) = [value * (1 - m), m]
  std::vector<std::uint8_t> masked;       // 1 where masked (never at padding)
  std::vector<std::int32_t> targets;      // original id where masked, ignore_index elsewhere
  std::vector<float> value_targets;       // pixel tasks: normalized value where masked, ignore_value elsewhere
};

inline MaskedBatch mask_batch(const Batch& b, const MaskOptions& o, index_t epoch) {
  MaskedBatch out;
  out.rows = b.rows;
  out.length = b.length;
  const auto n = std::size_t(b.rows * b.length);
  const bool pixels = b.modality == Modality::pixels;
  out.ids = b.ids;
  out.masked.assign(n, 0);
  out.targets.assign(n, ignore_index);
  if (pixels) {
    out.values.assign(2 * n, 0.0f);
    out.value_targets.assign(n, ignore_value);
  }
  for (index_t r = 0; r < b.rows; ++r) {
    index_t example = b.indices[std::size_t(r % b.size)];
    int doc = int(r / b.size);
    auto m = make_mask(b.lengths[std::size_t(r)], o, mask_stream(epoch, example, b.docs, doc));
    for (index_t t = 0; t < index_t(m.size()); ++t) {
      std::size_t k = std::size_t(r * b.length + t);
      if (pixels) {
        out.values[2 * k] = m[std::size_t(t)] ? 0.0f : b.values[k];
        out.values[2 * k + 1] = float(m[std::size_t(t)]);
      }
      if (!m[std::size_t(t)]) continue;
      out.masked[k] = 1;
      out.targets[k] = b.ids[k];
      out.ids[k] = Vocab::mask_id;
      if (pixels) out.value_targets[k] = b.values[k];
    }
  }
  return out;
}

// Next-token targets: target[t] = ids[t+1] (values[t+1] for L1), the last real position and the
// padding carry the ignore values. The input is the batch unchanged.
struct CausalTargets {
  std::vector<std::int32_t> targets;
  std::vector<float> value_targets;  // pixel tasks only
};

inline CausalTargets causal_targets(const Batch& b) {
  CausalTargets out;
  const auto n = std::size_t(b.rows * b.length);
  const bool pixels = b.modality == Modality::pixels;
  out.targets.assign(n, ignore_index);
  if (pixels) out.value_targets.assign(n, ignore_value);
  for (index_t r = 0; r < b.rows; ++r)
    for (index_t t = 0; t + 1 < b.lengths[std::size_t(r)]; ++t) {
      std::size_t k = std::size_t(r * b.length + t);
      out.targets[k] = b.ids[k + 1];
      if (pixels) out.value_targets[k] = b.values[k + 1];
    }
  return out;
}

}  // namespace longseq::data
