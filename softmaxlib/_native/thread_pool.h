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
// At most kThreadsPerCpu threads per CPU this process may run on: more only
// adds switching, and an unbounded count (SOFTMAXLIB_NUM_THREADS=2147483647)
// would use up the machine's process table.
constexpr int kThreadsPerCpu = 4;
int max_num_threads();
void set_num_threads(int n);  // n >= 1; above max_num_threads() it is capped
// SOFTMAXLIB_NUM_THREADS (capped), else the CPUs this process may run on, until set.
// The pool may run fewer when the system refuses a thread (pool_threads()).
int num_threads();
// The threads the pool last started with (0 before its first parallel call).
int pool_threads();

// Runs body(begin, end) over [0, n) in blocks of `grain` items on the runner
// (inline when it has one thread or there is one block).
void parallel_for(const Runner& runner, std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& body);

}  // namespace driver
}  // namespace softmaxlib
