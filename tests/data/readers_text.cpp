#include <doctest/doctest.h>

#include <longseq/data/aan.hpp>
#include <longseq/data/imdb.hpp>
#include <longseq/data/listops.hpp>

#include "helpers.hpp"

using namespace longseq::data;
using longseq::Error;
using testdata::TempDir;
using testdata::fixtures;

namespace {
std::vector<std::string> decode(const Dataset& d, const Vocab& v, longseq::index_t i, int doc = 0) {
  std::vector<std::string> out;
  for (auto id : d.tokens(i, doc)) out.push_back(v.token(id));
  return out;
}
}  // namespace

TEST_CASE("listops reader: release files, reference tokens, vocabulary from train, <eos>") {
  auto s = load_listops(fixtures() / "listops");
  CHECK(s.train.size() == 4);
  CHECK(s.val.size() == 1);
  CHECK(s.test.size() == 2);
  CHECK(s.train.labels() == std::vector<std::int32_t>{9, 3, 6, 5});
  CHECK(decode(s.train, s.vocab, 0) == std::vector<std::string>{"[MAX", "2", "9", "X", "<eos>"});
  CHECK(s.train.info().num_classes == 10);
  CHECK(s.train.info().vocab_size == s.vocab.size());
  CHECK(s.vocab.token(Vocab::mask_id) == "<mask>");
  // "0" only occurs in the test split, so it is unknown there.
  CHECK(decode(s.test, s.vocab, 0) == std::vector<std::string>{"[MIN", "3", "<unk>", "X", "<eos>"});
  ListOpsOptions o;
  o.max_length = 3;
  auto t = load_listops(fixtures() / "listops", o);
  CHECK(decode(t.train, t.vocab, 1) == std::vector<std::string>{"[MIN", "4", "<eos>"});
}

TEST_CASE("listops reader: malformed files name the file, line and expectation") {
  TempDir tmp;
  auto f = tmp / "basic_train.tsv";
  write_file(f, "Source\tTarget\n( [MAX 1 ] )\t1\n( [MAX 2 ] )\n");
  CHECK_THROWS_WITH_AS(read_listops_tsv(f), doctest::Contains("line 3: expected 2 tab-separated columns (Source, Target), got 1"), Error);
  write_file(f, "Source\tTarget\n( [MAX 1 ] )\tone\n");
  CHECK_THROWS_WITH_AS(read_listops_tsv(f), doctest::Contains("line 2, column Target: expected an integer label, got 'one'"), Error);
  write_file(f, "Source\tTarget\n( [MAX 1 ] )\t12\n");
  CHECK_THROWS_WITH_AS(read_listops_tsv(f), doctest::Contains("expected a label in 0..9, got 12"), Error);
  write_file(f, "Input\tOutput\n");
  CHECK_THROWS_WITH_AS(read_listops_tsv(f), doctest::Contains("line 1: expected a header with columns Source and Target"), Error);
  write_file(f, "");
  CHECK_THROWS_WITH_AS(read_listops_tsv(f), doctest::Contains("empty, expected a header line"), Error);
  write_file(f, "Source\tTarget\n");
  CHECK_THROWS_WITH_AS(load_listops(tmp.path), doctest::Contains("basic_val.tsv' (missing or unreadable)"), Error);
  CHECK_THROWS_WITH_AS(load_listops(tmp / "nope"), doctest::Contains("missing directory"), Error);
  // Strict mode rejects tokens outside the grammar, naming the file and line.
  write_file(f, "Source\tTarget\n( ( ( [MAX 3 ) 4 ) ] )\t4\n( ( ( [MAX 3 ) 4 ) ] )\t4\n( ( ( [AVG 3 ) 4 ) ] )\t3\n");
  write_file(tmp / "basic_val.tsv", "Source\tTarget\n");
  write_file(tmp / "basic_test.tsv", "Source\tTarget\n");
  ListOpsOptions strict;
  strict.strict = true;
  CHECK_THROWS_WITH_AS(load_listops(tmp.path, strict), doctest::Contains("basic_train.tsv', line 4: unknown token '[AVG', expected a digit"), Error);
  CHECK(load_listops(tmp.path).train.size() == 3);
  // Columns in the other order and a Windows line end are accepted.
  write_file(f, "Target\tSource\r\n4\t( ( ( [MAX 3 ) 4 ) ] )\r\n");
  auto rows = read_listops_tsv(f);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].target == 4);
  CHECK(rows[0].source == "( ( ( [MAX 3 ) 4 ) ] )");
}

TEST_CASE("imdb reader: aclImdb layout, char level, min frequency, val = test") {
  ImdbOptions o;
  o.min_freq = 2;
  auto s = load_imdb(fixtures() / "aclImdb", o);
  CHECK(s.train.size() == 4);
  CHECK(s.test.size() == 2);
  CHECK(s.val.size() == 2);
  // neg files first (label 0), then pos (label 1), each folder sorted.
  CHECK(s.train.labels() == std::vector<std::int32_t>{0, 0, 1, 1});
  CHECK(decode(s.train, s.vocab, 0).front() == "B");  // "Bad film."
  CHECK(s.train.doc_length(0) == 9 + 1);
  CHECK(s.vocab.id("a") != Vocab::unk_id);
  CHECK(s.vocab.id("!") == Vocab::unk_id);  // once in training
  CHECK(s.vocab.id("z") == Vocab::unk_id);
  o.max_length = 4;
  auto t = load_imdb(fixtures() / "aclImdb", o);
  CHECK(t.train.doc_length(2) == 4);
  CHECK(t.train.tokens(2).back() == Vocab::eos_id);
  // The default minimum frequency (15) keeps no character of these tiny reviews.
  CHECK(load_imdb(fixtures() / "aclImdb").vocab.size() == Vocab::num_specials);
}

TEST_CASE("imdb reader: missing folders and empty folders are reported") {
  TempDir tmp;
  testdata::copy_fixture("aclImdb", tmp / "aclImdb");
  fs::remove_all(tmp / "aclImdb/test/pos");
  CHECK_THROWS_WITH_AS(load_imdb(tmp / "aclImdb"), doctest::Contains("test/pos' (expected aclImdb/<train|test>/<pos|neg>"), Error);
  fs::create_directories(tmp / "aclImdb/test/pos");
  CHECK_THROWS_WITH_AS(load_imdb(tmp / "aclImdb"), doctest::Contains("expected review files *.txt, found none"), Error);
}

TEST_CASE("aan reader: headerless five columns, pairs kept together, per-document truncation") {
  auto s = load_aan(fixtures() / "aan");
  CHECK(s.train.size() == 2);
  CHECK(s.val.size() == 1);
  CHECK(s.test.size() == 1);
  CHECK(s.train.info().docs == 2);
  CHECK(s.train.labels() == std::vector<std::int32_t>{1, 0});
  auto d1 = decode(s.train, s.vocab, 0, 0), d2 = decode(s.train, s.vocab, 0, 1);
  CHECK(d1.size() == std::string("we study parsing .").size() + 1);
  CHECK(d2.size() == std::string("parsing study").size() + 1);
  CHECK(d2.front() == "p");
  CHECK(s.train.length(0) == longseq::index_t(d1.size()));
  AanOptions o;
  o.max_length = 5;
  auto t = load_aan(fixtures() / "aan", o);
  CHECK(t.train.doc_length(1, 0) == 5);
  CHECK(t.train.doc_length(1, 1) == 5);
}

TEST_CASE("aan reader: malformed rows") {
  TempDir tmp;
  auto f = tmp / "new_aan_pairs.train.tsv";
  write_file(f, "1\ta\tb\tx\ty\n0\ta\tb\tx\n");
  CHECK_THROWS_WITH_AS(read_aan_tsv(f), doctest::Contains("line 2: expected 5 tab-separated columns (label, id1, id2, text1, text2), got 4"), Error);
  write_file(f, "yes\ta\tb\tx\ty\n");
  CHECK_THROWS_WITH_AS(read_aan_tsv(f), doctest::Contains("line 1, column label: expected an integer label, got 'yes'"), Error);
  write_file(f, "3\ta\tb\tx\ty\n");
  CHECK_THROWS_WITH_AS(read_aan_tsv(f), doctest::Contains("expected label 0 or 1, got 3"), Error);
  write_file(f, "1.0\ta\tb\tx\ty\n");  // pandas-style float labels are accepted
  CHECK(read_aan_tsv(f).at(0).label == 1);
}

#include <longseq/data/tasks.hpp>

TEST_CASE("load_task dispatches on the tool's task names") {
  CHECK(load_task("listops", fixtures() / "listops").train.size() == 4);
  CHECK(load_task("retrieval", fixtures() / "aan").train.info().docs == 2);
  CHECK(load_task("image", fixtures() / "cifar-10-batches-bin").test.info().max_length == 1024);
#if LONGSEQ_WITH_ZLIB
  CHECK(load_task("mnist", fixtures() / "fashion-mnist").test.info().name == "mnist");
#endif
  CHECK_THROWS_WITH_AS(load_task("cifar", fixtures()), doctest::Contains("unknown task 'cifar', expected one of listops"), Error);
}
