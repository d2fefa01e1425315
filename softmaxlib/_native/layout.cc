// The layout walker (layout.h): splitting an array into rows.
#include "layout.h"

#include <atomic>
#include <stdexcept>

#include "isa.h"

namespace softmaxlib {
namespace driver {

namespace {

// The split points (layout.h, ParallelThresholds), from
// `taskset -c 0,1 python benchmarks/threads.py --split-everything --rounds 15` on a
// quiet AMD EPYC Zen 4 (2 cores, AVX-512F), float32 softmax, 1-thread time / 2-thread
// time (medians of interleaved rounds):
//   rows spread over the threads: 64x128 (2^13) 1.20, 16x1024 (2^14) 1.05,
//     128x128 1.49, 256x128 1.67, 32x1024 1.21, 64x1024 1.43, 512x128 1.84;
//   one row split into chunks: 2^14 0.72, 2^15 0.89, 2^16 1.11, 2^17 1.27, 2^18 1.36.
// Both are set one step above the crossover: a call that finds the pool's workers
// asleep (not straight after another call) pays a longer wake than these rounds.
// With other load the second thread waits for a core and no crossover shows.
constexpr ParallelThresholds kDefaultParallelThresholds{std::size_t(1) << 14, std::size_t(1) << 17};
std::atomic<std::size_t> g_min_elements{kDefaultParallelThresholds.min_elements};
std::atomic<std::size_t> g_min_split_row{kDefaultParallelThresholds.min_split_row};

}  // namespace

ParallelThresholds parallel_thresholds() {
  return {g_min_elements.load(std::memory_order_relaxed), g_min_split_row.load(std::memory_order_relaxed)};
}

void set_parallel_thresholds(ParallelThresholds limits) {
  g_min_elements.store(limits.min_elements, std::memory_order_relaxed);
  g_min_split_row.store(limits.min_split_row, std::memory_order_relaxed);
}

ParallelThresholds default_parallel_thresholds() { return kDefaultParallelThresholds; }

Dims collapse(const Dims& in) {
  Dims out;
  for (std::size_t i = 0; i < in.shape.size(); ++i) {
    if (in.shape[i] == 1) continue;
    if (!out.shape.empty()) {
      std::size_t j = out.shape.size() - 1;
      if (out.xs[j] == in.xs[i] * in.shape[i] && out.ys[j] == in.ys[i] * in.shape[i] &&
          out.ws[j] == in.ws[i] * in.shape[i]) {
        out.shape[j] *= in.shape[i];
        out.xs[j] = in.xs[i]; out.ys[j] = in.ys[i]; out.ws[j] = in.ws[i];
        continue;
      }
    }
    out.shape.push_back(in.shape[i]);
    out.xs.push_back(in.xs[i]); out.ys.push_back(in.ys[i]); out.ws.push_back(in.ws[i]);
  }
  return out;
}

std::vector<std::ptrdiff_t> row_major_strides(const std::vector<std::ptrdiff_t>& shape, std::ptrdiff_t item) {
  std::vector<std::ptrdiff_t> s(shape.size());
  std::ptrdiff_t acc = item;
  for (std::size_t i = shape.size(); i-- > 0;) { s[i] = acc; acc *= std::max<std::ptrdiff_t>(shape[i], 1); }
  return s;
}

namespace {

// Whether dims of `shape` with byte `strides` are one contiguous run of items,
// in C order (the order in which a row's entries are walked).
bool one_run(const std::vector<std::ptrdiff_t>& shape, const std::vector<std::ptrdiff_t>& strides,
             std::ptrdiff_t item) {
  std::ptrdiff_t expected = item;
  for (std::size_t k = shape.size(); k-- > 0;) {
    if (strides[k] != expected) return false;
    expected *= shape[k];
  }
  return true;
}

}  // namespace

Problem make_problem(DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where, void* y,
                     Out out, std::ptrdiff_t y_batch_item, const std::ptrdiff_t* y_strides) {
  const std::size_t nd = x.shape.size();
  const std::ptrdiff_t item = std::ptrdiff_t(item_size(dtype));
  if (x.strides.size() != nd || reduced.size() != nd) throw std::invalid_argument("shape, strides and axes disagree");
  bool any = false;
  for (bool r : reduced) any = any || r;
  if (!any) throw std::invalid_argument("no reduced axis");
  const char* wptr = static_cast<const char*>(where.data);
  if (wptr && (where.shape != x.shape || where.strides.size() != nd))
    throw std::invalid_argument("where must be a bool array of x's shape");
  std::vector<std::ptrdiff_t> yfull(nd, 0);
  if (out == Out::kRow) {
    yfull = y_strides ? std::vector<std::ptrdiff_t>(y_strides, y_strides + nd) : row_major_strides(x.shape, item);
  } else {
    std::vector<std::ptrdiff_t> bshape;
    for (std::size_t i = 0; i < nd; ++i) if (!reduced[i]) bshape.push_back(x.shape[i]);
    auto bs = row_major_strides(bshape, y_batch_item);
    for (std::size_t i = 0, j = 0; i < nd; ++i) if (!reduced[i]) yfull[i] = bs[j++];
  }
  Dims batch, red;
  std::size_t rows = 1, n = 1;
  for (std::size_t i = 0; i < nd; ++i) {
    if (x.shape[i] < 0) throw std::invalid_argument("negative extent");
    Dims& d = reduced[i] ? red : batch;
    d.shape.push_back(x.shape[i]);
    d.xs.push_back(x.strides[i]);
    d.ys.push_back(yfull[i]);
    d.ws.push_back(wptr ? where.strides[i] : 0);
    (reduced[i] ? n : rows) *= std::size_t(x.shape[i]);
  }
  Problem P{static_cast<const char*>(x.data), static_cast<char*>(y), wptr, collapse(batch), collapse(red),
            rows, n, current_table()->chunk, out, false, false, false, x.byte_swapped};
  // A row goes straight to the kernels when its reduced part is one
  // contiguous run in x (and in y); otherwise it is gathered.
  bool xy_contig = P.red.shape.empty() ||
                   (P.red.shape.size() == 1 && P.red.xs[0] == item && (out != Out::kRow || P.red.ys[0] == item));
  P.contiguous = xy_contig && wptr == nullptr && !x.byte_swapped;
  P.y_row_run = out == Out::kRow && one_run(P.red.shape, P.red.ys, item);
  P.w_row_run = wptr != nullptr && one_run(P.red.shape, P.red.ws, 1);
  if (P.batch.shape.size() <= 1) {
    P.one_batch_dim = true;
    if (P.batch.shape.size() == 1) P.row_xs = P.batch.xs[0], P.row_ys = P.batch.ys[0], P.row_ws = P.batch.ws[0];
  }
  return P;
}

Problem contiguous_problem(const void* x, std::ptrdiff_t row_xs, void* y, std::ptrdiff_t row_ys, std::size_t rows,
                           std::size_t n, Out out) {
  Problem P{static_cast<const char*>(x), static_cast<char*>(y), nullptr, Dims{}, Dims{}, rows, n,
            current_table()->chunk, out, true};
  P.one_batch_dim = true;
  P.row_xs = row_xs;
  P.row_ys = row_ys;
  return P;
}

}  // namespace driver
}  // namespace softmaxlib
