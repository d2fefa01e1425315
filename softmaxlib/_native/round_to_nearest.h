// Round-to-nearest for the extent of a scope, whatever the caller's mode.
//
// The kernels' exp reduces its argument with n = round(x log2 e) by the
// add-a-magic-constant trick, which rounds in the current mode, and their
// error bounds assume every operation rounds to nearest. A caller may have set
// another mode (fesetround, per thread): each thread that runs a part of a call
// holds one of these for that part, which sets round-to-nearest and gives the
// thread its own mode back at the end. Where the mode already is nearest (the
// usual case) it costs one read of the control word.
#pragma once

#include <cfenv>

namespace softmaxlib {
namespace driver {

class RoundToNearest {
 public:
  RoundToNearest() : saved_(std::fegetround()) {
    if (saved_ != FE_TONEAREST) std::fesetround(FE_TONEAREST);
  }
  ~RoundToNearest() {
    if (saved_ != FE_TONEAREST) std::fesetround(saved_);
  }
  RoundToNearest(const RoundToNearest&) = delete;
  RoundToNearest& operator=(const RoundToNearest&) = delete;

 private:
  int saved_;
};

}  // namespace driver
}  // namespace softmaxlib
