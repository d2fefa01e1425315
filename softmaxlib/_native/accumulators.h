// The accumulators of a row's pieces and their merges, in double: the max-based
// sums, the two-pass (v, e) pairs and the online (m, d) pairs. Each merge is
// associative and commutative, and pieces are always merged in the same
// fixed tree, so results never depend on how the pieces were spread over
// threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace softmaxlib {
namespace driver {

// The type the kernels compute in for a storage type T: float, double for double.
template <class T> struct ComputeType { using type = float; };
template <> struct ComputeType<double> { using type = double; };

// Rows are cut into chunks of KernelTable::chunk elements, always at the same
// places; each chunk's accumulator is merged pairwise in double in a fixed
// tree. This keeps long sums accurate (the error grows with log2 of the chunk
// count) and makes results independent of how chunks are spread over threads.

inline double merge_sum(const double* a, std::size_t n) {
  if (n == 1) return a[0];
  std::size_t h = n / 2;
  return merge_sum(a, h) + merge_sum(a + h, n - h);
}

// sum = v 2^e; m: the largest entry (two-pass: it bounds the logsumexp, which
// the rounded sum alone can put a few ulp below the max).
struct ExtAccD { double v, e, m = -std::numeric_limits<double>::infinity(); };
inline ExtAccD merge_ext(const ExtAccD& a, const ExtAccD& b) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (a.v != a.v || b.v != b.v || a.e != a.e || b.e != b.e) return {nan, nan};
  double M = std::max(a.e, b.e);
  if (!std::isfinite(M)) return {nan, M};
  auto scaled = [M](const ExtAccD& x) { return std::ldexp(x.v, int(std::max(-4000.0, x.e - M))); };
  return {scaled(a) + scaled(b), M, std::max(a.m, b.m)};
}
inline ExtAccD merge_ext_tree(const ExtAccD* a, std::size_t n) {
  if (n == 1) return a[0];
  std::size_t h = n / 2;
  return merge_ext(merge_ext_tree(a, h), merge_ext_tree(a + h, n - h));
}

// log d = log1p(d - 1) for d = sum exp(x_i - max x) over a row of n entries,
// from beyond_one = d - 1 (summed beside the max where the max dominates, so
// that log d near 0 keeps its relative accuracy), held to the exact value's
// range [0, log n]: the rounded sum can stray a few ulp out of [1, n], and
// then log_softmax would exceed 0 or logsumexp fall below the max.
inline double log_sum_in_range(double beyond_one, double n) {
  return std::min(std::max(std::log1p(beyond_one), 0.0), std::log(n));
}

struct OnlineAccD { double m, d; };
// d = sum exp((x - m) * inv_t): inv_t = 1/T, 1 without a temperature.
inline OnlineAccD merge_online(const OnlineAccD& a, const OnlineAccD& b, double inv_t = 1.0) {
  if (a.m != a.m || b.m != b.m) return {std::numeric_limits<double>::quiet_NaN(), 0};
  double M = std::max(a.m, b.m);
  if (std::isinf(M)) return {M, a.d + b.d};
  return {M, a.d * std::exp((a.m - M) * inv_t) + b.d * std::exp((b.m - M) * inv_t)};
}
inline OnlineAccD merge_online_tree(const OnlineAccD* a, std::size_t n, double inv_t = 1.0) {
  if (n == 1) return a[0];
  std::size_t h = n / 2;
  return merge_online(merge_online_tree(a, h, inv_t), merge_online_tree(a + h, n - h, inv_t), inv_t);
}

// Adaptive temperature (Velickovic et al. 2024, "softmax is not enough",
// Fig. 5): beta = max(1, p(H)) for H > kAdaptiveMinEntropy, else 1, with the
// paper's degree-4 fit p, highest power first. The definition is the
// reference's (softmaxlib/_reference: ADAPTIVE_POLYNOMIAL,
// ADAPTIVE_MIN_ENTROPY); C++ needs its own copy of the numbers, which the
// module exports (softmaxlib._kernels.ADAPTIVE_POLYNOMIAL) and a test
// compares with the reference's.
constexpr double kAdaptivePolynomial[5] = {-0.037, 0.481, -2.3, 4.917, -1.791};
constexpr double kAdaptiveMinEntropy = 0.5;

// Evaluated in long double: the terms cancel (at H = 3 they sum to 2.25 from
// magnitudes up to 21), which costs ~20 ulp of beta in double, and beta's
// error multiplies every beta (x - m) of the row.
inline double adaptive_beta_of_entropy(double h) {
  if (!(h > kAdaptiveMinEntropy)) return 1.0;
  using L = long double;
  const L H = h;
  L p = L(kAdaptivePolynomial[0]);
  for (int i = 1; i < 5; ++i) p = p * H + L(kAdaptivePolynomial[i]);  // Horner
  return std::max(1.0, double(p));
}

}  // namespace driver
}  // namespace softmaxlib
