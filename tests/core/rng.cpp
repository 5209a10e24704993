#include <doctest/doctest.h>

#include <longseq/core/rng.hpp>

using longseq::Philox;
using longseq::Rng;

TEST_CASE("philox-4x32-10 matches the Random123 known-answer vectors") {
  auto z = Philox::generate(0, 0, 0);
  CHECK(z.v[0] == 0x6627e8d5u);
  CHECK(z.v[1] == 0xe169c58du);
  CHECK(z.v[2] == 0xbc57ac4cu);
  CHECK(z.v[3] == 0x9b00dbd8u);
  auto f = Philox::generate(~0ull, ~0ull, ~0ull);
  CHECK(f.v[0] == 0x408f276du);
  CHECK(f.v[1] == 0x41c83b0eu);
  CHECK(f.v[2] == 0xa20bc7c6u);
  CHECK(f.v[3] == 0x6d5451fdu);
  // counter (243f6a88, 85a308d3, 13198a2e, 03707344), key (a4093822, 299f31d0)
  auto p = Philox::generate(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull);
  CHECK(p.v[0] == 0xd16cfe09u);
  CHECK(p.v[1] == 0x94fdccebu);
  CHECK(p.v[2] == 0x5001e420u);
  CHECK(p.v[3] == 0x24126ea1u);
}

TEST_CASE("rng streams are reproducible, distinct and restorable") {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 10; ++i) CHECK(a.next_u32() == b.next_u32());
  Rng d(42);
  int same = 0;
  for (int i = 0; i < 10; ++i) same += d.next_u32() == c.next_u32();
  CHECK(same < 2);

  Rng e(7, 3);
  for (int i = 0; i < 5; ++i) e.next_u32();
  Rng f;
  f.restore(e.seed(), e.stream(), e.counter(), e.index());
  for (int i = 0; i < 9; ++i) CHECK(e.next_u32() == f.next_u32());
}

TEST_CASE("rng moments are sane") {
  Rng r(1);
  double s = 0, s2 = 0, u = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = r.normal();
    s += x;
    s2 += x * x;
    u += r.uniform();
  }
  CHECK(std::abs(s / n) < 0.01);
  CHECK(std::abs(s2 / n - 1.0) < 0.02);
  CHECK(std::abs(u / n - 0.5) < 0.005);
  int hist[7] = {};
  for (int i = 0; i < 70000; ++i) hist[r.below(7)]++;
  for (int k : hist) CHECK(std::abs(k - 10000) < 500);
}
