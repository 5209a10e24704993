#include <doctest/doctest.h>

#include <set>

#include <longseq/data/generate_listops.hpp>
#include <longseq/data/generate_pathfinder.hpp>

#include "helpers.hpp"

using namespace longseq::data;
using longseq::Error;
using longseq::index_t;
using longseq::Rng;
using testdata::TempDir;

TEST_CASE("listops evaluation matches hand-computed expressions") {
  CHECK(evaluate_listops("( ( ( [MAX 2 ) 9 ) ] )") == 9);
  // [SM 5 8 [MED 1 6]] = (5 + 8 + int(3.5)) mod 10 = 6
  CHECK(evaluate_listops("( ( ( ( [SM 5 ) 8 ) ( ( ( [MED 1 ) 6 ) ] ) ) ] )") == 6);
  // [MIN 7 [MAX 1 8 3] [MED 9 2 4] 6] = min(7, 8, 4, 6) = 4
  CHECK(evaluate_listops("[MIN 7 [MAX 1 8 3 ] [MED 9 2 4 ] 6 ]") == 4);
  // [MED 2 9 4 7]: middle values 4 and 7 -> int(5.5) = 5
  CHECK(evaluate_listops("[MED 2 9 4 7 ]") == 5);
  CHECK(evaluate_listops("[SM 9 9 9 ]") == 7);
  CHECK(evaluate_listops("[MAX [SM 4 4 ] [MIN 9 [MED 3 3 ] ] 1 ]") == 8);
  CHECK_THROWS_WITH_AS(evaluate_listops("[MAX 1 2"), doctest::Contains("1 unclosed operator(s)"), Error);
  CHECK_THROWS_WITH_AS(evaluate_listops("[MAX 1 2 ] ]"), doctest::Contains("unmatched ']' at token 4"), Error);
  CHECK_THROWS_WITH_AS(evaluate_listops("[MAX 1 12 ]"), doctest::Contains("token 2 '12', expected a digit"), Error);
  CHECK_THROWS_WITH_AS(evaluate_listops("[MAX ]"), doctest::Contains("operator without arguments"), Error);
}

TEST_CASE("listops generator: LRA grammar, limits, deterministic, labels evaluate") {
  ListOpsGenConfig c;
  c.max_depth = 4;
  c.max_args = 5;
  c.min_length = 10;
  c.max_length = 60;
  Rng a(11), b(11), d(12);
  auto x = generate_listops(30, c, a), y = generate_listops(30, c, b), z = generate_listops(30, c, d);
  bool differ = false;
  for (std::size_t i = 0; i < x.size(); ++i) {
    CHECK(x[i].source == y[i].source);
    differ |= x[i].source != z[i].source;
    auto toks = tokenize_listops(x[i].source);
    CHECK(index_t(toks.size()) >= c.min_length);
    CHECK(index_t(toks.size()) <= c.max_length);
    CHECK(x[i].target == evaluate_listops(x[i].source));
    // Every operator takes 2..max_args arguments; nesting stays within max_depth.
    int depth = 0, max_depth = 0;
    std::vector<int> args;
    for (const auto& t : toks) {
      if (t[0] == '[') {
        if (!args.empty()) ++args.back();
        args.push_back(0);
        max_depth = std::max(max_depth, ++depth);
      } else if (t == "X") {
        CHECK(args.back() >= 2);
        CHECK(args.back() <= c.max_args);
        args.pop_back();
        --depth;
      } else {
        ++args.back();
      }
    }
    CHECK(max_depth <= c.max_depth);
    // The release's binarized bracket form: one '(' per ')' and one ']' per operator.
    CHECK(std::count(x[i].source.begin(), x[i].source.end(), '(') == std::count(x[i].source.begin(), x[i].source.end(), ')'));
  }
  CHECK(differ);
  std::set<int> labels;
  for (const auto& r : x) labels.insert(r.target);
  CHECK(labels.size() >= 4);
  ListOpsGenConfig bad = c;
  bad.max_args = 1;
  CHECK_THROWS_WITH_AS(generate_listops(1, bad, a), doctest::Contains("need max_args >= 2"), Error);
  bad = c;
  bad.min_length = bad.max_length = 3;  // an operator with 2 digits has 4 tokens
  bad.max_attempts = 200;
  CHECK_THROWS_WITH_AS(generate_listops(1, bad, a), doctest::Contains("no expression with 3..3 tokens in 200 attempts"), Error);
}

TEST_CASE("listops generator round-trips through the reader") {
  TempDir tmp;
  ListOpsGenConfig c;
  c.max_depth = 5;
  c.min_length = 8;
  c.max_length = 80;
  generate_listops_files(tmp.path, 20, 5, 5, c, 3);
  auto s = load_listops(tmp.path);
  CHECK(s.train.size() == 20);
  CHECK(s.val.size() == 5);
  CHECK(s.test.size() == 5);
  auto rows = read_listops_tsv(tmp / "basic_train.tsv");
  for (index_t i = 0; i < 20; ++i) {
    CHECK(s.train.label(i) == rows[std::size_t(i)].target);
    // Decoding the ids gives the tokens back, then <eos>.
    std::vector<std::string> toks;
    for (auto id : s.train.tokens(i)) toks.push_back(s.vocab.token(id));
    CHECK(toks.back() == "<eos>");
    toks.pop_back();
    CHECK(evaluate_listops_tokens(toks) == s.train.label(i));
  }
  CHECK(s.vocab.size() <= 4 + 15);  // specials + 10 digits + 4 operators + X
}

#if LONGSEQ_WITH_PNG
TEST_CASE("pathfinder generator: endpoints, contours, labels; round trip through the reader") {
  PathfinderGenConfig c;
  c.resolution = 32;
  c.contour_length = 6;
  Rng r1(5, 9), r2(5, 9);
  auto s1 = generate_pathfinder_sample(r1, c, 1), s2 = generate_pathfinder_sample(r2, c, 1);
  CHECK(s1.image.pixels == s2.image.pixels);
  index_t on = 0;
  for (auto v : s1.image.pixels) on += v != 0;
  CHECK(on > 20);                 // two contours and markers are drawn
  CHECK(on < 32 * 32 / 2);        // on a mostly dark background

  TempDir tmp;
  fs::path root = tmp / "pathfinder32";
  c.images_per_folder = 4;
  generate_pathfinder_files(root, 10, c, 77);
  CHECK(fs::exists(root / "curv_contour_length_14/metadata/2.npy"));
  CHECK(fs::exists(root / "curv_contour_length_14/imgs/2/sample_9.png"));
  PathfinderStream stream(root);
  REQUIRE(stream.size() == 10);
  CHECK(stream.info().max_length == 1024);
  int positives = 0;
  for (index_t i = 0; i < 10; ++i) {
    positives += stream.label(i);
    Example e;
    stream.read(i, e);
    Rng rng(77, 1000 + std::uint64_t(i));
    auto again = generate_pathfinder_sample(rng, c, stream.label(i));
    CHECK(std::equal(e.ids.begin(), e.ids.end(), again.image.pixels.begin()));
  }
  CHECK(positives == 5);
  c.resolution = 8;
  c.contour_length = 40;
  Rng r3(1);
  CHECK_THROWS_WITH_AS(generate_pathfinder_sample(r3, c, 0), doctest::Contains("do not fit a 8x8 image"), Error);
}

TEST_CASE("pathfinder generator: positives join the markers, negatives do not") {
  // Flood fill over 8-connected lit pixels with gaps bridged: dilate by the gap first.
  PathfinderGenConfig c;
  c.resolution = 48;
  c.contour_length = 8;
  c.distractors = 0;
  c.gap_length = 1;
  for (int label = 0; label <= 1; ++label) {
    int joined = 0;
    for (int k = 0; k < 6; ++k) {
      Rng rng(100 + k);
      auto s = generate_pathfinder_sample(rng, c, label);
      const index_t n = c.resolution;
      auto at = [&](index_t x, index_t y) { return x >= 0 && y >= 0 && x < n && y < n && s.image.pixels[std::size_t(y * n + x)]; };
      // Markers are 3x3 lit squares; find their centres.
      std::vector<std::pair<index_t, index_t>> marks;
      for (index_t y = 1; y + 1 < n; ++y)
        for (index_t x = 1; x + 1 < n; ++x) {
          bool full = true;
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) full &= bool(at(x + dx, y + dy));
          if (full) marks.emplace_back(x, y);
        }
      REQUIRE(!marks.empty());
      std::vector<char> seen(std::size_t(n * n), 0);
      std::vector<std::pair<index_t, index_t>> todo{marks.front()};
      seen[std::size_t(marks.front().second * n + marks.front().first)] = 1;
      while (!todo.empty()) {
        auto [x, y] = todo.back();
        todo.pop_back();
        for (int dy = -2; dy <= 2; ++dy)
          for (int dx = -2; dx <= 2; ++dx)
            if (at(x + dx, y + dy) && !seen[std::size_t((y + dy) * n + x + dx)]) {
              seen[std::size_t((y + dy) * n + x + dx)] = 1;
              todo.emplace_back(x + dx, y + dy);
            }
      }
      bool all = true;
      for (auto [x, y] : marks) all &= bool(seen[std::size_t(y * n + x)]);
      joined += all;
    }
    if (label == 1) CHECK(joined == 6);
    else CHECK(joined <= 2);  // contours may cross by chance
  }
}
#endif
