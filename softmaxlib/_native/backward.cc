// The backward kernels (backward.h): a walk over the rows of up to five
// operands with their own strides, each row handed to a fused pass pair.
// Rows that are one contiguous run in every operand (float32, float64, no
// mask) are used in place; the others are gathered into thread-local
// buffers in the compute type and dx scattered back. The loops are plain
// C++ with several independent accumulators, which the compiler vectorises;
// the exp is the kernels' vector exp of the running ISA.
#include "backward.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "conversions.h"
#include "isa.h"
#include "kernel_table.h"
#include "layout.h"

namespace softmaxlib {
namespace driver {
namespace {

// The operands of a row, by index into the stride arrays.
enum Operand : int { kSaved = 0, kGrad = 1, kLse = 2, kMask = 3, kDx = 4, kOperands = 5 };
using Strides = std::array<std::ptrdiff_t, kOperands>;

struct Walk {
  std::vector<std::ptrdiff_t> batch_shape, red_shape;  // collapsed
  std::vector<Strides> batch, red;
  std::size_t rows = 1, n = 1;
};

// Drops length-1 dims and merges dims contiguous with each other in every operand.
void push_collapsed(std::vector<std::ptrdiff_t>& shape, std::vector<Strides>& st, std::ptrdiff_t ext,
                    const Strides& s) {
  if (ext == 1) return;
  if (!shape.empty()) {
    bool merge = true;
    for (int k = 0; k < kOperands; ++k) merge = merge && st.back()[k] == s[k] * ext;
    if (merge) {
      shape.back() *= ext;
      st.back() = s;
      return;
    }
  }
  shape.push_back(ext);
  st.push_back(s);
}

// Calls f(offsets) for every multi-index of a reduced part, in C order.
template <class F>
void for_each_offset(const std::vector<std::ptrdiff_t>& shape, const std::vector<Strides>& st, F&& f) {
  const std::size_t nd = shape.size();
  Strides off{};
  if (nd == 0) { f(off); return; }
  std::vector<std::ptrdiff_t> idx(nd, 0);
  for (;;) {
    Strides o = off;
    for (std::ptrdiff_t i = 0; i < shape[nd - 1]; ++i) {
      f(o);
      for (int k = 0; k < kOperands; ++k) o[k] += st[nd - 1][k];
    }
    std::size_t d = nd - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < shape[d]) { for (int k = 0; k < kOperands; ++k) off[k] += st[d][k]; break; }
      for (int k = 0; k < kOperands; ++k) off[k] -= st[d][k] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

// sum f(i) in blocks of independent S lanes merged in double (the lanes
// vectorise; the blocks keep each lane's sum short).
template <class S, class F>
double blocked_sum(std::size_t n, F&& f) {
  constexpr std::size_t kLanes = 16, kBlock = 1024;
  double total = 0;
  for (std::size_t lo = 0; lo < n; lo += kBlock) {
    const std::size_t len = std::min(kBlock, n - lo);
    S acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (std::size_t j = 0; j < kLanes; ++j) acc[j] += f(lo + i + j);
    double s = 0;
    for (; i < len; ++i) s += double(f(lo + i));
    for (std::size_t j = 0; j < kLanes; ++j) s += double(acc[j]);
    total += s;
  }
  return total;
}

template <class S>
double dot(const S* __restrict a, const S* __restrict b, std::size_t n) {
  return blocked_sum<S>(n, [&](std::size_t i) { return a[i] * b[i]; });
}

template <class S>
double sum(const S* __restrict a, std::size_t n) {
  return blocked_sum<S>(n, [&](std::size_t i) { return a[i]; });
}

template <class S> void vexp(S* v, std::size_t n);
template <> void vexp<float>(float* v, std::size_t n) { current_table()->exp_f32(v, n, v); }
template <> void vexp<double>(double* v, std::size_t n) { current_table()->exp_f64(v, n, v); }

// One row, contiguous, in the compute type S. keep: null, or a flag per entry.
template <class S>
struct RowIn {
  const S* saved;
  const S* g;       // x-shaped cotangent (softmax, log_softmax)
  double g_row;     // logsumexp's cotangent
  double lse;       // logsumexp's output
  const unsigned char* keep;
  std::size_t n;
};

// Writes dz into dx and returns sum(z * dz) when want_zdz (else 0).
template <class S>
double softmax_row(const RowIn<S>& r, S* __restrict dx, bool want_zdz) {
  const std::size_t n = r.n;
  const S* __restrict y = r.saved;
  const S* __restrict g = r.g;
  const S s = S(dot(g, y, n));
  for (std::size_t i = 0; i < n; ++i) dx[i] = y[i] * (g[i] - s);
  if (!want_zdz) return 0;
  double zdz = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (y[i] > 0) zdz += std::log(double(y[i])) * double(dx[i]);
  return zdz;
}

// The exps go through a block buffer that stays in L1, so that each pass
// pair reads the row twice and writes dx once.
constexpr std::size_t kExpBlock = 512;

template <class S>
double log_softmax_row(const RowIn<S>& r, S* __restrict dx, bool want_zdz) {
  const std::size_t n = r.n;
  const S* __restrict y = r.saved;
  const S* __restrict g = r.g;
  const S sg = S(sum(g, n));
  alignas(64) S e[kExpBlock];
  bool near_zero = false;
  for (std::size_t lo = 0; lo < n; lo += kExpBlock) {
    const std::size_t len = std::min(kExpBlock, n - lo);
    std::copy(y + lo, y + lo + len, e);
    vexp(e, len);
    unsigned above = 0;  // an integer reduction, which vectorises (a float max would not)
    for (std::size_t i = 0; i < len; ++i) {
      dx[lo + i] = g[lo + i] - e[i] * sg;
      above |= unsigned(y[lo + i] > S(-0.5));
    }
    near_zero = near_zero || above != 0;
  }
  // g - p sg has no cancellation in p = exp(y) below y = -1/2; the few
  // entries above (at most one probability over 0.6) take (g - sg) - expm1(y) sg,
  // where 1 - p cancels (a confident row's gradient would round to 0).
  if (near_zero)
    for (std::size_t i = 0; i < n; ++i)
      if (y[i] > S(-0.5)) dx[i] = (g[i] - sg) - S(std::expm1(y[i])) * sg;
  if (!want_zdz) return 0;
  double zdz = 0;
  const S ninf = -std::numeric_limits<S>::infinity();
  for (std::size_t i = 0; i < n; ++i)
    if (y[i] > ninf) zdz += double(y[i]) * double(dx[i]);
  return zdz;
}

template <class S>
double logsumexp_row(const RowIn<S>& r, S* __restrict dx, S inv_t, bool want_zdz) {
  const std::size_t n = r.n;
  const S* __restrict x = r.saved;
  const S l = S(r.lse), g = S(r.g_row);
  alignas(64) S e[kExpBlock];
  for (std::size_t lo = 0; lo < n; lo += kExpBlock) {
    const std::size_t len = std::min(kExpBlock, n - lo);
    for (std::size_t i = 0; i < len; ++i) e[i] = x[lo + i] * inv_t - l;
    vexp(e, len);
    for (std::size_t i = 0; i < len; ++i) dx[lo + i] = g * e[i];
  }
  if (!want_zdz) return 0;
  double zdz = 0;
  const S ninf = -std::numeric_limits<S>::infinity();
  for (std::size_t i = 0; i < n; ++i)
    if (x[i] > ninf) zdz += double(x[i]) * double(inv_t) * double(dx[i]);
  return zdz;
}

// One row of any op, compiled for each ISA: the row functions above are
// inlined into a copy per target (flatten), and the walk picks the copy of the
// ISA the forward kernels run (current_table()), so the loops use its vectors.
template <class S>
inline double solve_row(Op op, const RowIn<S>& in, S* dx, S inv_t, bool want_zdz) {
  switch (op) {
    case kSoftmax: return softmax_row(in, dx, want_zdz);
    case kLogSoftmax: return log_softmax_row(in, dx, want_zdz);
    case kLogSumExp: return logsumexp_row(in, dx, inv_t, want_zdz);
  }
  return 0;
}

template <class S>
using RowFn = double (*)(Op, const RowIn<S>&, S*, S, bool);

template <class S>
__attribute__((flatten)) double solve_row_baseline(Op op, const RowIn<S>& in, S* dx, S inv_t, bool z) {
  return solve_row(op, in, dx, inv_t, z);
}
#if defined(SOFTMAXLIB_X86)
template <class S>
__attribute__((flatten, target("avx2,fma"))) double solve_row_avx2(Op op, const RowIn<S>& in, S* dx, S inv_t, bool z) {
  return solve_row(op, in, dx, inv_t, z);
}
template <class S>
__attribute__((flatten, target("avx512f,avx2,fma"))) double solve_row_avx512f(Op op, const RowIn<S>& in, S* dx, S inv_t,
                                                                              bool z) {
  return solve_row(op, in, dx, inv_t, z);
}
#endif

template <class S>
RowFn<S> row_solver_for_isa() {
#if defined(SOFTMAXLIB_X86)
  const std::string isa = current_table()->isa;
  if (isa == "avx512f") return &solve_row_avx512f<S>;
  if (isa == "avx2") return &solve_row_avx2<S>;
#endif
  return &solve_row_baseline<S>;
}

template <class T> struct Compute { using type = float; };
template <> struct Compute<double> { using type = double; };

template <class T>
void backward_rows(Op op, const Walk& W, const char* const base[kOperands], const Temperature& temp,
                   double* dtemperature, const Runner& runner) {
  using S = typename Compute<T>::type;
  constexpr bool kInPlace = std::is_same<T, S>::value;
  const std::size_t n = W.n;
  const std::ptrdiff_t item = sizeof(T);
  const bool has_mask = base[kMask] != nullptr;
  const bool row_grad = op == kLogSumExp;
  const RowFn<S> solve = row_solver_for_isa<S>();
  bool contiguous = kInPlace && !has_mask;
  if (contiguous && !W.red_shape.empty()) {
    const Strides& s = W.red[0];
    contiguous = W.red_shape.size() == 1 && s[kSaved] == item && s[kDx] == item && (row_grad || s[kGrad] == item);
  }
  auto load = [](const char* p) { T v; std::memcpy(&v, p, sizeof(T)); return S(to_double(v)); };

  auto do_rows = [&](std::size_t r0, std::size_t r1) {
    std::vector<S> saved_buf, g_buf, dx_buf;
    std::vector<unsigned char> keep_buf;
    for (std::size_t r = r0; r < r1; ++r) {
      Strides off{};
      for (std::size_t k = W.batch_shape.size(), rem = r; k-- > 0;) {
        const std::ptrdiff_t i = std::ptrdiff_t(rem % std::size_t(W.batch_shape[k]));
        rem /= std::size_t(W.batch_shape[k]);
        for (int o = 0; o < kOperands; ++o) off[o] += i * W.batch[k][o];
      }
      const double t = temp.mode == Temperature::kPerRow ? temp.per_row[r]
                       : temp.mode == Temperature::kScalar ? temp.value : 1.0;
      const S inv_t = S(1.0 / t);
      RowIn<S> in{nullptr, nullptr, 0.0, 0.0, nullptr, n};
      if (row_grad) {
        in.g_row = to_double(*reinterpret_cast<const T*>(base[kGrad] + off[kGrad]));
        in.lse = to_double(*reinterpret_cast<const T*>(base[kLse] + off[kLse]));
      }
      char* dx_row = const_cast<char*>(base[kDx]) + off[kDx];
      S* dx;
      std::size_t live = n;
      if (contiguous) {
        in.saved = reinterpret_cast<const S*>(base[kSaved] + off[kSaved]);
        if (!row_grad) in.g = reinterpret_cast<const S*>(base[kGrad] + off[kGrad]);
        dx = reinterpret_cast<S*>(dx_row);
      } else {
        // Gather; a masked entry becomes one that adds nothing: y = 0 and
        // g = 0 (softmax), y = -inf and g = 0 (log_softmax), x = -inf (logsumexp).
        const S masked_saved = op == kSoftmax ? S(0) : -std::numeric_limits<S>::infinity();
        saved_buf.resize(n);
        if (!row_grad) g_buf.resize(n);
        dx_buf.resize(n);
        if (has_mask) keep_buf.resize(n);
        std::size_t i = 0;
        live = 0;
        for_each_offset(W.red_shape, W.red, [&](const Strides& o) {
          const bool keep = !has_mask || base[kMask][off[kMask] + o[kMask]] != 0;
          if (has_mask) keep_buf[i] = keep;
          live += keep;
          saved_buf[i] = keep ? load(base[kSaved] + off[kSaved] + o[kSaved]) : masked_saved;
          if (!row_grad) g_buf[i] = keep ? load(base[kGrad] + off[kGrad] + o[kGrad]) : S(0);
          ++i;
        });
        in.saved = saved_buf.data();
        in.g = row_grad ? nullptr : g_buf.data();
        in.keep = has_mask ? keep_buf.data() : nullptr;
        dx = dx_buf.data();
      }
      const bool want_zdz = dtemperature != nullptr;
      double zdz = 0;
      if (live == 0) {
        std::fill(dx, dx + n, S(0));
      } else {
        zdz = solve(op, in, dx, inv_t, want_zdz);
        if (inv_t != S(1))
          for (std::size_t i = 0; i < n; ++i) dx[i] *= inv_t;
        if (in.keep)
          for (std::size_t i = 0; i < n; ++i) if (!in.keep[i]) dx[i] = S(0);
      }
      if (dtemperature) dtemperature[r] = live == 0 ? 0.0 : -zdz / t;
      if (contiguous) continue;
      std::size_t i = 0;
      for_each_offset(W.red_shape, W.red, [&](const Strides& o) {
        const T v = from_double<T>(double(dx[i++]));
        std::memcpy(dx_row + o[kDx], &v, sizeof(T));
      });
    }
  };
  constexpr std::size_t kMinParallelElements = std::size_t(1) << 16;
  if (runner.threads() <= 1 || W.rows * n < kMinParallelElements) {
    do_rows(0, W.rows);
  } else {
    const std::size_t grain = std::max<std::size_t>(1, (std::size_t(1) << 15) / std::max<std::size_t>(n, 1));
    parallel_for(runner, W.rows, grain, do_rows);
  }
}

// x-rank strides of a batch-shaped operand: 0 along the reduced axes.
std::vector<std::ptrdiff_t> batch_operand_strides(const Strided& a, const std::vector<bool>& reduced,
                                                  const std::vector<std::ptrdiff_t>& x_shape, const char* what) {
  std::vector<std::ptrdiff_t> full(reduced.size(), 0), bshape;
  for (std::size_t i = 0; i < reduced.size(); ++i) if (!reduced[i]) bshape.push_back(x_shape[i]);
  if (a.shape != bshape || a.strides.size() != bshape.size())
    throw std::invalid_argument(std::string(what) + " must have the batch shape (x's shape without the reduced axes)");
  for (std::size_t i = 0, j = 0; i < reduced.size(); ++i) if (!reduced[i]) full[i] = a.strides[j++];
  return full;
}

}  // namespace

void backward(Op op, DType dtype, const Strided& saved, const Strided& g, const Strided& lse,
              const std::vector<bool>& reduced, const Strided& where, const Temperature& temperature,
              double* dtemperature, void* dx, const std::vector<std::ptrdiff_t>& dx_strides, const Runner& runner) {
  if (op < kSoftmax || op > kLogSumExp) throw std::invalid_argument("bad op code");
  check_dtype(dtype);
  if (temperature.mode == Temperature::kAdaptive)
    throw std::invalid_argument("backward: the adaptive temperature has no backward kernel");
  if (temperature.mode == Temperature::kPerRow && temperature.per_row == nullptr)
    throw std::invalid_argument("per-row temperature without its array");
  const std::vector<std::ptrdiff_t>& shape = saved.shape;
  const std::size_t nd = shape.size();
  if (saved.strides.size() != nd || reduced.size() != nd || dx_strides.size() != nd)
    throw std::invalid_argument("shape, strides and axes disagree");
  if (std::find(reduced.begin(), reduced.end(), true) == reduced.end()) throw std::invalid_argument("no reduced axis");
  if (saved.data == nullptr || g.data == nullptr || dx == nullptr) throw std::invalid_argument("backward: a null operand");
  std::vector<std::ptrdiff_t> gs, ls(nd, 0), ws(nd, 0);
  if (op == kLogSumExp) {
    if (lse.data == nullptr) throw std::invalid_argument("logsumexp's backward needs its output");
    gs = batch_operand_strides(g, reduced, shape, "g");
    ls = batch_operand_strides(lse, reduced, shape, "lse");
  } else {
    if (g.shape != shape || g.strides.size() != nd) throw std::invalid_argument("g must have the output's shape");
    gs = g.strides;
  }
  if (where.data && (where.shape != shape || where.strides.size() != nd))
    throw std::invalid_argument("where must be a bool array of x's shape");
  if (where.data) ws = where.strides;
  Walk W;
  for (std::size_t i = 0; i < nd; ++i) {
    if (shape[i] < 0) throw std::invalid_argument("negative extent");
    const Strides s{saved.strides[i], gs[i], ls[i], ws[i], dx_strides[i]};
    if (reduced[i]) { push_collapsed(W.red_shape, W.red, shape[i], s); W.n *= std::size_t(shape[i]); }
    else { push_collapsed(W.batch_shape, W.batch, shape[i], s); W.rows *= std::size_t(shape[i]); }
  }
  if (W.rows == 0) return;
  if (W.n == 0) {
    if (dtemperature) std::fill(dtemperature, dtemperature + W.rows, 0.0);
    return;
  }
  const char* base[kOperands] = {static_cast<const char*>(saved.data), static_cast<const char*>(g.data),
                                 static_cast<const char*>(lse.data), static_cast<const char*>(where.data),
                                 static_cast<const char*>(dx)};
  switch (dtype) {
    case kF32: return backward_rows<float>(op, W, base, temperature, dtemperature, runner);
    case kF64: return backward_rows<double>(op, W, base, temperature, dtemperature, runner);
    case kF16: return backward_rows<f16_t>(op, W, base, temperature, dtemperature, runner);
    case kBF16: return backward_rows<bf16_t>(op, W, base, temperature, dtemperature, runner);
  }
}

}  // namespace driver
}  // namespace softmaxlib
