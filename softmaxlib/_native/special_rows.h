// The contract's special rows, written once for every op of the driver:
// softmax, log_softmax, logsumexp, the pieces of a split row (finish), the
// top-k probabilities and StableMax. The kernels handle rows of finite
// entries (and -inf ones); a row with a NaN, a +inf entry, only -inf entries,
// or only masked entries gets its values here:
//   - a NaN in any unmasked entry makes the row NaN (logsumexp NaN);
//   - +inf entries share the row's mass evenly: 1/k each (log: -log k), the
//     others 0 (log: -inf); logsumexp +inf;
//   - every unmasked entry -inf: 0/0, NaN (logsumexp -inf);
//   - every entry masked: the masked value, 0 (log: -inf); logsumexp -inf.
// Rules checked in that order, as _reference applies them.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "conversions.h"
#include "driver.h"

namespace softmaxlib {
namespace driver {

// What the contract needs to know of a row besides its finite entries.
struct RowFacts {
  bool nan = false;       // some unmasked entry is NaN
  double n_posinf = 0;    // unmasked +inf entries
  double n_live = 1;      // unmasked entries (0: fully masked)
};

// The value at an unmasked entry v of a special row (log: log_softmax; its
// StableMax twin follows the same rules).
inline double special_entry(bool log, const RowFacts& f, double v) {
  const double inf = std::numeric_limits<double>::infinity();
  if (f.nan) return std::numeric_limits<double>::quiet_NaN();
  if (f.n_posinf > 0) {
    if (v == inf) return log ? -std::log(f.n_posinf) : 1.0 / f.n_posinf;
    return log ? -inf : 0.0;
  }
  if (f.n_live <= 0) return log ? -inf : 0.0;
  return std::numeric_limits<double>::quiet_NaN();  // all -inf: 0/0
}

// logsumexp of a special row.
inline double special_logsumexp(const RowFacts& f) {
  const double inf = std::numeric_limits<double>::infinity();
  if (f.nan) return std::numeric_limits<double>::quiet_NaN();
  return f.n_posinf > 0 ? inf : -inf;
}

// One scalar pass over a row the kernels could not summarise (their sums are
// NaN when a NaN or +inf is present): the facts, and the max-based (m, d) of
// the finite entries (m = -inf and d = 0 when there are none; d only when
// `with_sum`). Masked entries are -inf in the rows the driver hands out.
struct RowScan {
  RowFacts facts;
  double m = -std::numeric_limits<double>::infinity();
  double d = 0;
};

template <class T>
RowScan rescan_row(const T* x, std::size_t n, bool with_sum) {
  const double inf = std::numeric_limits<double>::infinity();
  RowScan s;
  for (std::size_t i = 0; i < n; ++i) {
    double v = to_double(x[i]);
    if (v != v) s.facts.nan = true;
    else if (v == inf) s.facts.n_posinf += 1;
    else if (v > s.m) s.m = v;
  }
  if (with_sum && s.m > -inf) {
    for (std::size_t i = 0; i < n; ++i) {
      double v = to_double(x[i]);
      if (std::isfinite(v)) s.d += std::exp(v - s.m);
    }
  }
  return s;
}

// Writes a special row: op(x) at each of the n entries of x to y (the caller
// then overwrites the masked ones).
template <class T>
void write_special_row(bool log, const RowFacts& f, const T* x, std::size_t n, T* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = from_double<T>(special_entry(log, f, to_double(x[i])));
}

// The masked entries of a row result: 0 (softmax), -inf (log_softmax). mask
// null: nothing is masked.
template <class T>
void fill_masked(bool log, const unsigned char* mask, std::size_t n, T* y) {
  if (mask == nullptr) return;
  const T fill = from_double<T>(log ? -std::numeric_limits<double>::infinity() : 0.0);
  for (std::size_t j = 0; j < n; ++j) if (!mask[j]) y[j] = fill;
}

}  // namespace driver
}  // namespace softmaxlib
