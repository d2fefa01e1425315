// The avx2 unit: kernels.inc instantiated over simd_avx2.h, all inside
// namespace softmaxlib::avx2 (compiled with this unit's own -m flags, see
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
namespace avx2 {

#define SOFTMAXLIB_ISA_NAME "avx2"

#include "simd_avx2.h"
#include "kernels.inc"
#include "family.inc"

}  // namespace avx2
}  // namespace softmaxlib
