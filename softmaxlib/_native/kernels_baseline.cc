// The baseline unit: kernels.inc instantiated over simd_baseline.h, all inside
// namespace softmaxlib::baseline (compiled with this unit's own -m flags, see
// CMakeLists.txt).
#include "kernel_table.h"

// System headers first: kernels.inc and simd_*.h are included inside the
// namespace below and must not pull declarations into it.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#if defined(SOFTMAXLIB_X86)
#include <immintrin.h>
#endif

namespace softmaxlib {
namespace baseline {

#define SOFTMAXLIB_ISA_NAME "baseline"

template <class T> inline T neg_inf();
template <> inline float neg_inf<float>() { return -__builtin_inff(); }
template <> inline double neg_inf<double>() { return -__builtin_inf(); }
template <> inline f16_t neg_inf<f16_t>() { return f16_t{0xFC00}; }
template <> inline bf16_t neg_inf<bf16_t>() { return bf16_t{0xFF80}; }

#include "simd_baseline.h"
#include "kernels.inc"

}  // namespace baseline
}  // namespace softmaxlib
