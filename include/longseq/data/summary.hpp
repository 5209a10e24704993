// Statistics of a split for inspection: example count, label balance, length min/mean/max and the
// most frequent ids (token ids, or pixel intensities).
#pragma once
#include <algorithm>
#include <limits>
#include <map>
#include <vector>

#include "dataset.hpp"

namespace longseq::data {

struct SplitSummary {
  index_t count = 0;
  std::map<std::int32_t, index_t> labels;  // label -> examples
  index_t min_length = 0, max_length = 0;  // over documents (both documents of a retrieval pair)
  double mean_length = 0;
  std::vector<std::pair<std::int32_t, index_t>> top_ids;  // most frequent ids, descending
};

// `read_ids` false skips reading examples (lengths come from source.length(); no id statistics),
// for streaming sources whose examples are expensive to decode.
template <ExampleSource S>
SplitSummary summarize(const S& src, index_t top_k = 10, bool read_ids = true) {
  SplitSummary s;
  s.count = src.size();
  std::map<std::int32_t, index_t> freq;
  index_t docs_seen = 0;
  double total = 0;
  s.min_length = s.count > 0 ? std::numeric_limits<index_t>::max() : 0;
  auto add_length = [&](index_t n) {
    s.min_length = std::min(s.min_length, n);
    s.max_length = std::max(s.max_length, n);
    total += double(n);
    ++docs_seen;
  };
  Example e;
  for (index_t i = 0; i < s.count; ++i) {
    ++s.labels[src.label(i)];
    if (!read_ids) {
      add_length(src.length(i));
      continue;
    }
    src.read(i, e);
    add_length(index_t(e.ids.size()));
    if (src.info().docs == 2) add_length(index_t(e.ids2.size()));
    for (auto id : e.ids) ++freq[id];
    for (auto id : e.ids2) ++freq[id];
  }
  s.mean_length = docs_seen ? total / double(docs_seen) : 0.0;
  s.top_ids.assign(freq.begin(), freq.end());
  std::stable_sort(s.top_ids.begin(), s.top_ids.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (index_t(s.top_ids.size()) > top_k) s.top_ids.resize(std::size_t(top_k));
  return s;
}

}  // namespace longseq::data
