// Which keys a query may see: causal order, block-local windows and key padding, as one small struct.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>

#include "../core/shape.hpp"

namespace longseq::attention {

struct MaskSpec {
  bool causal = false;
  // 0: full attention. w > 0: the sequence is cut into blocks of w positions and a query in block b sees
  // keys in blocks [b - look_back, b + look_forward] (only [b - look_back, b] when causal).
  index_t window = 0;
  index_t look_back = 1, look_forward = 1;
  // Key position of query 0: the number of cached keys before the first query (0 in a full pass).
  index_t q_offset = 0;
  // (B, Lk) bytes, nonzero marks a padded key that no query may attend to; null: no padding.
  const std::uint8_t* key_padding = nullptr;
  index_t key_padding_stride = 0;  // elements between batch rows of key_padding

  // qpos is the query's position in key coordinates (query index + q_offset).
  bool allowed(index_t qpos, index_t k) const {
    if (causal && k > qpos) return false;
    if (window > 0) {
      const index_t bq = qpos / window, bk = k / window;
      if (bk < bq - look_back) return false;
      if (!causal && bk > bq + look_forward) return false;
    }
    return true;
  }
  bool padded(index_t batch, index_t k) const {
    return key_padding != nullptr && key_padding[batch * key_padding_stride + k] != 0;
  }
  // Whether every pair of queries [p0, p1] and keys [k0, k1] (inclusive, key coordinates) is allowed,
  // padding aside; lets whole tiles skip the per-entry test.
  bool tile_all_allowed(index_t p0, index_t p1, index_t k0, index_t k1) const {
    if (causal && k1 > p0) return false;
    if (window > 0) {
      if (k0 / window < p1 / window - look_back) return false;
      if (!causal && k1 / window > p0 / window + look_forward) return false;
    }
    return true;
  }
  // Keys [lo, hi) that queries at positions [p0, p1] might see (a superset; allowed() decides per pair).
  std::pair<index_t, index_t> key_range(index_t p0, index_t p1, index_t len_k) const {
    index_t lo = 0, hi = len_k;
    if (causal) hi = std::min(hi, p1 + 1);
    if (window > 0) {
      lo = std::max<index_t>(lo, (p0 / window - look_back) * window);
      if (!causal) hi = std::min(hi, (p1 / window + look_forward + 1) * window);
    }
    return {std::min(lo, len_k), std::max<index_t>(hi, 0)};
  }
};

}  // namespace longseq::attention
