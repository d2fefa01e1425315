// The short lane of softmaxlib._kernels (module_lane.cc): the common NumPy
// softmax, log_softmax and logsumexp call from its raw arguments.
#pragma once

#include <pybind11/pybind11.h>

namespace softmaxlib {

// Adds softmax_lane, log_softmax_lane, logsumexp_lane (and _noop, pybind11's
// own call cost for the benchmarks) to the module.
void register_lane(pybind11::module_& m);

}  // namespace softmaxlib
