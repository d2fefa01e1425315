// The driver of the softmax family (driver_family.h): fused softmax + top-k
// and StableMax, over the same row walker (layout.h), chunking, merges
// (accumulators.h) and special-row contract (special_rows.h) as driver.cc.
// Compiled for the baseline ISA.
#include "driver_family.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "accumulators.h"
#include "conversions.h"
#include "family_table.h"
#include "isa.h"
#include "layout.h"
#include "special_rows.h"
#include "topk_order.h"

namespace softmaxlib {
namespace driver {
namespace {

// ---------------------------------------------------------------------------
// Fused softmax + top-k.

template <class T>
void topk_rows(const Problem& P, const FamilyKernels<T, typename ComputeType<T>::type>& fk, std::size_t k,
               T* values, std::int64_t* indices, const Runner& runner) {
  using S = typename ComputeType<T>::type;
  const std::size_t n = P.n, chunk = P.chunk, nc = (n + chunk - 1) / chunk;
  const double inf = std::numeric_limits<double>::infinity(), qnan = std::numeric_limits<double>::quiet_NaN();
  // Room for k + k + 32: a cut every >= k + 32 candidates keeps the selection
  // O(1) per candidate, and k = 1 does not cut at every second one.
  const std::size_t cap = 2 * k + 32;
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>& sc, const ChunkRunner& run) {
    thread_local std::vector<TopKEntry<S>> buf;
    T* vout = values + row.index * k;
    std::int64_t* iout = indices + row.index * k;
    std::size_t count = 0;
    sc.onl.assign(nc, OnlineAccD{-inf, 0});
    if (row.live > 0) {
      const int nthreads = run.runner == nullptr ? 1 : run.runner->threads();
      const std::size_t groups = nc < 4 ? 1 : std::min<std::size_t>(nc, std::size_t(std::max(1, nthreads)));
      buf.resize(groups * cap);
      // Each group of consecutive chunks is one sequential scan with its own
      // running top-k; the top k of a row is unique (a strict total order),
      // so how the chunks are grouped never changes the result, and the
      // (m, d) of each chunk is merged in a fixed tree below.
      std::vector<std::size_t> counts(groups, 0);
      TopKEntry<S>* base = buf.data();
      auto scan_group = [&](std::size_t g) {
        TopKState<S> st{base + g * cap, cap, k, 0, -std::numeric_limits<S>::infinity()};
        for (std::size_t c = g * nc / groups; c < (g + 1) * nc / groups; ++c) {
          std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
          auto a = fk.ronlineexptopk(row.x + lo, len, std::int64_t(lo), &st);
          sc.onl[c] = OnlineAccD{double(a.m), double(a.d)};
        }
        fk.topk_compact(&st);
        counts[g] = st.count;
      };
      if (groups == 1) scan_group(0);
      else parallel_for(*run.runner, groups, 1, [&](std::size_t g0, std::size_t g1) { for (std::size_t g = g0; g < g1; ++g) scan_group(g); });
      for (std::size_t g = 0; g < groups; ++g) {
        std::copy(base + g * cap, base + g * cap + counts[g], base + count);
        count += counts[g];
      }
      if (count > k) {
        std::nth_element(base, base + (k - 1), base + count, TopKOrder());
        count = k;
      }
      std::sort(base, base + count, TopKOrder());
    }
    // The row's status: the online (m, d), or a scalar rescan for rows with
    // NaN or +inf (the kernels' d is NaN there).
    RowScan st;  // facts, m, d
    if (row.live > 0) {
      OnlineAccD o = merge_online_tree(sc.onl.data(), nc);
      if (std::isfinite(o.m) && std::isfinite(o.d)) {
        if (o.d > 0) { st.m = o.m; st.d = o.d; }  // else all -inf
      } else {
        st = rescan_row(row.x, n, /*with_sum=*/true);
      }
    }
    const bool nan = st.facts.nan;
    const bool special = nan || st.facts.n_posinf > 0 || !(st.d > 0);
    // softmax(x, where) at an unmasked entry of logit v.
    auto prob = [&](double v) {
      if (special) return special_entry(/*log=*/false, st.facts, v);
      return std::exp(v - st.m) / st.d;
    };
    if (nan) {
      // NaN row: every value NaN, and k distinct indices (the first k).
      for (std::size_t j = 0; j < k; ++j) {
        iout[j] = std::int64_t(j);
        vout[j] = from_double<T>(qnan);
      }
      count = k;
    }
    for (std::size_t j = 0; j < count && !nan; ++j) {
      iout[j] = buf[j].i;
      vout[j] = from_double<T>(prob(double(buf[j].v)));
    }
    // Fewer than k entries above -inf: then every one of them is a candidate,
    // and the rest are the unmasked -inf (or NaN) entries by index, then the
    // masked ones by index (value 0).
    for (int pass = 0; pass < 2 && count < k; ++pass) {
      for (std::size_t i = 0; i < n && count < k; ++i) {
        const bool keep = row.mask == nullptr || row.mask[i];
        if (keep != (pass == 0)) continue;
        double v = to_double(row.x[i]);
        if (keep && v > -inf) continue;  // a candidate already
        iout[count] = std::int64_t(i);
        vout[count] = from_double<T>(nan ? qnan : keep ? prob(v) : 0.0);
        ++count;
      }
    }
    // The buffer is reused by the thread's next rows; a huge one (k near a
    // long row's length) is given back rather than kept for the process's life.
    if (buf.capacity() > (std::size_t(1) << 18)) std::vector<TopKEntry<S>>().swap(buf);
  });
}

// ---------------------------------------------------------------------------
// StableMax.

// e with s(max) * 2^-e in [1, 2), clamped so that 2^e and 2^-e are normal.
template <class S>
int stablemax_exponent(double m) {
  constexpr int lim = std::numeric_limits<S>::max_exponent - 2;  // 126, 1022
  if (!(m > -std::numeric_limits<double>::infinity())) return -lim;  // all -inf: any e
  double M = m >= 0 ? m + 1.0 : 1.0 / (1.0 - m);
  int e = M > 0 ? std::ilogb(M) : -lim;
  return std::max(-lim, std::min(lim, e));
}

template <class T>
void stablemax_rows(StableMaxOp op, const Problem& P, const Kernels<T, typename ComputeType<T>::type>& k,
                    const FamilyKernels<T, typename ComputeType<T>::type>& fk, const Runner& runner) {
  using S = typename ComputeType<T>::type;
  const std::size_t n = P.n, chunk = P.chunk, nc = (n + chunk - 1) / chunk;
  const double inf = std::numeric_limits<double>::infinity(), qnan = std::numeric_limits<double>::quiet_NaN();
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>& sc, const ChunkRunner& run) {
    if (row.mask && row.live == 0) {
      fill_masked(op == kLogStableMax, row.mask, n, row.y);
      return;
    }
    // Pass 1, per chunk: its max (from L1 afterwards: the chunk is re-read by
    // the sum right away) picks the chunk's scale 2^-e; the scaled sums are
    // merged exactly (powers of two) in double.
    sc.exts.assign(nc, ExtAccD{0, 0});
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
      double mc = double(k.rmax(row.x + lo, len));
      if (mc != mc || mc == inf) {
        sc.exts[c] = ExtAccD{qnan, mc};
        return;
      }
      int e = stablemax_exponent<S>(mc);
      sc.exts[c] = ExtAccD{double(fk.raddstablemax(row.x + lo, len, S(std::ldexp(1.0, e)), S(std::ldexp(1.0, -e)))),
                           double(e)};
    });
    double E = -inf;
    bool special = false;
    for (const auto& a : sc.exts) {
      special = special || a.v != a.v || !std::isfinite(a.e);
      E = std::max(E, a.e);
    }
    double ss = 0;
    if (!special) {
      sc.sums.resize(nc);
      for (std::size_t c = 0; c < nc; ++c) sc.sums[c] = std::ldexp(sc.exts[c].v, int(sc.exts[c].e - E));
      ss = merge_sum(sc.sums.data(), nc);
      special = !std::isfinite(ss) || !(ss > 0);
    }
    if (special) {
      // NaN row, +inf entries sharing the mass, or every entry -inf (0/0).
      write_special_row(op == kLogStableMax, rescan_row(row.x, n, /*with_sum=*/false).facts, row.x, n, row.y);
      fill_masked(op == kLogStableMax, row.mask, n, row.y);
      return;
    }
    const int e = int(E);
    if (op == kStableMax) {
      const S p = S(std::ldexp(1.0, e)), q = S(std::ldexp(1.0, -e)), ssS = S(ss), inv = S(1.0 / ss);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        fk.vstablemax(row.x + lo, len, p, q, ssS, inv, row.y + lo);
      });
    } else {
      // log s(x) - log S in double, as log(s 2^-e) - log(ss): both terms are
      // O(1) for the entries near the max, so nothing large cancels (log S
      // itself can be ~709). Where s 2^-e leaves the normal range, the
      // result is far below 0 and log s - log S has nothing to cancel.
      const double log_ss = std::log(ss), log_s = log_ss + double(e) * 0x1.62e42fefa39efp-1;
      const double p = std::ldexp(1.0, e), q = std::ldexp(1.0, -e);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, hi = std::min(n, lo + chunk);
        for (std::size_t i = lo; i < hi; ++i) {
          double v = to_double(row.x[i]), r;
          if (e == 0) {
            r = (v >= 0 ? std::log1p(v) : -std::log1p(-v)) - log_ss;
          } else {
            double t = v >= 0 ? (v + 1) * q : (1 - v) * p;
            if (t >= 0x1p-1000 && t <= 0x1p1000) r = (v >= 0 ? std::log(t) : -std::log(t)) - log_ss;
            else r = (v >= 0 ? std::log1p(v) : -std::log1p(-v)) - log_s;
          }
          row.y[i] = from_double<T>(r);
        }
      });
    }
    fill_masked(op == kLogStableMax, row.mask, n, row.y);
  });
}

}  // namespace

void softmax_topk(DType dtype, const Strided& x, std::size_t axis, std::size_t k, const Strided& where,
                  void* values, std::int64_t* indices, const Runner& runner) {
  check_dtype(dtype);
  const std::size_t nd = x.shape.size();
  if (axis >= nd) throw std::invalid_argument("softmax_topk: axis out of range");
  std::vector<bool> reduced(nd, false);
  reduced[axis] = true;
  Problem P = make_problem(dtype, x, reduced, where, nullptr, Out::kNone, 0);
  if (k < 1 || k > P.n) throw std::invalid_argument("softmax_topk: k must be in [1, x.shape[axis]]");
  if (P.rows == 0) return;
  const FamilyTable* f = current_family_table();
  switch (dtype) {
    case kF32: return topk_rows<float>(P, f->f32, k, static_cast<float*>(values), indices, runner);
    case kF64: return topk_rows<double>(P, f->f64, k, static_cast<double*>(values), indices, runner);
    case kF16: return topk_rows<f16_t>(P, f->f16, k, static_cast<f16_t*>(values), indices, runner);
    case kBF16: return topk_rows<bf16_t>(P, f->bf16, k, static_cast<bf16_t*>(values), indices, runner);
  }
}

void stablemax(StableMaxOp op, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
               void* y, const Runner& runner, const std::ptrdiff_t* y_strides) {
  if (op != kStableMax && op != kLogStableMax) throw std::invalid_argument("stablemax: bad op code");
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, y, Out::kRow, std::ptrdiff_t(item_size(dtype)), y_strides);
  if (P.rows == 0 || P.n == 0) return;
  const KernelTable* t = current_table();
  const FamilyTable* f = current_family_table();
  switch (dtype) {
    case kF32: return stablemax_rows<float>(op, P, t->f32, f->f32, runner);
    case kF64: return stablemax_rows<double>(op, P, t->f64, f->f64, runner);
    case kF16: return stablemax_rows<f16_t>(op, P, t->f16, f->f16, runner);
    case kBF16: return stablemax_rows<bf16_t>(op, P, t->bf16, f->bf16, runner);
  }
}

}  // namespace driver
}  // namespace softmaxlib
