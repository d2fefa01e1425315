// XLA FFI handlers of the softmax family: fused softmax + top-k and
// StableMax, thin shells over driver_family.h, sharing xla_ffi.cc's pool
// runner and layout helpers (xla_ffi_common.h). Layout as there: row-major
// buffers, reduced axes minor (top-k: the last axis only).
#include "xla_ffi_family.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "driver_family.h"
#include "xla_ffi_common.h"

namespace softmaxlib {
namespace {

ffi::Error topk_run(ffi::ThreadPool& pool, ffi::AnyBuffer x, const ffi::AnyBuffer* where,
                    ffi::Result<ffi::AnyBuffer> values, ffi::Result<ffi::AnyBuffer> indices, std::int64_t k) {
  drv::DType dtype;
  if (!dtype_code(x.element_type(), dtype))
    return ffi::Error::InvalidArgument("softmaxlib: x must be float16, bfloat16, float32 or float64");
  auto dims = x.dimensions();
  const std::size_t nd = dims.size();
  if (nd < 1) return ffi::Error::InvalidArgument("softmaxlib: softmax_topk needs x.ndim >= 1");
  const std::int64_t n = dims[nd - 1];
  if (k < 1 || k > n) return ffi::Error::InvalidArgument("softmaxlib: k must be in [1, x.shape[-1]]");
  const std::size_t rows = std::size_t(x.element_count()) / std::size_t(std::max<std::int64_t>(n, 1));
  if (values->element_type() != x.element_type() || values->element_count() != rows * std::size_t(k))
    return ffi::Error::InvalidArgument("softmaxlib: values must have x's dtype and the batch shape + (k,)");
  const bool i64 = indices->element_type() == ffi::DataType::S64;
  if ((!i64 && indices->element_type() != ffi::DataType::S32) || indices->element_count() != rows * std::size_t(k))
    return ffi::Error::InvalidArgument("softmaxlib: indices must be int32 or int64 of the batch shape + (k,)");
  drv::Strided w;
  if (auto e = where_mask(where, dims, w); e.failure()) return e;
  if (rows == 0) return ffi::Error::Success();
  try {
    XlaPoolRunner runner(pool);
    const drv::Strided xs = row_major(x.untyped_data(), dims, drv::item_size(dtype));
    if (i64) {
      drv::softmax_topk(dtype, xs, nd - 1, std::size_t(k), w, values->untyped_data(),
                        static_cast<std::int64_t*>(indices->untyped_data()), runner);
    } else {
      // int32 indices (JAX without x64): rows are shorter than 2^31 there.
      std::vector<std::int64_t> idx(rows * std::size_t(k));
      drv::softmax_topk(dtype, xs, nd - 1, std::size_t(k), w, values->untyped_data(), idx.data(), runner);
      std::copy(idx.begin(), idx.end(), static_cast<std::int32_t*>(indices->untyped_data()));
    }
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("softmaxlib: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error topk_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> values,
                     ffi::Result<ffi::AnyBuffer> indices, std::int64_t k) {
  return topk_run(pool, x, nullptr, values, indices, k);
}

ffi::Error topk_masked_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer where,
                            ffi::Result<ffi::AnyBuffer> values, ffi::Result<ffi::AnyBuffer> indices, std::int64_t k) {
  return topk_run(pool, x, &where, values, indices, k);
}

ffi::Error stablemax_run(ffi::ThreadPool& pool, ffi::AnyBuffer x, const ffi::AnyBuffer* where,
                         ffi::Result<ffi::AnyBuffer> y, std::int32_t op, std::int32_t n_reduced) {
  drv::DType dtype;
  if (!dtype_code(x.element_type(), dtype))
    return ffi::Error::InvalidArgument("softmaxlib: x must be float16, bfloat16, float32 or float64");
  if (op != drv::kStableMax && op != drv::kLogStableMax)
    return ffi::Error::InvalidArgument("softmaxlib: op must be 0 (stablemax) or 1 (log_stablemax)");
  auto dims = x.dimensions();
  const std::size_t nd = dims.size();
  if (n_reduced < 1 || std::size_t(n_reduced) > nd)
    return ffi::Error::InvalidArgument("softmaxlib: n_reduced must be between 1 and x's rank");
  if (y->element_type() != x.element_type() || y->element_count() != x.element_count())
    return ffi::Error::InvalidArgument("softmaxlib: the result must have x's dtype and shape");
  drv::Strided w;
  if (auto e = where_mask(where, dims, w); e.failure()) return e;
  std::vector<bool> reduced(nd, false);
  for (std::size_t i = nd - std::size_t(n_reduced); i < nd; ++i) reduced[i] = true;
  try {
    XlaPoolRunner runner(pool);
    drv::stablemax(drv::StableMaxOp(op), dtype, row_major(x.untyped_data(), dims, drv::item_size(dtype)), reduced, w,
                   y->untyped_data(), runner);
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("softmaxlib: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error stablemax_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, std::int32_t op,
                          std::int32_t n_reduced) {
  return stablemax_run(pool, x, nullptr, y, op, n_reduced);
}

ffi::Error stablemax_masked_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer where,
                                 ffi::Result<ffi::AnyBuffer> y, std::int32_t op, std::int32_t n_reduced) {
  return stablemax_run(pool, x, &where, y, op, n_reduced);
}

}  // namespace
}  // namespace softmaxlib

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibTopK, softmaxlib::topk_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int64_t>("k"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibTopKMasked, softmaxlib::topk_masked_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int64_t>("k"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibStableMax, softmaxlib::stablemax_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("n_reduced"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibStableMaxMasked, softmaxlib::stablemax_masked_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("n_reduced"));

namespace softmaxlib {
void* xla_ffi_topk_handler() { return reinterpret_cast<void*>(&SoftmaxlibTopK); }
void* xla_ffi_topk_masked_handler() { return reinterpret_cast<void*>(&SoftmaxlibTopKMasked); }
void* xla_ffi_stablemax_handler() { return reinterpret_cast<void*>(&SoftmaxlibStableMax); }
void* xla_ffi_stablemax_masked_handler() { return reinterpret_cast<void*>(&SoftmaxlibStableMaxMasked); }
}  // namespace softmaxlib
