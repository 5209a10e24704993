// IMDb (LRA Text) reader: the aclImdb layout train|test/pos|neg/*.txt, character level, vocabulary
// from training characters with a minimum frequency, truncation to max_length with <eos>.
// As in LRA, the validation split is the test split.
#pragma once
#include <string>
#include <vector>

#include "dataset.hpp"
#include "files.hpp"
#include "tokenize.hpp"

namespace longseq::data {

struct ImdbOptions {
  index_t max_length = 4096;  // including <eos>
  std::int64_t min_freq = 15;
  bool append_eos = true;
};

struct TextRow {
  std::string text;
  std::int32_t label = 0;
};

// Reads split/neg/*.txt (label 0) then split/pos/*.txt (label 1), files in sorted order.
inline std::vector<TextRow> read_imdb_split(const fs::path& split_dir) {
  std::vector<TextRow> rows;
  for (auto [sub, label] : {std::pair{"neg", 0}, std::pair{"pos", 1}}) {
    fs::path d = split_dir / sub;
    require_directory(d, "aclImdb/<train|test>/<pos|neg> with one review per .txt file");
    auto files = list_files(d, ".txt");
    LONGSEQ_CHECK(!files.empty(), "directory '", d.string(), "': expected review files *.txt, found none");
    for (const auto& f : files) rows.push_back({read_file(f), label});
  }
  return rows;
}

inline Splits load_imdb(const fs::path& dir, const ImdbOptions& opt = {}) {
  require_directory(dir, "the aclImdb folder holding train/ and test/");
  auto train = read_imdb_split(dir / "train");
  auto test = read_imdb_split(dir / "test");
  TokenCounter counter;
  for (const auto& r : train) counter.add(tokenize_chars(r.text));
  Splits s;
  s.vocab = Vocab::build(counter, opt.min_freq);
  TaskInfo info;
  info.name = "text";
  info.num_classes = 2;
  info.vocab_size = s.vocab.size();
  info.max_length = opt.max_length;
  auto fill = [&](Dataset& d, const std::vector<TextRow>& rows) {
    d = Dataset(info);
    for (const auto& r : rows) d.add_tokens(r.label, encode(tokenize_chars(r.text), s.vocab, opt.max_length, opt.append_eos));
  };
  fill(s.train, train);
  fill(s.test, test);
  s.val = s.test;
  return s;
}

}  // namespace longseq::data
