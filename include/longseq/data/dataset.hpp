// In-memory sequence-classification datasets (token ids or 8-bit pixels, label, length per example),
// the ExampleSource concept shared with streaming readers, subsets and train/val/test splits.
#pragma once
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/shape.hpp"
#include "vocab.hpp"

namespace longseq::data {

enum class Modality { tokens, pixels };

// Pixel normalization: value = (v / 255 - mean) / std for an 8-bit intensity v.
struct PixelNorm {
  float mean = 0.5f, std = 0.5f;
  float operator()(std::uint8_t v) const { return (float(v) / 255.0f - mean) / std; }
};

// What a model needs to know about a task.
struct TaskInfo {
  std::string name;
  Modality modality = Modality::tokens;
  int docs = 1;               // 2 for retrieval: each example is a pair of documents
  index_t num_classes = 2;    // classification labels 0 .. num_classes-1
  index_t vocab_size = 0;     // range of ids: vocabulary size (tokens) or 256 intensities (pixels)
  index_t max_length = 0;     // longest sequence the reader produces
  index_t width = 0, height = 0;  // image tasks: row-major flattening of height x width pixels
  PixelNorm norm{};
};

// One example as handed to batching. For pixel tasks `ids` holds the raw intensities 0..255 (the
// class targets of CE pretraining) and `values` the normalized pixels; token tasks leave `values` empty.
// Retrieval pairs put the second document in ids2.
struct Example {
  std::vector<std::int32_t> ids, ids2;
  std::vector<float> values;
  std::int32_t label = 0;
};

// Anything batching can draw examples from: an in-memory Dataset, a Subset, or a streaming reader.
template <class S>
concept ExampleSource = requires(const S& s, index_t i, Example& e) {
  { s.size() } -> std::convertible_to<index_t>;
  { s.info() } -> std::convertible_to<const TaskInfo&>;
  { s.length(i) } -> std::convertible_to<index_t>;  // longest document of example i (cheap: for bucketing)
  { s.label(i) } -> std::convertible_to<std::int32_t>;
  s.read(i, e);
};

// Examples stored back to back: document j occupies [offsets[j], offsets[j+1]) of `tokens` (token
// tasks) or `pixels` (pixel tasks); example i owns documents i*docs .. i*docs+docs-1.
class Dataset {
 public:
  Dataset() = default;
  explicit Dataset(TaskInfo info) : info_(std::move(info)) {}

  const TaskInfo& info() const { return info_; }
  TaskInfo& info() { return info_; }
  index_t size() const { return index_t(labels_.size()); }
  std::int32_t label(index_t i) const { return labels_[check(i)]; }
  const std::vector<std::int32_t>& labels() const { return labels_; }

  index_t doc_length(index_t i, int doc = 0) const {
    std::size_t j = check(i) * std::size_t(info_.docs) + std::size_t(doc);
    return offsets_[j + 1] - offsets_[j];
  }
  index_t length(index_t i) const {
    index_t n = 0;
    for (int d = 0; d < info_.docs; ++d) n = std::max(n, doc_length(i, d));
    return n;
  }
  std::span<const std::int32_t> tokens(index_t i, int doc = 0) const {
    std::size_t j = check(i) * std::size_t(info_.docs) + std::size_t(doc);
    return {tokens_.data() + offsets_[j], std::size_t(offsets_[j + 1] - offsets_[j])};
  }
  std::span<const std::uint8_t> pixels(index_t i) const {
    std::size_t j = check(i);
    return {pixels_.data() + offsets_[j], std::size_t(offsets_[j + 1] - offsets_[j])};
  }

  void read(index_t i, Example& e) const {
    e.label = label(i);
    e.ids2.clear();
    if (info_.modality == Modality::tokens) {
      auto t = tokens(i);
      e.ids.assign(t.begin(), t.end());
      if (info_.docs == 2) {
        auto t2 = tokens(i, 1);
        e.ids2.assign(t2.begin(), t2.end());
      }
      e.values.clear();
    } else {
      auto p = pixels(i);
      e.ids.assign(p.begin(), p.end());
      e.values.resize(p.size());
      for (std::size_t k = 0; k < p.size(); ++k) e.values[k] = info_.norm(p[k]);
    }
  }

  // Appends a token example (one span per document).
  void add_tokens(std::int32_t label, std::span<const std::int32_t> doc,
                  std::span<const std::int32_t> doc2 = {}) {
    LONGSEQ_CHECK(info_.modality == Modality::tokens, "dataset '", info_.name, "' holds pixels, not tokens");
    LONGSEQ_CHECK(info_.docs == 2 || doc2.empty(), "dataset '", info_.name, "' holds single documents");
    tokens_.insert(tokens_.end(), doc.begin(), doc.end());
    offsets_.push_back(index_t(tokens_.size()));
    if (info_.docs == 2) {
      tokens_.insert(tokens_.end(), doc2.begin(), doc2.end());
      offsets_.push_back(index_t(tokens_.size()));
    }
    labels_.push_back(label);
  }
  void add_pixels(std::int32_t label, std::span<const std::uint8_t> img) {
    LONGSEQ_CHECK(info_.modality == Modality::pixels, "dataset '", info_.name, "' holds tokens, not pixels");
    pixels_.insert(pixels_.end(), img.begin(), img.end());
    offsets_.push_back(index_t(pixels_.size()));
    labels_.push_back(label);
  }
  void reserve(index_t examples, index_t elements) {
    labels_.reserve(std::size_t(examples));
    offsets_.reserve(std::size_t(examples * info_.docs + 1));
    if (info_.modality == Modality::tokens) tokens_.reserve(std::size_t(elements));
    else pixels_.reserve(std::size_t(elements));
  }

  // A new dataset holding copies of the given examples, in that order.
  Dataset select(std::span<const index_t> idx) const {
    Dataset out(info_);
    for (index_t i : idx) {
      if (info_.modality == Modality::tokens) out.add_tokens(label(i), tokens(i), info_.docs == 2 ? tokens(i, 1) : std::span<const std::int32_t>{});
      else out.add_pixels(label(i), pixels(i));
    }
    return out;
  }

 private:
  std::size_t check(index_t i) const {
    LONGSEQ_CHECK(i >= 0 && i < size(), "example index ", i, " out of range for dataset '", info_.name, "' of size ", size());
    return std::size_t(i);
  }
  TaskInfo info_;
  std::vector<std::int32_t> tokens_;
  std::vector<std::uint8_t> pixels_;
  std::vector<index_t> offsets_{0};
  std::vector<std::int32_t> labels_;
};

static_assert(ExampleSource<Dataset>, "Dataset must model ExampleSource (size, info, length, label, read)");

// A view of some examples of another source (e.g. one split of a streaming reader); no copies.
template <ExampleSource S>
class Subset {
 public:
  Subset(const S& base, std::vector<index_t> idx) : base_(&base), idx_(std::move(idx)) {
    for (index_t i : idx_)
      LONGSEQ_CHECK(i >= 0 && i < base.size(), "subset index ", i, " out of range for source of size ", base.size());
  }
  index_t size() const { return index_t(idx_.size()); }
  const TaskInfo& info() const { return base_->info(); }
  index_t length(index_t i) const { return base_->length(at(i)); }
  std::int32_t label(index_t i) const { return base_->label(at(i)); }
  void read(index_t i, Example& e) const { base_->read(at(i), e); }
  const std::vector<index_t>& indices() const { return idx_; }

 private:
  index_t at(index_t i) const {
    LONGSEQ_CHECK(i >= 0 && i < size(), "example index ", i, " out of range for subset of size ", size());
    return idx_[std::size_t(i)];
  }
  const S* base_;
  std::vector<index_t> idx_;
};

// A task's three splits and (token tasks) the vocabulary built from its training split.
struct Splits {
  Dataset train, val, test;
  Vocab vocab;
};

// Deterministic permutation of 0..n-1 (Fisher-Yates with Philox stream `stream` under `seed`).
inline std::vector<index_t> permutation(index_t n, std::uint64_t seed, std::uint64_t stream = 0) {
  std::vector<index_t> p(std::size_t(std::max<index_t>(n, 0)));
  std::iota(p.begin(), p.end(), index_t(0));
  Rng rng(seed, stream);
  for (index_t i = n - 1; i > 0; --i) std::swap(p[std::size_t(i)], p[std::size_t(rng.below(std::uint64_t(i + 1)))]);
  return p;
}

// Index sets of a random split of n examples: val and test get floor(fraction * n) each, train the
// rest (the reference's random_split sizes), drawn from a fixed-seed permutation.
struct SplitIndices {
  std::vector<index_t> train, val, test;
};
inline SplitIndices split_indices(index_t n, double val_fraction, double test_fraction, std::uint64_t seed = 42) {
  LONGSEQ_CHECK(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction <= 1,
                "split fractions val=", val_fraction, " test=", test_fraction, " must be >= 0 and sum to <= 1");
  auto p = permutation(n, seed, 0x5EED);
  auto nv = index_t(val_fraction * double(n)), nt = index_t(test_fraction * double(n));
  SplitIndices s;
  s.train.assign(p.begin(), p.end() - nv - nt);
  s.val.assign(p.end() - nv - nt, p.end() - nt);
  s.test.assign(p.end() - nt, p.end());
  return s;
}

}  // namespace longseq::data
