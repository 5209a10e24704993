// GPU flash attention: fused kernels vs the cuBLAS reference path vs the host flash kernel vs a naive double
// reference, forward (o, lse) and backward (dq, dk, dv), for float/half/bf16, head dims 32/64/128 and masks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <longseq/attention/cuda/flash.cuh>
#include <longseq/attention/cuda/reference.cuh>
#include <longseq/attention/flash.hpp>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <string>
#include <vector>

using namespace longseq;
using namespace longseq::attention;

namespace {

struct Case {
  const char* name;
  bool causal = false;
  index_t window = 0, look_back = 1, look_forward = 1;
  int padding = 0;  // 0 none; 1: batch 1 pads its last 10 keys; 2: batch 1 pads its first 3 keys
  index_t len_q = 45, len_k = 45, q_offset = 0;
  double dropout = 0.0;
};

// Sizes not multiples of the tiles (rows 8/16, columns 32), so every edge path runs.
const Case cases[] = {
    {"bidirectional"},
    {"causal", true},
    {"padding", false, 0, 1, 1, 1},
    {"causal, first keys padded (rows that see nothing)", true, 0, 1, 1, 2},
    {"local", false, 8, 1, 1},
    {"local causal", true, 8, 2, 0},
    {"local with padding", false, 16, 1, 2, 1},
    {"causal with cached keys", true, 0, 1, 1, 0, 13, 45, 32},
};

constexpr index_t B = 2, H = 2;

std::vector<std::uint8_t> padding_of(const Case& c) {
  std::vector<std::uint8_t> pad(std::size_t(B * c.len_k), 0);
  for (index_t j = 0; j < c.len_k; ++j) {
    if (c.padding == 1 && j >= c.len_k - 10) pad[std::size_t(c.len_k + j)] = 1;
    if (c.padding == 2 && j < 3) pad[std::size_t(c.len_k + j)] = 1;
  }
  return pad;
}

MaskSpec mask_of(const Case& c, const std::uint8_t* pad) {
  MaskSpec m;
  m.causal = c.causal;
  m.window = c.window;
  m.look_back = c.look_back;
  m.look_forward = c.look_forward;
  m.q_offset = c.q_offset;
  if (c.padding != 0) {
    m.key_padding = pad;
    m.key_padding_stride = c.len_k;
  }
  return m;
}

// Inputs drawn once in double and rounded to T; every reference starts from the rounded values.
template <class T>
std::vector<T> random_values(index_t n, std::uint64_t seed, double amp) {
  Rng rng(seed);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = T(float(rng.uniform(-amp, amp)));
  return v;
}
template <class T>
std::vector<double> widen(const std::vector<T>& v) {
  std::vector<double> w(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) w[i] = double(float(v[i]));
  return w;
}
template <class T>
T* upload(Context<device::cuda>&, const std::vector<T>& v, std::vector<Tensor<T, device::cuda>>& keep) {
  keep.emplace_back(Tensor<T, device::cuda>(Shape{index_t(v.size())}));
  copy_to_device<T>(TensorView<const T>(v.data(), Shape{index_t(v.size())}), keep.back().view());
  return keep.back().data();
}
template <class T>
std::vector<double> download(Context<device::cuda>& ctx, const T* p, index_t n) {
  ctx.synchronize();
  std::vector<T> h(static_cast<std::size_t>(n));
  copy_to_host<T>(TensorView<const T, device::cuda>(p, Shape{n}), TensorView<T>(h.data(), Shape{n}));
  return widen(h);
}

// max |got - want| / max(1, max |want|); two -inf entries agree, any other non-finite value fails.
double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double scale = 1.0, err = 0.0;
  for (double w : want)
    if (std::isfinite(w)) scale = std::max(scale, std::abs(w));
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == want[i]) continue;
    const double d = std::abs(got[i] - want[i]);
    if (!(d <= err)) err = std::isnan(d) || std::isinf(d) ? INFINITY : d;
  }
  return err / scale;
}

struct Grads {
  std::vector<double> o, lse, dq, dk, dv;
};

// Naive attention in double over the (B, L, H * dh) layouts, no dropout.
Grads naive(const Case& c, index_t dh, const std::vector<double>& q, const std::vector<double>& k,
            const std::vector<double>& v, const std::vector<double>& g, const std::vector<std::uint8_t>& pad) {
  const index_t Lq = c.len_q, Lk = c.len_k, row = H * dh;
  const MaskSpec m = mask_of(c, pad.data());
  const double scale = 1.0 / std::sqrt(double(dh));
  Grads r;
  r.o.assign(std::size_t(B * Lq * row), 0.0);
  r.dq.assign(r.o.size(), 0.0);
  r.dk.assign(std::size_t(B * Lk * row), 0.0);
  r.dv.assign(r.dk.size(), 0.0);
  r.lse.assign(std::size_t(B * H * Lq), -INFINITY);
  std::vector<double> p(static_cast<std::size_t>(Lk)), dp(static_cast<std::size_t>(Lk));
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < Lq; ++i) {
        auto Q = [&](index_t t, index_t d) { return q[std::size_t((b * Lq + t) * row + h * dh + d)]; };
        auto at = [&](index_t t, index_t d) { return std::size_t((b * Lk + t) * row + h * dh + d); };
        const auto oi = std::size_t((b * Lq + i) * row + h * dh);
        double mx = -INFINITY;
        for (index_t j = 0; j < Lk; ++j) {
          p[std::size_t(j)] = -INFINITY;
          if (!m.allowed(i + c.q_offset, j) || m.padded(b, j)) continue;
          double s = 0;
          for (index_t d = 0; d < dh; ++d) s += Q(i, d) * k[at(j, d)];
          p[std::size_t(j)] = s * scale;
          mx = std::max(mx, s * scale);
        }
        if (mx == -INFINITY) continue;  // sees no key: output, lse and gradients stay 0 / -inf
        double sum = 0;
        for (auto& x : p) sum += (x = x == -INFINITY ? 0.0 : std::exp(x - mx));
        for (auto& x : p) x /= sum;
        r.lse[std::size_t((b * H + h) * Lq + i)] = mx + std::log(sum);
        double delta = 0;
        for (index_t j = 0; j < Lk; ++j) {
          double gv = 0;
          for (index_t d = 0; d < dh; ++d) {
            r.o[oi + std::size_t(d)] += p[std::size_t(j)] * v[at(j, d)];
            gv += g[oi + std::size_t(d)] * v[at(j, d)];
            r.dv[at(j, d)] += p[std::size_t(j)] * g[oi + std::size_t(d)];
          }
          dp[std::size_t(j)] = gv;
          delta += p[std::size_t(j)] * gv;
        }
        for (index_t j = 0; j < Lk; ++j) {
          const double ds = p[std::size_t(j)] * (dp[std::size_t(j)] - delta) * scale;
          for (index_t d = 0; d < dh; ++d) {
            r.dq[oi + std::size_t(d)] += ds * k[at(j, d)];
            r.dk[at(j, d)] += ds * Q(i, d);
          }
        }
      }
  return r;
}

// Host flash kernel in float on the same (rounded) inputs.
Grads host_flash(const Case& c, index_t dh, const std::vector<double>& q, const std::vector<double>& k,
                 const std::vector<double>& v, const std::vector<double>& g, const std::vector<std::uint8_t>& pad,
                 std::uint64_t seed) {
  auto narrow = [](const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); };
  const auto qf = narrow(q), kf = narrow(k), vf = narrow(v), gf = narrow(g);
  const index_t row = H * dh;
  FlashArgs<float> a;
  a.batch = B;
  a.heads = H;
  a.len_q = c.len_q;
  a.len_k = c.len_k;
  a.head_dim = dh;
  a.q = qf.data();
  a.k = kf.data();
  a.v = vf.data();
  a.q_batch = c.len_q * row;
  a.k_batch = a.v_batch = c.len_k * row;
  a.q_row = a.k_row = a.v_row = row;
  a.scale = 1.0 / std::sqrt(double(dh));
  a.mask = mask_of(c, pad.data());
  a.dropout = c.dropout;
  a.seed = seed;
  a.stream = 7;
  std::vector<float> o(qf.size()), lse(std::size_t(B * H * c.len_q)), dq(qf.size()), dk(kf.size()), dv(vf.size());
  Context<device::host> hctx;
  flash_forward(hctx, a, o.data(), a.q_batch, row, lse.data());
  flash_backward(hctx, a, o.data(), a.q_batch, row, lse.data(), gf.data(), dq.data(), dk.data(), dv.data());
  return {widen(o), widen(lse), widen(dq), widen(dk), widen(dv)};
}

enum class Path { flash, reference };

// One device run (flash kernels or the cuBLAS reference) of forward and backward.
template <class T>
Grads device_run(Context<device::cuda>& ctx, Path path, const Case& c, index_t dh, const std::vector<T>& q,
                 const std::vector<T>& k, const std::vector<T>& v, const std::vector<T>& g,
                 const std::vector<std::uint8_t>& pad, std::uint64_t seed) {
  std::vector<Tensor<T, device::cuda>> keep;
  keep.reserve(8);  // upload() hands out pointers into these tensors
  const index_t row = H * dh, nq = B * c.len_q * row, nk = B * c.len_k * row, nl = B * H * c.len_q;
  FlashArgs<T> a;
  a.batch = B;
  a.heads = H;
  a.len_q = c.len_q;
  a.len_k = c.len_k;
  a.head_dim = dh;
  a.q = upload(ctx, q, keep);
  a.k = upload(ctx, k, keep);
  a.v = upload(ctx, v, keep);
  a.q_batch = c.len_q * row;
  a.k_batch = a.v_batch = c.len_k * row;
  a.q_row = a.k_row = a.v_row = row;
  a.scale = 1.0 / std::sqrt(double(dh));
  auto pad_d = to_device(TensorView<const std::uint8_t>(pad.data(), Shape{index_t(pad.size())}));
  a.mask = mask_of(c, pad_d.data());
  a.dropout = c.dropout;
  a.seed = seed;
  a.stream = 7;
  const T* gd = upload(ctx, g, keep);
  Tensor<T, device::cuda> o(Shape{nq}), dq(Shape{nq}), dk(Shape{nk}), dv(Shape{nk});
  Tensor<float, device::cuda> lse(Shape{nl});
  if (path == Path::flash) {
    flash_forward(ctx, a, o.data(), a.q_batch, row, lse.data());
    flash_backward(ctx, a, o.data(), a.q_batch, row, lse.data(), gd, dq.data(), dk.data(), dv.data());
  } else {
    reference_forward(ctx, a, o.data(), a.q_batch, row, lse.data());
    reference_backward(ctx, a, o.data(), a.q_batch, row, lse.data(), gd, dq.data(), dk.data(), dv.data());
  }
  return {download(ctx, o.data(), nq), download(ctx, lse.data(), nl), download(ctx, dq.data(), nq),
          download(ctx, dk.data(), nk), download(ctx, dv.data(), nk)};
}

void check_close(const Grads& got, const Grads& want, double tol, const char* what) {
  CAPTURE(what);
  CHECK(rel_error(got.o, want.o) < tol);
  CHECK(rel_error(got.lse, want.lse) < tol);
  CHECK(rel_error(got.dq, want.dq) < tol);
  CHECK(rel_error(got.dk, want.dk) < tol);
  CHECK(rel_error(got.dv, want.dv) < tol);
}

// Tolerances relative to the largest magnitude: the fused kernels compute in fp32 and round once at the
// end; the reference path also stores scores and probabilities in T.
template <class T>
void compare_all(double tol_flash, double tol_reference) {
  Context<device::cuda> ctx;
  for (index_t dh : {16, 32, 48, 64, 128})  // 16 and 48 run zero-padded to the 32 and 64 tiles
    for (const Case& c : cases) {
      CAPTURE(dh);
      CAPTURE(std::string(c.name));
      const index_t row = H * dh;
      const auto q = random_values<T>(B * c.len_q * row, 1, 1.5), k = random_values<T>(B * c.len_k * row, 2, 1.5),
                 v = random_values<T>(B * c.len_k * row, 3, 1.0), g = random_values<T>(B * c.len_q * row, 4, 1.0);
      const auto pad = padding_of(c);
      const auto want = naive(c, dh, widen(q), widen(k), widen(v), widen(g), pad);
      const auto host = host_flash(c, dh, widen(q), widen(k), widen(v), widen(g), pad, 0);
      const auto flash = device_run<T>(ctx, Path::flash, c, dh, q, k, v, g, pad, 0);
      const auto ref = device_run<T>(ctx, Path::reference, c, dh, q, k, v, g, pad, 0);
      check_close(host, want, 1e-4, "host flash (float) vs naive double");
      check_close(flash, want, tol_flash, "CUDA flash vs naive double");
      check_close(flash, host, tol_flash, "CUDA flash vs host flash (float)");
      check_close(ref, want, tol_reference, "CUDA reference vs naive double");
      check_close(flash, ref, tol_reference, "CUDA flash vs CUDA reference");
    }
}

}  // namespace

TEST_CASE("CUDA flash attention float: vs reference, host flash and naive double") {
  compare_all<float>(1e-4, 1e-4);
}

TEST_CASE("CUDA flash attention half: vs reference, host flash and naive double") {
  compare_all<longseq::half>(4e-3, 2e-2);
}

TEST_CASE("CUDA flash attention bf16: vs reference, host flash and naive double") {
  compare_all<bf16>(2e-2, 8e-2);
}

TEST_CASE("CUDA flash attention dropout draws the host's mask") {
  Context<device::cuda> ctx;
  // Forward and backward with dropout agree with the host flash kernel (same Philox elements) and with the
  // cuBLAS reference; and the output differs from the dropout-free one, so the mask is really applied.
  for (index_t dh : {32, 128}) {
    CAPTURE(dh);
    Case c{"dropout, causal with padding", true, 0, 1, 1, 1};
    c.dropout = 0.25;
    const index_t row = H * dh;
    const auto q = random_values<float>(B * c.len_q * row, 11, 1.5), k = random_values<float>(B * c.len_k * row, 12, 1.5),
               v = random_values<float>(B * c.len_k * row, 13, 1.0), g = random_values<float>(B * c.len_q * row, 14, 1.0);
    const auto pad = padding_of(c);
    const std::uint64_t seed = 1234;
    const auto host = host_flash(c, dh, widen(q), widen(k), widen(v), widen(g), pad, seed);
    const auto flash = device_run<float>(ctx, Path::flash, c, dh, q, k, v, g, pad, seed);
    const auto ref = device_run<float>(ctx, Path::reference, c, dh, q, k, v, g, pad, seed);
    check_close(flash, host, 1e-4, "CUDA flash vs host flash, dropout 0.25");
    check_close(ref, host, 1e-4, "CUDA reference vs host flash, dropout 0.25");
    Case c0 = c;
    c0.dropout = 0.0;
    const auto plain = device_run<float>(ctx, Path::flash, c0, dh, q, k, v, g, pad, seed);
    CHECK(rel_error(flash.o, plain.o) > 1e-2);
    CHECK(rel_error(flash.lse, plain.lse) < 1e-5);  // the normalizer does not see dropout
  }
}

TEST_CASE("CUDA flash attention rejects an unsupported head_dim") {
  Context<device::cuda> ctx;
  FlashArgs<float> a;
  a.batch = 1;
  a.heads = 2;
  a.len_q = a.len_k = 4;
  a.head_dim = 160;
  a.q_row = a.k_row = a.v_row = 320;
  float* none = nullptr;
  CHECK_THROWS_WITH_AS(flash_forward(ctx, a, none, 4 * 320, 320, none),
                       doctest::Contains("head_dim 160 is not supported"), Error);
  CHECK_THROWS_WITH_AS(flash_backward(ctx, a, none, 4 * 320, 320, none, none, none, none, none),
                       doctest::Contains("expected 1 to 128"), Error);
}
