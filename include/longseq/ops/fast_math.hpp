// Branch-free float exp, erf and sigmoid that the compiler vectorizes (libm's expf and erff are calls,
// which it cannot), with double overloads that keep the std:: functions so double-precision code is exact.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace longseq::ops::fast {

namespace detail {

// Clamps and selects work on the bits with all-ones masks: written with ?: or std::min, GCC turns the
// clamped (constant) paths into branches of their own and the loop no longer vectorizes.
inline std::uint32_t mask(bool c) { return 0u - std::uint32_t(c); }
inline std::uint32_t bits(float x) { return std::bit_cast<std::uint32_t>(x); }
inline float select(std::uint32_t m, float a, float b) { return std::bit_cast<float>((bits(a) & m) | (bits(b) & ~m)); }

// min(max(x, lo), hi) for lo < 0 < hi. As unsigned, every negative float is above every positive one and
// a more negative float is larger; as signed, negative floats are negative ints.
inline float clamp(float x, float lo, float hi) {
  const std::uint32_t b = bits(x);
  const std::uint32_t below = mask(b > bits(lo));
  const std::uint32_t v = (b & ~below) | (bits(lo) & below);
  const std::uint32_t above = mask(std::int32_t(v) > std::int32_t(bits(hi)));
  return std::bit_cast<float>((v & ~above) | (bits(hi) & above));
}

// exp's reduction and polynomial, shared by the scalar and the vector versions (V: float or a GCC vector of
// floats): for x clamped to c and k = round(c / ln 2), exp(c) / 2^k as f = c - k ln2 (Cody-Waite: ln2 split in a
// short high part, so k*hi is exact) and a degree-7 Taylor polynomial in f (truncation < 6e-9 relative).
template <class V>
inline V exp_poly(V c, V k) {
  const V f = (c - k * 0.693145751953125f) - k * 1.428606765330187e-6f;
  V p = V{} + 1.0f / 5040.0f;
  p = p * f + 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  return p;
}
}  // namespace detail

// exp(x) for float, within 2 ulp of the exact value for -86 <= x <= ln(FLT_MAX); +inf above that (and for
// +inf), 0 below -86 (exp(-86) ~ 4.5e-38 bounds the absolute error there), NaN for NaN.
// x = k ln2 + f with |f| <= ln2/2 (Cody-Waite: ln2 split in a short high part, so k*hi is exact), then a
// degree-7 Taylor polynomial (truncation < 6e-9 relative) and the scale 2^k built in the exponent bits.
inline float exp(float x) {
  constexpr float lo = -86.0f, hi = 88.72283935546875f;  // hi: the float just below ln(FLT_MAX)
  const float c = detail::clamp(x, lo, hi);
  constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float k = (c * 1.44269504088896341f + round_magic) - round_magic;
  const float p = detail::exp_poly(c, k);
  // k is in [-124, 128]: 2^k = 2 * 2^(k-1) keeps the exponent field of 2^(k-1) in [2, 254].
  const float r = (p + p) * std::bit_cast<float>((std::int32_t(k) + 126) << 23);
  // As a signed int the bits are above hi's exactly for x > hi (or a NaN), as unsigned above lo's exactly
  // for x < lo (or a negative NaN).
  const std::uint32_t xb = detail::bits(x);
  const float r_hi = detail::select(detail::mask(std::int32_t(xb) > std::int32_t(detail::bits(hi))),
                                    std::bit_cast<float>(0x7f800000u), r);
  const float r_lo = detail::select(detail::mask(xb > detail::bits(lo)), 0.0f, r_hi);
  return detail::select(detail::mask((xb & 0x7fffffffu) > 0x7f800000u), x, r_lo);
}
inline double exp(double x) { return std::exp(x); }

// exp(x) for a softmax's shifted arguments (x = s - max <= 0, or -inf where masked): exp's reduction
// and polynomial, but with k clamped to [-127, 127] the scale 2^k is the rounding constant's bits shifted
// into the exponent field, and no overflow or underflow select is needed: k = -127 gives a zero field,
// so -inf and anything below about -87.68 (exact value < 1.2e-38) come out exactly 0. Saturates at
// exp(88) above 88; NaN stays NaN. Same values as exp on [-86, 88].
inline float exp_shifted(float x) {
  constexpr float lo = -88.02969193111305f, hi = 88.0f;  // lo = -127 ln 2
  const float c = detail::clamp(x, lo, hi);
  const float t = c * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23 + round(c / ln 2)
  const float k = t - 12582912.0f;
  const float p = detail::exp_poly(c, k);
  // t's low mantissa bits hold k (t lies in [2^23, 2^24)); shifted by 23 the constant's own bits drop out.
  const float r = p * std::bit_cast<float>((detail::bits(t) << 23) + 0x3f800000u);
  return detail::select(detail::mask((detail::bits(x) & 0x7fffffffu) > 0x7f800000u), x, r);
}
inline double exp_shifted(double x) { return std::exp(x); }

// erf(x) and exp(-x*x) together, for the GELU gradient, which needs both, at the cost of one exp. erf is
// within 2e-7 absolutely everywhere (and 2e-7 relatively for |x| < 1); erf(+-inf) = +-1, NaN for NaN.
// |x| < 1: x P(x^2). |x| >= 1: 1 - exp(-x^2) R(|x|), where R(t) = erfc(t) exp(t^2) is fitted by a
// polynomial on [1, 4] (weighted by exp(-t^2), so the error in erf is what is minimized) and t is clamped
// to 4 (beyond, exp(-t^2) R < 2e-8 and erf rounds to 1). Both branches are computed and one selected.
inline void erf_gauss(float x, float& erf_out, float& gauss_out) {
  const float s = x * x;
  float p = 7.841089973e-05f;
  p = p * s - 8.007388678e-04f;
  p = p * s + 5.188161507e-03f;
  p = p * s - 2.685382590e-02f;
  p = p * s + 1.128358841e-01f;
  p = p * s - 3.761262596e-01f;
  p = p * s + 1.128379107e+00f;
  const float small = x * p;
  const float gauss = fast::exp(-s);
  const std::uint32_t tb = detail::bits(x) & 0x7fffffffu;  // |x|
  const float tc = detail::select(detail::mask(tb > detail::bits(4.0f)), 4.0f, std::bit_cast<float>(tb));
  float r = -3.888466163e-04f;
  r = r * tc + 6.004669238e-03f;
  r = r * tc - 4.099584371e-02f;
  r = r * tc + 1.641272306e-01f;
  r = r * tc - 4.316692352e-01f;
  r = r * tc + 7.925849557e-01f;
  r = r * tc - 1.048205614e+00f;
  r = r * tc + 9.861261845e-01f;
  const float big = std::bit_cast<float>(detail::bits(1.0f - gauss * r) | (detail::bits(x) & 0x80000000u));
  // 1 <= |x| <= inf as one unsigned compare; a NaN takes the small branch, which keeps it NaN.
  constexpr std::uint32_t one = std::bit_cast<std::uint32_t>(1.0f);
  erf_out = detail::select(detail::mask(tb - one <= 0x7f800000u - one), big, small);
  gauss_out = gauss;
}
inline void erf_gauss(double x, double& erf_out, double& gauss_out) {
  erf_out = std::erf(x);
  gauss_out = std::exp(-x * x);
}

inline float erf(float x) {
  float e, g;
  erf_gauss(x, e, g);
  return e;
}
inline double erf(double x) { return std::erf(x); }

// 1 / (1 + exp(-x)). For float, exp(-x) overflows to +inf for x < -88.7, which gives exactly 0.
inline float sigmoid(float x) { return 1.0f / (1.0f + fast::exp(-x)); }
inline double sigmoid(double x) {
  // Split by sign so exp never overflows.
  if (x >= 0) return 1 / (1 + std::exp(-x));
  double e = std::exp(x);
  return e / (1 + e);
}

}  // namespace longseq::ops::fast
