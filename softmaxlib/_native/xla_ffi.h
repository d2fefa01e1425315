// The XLA FFI handlers of xla_ffi.cc, as plain pointers for module.cc to wrap
// in capsules (only declared when the build found the XLA FFI headers).
#pragma once

namespace softmaxlib {
void* xla_ffi_compute_handler();         // operands (x); attrs op, alg, n_reduced
void* xla_ffi_compute_masked_handler();  // operands (x, where)
void* xla_ffi_accumulate_handler();      // operand x -> acc; attr n_reduced
void* xla_ffi_finish_handler();          // operands (x, acc) -> y; attrs op, n_reduced
// op(x / T): operands (x[, where][, per-row T]); attrs op, alg, n_reduced, masked, mode, temperature
void* xla_ffi_compute_t_handler();
}  // namespace softmaxlib
