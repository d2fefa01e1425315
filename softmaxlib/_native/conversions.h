// Scalar conversions between float32 / float64 and the 16-bit storage types
// (f16_t, bfloat16), round to nearest even and independent of the FPU's
// rounding mode. Used by the baseline kernels (simd_baseline.h), which have no
// conversion instructions, and by the driver for the values it writes itself
// (special rows, masked entries, scalar fallbacks).
//
// Internal linkage (an unnamed namespace): every unit that includes this
// header gets its own copy, compiled with its own flags, so the linker can
// never hand one ISA unit's copy to another.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernel_table.h"  // f16_t, bf16_t

namespace softmaxlib {
namespace {

inline float bits_to_f32(std::uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline std::uint32_t f32_to_bits(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }

// float16 -> float32 (exact).
inline float half_to_f32(std::uint16_t h) {
  std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0x1Fu) return bits_to_f32(sign | 0x7F800000u | (man << 13));  // inf / NaN
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
    float f = float(man) * 0x1p-24f;
    return sign ? -f : f;
  }
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

// float32 -> float16, pure integer work.
inline std::uint16_t f32_to_half(float f) {
  std::uint32_t u = f32_to_bits(f);
  std::uint32_t sign = (u >> 16) & 0x8000u;
  std::uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return std::uint16_t(sign | 0x7C00u | (a > 0x7F800000u ? 0x200u | ((a >> 13) & 0x3FFu) : 0u));
  if (a >= 0x477FF000u) return std::uint16_t(sign | 0x7C00u);  // rounds to >= 2^16: inf
  if (a < 0x38800000u) {  // below the smallest normal half 2^-14: subnormal or zero
    if (a < 0x33000000u) return std::uint16_t(sign);  // < 2^-25: rounds to 0 (2^-25 ties to even 0)
    std::uint32_t e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u;
    std::uint32_t shift = 126u - e;  // value = m * 2^(e-150); half subnormal unit 2^-24
    std::uint32_t r = m >> shift;    // m * 2^(e-150) / 2^-24 = m >> (126 - e)
    std::uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return std::uint16_t(sign | r);
  }
  std::uint32_t r = a - 0x38000000u;  // rebias 127 -> 15
  r = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
  return std::uint16_t(sign | r);
}

// bfloat16 -> float32 (exact).
inline float bf16_to_f32(std::uint16_t b) { return bits_to_f32(std::uint32_t(b) << 16); }

// float32 -> bfloat16; a NaN stays a (quiet) NaN.
inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t u = f32_to_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return std::uint16_t((u >> 16) | 0x40u);
  return std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// float64 -> float16 in one rounding (through float32 would round twice).
// Any NaN becomes the positive quiet NaN.
inline std::uint16_t f64_to_half(double v) {
  if (v != v) return 0x7E00;
  std::uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  double a = std::fabs(v);
  if (a >= 65520.0) return std::uint16_t(sign | 0x7C00);
  if (a < std::ldexp(1.0, -14)) return std::uint16_t(sign | std::uint16_t(std::nearbyint(std::ldexp(a, 24))));
  int e;
  double m = std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  double mant = std::nearbyint(std::ldexp(m, 11));  // 11 significant bits
  if (mant >= 2048) { mant /= 2; ++e; }
  return std::uint16_t(sign | (std::uint16_t(e + 14) << 10) | (std::uint16_t(mant) & 0x3FF));
}

// The driver's scalar view of a stored value, and back.
inline double to_double(float v) { return v; }
inline double to_double(double v) { return v; }
inline double to_double(bf16_t v) { return bf16_to_f32(v.bits); }
inline double to_double(f16_t v) { return half_to_f32(v.bits); }

template <class T> T from_double(double v);
template <> inline float from_double<float>(double v) { return float(v); }
template <> inline double from_double<double>(double v) { return v; }
template <> inline bf16_t from_double<bf16_t>(double v) { return bf16_t{f32_to_bf16(float(v))}; }
template <> inline f16_t from_double<f16_t>(double v) { return f16_t{f64_to_half(v)}; }

}  // namespace
}  // namespace softmaxlib
