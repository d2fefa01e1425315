// The XLA FFI handlers of the softmax family (xla_ffi_family.cc), as plain
// pointers for module.cc to wrap in capsules (only declared when the build
// found the XLA FFI headers).
#pragma once

namespace softmaxlib {
void* xla_ffi_topk_handler();              // operand x -> (values, indices); attr k (last axis)
void* xla_ffi_topk_masked_handler();       // operands (x, where)
void* xla_ffi_stablemax_handler();         // operand x -> y; attrs op (0 stablemax, 1 log), n_reduced
void* xla_ffi_stablemax_masked_handler();  // operands (x, where)
}  // namespace softmaxlib
