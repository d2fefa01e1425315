// The short lane of softmaxlib._kernels: softmax, log_softmax and logsumexp of
// the common NumPy call, from the public function's own arguments straight to
// the driver.
//
// The common call is a float32/float64 NumPy array (native byte order, at least
// one dimension, not empty), an int axis or None, a known algorithm name, and
// for softmax/log_softmax no `out` or a writable C-contiguous one of x's shape
// and dtype that is x or lies apart from it (logsumexp: keepdims True or
// False). The lane checks exactly that, reading NumPy's structs through
// pybind11's NumPy API, and returns NotImplemented for anything else: the
// Python function then takes its full path, which handles or refuses it.
// Every argument is a raw handle (no pybind11 conversion); the output is
// allocated here, once; rows that are each one contiguous run go to the
// driver's compute_contiguous_rows (no layout walk), other layouts to its
// compute(). The GIL is released for arrays large enough to repay it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "auto_policy.h"
#include "driver.h"
#include "module_lane.h"

namespace py = pybind11;

namespace softmaxlib {
namespace {

namespace drv = softmaxlib::driver;

// NumPy's type numbers of float32 and float64 (fixed by its ABI).
constexpr int kNpyFloat = 11, kNpyDouble = 12;

// Below this many elements the kernels run with the GIL held: releasing and
// taking it back costs about as much as a 1x1024 softmax's exp work, and
// NumPy's own ufuncs keep it for small arrays too.
constexpr std::size_t kReleaseGilElements = std::size_t(1) << 14;

const py::detail::npy_api& numpy() { return py::detail::npy_api::get(); }

bool is_exact_ndarray(py::handle h) { return Py_TYPE(h.ptr()) == numpy().PyArray_Type_; }

py::detail::PyArray_Proxy* proxy(py::handle h) { return py::detail::array_proxy(h.ptr()); }

// x's dtype code when the lane takes it: float32 or float64 in native byte order.
bool lane_dtype(const py::detail::PyArray_Proxy* a, drv::DType& dtype) {
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  if (d->byteorder != '=') return false;
  if (d->type_num == kNpyFloat) dtype = drv::kF32;
  else if (d->type_num == kNpyDouble) dtype = drv::kF64;
  else return false;
  return true;
}

// The reduced axes as bits: None (every axis) or an int in [-nd, nd). A bool
// (not an exact int), a NumPy integer or a tuple are left to the full path.
bool lane_axes(py::handle axis, int nd, std::uint64_t& bits) {
  if (axis.is_none()) {
    bits = nd >= 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << nd) - 1;
    return true;
  }
  if (!PyLong_CheckExact(axis.ptr())) return false;
  int overflow = 0;
  const long a = PyLong_AsLongAndOverflow(axis.ptr(), &overflow);
  if (overflow != 0 || a < -nd || a >= nd) return false;
  bits = std::uint64_t(1) << (a < 0 ? a + nd : a);
  return true;
}

// The algorithm's code; "auto" gives -1 (the policy decides once the sizes are known).
bool lane_algorithm(py::handle algorithm, int& alg) {
  if (!PyUnicode_CheckExact(algorithm.ptr())) return false;
  static PyObject* const auto_name = PyUnicode_InternFromString("auto");
  if (algorithm.ptr() == auto_name || PyUnicode_CompareWithASCIIString(algorithm.ptr(), "auto") == 0) {
    alg = -1;
    return true;
  }
  for (int a = drv::kThreePass; a <= drv::kTwoPass; ++a) {
    if (PyUnicode_CompareWithASCIIString(algorithm.ptr(), drv::kAlgNames[a]) == 0) {
      alg = a;
      return true;
    }
  }
  return false;
}

// [lo, hi): the bytes an array's elements occupy (the bounds np.may_share_memory compares).
void byte_bounds(const py::detail::PyArray_Proxy* a, std::size_t item, const char*& lo, const char*& hi) {
  lo = hi = a->data;
  for (int i = 0; i < a->nd; ++i) {
    const std::ptrdiff_t span = std::ptrdiff_t(a->strides[i]) * (std::ptrdiff_t(a->dimensions[i]) - 1);
    (span < 0 ? lo : hi) += span;
  }
  hi += item;
}

// `out` as the lane takes it: x's shape and dtype, C-contiguous, writable, x
// itself or apart from it.
bool lane_out(py::handle out, py::handle x, std::size_t item) {
  if (!is_exact_ndarray(out)) return false;
  const auto* o = proxy(out);
  const auto* a = proxy(x);
  if (o->nd != a->nd) return false;
  for (int i = 0; i < a->nd; ++i)
    if (o->dimensions[i] != a->dimensions[i]) return false;
  const auto* od = py::detail::array_descriptor_proxy(o->descr);
  const auto* xd = py::detail::array_descriptor_proxy(a->descr);
  if (od->type_num != xd->type_num || od->byteorder != '=') return false;
  const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  if ((o->flags & need) != need) return false;
  if (out.ptr() == x.ptr()) return true;
  const char *xlo, *xhi, *olo, *ohi;
  byte_bounds(a, item, xlo, xhi);
  byte_bounds(o, item, olo, ohi);
  return ohi <= xlo || xhi <= olo;
}

// Rows and row length of x over the reduced axes; true with the row strides
// when every row is one contiguous run and the batch dims step by one stride
// (dims of length 1 aside), i.e. when compute_contiguous_rows can take x.
bool row_layout(const py::detail::PyArray_Proxy* a, std::uint64_t bits, std::size_t item, std::size_t& rows,
                std::size_t& n, std::ptrdiff_t& row_xs) {
  rows = n = 1;
  bool simple = true, in_batch = false;
  std::ptrdiff_t next_red = std::ptrdiff_t(item), next_batch = 0;
  row_xs = 0;
  for (int i = a->nd; i-- > 0;) {
    const std::ptrdiff_t len = a->dimensions[i], stride = a->strides[i];
    const bool reduced = (bits >> i) & 1u;
    (reduced ? n : rows) *= std::size_t(len);
    if (len == 1 || !simple) continue;
    if (reduced) {
      simple = !in_batch && stride == next_red;
      next_red = stride * len;
    } else if (!in_batch) {
      in_batch = true;
      row_xs = stride;
      next_batch = stride * len;
    } else {
      simple = stride == next_batch;
      next_batch = stride * len;
    }
  }
  return simple;
}

drv::Strided strided(const py::detail::PyArray_Proxy* a) {
  drv::Strided s{a->data, {}, {}};
  s.shape.assign(a->dimensions, a->dimensions + a->nd);
  s.strides.assign(a->strides, a->strides + a->nd);
  return s;
}

// op(x) into y (C-contiguous: x's shape, or the batch shape for logsumexp).
void run(drv::Op op, drv::Alg alg, drv::DType dtype, const py::detail::PyArray_Proxy* a, std::uint64_t bits,
         std::size_t rows, std::size_t n, bool simple, std::ptrdiff_t row_xs, void* y) {
  const std::size_t item = drv::item_size(dtype);
  const std::ptrdiff_t row_ys = std::ptrdiff_t(op == drv::kLogSumExp ? item : n * item);
  const auto go = [&] {
    if (simple) {
      drv::compute_contiguous_rows(op, alg, dtype, a->data, row_xs, y, row_ys, rows, n, drv::pool_runner());
    } else {
      std::vector<bool> reduced(std::size_t(a->nd));
      for (int i = 0; i < a->nd; ++i) reduced[std::size_t(i)] = (bits >> i) & 1u;
      drv::compute(op, alg, dtype, strided(a), reduced, drv::Strided{nullptr, {}, {}}, y, drv::pool_runner());
    }
  };
  if (rows * n < kReleaseGilElements) {
    go();
  } else {
    py::gil_scoped_release release;
    go();
  }
}

// The checks every op shares; false: not the common call.
struct Call {
  const py::detail::PyArray_Proxy* a;
  drv::DType dtype;
  drv::Alg alg;
  std::uint64_t bits;
  std::size_t rows, n;
  bool simple;
  std::ptrdiff_t row_xs;
};

bool common_call(drv::Op op, py::handle x, py::handle axis, py::handle algorithm, Call& c) {
  if (!is_exact_ndarray(x)) return false;
  c.a = proxy(x);
  int alg;
  if (c.a->nd == 0 || !lane_dtype(c.a, c.dtype) || !lane_axes(axis, c.a->nd, c.bits) || !lane_algorithm(algorithm, alg))
    return false;
  const std::size_t item = drv::item_size(c.dtype);
  c.simple = row_layout(c.a, c.bits, item, c.rows, c.n, c.row_xs);
  if (c.rows * c.n == 0) return false;
  c.alg = alg < 0 ? drv::auto_algorithm(op, c.dtype, c.n * item, c.rows * c.n * item) : drv::Alg(alg);
  return true;
}

py::object new_array(PyObject* descr, int nd, const py::ssize_t* dims) {
  Py_INCREF(descr);  // PyArray_NewFromDescr steals it
  PyObject* y = numpy().PyArray_NewFromDescr_(numpy().PyArray_Type_, descr, nd, const_cast<py::ssize_t*>(dims),
                                              nullptr, nullptr, 0, nullptr);
  if (y == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(y);
}

py::object elementwise_lane(drv::Op op, py::handle x, py::handle axis, py::handle algorithm, py::handle out) {
  Call c;
  if (!common_call(op, x, axis, algorithm, c)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  py::object y;
  if (out.is_none()) {
    y = new_array(c.a->descr, c.a->nd, c.a->dimensions);
  } else {
    if (!lane_out(out, x, drv::item_size(c.dtype))) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    y = py::reinterpret_borrow<py::object>(out);
  }
  run(op, c.alg, c.dtype, c.a, c.bits, c.rows, c.n, c.simple, c.row_xs, proxy(y)->data);
  return y;
}

py::object logsumexp_lane(py::handle x, py::handle axis, py::handle algorithm, py::handle keepdims) {
  Call c;
  if ((keepdims.ptr() != Py_False && keepdims.ptr() != Py_True) || !common_call(drv::kLogSumExp, x, axis, algorithm, c))
    return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  py::ssize_t dims[64];
  int nd = 0;
  for (int i = 0; i < c.a->nd; ++i) {
    if (!((c.bits >> i) & 1u)) dims[nd++] = c.a->dimensions[i];
    else if (keepdims.ptr() == Py_True) dims[nd++] = 1;
  }
  py::object y = new_array(c.a->descr, nd, dims);
  run(drv::kLogSumExp, c.alg, c.dtype, c.a, c.bits, c.rows, c.n, c.simple, c.row_xs, proxy(y)->data);
  return y;
}

}  // namespace

void register_lane(py::module_& m) {
  m.def("softmax_lane", [](py::handle x, py::handle axis, py::handle algorithm, py::handle out) {
    return elementwise_lane(drv::kSoftmax, x, axis, algorithm, out);
  }, "softmax(x, axis, algorithm, out) of the common NumPy call, or NotImplemented for any other call.");
  m.def("log_softmax_lane", [](py::handle x, py::handle axis, py::handle algorithm, py::handle out) {
    return elementwise_lane(drv::kLogSoftmax, x, axis, algorithm, out);
  }, "log_softmax(x, axis, algorithm, out) as softmax_lane.");
  m.def("logsumexp_lane", &logsumexp_lane,
        "logsumexp(x, axis, algorithm, keepdims) of the common NumPy call, or NotImplemented for any other call.");
  // pybind11's own cost of a call, for benchmarks/overhead.py: two arguments, no work.
  m.def("_noop", [](py::handle, py::handle) {});
}

}  // namespace softmaxlib
