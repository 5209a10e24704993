// Counter-based random numbers (Philox-4x32-10): the same (seed, stream, counter) gives the same
// numbers on the host and on the GPU, so masking, dropout and initialization are reproducible
// and independent of thread scheduling.
#pragma once
#include <cmath>
#include <cstdint>

#include "config.hpp"

namespace longseq {

struct Philox {
  struct u32x4 { std::uint32_t v[4]; };

  // Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3": 10 rounds of the 4x32 map.
  LONGSEQ_HD static u32x4 generate(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter) {
    std::uint32_t c0 = std::uint32_t(counter), c1 = std::uint32_t(counter >> 32);
    std::uint32_t c2 = std::uint32_t(stream), c3 = std::uint32_t(stream >> 32);
    std::uint32_t k0 = std::uint32_t(seed), k1 = std::uint32_t(seed >> 32);
    constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
      std::uint64_t p0 = std::uint64_t(M0) * c0, p1 = std::uint64_t(M1) * c2;
      std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
      std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
      c0 = hi1 ^ c1 ^ k0;
      c1 = lo1;
      c2 = hi0 ^ c3 ^ k1;
      c3 = lo0;
      k0 += W0;
      k1 += W1;
    }
    return {{c0, c1, c2, c3}};
  }
  // Uniform in [0, 1) with 24 random bits (exact in float, identical on every device).
  LONGSEQ_HD static float to_unit(std::uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
  // Uniform in [0, 1) with 53 random bits from two words.
  LONGSEQ_HD static double to_unit53(std::uint32_t a, std::uint32_t b) {
    std::uint64_t m = (std::uint64_t(a) << 21) ^ std::uint64_t(b >> 11);
    return double(m & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
};

// A host-side stream of numbers: element i of stream s under seed k is Philox(k, s, i / 4)[i % 4].
class Rng {
 public:
  Rng() = default;
  Rng(std::uint64_t seed, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  std::uint32_t next_u32() {
    if (idx_ == 4) {
      block_ = Philox::generate(seed_, stream_, counter_++);
      idx_ = 0;
    }
    return block_.v[idx_++];
  }
  float uniform() { return Philox::to_unit(next_u32()); }
  double uniform53() {
    std::uint32_t a = next_u32();
    return Philox::to_unit53(a, next_u32());
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform53(); }
  // Box-Muller on two 53-bit uniforms; 1 - u keeps the log argument in (0, 1].
  double normal(double mean = 0.0, double stddev = 1.0) {
    double u1 = 1.0 - uniform53(), u2 = uniform53();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Uniform integer in [0, n) by rejection, free of modulo bias.
  std::uint64_t below(std::uint64_t n) {
    if (n <= 1) return 0;
    std::uint64_t limit = (~std::uint64_t(0)) - (~std::uint64_t(0)) % n;
    for (;;) {
      std::uint64_t x = (std::uint64_t(next_u32()) << 32) | next_u32();
      if (x < limit) return x % n;
    }
  }
  // A child stream whose numbers do not overlap this one's (distinct Philox stream id).
  Rng fork(std::uint64_t salt) const { return Rng(seed_, stream_ * 0x9E3779B97F4A7C15ull + salt + 1); }

  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }
  std::uint64_t counter() const { return counter_; }
  int index() const { return idx_; }
  // Restores a saved position (checkpoints store seed, stream, counter and index).
  void restore(std::uint64_t seed, std::uint64_t stream, std::uint64_t counter, int index) {
    seed_ = seed;
    stream_ = stream;
    counter_ = counter;
    idx_ = 4;
    if (index < 4) {
      // Regenerate the current block so the next word is the one that was due.
      block_ = Philox::generate(seed_, stream_, counter_ - 1);
      idx_ = index;
    }
  }

 private:
  std::uint64_t seed_ = 0, stream_ = 0, counter_ = 0;
  Philox::u32x4 block_{};
  int idx_ = 4;
};

}  // namespace longseq
