// The backward (vector-Jacobian) kernels of softmax, log_softmax and
// logsumexp, with or without a temperature: given the forward's saved values
// and the cotangent g, dx (and the temperature's cotangent), one fused pass
// pair per row over the same layout rules as the forward (any strides, where
// masks, the caller's Runner).
//
// Per row, with z = x / T (T = 1 without a temperature) and y = op(z):
//   softmax       dz = y * (g - sum(g * y))
//   log_softmax   dz = (g - sum g) - expm1(y) * sum g
//                 (expm1, not exp(y) - 1: in float32 a confident row's y is
//                 about -1e-13, whose exp rounds to 1 and would zero the gradient)
//   logsumexp     dz = g * exp(z - lse)   (g and lse one value per row)
//   dx = dz / T, and dL/dT = -(1/T) * sum(z * dz), formed without x for
//   softmax (sum dz = 0, so sum z dz = sum log(y) dz) and log_softmax
//   (sum y dz); logsumexp has x.
// Masked entries get dx = 0 and add nothing to the sums. Entries whose z is
// -inf (y = 0, log y = -inf) add nothing to dL/dT: z = -inf does not move
// with T. Special rows get the formulas applied to the forward's output:
//   - a NaN row (y NaN) gives NaN;
//   - +inf entries (y = 1/k on them, 0 elsewhere): softmax gives
//     (1/k)(g_i - mean of g over the k) on them: 0 for k = 1, which is
//     the derivative of the contract's result; for k > 1 the result is
//     constant in x (derivative 0) and this is the derivative of the
//     k-way tie instead; log_softmax likewise (g_i - sum g / k on them,
//     g_i elsewhere);
//     logsumexp gives NaN on +inf entries (exp(inf - inf)), 0 elsewhere;
//   - an all -inf unmasked row: softmax and log_softmax NaN (y is NaN);
//     logsumexp NaN (exp(-inf - -inf)): the derivative is undefined there;
//   - a fully masked row: dx = 0 everywhere, dL/dT = 0;
//   - T = inf: dx = 0 everywhere, dL/dT = 0 (z = x / T does not move).
#pragma once

#include <cstddef>
#include <vector>

#include "driver.h"

namespace softmaxlib {
namespace driver {

// saved: the forward's output y (softmax, log_softmax) or its input x
// (logsumexp), of x's shape, any strides, in dtype.
// g: the cotangent: x's shape (softmax, log_softmax) or the batch shape
// (logsumexp), any strides, in dtype.
// lse: logsumexp only (data null otherwise): its output, batch shape, dtype.
// where: as compute's (data null when there is none).
// temperature: none, scalar or per-row (adaptive is rejected); dtemperature
// null, or C-contiguous float64 of the batch shape receiving each row's dL/dT
// (a scalar temperature's cotangent is their sum).
// dx: written, x's shape with the byte strides dx_strides, in dtype; it must
// not overlap the inputs.
void backward(Op op, DType dtype, const Strided& saved, const Strided& g, const Strided& lse,
              const std::vector<bool>& reduced, const Strided& where, const Temperature& temperature,
              double* dtemperature, void* dx, const std::vector<std::ptrdiff_t>& dx_strides, const Runner& runner);

}  // namespace driver
}  // namespace softmaxlib
