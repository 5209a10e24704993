// Naive double-precision attention used as the reference: materializes the full score matrix.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <longseq/attention/mha.hpp>
#include <vector>

namespace longseq::testing {

// y = out_proj(softmax(q k^T / sqrt(dh) + mask) v) with the layer's parameters, computed with plain loops.
template <class Pos>
std::vector<double> naive_mha(attention::MultiHeadAttention<double, device::host, Pos>& m, const Tensor<double>& x,
                              const std::vector<std::uint8_t>& pad, double dropout = 0.0, std::uint64_t seed = 0) {
  const index_t B = x.size(0), L = x.size(1), Dm = m.cfg.dim, H = m.cfg.heads, dh = Dm / H;
  auto proj = [&](nn::Linear<double>& lin, const std::vector<double>& in) {
    std::vector<double> out(std::size_t(B * L * Dm));
    for (index_t r = 0; r < B * L; ++r)
      for (index_t o = 0; o < Dm; ++o) {
        double s = lin.cfg.bias ? lin.bias.value[o] : 0.0;
        for (index_t i = 0; i < Dm; ++i) s += lin.weight.value(o, i) * in[std::size_t(r * Dm + i)];
        out[std::size_t(r * Dm + o)] = s;
      }
    return out;
  };
  std::vector<double> xin(x.data(), x.data() + x.numel());
  auto q = proj(m.q_proj, xin), k = proj(m.k_proj, xin), v = proj(m.v_proj, xin);
  if constexpr (std::is_same_v<Pos, attention::Rotary>) {
    const auto& rp = m.position;
    const index_t half = rp.rot_dim / 2;
    for (auto* t : {&q, &k})
      for (index_t b = 0; b < B; ++b)
        for (index_t l = 0; l < L; ++l)
          for (index_t h = 0; h < H; ++h) {
            double* base = t->data() + (b * L + l) * Dm + h * dh;
            std::vector<double> old(base, base + dh);
            for (index_t i = 0; i < half; ++i) {
              const double th = l * std::pow(rp.cfg.base, -2.0 * i / rp.rot_dim);
              const index_t ia = rp.cfg.interleaved ? 2 * i : i, iz = rp.cfg.interleaved ? 2 * i + 1 : i + half;
              base[ia] = old[ia] * std::cos(th) - old[iz] * std::sin(th);
              base[iz] = old[iz] * std::cos(th) + old[ia] * std::sin(th);
            }
          }
  }
  const auto mask = m.mask_spec();
  std::vector<double> o(static_cast<std::size_t>(B * L * Dm), 0.0), sc(static_cast<std::size_t>(L));
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < L; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (index_t j = 0; j < L; ++j) {
          bool ok = mask.allowed(i, j) && (pad.empty() || pad[std::size_t(b * L + j)] == 0);
          double s = 0;
          for (index_t c = 0; c < dh; ++c)
            s += q[std::size_t((b * L + i) * Dm + h * dh + c)] * k[std::size_t((b * L + j) * Dm + h * dh + c)];
          sc[std::size_t(j)] = ok ? s / std::sqrt(double(dh)) : -std::numeric_limits<double>::infinity();
          mx = std::max(mx, sc[std::size_t(j)]);
        }
        if (std::isinf(mx)) continue;
        double z = 0;
        for (index_t j = 0; j < L; ++j) z += std::exp(sc[std::size_t(j)] - mx);
        for (index_t j = 0; j < L; ++j) {
          double p = std::exp(sc[std::size_t(j)] - mx) / z;
          if (dropout > 0) {
            const std::uint64_t e = std::uint64_t(((b * H + h) * L + i) * L + j);
            const auto r = Philox::generate(seed, m.cfg.stream, e / 4);
            p = Philox::to_unit(r.v[e % 4]) >= float(dropout) ? p / (1 - dropout) : 0.0;
          }
          for (index_t c = 0; c < dh; ++c)
            o[std::size_t((b * L + i) * Dm + h * dh + c)] += p * v[std::size_t((b * L + j) * Dm + h * dh + c)];
        }
      }
  return proj(m.out_proj, o);
}

}  // namespace longseq::testing
