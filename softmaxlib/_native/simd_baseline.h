// Portable one-lane "vectors" for the baseline unit (any x86-64, aarch64, ...).
// Included only by kernels_baseline.cc, inside namespace softmaxlib::baseline.
// The compiler is free to auto-vectorise for SSE2; correctness never depends
// on it. No FMA is assumed: fma() for float is formed in double, where the
// product of two floats is exact, so it rounds like a fused operation.
// The scalar float16 / bfloat16 conversions come from conversions.h (included
// by the unit before its namespace opens).
#pragma once

struct F32 {
  using S = float;
  using V = float;
  using M = bool;
  static constexpr int W = 1;
  static constexpr bool has_scalef = false;
  static V set1(S a) { return a; }
  static V load(const float* p) { return *p; }
  static V load(const f16_t* p) { return half_to_f32(p->bits); }
  static V load(const bf16_t* p) { return bf16_to_f32(p->bits); }
  static void store(float* p, V v) { *p = v; }
  static void store(f16_t* p, V v) { p->bits = f32_to_half(v); }
  static void store(bf16_t* p, V v) { p->bits = f32_to_bf16(v); }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V fma(V a, V b, V c) { return float(double(a) * double(b) + double(c)); }
  static V max(V a, V b) { return a > b ? a : b; }
  static M lt(V a, V b) { return a < b; }
  static V select(M m, V a, V b) { return m ? a : b; }
  static bool any(M m) { return m; }
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
  static bool any(M m) { return m; }
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
