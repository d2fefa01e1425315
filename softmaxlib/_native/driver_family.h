// The driver's entry points for the softmax family (fused softmax + top-k,
// StableMax). Same conventions as driver.h: plain C++ over strided arrays,
// threads from the caller's Runner, std::invalid_argument for bad input.
// Implemented in driver_family.cc, over the driver's row walker, chunking and
// special rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "driver.h"

namespace softmaxlib {
namespace driver {

// StableMax's op codes (exported as softmaxlib._kernels.STABLEMAX_OPS).
enum StableMaxOp : int { kStableMax = 0, kLogStableMax = 1 };
constexpr const char* kStableMaxOpNames[] = {"stablemax", "log_stablemax"};

// Fused softmax + top-k over the single axis `axis` of x: values (x's dtype)
// and indices (int64) are C-contiguous of shape batch + (k,), the batch shape
// being x.shape without `axis`. 1 <= k <= x.shape[axis].
void softmax_topk(DType dtype, const Strided& x, std::size_t axis, std::size_t k, const Strided& where,
                  void* values, std::int64_t* indices, const Runner& runner);

// StableMax / log-StableMax over the reduced axes; y of x's shape, C-contiguous
// or with the byte strides y_strides (as compute's).
void stablemax(StableMaxOp op, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
               void* y, const Runner& runner, const std::ptrdiff_t* y_strides = nullptr);

}  // namespace driver
}  // namespace softmaxlib
