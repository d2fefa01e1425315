// The function table of the softmax family's kernels (fused top-k, StableMax)
// that each ISA unit fills in, beside its KernelTable (kernel_table.h).
//
// Kept apart from KernelTable: the family's kernels are reached only by the
// family's driver (driver_family.cc), which finds an ISA's family table beside
// its KernelTable (isa.h). Like kernel_table.h: plain data, declarations and
// the list macro only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernel_table.h"

namespace softmaxlib {

// One candidate of a running top-k: logit (in the compute type) and its index
// in the row.
template <class S> struct TopKEntry { S v; std::int64_t i; };

// The running top-k of one sequential scan (one thread's part of a row):
// an unsorted buffer of `cap` >= 2k entries. Entries are appended while their
// logit beats `thr` (the k-th best kept so far, -inf until k are kept); when
// the buffer fills, it is cut back to its k best (nth_element), which
// amortises the selection to O(1) per candidate. Elements are scanned in
// increasing index order, so a logit equal to thr (a later index) can never
// enter: strict comparison keeps ties broken by the lower index.
template <class S> struct TopKState {
  TopKEntry<S>* buf;
  std::size_t cap, k, count;
  S thr;
};

template <class T, class S> struct FamilyKernels {
  // Online (m, d) of the piece (as Kernels::ronlineexp) and, in the same read,
  // the piece's candidates appended to st (indices base + position).
  OnlineAcc<S> (*ronlineexptopk)(const T* x, std::size_t n, std::int64_t base, TopKState<S>* st);
  // Cuts st back to its k best and updates thr (k-th best when count >= k).
  void (*topk_compact)(TopKState<S>* st);
  // sum of s(x) * 2^-e with s the StableMax map (x + 1 for x >= 0, 1/(1 - x)
  // below); p = 2^e and q = 2^-e are both normal numbers.
  S (*raddstablemax)(const T* x, std::size_t n, S p, S q);
  // y = s(x) / S, given the row's scaled sum ss = sum s(x) * 2^-e and inv = 1/ss:
  // ((x + 1) * q) * inv for x >= 0, 1 / (((1 - x) * p) * ss) below (every
  // factor kept normal for the outputs that are not negligible).
  void (*vstablemax)(const T* x, std::size_t n, S p, S q, S ss, S inv, T* y);
};

// Every member of FamilyKernels, as SOFTMAXLIB_KERNELS (kernel_table.h).
#define SOFTMAXLIB_FAMILY_KERNELS(X) \
  X(ronlineexptopk, A, T) X(topk_compact, S) X(raddstablemax, A, T) X(vstablemax, A, T)

struct FamilyTable {
  FamilyKernels<float, float> f32;
  FamilyKernels<double, double> f64;
  FamilyKernels<f16_t, float> f16;
  FamilyKernels<bf16_t, float> bf16;
};

namespace baseline { const FamilyTable* family_table(); }
namespace avx2 { const FamilyTable* family_table(); }
namespace avx512f { const FamilyTable* family_table(); }

}  // namespace softmaxlib
