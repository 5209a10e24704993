// Vocabulary: token strings <-> ids with the reference specials <mask>=0, <pad>=1, <unk>=2, <eos>=3,
// built from training-token counts with a minimum frequency (ties broken alphabetically, as torchtext).
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace longseq::data {

// Occurrence counts of tokens in a corpus.
class TokenCounter {
 public:
  template <class Range>
  void add(const Range& tokens) {
    for (const auto& t : tokens) ++counts_[std::string(t)];
  }
  void add_one(std::string_view t, std::int64_t n = 1) { counts_[std::string(t)] += n; }
  const std::unordered_map<std::string, std::int64_t>& counts() const { return counts_; }

 private:
  std::unordered_map<std::string, std::int64_t> counts_;
};

class Vocab {
 public:
  static constexpr std::int32_t mask_id = 0, pad_id = 1, unk_id = 2, eos_id = 3;
  static constexpr std::int32_t num_specials = 4;

  Vocab() {
    for (const char* s : {"<mask>", "<pad>", "<unk>", "<eos>"}) add(s, 0);
  }

  // Tokens with count >= min_freq, most frequent first, ties alphabetically; specials first.
  // max_size (0 = unlimited) caps the total size including specials.
  static Vocab build(const TokenCounter& counter, std::int64_t min_freq = 1, index_t max_size = 0) {
    std::vector<std::pair<std::string, std::int64_t>> items(counter.counts().begin(), counter.counts().end());
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    Vocab v;
    for (const auto& [tok, n] : items) {
      if (n < min_freq) break;
      if (max_size > 0 && v.size() >= max_size) break;
      if (v.contains(tok)) continue;  // a corpus token spelled like a special keeps the special's id
      v.add(tok, n);
    }
    return v;
  }

  std::int32_t add(std::string_view tok, std::int64_t count = 0) {
    auto it = index_.find(std::string(tok));
    if (it != index_.end()) return it->second;
    auto id = std::int32_t(tokens_.size());
    tokens_.emplace_back(tok);
    counts_.push_back(count);
    index_.emplace(std::string(tok), id);
    return id;
  }
  bool contains(std::string_view tok) const { return index_.count(std::string(tok)) != 0; }
  // Unknown tokens map to <unk>.
  std::int32_t id(std::string_view tok) const {
    auto it = index_.find(std::string(tok));
    return it == index_.end() ? unk_id : it->second;
  }
  const std::string& token(std::int32_t id) const {
    LONGSEQ_CHECK(id >= 0 && id < std::int32_t(tokens_.size()), "token id ", id, " out of range for vocabulary of size ",
                  tokens_.size());
    return tokens_[std::size_t(id)];
  }
  // Training-set count the token was admitted with (0 for specials).
  std::int64_t count(std::int32_t id) const { return counts_.at(std::size_t(id)); }
  index_t size() const { return index_t(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }

  // One token per line, escaped so that newline, tab and backslash tokens survive.
  std::string serialize() const {
    std::string out;
    for (const auto& t : tokens_) {
      for (char c : t) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else out += c;
      }
      out += '\n';
    }
    return out;
  }
  static Vocab deserialize(std::string_view text) {
    Vocab v;
    v.tokens_.clear();
    v.counts_.clear();
    v.index_.clear();
    std::size_t pos = 0;
    index_t line = 1;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      LONGSEQ_CHECK(end != std::string_view::npos, "vocabulary line ", line, ": missing final newline");
      std::string tok;
      for (std::size_t i = pos; i < end; ++i) {
        if (text[i] != '\\') { tok += text[i]; continue; }
        LONGSEQ_CHECK(i + 1 < end, "vocabulary line ", line, ": dangling backslash");
        char e = text[++i];
        tok += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      }
      LONGSEQ_CHECK(!v.contains(tok), "vocabulary line ", line, ": duplicate token '", tok, "'");
      v.add(tok, 0);
      pos = end + 1;
      ++line;
    }
    LONGSEQ_CHECK(v.size() >= num_specials && v.tokens_[0] == "<mask>" && v.tokens_[1] == "<pad>" &&
                      v.tokens_[2] == "<unk>" && v.tokens_[3] == "<eos>",
                  "vocabulary must start with <mask>, <pad>, <unk>, <eos>");
    return v;
  }

 private:
  std::vector<std::string> tokens_;
  std::vector<std::int64_t> counts_;
  std::unordered_map<std::string, std::int32_t> index_;
};

// Maps tokens to ids, truncating to max_length - 1 and appending <eos> (the reference's l_max rule);
// max_length = 0 keeps everything.
template <class Range>
std::vector<std::int32_t> encode(const Range& tokens, const Vocab& vocab, index_t max_length, bool append_eos = true) {
  std::vector<std::int32_t> ids;
  index_t keep = index_t(std::size(tokens));
  if (max_length > 0) keep = std::min(keep, append_eos ? max_length - 1 : max_length);
  ids.reserve(std::size_t(keep + 1));
  index_t i = 0;
  for (const auto& t : tokens) {
    if (i++ == keep) break;
    ids.push_back(vocab.id(t));
  }
  if (append_eos) ids.push_back(Vocab::eos_id);
  return ids;
}

}  // namespace longseq::data
