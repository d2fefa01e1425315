// The XLA FFI handler of the backward kernels (backward.h): the transpose of
// softmax, log_softmax and logsumexp as an XLA CPU custom call, a shell like
// xla_ffi.cc's over the same driver and XLA's intra-op pool.
//
// Operands: saved (the forward's output y, or x for logsumexp), g (the
// cotangent: y's shape, or the batch shape for logsumexp), then lse (op 2),
// where (when `masked`), the per-row temperatures (mode 2: float32 or float64
// of the batch shape). Results: dx (saved's shape and dtype) and each row's
// dL/dT (the batch shape, float32 or float64; zeros without a temperature).
// Attributes: op, n_reduced (the reduced axes are the minor ones), masked,
// mode (0 none, 1 scalar `temperature`, 2 per row).
#include "xla_ffi_backward.h"

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "backward.h"
#include "driver.h"
#include "xla_ffi_common.h"

namespace softmaxlib {
namespace {

ffi::Error backward_impl(ffi::ThreadPool pool, ffi::AnyBuffer saved, ffi::AnyBuffer g, ffi::RemainingArgs rest,
                         ffi::Result<ffi::AnyBuffer> dx, ffi::Result<ffi::AnyBuffer> dt, std::int32_t op,
                         std::int32_t n_reduced, std::int32_t masked, std::int32_t mode, double temperature) {
  drv::DType dtype;
  if (!dtype_code(saved.element_type(), dtype))
    return ffi::Error::InvalidArgument("softmaxlib: x must be float16, bfloat16, float32 or float64");
  if (op < drv::kSoftmax || op > drv::kLogSumExp)
    return ffi::Error::InvalidArgument("softmaxlib: op must be 0 (softmax), 1 (log_softmax) or 2 (logsumexp)");
  if (mode < drv::Temperature::kNone || mode > drv::Temperature::kPerRow)
    return ffi::Error::InvalidArgument("softmaxlib: mode must be 0 (none), 1 (scalar) or 2 (per row)");
  auto dims = saved.dimensions();
  const std::size_t nd = dims.size();
  if (n_reduced < 1 || std::size_t(n_reduced) > nd)
    return ffi::Error::InvalidArgument("softmaxlib: n_reduced must be between 1 and x's rank");
  const std::size_t nbatch = nd - std::size_t(n_reduced);
  std::size_t rows = 1;
  for (std::size_t i = 0; i < nbatch; ++i) rows *= std::size_t(dims[i]);
  const bool row_grad = op == drv::kLogSumExp;
  const std::size_t expect = (row_grad ? 1 : 0) + (masked ? 1 : 0) + (mode == drv::Temperature::kPerRow ? 1 : 0);
  if (rest.size() != expect)
    return ffi::Error::InvalidArgument("softmaxlib: expected " + std::to_string(expect + 2) + " operands");
  const std::size_t item = drv::item_size(dtype);
  if (g.element_type() != saved.element_type() || dx->element_type() != saved.element_type() ||
      dx->element_count() != saved.element_count() || g.element_count() != (row_grad ? rows : saved.element_count()))
    return ffi::Error::InvalidArgument("softmaxlib: g and dx must have the forward's dtype and shapes");
  const bool dt_f64 = dt->element_type() == ffi::DataType::F64;
  if ((!dt_f64 && dt->element_type() != ffi::DataType::F32) || dt->element_count() != rows)
    return ffi::Error::InvalidArgument("softmaxlib: dL/dT must be float32 or float64 of the batch shape");
  std::size_t next = 0;
  drv::Strided lse{nullptr, {}, {}};
  std::vector<std::ptrdiff_t> bshape(dims.begin(), dims.begin() + std::ptrdiff_t(nbatch));
  const auto bstrides = drv::row_major_strides(bshape, std::ptrdiff_t(item));
  if (row_grad) {
    auto l = rest.get<ffi::AnyBuffer>(next++);
    if (l.has_error()) return l.error();
    if (l->element_type() != saved.element_type() || l->element_count() != rows)
      return ffi::Error::InvalidArgument("softmaxlib: lse must have x's dtype and the batch shape");
    lse = drv::Strided{l->untyped_data(), bshape, bstrides};
  }
  drv::Strided w{nullptr, {}, {}};
  if (masked) {
    auto wb = rest.get<ffi::AnyBuffer>(next++);
    if (wb.has_error()) return wb.error();
    const ffi::AnyBuffer wbuf = *wb;
    if (auto e = where_mask(&wbuf, dims, w); e.failure()) return e;
  }
  drv::Temperature temp;
  temp.mode = drv::Temperature::Mode(mode);
  temp.value = temperature;
  std::vector<double> t_rows;
  if (mode == drv::Temperature::kPerRow) {
    auto t = rest.get<ffi::AnyBuffer>(next++);
    if (t.has_error()) return t.error();
    if (t->element_count() != rows)
      return ffi::Error::InvalidArgument("softmaxlib: per-row temperatures must have the batch shape");
    if (t->element_type() == ffi::DataType::F64) {
      const double* p = static_cast<const double*>(t->untyped_data());
      t_rows.assign(p, p + rows);
    } else if (t->element_type() == ffi::DataType::F32) {
      const float* p = static_cast<const float*>(t->untyped_data());
      t_rows.assign(p, p + rows);
    } else {
      return ffi::Error::InvalidArgument("softmaxlib: per-row temperatures must be float32 or float64");
    }
    temp.per_row = t_rows.data();
  }
  const drv::Strided xs = row_major(saved.untyped_data(), dims, item);
  const drv::Strided gs = row_grad ? drv::Strided{g.untyped_data(), bshape, bstrides} : row_major(g.untyped_data(), dims, item);
  std::vector<bool> reduced(nd, false);
  for (std::size_t i = nbatch; i < nd; ++i) reduced[i] = true;
  try {
    std::vector<double> d_t(rows, 0.0);
    XlaPoolRunner runner(pool);
    advise_huge_pages(dx->untyped_data(), dx->size_bytes());
    drv::backward(drv::Op(op), dtype, xs, gs, lse, reduced, w, temp, mode == drv::Temperature::kNone ? nullptr : d_t.data(),
                  dx->untyped_data(), xs.strides, runner);
    if (dt_f64) std::copy(d_t.begin(), d_t.end(), static_cast<double*>(dt->untyped_data()));
    else std::copy(d_t.begin(), d_t.end(), static_cast<float*>(dt->untyped_data()));
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("softmaxlib: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace softmaxlib

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoftmaxlibBackward, softmaxlib::backward_impl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::int32_t>("op")
                                  .Attr<std::int32_t>("n_reduced")
                                  .Attr<std::int32_t>("masked")
                                  .Attr<std::int32_t>("mode")
                                  .Attr<double>("temperature"));

namespace softmaxlib {
void* xla_ffi_backward_handler() { return reinterpret_cast<void*>(&SoftmaxlibBackward); }
}  // namespace softmaxlib
