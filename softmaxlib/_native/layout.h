// The layout walker: how the driver sees an array. x (and where, and y) are
// split into batch dims and reduced dims with arbitrary byte strides; dims
// that are contiguous with each other are merged, length-1 dims dropped. A
// row is the reduced part at one batch index: handed to the kernels in place
// when it is one contiguous run, else gathered (masked entries replaced by
// -inf): into the row of y itself when that is one contiguous run (the kernels
// then work in place, as with out=x, and no buffer of the row's size is
// needed), else into a thread-local buffer whose result is scattered back;
// a logsumexp row is read chunk by chunk (RowReader). A mask row that is one
// run of bytes is read where it lies. Entries in the other byte order are
// swapped as they are gathered. Rows go to the
// runner's threads, or, for a few long rows, their chunks do.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <limits>
#include <vector>

#include "accumulators.h"
#include "conversions.h"
#include "driver.h"
#include "round_to_nearest.h"
#include "thread_pool.h"

namespace softmaxlib {
namespace driver {

// Throws std::invalid_argument unless dtype is one of DType's codes.
void check_dtype(DType dtype);

// Runs fn(c) for every chunk c in [0, nchunks): inline, or on the pool for
// long rows when the caller allows it.
struct ChunkRunner {
  const Runner* runner;  // null: inline
  template <class F> void operator()(std::size_t nchunks, F&& fn) const {
    if (runner == nullptr || nchunks < 4) {
      for (std::size_t c = 0; c < nchunks; ++c) fn(c);
    } else {
      parallel_for(*runner, nchunks, 1, [&](std::size_t lo, std::size_t hi) { for (std::size_t c = lo; c < hi; ++c) fn(c); });
    }
  }
};

struct Dims {
  std::vector<std::ptrdiff_t> shape, xs, ys, ws;  // strides in bytes
};

// Iterates the multi-index of `shape`, calling f(offset_x, offset_y, offset_w).
template <class F>
void for_each_index(const Dims& d, F&& f) {
  std::size_t nd = d.shape.size();
  if (nd == 0) { f(0, 0, 0); return; }
  std::vector<std::ptrdiff_t> idx(nd, 0);
  std::ptrdiff_t ox = 0, oy = 0, ow = 0;
  for (;;) {
    // innermost dimension as a tight loop
    std::ptrdiff_t n = d.shape[nd - 1], sx = d.xs[nd - 1], sy = d.ys[nd - 1], sw = d.ws[nd - 1];
    for (std::ptrdiff_t i = 0; i < n; ++i) f(ox + i * sx, oy + i * sy, ow + i * sw);
    std::size_t k = nd - 1;
    for (;;) {
      if (k == 0) return;
      --k;
      if (++idx[k] < d.shape[k]) { ox += d.xs[k]; oy += d.ys[k]; ow += d.ws[k]; break; }
      ox -= d.xs[k] * (d.shape[k] - 1); oy -= d.ys[k] * (d.shape[k] - 1); ow -= d.ws[k] * (d.shape[k] - 1);
      idx[k] = 0;
    }
  }
}

// Drops length-1 dims and merges dims that are contiguous with each other in
// x, y and w at once.
Dims collapse(const Dims& in);

// What a row writes: a row of y (softmax, log_softmax, finish), one value of
// y (logsumexp), or nothing in y (accumulate: the accumulator by row index).
enum class Out { kRow, kScalar, kNone };

struct Problem {
  const char* x;
  char* y;
  const char* w;  // mask (bool bytes) or nullptr
  Dims batch, red;  // collapsed; batch ys are y's strides (scalar outputs: the output's)
  std::size_t rows, n;
  std::size_t chunk;
  Out out;
  bool contiguous;  // every row is contiguous in x (and y for Out::kRow), and unmasked
  bool y_row_run = false;  // Out::kRow and every row is one contiguous run in y (in the rows' C order)
  bool w_row_run = false;  // a mask is given and every row of it is one contiguous run of bytes
  bool x_swapped = false;  // x's entries are in the other byte order (Strided::byte_swapped)
  // At most one batch dim (after collapsing): row r starts r * row_xs bytes into
  // x (row_ys into y, row_ws into the mask), with no unravelling of r.
  bool one_batch_dim = false;
  std::ptrdiff_t row_xs = 0, row_ys = 0, row_ws = 0;
};

// The entry of x at byte address p, in this machine's byte order.
template <class T>
T load_entry(const char* p, bool swapped) {
  using Bits = std::conditional_t<sizeof(T) == 8, std::uint64_t,
                                  std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint16_t>>;
  static_assert(sizeof(Bits) == sizeof(T), "entries are 2, 4 or 8 bytes");
  Bits b;
  std::memcpy(&b, p, sizeof(T));
  if (swapped) {  // byte k becomes byte sizeof(T) - 1 - k
    Bits r = 0;
    for (std::size_t k = 0; k < sizeof(T); ++k) r = Bits((r << 8) | ((b >> (8 * k)) & 0xff));
    b = r;
  }
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// Splits x (and where) into batch and reduced dims. y_batch_item: the byte
// stride of one batch row in a C-contiguous output of rows (0: y is x-shaped).
// y_strides (Out::kRow only): y's byte strides, x's rank; null: C-contiguous.
Problem make_problem(DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where, void* y,
                     Out out, std::ptrdiff_t y_batch_item, const std::ptrdiff_t* y_strides = nullptr);

// The Problem of `rows` unmasked rows that are each one contiguous run of n
// elements, row r at x + r * row_xs bytes and its output at y + r * row_ys
// (make_problem's result for such a layout, without its walk over the dims).
Problem contiguous_problem(const void* x, std::ptrdiff_t row_xs, void* y, std::ptrdiff_t row_ys, std::size_t rows,
                           std::size_t n, Out out);

// When a call goes to more than one thread: from `min_elements` elements in all
// (rows spread over the threads), and for a few rows of at least `min_split_row`
// elements, their chunks. Below, one thread is faster: waking the pool costs tens
// of microseconds, and a row split over threads wakes it once per pass (measured
// with benchmarks/threads.py, 1 vs 2 threads; layout.cc has the numbers).
struct ParallelThresholds {
  std::size_t min_elements, min_split_row;
};
ParallelThresholds parallel_thresholds();
// For benchmarks and tests (softmaxlib._kernels._set_parallel_thresholds): other
// split points; the results are the same bits whatever they are.
void set_parallel_thresholds(ParallelThresholds limits);
ParallelThresholds default_parallel_thresholds();

template <class T>
struct ThreadScratch {
  using S = typename ComputeType<T>::type;
  std::vector<double> sums;
  std::vector<ExtAccD> exts;
  std::vector<OnlineAccD> onl;
  std::vector<S> reload_buf;
  std::vector<double> sums2;
  std::vector<T> xrow, yrow;
  std::vector<unsigned char> mrow;
};

// A row that is read chunk by chunk where it lies, for the rows that would
// otherwise be gathered whole into a buffer of their size (logsumexp has no
// output row to gather into). chunk(lo, len) gathers entries [lo, lo + len)
// in the row's C order, masked ones as -inf, into a buffer of the calling
// thread (valid until that thread's next call; a chunk is a few KiB); whole()
// gathers all n into `whole_buf`, for the rare rows a scalar pass must see
// at once (special values, extreme temperatures).
template <class T>
struct RowReader {
  const Problem* P;
  std::ptrdiff_t ox, ow;  // the row's byte offsets in x and the mask
  std::vector<T>* whole_buf;

  const T* chunk(std::size_t lo, std::size_t len) const {
    thread_local std::vector<T> buf;
    buf.resize(len);
    read(lo, len, buf.data());
    return buf.data();
  }
  const T* whole() const {
    whole_buf->resize(P->n);
    read(0, P->n, whole_buf->data());
    return whole_buf->data();
  }
  void read(std::size_t lo, std::size_t len, T* out) const {
    const Dims& d = P->red;
    const std::size_t nd = d.shape.size();
    const T ninf = from_double<T>(-std::numeric_limits<double>::infinity());
    const bool swapped = P->x_swapped;
    if (nd == 0) {  // a row of one entry
      out[0] = P->w && P->w[ow] == 0 ? ninf : load_entry<T>(P->x + ox, swapped);
      return;
    }
    std::vector<std::ptrdiff_t> idx(nd);
    std::ptrdiff_t a = ox, c = ow;
    std::size_t rest = lo;
    for (std::size_t k = nd; k-- > 0;) {
      idx[k] = std::ptrdiff_t(rest % std::size_t(d.shape[k]));
      rest /= std::size_t(d.shape[k]);
      a += idx[k] * d.xs[k];
      c += idx[k] * d.ws[k];
    }
    const std::size_t last = nd - 1;
    const std::ptrdiff_t sx = d.xs[last], sw = d.ws[last], inner = d.shape[last];
    for (std::size_t i = 0; i < len;) {
      // The rest of the innermost run as a tight loop, then the carry.
      const std::size_t run = std::min(len - i, std::size_t(inner - idx[last]));
      const char* px = P->x + a;
      const char* pw = P->w ? P->w + c : nullptr;
      for (std::size_t j = 0; j < run; ++j) {
        const T v = load_entry<T>(px + std::ptrdiff_t(j) * sx, swapped);
        out[i + j] = pw != nullptr && pw[std::ptrdiff_t(j) * sw] == 0 ? ninf : v;
      }
      i += run;
      idx[last] += std::ptrdiff_t(run);
      a += std::ptrdiff_t(run) * sx;
      c += std::ptrdiff_t(run) * sw;
      if (idx[last] < inner) continue;
      a -= sx * inner;
      c -= sw * inner;
      idx[last] = 0;
      for (std::size_t k = last; k-- > 0;) {
        a += d.xs[k];
        c += d.ws[k];
        if (++idx[k] < d.shape[k]) break;
        a -= d.xs[k] * d.shape[k];
        c -= d.ws[k] * d.shape[k];
        idx[k] = 0;
      }
    }
  }
};

// One row as the row functions see it: contiguous, or read through `reader`.
template <class T>
struct Row {
  std::size_t index;        // C-order index over the batch dims
  const T* x;               // n entries, masked ones replaced by -inf; null when read through `reader`
  T* y;                     // n entries (Out::kRow), the row's value (Out::kScalar), or null
  const unsigned char* mask;  // n keep flags, or null when unmasked (or read through `reader`)
  std::size_t live;         // unmasked entries
  const RowReader<T>* reader = nullptr;  // Out::kScalar rows that are not contiguous
};

// Walks the rows of P, gathering rows that are strided or masked into
// thread-local buffers and scattering their results back, and calls
// fn(row, scratch, chunk_runner) for each. Rows go to the runner's threads when
// there are many; a few long rows are done one at a time with their chunks
// spread over the threads instead.
template <class T, class Fn>
void for_rows(const Problem& P, const Runner& runner, Fn&& fn) {
  const RoundToNearest nearest;  // this thread's part; parallel_for sets it on the others
  const std::size_t n = P.n;
  const T ninf = from_double<T>(-std::numeric_limits<double>::infinity());

  // Row offsets are found by unravelling the row index over the batch dims.
  auto row_offsets = [&](std::size_t r, std::ptrdiff_t& ox, std::ptrdiff_t& oy, std::ptrdiff_t& ow) {
    if (P.one_batch_dim) {  // the common case (batch dims collapsed): no division per row
      ox = std::ptrdiff_t(r) * P.row_xs, oy = std::ptrdiff_t(r) * P.row_ys, ow = std::ptrdiff_t(r) * P.row_ws;
      return;
    }
    ox = oy = ow = 0;
    for (std::size_t k = P.batch.shape.size(); k-- > 0;) {
      std::ptrdiff_t i = std::ptrdiff_t(r % std::size_t(P.batch.shape[k]));
      r /= std::size_t(P.batch.shape[k]);
      ox += i * P.batch.xs[k]; oy += i * P.batch.ys[k]; ow += i * P.batch.ws[k];
    }
  };

  auto do_rows = [&](std::size_t r0, std::size_t r1, bool chunk_parallel) {
    ThreadScratch<T> sc;
    ChunkRunner run{chunk_parallel ? &runner : nullptr};
    for (std::size_t r = r0; r < r1; ++r) {
      std::ptrdiff_t ox, oy, ow;
      row_offsets(r, ox, oy, ow);
      const T* xr = reinterpret_cast<const T*>(P.x + ox);
      T* yr = P.out == Out::kNone ? nullptr : reinterpret_cast<T*>(P.y + oy);
      if (P.contiguous) {
        fn(Row<T>{r, xr, yr, nullptr, n}, sc, run);
        continue;
      }
      if (P.out == Out::kScalar) {
        // No output row to gather into: the row is read chunk by chunk.
        std::size_t live = n;
        if (P.w) {
          live = 0;
          for_each_index(P.red, [&](std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t c) { live += P.w[ow + c] != 0; });
        }
        const RowReader<T> reader{&P, ox, ow, &sc.xrow};
        fn(Row<T>{r, nullptr, yr, nullptr, live, &reader}, sc, run);
        continue;
      }
      // Gather the row (masked entries become -inf): into y's row when it is
      // one run, else into a thread-local buffer.
      T* xg = yr;
      if (!P.y_row_run) {
        sc.xrow.resize(n);
        xg = sc.xrow.data();
      }
      const bool scatter = P.out == Out::kRow && !P.y_row_run;
      if (scatter) sc.yrow.resize(n);
      const unsigned char* mask = nullptr;
      if (P.w && P.w_row_run) mask = reinterpret_cast<const unsigned char*>(P.w + ow);
      else if (P.w) sc.mrow.resize(n);
      std::size_t i = 0, live = 0;
      for_each_index(P.red, [&](std::ptrdiff_t a, std::ptrdiff_t, std::ptrdiff_t c) {
        T v = load_entry<T>(P.x + ox + a, P.x_swapped);
        if (P.w) {
          unsigned char keep = static_cast<unsigned char>(P.w[ow + c] != 0);
          if (mask == nullptr) sc.mrow[i] = keep;
          live += keep;
          if (!keep) v = ninf;
        }
        xg[i++] = v;
      });
      if (!P.w) live = n;
      else if (mask == nullptr) mask = sc.mrow.data();
      fn(Row<T>{r, xg, scatter ? sc.yrow.data() : yr, mask, live}, sc, run);
      if (!scatter) continue;
      i = 0;
      for_each_index(P.red, [&](std::ptrdiff_t, std::ptrdiff_t b, std::ptrdiff_t) {
        std::memcpy(P.y + oy + b, &sc.yrow[i++], sizeof(T));
      });
    }
  };

  const ParallelThresholds limits = parallel_thresholds();
  const std::size_t total = P.rows * n;
  const int nt = runner.threads();
  if (nt <= 1 || total < limits.min_elements) {
    do_rows(0, P.rows, false);
  } else if (n >= limits.min_split_row && n >= 4 * P.chunk && P.rows < std::size_t(nt) * 2) {
    // Few long rows: one at a time, their chunks spread over the threads.
    do_rows(0, P.rows, true);
  } else {
    // Many rows (or rows too short to split): spread them, ~32K elements per task,
    // and at least one task per thread (a small batch above a lowered split point).
    const std::size_t per_thread = (P.rows + std::size_t(nt) - 1) / std::size_t(nt);
    std::size_t grain = std::max<std::size_t>(1, std::min((1u << 15) / std::max<std::size_t>(n, 1), per_thread));
    parallel_for(runner, P.rows, grain, [&](std::size_t r0, std::size_t r1) { do_rows(r0, r1, false); });
  }
}

}  // namespace driver
}  // namespace softmaxlib
