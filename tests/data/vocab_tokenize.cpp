#include <doctest/doctest.h>

#include <longseq/data/tokenize.hpp>
#include <longseq/data/vocab.hpp>

using namespace longseq::data;
using longseq::Error;

TEST_CASE("listops tokenizer follows the reference rule") {
  auto t = tokenize_listops("( ( ( [MAX 2 ) 9 ) ] )");
  CHECK(t == std::vector<std::string>{"[MAX", "2", "9", "X"});
  auto u = tokenize_listops("( ( ( ( [MIN 4 ) ( ( ( [SM 1 ) 7 ) ] ) ) 3 ) ] )");
  CHECK(u == std::vector<std::string>{"[MIN", "4", "[SM", "1", "7", "X", "3", "X"});
  CHECK(tokenize_listops("  (  )  ").empty());
}

TEST_CASE("character tokenizer splits UTF-8 code points and keeps stray bytes") {
  auto t = tokenize_chars("a\xc3\xa9 b");  // "aé b"
  CHECK(t == std::vector<std::string>{"a", "\xc3\xa9", " ", "b"});
  auto bad = tokenize_chars("\xc3x\xff");  // truncated lead byte, then an invalid byte
  CHECK(bad == std::vector<std::string>{"\xc3", "x", "\xff"});
  CHECK(tokenize_chars("").empty());
}

TEST_CASE("vocabulary: specials first, min frequency, frequency then alphabetical order") {
  TokenCounter c;
  c.add(std::vector<std::string>{"b", "a", "b", "c", "a", "d", "d", "d", "e"});
  Vocab v = Vocab::build(c, 2);
  REQUIRE(v.size() == 7);
  CHECK(v.token(0) == "<mask>");
  CHECK(v.token(1) == "<pad>");
  CHECK(v.token(2) == "<unk>");
  CHECK(v.token(3) == "<eos>");
  CHECK(v.token(4) == "d");  // 3 occurrences
  CHECK(v.token(5) == "a");  // 2, alphabetically before b
  CHECK(v.token(6) == "b");
  CHECK(v.id("c") == Vocab::unk_id);  // count 1 < min_freq 2
  CHECK(v.count(4) == 3);
  CHECK(Vocab::build(c, 1, 6).size() == 6);
}

TEST_CASE("encode truncates to max_length-1 and appends <eos>") {
  TokenCounter c;
  c.add(std::vector<std::string>{"x", "y"});
  Vocab v = Vocab::build(c);
  std::vector<std::string> toks{"x", "y", "z", "x"};
  auto ids = encode(toks, v, 3);
  CHECK(ids == std::vector<std::int32_t>{v.id("x"), v.id("y"), Vocab::eos_id});
  auto all = encode(toks, v, 0);
  CHECK(all == std::vector<std::int32_t>{v.id("x"), v.id("y"), Vocab::unk_id, v.id("x"), Vocab::eos_id});
  CHECK(encode(toks, v, 2, false).size() == 2);
}

TEST_CASE("vocabulary serializes and restores, including whitespace tokens") {
  TokenCounter c;
  c.add(std::vector<std::string>{"\n", "\t", "\\", "a", "a"});
  Vocab v = Vocab::build(c);
  Vocab w = Vocab::deserialize(v.serialize());
  CHECK(w.tokens() == v.tokens());
  CHECK_THROWS_WITH_AS(Vocab::deserialize("<mask>\n<pad>\n"), doctest::Contains("must start with <mask>, <pad>, <unk>, <eos>"), Error);
  CHECK_THROWS_WITH_AS(Vocab::deserialize("<mask>\n<pad>\n<unk>\n<eos>\nq\nq\n"), doctest::Contains("line 6: duplicate token 'q'"), Error);
  CHECK_THROWS_WITH_AS(v.token(99), doctest::Contains("token id 99 out of range"), Error);
}
