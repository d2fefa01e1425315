// softmaxlib._kernels: the Python shell of the native driver (driver.h).
//
// Turns NumPy arrays into (pointer, shape, byte strides, dtype code), releases
// the GIL and calls the driver with softmaxlib's own thread pool. Everything
// numerical and every layout rule lives in the driver (driver.h) and the kernels.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "accumulators.h"
#include "auto_policy.h"
#include "backward.h"
#include "driver.h"
#include "driver_family.h"
#include "isa.h"
#include "family_table.h"
#include "kernel_table.h"
#include "layout.h"
#include "module_lane.h"
#include "round_to_nearest.h"
#if defined(SOFTMAXLIB_XLA_FFI)
#include "xla_ffi.h"
#include "xla_ffi_backward.h"
#include "xla_ffi_family.h"
#endif

namespace py = pybind11;

namespace softmaxlib {
namespace {

namespace drv = softmaxlib::driver;

drv::Strided strided(const py::array& a) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  constexpr char kOtherOrder = '<';
#else
  constexpr char kOtherOrder = '>';
#endif
  drv::Strided s{a.data(), {}, {}, a.dtype().byteorder() == kOtherOrder};
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s.shape.push_back(a.shape(i));
    s.strides.push_back(a.strides(i));
  }
  return s;
}

// where: None or a bool array of x's shape (any strides).
drv::Strided mask_of(const py::object& where, std::size_t nd, py::array& keep) {
  if (where.is_none()) return drv::Strided{nullptr, {}, {}};
  keep = py::reinterpret_borrow<py::array>(where);
  if (std::size_t(keep.ndim()) != nd || keep.itemsize() != 1)
    throw std::invalid_argument("where must be a bool array of x.shape");
  return strided(keep);
}

// axes: bit a set when axis a is reduced (NumPy arrays have at most 64 dims);
// an int is cheaper to pass than a list, which matters for tiny arrays.
std::vector<bool> reduced_axes(std::uint64_t axes, std::size_t nd) {
  if (nd > 64 || (nd < 64 && (axes >> nd) != 0) || axes == 0) throw std::invalid_argument("axes out of range");
  std::vector<bool> reduced(nd, false);
  for (std::size_t a = 0; a < nd; ++a) reduced[a] = (axes >> a) & 1u;
  return reduced;
}

drv::DType dtype_code(int dtype, const py::array& x) {
  if (dtype < drv::kF32 || dtype > drv::kBF16) throw std::invalid_argument("bad dtype code");
  if (std::size_t(x.itemsize()) != drv::item_size(drv::DType(dtype)))
    throw std::invalid_argument("x's itemsize does not match the dtype code");
  return drv::DType(dtype);
}

void check_op_alg(int op, int alg) {
  if (op < drv::kSoftmax || op > drv::kLogSumExp || alg < drv::kThreePass || alg > drv::kTwoPass)
    throw std::invalid_argument("bad op/alg/dtype code");
}

void check_output(const py::array& y, std::size_t itemsize, std::size_t size, const char* what) {
  if (std::size_t(y.itemsize()) != itemsize || std::size_t(y.size()) != size || !(y.flags() & py::array::c_style) ||
      !y.writeable())
    throw std::invalid_argument(std::string(what) + " must be a writable C-contiguous array of the result's dtype and size");
}

// y as an output of x's shape (softmax and the like): x's itemsize, writable, any
// strides (out=). Its byte strides, or none when it is C-contiguous.
std::vector<std::ptrdiff_t> row_output_strides(const py::array& y, const py::array& x) {
  bool same_shape = y.ndim() == x.ndim() && y.itemsize() == x.itemsize() && y.writeable();
  for (py::ssize_t i = 0; same_shape && i < x.ndim(); ++i) same_shape = y.shape(i) == x.shape(i);
  if (!same_shape) throw std::invalid_argument("y must be a writable array of x's shape and dtype");
  if (y.flags() & py::array::c_style) return {};
  return std::vector<std::ptrdiff_t>(y.strides(), y.strides() + y.ndim());
}

const std::ptrdiff_t* or_null(const std::vector<std::ptrdiff_t>& strides) {
  return strides.empty() ? nullptr : strides.data();
}

std::size_t batch_size(const py::array& x, const std::vector<bool>& reduced, std::size_t& n) {
  std::size_t rows = 1;
  n = 1;
  for (std::size_t i = 0; i < reduced.size(); ++i) (reduced[i] ? n : rows) *= std::size_t(x.shape(i));
  return rows;
}

// An argument taken as a raw handle: a NumPy array as it is, never converted
// (pybind11's py::array argument goes through PyArray_FromAny on every call,
// a cost the smallest softmaxes feel).
py::array as_array(py::handle h, const char* what) {
  if (!py::isinstance<py::array>(h)) throw py::type_error(std::string(what) + " must be a NumPy array");
  return py::reinterpret_borrow<py::array>(h);
}

// op, alg, dtype: the codes of driver.h (exported as OPS, ALGORITHMS, DTYPES).
void compute(int op, int alg, int dtype, py::handle x_handle, std::uint64_t axes, py::handle y_handle,
             py::handle where_handle) {
  const py::array x = as_array(x_handle, "x");
  py::array y = as_array(y_handle, "y");
  const py::object where = py::reinterpret_borrow<py::object>(where_handle);
  check_op_alg(op, alg);
  const drv::DType dt = dtype_code(dtype, x);
  const auto reduced = reduced_axes(axes, std::size_t(x.ndim()));
  py::array keep;
  const drv::Strided w = mask_of(where, reduced.size(), keep);
  std::size_t n, rows = batch_size(x, reduced, n);
  if (rows == 0 || n == 0) return;
  // logsumexp: the fresh C-contiguous array the Python side made; the others: x's shape, any strides.
  std::vector<std::ptrdiff_t> ys;
  if (op == drv::kLogSumExp) check_output(y, drv::item_size(dt), rows, "y");
  else ys = row_output_strides(y, x);
  const drv::Strided xs = strided(x);
  void* yp = y.mutable_data();
  py::gil_scoped_release release;
  drv::compute(drv::Op(op), drv::Alg(alg), dt, xs, reduced, w, yp, drv::pool_runner(), or_null(ys));
}

// temperature (TEMPERATURE_MODES): scalar (`value`), per row (`per_row`: float64,
// C-contiguous, one value per batch row), 3 adaptive.
void compute_temperature(int op, int alg, int dtype, const py::array& x, std::uint64_t axes, py::array& y,
                         const py::object& where, int mode, double value, const py::object& per_row) {
  check_op_alg(op, alg);
  if (mode < drv::Temperature::kScalar || mode > drv::Temperature::kAdaptive)
    throw std::invalid_argument("temperature mode must be 1 (scalar), 2 (per row) or 3 (adaptive)");
  const drv::DType dt = dtype_code(dtype, x);
  const auto reduced = reduced_axes(axes, std::size_t(x.ndim()));
  py::array keep;
  const drv::Strided w = mask_of(where, reduced.size(), keep);
  std::size_t n, rows = batch_size(x, reduced, n);
  drv::Temperature temp;
  temp.mode = drv::Temperature::Mode(mode);
  temp.value = value;
  py::array t_rows;
  if (mode == drv::Temperature::kPerRow) {
    if (per_row.is_none()) throw std::invalid_argument("a per-row temperature needs its array");
    t_rows = py::reinterpret_borrow<py::array>(per_row);
    if (t_rows.itemsize() != sizeof(double) || std::size_t(t_rows.size()) != rows || !(t_rows.flags() & py::array::c_style))
      throw std::invalid_argument("per-row temperatures must be a C-contiguous float64 array of the batch shape");
    temp.per_row = static_cast<const double*>(t_rows.data());
  }
  if (rows == 0 || n == 0) return;
  std::vector<std::ptrdiff_t> ys;
  if (op == drv::kLogSumExp) check_output(y, drv::item_size(dt), rows, "y");
  else ys = row_output_strides(y, x);
  const drv::Strided xs = strided(x);
  void* yp = y.mutable_data();
  py::gil_scoped_release release;
  drv::compute_temperature(drv::Op(op), drv::Alg(alg), dt, xs, reduced, w, temp, yp, drv::pool_runner(), or_null(ys));
}

void accumulate(int dtype, const py::array& x, std::uint64_t axes, const py::object& where, py::array& acc) {
  const drv::DType dt = dtype_code(dtype, x);
  const auto reduced = reduced_axes(axes, std::size_t(x.ndim()));
  py::array keep;
  const drv::Strided w = mask_of(where, reduced.size(), keep);
  std::size_t n, rows = batch_size(x, reduced, n);
  check_output(acc, sizeof(double), rows * drv::kAccSize, "acc");
  const drv::Strided xs = strided(x);
  double* ap = static_cast<double*>(acc.mutable_data());
  py::gil_scoped_release release;
  drv::accumulate(dt, xs, reduced, w, ap, drv::pool_runner());
}

void finish(int op, int dtype, const py::array& x, std::uint64_t axes, const py::object& where,
            const py::array& acc, py::array& y) {
  if (op != drv::kSoftmax && op != drv::kLogSoftmax)
    throw std::invalid_argument("finish: op must be softmax (0) or log_softmax (1)");
  const drv::DType dt = dtype_code(dtype, x);
  const auto reduced = reduced_axes(axes, std::size_t(x.ndim()));
  py::array keep;
  const drv::Strided w = mask_of(where, reduced.size(), keep);
  std::size_t n, rows = batch_size(x, reduced, n);
  if (acc.itemsize() != sizeof(double) || std::size_t(acc.size()) != rows * drv::kAccSize ||
      !(acc.flags() & py::array::c_style))
    throw std::invalid_argument("acc must be a C-contiguous float64 array of the batch shape + (5,)");
  check_output(y, drv::item_size(dt), rows * n, "y");
  const drv::Strided xs = strided(x);
  const double* ap = static_cast<const double*>(acc.data());
  void* yp = y.mutable_data();
  py::gil_scoped_release release;
  drv::finish(drv::Op(op), dt, xs, reduced, w, ap, yp, drv::pool_runner());
}

const KernelTable* current_table() { return drv::current_table(); }

template <class S>
py::array_t<S> apply_exp(py::array_t<S, py::array::c_style | py::array::forcecast> x,
                         void (*f)(const S*, std::size_t, S*)) {
  py::array_t<S> y(x.size());
  {
    py::gil_scoped_release release;
    const drv::RoundToNearest nearest;  // as the driver runs the kernels
    f(x.data(), std::size_t(x.size()), y.mutable_data());
  }
  return y;
}

// The temperature kernels' exp: (e^(d/T) 2^shift, shift), or None where the kernel
// declines T (a negative shift: T outside its window).
template <class S>
py::object apply_exp_t(py::array_t<S, py::array::c_style | py::array::forcecast> d, double t,
                       int (*f)(const S*, std::size_t, double, S*)) {
  py::array_t<S> y(d.size());
  int shift;
  {
    py::gil_scoped_release release;
    const drv::RoundToNearest nearest;  // as the driver runs the kernels
    shift = f(d.data(), std::size_t(d.size()), t, y.mutable_data());
  }
  return shift < 0 ? py::object(py::none()) : py::object(py::make_tuple(y, shift));
}

// The softmax family. softmax_topk: values (x's dtype) and indices (int64),
// C-contiguous of the batch shape + (k,).
void softmax_topk(int dtype, const py::array& x, std::size_t axis, std::size_t k, const py::object& where,
                  py::array& values, py::array& indices) {
  const drv::DType dt = dtype_code(dtype, x);
  if (axis >= std::size_t(x.ndim())) throw std::invalid_argument("axis out of range");
  py::array keep;
  const drv::Strided w = mask_of(where, std::size_t(x.ndim()), keep);
  std::size_t n = std::size_t(x.shape(axis)), rows = std::size_t(x.size()) / std::max<std::size_t>(n, 1);
  if (k < 1 || k > n) throw std::invalid_argument("k must be in [1, x.shape[axis]]");
  if (n == 0 || x.size() == 0) return;
  check_output(values, drv::item_size(dt), rows * k, "values");
  check_output(indices, sizeof(std::int64_t), rows * k, "indices");
  const drv::Strided xs = strided(x);
  void* vp = values.mutable_data();
  auto* ip = static_cast<std::int64_t*>(indices.mutable_data());
  py::gil_scoped_release release;
  drv::softmax_topk(dt, xs, axis, k, w, vp, ip, drv::pool_runner());
}

// op: STABLEMAX_OPS; y as compute's.
void stablemax(int op, int dtype, const py::array& x, std::uint64_t axes, py::array& y, const py::object& where) {
  if (op != drv::kStableMax && op != drv::kLogStableMax) throw std::invalid_argument("bad stablemax op code");
  const drv::DType dt = dtype_code(dtype, x);
  const auto reduced = reduced_axes(axes, std::size_t(x.ndim()));
  py::array keep;
  const drv::Strided w = mask_of(where, reduced.size(), keep);
  std::size_t n, rows = batch_size(x, reduced, n);
  if (rows == 0 || n == 0) return;
  const std::vector<std::ptrdiff_t> ys = row_output_strides(y, x);
  const drv::Strided xs = strided(x);
  void* yp = y.mutable_data();
  py::gil_scoped_release release;
  drv::stablemax(drv::StableMaxOp(op), dt, xs, reduced, w, yp, drv::pool_runner(), or_null(ys));
}

// The backward kernels on raw memory (pointers as integers, byte strides), so
// that any array library's buffers (torch bfloat16 included) can be passed
// without NumPy. shape: x's; g and lse: x's shape (softmax, log_softmax) or the
// batch shape (g and lse of logsumexp; lse_ptr 0 otherwise); where_ptr 0: no
// mask; mode: 0 none, TEMPERATURE_MODES scalar or per_row (per_row_ptr:
// float64 C-contiguous of the batch shape); dtemperature_ptr 0, or float64
// C-contiguous of the batch shape for each row's dL/dT. The caller keeps every
// buffer alive for the call.
void backward(int op, int dtype, const std::vector<std::ptrdiff_t>& shape, std::uint64_t axes,
              std::uintptr_t saved_ptr, const std::vector<std::ptrdiff_t>& saved_strides,
              std::uintptr_t g_ptr, const std::vector<std::ptrdiff_t>& g_strides,
              std::uintptr_t lse_ptr, const std::vector<std::ptrdiff_t>& lse_strides,
              std::uintptr_t where_ptr, const std::vector<std::ptrdiff_t>& where_strides,
              int mode, double value, std::uintptr_t per_row_ptr, std::uintptr_t dtemperature_ptr,
              std::uintptr_t dx_ptr, const std::vector<std::ptrdiff_t>& dx_strides) {
  if (op < drv::kSoftmax || op > drv::kLogSumExp) throw std::invalid_argument("bad op code");
  if (dtype < drv::kF32 || dtype > drv::kBF16) throw std::invalid_argument("bad dtype code");
  if (mode < drv::Temperature::kNone || mode > drv::Temperature::kPerRow)
    throw std::invalid_argument("backward: temperature mode must be none, scalar or per_row");
  const auto reduced = reduced_axes(axes, shape.size());
  std::vector<std::ptrdiff_t> bshape;
  for (std::size_t i = 0; i < shape.size(); ++i) if (!reduced[i]) bshape.push_back(shape[i]);
  const bool row_grad = op == drv::kLogSumExp;
  auto ptr = [](std::uintptr_t p) { return reinterpret_cast<const void*>(p); };
  const drv::Strided saved{ptr(saved_ptr), shape, saved_strides};
  const drv::Strided g{ptr(g_ptr), row_grad ? bshape : shape, g_strides};
  const drv::Strided lse{ptr(lse_ptr), bshape, lse_strides};
  const drv::Strided where{ptr(where_ptr), shape, where_strides};
  drv::Temperature temp;
  temp.mode = drv::Temperature::Mode(mode);
  temp.value = value;
  temp.per_row = reinterpret_cast<const double*>(per_row_ptr);
  py::gil_scoped_release release;
  drv::backward(drv::Op(op), drv::DType(dtype), saved, g, lse, reduced, where, temp,
                reinterpret_cast<double*>(dtemperature_ptr), reinterpret_cast<void*>(dx_ptr), dx_strides,
                drv::pool_runner());
}

// name -> code for the codes the driver defines (driver.h).
template <std::size_t N>
py::dict codes(const char* const (&names)[N], int first = 0) {
  py::dict d;
  for (std::size_t i = std::size_t(first); i < N; ++i) d[names[i]] = int(i);
  return d;
}

}  // namespace
}  // namespace softmaxlib

PYBIND11_MODULE(_kernels, m) {
  using namespace softmaxlib;
  m.doc() = "softmaxlib native CPU kernels (internal; reached through softmaxlib._native_loader)";
  // The codes every call below takes, by name (defined once, in driver.h and driver_family.h).
  m.attr("OPS") = codes(driver::kOpNames);
  m.attr("ALGORITHMS") = codes(driver::kAlgNames);
  m.attr("DTYPES") = codes(driver::kDTypeNames);
  m.attr("STABLEMAX_OPS") = codes(driver::kStableMaxOpNames);
  m.attr("TEMPERATURE_MODES") = codes(driver::Temperature::kModeNames, driver::Temperature::kScalar);
  m.attr("ACCUMULATOR_FIELDS") = py::tuple(py::cast(std::vector<std::string>(
      std::begin(driver::kAccFields), std::end(driver::kAccFields))));
  m.attr("ADAPTIVE_POLYNOMIAL") = py::tuple(py::cast(std::vector<double>(
      std::begin(driver::kAdaptivePolynomial), std::end(driver::kAdaptivePolynomial))));
  m.attr("ADAPTIVE_MIN_ENTROPY") = driver::kAdaptiveMinEntropy;
  m.def("compute", &compute, py::arg("op"), py::arg("alg"), py::arg("dtype"), py::arg("x"), py::arg("axes"),
        py::arg("y"), py::arg("where"),
        "Fill y with op(x) over the axes whose bits are set in `axes` (y: C-contiguous; softmax and "
        "log_softmax: x's shape, any strides). Codes: OPS, ALGORITHMS, DTYPES.");
  m.def("compute_temperature", &compute_temperature, py::arg("op"), py::arg("alg"), py::arg("dtype"), py::arg("x"),
        py::arg("axes"), py::arg("y"), py::arg("where"), py::arg("mode"), py::arg("value"), py::arg("per_row"),
        "compute() of op(x / T), mode from TEMPERATURE_MODES: scalar, one temperature `value` (> 0, may be inf); "
        "per_row (`per_row`, float64 C-contiguous of the batch shape); adaptive (beta from the entropy of softmax(x)).");
  m.def("accumulate", &accumulate, py::arg("dtype"), py::arg("x"), py::arg("axes"), py::arg("where"), py::arg("acc"),
        "Fill acc (float64, batch shape + (5,)) with each row's [m, d, n_posinf, has_nan, n_valid].");
  m.def("finish", &finish, py::arg("op"), py::arg("dtype"), py::arg("x"), py::arg("axes"), py::arg("where"),
        py::arg("acc"), py::arg("y"), "Fill y with softmax or log_softmax (OPS) of x given the merged acc.");
  m.def("backward", &backward, py::arg("op"), py::arg("dtype"), py::arg("shape"), py::arg("axes"),
        py::arg("saved_ptr"), py::arg("saved_strides"), py::arg("g_ptr"), py::arg("g_strides"), py::arg("lse_ptr"),
        py::arg("lse_strides"), py::arg("where_ptr"), py::arg("where_strides"), py::arg("mode"), py::arg("value"),
        py::arg("per_row_ptr"), py::arg("dtemperature_ptr"), py::arg("dx_ptr"), py::arg("dx_strides"),
        "Write dx (and each row's dL/dT) of op's backward on raw memory: pointers as integers, byte strides.");
  m.def("set_num_threads", &driver::set_num_threads);
  m.def("get_num_threads", &driver::num_threads);
  m.def("max_num_threads", &driver::max_num_threads);
  m.attr("THREADS_PER_CPU") = driver::kThreadsPerCpu;
  m.def("pool_threads", &driver::pool_threads);
  m.def("get_isa", [] { return std::string(current_table()->isa); });
  m.def("set_isa", &driver::set_isa);
  m.def("compiled_isas", &driver::compiled_isas);
  m.def("supported_isas", &driver::supported_isas);
  // The kernels every ISA unit provides (its KernelTable and FamilyTable).
  m.def("kernel_names", [] {
#define SOFTMAXLIB_KERNEL_NAME(name, ...) #name,
    return std::vector<std::string>{SOFTMAXLIB_KERNELS(SOFTMAXLIB_KERNEL_NAME)
                                        SOFTMAXLIB_FAMILY_KERNELS(SOFTMAXLIB_KERNEL_NAME)};
#undef SOFTMAXLIB_KERNEL_NAME
  });
  // The XLA FFI handlers (softmaxlib/_backends/jax_ffi/primitives.py registers them), when
  // this build found the XLA FFI headers; an empty dict otherwise.
  m.def("xla_ffi_handlers", [] {
    py::dict d;
#if defined(SOFTMAXLIB_XLA_FFI)
    d["softmaxlib_compute"] = py::capsule(xla_ffi_compute_handler());
    d["softmaxlib_compute_masked"] = py::capsule(xla_ffi_compute_masked_handler());
    d["softmaxlib_accumulate"] = py::capsule(xla_ffi_accumulate_handler());
    d["softmaxlib_finish"] = py::capsule(xla_ffi_finish_handler());
    d["softmaxlib_topk"] = py::capsule(xla_ffi_topk_handler());
    d["softmaxlib_topk_masked"] = py::capsule(xla_ffi_topk_masked_handler());
    d["softmaxlib_stablemax"] = py::capsule(xla_ffi_stablemax_handler());
    d["softmaxlib_stablemax_masked"] = py::capsule(xla_ffi_stablemax_masked_handler());
    d["softmaxlib_compute_t"] = py::capsule(xla_ffi_compute_t_handler());
    d["softmaxlib_backward"] = py::capsule(xla_ffi_backward_handler());
#endif
    return d;
  });
  m.def("chunk", [] { return current_table()->chunk; });
  // Bytes of one core's L2 cache, 0 where unknown; the policy of algorithm="auto" and its thresholds.
  m.def("l2_cache_bytes", &driver::l2_cache_bytes);
  m.def("auto_algorithm", [](int op, int dtype, std::size_t row_bytes, std::size_t total_bytes) {
    check_op_alg(op, driver::kThreePass);
    return int(driver::auto_algorithm(driver::Op(op), dtype, row_bytes, total_bytes));
  }, py::arg("op"), py::arg("dtype"), py::arg("row_bytes"), py::arg("total_bytes"),
     "The ALGORITHMS code algorithm=\"auto\" runs for op (OPS) on rows of row_bytes in an array of "
     "total_bytes; dtype: a DTYPES code, -1 for any other.");
  m.attr("AUTO_TWO_PASS_MIN_ROW_BYTES") = driver::auto_two_pass_min_row_bytes();
  m.attr("AUTO_IN_CACHE") = py::make_tuple(int(driver::kAutoInCache[0]), int(driver::kAutoInCache[1]),
                                           int(driver::kAutoInCache[2]));
  register_lane(m);
  // Where a call starts using more than one thread (layout.h): for benchmarks/threads.py
  // and the tests; the results are the same bits whatever they are.
  m.def("_parallel_thresholds", [] {
    const auto t = driver::parallel_thresholds();
    return py::make_tuple(t.min_elements, t.min_split_row);
  }, "(min_elements, min_split_row) now in use.");
  m.def("_set_parallel_thresholds", [](std::size_t min_elements, std::size_t min_split_row) {
    driver::set_parallel_thresholds({min_elements, min_split_row});
  }, py::arg("min_elements"), py::arg("min_split_row"));
  m.attr("DEFAULT_PARALLEL_THRESHOLDS") = py::make_tuple(driver::default_parallel_thresholds().min_elements,
                                                         driver::default_parallel_thresholds().min_split_row);
  m.def("softmax_topk", &softmax_topk, py::arg("dtype"), py::arg("x"), py::arg("axis"), py::arg("k"), py::arg("where"),
        py::arg("values"), py::arg("indices"),
        "Fill values/indices (batch shape + (k,), C-contiguous) with the top k of softmax(x) along axis.");
  m.def("stablemax", &stablemax, py::arg("op"), py::arg("dtype"), py::arg("x"), py::arg("axes"), py::arg("y"),
        py::arg("where"), "Fill y with stablemax or log_stablemax (STABLEMAX_OPS) of x over the axes bits.");
  m.def("_exp_f32", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    return apply_exp<float>(x, current_table()->exp_f32);
  });
  m.def("_exp_nonpositive_f32", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    return apply_exp<float>(x, current_table()->exp_nonpositive_f32);
  });
  m.def("_exp_f64", [](py::array_t<double, py::array::c_style | py::array::forcecast> x) {
    return apply_exp<double>(x, current_table()->exp_f64);
  });
  m.def("_expm1_f32", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    return apply_exp<float>(x, current_table()->expm1_f32);
  }, "test-only: the backward kernels' vector expm1");
  m.def("_expm1_f64", [](py::array_t<double, py::array::c_style | py::array::forcecast> x) {
    return apply_exp<double>(x, current_table()->expm1_f64);
  });
  m.def("_exp_t_f32", [](py::array_t<float, py::array::c_style | py::array::forcecast> d, double t) {
    return apply_exp_t<float>(d, t, current_table()->exp_t_f32);
  }, "test-only: (e^(d/T) 2^shift, shift) from the temperature kernels' exp, d <= 0 (None: T outside their window)");
  m.def("_exp_t_f64", [](py::array_t<double, py::array::c_style | py::array::forcecast> d, double t) {
    return apply_exp_t<double>(d, t, current_table()->exp_t_f64);
  });
  m.def("_exp_pn_f32", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    py::array_t<float> p(x.size()), e(x.size());
    {
      py::gil_scoped_release release;
      const drv::RoundToNearest nearest;  // as the driver runs the kernels
      current_table()->exp_pn_f32(x.data(), std::size_t(x.size()), p.mutable_data(), e.mutable_data());
    }
    return py::make_tuple(p, e);
  });
}
