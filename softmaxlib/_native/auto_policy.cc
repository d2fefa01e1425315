// The policy of algorithm="auto" (auto_policy.h).
//
// Crossovers measured by benchmarks/crossover.py (see benchmarks/crossover.md,
// on a Xeon with 2 MiB of L2 per core). While the data stays in the core's own
// L2, the max-based algorithms win: their later passes re-read a row from L2
// and they evaluate one exp per element (three-pass-reload for softmax;
// three-pass for log_softmax and logsumexp, which store nothing). Past L2,
// two-pass (no max pass: each read of memory does the exp work beside it) wins:
//  - a row longer than L2: every op, by ~20% (two memory passes against three);
//  - an array larger than L2, rows shorter: logsumexp by 25-40% for any row
//    (one read pass against two; AVX2 too), log_softmax by ~25% up to 24 MiB
//    and ~5% beyond for rows of 16 KiB or more (shorter rows: AVX2 loses up to
//    24%); softmax in float32 with AVX-512 by 7-19% for rows of 64 KiB or more
//    and arrays below 32 MiB (beyond that, or with AVX2 or in float64,
//    three-pass-reload leads);
//  - float64 logsumexp from 32 KiB rows on, cached or not.
// The L2 threshold is never below 2 MiB: a Zen 4 core (1 MiB of L2 and a fast
// L3) still ran three-pass-reload faster at 1 MiB rows.
#include "auto_policy.h"

#include <algorithm>
#include <cstring>

#include <unistd.h>  // sysconf

#include "isa.h"

namespace softmaxlib {
namespace driver {

std::size_t l2_cache_bytes() {
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return bytes > 0 ? std::size_t(bytes) : 0;
#else
  return 0;
#endif
}

std::size_t auto_two_pass_min_row_bytes() {
  static const std::size_t bytes = std::max(std::size_t(2) << 20, l2_cache_bytes());
  return bytes;
}

// The two-pass rules for softmax and log_softmax on arrays beyond L2 but within
// L3 were measured on the Xeon's 2 MiB of L2. On a core with less (a Zen 4: 1 MiB
// of L2, AVX-512 on 256-bit units) the max-based algorithms lead there: 64x32000
// float32, 1 thread, the kernels alone (benchmarks/builds.py), softmax
// three-pass-reload 713 us against two-pass 901 us, log_softmax three-pass 1100 us
// against two-pass 1185 us; logsumexp keeps two-pass (443 us against 506 us).
static bool max_based_within_l3(std::size_t total_bytes) {
  static const bool small_l2 = l2_cache_bytes() < (std::size_t(2) << 20);
  return small_l2 && total_bytes < kAutoSoftmaxMaxBytes;
}

Alg auto_algorithm(Op op, int dtype, std::size_t row_bytes, std::size_t total_bytes) {
  const std::size_t beyond_l2 = auto_two_pass_min_row_bytes();
  if (row_bytes >= beyond_l2) return kTwoPass;
  if (op == kLogSumExp && dtype == kF64 && row_bytes >= kAutoTwoPassMinRowBytesF64LogSumExp) return kTwoPass;
  if (total_bytes >= beyond_l2) {
    if (op == kLogSumExp) return kTwoPass;
    if (max_based_within_l3(total_bytes)) return kAutoInCache[op];
    if (op == kLogSoftmax && row_bytes >= kAutoLogSoftmaxMinRowBytes) return kTwoPass;
    if (op == kSoftmax && dtype == kF32 && row_bytes >= kAutoSoftmaxMinRowBytes && total_bytes < kAutoSoftmaxMaxBytes &&
        std::strcmp(current_table()->isa, "avx512f") == 0)
      return kTwoPass;
  }
  return kAutoInCache[op];
}

}  // namespace driver
}  // namespace softmaxlib
