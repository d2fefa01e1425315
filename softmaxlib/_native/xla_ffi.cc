// XLA FFI handlers: softmax, log_softmax and logsumexp as XLA CPU custom calls.
//
// Thin shells in the manner of JAX's examples/ffi: bind the typed buffers and
// attributes, check them, and call the same driver as the NumPy module
// (driver.h) with XLA's intra-op thread pool. Compiled into softmaxlib._kernels
// only when the build finds the XLA FFI headers (jax.ffi.include_dir()); the
// Python side (softmaxlib/_backends/jax_ffi/primitives.py) registers them with
// jax.ffi.register_ffi_target from the capsules of xla_ffi_handlers().
//
// Layout: XLA hands us row-major buffers; the reduced axes are the
// `n_reduced` minor ones (the Python side moves them there, a no-op for the
// common last-axis case), every other axis is a batch axis.
#include "xla_ffi.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "driver.h"
#include "xla_ffi_common.h"

namespace softmaxlib {
namespace {

ffi::Error run(ffi::ThreadPool& pool, ffi::AnyBuffer x, const ffi::AnyBuffer* where, ffi::Result<ffi::AnyBuffer> y,
               std::int32_t op, std::int32_t alg, std::int32_t n_reduced,
               const drv::Temperature* temperature = nullptr) {
  drv::DType dtype;
  if (!dtype_code(x.element_type(), dtype))
    return ffi::Error::InvalidArgument("softmaxlib: x must be float16, bfloat16, float32 or float64");
  if (y->element_type() != x.element_type())
    return ffi::Error::InvalidArgument("softmaxlib: the result's dtype must be x's");
  if (op < drv::kSoftmax || op > drv::kLogSumExp)
    return ffi::Error::InvalidArgument("softmaxlib: op must be 0 (softmax), 1 (log_softmax) or 2 (logsumexp)");
  if (alg < drv::kThreePass || alg > drv::kTwoPass)
    return ffi::Error::InvalidArgument("softmaxlib: alg must be 0..3 (three-pass, three-pass-reload, online, two-pass)");
  auto dims = x.dimensions();
  const std::size_t nd = dims.size();
  if (n_reduced < 1 || std::size_t(n_reduced) > nd)
    return ffi::Error::InvalidArgument("softmaxlib: n_reduced must be between 1 and x's rank (" +
                                       std::to_string(nd) + "), got " + std::to_string(n_reduced));
  const std::size_t nbatch = nd - std::size_t(n_reduced);
  // The result: x's shape, or its batch shape for logsumexp.
  auto ydims = y->dimensions();
  const std::size_t ynd = op == drv::kLogSumExp ? nbatch : nd;
  bool shape_ok = std::size_t(ydims.size()) == ynd;
  for (std::size_t i = 0; shape_ok && i < ynd; ++i) shape_ok = ydims[i] == dims[i];
  if (!shape_ok) return ffi::Error::InvalidArgument("softmaxlib: the result's shape does not match x's");
  drv::Strided w;
  if (auto e = where_mask(where, dims, w); e.failure()) return e;
  const drv::Strided xs = row_major(x.untyped_data(), dims, drv::item_size(dtype));
  std::vector<bool> reduced(nd, false);
  for (std::size_t i = nbatch; i < nd; ++i) reduced[i] = true;
  try {
    XlaPoolRunner runner(pool);
    advise_huge_pages(y->untyped_data(), y->size_bytes());
    if (temperature == nullptr) drv::compute(drv::Op(op), drv::Alg(alg), dtype, xs, reduced, w, y->untyped_data(), runner);
    else drv::compute_temperature(drv::Op(op), drv::Alg(alg), dtype, xs, reduced, w, *temperature, y->untyped_data(), runner);
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("softmaxlib: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error compute_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, std::int32_t op,
                        std::int32_t alg, std::int32_t n_reduced) {
  return run(pool, x, nullptr, y, op, alg, n_reduced);
}

ffi::Error compute_masked_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer where,
                               ffi::Result<ffi::AnyBuffer> y, std::int32_t op, std::int32_t alg,
                               std::int32_t n_reduced) {
  return run(pool, x, &where, y, op, alg, n_reduced);
}

// op(x / T). Operands: x, then where (when `masked`), then the per-row
// temperatures (mode 2: float32 or float64 of the batch shape). mode 1: one
// temperature, the attribute `temperature` (> 0, may be inf); mode 3: adaptive.
ffi::Error compute_t_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::RemainingArgs rest,
                          ffi::Result<ffi::AnyBuffer> y, std::int32_t op, std::int32_t alg, std::int32_t n_reduced,
                          std::int32_t masked, std::int32_t mode, double temperature) {
  if (mode < drv::Temperature::kScalar || mode > drv::Temperature::kAdaptive)
    return ffi::Error::InvalidArgument("softmaxlib: mode must be 1 (scalar), 2 (per row) or 3 (adaptive)");
  const std::size_t expect = (masked ? 1 : 0) + (mode == drv::Temperature::kPerRow ? 1 : 0);
  if (rest.size() != expect)
    return ffi::Error::InvalidArgument("softmaxlib: expected " + std::to_string(expect + 1) + " operands, got " +
                                       std::to_string(rest.size() + 1));
  std::optional<ffi::AnyBuffer> where;
  if (masked) {
    auto w = rest.get<ffi::AnyBuffer>(0);
    if (w.has_error()) return w.error();
    where = *w;
  }
  drv::Temperature temp;
  temp.mode = drv::Temperature::Mode(mode);
  temp.value = temperature;
  std::vector<double> rows;
  if (mode == drv::Temperature::kPerRow) {
    auto t = rest.get<ffi::AnyBuffer>(expect - 1);
    if (t.has_error()) return t.error();
    auto dims = x.dimensions();
    std::size_t nrows = 1;
    if (n_reduced >= 1 && std::size_t(n_reduced) <= dims.size())
      for (std::size_t i = 0; i + std::size_t(n_reduced) < dims.size(); ++i) nrows *= std::size_t(dims[i]);
    if (t->element_count() != nrows)
      return ffi::Error::InvalidArgument("softmaxlib: per-row temperatures must have the batch shape");
    if (t->element_type() == ffi::DataType::F64) {
      const double* p = static_cast<const double*>(t->untyped_data());
      rows.assign(p, p + nrows);
    } else if (t->element_type() == ffi::DataType::F32) {
      const float* p = static_cast<const float*>(t->untyped_data());
      rows.assign(p, p + nrows);
    } else {
      return ffi::Error::InvalidArgument("softmaxlib: per-row temperatures must be float32 or float64");
    }
    temp.per_row = rows.data();
  } else if (mode == drv::Temperature::kScalar && !(temperature > 0)) {
    return ffi::Error::InvalidArgument("softmaxlib: the temperature must be > 0");
  }
  return run(pool, x, where ? &*where : nullptr, y, op, alg, n_reduced, &temp);
}

// Pieces of rows, for inputs sharded along a reduced axis: pass 1 gives each
// shard's accumulator [m, d, n_posinf, has_nan, n_valid] per row (float32, or
// float64 for float64 x), the Python side merges them across shards, pass 2
// finishes each shard with the merged one.
ffi::Error piece_layout(ffi::AnyBuffer x, std::int32_t n_reduced, drv::DType& dtype, drv::Strided& xs,
                        std::vector<bool>& reduced, std::size_t& rows) {
  if (!dtype_code(x.element_type(), dtype))
    return ffi::Error::InvalidArgument("softmaxlib: x must be float16, bfloat16, float32 or float64");
  auto dims = x.dimensions();
  const std::size_t nd = dims.size();
  if (n_reduced < 1 || std::size_t(n_reduced) > nd)
    return ffi::Error::InvalidArgument("softmaxlib: n_reduced must be between 1 and x's rank");
  xs = row_major(x.untyped_data(), dims, drv::item_size(dtype));
  reduced.assign(nd, false);
  rows = 1;
  for (std::size_t i = 0; i < nd; ++i) {
    if (i >= nd - std::size_t(n_reduced)) reduced[i] = true;
    else rows *= std::size_t(dims[i]);
  }
  return ffi::Error::Success();
}

ffi::Error accumulate_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> acc,
                           std::int32_t n_reduced) {
  drv::DType dtype;
  drv::Strided xs;
  std::vector<bool> reduced;
  std::size_t rows;
  if (auto e = piece_layout(x, n_reduced, dtype, xs, reduced, rows); e.failure()) return e;
  const bool f64 = acc->element_type() == ffi::DataType::F64;
  if ((!f64 && acc->element_type() != ffi::DataType::F32) || acc->element_count() != rows * drv::kAccSize)
    return ffi::Error::InvalidArgument("softmaxlib: acc must be float32 or float64 of the batch shape + (5,)");
  try {
    std::vector<double> a(rows * drv::kAccSize);
    XlaPoolRunner runner(pool);
    drv::accumulate(dtype, xs, reduced, drv::Strided{nullptr, {}, {}}, a.data(), runner);
    if (f64) std::copy(a.begin(), a.end(), static_cast<double*>(acc->untyped_data()));
    else std::copy(a.begin(), a.end(), static_cast<float*>(acc->untyped_data()));
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("softmaxlib: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error finish_impl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer acc, ffi::Result<ffi::AnyBuffer> y,
                       std::int32_t op, std::int32_t n_reduced) {
  drv::DType dtype;
  drv::Strided xs;
  std::vector<bool> reduced;
  std::size_t rows;
  if (auto e = piece_layout(x, n_reduced, dtype, xs, reduced, rows); e.failure()) return e;
  if (op != drv::kSoftmax && op != drv::kLogSoftmax)
    return ffi::Error::InvalidArgument("softmaxlib: finish computes softmax (0) or log_softmax (1)");
  const bool f64 = acc.element_type() == ffi::DataType::F64;
  if ((!f64 && acc.element_type() != ffi::DataType::F32) || acc.element_count() != rows * drv::kAccSize)
    return ffi::Error::InvalidArgument("softmaxlib: acc must be float32 or float64 of the batch shape + (5,)");
  if (y->element_type() != x.element_type() || y->element_count() != x.element_count())
    return ffi::Error::InvalidArgument("softmaxlib: the result must have x's dtype and shape");
  try {
    std::vector<double> a(rows * drv::kAccSize);
    if (f64) std::copy_n(static_cast<const double*>(acc.untyped_data()), a.size(), a.begin());
    else std::copy_n(static_cast<const float*>(acc.untyped_data()), a.size(), a.begin());
    XlaPoolRunner runner(pool);
    drv::finish(drv::Op(op), dtype, xs, reduced, drv::Strided{nullptr, {}, {}}, a.data(), y->untyped_data(), runner);
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("softmaxlib: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace softmaxlib

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibCompute, softmaxlib::compute_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("alg")
                                  .Attr<std::int32_t>("n_reduced"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibComputeMasked, softmaxlib::compute_masked_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("alg")
                                  .Attr<std::int32_t>("n_reduced"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibAccumulate, softmaxlib::accumulate_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("n_reduced"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibFinish, softmaxlib::finish_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("n_reduced"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibComputeT, softmaxlib::compute_t_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("alg")
                                  .Attr<std::int32_t>("n_reduced")
                                  .Attr<std::int32_t>("masked")
                                  .Attr<std::int32_t>("mode")
                                  .Attr<double>("temperature"));

namespace softmaxlib {
void* xla_ffi_compute_t_handler() { return reinterpret_cast<void*>(&SoftmaxlibComputeT); }
void* xla_ffi_accumulate_handler() { return reinterpret_cast<void*>(&SoftmaxlibAccumulate); }
void* xla_ffi_finish_handler() { return reinterpret_cast<void*>(&SoftmaxlibFinish); }
void* xla_ffi_compute_handler() { return reinterpret_cast<void*>(&SoftmaxlibCompute); }
void* xla_ffi_compute_masked_handler() { return reinterpret_cast<void*>(&SoftmaxlibComputeMasked); }
}  // namespace softmaxlib

