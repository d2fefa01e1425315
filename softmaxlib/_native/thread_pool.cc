// softmaxlib's own thread pool (thread_pool.h).
#include "thread_pool.h"
#include "round_to_nearest.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace softmaxlib {
namespace driver {
namespace {

// One process-wide pool of (threads - 1) workers; the calling thread is the
// remaining one. A call takes the pool with a try-lock: a second Python thread
// calling at the same time runs single-threaded on its own thread instead of
// queueing or adding workers, so many concurrent callers (Dask, thread pools)
// never oversubscribe the machine. After fork() the child drops the parent's
// pool (its threads do not exist there) and builds a new one on first use.

// Waits until done() or kSpinTime has passed, yielding the core meanwhile;
// true when done() held. Waking a thread that sleeps on a condition variable
// costs tens of microseconds (more in a virtual machine, whose idle vCPU must be
// woken too): a 1 MiB softmax on two threads took longer than on one. So the
// workers keep watching for the next job, and the caller for the end of this
// one, for a short while before they sleep. They yield rather than pause: when
// another process wants the core (pytest -n 2, Dask worker processes) it gets it
// at once. Measured, two threads: 256x1024 23,900 calls/s against 12,000 with
// no spinning; two such processes at once 5,550 calls/s in all against 5,350
// with no spinning and 3,850 with a pause loop.
constexpr auto kSpinTime = std::chrono::microseconds(100);

template <class Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 8; ++i) {
      if (done()) return true;
      std::this_thread::yield();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

class Pool {
 public:
  // Starts up to nthreads - 1 workers. A thread the system refuses (a process
  // or memory limit) ends the starting: the pool runs with the workers it got,
  // and the caller still asked for `requested()` (so it is not rebuilt on every
  // call). An exception out of here would destroy joinable std::threads
  // (std::terminate) or a condition variable with waiters (a hang).
  explicit Pool(int nthreads) : requested_(nthreads) {
    try {
      workers_.reserve(std::size_t(nthreads - 1));
      for (int i = 1; i < nthreads; ++i) workers_.emplace_back([this, i] { loop(i); });
    } catch (const std::exception&) {
      // std::system_error from the thread, std::bad_alloc from the vector:
      // keep the workers already running.
    }
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return int(workers_.size()) + 1; }
  int requested() const { return requested_; }
  // Runs fn(tid) for tid in [0, size()), tid 0 on the calling thread.
  void run(const std::function<void(int)>& fn) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      pending_.store(int(workers_.size()));
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    fn(0);
    auto done = [this] { return pending_.load() == 0; };
    if (!spin_until(done)) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, done);
    }
  }

 private:
  void loop(int tid) {
    unsigned long long seen = 0;
    auto job_posted = [&] { return stop_.load() || generation_.load() != seen; };
    for (;;) {
      if (!spin_until(job_posted)) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, job_posted);
      }
      const std::function<void(int)>* job;
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_.load()) return;
        seen = generation_.load();
        job = job_;
      }
      (*job)(tid);
      if (pending_.fetch_sub(1) == 1) {
        // Under the mutex: the caller may be between its check and its wait.
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }
  const int requested_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;  // guarded by mu_
  // Read by spinners without mu_. generation_ and stop_ change under mu_, so a
  // worker about to sleep on cv_ cannot miss a change; pending_ is counted down
  // outside it, and the worker that takes it to 0 notifies under mu_ instead.
  std::atomic<int> pending_{0};
  std::atomic<unsigned long long> generation_{0};
  std::atomic<bool> stop_{false};
};

int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

// SOFTMAXLIB_NUM_THREADS when it is a whole number >= 1 (capped), else the
// usable CPUs. The Python loader warns about a value it cannot take as given.
int default_threads() {
  if (const char* env = std::getenv("SOFTMAXLIB_NUM_THREADS")) {
    // A number too large for long gives LONG_MAX: capped like any other.
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1)
      return int(std::min<long>(n, max_num_threads()));
  }
  return usable_cpus();
}

std::atomic<int> g_num_threads{0};  // 0: not yet read from the environment
std::atomic<bool> g_pool_busy{false};
Pool* g_pool = nullptr;  // guarded by g_pool_busy
std::atomic<int> g_pool_size{0};  // g_pool's threads, 0 before it is built

int threads_now() {
  int n = g_num_threads.load();
  if (n == 0) {
    n = default_threads();
    g_num_threads.store(n);
  }
  return n;
}

void atfork_child() {
  // The workers did not survive the fork; their pool object is abandoned
  // (leaked, deliberately: its mutexes may be in any state).
  g_pool = nullptr;
  g_pool_size.store(0);
  g_pool_busy.store(false);
}

struct AtforkRegistration {
  AtforkRegistration() { pthread_atfork(nullptr, nullptr, &atfork_child); }
} g_atfork_registration;

// softmaxlib's pool as a Runner: the pool when it is free and worth it, else
// inline (a nested or concurrent call).
class PoolRunner final : public Runner {
 public:
  int threads() const override { return threads_now(); }
  void run(std::size_t nblocks, const std::function<void(std::size_t)>& body) const override {
    int nt = threads_now();
    if (nt <= 1 || nblocks <= 1 || g_pool_busy.exchange(true)) {
      // (exchange() above only took the pool if it returned false.)
      for (std::size_t b = 0; b < nblocks; ++b) body(b);
      return;
    }
    struct Release { ~Release() { g_pool_busy.store(false); } } release;
    if (g_pool == nullptr || g_pool->requested() != nt) {
      delete g_pool;
      g_pool = nullptr;
      g_pool = new Pool(nt);
      g_pool_size.store(g_pool->size());
    }
    std::atomic<std::size_t> next{0};
    std::function<void(int)> job = [&](int) {
      for (;;) {
        std::size_t b = next.fetch_add(1);
        if (b >= nblocks) return;
        body(b);
      }
    };
    g_pool->run(job);
  }
};

const PoolRunner g_pool_runner;

}  // namespace

void parallel_for(const Runner& runner, std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& body) {
  std::size_t nblocks = (n + grain - 1) / grain;
  if (runner.threads() <= 1 || nblocks <= 1) {
    body(0, n);
    return;
  }
  runner.run(nblocks, [&](std::size_t b) {
    const RoundToNearest nearest;  // the block may run on a worker, in that thread's mode
    body(b * grain, std::min(n, b * grain + grain));
  });
}

const Runner& pool_runner() { return g_pool_runner; }

int max_num_threads() { return kThreadsPerCpu * usable_cpus(); }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1");
  g_num_threads.store(std::min(n, max_num_threads()));
}

int num_threads() { return threads_now(); }

int pool_threads() { return g_pool_size.load(); }

}  // namespace driver
}  // namespace softmaxlib
