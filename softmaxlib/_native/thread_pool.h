// The threads a driver call runs on.
//
// Every driver entry point takes a Runner: the NumPy module passes
// softmaxlib's own pool (pool_runner), the XLA FFI handlers XLA's intra-op
// pool, and Dask tasks the inline runner (through NumPy, on a busy pool).
#pragma once

#include <cstddef>
#include <functional>

namespace softmaxlib {
namespace driver {

// run(n, body) calls body(b) once for every b in [0, n) and returns when all
// are done; which thread runs a block never changes what the block computes,
// so results do not depend on the runner.
class Runner {
 public:
  virtual ~Runner() = default;
  // How many blocks may run at once (1: do not bother splitting).
  virtual int threads() const = 0;
  virtual void run(std::size_t n, const std::function<void(std::size_t)>& body) const = 0;
};

// Everything on the calling thread.
class InlineRunner final : public Runner {
 public:
  int threads() const override { return 1; }
  void run(std::size_t n, const std::function<void(std::size_t)>& body) const override {
    for (std::size_t b = 0; b < n; ++b) body(b);
  }
};

// softmaxlib's own process-wide pool (the NumPy path). A call takes it with a
// try-lock: a concurrent caller runs on its own thread instead of queueing.
const Runner& pool_runner();
void set_num_threads(int n);  // n >= 1
// SOFTMAXLIB_NUM_THREADS, else the CPUs this process may run on, until set.
int num_threads();

// Runs body(begin, end) over [0, n) in blocks of `grain` items on the runner
// (inline when it has one thread or there is one block).
void parallel_for(const Runner& runner, std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& body);

}  // namespace driver
}  // namespace softmaxlib
