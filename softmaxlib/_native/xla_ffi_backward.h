// The XLA FFI handler of xla_ffi_backward.cc, as a plain pointer for module.cc
// to wrap in a capsule (only declared when the build found the XLA FFI headers).
#pragma once

namespace softmaxlib {
// operands (saved, g[, lse][, where][, per-row T]) -> (dx, dL/dT per row);
// attrs op, n_reduced, masked, mode, temperature
void* xla_ffi_backward_handler();
}  // namespace softmaxlib
