// Tensor-core flash attention (half, bf16): forward (o, lse) and backward (dq, dk, dv) against the fp32 SIMT
// kernels on the same inputs, the host flash kernel in float and a naive double reference; head dims 32, 64,
// 128 (and 16, 48 zero-padded), causal and not, lengths that are not multiples of the tiles, masks, dropout,
// batch * heads past 65535, and the dispatch between the two device paths.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <longseq/attention/cuda/flash.cuh>
#include <longseq/attention/flash.hpp>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <string>
#include <vector>

using namespace longseq;
using namespace longseq::attention;

namespace {

struct Problem {
  const char* name;
  index_t len_q = 45, len_k = 45;
  bool causal = false;
  index_t window = 0, look_back = 1, look_forward = 1;
  int padding = 0;  // 0 none; 1: batch 1 pads its last 10 keys; 2: batch 1 pads its first 3 keys
  index_t q_offset = 0;
  double dropout = 0.0;
  index_t batch = 2, heads = 2;
};

// Lengths straddle the tiles (64 rows per block; 64 or, at head_dim 128, 32 streamed rows).
const Problem problems[] = {
    {"bidirectional", 45, 45},
    {"causal", 45, 45, true},
    {"bidirectional, three row tiles", 150, 150},
    {"causal, three row tiles", 150, 150, true},
    {"causal, first keys padded (rows that see nothing)", 70, 70, true, 0, 1, 1, 2},
    {"local window with padding", 100, 100, false, 16, 1, 2, 1},
    {"causal with cached keys", 13, 77, true, 0, 1, 1, 0, 64},
};

// Inputs drawn in double, rounded to T once; every path starts from the rounded values.
template <class T>
struct Inputs {
  std::vector<T> q, k, v, g;
  std::vector<std::uint8_t> pad;
};

template <class T>
std::vector<T> draw(std::size_t n, std::uint64_t seed, double amp) {
  Rng rng(seed);
  std::vector<T> x(n);
  for (auto& e : x) e = T(float(rng.uniform(-amp, amp)));
  return x;
}

template <class T>
Inputs<T> inputs_of(const Problem& p, index_t dh, std::uint64_t seed) {
  const auto nq = std::size_t(p.batch * p.len_q * p.heads * dh), nk = std::size_t(p.batch * p.len_k * p.heads * dh);
  Inputs<T> in{draw<T>(nq, seed, 1.5), draw<T>(nk, seed + 1, 1.5), draw<T>(nk, seed + 2, 1.0),
               draw<T>(nq, seed + 3, 1.0), std::vector<std::uint8_t>(std::size_t(p.batch * p.len_k), 0)};
  if (p.batch > 1)
    for (index_t j = 0; j < p.len_k; ++j)
      if ((p.padding == 1 && j >= p.len_k - 10) || (p.padding == 2 && j < 3)) in.pad[std::size_t(p.len_k + j)] = 1;
  return in;
}

MaskSpec mask_of(const Problem& p, const std::uint8_t* pad) {
  MaskSpec m;
  m.causal = p.causal;
  m.window = p.window;
  m.look_back = p.look_back;
  m.look_forward = p.look_forward;
  m.q_offset = p.q_offset;
  if (p.padding != 0) {
    m.key_padding = pad;
    m.key_padding_stride = p.len_k;
  }
  return m;
}

// The arguments over (B, L, heads * dh) rows for any element type; pointers are filled in by the caller.
template <class T>
FlashArgs<T> args_of(const Problem& p, index_t dh, std::uint64_t seed) {
  FlashArgs<T> a;
  a.batch = p.batch;
  a.heads = p.heads;
  a.len_q = p.len_q;
  a.len_k = p.len_k;
  a.head_dim = dh;
  a.q_batch = p.len_q * p.heads * dh;
  a.k_batch = a.v_batch = p.len_k * p.heads * dh;
  a.q_row = a.k_row = a.v_row = p.heads * dh;
  a.scale = 1.0 / std::sqrt(double(dh));
  a.dropout = p.dropout;
  a.seed = seed;
  a.stream = 5;
  return a;
}

struct Result {
  std::vector<double> o, lse, dq, dk, dv;
};

template <class T>
std::vector<double> widen(const std::vector<T>& x) {
  std::vector<double> w(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) w[i] = double(float(x[i]));
  return w;
}

// Softmax attention written out in double (no dropout): scores, probabilities, then the gradients.
template <class T>
Result naive(const Problem& p, index_t dh, const Inputs<T>& in) {
  const auto q = widen(in.q), k = widen(in.k), v = widen(in.v), g = widen(in.g);
  const index_t B = p.batch, H = p.heads, Lq = p.len_q, Lk = p.len_k, row = H * dh;
  const MaskSpec m = mask_of(p, in.pad.data());
  const double scale = 1.0 / std::sqrt(double(dh));
  Result r;
  r.o.assign(q.size(), 0.0);
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(k.size(), 0.0);
  r.lse.assign(std::size_t(B * H * Lq), -INFINITY);
  std::vector<double> pr(static_cast<std::size_t>(Lk)), dp(static_cast<std::size_t>(Lk));
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < Lq; ++i) {
        const std::size_t qi = std::size_t((b * Lq + i) * row + h * dh);
        auto kj = [&](index_t j) { return std::size_t((b * Lk + j) * row + h * dh); };
        double mx = -INFINITY;
        for (index_t j = 0; j < Lk; ++j) {
          double s = -INFINITY;
          if (m.allowed(i + p.q_offset, j) && !m.padded(b, j)) {
            s = 0.0;
            for (index_t d = 0; d < dh; ++d) s += q[qi + std::size_t(d)] * k[kj(j) + std::size_t(d)];
            s *= scale;
          }
          pr[std::size_t(j)] = s;
          mx = std::max(mx, s);
        }
        if (mx == -INFINITY) continue;  // sees no key: zero output and gradients, lse -inf
        double sum = 0.0;
        for (auto& x : pr) sum += (x = x == -INFINITY ? 0.0 : std::exp(x - mx));
        for (auto& x : pr) x /= sum;
        r.lse[std::size_t((b * H + h) * Lq + i)] = mx + std::log(sum);
        double delta = 0.0;
        for (index_t j = 0; j < Lk; ++j) {
          double gv = 0.0;
          for (index_t d = 0; d < dh; ++d) {
            const std::size_t e = kj(j) + std::size_t(d);
            r.o[qi + std::size_t(d)] += pr[std::size_t(j)] * v[e];
            r.dv[e] += pr[std::size_t(j)] * g[qi + std::size_t(d)];
            gv += g[qi + std::size_t(d)] * v[e];
          }
          dp[std::size_t(j)] = gv;
          delta += pr[std::size_t(j)] * gv;
        }
        for (index_t j = 0; j < Lk; ++j) {
          const double ds = pr[std::size_t(j)] * (dp[std::size_t(j)] - delta) * scale;
          for (index_t d = 0; d < dh; ++d) {
            r.dq[qi + std::size_t(d)] += ds * k[kj(j) + std::size_t(d)];
            r.dk[kj(j) + std::size_t(d)] += ds * q[qi + std::size_t(d)];
          }
        }
      }
  return r;
}

// The host flash kernel in float on the same rounded inputs (dropout included: the same Philox elements).
template <class T>
Result host_flash(const Problem& p, index_t dh, const Inputs<T>& in, std::uint64_t seed) {
  auto to_float = [](const std::vector<T>& x) {
    std::vector<float> f(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) f[i] = float(x[i]);
    return f;
  };
  const auto q = to_float(in.q), k = to_float(in.k), v = to_float(in.v), g = to_float(in.g);
  auto a = args_of<float>(p, dh, seed);
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.mask = mask_of(p, in.pad.data());
  std::vector<float> o(q.size()), lse(std::size_t(p.batch * p.heads * p.len_q)), dq(q.size()), dk(k.size()),
      dv(v.size());
  Context<device::host> ctx;
  flash_forward(ctx, a, o.data(), a.q_batch, a.q_row, lse.data());
  flash_backward(ctx, a, o.data(), a.q_batch, a.q_row, lse.data(), g.data(), dq.data(), dk.data(), dv.data());
  return {widen(o), widen(lse), widen(dq), widen(dk), widen(dv)};
}

enum class Path { tensor_cores, simt, dispatched };

template <class T>
Tensor<T, device::cuda> upload(const std::vector<T>& x) {
  return to_device(TensorView<const T>(x.data(), Shape{index_t(x.size())}));
}
template <class T>
std::vector<T> download(Context<device::cuda>& ctx, const Tensor<T, device::cuda>& d) {
  ctx.synchronize();
  std::vector<T> h(static_cast<std::size_t>(d.numel()));
  copy_to_host<T>(TensorView<const T, device::cuda>(d.data(), Shape{d.numel()}),
                  TensorView<T>(h.data(), Shape{d.numel()}));
  return h;
}

// Raw device results, kept in T so that two runs can be compared bit for bit.
template <class T>
struct DeviceResult {
  std::vector<T> o, dq, dk, dv;
  std::vector<float> lse;
  Result wide() const { return {widen(o), widen(lse), widen(dq), widen(dk), widen(dv)}; }
};

template <class T>
DeviceResult<T> device_run(Context<device::cuda>& ctx, Path path, const Problem& p, index_t dh, const Inputs<T>& in,
                           std::uint64_t seed) {
  const auto q = upload(in.q), k = upload(in.k), v = upload(in.v), g = upload(in.g);
  const auto pad = upload(in.pad);
  auto a = args_of<T>(p, dh, seed);
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.mask = mask_of(p, pad.data());
  Tensor<T, device::cuda> o(Shape{q.numel()}), dq(Shape{q.numel()}), dk(Shape{k.numel()}), dv(Shape{k.numel()});
  Tensor<float, device::cuda> lse(Shape{p.batch * p.heads * p.len_q});
  switch (path) {
    case Path::tensor_cores:
      flash_forward_mma(ctx, a, o.data(), a.q_batch, a.q_row, lse.data());
      flash_backward_mma(ctx, a, o.data(), a.q_batch, a.q_row, lse.data(), g.data(), dq.data(), dk.data(), dv.data());
      break;
    case Path::simt:
      flash_forward_simt(ctx, a, o.data(), a.q_batch, a.q_row, lse.data());
      flash_backward_simt(ctx, a, o.data(), a.q_batch, a.q_row, lse.data(), g.data(), dq.data(), dk.data(), dv.data());
      break;
    case Path::dispatched:
      flash_forward(ctx, a, o.data(), a.q_batch, a.q_row, lse.data());
      flash_backward(ctx, a, o.data(), a.q_batch, a.q_row, lse.data(), g.data(), dq.data(), dk.data(), dv.data());
      break;
  }
  return {download(ctx, o), download(ctx, dq), download(ctx, dk), download(ctx, dv), download(ctx, lse)};
}

// max |got - want| / max(1, max |want|); matching infinities agree, any other non-finite value fails.
double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double scale = 1.0, err = 0.0;
  for (double w : want)
    if (std::isfinite(w)) scale = std::max(scale, std::abs(w));
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == want[i]) continue;
    const double d = std::abs(got[i] - want[i]);
    if (!(d <= err)) err = std::isfinite(d) ? d : INFINITY;
  }
  return err / scale;
}

// Tolerances relative to each tensor's largest magnitude. The tensor-core path rounds P (forward, dV) and dS
// (dQ, dK) to T before their products, besides the inputs and outputs the SIMT path also rounds: bf16 keeps
// 8 significant bits (one rounding 2^-9 = 2e-3), half 11 (2^-12 = 2.4e-4); sums over tens of keys of such
// roundings, and the output rounding, stay well inside these. lse comes from fp32 products of T values
// (exact) and fp32 sums, hence 1e-4 for both. Against the SIMT path on the same inputs: the sum of both
// paths' tolerances to the naive reference (the SIMT ones are those of cuda_flash.cu).
template <class T>
struct Tol;
template <>
struct Tol<longseq::half> {
  static constexpr double naive = 5e-3, simt = 5e-3 + 4e-3, lse = 1e-4;
};
template <>
struct Tol<bf16> {
  static constexpr double naive = 3e-2, simt = 3e-2 + 2e-2, lse = 1e-4;
};

void check_close(const Result& got, const Result& want, double tol, double tol_lse, const char* what) {
  CAPTURE(what);
  CHECK(rel_error(got.o, want.o) < tol);
  CHECK(rel_error(got.lse, want.lse) < tol_lse);
  CHECK(rel_error(got.dq, want.dq) < tol);
  CHECK(rel_error(got.dk, want.dk) < tol);
  CHECK(rel_error(got.dv, want.dv) < tol);
}

template <class T>
bool bitwise_equal(const std::vector<T>& x, const std::vector<T>& y) {
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0);
}
template <class T>
bool bitwise_equal(const DeviceResult<T>& x, const DeviceResult<T>& y) {
  return bitwise_equal(x.o, y.o) && bitwise_equal(x.lse, y.lse) && bitwise_equal(x.dq, y.dq) &&
         bitwise_equal(x.dk, y.dk) && bitwise_equal(x.dv, y.dv);
}

// The tensor-core kernels need a device of compute capability 8.0+ and code built for it.
bool tensor_cores_here(Context<device::cuda>& ctx) {
  if (flash_mma::device_supported(ctx.device())) return true;
  MESSAGE("the device or the build has no sm_80+ tensor-core kernels: tensor-core checks skipped");
  return false;
}

template <class T>
void compare_paths() {
  Context<device::cuda> ctx;
  if (!tensor_cores_here(ctx)) return;
  for (index_t dh : {32, 64, 128, 16, 48})  // 16 and 48 run zero-padded to the 32 and 64 tiles
    for (const Problem& p : problems) {
      CAPTURE(dh);
      CAPTURE(std::string(p.name));
      const auto in = inputs_of<T>(p, dh, 100 + std::uint64_t(dh));
      const auto want = naive(p, dh, in);
      const auto host = host_flash(p, dh, in, 0);
      const auto mma = device_run(ctx, Path::tensor_cores, p, dh, in, 0);
      const auto simt = device_run(ctx, Path::simt, p, dh, in, 0);
      const auto tc = mma.wide();
      check_close(tc, want, Tol<T>::naive, Tol<T>::lse, "tensor cores vs naive double");
      check_close(tc, host, Tol<T>::naive, Tol<T>::lse, "tensor cores vs host flash (float)");
      check_close(tc, simt.wide(), Tol<T>::simt, Tol<T>::lse, "tensor cores vs fp32 SIMT kernels");
      // Deterministic: no atomics, so a second run gives the same bits.
      CHECK(bitwise_equal(mma, device_run(ctx, Path::tensor_cores, p, dh, in, 0)));
    }
}

}  // namespace

TEST_CASE("tensor-core flash attention half: vs SIMT kernels, host flash and naive double") {
  compare_paths<longseq::half>();
}

TEST_CASE("tensor-core flash attention bf16: vs SIMT kernels, host flash and naive double") { compare_paths<bf16>(); }

TEST_CASE("tensor-core flash attention draws the host's dropout mask") {
  Context<device::cuda> ctx;
  if (!tensor_cores_here(ctx)) return;
  for (index_t dh : {32, 128}) {
    CAPTURE(dh);
    Problem p{"dropout, causal with padding", 70, 70, true, 0, 1, 1, 1};
    p.dropout = 0.25;
    const std::uint64_t seed = 99;
    const auto in = inputs_of<bf16>(p, dh, 7);
    const auto host = host_flash(p, dh, in, seed);
    const auto mma = device_run(ctx, Path::tensor_cores, p, dh, in, seed).wide();
    const auto simt = device_run(ctx, Path::simt, p, dh, in, seed).wide();
    check_close(mma, host, Tol<bf16>::naive, Tol<bf16>::lse, "tensor cores vs host flash, dropout 0.25");
    check_close(mma, simt, Tol<bf16>::simt, Tol<bf16>::lse, "tensor cores vs SIMT kernels, dropout 0.25");
    Problem p0 = p;
    p0.dropout = 0.0;
    const auto plain = device_run(ctx, Path::tensor_cores, p0, dh, in, seed).wide();
    CHECK(rel_error(mma.o, plain.o) > 1e-2);    // the mask is applied (a quarter of the weights dropped)
    CHECK(rel_error(mma.lse, plain.lse) < 1e-6);  // and the normalizer does not see it
  }
}

TEST_CASE("tensor-core flash attention: batch * heads past the 65535 of one grid dimension") {
  Context<device::cuda> ctx;
  if (!tensor_cores_here(ctx)) return;
  // 16500 x 4 = 66000 heads of 9 positions (the SIMT kernels put batch * heads in gridDim.y and refuse it).
  Problem p{"many heads, causal", 9, 9, true};
  p.batch = 16500;
  p.heads = 4;
  const index_t dh = 32;
  const auto in = inputs_of<bf16>(p, dh, 3);
  const auto host = host_flash(p, dh, in, 0);
  const auto mma = device_run(ctx, Path::tensor_cores, p, dh, in, 0).wide();
  check_close(mma, host, Tol<bf16>::naive, Tol<bf16>::lse, "tensor cores vs host flash, 66000 heads");
  CHECK_THROWS_WITH_AS(device_run(ctx, Path::simt, p, dh, in, 0), doctest::Contains("exceeds the grid's 65535 limit"),
                       Error);
}

TEST_CASE("tensor-core flash attention reads and writes strided rows (a fused q|k|v buffer)") {
  Context<device::cuda> ctx;
  if (!tensor_cores_here(ctx)) return;
  // q, k, v as column slices of one (B, L, 3 * H * dh) buffer, their gradients likewise, o and do interleaved in
  // one (B, L, 2 * H * dh) buffer: the same values as the contiguous run, so the same bits.
  for (index_t dh : {64, 48}) {
    CAPTURE(dh);
    const Problem p{"causal with padding, two row tiles", 100, 100, true, 0, 1, 1, 1};
    const auto in = inputs_of<bf16>(p, dh, 41);
    const auto flat = device_run(ctx, Path::tensor_cores, p, dh, in, 0);
    const index_t w = p.heads * dh, rows = p.batch * p.len_q;
    std::vector<bf16> qkv(std::size_t(rows * 3 * w)), og(std::size_t(rows * 2 * w));
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < w; ++c) {
        const auto at = std::size_t(r * w + c);
        qkv[std::size_t(r * 3 * w + c)] = in.q[at];
        qkv[std::size_t(r * 3 * w + w + c)] = in.k[at];
        qkv[std::size_t(r * 3 * w + 2 * w + c)] = in.v[at];
        og[std::size_t(r * 2 * w + w + c)] = in.g[at];
      }
    const auto qkv_d = upload(qkv);
    const auto pad = upload(in.pad);
    auto og_d = upload(og);
    Tensor<bf16, device::cuda> grads(Shape{rows * 3 * w});
    Tensor<float, device::cuda> lse(Shape{p.batch * p.heads * p.len_q});
    auto a = args_of<bf16>(p, dh, 0);
    a.q = qkv_d.data();
    a.k = qkv_d.data() + w;
    a.v = qkv_d.data() + 2 * w;
    a.q_row = a.k_row = a.v_row = 3 * w;
    a.q_batch = a.k_batch = a.v_batch = p.len_q * 3 * w;
    a.mask = mask_of(p, pad.data());
    bf16* o = og_d.data();
    const bf16* g = og_d.data() + w;
    flash_forward_mma(ctx, a, o, p.len_q * 2 * w, 2 * w, lse.data());
    flash_backward_mma(ctx, a, o, p.len_q * 2 * w, 2 * w, lse.data(), g, grads.data(), grads.data() + w,
                       grads.data() + 2 * w);
    const auto og_h = download(ctx, og_d), grads_h = download(ctx, grads);
    auto column = [&](const std::vector<bf16>& x, index_t stride, index_t offset) {
      std::vector<bf16> c(std::size_t(rows * w));
      for (index_t r = 0; r < rows; ++r)
        for (index_t j = 0; j < w; ++j) c[std::size_t(r * w + j)] = x[std::size_t(r * stride + offset + j)];
      return c;
    };
    CHECK(bitwise_equal(column(og_h, 2 * w, 0), flat.o));
    CHECK(bitwise_equal(column(og_h, 2 * w, w), in.g));  // do is left as it was
    CHECK(bitwise_equal(download(ctx, lse), flat.lse));
    CHECK(bitwise_equal(column(grads_h, 3 * w, 0), flat.dq));
    CHECK(bitwise_equal(column(grads_h, 3 * w, w), flat.dk));
    CHECK(bitwise_equal(column(grads_h, 3 * w, 2 * w), flat.dv));
  }
}

TEST_CASE("flash attention dispatch: tensor cores for half and bf16 on sm_80+, SIMT otherwise or when forced") {
  Context<device::cuda> ctx;
  const Problem p{"causal", 45, 45, true};
  FlashArgs<float> af = args_of<float>(p, 64, 0);
  FlashArgs<bf16> ab = args_of<bf16>(p, 64, 0);
  FlashArgs<longseq::half> ah = args_of<longseq::half>(p, 64, 0);
  const bool here = flash_mma::device_supported(ctx.device());
  CHECK_FALSE(use_tensor_cores(ctx, af));  // fp32 stays on the SIMT kernels
  CHECK(use_tensor_cores(ctx, ab) == here);
  CHECK(use_tensor_cores(ctx, ah) == here);
  ab.head_dim = 160;
  CHECK_FALSE(use_tensor_cores(ctx, ab));  // left to the SIMT path, which names the head_dim in its error
  ab.head_dim = 48;
  CHECK(use_tensor_cores(ctx, ab) == here);  // zero-padded to the 64 tile
  ::setenv("LONGSEQ_FLASH_SIMT", "1", 1);
  CHECK_FALSE(use_tensor_cores(ctx, ah));
  ::setenv("LONGSEQ_FLASH_SIMT", "0", 1);
  CHECK(use_tensor_cores(ctx, ah) == here);
  ::unsetenv("LONGSEQ_FLASH_SIMT");
  if (!here) return;
  // What flash_forward / flash_backward run: the tensor-core kernels' bits, or the SIMT kernels' when forced.
  const auto in = inputs_of<bf16>(p, 64, 21);
  const auto mma = device_run(ctx, Path::tensor_cores, p, 64, in, 0);
  const auto simt = device_run(ctx, Path::simt, p, 64, in, 0);
  CHECK(bitwise_equal(device_run(ctx, Path::dispatched, p, 64, in, 0), mma));
  ::setenv("LONGSEQ_FLASH_SIMT", "1", 1);
  const auto forced = device_run(ctx, Path::dispatched, p, 64, in, 0);
  ::unsetenv("LONGSEQ_FLASH_SIMT");
  CHECK(bitwise_equal(forced, simt));
  CHECK_FALSE(bitwise_equal(mma.o, simt.o));  // the two paths round differently, so the check above can fail
}

TEST_CASE("tensor-core flash attention refuses bad arguments, naming them") {
  Context<device::cuda> ctx;
  FlashArgs<bf16> a;
  a.batch = 1;
  a.heads = 2;
  a.len_q = a.len_k = 4;
  a.head_dim = 160;
  a.q_row = a.k_row = a.v_row = 320;
  bf16* none = nullptr;
  float* no_lse = nullptr;
  CHECK_THROWS_WITH_AS(flash_forward_mma(ctx, a, none, 4 * 320, 320, no_lse),
                       doctest::Contains("head_dim 160 is not supported"), Error);
  a.head_dim = 64;
  a.q_row = 100;
  CHECK_THROWS_WITH_AS(flash_backward_mma(ctx, a, none, 4 * 320, 320, no_lse, none, none, none, none),
                       doctest::Contains("row strides (q 100"), Error);
  a.q_row = 128;
  a.dropout = 1.0;
  CHECK_THROWS_WITH_AS(flash_forward_mma(ctx, a, none, 4 * 128, 128, no_lse), doctest::Contains("dropout 1 must be"),
                       Error);
}
