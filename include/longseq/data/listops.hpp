// ListOps reader: basic_{train,val,test}.tsv (header with Source and Target columns), reference
// tokenization, vocabulary from the training split, truncation to max_length with <eos>.
#pragma once
#include <string>
#include <vector>

#include "dataset.hpp"
#include "files.hpp"
#include "tokenize.hpp"

namespace longseq::data {

struct ListOpsRow {
  std::string source;
  std::int32_t target = 0;
  index_t line = 0;  // 1-based line in its file (0 for generated rows)
};

// The tokens of the LRA grammar: digits, the four operators and the closing bracket.
inline bool is_listops_token(std::string_view t) {
  return (t.size() == 1 && ((t[0] >= '0' && t[0] <= '9') || t[0] == 'X')) || t == "[MAX" || t == "[MIN" || t == "[MED" ||
         t == "[SM";
}

// Parses the text of one ListOps TSV named `f`; the header must name Source and Target (any order).
inline std::vector<ListOpsRow> parse_listops_tsv(std::string_view text, const std::string& f) {
  auto lines = split_lines(text);
  LONGSEQ_CHECK(!lines.empty(), "file '", f, "': empty, expected a header line 'Source<TAB>Target'");
  auto header = split_char(lines[0], '\t');
  int src = -1, tgt = -1;
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (trim(header[c]) == "Source") src = int(c);
    if (trim(header[c]) == "Target") tgt = int(c);
  }
  LONGSEQ_CHECK(src >= 0 && tgt >= 0, "file '", f, "', line 1: expected a header with columns Source and Target, got '",
                std::string(lines[0].substr(0, 60)), "'");
  std::size_t need = std::size_t(std::max(src, tgt)) + 1;
  std::vector<ListOpsRow> rows;
  for (std::size_t l = 1; l < lines.size(); ++l) {
    if (trim(lines[l]).empty()) continue;
    auto cols = split_char(lines[l], '\t');
    LONGSEQ_CHECK(cols.size() >= need, "file '", f, "', line ", l + 1, ": expected ", need,
                  " tab-separated columns (Source, Target), got ", cols.size());
    std::string where = "file '" + f + "', line " + std::to_string(l + 1) + ", column Target";
    auto t = parse_label(cols[std::size_t(tgt)], where);
    LONGSEQ_CHECK(t >= 0 && t <= 9, where, ": expected a label in 0..9, got ", t);
    rows.push_back({std::string(cols[std::size_t(src)]), std::int32_t(t), index_t(l + 1)});
  }
  return rows;
}

inline std::vector<ListOpsRow> read_listops_tsv(const fs::path& path) { return parse_listops_tsv(read_file(path), path.string()); }

struct ListOpsOptions {
  index_t max_length = 2048;  // including <eos>
  bool append_eos = true;
  bool strict = false;  // reject tokens outside the grammar instead of mapping unseen ones to <unk>
};

inline TaskInfo listops_info(index_t vocab_size, index_t max_length) {
  TaskInfo info;
  info.name = "listops";
  info.modality = Modality::tokens;
  info.num_classes = 10;
  info.vocab_size = vocab_size;
  info.max_length = max_length;
  return info;
}

// Reads dir/basic_{train,val,test}.tsv.
inline Splits load_listops(const fs::path& dir, const ListOpsOptions& opt = {}) {
  require_directory(dir, "the ListOps folder holding basic_train.tsv, basic_val.tsv, basic_test.tsv");
  auto train = read_listops_tsv(dir / "basic_train.tsv");
  auto val = read_listops_tsv(dir / "basic_val.tsv");
  auto test = read_listops_tsv(dir / "basic_test.tsv");
  if (opt.strict)
    for (auto [rows, name] : {std::pair{&train, "basic_train.tsv"}, std::pair{&val, "basic_val.tsv"}, std::pair{&test, "basic_test.tsv"}})
      for (const auto& r : *rows)
        for (const auto& tok : tokenize_listops(r.source))
          LONGSEQ_CHECK(is_listops_token(tok), "file '", (dir / name).string(), "', line ", r.line, ": unknown token '", tok,
                        "', expected a digit, [MAX, [MIN, [MED, [SM or ]");
  TokenCounter counter;
  for (const auto& r : train) counter.add(tokenize_listops(r.source));
  Splits s;
  s.vocab = Vocab::build(counter, 1);
  auto fill = [&](Dataset& d, const std::vector<ListOpsRow>& rows) {
    d = Dataset(listops_info(s.vocab.size(), opt.max_length));
    for (const auto& r : rows) d.add_tokens(r.target, encode(tokenize_listops(r.source), s.vocab, opt.max_length, opt.append_eos));
  };
  fill(s.train, train);
  fill(s.val, val);
  fill(s.test, test);
  return s;
}

}  // namespace longseq::data
