// The driver of the native kernels: everything that is not a kernel.
//
// Plain C++ over (pointer, shape, byte strides, dtype): no Python, no pybind11,
// no XLA. Its parts, one unit (or header) each:
//   isa.h           which ISA unit's kernels run (cpuid, SOFTMAXLIB_ISA);
//   thread_pool.h   the Runner interface and softmaxlib's own pool;
//   conversions.h   float16 / bfloat16 scalar conversions;
//   accumulators.h  the chunk accumulators and their fixed-order merges;
//   layout.h        the strided row walker (batch x reduced dims, masks);
//   row_solver.h    one row by each algorithm, with or without a temperature;
//   special_rows.h  the contract's special rows (+inf, all -inf, NaN, masked);
//   driver.cc       these entry points; driver_family.cc the family's;
//   backward.h      the backward kernels (dx and the temperature's cotangent).
// Threads are the caller's: every entry point takes a Runner. The NumPy module
// (module.cc) passes softmaxlib's own pool, the XLA FFI handlers (xla_ffi.cc)
// XLA's intra-op pool, and Dask tasks the inline runner through NumPy.
//
// Entry points:
//   compute     op(x) over the reduced axes, whole rows (softmax, log_softmax,
//               logsumexp, any of the four algorithms);
//   accumulate  pass 1 over a piece of each row: the mergeable accumulator
//               [m, d, n_posinf, has_nan, n_valid] (m the max of the valid
//               finite entries, d = sum exp(x - m) over them, in double);
//   finish      pass 2 over a piece of each row given the *merged* accumulator.
// Errors are std::invalid_argument with a message for the caller to forward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernel_table.h"
#include "thread_pool.h"

namespace softmaxlib {
namespace driver {

// The codes of ops, algorithms and dtypes, defined here once: the module
// exports them by name (softmaxlib._kernels.OPS, ALGORITHMS, DTYPES), and every
// Python caller reads them from there. kOpNames[op] etc. are those names.
enum Op : int { kSoftmax = 0, kLogSoftmax = 1, kLogSumExp = 2 };
enum Alg : int { kThreePass = 0, kThreePassReload = 1, kOnline = 2, kTwoPass = 3 };
enum DType : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };
constexpr const char* kOpNames[] = {"softmax", "log_softmax", "logsumexp"};
constexpr const char* kAlgNames[] = {"three-pass", "three-pass-reload", "online", "two-pass"};
constexpr const char* kDTypeNames[] = {"float32", "float64", "float16", "bfloat16"};

// Bytes per element of a dtype code.
std::size_t item_size(DType dtype);

// Entries of one row's accumulator (accumulate / finish), by name.
constexpr std::size_t kAccSize = 5;
constexpr const char* kAccFields[kAccSize] = {"m", "d", "n_posinf", "has_nan", "n_valid"};

// Byte strides of a C-contiguous (row-major) array of `shape`.
std::vector<std::ptrdiff_t> row_major_strides(const std::vector<std::ptrdiff_t>& shape, std::ptrdiff_t item);

// A strided array: shape and byte strides (any, negative included).
// byte_swapped: its entries are stored in the other byte order ('>f4' on a
// little-endian machine); the driver swaps them as it reads them.
struct Strided {
  const void* data;
  std::vector<std::ptrdiff_t> shape;
  std::vector<std::ptrdiff_t> strides;
  bool byte_swapped = false;
};

// `reduced[a]` marks the reduced axes (at least one). `where` is null or a
// bool-byte mask of x's shape (where.data null when there is none).
//
// compute: y is C-contiguous: x's shape for softmax / log_softmax, the batch
// shape (reduced axes removed) for logsumexp. Or, softmax / log_softmax only,
// y has x's shape and the byte strides y_strides (x's rank; any, x's own for
// in place): rows are then gathered and their results scattered into y, with
// no array-sized temporary.
void compute(Op op, Alg alg, DType dtype, const Strided& x, const std::vector<bool>& reduced,
             const Strided& where, void* y, const Runner& runner, const std::ptrdiff_t* y_strides = nullptr);

// compute for `rows` rows that are each one contiguous run of n elements, row
// r at x + r * x_row_stride bytes and its result at y + r * y_row_stride (n
// elements for softmax / log_softmax, one for logsumexp): the common call,
// with the same row math as compute() and none of its layout walk.
void compute_contiguous_rows(Op op, Alg alg, DType dtype, const void* x, std::ptrdiff_t x_row_stride, void* y,
                             std::ptrdiff_t y_row_stride, std::size_t rows, std::size_t n, const Runner& runner);

// Temperature (op(x / T)): none (= compute above), one T for every row, one
// per row (`per_row`: C-contiguous float64 of the batch shape, indexed like
// logsumexp's output), or adaptive (T = 1/beta, beta from the entropy of
// softmax(x) per row; Velickovic et al. 2024). T is > 0, finite or +inf (the
// uniform limit); the caller validates it.
struct Temperature {
  enum Mode : int { kNone = 0, kScalar = 1, kPerRow = 2, kAdaptive = 3 };
  static constexpr const char* kModeNames[] = {"none", "scalar", "per_row", "adaptive"};
  Mode mode = kNone;
  double value = 1.0;                // kScalar
  const double* per_row = nullptr;   // kPerRow
};

void compute_temperature(Op op, Alg alg, DType dtype, const Strided& x, const std::vector<bool>& reduced,
                         const Strided& where, const Temperature& temperature, void* y, const Runner& runner,
                         const std::ptrdiff_t* y_strides = nullptr);

// accumulate: acc is C-contiguous float64 of batch shape + (kAccSize,).
void accumulate(DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
                double* acc, const Runner& runner);

// finish (op softmax or log_softmax): acc as accumulate's, merged over the
// whole row; y C-contiguous of x's shape.
void finish(Op op, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
            const double* acc, void* y, const Runner& runner);

}  // namespace driver
}  // namespace softmaxlib
