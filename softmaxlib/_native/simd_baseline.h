// Portable one-lane "vectors" for the baseline unit (any x86-64, aarch64, ...).
// Included only by kernels_baseline.cc, inside namespace softmaxlib::baseline.
// The compiler is free to auto-vectorise for SSE2; correctness never depends
// on it. No FMA is assumed: fma() for float is formed in double, where the
// product of two floats is exact, so it rounds like a fused operation.
#pragma once
#include <cstring>

inline float bits_to_f32(std::uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline std::uint32_t f32_to_bits(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }

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

inline std::uint16_t f32_to_half(float f) {
  // Round to nearest even, independent of the FPU rounding mode: pure integer work.
  std::uint32_t u = f32_to_bits(f);
  std::uint32_t sign = (u >> 16) & 0x8000u;
  std::uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return std::uint16_t(sign | 0x7C00u | (a > 0x7F800000u ? 0x200u | ((a >> 13) & 0x3FFu) : 0u));
  if (a >= 0x477FF000u) return std::uint16_t(sign | 0x7C00u);  // rounds to >= 2^16: inf
  if (a < 0x38800000u) {  // below the smallest normal half 2^-14: subnormal or zero
    if (a < 0x33000000u) return std::uint16_t(sign);  // < 2^-25: rounds to 0 (2^-25 ties to even 0)
    std::uint32_t e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u;
    std::uint32_t shift = 126u - e;  // value = m * 2^(e-150); half subnormal unit 2^-24
    std::uint32_t r = m >> (shift - 0u);
    // m * 2^(e-150) / 2^-24 = m >> (126 - e)
    std::uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return std::uint16_t(sign | r);
  }
  std::uint32_t r = a - 0x38000000u;  // rebias 127 -> 15
  r = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
  return std::uint16_t(sign | r);
}

struct F32 {
  using S = float;
  using V = float;
  using M = bool;
  static constexpr int W = 1;
  static constexpr bool has_scalef = false;
  static V set1(S a) { return a; }
  static V load(const float* p) { return *p; }
  static V load(const f16_t* p) { return half_to_f32(p->bits); }
  static V load(const bf16_t* p) { return bits_to_f32(std::uint32_t(p->bits) << 16); }
  static void store(float* p, V v) { *p = v; }
  static void store(f16_t* p, V v) { p->bits = f32_to_half(v); }
  static void store(bf16_t* p, V v) {
    std::uint32_t u = f32_to_bits(v);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) { p->bits = std::uint16_t((u >> 16) | 0x40u); return; }
    p->bits = std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fma(V a, V b, V c) { return float(double(a) * double(b) + double(c)); }
  static V max(V a, V b) { return a > b ? a : b; }
  static M lt(V a, V b) { return a < b; }
  static V select(M m, V a, V b) { return m ? a : b; }
  static V pow2(V n) {
    // As the SIMD units: n + 1.5*2^23 leaves n in the low bits (no float ->
    // int conversion, so no undefined behaviour for a NaN or inf n).
    std::uint32_t ni = f32_to_bits(n + 0x1.8p23f) - f32_to_bits(0x1.8p23f);
    return bits_to_f32((ni + 127u) << 23);
  }
  // The low mantissa bits of z moved into the exponent field (see pow2_from_biased).
  static V shl_to_exponent(V z) { return bits_to_f32(f32_to_bits(z) << 23); }
  static V scalef(V v, V) { return v; }
};

struct F64 {
  using S = double;
  using V = double;
  using M = bool;
  static constexpr int W = 1;
  static constexpr bool has_scalef = false;
  static V set1(S a) { return a; }
  static V load(const double* p) { return *p; }
  static void store(double* p, V v) { *p = v; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  // Unfused: the float64 targets (1e-14) leave room for the extra rounding.
  static V fma(V a, V b, V c) { return a * b + c; }
  static V max(V a, V b) { return a > b ? a : b; }
  static M lt(V a, V b) { return a < b; }
  static V select(M m, V a, V b) { return m ? a : b; }
  static V pow2(V n) {
    double z = n + 0x1.8p52, magic = 0x1.8p52;
    std::uint64_t zb, mb;
    std::memcpy(&zb, &z, 8);
    std::memcpy(&mb, &magic, 8);
    std::uint64_t u = (zb - mb + 1023u) << 52;
    double d; std::memcpy(&d, &u, 8); return d;
  }
  // The low mantissa bits of z moved into the exponent field (see pow2_from_biased).
  static V shl_to_exponent(V z) {
    std::uint64_t u; std::memcpy(&u, &z, 8); u <<= 52;
    double d; std::memcpy(&d, &u, 8); return d;
  }
  static V scalef(V v, V) { return v; }
};
