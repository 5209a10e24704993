// Batching: padding to the batch's longest or a fixed length (pad id 1) with masks and lengths,
// deterministic per-epoch shuffling from a seed, length bucketing, and a Loader over any
// ExampleSource (in-memory or streaming: examples are read only when their batch is built).
#pragma once
#include <algorithm>
#include <exception>
#include <numeric>
#include <span>
#include <vector>

#include "../core/rng.hpp"
#include "dataset.hpp"

namespace longseq::data {

struct PadOptions {
  index_t fixed_length = 0;           // 0: pad to the longest sequence of the batch
  std::int32_t pad_id = Vocab::pad_id;
  float pad_value = 0.0f;             // pixel tasks
};

// A padded batch, row-major (rows, length). Retrieval batches hold 2B rows: the first documents of
// the B pairs in rows 0..B-1, the second documents in rows B..2B-1 (the retrieval head splits them).
struct Batch {
  index_t size = 0;    // examples
  index_t rows = 0;    // size * docs
  index_t length = 0;  // padded length
  int docs = 1;
  Modality modality = Modality::tokens;
  std::vector<std::int32_t> ids;      // token ids, or pixel intensities 0..255 (class targets)
  std::vector<float> values;          // normalized pixels (pixel tasks only)
  std::vector<std::uint8_t> mask;     // 1 at real positions, 0 at padding
  std::vector<std::int32_t> lengths;  // (rows)
  std::vector<std::int32_t> labels;   // (size)
  std::vector<index_t> indices;       // (size) example index in the source
};

// Reads idx[k] for all k (in parallel when OpenMP is on); the first error is rethrown.
template <ExampleSource S>
std::vector<Example> read_examples(const S& src, std::span<const index_t> idx) {
  std::vector<Example> ex(idx.size());
  std::vector<std::exception_ptr> err(idx.size());
  const auto n = std::int64_t(idx.size());
#pragma omp parallel for schedule(dynamic) if (n > 1)
  for (std::int64_t k = 0; k < n; ++k) {
    try {
      src.read(idx[std::size_t(k)], ex[std::size_t(k)]);
    } catch (...) {
      err[std::size_t(k)] = std::current_exception();
    }
  }
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
  return ex;
}

template <ExampleSource S>
Batch make_batch(const S& src, std::span<const index_t> idx, const PadOptions& pad = {}) {
  const TaskInfo& info = src.info();
  auto ex = read_examples(src, idx);
  Batch b;
  b.size = index_t(idx.size());
  b.docs = info.docs;
  b.rows = b.size * b.docs;
  b.modality = info.modality;
  b.indices.assign(idx.begin(), idx.end());
  auto doc = [&](index_t r) -> const Example& { return ex[std::size_t(r % b.size)]; };
  auto doc_ids = [&](index_t r) -> const std::vector<std::int32_t>& { return r < b.size ? doc(r).ids : doc(r).ids2; };
  index_t longest = 0;
  for (index_t r = 0; r < b.rows; ++r) longest = std::max(longest, index_t(doc_ids(r).size()));
  b.length = longest;
  if (pad.fixed_length > 0) {
    LONGSEQ_CHECK(longest <= pad.fixed_length, "batch of ", info.name, ": a sequence of length ", longest,
                  " exceeds the fixed padded length ", pad.fixed_length);
    b.length = pad.fixed_length;
  }
  const auto L = std::size_t(b.length);
  b.ids.assign(std::size_t(b.rows) * L, pad.pad_id);
  b.mask.assign(std::size_t(b.rows) * L, 0);
  if (b.modality == Modality::pixels) b.values.assign(std::size_t(b.rows) * L, pad.pad_value);
  for (index_t r = 0; r < b.rows; ++r) {
    const auto& ids = doc_ids(r);
    std::copy(ids.begin(), ids.end(), b.ids.begin() + std::ptrdiff_t(std::size_t(r) * L));
    std::fill_n(b.mask.begin() + std::ptrdiff_t(std::size_t(r) * L), ids.size(), std::uint8_t(1));
    if (b.modality == Modality::pixels) std::copy(doc(r).values.begin(), doc(r).values.end(), b.values.begin() + std::ptrdiff_t(std::size_t(r) * L));
    b.lengths.push_back(std::int32_t(ids.size()));
  }
  for (const auto& e : ex) b.labels.push_back(e.label);
  return b;
}

struct LoaderOptions {
  index_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;
  // Length bucketing: within windows of bucket_batches * batch_size examples (in epoch order),
  // examples are sorted by length before being cut into batches, and the batches are then shuffled.
  // 0 turns bucketing off.
  index_t bucket_batches = 0;
  PadOptions pad{};
};

// The example order of one epoch: a permutation drawn from (seed, epoch), or 0..n-1 without shuffling.
inline std::vector<index_t> epoch_order(index_t n, std::uint64_t seed, index_t epoch, bool shuffle = true) {
  if (shuffle) return permutation(n, seed, std::uint64_t(epoch) * 2);
  std::vector<index_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), index_t(0));
  return p;
}

// Groups one epoch's examples into batches (indices into the source).
inline std::vector<std::vector<index_t>> plan_batches(std::span<const index_t> lengths, const LoaderOptions& o, index_t epoch) {
  LONGSEQ_CHECK(o.batch_size > 0, "batch_size must be positive, got ", o.batch_size);
  const auto n = index_t(lengths.size());
  auto order = epoch_order(n, o.seed, epoch, o.shuffle);
  if (o.bucket_batches > 0) {
    const index_t window = o.bucket_batches * o.batch_size;
    for (index_t w = 0; w < n; w += window) {
      auto first = order.begin() + std::ptrdiff_t(w), last = order.begin() + std::ptrdiff_t(std::min(n, w + window));
      std::stable_sort(first, last, [&](index_t a, index_t b) { return lengths[std::size_t(a)] < lengths[std::size_t(b)]; });
    }
  }
  std::vector<std::vector<index_t>> batches;
  for (index_t s = 0; s < n; s += o.batch_size) {
    index_t e = std::min(n, s + o.batch_size);
    if (o.drop_last && e - s < o.batch_size) break;
    batches.emplace_back(order.begin() + std::ptrdiff_t(s), order.begin() + std::ptrdiff_t(e));
  }
  if (o.bucket_batches > 0 && o.shuffle) {
    auto p = permutation(index_t(batches.size()), o.seed, std::uint64_t(epoch) * 2 + 1);
    std::vector<std::vector<index_t>> shuffled;
    for (index_t k : p) shuffled.push_back(std::move(batches[std::size_t(k)]));
    batches = std::move(shuffled);
  }
  return batches;
}

// Batches of a source, epoch by epoch. The source must outlive the loader.
template <ExampleSource S>
class Loader {
 public:
  Loader(const S& src, LoaderOptions opt) : src_(&src), opt_(opt) {
    lengths_.resize(std::size_t(src.size()));
    for (index_t i = 0; i < src.size(); ++i) lengths_[std::size_t(i)] = src.length(i);
    set_epoch(0);
  }
  void set_epoch(index_t epoch) {
    epoch_ = epoch;
    plan_ = plan_batches(lengths_, opt_, epoch);
  }
  index_t epoch() const { return epoch_; }
  index_t num_batches() const { return index_t(plan_.size()); }
  const std::vector<index_t>& batch_indices(index_t b) const {
    LONGSEQ_CHECK(b >= 0 && b < num_batches(), "batch ", b, " out of range: the epoch has ", num_batches(), " batches");
    return plan_[std::size_t(b)];
  }
  Batch batch(index_t b) const { return make_batch(*src_, std::span<const index_t>(batch_indices(b)), opt_.pad); }
  const S& source() const { return *src_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  const S* src_;
  LoaderOptions opt_;
  std::vector<index_t> lengths_;
  index_t epoch_ = 0;
  std::vector<std::vector<index_t>> plan_;
};

}  // namespace longseq::data
