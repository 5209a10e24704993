// ListOps operand shuffling, the token augmentation of Miralles-Gonzalez et al. 2025 (their ListOps loader
// with augment = 1.0 reorders the arguments of every operator of every training example): MAX, MIN, MED and
// SM (sum mod 10) do not depend on the order of their arguments, so the label stays right. Works on token ids:
// the caller names the ids of the operators ("[MAX", "[MIN", "[MED", "[SM") and of the closing bracket.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "batching.hpp"
#include "vocab.hpp"

namespace longseq::data {

struct ListOpsIds {
  std::vector<std::int32_t> open;  // the operator tokens, each opening an argument list
  std::int32_t close = -1;         // the token closing it
};

// The ids a ListOps vocabulary (data::load_task("listops", ...).vocab) gives the operators it holds and the closing
// bracket, which the tokenizer spells "X".
inline ListOpsIds listops_ids(const Vocab& v) {
  ListOpsIds ids;
  for (const char* op : {"[MAX", "[MIN", "[MED", "[SM"})
    if (v.contains(op)) ids.open.push_back(v.id(op));
  LONGSEQ_CHECK(!ids.open.empty() && v.contains("X"), "listops_ids: the vocabulary holds no ListOps operator or no "
                "closing bracket (expected [MAX, [MIN, [MED or [SM, and ] tokenized as X); is this a ListOps task?");
  ids.close = v.id("X");
  return ids;
}

// Reorders the arguments of every operator in ids[0, length) uniformly at random (Fisher-Yates on `rng`); the
// operator stays first and the bracket last, tokens outside the outermost expression (<eos>) stay in place. A
// sequence whose brackets do not balance (truncated) is left unchanged.
inline void shuffle_listops_operands(std::int32_t* ids, index_t length, const ListOpsIds& v, Rng& rng) {
  LONGSEQ_CHECK(!v.open.empty() && v.close >= 0, "shuffle_listops_operands: the operator and closing ids are not set");
  using Part = std::vector<std::int32_t>;
  std::vector<std::vector<Part>> frames(1);  // frames[0]: the top level, kept in order
  std::vector<std::int32_t> ops;
  for (index_t t = 0; t < length; ++t) {
    const std::int32_t id = ids[t];
    if (std::find(v.open.begin(), v.open.end(), id) != v.open.end()) {
      ops.push_back(id);
      frames.emplace_back();
    } else if (id == v.close) {
      if (ops.empty()) return;  // unbalanced
      auto args = std::move(frames.back());
      frames.pop_back();
      for (std::size_t i = args.size(); i > 1; --i) std::swap(args[i - 1], args[std::size_t(rng.below(i))]);
      Part node{ops.back()};
      for (const auto& a : args) node.insert(node.end(), a.begin(), a.end());
      node.push_back(v.close);
      ops.pop_back();
      frames.back().push_back(std::move(node));
    } else {
      frames.back().push_back(Part{id});
    }
  }
  if (!ops.empty()) return;  // truncated inside an expression
  index_t t = 0;
  for (const auto& part : frames[0])
    for (std::int32_t id : part) ids[t++] = id;
}

// Shuffles every row of a token batch, example b.indices[r] from its own Philox stream of (seed, epoch), so the
// result depends neither on the batch the example falls in nor on the number of ranks.
inline void shuffle_listops_batch(Batch& b, const ListOpsIds& v, std::uint64_t seed, index_t epoch) {
  LONGSEQ_CHECK(b.modality == Modality::tokens, "shuffle_listops_batch: the batch holds pixels, expected tokens");
  for (index_t r = 0; r < b.rows; ++r) {
    Rng rng(seed ^ 0x6C6973746F707321ull,
            (std::uint64_t(epoch) << 32) | std::uint32_t(b.indices[std::size_t(r % b.size)] * b.docs + r / b.size));
    shuffle_listops_operands(b.ids.data() + r * b.length, b.lengths[std::size_t(r)], v, rng);
  }
}

}  // namespace longseq::data
