// The driver's entry points (driver.h): compute, compute_temperature,
// accumulate and finish, each a walk over the rows (layout.h) that hands every
// row to the row solver (row_solver.h) or to the kernels directly. Compiled
// for the baseline ISA.
#include "driver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "isa.h"
#include "layout.h"
#include "round_to_nearest.h"
#include "row_solver.h"
#include "special_rows.h"

namespace softmaxlib {
namespace driver {
namespace {

template <class T>
void compute_rows(Op op, Alg alg, const Problem& P, const Kernels<T, typename ComputeType<T>::type>& kern,
                  const Runner& runner, const Temperature* temp = nullptr) {
  const RoundToNearest nearest;  // the temperature's constants too, not only the rows
  const std::size_t n = P.n;
  ExpScale<typename ComputeType<T>::type> shared_sc{};
  bool shared_ok = false;
  const bool shared = temp != nullptr && temp->mode == Temperature::kScalar;
  if (shared) shared_ok = kern.prepare_temperature(temp->value, &shared_sc);
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>& sc, const ChunkRunner& run) {
    const bool lse_op = op == kLogSumExp;
    if (row.live == 0) {
      // Fully masked row (an unmasked one has n > 0 live entries).
      RowFacts f;
      f.n_live = 0;
      if (lse_op) *row.y = from_double<T>(special_logsumexp(f));
      else write_special_row(op == kLogSoftmax, f, row.x, n, row.y);
      return;
    }
    RowSolver<T> solver{kern, P.chunk, op, alg, &sc.sums, &sc.exts, &sc.onl, &sc.reload_buf};
    solver.reader = row.reader;
    if (temp == nullptr) {
      solver.solve(row.x, n, lse_op ? nullptr : row.y, lse_op ? row.y : nullptr, run);
    } else {
      solver.sums2 = &sc.sums2;
      if (shared) {
        solver.shared_sc = &shared_sc;
        solver.shared_t = temp->value;
        solver.shared_ok = shared_ok;
      }
      const double t = temp->mode == Temperature::kPerRow ? temp->per_row[row.index] : temp->value;
      solver.solve_t(row.x, n, lse_op ? nullptr : row.y, lse_op ? row.y : nullptr, t,
                     temp->mode == Temperature::kAdaptive, run);
    }
    if (!lse_op) fill_masked(op == kLogSoftmax, row.mask, n, row.y);
  });
}

// Pass 1 of a piece: the online kernel in chunks, merged in a fixed tree; rows
// with +inf or NaN (rare) are redone in scalar double to count them.
template <class T>
void accumulate_rows(const Problem& P, const Kernels<T, typename ComputeType<T>::type>& kern, double* acc,
                     const Runner& runner) {
  const std::size_t n = P.n, chunk = P.chunk;
  const double inf = std::numeric_limits<double>::infinity();
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>& sc, const ChunkRunner& run) {
    double* a = acc + kAccSize * row.index;
    double m = -inf, d = 0, n_posinf = 0, has_nan = 0;
    if (row.live > 0) {
      const std::size_t nc = (n + chunk - 1) / chunk;
      sc.onl.assign(nc, OnlineAccD{0, 0});
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        auto r = kern.ronlineexp(row.x + lo, len);
        sc.onl[c] = OnlineAccD{double(r.m), double(r.d)};
      });
      OnlineAccD o = merge_online_tree(sc.onl.data(), nc);
      if (std::isfinite(o.m) && std::isfinite(o.d)) {
        if (o.d > 0) { m = o.m; d = o.d; }  // else: all -inf, the identity
      } else {
        const RowScan r = rescan_row(row.x, n, /*with_sum=*/true);
        has_nan = r.facts.nan ? 1 : 0;
        n_posinf = r.facts.n_posinf;
        m = r.m;
        d = r.d;
      }
    }
    a[0] = m; a[1] = d; a[2] = n_posinf; a[3] = has_nan; a[4] = double(row.live);
  });
}

// Pass 2 of a piece given the row's merged accumulator.
template <class T>
void finish_rows(Op op, const Problem& P, const Kernels<T, typename ComputeType<T>::type>& kern, const double* acc,
                 const Runner& runner) {
  using S = typename ComputeType<T>::type;
  const std::size_t n = P.n, chunk = P.chunk;
  const double inf = std::numeric_limits<double>::infinity();
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>&, const ChunkRunner& run) {
    const double* a = acc + kAccSize * row.index;
    const double m = a[0], d = a[1], n_posinf = a[2], has_nan = a[3], n_valid = a[4];
    if (has_nan != 0 || n_posinf > 0 || n_valid <= 0 || !(m > -inf) || !(d > 0) || !std::isfinite(m)) {
      RowFacts f;
      f.nan = has_nan != 0;
      f.n_posinf = n_posinf;
      f.n_live = n_valid;
      write_special_row(op == kLogSoftmax, f, row.x, n, row.y);
      fill_masked(op == kLogSoftmax, row.mask, n, row.y);
      return;
    }
    const std::size_t nc = (n + chunk - 1) / chunk;
    if (op == kSoftmax) {
      S scale = S(1.0 / std::max(d, 1.0));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        kern.vscaleexpminusmax(row.x + lo, len, S(m), scale, row.y + lo);
      });
    } else {
      S logd = S(log_sum_in_range(d - 1, std::max(n_valid, 1.0)));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        kern.vlogsoftmaxminusmax(row.x + lo, len, S(m), logd, row.y + lo);
      });
    }
    fill_masked(op == kLogSoftmax, row.mask, n, row.y);
  });
}

template <template <class> class F, class... A>
void dispatch(DType dtype, const KernelTable* t, A&&... a) {
  switch (dtype) {
    case kF32: return F<float>::run(t->f32, a...);
    case kF64: return F<double>::run(t->f64, a...);
    case kF16: return F<f16_t>::run(t->f16, a...);
    case kBF16: return F<bf16_t>::run(t->bf16, a...);
  }
  throw std::invalid_argument("bad dtype code");
}

template <class T> struct ComputeFn {
  template <class K> static void run(const K& k, Op op, Alg alg, const Problem& P, const Runner& r) {
    compute_rows<T>(op, alg, P, k, r);
  }
};
template <class T> struct ComputeTemperatureFn {
  template <class K>
  static void run(const K& k, Op op, Alg alg, const Problem& P, const Runner& r, const Temperature* t) {
    compute_rows<T>(op, alg, P, k, r, t);
  }
};
template <class T> struct AccumulateFn {
  template <class K> static void run(const K& k, const Problem& P, double* acc, const Runner& r) {
    accumulate_rows<T>(P, k, acc, r);
  }
};
template <class T> struct FinishFn {
  template <class K> static void run(const K& k, Op op, const Problem& P, const double* acc, const Runner& r) {
    finish_rows<T>(op, P, k, acc, r);
  }
};

}  // namespace

void check_dtype(DType dtype) {
  if (dtype < kF32 || dtype > kBF16) throw std::invalid_argument("bad dtype code");
}

std::size_t item_size(DType dtype) {
  static const std::size_t kItemSize[] = {4, 8, 2, 2};
  check_dtype(dtype);
  return kItemSize[dtype];
}

void compute(Op op, Alg alg, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
             void* y, const Runner& runner, const std::ptrdiff_t* y_strides) {
  if (op < kSoftmax || op > kLogSumExp || alg < kThreePass || alg > kTwoPass) throw std::invalid_argument("bad op/alg code");
  check_dtype(dtype);
  if (y_strides && op == kLogSumExp) throw std::invalid_argument("logsumexp's output is C-contiguous");
  Problem P = make_problem(dtype, x, reduced, where, y, op == kLogSumExp ? Out::kScalar : Out::kRow,
                           std::ptrdiff_t(item_size(dtype)), y_strides);
  if (P.rows == 0 || P.n == 0) return;
  dispatch<ComputeFn>(dtype, current_table(), op, alg, P, runner);
}

void compute_contiguous_rows(Op op, Alg alg, DType dtype, const void* x, std::ptrdiff_t x_row_stride, void* y,
                             std::ptrdiff_t y_row_stride, std::size_t rows, std::size_t n, const Runner& runner) {
  if (op < kSoftmax || op > kLogSumExp || alg < kThreePass || alg > kTwoPass) throw std::invalid_argument("bad op/alg code");
  check_dtype(dtype);
  if (rows == 0 || n == 0) return;
  const Problem P = contiguous_problem(x, x_row_stride, y, y_row_stride, rows, n,
                                       op == kLogSumExp ? Out::kScalar : Out::kRow);
  dispatch<ComputeFn>(dtype, current_table(), op, alg, P, runner);
}

void compute_temperature(Op op, Alg alg, DType dtype, const Strided& x, const std::vector<bool>& reduced,
                         const Strided& where, const Temperature& temperature, void* y, const Runner& runner,
                         const std::ptrdiff_t* y_strides) {
  if (temperature.mode == Temperature::kNone) return compute(op, alg, dtype, x, reduced, where, y, runner, y_strides);
  if (op < kSoftmax || op > kLogSumExp || alg < kThreePass || alg > kTwoPass) throw std::invalid_argument("bad op/alg code");
  if (temperature.mode < Temperature::kNone || temperature.mode > Temperature::kAdaptive)
    throw std::invalid_argument("bad temperature mode");
  if (temperature.mode == Temperature::kPerRow && temperature.per_row == nullptr)
    throw std::invalid_argument("per-row temperature without its array");
  if (temperature.mode == Temperature::kScalar && !(temperature.value > 0))
    throw std::invalid_argument("temperature must be > 0");
  check_dtype(dtype);
  if (y_strides && op == kLogSumExp) throw std::invalid_argument("logsumexp's output is C-contiguous");
  Problem P = make_problem(dtype, x, reduced, where, y, op == kLogSumExp ? Out::kScalar : Out::kRow,
                           std::ptrdiff_t(item_size(dtype)), y_strides);
  if (P.rows == 0 || P.n == 0) return;
  dispatch<ComputeTemperatureFn>(dtype, current_table(), op, alg, P, runner, &temperature);
}

void accumulate(DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where, double* acc,
                const Runner& runner) {
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, nullptr, Out::kNone, 0);
  if (P.rows == 0) return;
  if (P.n == 0) {
    const double inf = std::numeric_limits<double>::infinity();
    for (std::size_t r = 0; r < P.rows; ++r) {
      double* a = acc + kAccSize * r;
      a[0] = -inf; a[1] = a[2] = a[3] = a[4] = 0;
    }
    return;
  }
  dispatch<AccumulateFn>(dtype, current_table(), P, acc, runner);
}

void finish(Op op, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
            const double* acc, void* y, const Runner& runner) {
  if (op != kSoftmax && op != kLogSoftmax) throw std::invalid_argument("finish: op must be softmax or log_softmax");
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, y, Out::kRow, 0);
  if (P.rows == 0 || P.n == 0) return;
  dispatch<FinishFn>(dtype, current_table(), op, P, acc, runner);
}

}  // namespace driver
}  // namespace softmaxlib
