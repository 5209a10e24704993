// ListOps operand shuffling: the structure and the value of an expression are kept, every order of a node's
// arguments occurs, truncated sequences and tokens after the expression stay, draws depend on (seed, epoch,
// example) only.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <longseq/data/augment_listops.hpp>
#include <longseq/data/generate_listops.hpp>

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;
using longseq::Rng;

namespace {

// ids: 0..9 digits, 10 [MAX, 11 [MIN, 12 [MED, 13 [SM, 14 the closing bracket (X once tokenized), 15 <eos>.
const std::vector<std::string> names{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MAX", "[MIN", "[MED", "[SM", "X", "<eos>"};
const ListOpsIds lv{{10, 11, 12, 13}, 14};

std::vector<std::int32_t> encode_ids(const std::string& s) {
  std::vector<std::int32_t> out;
  for (const auto& t : tokenize_listops(s))
    out.push_back(std::int32_t(std::find(names.begin(), names.end(), t) - names.begin()));
  return out;
}

int value(const std::vector<std::int32_t>& ids, index_t n) {
  std::vector<std::string> toks;
  for (index_t k = 0; k < n; ++k) toks.push_back(names[std::size_t(ids[std::size_t(k)])]);
  return evaluate_listops_tokens(toks);
}

}  // namespace

TEST_CASE("listops shuffle: arguments reordered at every level, value and structure kept") {
  const auto e = encode_ids("[MAX 1 [MIN 7 3 ] 4 ]");
  REQUIRE(e.size() == 8);
  std::set<std::vector<std::int32_t>> seen;
  std::set<std::vector<std::int32_t>> inner;
  Rng rng(5, 0);
  for (int k = 0; k < 400; ++k) {
    auto ids = e;
    shuffle_listops_operands(ids.data(), index_t(ids.size()), lv, rng);
    CHECK(ids.front() == 10);
    CHECK(ids.back() == 14);
    auto a = ids, b = e;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
    CHECK(value(ids, index_t(ids.size())) == 4);
    // The [MIN node stays contiguous: [MIN x y ] with {x, y} = {7, 3}.
    const auto at = std::size_t(std::find(ids.begin(), ids.end(), 11) - ids.begin());
    REQUIRE(at + 3 < ids.size());
    CHECK(ids[at + 3] == 14);
    inner.insert({ids[at + 1], ids[at + 2]});
    seen.insert(ids);
  }
  CHECK(inner.size() == 2);   // both orders of 7 3
  CHECK(seen.size() == 12);   // 3! orders at the root times 2 inside
  // Another operator's value is kept too, over a generated expression.
  Rng g(9, 1);
  for (int k = 0; k < 30; ++k) {
    const auto row = generate_listops_expression(g, {.max_depth = 4, .max_args = 4, .min_length = 5, .max_length = 200});
    auto ids = encode_ids(row.source);
    ids.push_back(15);  // <eos> after the expression stays last
    shuffle_listops_operands(ids.data(), index_t(ids.size()), lv, rng);
    CHECK(ids.back() == 15);
    CHECK(value(ids, index_t(ids.size()) - 1) == row.target);
  }
}

TEST_CASE("listops shuffle: truncated input unchanged, per-example draws, refusals") {
  const auto e = encode_ids("[MAX 1 [MIN 7 3 ] 4 ]");
  auto cut = std::vector<std::int32_t>(e.begin(), e.begin() + 6);
  const auto before = cut;
  Rng rng(1, 0);
  for (int k = 0; k < 20; ++k) shuffle_listops_operands(cut.data(), 6, lv, rng);
  CHECK(cut == before);
  auto stray = encode_ids("1 ] 2");
  const auto stray0 = stray;
  shuffle_listops_operands(stray.data(), 3, lv, rng);
  CHECK(stray == stray0);
  CHECK_THROWS_WITH_AS(shuffle_listops_operands(stray.data(), 3, {}, rng), doctest::Contains("ids are not set"), Error);

  TaskInfo info;
  info.name = "tiny-listops";
  info.num_classes = 10;
  info.vocab_size = 16;
  info.max_length = 12;
  Dataset d(info);
  for (int i = 0; i < 6; ++i) d.add_tokens(4, encode_ids("[MAX 1 [MIN 7 3 ] 4 5 2 ]"));
  const std::vector<index_t> first{0, 3, 5}, second{5, 2};
  Batch a = make_batch(d, first), b = make_batch(d, second), c = make_batch(d, first);
  shuffle_listops_batch(a, lv, 7, 2);
  shuffle_listops_batch(b, lv, 7, 2);
  shuffle_listops_batch(c, lv, 7, 3);
  const index_t L = a.length;
  CHECK(std::vector<std::int32_t>(a.ids.begin() + 2 * L, a.ids.begin() + 3 * L) ==
        std::vector<std::int32_t>(b.ids.begin(), b.ids.begin() + L));  // example 5, wherever it is
  CHECK(a.ids != c.ids);  // another epoch, other orders
  for (index_t r = 0; r < 3; ++r) {
    std::vector<std::int32_t> row(a.ids.begin() + r * L, a.ids.begin() + (r + 1) * L);
    CHECK(value(row, a.lengths[std::size_t(r)]) == 5);
  }
}
