// The order of a top-k selection: logit descending, then index ascending. A
// strict total order on a row's entries, so the top k of any set is unique
// and every way of splitting and merging a row gives the same result. Shared
// by the kernels (family.inc: the running selection) and the driver (the merge
// of the threads' selections).
//
// Internal linkage, as conversions.h: each unit keeps its own copy.
#pragma once

namespace softmaxlib {
namespace {

struct TopKOrder {
  template <class E> bool operator()(const E& a, const E& b) const { return a.v > b.v || (a.v == b.v && a.i < b.i); }
};

}  // namespace
}  // namespace softmaxlib
