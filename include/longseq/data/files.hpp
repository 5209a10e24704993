// File helpers shared by the dataset readers: whole-file reads, line and field splitting, and strict
// number parsing whose errors name the file, the line and what was expected.
#pragma once
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace longseq::data {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LONGSEQ_CHECK(in.good(), "cannot open file '", path.string(), "' (missing or unreadable)");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LONGSEQ_CHECK(!in.bad(), "read error in file '", path.string(), "'");
  return s;
}

inline void write_file(const fs::path& path, std::string_view bytes) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  LONGSEQ_CHECK(out.good(), "cannot create file '", path.string(), "'");
  out.write(bytes.data(), std::streamsize(bytes.size()));
  LONGSEQ_CHECK(out.good(), "write error in file '", path.string(), "'");
}

inline void require_directory(const fs::path& dir, std::string_view what) {
  LONGSEQ_CHECK(fs::is_directory(dir), "missing directory '", dir.string(), "' (expected ", what, ")");
}

// Splits text into lines; a trailing '\r' (Windows line ends) is dropped, a final empty line ignored.
inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  return lines;
}

inline std::vector<std::string_view> split_char(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  for (;;) {
    std::size_t end = line.find(sep, pos);
    if (end == std::string_view::npos) {
      out.push_back(line.substr(pos));
      return out;
    }
    out.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
}

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

inline std::vector<std::string_view> split_whitespace(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// Parses an integer label; "1.0" style integral floats (as pandas writes them) are accepted too.
// `where` says where the field came from, e.g. "file 'x.tsv', line 3, column Target".
inline std::int64_t parse_label(std::string_view field, const std::string& where) {
  std::string_view f = trim(field);
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
  if (ec == std::errc() && p == f.data() + f.size() && !f.empty()) return v;
  double d = 0;
  auto [q, ec2] = std::from_chars(f.data(), f.data() + f.size(), d);
  // Range first: converting a double outside int64's range is undefined behaviour.
  if (ec2 == std::errc() && q == f.data() + f.size() && !f.empty() && d >= -0x1p63 && d < 0x1p63 &&
      d == std::trunc(d))
    return std::int64_t(d);
  LONGSEQ_FAIL(where, ": expected an integer label, got '", std::string(f.substr(0, 40)), "'");
}

// Sorted regular files of `dir` whose name ends with `suffix` (deterministic order across systems).
inline std::vector<fs::path> list_files(const fs::path& dir, std::string_view suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace longseq::data
