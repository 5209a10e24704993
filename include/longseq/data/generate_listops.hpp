// ListOps generator with the LRA grammar (operators MAX, MIN, MED, SM = sum mod 10 over the digits
// 0-9; depth and argument limits; token-length range), deterministic from a seed, and the expression
// evaluator that gives the label. Writes basic_{train,val,test}.tsv as the reader expects.
#pragma once
#include <algorithm>
#include <string>
#include <unordered_set>
#include <vector>

#include "../core/rng.hpp"
#include "listops.hpp"

namespace longseq::data {

struct ListOpsGenConfig {
  int max_depth = 10;
  int max_args = 10;            // each operator takes 2..max_args arguments
  index_t min_length = 500;     // in tokens (operators, digits and closing brackets)
  index_t max_length = 2000;
  double operator_prob = 0.25;  // chance that a node above max_depth is an operator rather than a digit
  bool unique = true;           // no repeated expression within one generated set
  index_t max_attempts = 1000000;
};

// Value of a tokenized ListOps expression ("[MAX", digits, "X" closing); throws on malformed input.
inline int evaluate_listops_tokens(const std::vector<std::string>& toks) {
  struct Frame {
    char op;
    std::vector<int> args;
  };
  std::vector<Frame> stack;
  int result = -1;
  auto push_value = [&](int v, std::size_t pos) {
    if (stack.empty()) {
      LONGSEQ_CHECK(result < 0, "ListOps expression: extra value at token ", pos, ", expected the end");
      result = v;
    } else {
      stack.back().args.push_back(v);
    }
  };
  for (std::size_t i = 0; i < toks.size(); ++i) {
    const std::string& t = toks[i];
    if (t == "[MAX" || t == "[MIN" || t == "[MED" || t == "[SM") {
      LONGSEQ_CHECK(!(stack.empty() && result >= 0), "ListOps expression: operator after the end at token ", i);
      stack.push_back({t[2], {}});
    } else if (t == "X") {
      LONGSEQ_CHECK(!stack.empty(), "ListOps expression: unmatched ']' at token ", i);
      Frame f = std::move(stack.back());
      stack.pop_back();
      LONGSEQ_CHECK(!f.args.empty(), "ListOps expression: operator without arguments closed at token ", i);
      auto& a = f.args;
      int v = 0;
      if (f.op == 'A') v = *std::max_element(a.begin(), a.end());
      else if (f.op == 'I') v = *std::min_element(a.begin(), a.end());
      else if (f.op == 'E') {
        std::sort(a.begin(), a.end());
        std::size_t n = a.size();
        v = n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;  // int(np.median): mean of the middle two, truncated
      } else {
        for (int x : a) v += x;
        v %= 10;
      }
      push_value(v, i);
    } else {
      LONGSEQ_CHECK(t.size() == 1 && t[0] >= '0' && t[0] <= '9', "ListOps expression: token ", i, " '", t,
                    "', expected a digit, an operator ([MAX [MIN [MED [SM) or ']'");
      push_value(t[0] - '0', i);
    }
  }
  LONGSEQ_CHECK(stack.empty(), "ListOps expression: ", stack.size(), " unclosed operator(s) at the end");
  LONGSEQ_CHECK(result >= 0, "ListOps expression: empty");
  return result;
}

inline int evaluate_listops(std::string_view source) { return evaluate_listops_tokens(tokenize_listops(source)); }

namespace detail {
// Appends one random subtree in the LRA binarized form: an operator with arguments a1..an prints as
// "( ( ... ( [OP a1 ) a2 ) ... an ) ] )". Returns false once the token budget is exceeded.
inline bool listops_subtree(Rng& rng, const ListOpsGenConfig& c, int depth, std::string& out, index_t& length) {
  static const char* ops[] = {"[MAX", "[MIN", "[MED", "[SM"};
  bool op = depth < c.max_depth && rng.uniform53() < c.operator_prob;
  if (depth == 1) op = true;  // the root is always an operator (a bare digit is no task)
  if (!op) {
    out += char('0' + rng.below(10));
    return ++length <= c.max_length;
  }
  auto n = int(2 + rng.below(std::uint64_t(c.max_args - 1)));
  const char* name = ops[rng.below(4)];
  length += 2;
  for (int k = 0; k <= n; ++k) out += "( ";
  out += name;
  for (int k = 0; k < n; ++k) {
    out += ' ';
    if (!listops_subtree(rng, c, depth + 1, out, length)) return false;
    out += " )";
  }
  out += " ] )";
  return length <= c.max_length;
}
}  // namespace detail

// One expression whose token count lies in [min_length, max_length], with its value.
inline ListOpsRow generate_listops_expression(Rng& rng, const ListOpsGenConfig& c) {
  LONGSEQ_CHECK(c.max_args >= 2 && c.max_depth >= 1 && c.min_length <= c.max_length && c.min_length >= 0,
                "ListOps generator: need max_args >= 2, max_depth >= 1, 0 <= min_length <= max_length; got max_args=",
                c.max_args, " max_depth=", c.max_depth, " length range [", c.min_length, ", ", c.max_length, "]");
  for (index_t attempt = 0; attempt < c.max_attempts; ++attempt) {
    std::string s;
    index_t length = 0;
    if (!detail::listops_subtree(rng, c, 1, s, length) || length < c.min_length) continue;
    return {s, std::int32_t(evaluate_listops(s)), 0};
  }
  LONGSEQ_FAIL("ListOps generator: no expression with ", c.min_length, "..", c.max_length, " tokens in ", c.max_attempts,
               " attempts (max_depth=", c.max_depth, ", max_args=", c.max_args, "); widen the length range");
}

inline std::vector<ListOpsRow> generate_listops(index_t n, const ListOpsGenConfig& c, Rng& rng) {
  std::vector<ListOpsRow> rows;
  std::unordered_set<std::string> seen;
  index_t tries = 0;
  while (index_t(rows.size()) < n) {
    auto r = generate_listops_expression(rng, c);
    if (c.unique && !seen.insert(r.source).second) {
      LONGSEQ_CHECK(++tries < c.max_attempts, "ListOps generator: cannot find ", n, " distinct expressions");
      continue;
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

inline void write_listops_tsv(const fs::path& path, const std::vector<ListOpsRow>& rows) {
  std::string out = "Source\tTarget\n";
  for (const auto& r : rows) out += r.source + '\t' + std::to_string(r.target) + '\n';
  write_file(path, out);
}

// Writes dir/basic_{train,val,test}.tsv; each split has its own Philox stream under `seed`.
inline void generate_listops_files(const fs::path& dir, index_t n_train, index_t n_val, index_t n_test,
                                   const ListOpsGenConfig& c, std::uint64_t seed) {
  const std::pair<const char*, index_t> splits[] = {{"basic_train.tsv", n_train}, {"basic_val.tsv", n_val}, {"basic_test.tsv", n_test}};
  std::uint64_t stream = 0;
  for (auto [name, n] : splits) {
    Rng rng(seed, stream++);
    write_listops_tsv(dir / name, generate_listops(n, c, rng));
  }
}

}  // namespace longseq::data
