// What algorithm="auto" runs: one policy for every native caller (the NumPy
// module's short lane and full path, and, through softmaxlib._native_loader,
// the JAX path), so that each picks the same algorithm for the same call.
#pragma once

#include <cstddef>

#include "driver.h"

namespace softmaxlib {
namespace driver {

// Bytes of one core's L2 cache (glibc reads it from cpuid), 0 where unknown.
std::size_t l2_cache_bytes();

// The thresholds of the policy (auto_policy.cc says where they come from).
std::size_t auto_two_pass_min_row_bytes();  // max(2 MiB, L2)
constexpr std::size_t kAutoTwoPassMinRowBytesF64LogSumExp = std::size_t(32) << 10;
constexpr std::size_t kAutoLogSoftmaxMinRowBytes = std::size_t(16) << 10;
constexpr std::size_t kAutoSoftmaxMinRowBytes = std::size_t(64) << 10;
constexpr std::size_t kAutoSoftmaxMaxBytes = std::size_t(32) << 20;
// The algorithm while the data stays in L2, per op.
constexpr Alg kAutoInCache[] = {kThreePassReload, kThreePass, kThreePass};

// The algorithm for `op` on rows of `row_bytes` in an array of `total_bytes`;
// dtype is a DType code, or -1 for a dtype the kernels compute in float32
// without being float32 (float16 and bfloat16 are treated alike).
Alg auto_algorithm(Op op, int dtype, std::size_t row_bytes, std::size_t total_bytes);

}  // namespace driver
}  // namespace softmaxlib
