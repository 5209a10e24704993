// Element types: float, double, half, bf16 and complex, with a runtime tag for messages and files.
#pragma once
#include <complex>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "config.hpp"

namespace longseq {

// bfloat16 storage type; arithmetic happens in float (accumulator type), rounding to nearest even.
struct bf16 {
  std::uint16_t bits = 0;
  bf16() = default;
  LONGSEQ_HD bf16(float f) : bits(from_float(f)) {}
  LONGSEQ_HD operator float() const {
    std::uint32_t u = std::uint32_t(bits) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  LONGSEQ_HD static std::uint16_t from_float(float f) {
    std::uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
  }
};

// IEEE binary16 storage type with conversions through float.
struct half {
  std::uint16_t bits = 0;
  half() = default;
  LONGSEQ_HD half(float f) : bits(from_float(f)) {}
  LONGSEQ_HD operator float() const {
    std::uint32_t sign = std::uint32_t(bits & 0x8000u) << 16;
    std::uint32_t exp = (bits >> 10) & 0x1fu, man = bits & 0x3ffu, u;
    if (exp == 0) {
      if (man == 0) {
        u = sign;
      } else {  // subnormal: renormalize
        exp = 127 - 15 + 1;
        while (!(man & 0x400u)) { man <<= 1; --exp; }
        u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
      }
    } else if (exp == 31) {
      u = sign | 0x7f800000u | (man << 13);
    } else {
      u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  LONGSEQ_HD static std::uint16_t from_float(float f) {
    std::uint32_t u;
    memcpy(&u, &f, 4);
    std::uint32_t sign = (u >> 16) & 0x8000u;
    std::int32_t exp = std::int32_t((u >> 23) & 0xffu) - 127 + 15;
    std::uint32_t man = u & 0x7fffffu;
    if (((u >> 23) & 0xffu) == 0xffu) return std::uint16_t(sign | 0x7c00u | (man ? 0x200u : 0u));
    if (exp >= 31) return std::uint16_t(sign | 0x7c00u);  // overflow to inf
    if (exp <= 0) {                                        // subnormal or zero
      if (exp < -10) return std::uint16_t(sign);
      man |= 0x800000u;
      std::uint32_t shift = std::uint32_t(14 - exp);
      std::uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
      if (rem > mid || (rem == mid && (h & 1u))) ++h;
      return std::uint16_t(sign | h);
    }
    std::uint32_t h = sign | (std::uint32_t(exp) << 10) | (man >> 13);
    std::uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into exponent: correct
    return std::uint16_t(h);
  }
};

enum class DType : std::uint8_t { f32, f64, f16, bf16, c64, c128, i32, i64, u8 };

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<std::complex<float>> { static constexpr DType value = DType::c64; };
template <> struct dtype_of<std::complex<double>> { static constexpr DType value = DType::c128; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::u8; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::c64: return "complex64";
    case DType::c128: return "complex128";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
  }
  return "unknown";
}

constexpr std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::c64: case DType::i64: return 8;
    case DType::f16: case DType::bf16: return 2;
    case DType::c128: return 16;
    case DType::u8: return 1;
  }
  return 0;
}

// Accumulator type: reduced-precision storage accumulates in float; float and double in themselves.
template <class T> struct accum { using type = T; };
template <> struct accum<half> { using type = float; };
template <> struct accum<bf16> { using type = float; };
template <class T> using accum_t = typename accum<T>::type;

// Floating element types a layer may be instantiated with.
template <class T>
concept Real = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, half> ||
               std::same_as<T, bf16>;

}  // namespace longseq
