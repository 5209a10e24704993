// The float flash path (register-blocked tiles) against the double path, which the naive reference,
// finite differences and the PyTorch fixtures check; and the tile products against plain loops.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
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
  // 32, 64, 128: the paper's head sizes; 20 and 8: the generic path (partial vectors, scalar columns).
  for (index_t dh : {32, 64, 128, 20, 8})
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
