// The float flash path (register-blocked tiles) against the double path, which the naive reference,
// finite differences and the PyTorch fixtures check; and the tile products against plain loops.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <longseq/attention/flash.hpp>

using namespace longseq;

namespace {

struct Problem {
  index_t B, H, L, dh;
  std::vector<double> q, k, v, dout;
  std::vector<std::uint8_t> pad;
  Problem(index_t B_, index_t H_, index_t L_, index_t dh_, std::uint64_t seed) : B(B_), H(H_), L(L_), dh(dh_) {
    Rng rng(seed);
    const auto n = std::size_t(B * L * H * dh);
    for (auto* x : {&q, &k, &v, &dout}) {
      x->resize(n);
      for (auto& e : *x) e = rng.normal();
    }
    // Sequence b has its last 3 b keys padded (at least one key stays visible).
    pad.assign(std::size_t(B * L), 0);
    for (index_t b = 0; b < B; ++b)
      for (index_t l = std::max<index_t>(1, L - 3 * b); l < L; ++l) pad[std::size_t(b * L + l)] = 1;
  }
};

struct Result {
  std::vector<double> o, lse, dq, dk, dv;
};

// Runs the flash forward and backward in T on the (B, L, H * dh) layout the attention layer uses.
template <class T>
Result run(const Problem& p, const attention::MaskSpec& mask, bool padding, double dropout, index_t block_q,
           index_t block_k) {
  HostContext ctx;
  const index_t row = p.H * p.dh, n = p.B * p.L * row;
  auto cast = [&](const std::vector<double>& x) { return std::vector<T>(x.begin(), x.end()); };
  const auto q = cast(p.q), k = cast(p.k), v = cast(p.v), dout = cast(p.dout);
  const auto size = static_cast<std::size_t>(n);
  std::vector<T> o(size), dq(size), dk(size), dv(size), lse(static_cast<std::size_t>(p.B * p.H * p.L));
  attention::FlashArgs<T> a;
  a.batch = p.B;
  a.heads = p.H;
  a.len_q = a.len_k = p.L;
  a.head_dim = p.dh;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.q_batch = a.k_batch = a.v_batch = p.L * row;
  a.q_row = a.k_row = a.v_row = row;
  a.scale = 1.0 / std::sqrt(double(p.dh));
  a.mask = mask;
  if (padding) {
    a.mask.key_padding = p.pad.data();
    a.mask.key_padding_stride = p.L;
  }
  a.dropout = dropout;
  a.seed = 5;
  a.stream = 2;
  a.block_q = block_q;
  a.block_k = block_k;
  a.simd_forward_keys = block_k;  // small key tiles: several online-softmax rescales on the float path too
  attention::flash_forward(ctx, a, o.data(), p.L * row, row, lse.data());
  attention::flash_backward(ctx, a, o.data(), p.L * row, row, lse.data(), dout.data(), dq.data(), dk.data(),
                            dv.data());
  auto back = [](const std::vector<T>& x) { return std::vector<double>(x.begin(), x.end()); };
  return {back(o), back(lse), back(dq), back(dk), back(dv)};
}

// Largest |a - b| relative to the largest |b| (float errors grow with the values' scale, not per entry).
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return worst / std::max(scale, 1e-30);
}

}  // namespace

TEST_CASE("float flash attention (register-blocked tiles) matches the double path for every head size and mask") {
  struct MaskCase {
    const char* name;
    attention::MaskSpec mask;
    bool padding;
    double dropout;
  };
  attention::MaskSpec causal;
  causal.causal = true;
  attention::MaskSpec local;
  local.window = 16;
  local.look_back = 1;
  local.look_forward = 0;
  const std::vector<MaskCase> masks = {{"full", {}, false, 0.0},
                                       {"causal", causal, false, 0.0},
                                       {"local", local, false, 0.0},
                                       {"padding", {}, true, 0.0},
                                       {"causal+dropout", causal, true, 0.25}};
  // 32, 64, 128: the paper's head sizes; 16: the main job's (d 64, 4 heads); 20 and 8: the generic path
  // (partial vectors, scalar columns).
  for (index_t dh : {32, 64, 128, 16, 20, 8})
    for (index_t block : {256, 7})
      for (const auto& mc : masks) {
        CAPTURE(dh);
        CAPTURE(block);
        CAPTURE(mc.name);
        const Problem p(2, 2, 75, dh, 17 + std::uint64_t(dh));
        const auto f = run<float>(p, mc.mask, mc.padding, mc.dropout, block, block == 7 ? 5 : block);
        const auto d = run<double>(p, mc.mask, mc.padding, mc.dropout, block, block == 7 ? 5 : block);
        CHECK(rel_err(f.o, d.o) < 2e-5);
        CHECK(rel_err(f.lse, d.lse) < 2e-6);
        CHECK(rel_err(f.dq, d.dq) < 5e-5);
        CHECK(rel_err(f.dk, d.dk) < 5e-5);
        CHECK(rel_err(f.dv, d.dv) < 5e-5);
      }
}

#if LONGSEQ_FLASH_SIMD
TEST_CASE("flash tile products equal plain loops for every strip width, row tail and stride") {
  Rng rng(3);
  namespace kn = attention::kernels;
  for (index_t M : {1, 3, 7, 8, 13})
    for (index_t N : {1, 5, kn::width, kn::width + 3, 2 * kn::width, 3 * kn::width + 1, 5 * kn::width + 2})
      for (index_t K : {1, 9, 32})
        for (bool trans_a : {false, true})
          for (bool accumulate : {false, true}) {
            CAPTURE(M);
            CAPTURE(N);
            CAPTURE(K);
            CAPTURE(trans_a);
            CAPTURE(accumulate);
            const index_t lda = (trans_a ? M : K) + 2, ldb = N + 3, ldc = N + 1;
            std::vector<float> a(std::size_t((trans_a ? K : M) * lda)), b(std::size_t(K * ldb)),
                c(std::size_t(M * ldc));
            for (auto* x : {&a, &b, &c})
              for (auto& e : *x) e = float(rng.normal());
            std::vector<double> want(c.size());
            const index_t a_row = trans_a ? 1 : lda, a_k = trans_a ? lda : 1;
            for (index_t i = 0; i < M; ++i)
              for (index_t j = 0; j < ldc; ++j) {
                const auto at = std::size_t(i * ldc + j);
                if (j >= N) {
                  want[at] = c[at];  // past N: untouched
                  continue;
                }
                double s = 0;
                for (index_t kk = 0; kk < K; ++kk) s += double(a[std::size_t(i * a_row + kk * a_k)]) * b[std::size_t(kk * ldb + j)];
                want[at] = 0.5 * s + (accumulate ? double(c[at]) : 0.0);
              }
            kn::gemm(M, N, K, 0.5f, a.data(), a_row, a_k, b.data(), ldb, c.data(), ldc, accumulate);
            double worst = 0;
            for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, std::abs(c[i] - want[i]));
            CHECK(worst < 1e-4);
          }
}
#endif

TEST_CASE("the softmax exp is exp to a few ulp on [-87.3, 0], exactly 0 below -87.7 and for -inf, NaN kept") {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x;
  for (int i = 0; i <= 40000; ++i) x.push_back(-87.3f * float(i) / 40000.0f);
  const std::size_t n_exact = x.size();
  for (float v : {-87.7f, -88.0f, -88.03f, -100.0f, -1e30f, -inf}) x.push_back(v);
  double worst = 0;
  for (std::size_t i = 0; i < n_exact; ++i) {
    const double want = std::exp(double(x[i]));
    // Below FLT_MIN (x < -87.34) the result is denormal: compare absolutely there.
    worst = std::max(worst, std::abs(double(ops::fast::exp_shifted(x[i])) - want) / std::max(want, 1.2e-38));
  }
  CHECK(worst < 5e-7);
  for (std::size_t i = n_exact; i < x.size(); ++i) CHECK(ops::fast::exp_shifted(x[i]) == 0.0f);
  CHECK(std::isnan(ops::fast::exp_shifted(std::numeric_limits<float>::quiet_NaN())));
  CHECK(ops::fast::exp_shifted(0.0f) == 1.0f);
#if LONGSEQ_FLASH_SIMD
  // The vector version agrees with the scalar one lane by lane (up to FMA contraction), zeros and NaN alike.
  namespace kn = attention::kernels;
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  while (x.size() % std::size_t(kn::width) != 0) x.push_back(-1.5f);
  double vec_worst = 0;
  for (std::size_t i = 0; i < x.size(); i += std::size_t(kn::width)) {
    const kn::vfloat y = kn::exp_shifted(kn::load(x.data() + i));
    for (int j = 0; j < kn::width; ++j) {
      const float want = ops::fast::exp_shifted(x[i + std::size_t(j)]);
      if (std::isnan(want) || want == 0.0f) {
        CHECK(std::isnan(y[j]) == std::isnan(want));
        if (want == 0.0f) CHECK(y[j] == 0.0f);
      } else {
        vec_worst = std::max(vec_worst, std::abs(double(y[j]) - want) / std::max(double(want), 1.2e-38));
      }
    }
  }
  CHECK(vec_worst < 5e-7);
#endif
}
