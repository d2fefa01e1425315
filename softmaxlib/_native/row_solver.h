// One row's solution: op(x) for a contiguous row by each of the four
// algorithms, with or without a temperature, over the ISA unit's kernels.
// The row is cut into chunks (KernelTable::chunk) that the kernels reduce and
// map; their accumulators merge in a fixed tree (accumulators.h). Rows the
// kernels cannot summarise go to the contract's special rows
// (special_rows.h). Compiled into the driver, for the baseline ISA.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include "accumulators.h"
#include "conversions.h"
#include "driver.h"
#include "kernel_table.h"
#include "layout.h"
#include "special_rows.h"

namespace softmaxlib {
namespace driver {

template <class T>
struct RowSolver {
  using S = typename ComputeType<T>::type;
  const Kernels<T, S>& k;
  std::size_t kChunk_;
  Op op;
  Alg alg;

  // Scratch owned by the thread running the row (not shared).
  std::vector<double>* sums;
  std::vector<ExtAccD>* exts;
  std::vector<OnlineAccD>* onl;
  std::vector<S>* reload_buf;
  std::vector<double>* sums2 = nullptr;  // temperature: the adaptive entropy's chunk sums
  // temperature: one T for every row is prepared once per call, not per row
  const ExpScale<S>* shared_sc = nullptr;
  double shared_t = 0;
  bool shared_ok = false;
  // Rows read chunk by chunk where they lie (x is null then): see at().
  const RowReader<T>* reader = nullptr;

  // Entries [lo, lo + len) of the row x.
  const T* at(const T* x, std::size_t lo, std::size_t len) const { return reader ? reader->chunk(lo, len) : x + lo; }
  // The whole row x, for the scalar passes.
  const T* whole(const T* x) const { return reader ? reader->whole() : x; }

  bool prepare(double t, ExpScale<S>* sc) const {
    if (shared_sc != nullptr && t == shared_t) {
      *sc = *shared_sc;
      return shared_ok;
    }
    return k.prepare_temperature(t, sc);
  }

  // The contract's rows that the kernels do not: NaN, +inf present, all -inf.
  void special(const T* x, std::size_t n, T* y, T* lse) const {
    x = whole(x);
    const RowFacts f = rescan_row(x, n, /*with_sum=*/false).facts;
    if (op == kLogSumExp) *lse = from_double<T>(special_logsumexp(f));
    else write_special_row(op == kLogSoftmax, f, x, n, y);
  }

  std::size_t nchunks(std::size_t n) const { return (n + kChunk_ - 1) / kChunk_; }

  // d - 1 for d = sum exp((x - m)/T) (sc null: T = 1), summed again beside the
  // max: the entries equal to m, less one, plus the sum of the others. For
  // rows the max dominates (d < 2), where the max's own 1 swamped the rest of
  // the rounded d and log d near 0 needs log1p of that rest (one more pass,
  // for log_softmax and logsumexp only). m: the row's max, in units of x.
  double beyond_one(const T* x, std::size_t n, double m, const ExpScale<S>* sc, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    std::vector<double> counts(nc, 0.0);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      S count = 0;
      (*sums)[c] = sc ? k.raddexpminusmax_beside_t(at(x, lo, len), len, S(m), sc, &count)
                      : k.raddexpminusmax_beside(at(x, lo, len), len, S(m), &count);
      counts[c] = count;
    });
    const double rest = merge_sum(sums->data(), nc);
    return (merge_sum(counts.data(), nc) - 1) + (sc ? std::ldexp(rest, -sc->shift) : rest);
  }

  // Max-based finishing passes given m and d = sum exp(x - m).
  void finish_maxbased(const T* x, std::size_t n, T* y, T* lse, double m, double d, const ChunkRunner& run) const {
    if (op != kSoftmax) return finish_log(x, n, y, lse, m, d < 2 ? beyond_one(x, n, m, nullptr, run) : d - 1, run);
    std::size_t nc = nchunks(n);
    S scale = S(1.0 / std::max(d, 1.0));
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      k.vscaleexpminusmax(at(x, lo, len), len, S(m), scale, y + lo);
    });
  }

  // logsumexp or log_softmax of a row from its max m and d - 1 (beyond_one).
  void finish_log(const T* x, std::size_t n, T* y, T* lse, double m, double beyond, const ChunkRunner& run) const {
    const double logd = log_sum_in_range(beyond, double(n));
    if (op == kLogSumExp) {
      *lse = from_double<T>(m + logd);
      return;
    }
    std::size_t nc = nchunks(n);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      k.vlogsoftmaxminusmax(at(x, lo, len), len, S(m), S(logd), y + lo);
    });
  }

  double row_max(const T* x, std::size_t n, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = k.rmax(at(x, lo, len), len);
    });
    double m = -std::numeric_limits<double>::infinity();
    for (double v : *sums) { if (v != v) return v; m = std::max(m, v); }
    return m;
  }

  void three_pass(const T* x, std::size_t n, T* y, T* lse, bool reload, const ChunkRunner& run) const {
    double m = row_max(x, n, run);
    if (!std::isfinite(m)) return special(x, n, y, lse);
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    if (reload && op == kSoftmax) {
      return reload_softmax(n, nc, y, run, [&](std::size_t lo, std::size_t len, S* out) {
        return k.raddstoreexpminusmax(at(x, lo, len), len, S(m), out);
      });
    }
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = k.raddexpminusmax(at(x, lo, len), len, S(m));
    });
    finish_maxbased(x, n, y, lse, m, merge_sum(sums->data(), nc), run);
  }

  // Softmax of a row whose exps are stored once and rescaled: in y itself when it
  // has the compute type, else in a float scratch row (never rounded to 16 bits
  // twice). store(lo, len, out) writes the chunk [lo, lo + len)'s exps to out and
  // returns their sum; sums holds nc zeros.
  template <class Store>
  void reload_softmax(std::size_t n, std::size_t nc, T* y, const ChunkRunner& run, Store store) const {
    S* buf;
    if constexpr (std::is_same_v<T, S>) buf = y;
    else { reload_buf->resize(n); buf = reload_buf->data(); }
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = store(lo, len, buf + lo);
    });
    S scale = S(1.0 / merge_sum(sums->data(), nc));
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      k.vscale(buf + lo, len, scale, y + lo);
    });
  }

  void online(const T* x, std::size_t n, T* y, T* lse, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    onl->assign(nc, OnlineAccD{0, 0});
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      auto a = k.ronlineexp(at(x, lo, len), len);
      (*onl)[c] = OnlineAccD{double(a.m), double(a.d)};
    });
    OnlineAccD acc = merge_online_tree(onl->data(), nc);
    if (!std::isfinite(acc.m)) return special(x, n, y, lse);
    if (acc.d == 0) acc.m = -std::numeric_limits<double>::infinity();  // all -inf
    if (acc.m == -std::numeric_limits<double>::infinity()) return special(x, n, y, lse);
    finish_maxbased(x, n, y, lse, acc.m, acc.d, run);
  }

  // Two-pass (exponent tracking) of x, or of x / T with T folded into the
  // (p, n) reduction when sc is given (t its temperature). e = round(max x *
  // log2 e) (entries clamped at -2L). A row whose max is beyond +-L (minus a
  // margin), and every row with +-inf or NaN (e or v not finite, or all
  // entries clamped), takes the max-based path (three-pass-reload): exact
  // there (Sterbenz), and it sends the contract's special rows to special().
  void two_pass(const T* x, std::size_t n, T* y, T* lse, const ExpScale<S>* sc, double t,
                const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    exts->assign(nc, ExtAccD{0, 0});
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      const bool sum_only = op == kSoftmax;
      auto a = sc ? (sum_only ? k.raddextexp_nomax_t : k.raddextexp_t)(at(x, lo, len), len, sc)
                  : (sum_only ? k.raddextexp_nomax : k.raddextexp)(at(x, lo, len), len);
      (*exts)[c] = ExtAccD{double(a.v), double(a.e), double(a.m)};
    });
    ExtAccD acc = merge_ext_tree(exts->data(), nc);
    const double limit = std::is_same_v<S, float> ? double(kExtExpLimitF32) : kExtExpLimitF64;
    const double log2e = 0x1.71547652b82fep0;
    if (!(std::fabs(acc.e) < limit * log2e - 2) || !std::isfinite(acc.v)) {
      if (sc) return three_pass_t(x, n, y, lse, t, false, true, run);
      return three_pass(x, n, y, lse, /*reload=*/true, run);
    }
    const double ln2 = 0x1.62e42fefa39efp-1;
    // logsumexp of x (or x / T), held to [max, max + log n] (the rounded v can
    // stray a few ulp out of it)
    const double m = sc ? acc.m / t : acc.m;
    const double lse_d = std::min(std::max(acc.e * ln2 + std::log(acc.v), m), m + std::log(double(n)));
    // Rows the max dominates (d = e^(lse - m) < 2): log d is near 0, and
    // e ln2 + log v holds it to a few ulp of 1, not to its own; they are summed
    // again beside the max and finished max-based (log1p). Elsewhere
    // log d >= log 2 and the (v, e) form is accurate to the condition number.
    if (op != kSoftmax && lse_d - m < 0.75) {
      const double beyond = beyond_one(x, n, acc.m, sc, run);
      if (beyond < 1) {
        if (sc) return finish_log_t(x, n, y, lse, acc.m, beyond, t, *sc, run);
        return finish_log(x, n, y, lse, acc.m, beyond, run);
      }
    }
    if (op == kLogSumExp) {
      *lse = from_double<T>(lse_d);
    } else if (op == kSoftmax) {
      S inv_v = S(1.0 / acc.v);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        if (sc) k.vscaleextexp_t(at(x, lo, len), len, inv_v, S(acc.e), sc, y + lo);
        else k.vscaleextexp(at(x, lo, len), len, inv_v, S(acc.e), y + lo);
      });
    } else {
      S logv = S(std::log(acc.v));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        if (sc) k.vlogsoftmaxextexp_t(at(x, lo, len), len, logv, S(acc.e), S(lse_d), sc, y + lo);
        else k.vlogsoftmaxextexp(at(x, lo, len), len, logv, S(acc.e), S(lse_d), y + lo);
      });
    }
  }

  // ------------------------------------------------------------- temperature
  // op(x / T) for one row, T > 0 (finite or +inf), or adaptive. A finite T
  // keeps +-inf and NaN where they are, so special() serves the same rows.
  // Passes over x: as without a temperature (three-pass 3, three-pass-reload
  // 2 + a rescale of y, online 2 (softmax, log_softmax) or 1 (logsumexp),
  // two-pass 2 or 1, T folded into its (p, n) reduction). Adaptive: max, then d and S1 = sum e^(x-m)(x-m) in one pass,
  // then beta and the max-based passes of beta*x (reload: 3 reads of x and a
  // rescale of y; three-pass: 4 reads; logsumexp: 3 reads).
  void solve_t(const T* x, std::size_t n, T* y, T* lse, double t, bool adaptive, const ChunkRunner& run) const {
    const double inf = std::numeric_limits<double>::infinity();
    if (!adaptive && t == inf) return uniform(x, n, y, lse);
    if (!adaptive && !(t > 0)) {
      // Unvalidated input (a traced JAX array): NaN, as the reference gives.
      const T qnan = from_double<T>(std::numeric_limits<double>::quiet_NaN());
      if (op == kLogSumExp) *lse = qnan;
      else for (std::size_t i = 0; i < n; ++i) y[i] = qnan;
      return;
    }
    std::size_t nc = nchunks(n);
    ExpScale<S> sc;
    if (alg == kOnline && !adaptive) {
      if (!prepare(t, &sc)) return three_pass_t(x, n, y, lse, t, false, false, run);
      onl->assign(nc, OnlineAccD{0, 0});
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        auto a = k.ronlineexp_t(at(x, lo, len), len, sc.inv_t);
        (*onl)[c] = OnlineAccD{double(a.m), double(a.d)};
      });
      OnlineAccD acc = merge_online_tree(onl->data(), nc, double(sc.inv_t));
      if (!std::isfinite(acc.m) || acc.d == 0) return special(x, n, y, lse);
      return finish_maxbased_t(x, n, y, lse, acc.m, acc.d, t, sc, run);
    }
    if (alg == kTwoPass && !adaptive) {
      // The fused form only: T outside its window takes the max-based route.
      if (!prepare(t, &sc) || !sc.fused) return three_pass_t(x, n, y, lse, t, false, true, run);
      return two_pass(x, n, y, lse, &sc, t, run);
    }
    three_pass_t(x, n, y, lse, t, adaptive, alg != kThreePass, run);
  }

  void three_pass_t(const T* x, std::size_t n, T* y, T* lse, double t, bool adaptive, bool reload,
                    const ChunkRunner& run) const {
    double m = row_max(x, n, run);
    if (!std::isfinite(m)) return special(x, n, y, lse);
    std::size_t nc = nchunks(n);
    if (adaptive) t = 1.0 / adaptive_beta(x, n, m, run);
    ExpScale<S> sc;
    if (!prepare(t, &sc)) return scalar_t(x, n, y, lse, m, t);
    sums->assign(nc, 0.0);
    if (reload && op == kSoftmax) {
      // The stored exps are e^((x - m)/T) 2^shift and so is their sum: the shift cancels.
      return reload_softmax(n, nc, y, run, [&](std::size_t lo, std::size_t len, S* out) {
        return k.raddstoreexpminusmax_t(at(x, lo, len), len, S(m), &sc, out);
      });
    }
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = k.raddexpminusmax_t(at(x, lo, len), len, S(m), &sc);
    });
    finish_maxbased_t(x, n, y, lse, m, std::ldexp(merge_sum(sums->data(), nc), -sc.shift), t, sc, run);
  }

  // d: sum exp((x - m)/T) itself (no shift).
  void finish_maxbased_t(const T* x, std::size_t n, T* y, T* lse, double m, double d, double t,
                         const ExpScale<S>& sc, const ChunkRunner& run) const {
    if (op != kSoftmax)
      return finish_log_t(x, n, y, lse, m, d < 2 ? beyond_one(x, n, m, &sc, run) : d - 1, t, sc, run);
    std::size_t nc = nchunks(n);
    S scale = S(std::ldexp(1.0 / std::max(d, 1.0), -sc.shift));  // the kernel's exps carry 2^shift
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      k.vscaleexpminusmax_t(at(x, lo, len), len, S(m), scale, &sc, y + lo);
    });
  }

  // finish_log of x / T (m the max of x).
  void finish_log_t(const T* x, std::size_t n, T* y, T* lse, double m, double beyond, double t,
                    const ExpScale<S>& sc, const ChunkRunner& run) const {
    const double logd = log_sum_in_range(beyond, double(n));
    if (op == kLogSumExp) {
      *lse = from_double<T>(m / t + logd);
      return;
    }
    std::size_t nc = nchunks(n);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      k.vlogsoftmaxminusmax_t(at(x, lo, len), len, S(m), S(logd), sc.inv_t, y + lo);
    });
  }

  // beta = max(1, p(H)) where H > 0.5, else 1; H = log d - S1/d is the exact
  // entropy of softmax(x) (d and S1 relative to the max m, finite here).
  double adaptive_beta(const T* x, std::size_t n, double m, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    sums2->assign(nc, 0.0);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      S s1 = 0;
      (*sums)[c] = k.raddexpminusmax_entropy(at(x, lo, len), len, S(m), &s1);
      (*sums2)[c] = s1;
    });
    double d = merge_sum(sums->data(), nc), s1 = merge_sum(sums2->data(), nc);
    return adaptive_beta_of_entropy(std::log(d) - s1 / d);
  }

  // Temperatures beyond the vector kernels' window (prepare_temperature):
  // scalar, in long double (x - m never overflows there, 1/T is not needed).
  void scalar_t(const T* x, std::size_t n, T* y, T* lse, double m, double t) const {
    x = whole(x);
    using L = long double;
    L d = 0, beyond = -1;  // d - 1 summed beside the max, as in beyond_one
    for (std::size_t i = 0; i < n; ++i) {
      const L e = std::exp((L(to_double(x[i])) - L(m)) / L(t));
      d += e;
      beyond += to_double(x[i]) == m ? L(1) : e;
    }
    const L logd = std::min(std::max(std::log1p(beyond), L(0)), std::log(L(n)));
    if (op == kLogSumExp) { *lse = from_double<T>(double(L(m) / L(t) + logd)); return; }
    for (std::size_t i = 0; i < n; ++i) {
      L z = (L(to_double(x[i])) - L(m)) / L(t);
      y[i] = from_double<T>(double(op == kSoftmax ? std::exp(z) / d : z - logd));
    }
  }

  // T = +inf: uniform over the finite entries; +inf entries, NaN and all -inf
  // rows as special() (the contract's rules hold in the limit).
  void uniform(const T* x, std::size_t n, T* y, T* lse) const {
    x = whole(x);
    const double inf = std::numeric_limits<double>::infinity();
    std::size_t finite = 0;
    bool other = false;
    for (std::size_t i = 0; i < n; ++i) {
      double v = to_double(x[i]);
      if (std::isfinite(v)) ++finite;
      else if (v != -inf) other = true;  // NaN or +inf
    }
    if (other || finite == 0) return special(x, n, y, lse);
    const double c = double(finite);
    if (op == kLogSumExp) { *lse = from_double<T>(std::log(c)); return; }
    const T in = from_double<T>(op == kSoftmax ? 1.0 / c : -std::log(c));
    const T out = from_double<T>(op == kSoftmax ? 0.0 : -inf);
    for (std::size_t i = 0; i < n; ++i) y[i] = std::isfinite(to_double(x[i])) ? in : out;
  }

  // x, y contiguous (y unused for logsumexp, lse unused otherwise).
  void solve(const T* x, std::size_t n, T* y, T* lse, const ChunkRunner& run) const {
    switch (alg) {
      case kThreePass: return three_pass(x, n, y, lse, false, run);
      case kThreePassReload: return three_pass(x, n, y, lse, true, run);
      case kOnline: return online(x, n, y, lse, run);
      case kTwoPass: return two_pass(x, n, y, lse, nullptr, 1.0, run);
    }
  }
};

}  // namespace driver
}  // namespace softmaxlib
