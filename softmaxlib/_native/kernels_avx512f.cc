// The avx512f unit: kernels.inc instantiated over simd_avx512f.h, all inside
// namespace softmaxlib::avx512f (compiled with this unit's own -m flags, see
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
namespace avx512f {

#define SOFTMAXLIB_ISA_NAME "avx512f"

#include "simd_avx512f.h"
#include "kernels.inc"
#include "family.inc"

}  // namespace avx512f
}  // namespace softmaxlib
