// The backward kernels (backward.h): a walk over the rows of up to five
// operands with their own strides, each row handed to a fused pass pair.
// Rows that are one contiguous run in every operand (float32, float64, no
// mask) are used in place; the others are gathered into thread-local
// buffers in the compute type and dx scattered back. The loops over a row are
// the vector kernels of the running ISA (backward.inc, through the kernel table).
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

// The vector kernels of the running ISA (backward.inc) for the compute type S.
template <class S> const BackwardKernels<S>& vector_kernels();
template <> const BackwardKernels<float>& vector_kernels<float>() { return current_table()->backward_f32; }
template <> const BackwardKernels<double>& vector_kernels<double>() { return current_table()->backward_f64; }

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

// Writes dz into dx and returns sum(z * dz) when want_zdz (else 0). Each op
// reads its row twice (a sum, then the map writing dx); the rows are walked
// one at a time, so the second read finds a row that fits in L2 still there.
template <class S>
double softmax_row(const BackwardKernels<S>& k, const RowIn<S>& r, S* __restrict dx, bool want_zdz) {
  const std::size_t n = r.n;
  const S* __restrict y = r.saved;
  k.vsoftmaxgrad(y, r.g, n, S(k.rdot(r.g, y, n)), dx);
  if (!want_zdz) return 0;
  // z = log(y) up to a per-row constant, which sum dz = 0 cancels; a scalar
  // loop (a vector log is not worth it for the temperature's gradient alone)
  double zdz = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (y[i] > 0) zdz += std::log(double(y[i])) * double(dx[i]);
  return zdz;
}

template <class S>
double log_softmax_row(const BackwardKernels<S>& k, const RowIn<S>& r, S* __restrict dx, bool want_zdz) {
  k.vlogsoftmaxgrad(r.saved, r.g, r.n, S(k.rsum(r.g, r.n)), dx);
  return want_zdz ? k.rdotfinite(r.saved, dx, r.n) : 0;  // z = y up to a constant, as above
}

template <class S>
double logsumexp_row(const BackwardKernels<S>& k, const RowIn<S>& r, S* __restrict dx, S inv_t, bool want_zdz) {
  k.vlogsumexpgrad(r.saved, r.n, inv_t, S(r.lse), S(r.g_row), dx);
  return want_zdz ? double(inv_t) * k.rdotfinite(r.saved, dx, r.n) : 0;
}

template <class S>
double solve_row(const BackwardKernels<S>& k, Op op, const RowIn<S>& in, S* dx, S inv_t, bool want_zdz) {
  switch (op) {
    case kSoftmax: return softmax_row(k, in, dx, want_zdz);
    case kLogSoftmax: return log_softmax_row(k, in, dx, want_zdz);
    case kLogSumExp: return logsumexp_row(k, in, dx, inv_t, want_zdz);
  }
  return 0;
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
  const BackwardKernels<S>& kernels = vector_kernels<S>();
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
      if (live == 0 || inv_t == S(0)) {
        // (T = inf: z = x / T does not move with x, and -inf / inf must not
        // become the NaN the kernels' x * (1 / T) would give)
        std::fill(dx, dx + n, S(0));
      } else {
        zdz = solve_row(kernels, op, in, dx, inv_t, want_zdz);
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
