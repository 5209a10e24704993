// Tokenizers of the LRA reference loaders: ListOps (brackets and operators as tokens) and character
// level (one token per Unicode code point, as Python's list(str)).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "files.hpp"

namespace longseq::data {

// Reference rule: ']' becomes 'X', '(' and ')' are deleted, then split on whitespace.
// "( ( [MAX 2 ) 9 ] )" -> "[MAX", "2", "9", "X".
inline std::vector<std::string> tokenize_listops(std::string_view source) {
  std::string s;
  s.reserve(source.size());
  for (char c : source) {
    if (c == '(' || c == ')') continue;
    s += c == ']' ? 'X' : c;
  }
  std::vector<std::string> out;
  for (auto t : split_whitespace(s)) out.emplace_back(t);
  return out;
}

// Length in bytes of the UTF-8 sequence starting at s[i]; a malformed byte counts as one token so
// that arbitrary bytes never throw (they map to <unk> unless frequent enough).
inline std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 1;
  return n;
}

inline std::vector<std::string> tokenize_chars(std::string_view text) {
  std::vector<std::string> out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_length(text, i);
    out.emplace_back(text.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace longseq::data
