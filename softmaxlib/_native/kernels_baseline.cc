// The baseline unit: kernels.inc instantiated over simd_baseline.h, all inside
// namespace softmaxlib::baseline (compiled with this unit's own -m flags, see
// CMakeLists.txt).
#include "kernel_table.h"
#include "family_table.h"

// System headers first: kernels.inc and simd_*.h are included inside the
// namespace below and must not pull declarations into it.
#include <algorithm>
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

#include "simd_baseline.h"
#include "kernels.inc"
#include "family.inc"

}  // namespace baseline
}  // namespace softmaxlib
