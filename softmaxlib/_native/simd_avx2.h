// AVX2 + FMA + F16C vector wrappers. Included only by kernels_avx2.cc, inside
// namespace softmaxlib::avx2 (see kernels.inc for the interface the kernels use).
#pragma once
#include <immintrin.h>

struct F32 {
  using S = float;
  using V = __m256;
  using M = __m256;  // comparison mask
  static constexpr int W = 8;
  static constexpr bool has_scalef = false;
  static V set1(S a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const f16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load(const bf16_t* p) {
    // bfloat16 is the top half of a float32: widen and shift.
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store(f16_t* p, V v) {
    // Immediate rounding mode: round to nearest even whatever MXCSR says.
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static void store(bf16_t* p, V v) {
    // Round to nearest even on the bit pattern; NaNs are kept quiet NaNs.
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, q, nan);
    __m256i packed = _mm256_packus_epi32(r, r);                 // in-lane pack
    packed = _mm256_permute4x64_epi64(packed, 0x08);           // qwords 0, 2
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // x86 semantics: if either is NaN, b is returned.
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
  static bool any(M m) { return _mm256_movemask_ps(m) != 0; }
  // 2^n for integer-valued n in [-127, 127] (n = -127 gives +0).
  static V pow2(V n) {
    // XNNPACK's trick: n + (1.5*2^23 + 127) holds n + 127 in its low mantissa
    // bits (exact: n is an integer); shifting left by 23 moves them into the
    // exponent field and shifts the magic's own bits out.
    const V magic_bias = set1(0x1.8000FEp23f);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(add(n, magic_bias)), 23));
  }
  // The low mantissa bits of z moved into the exponent field (see pow2_from_biased).
  static V shl_to_exponent(V z) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(z), 23)); }
  static V scalef(V v, V) { return v; }  // unused: has_scalef is false
};

struct F64 {
  using S = double;
  using V = __m256d;
  using M = __m256d;
  static constexpr int W = 4;
  static constexpr bool has_scalef = false;
  static V set1(S a) { return _mm256_set1_pd(a); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static M lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static V select(M m, V a, V b) { return _mm256_blendv_pd(b, a, m); }
  static bool any(M m) { return _mm256_movemask_pd(m) != 0; }
  // 2^n for integer-valued n in [-1023, 1023] (n = -1023 gives +0).
  static V pow2(V n) {
    const V magic_bias = set1(0x1.80000000003FFp52);  // 1.5*2^52 + 1023, as for float
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(add(n, magic_bias)), 52));
  }
  // The low mantissa bits of z moved into the exponent field (see pow2_from_biased).
  static V shl_to_exponent(V z) { return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(z), 52)); }
  static V scalef(V v, V) { return v; }
};
