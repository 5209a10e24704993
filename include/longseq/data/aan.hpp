// AAN (LRA Retrieval) reader: headerless new_aan_pairs.{train,eval,test}.tsv with the five columns
// label, id1, id2, text1, text2; character level, each document truncated to max_length with <eos>;
// the two documents of a pair stay together in one example.
#pragma once
#include <string>
#include <vector>

#include "dataset.hpp"
#include "files.hpp"
#include "tokenize.hpp"

namespace longseq::data {

struct AanRow {
  std::int32_t label = 0;
  std::string id1, id2, text1, text2;
};

inline std::vector<AanRow> parse_aan_tsv(std::string_view text, const std::string& f) {
  std::vector<AanRow> rows;
  auto lines = split_lines(text);
  for (std::size_t l = 0; l < lines.size(); ++l) {
    if (trim(lines[l]).empty()) continue;
    auto cols = split_char(lines[l], '\t');
    LONGSEQ_CHECK(cols.size() == 5, "file '", f, "', line ", l + 1,
                  ": expected 5 tab-separated columns (label, id1, id2, text1, text2), got ", cols.size());
    std::string where = "file '" + f + "', line " + std::to_string(l + 1) + ", column label";
    auto y = parse_label(cols[0], where);
    LONGSEQ_CHECK(y == 0 || y == 1, where, ": expected label 0 or 1, got ", y);
    rows.push_back({std::int32_t(y), std::string(cols[1]), std::string(cols[2]), std::string(cols[3]), std::string(cols[4])});
  }
  return rows;
}

inline std::vector<AanRow> read_aan_tsv(const fs::path& path) { return parse_aan_tsv(read_file(path), path.string()); }

struct AanOptions {
  index_t max_length = 4000;  // per document, including <eos>
  std::int64_t min_freq = 1;
  bool append_eos = true;
};

inline Splits load_aan(const fs::path& dir, const AanOptions& opt = {}) {
  require_directory(dir, "the AAN folder holding new_aan_pairs.train.tsv, .eval.tsv, .test.tsv");
  auto train = read_aan_tsv(dir / "new_aan_pairs.train.tsv");
  auto val = read_aan_tsv(dir / "new_aan_pairs.eval.tsv");
  auto test = read_aan_tsv(dir / "new_aan_pairs.test.tsv");
  TokenCounter counter;
  for (const auto& r : train) {
    counter.add(tokenize_chars(r.text1));
    counter.add(tokenize_chars(r.text2));
  }
  Splits s;
  s.vocab = Vocab::build(counter, opt.min_freq);
  TaskInfo info;
  info.name = "retrieval";
  info.docs = 2;
  info.num_classes = 2;
  info.vocab_size = s.vocab.size();
  info.max_length = opt.max_length;
  auto fill = [&](Dataset& d, const std::vector<AanRow>& rows) {
    d = Dataset(info);
    for (const auto& r : rows)
      d.add_tokens(r.label, encode(tokenize_chars(r.text1), s.vocab, opt.max_length, opt.append_eos),
                   encode(tokenize_chars(r.text2), s.vocab, opt.max_length, opt.append_eos));
  };
  fill(s.train, train);
  fill(s.val, val);
  fill(s.test, test);
  return s;
}

}  // namespace longseq::data
