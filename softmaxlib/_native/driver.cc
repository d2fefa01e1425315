// The driver of the native kernels (see driver.h). Compiled for the baseline ISA.
#include "driver.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>

namespace softmaxlib {
namespace driver {
namespace {

// ---------------------------------------------------------------------------
// ISA selection

struct IsaEntry { const char* name; const KernelTable* (*table)(); bool (*supported)(); };

bool always() { return true; }
#if defined(SOFTMAXLIB_X86)
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool has_avx512f() { return __builtin_cpu_supports("avx512f") && has_avx2(); }
#endif

// Best first.
const IsaEntry kIsas[] = {
#if defined(SOFTMAXLIB_X86)
    {"avx512f", &avx512f::table, &has_avx512f},
    {"avx2", &avx2::table, &has_avx2},
#endif
    {"baseline", &baseline::table, &always},
};

std::atomic<const KernelTable*> g_table{nullptr};

const IsaEntry* find_isa(const std::string& name) {
  for (const auto& e : kIsas) if (name == e.name) return &e;
  return nullptr;
}

const KernelTable* best_table(const char* at_most) {
  // The best supported unit, no better than `at_most` when given.
  bool allowed = (at_most == nullptr);
  for (const auto& e : kIsas) {
    if (!allowed && std::string(at_most) == e.name) allowed = true;
    if (allowed && e.supported()) return e.table();
  }
  return baseline::table();
}

const KernelTable* table_now() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (t == nullptr) {
    const char* env = std::getenv("SOFTMAXLIB_ISA");
    t = best_table(env && *env && find_isa(env) ? env : nullptr);
    g_table.store(t, std::memory_order_release);
  }
  return t;
}

// ---------------------------------------------------------------------------
// Thread pool.
//
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
  explicit Pool(int nthreads) {
    for (int i = 1; i < nthreads; ++i) workers_.emplace_back([this, i] { loop(i); });
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

int default_threads() {
  if (const char* env = std::getenv("SOFTMAXLIB_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::atomic<int> g_num_threads{0};  // 0: not yet read from the environment
std::atomic<bool> g_pool_busy{false};
Pool* g_pool = nullptr;  // guarded by g_pool_busy

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
    if (g_pool == nullptr || g_pool->size() != nt) {
      delete g_pool;
      g_pool = nullptr;
      g_pool = new Pool(nt);
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

// Runs body(begin, end) over [0, n) in blocks of `grain` items on the runner.
void parallel_for(const Runner& runner, std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& body) {
  std::size_t nblocks = (n + grain - 1) / grain;
  if (runner.threads() <= 1 || nblocks <= 1) {
    body(0, n);
    return;
  }
  runner.run(nblocks, [&](std::size_t b) { body(b * grain, std::min(n, b * grain + grain)); });
}

// ---------------------------------------------------------------------------
// Scalar conversions for the driver's special rows and masks.

float f32_from_bits(std::uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
std::uint32_t bits_from_f32(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }

double to_double(float v) { return v; }
double to_double(double v) { return v; }
double to_double(bf16_t v) { return f32_from_bits(std::uint32_t(v.bits) << 16); }
double to_double(f16_t v) {
  std::uint32_t sign = std::uint32_t(v.bits & 0x8000u) << 16, e = (v.bits >> 10) & 0x1Fu, m = v.bits & 0x3FFu;
  if (e == 0x1F) return f32_from_bits(sign | 0x7F800000u | (m << 13));
  double mag = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(m | 0x400u), int(e) - 25);
  return sign ? -mag : mag;
}

template <class T> T from_double(double v);
template <> float from_double<float>(double v) { return float(v); }
template <> double from_double<double>(double v) { return v; }
template <> bf16_t from_double<bf16_t>(double v) {
  std::uint32_t u = bits_from_f32(float(v));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16_t{std::uint16_t((u >> 16) | 0x40u)};
  return bf16_t{std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)};
}
template <> f16_t from_double<f16_t>(double v) {
  // Only used for the few values special rows produce (0, 1/k, -log k, inf, NaN).
  if (v != v) return f16_t{0x7E00};
  std::uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  double a = std::fabs(v);
  if (a >= 65520.0) return f16_t{std::uint16_t(sign | 0x7C00)};
  if (a < std::ldexp(1.0, -14)) return f16_t{std::uint16_t(sign | std::uint16_t(std::nearbyint(std::ldexp(a, 24))))};
  int e;
  double m = std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  double mant = std::nearbyint(std::ldexp(m, 11));  // 11 significant bits
  if (mant >= 2048) { mant /= 2; ++e; }
  return f16_t{std::uint16_t(sign | (std::uint16_t(e + 14) << 10) | (std::uint16_t(mant) & 0x3FF))};
}

template <class T> struct ComputeType { using type = float; };
template <> struct ComputeType<double> { using type = double; };

// ---------------------------------------------------------------------------
// One row.


// Rows are cut into chunks of KernelTable::chunk elements, always at the same
// places; each chunk's accumulator is merged pairwise in double in a fixed
// tree. This keeps long sums accurate (the error grows with log2 of the chunk
// count) and makes results independent of how chunks are spread over threads.

inline double merge_sum(const double* a, std::size_t n) {
  if (n == 1) return a[0];
  std::size_t h = n / 2;
  return merge_sum(a, h) + merge_sum(a + h, n - h);
}

struct ExtAccD { double v, e; };
inline ExtAccD merge_ext(const ExtAccD& a, const ExtAccD& b) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (a.v != a.v || b.v != b.v || a.e != a.e || b.e != b.e) return {nan, nan};
  double M = std::max(a.e, b.e);
  if (!std::isfinite(M)) return {nan, M};
  auto scaled = [M](const ExtAccD& x) { return std::ldexp(x.v, int(std::max(-4000.0, x.e - M))); };
  return {scaled(a) + scaled(b), M};
}
ExtAccD merge_ext_tree(const ExtAccD* a, std::size_t n) {
  if (n == 1) return a[0];
  std::size_t h = n / 2;
  return merge_ext(merge_ext_tree(a, h), merge_ext_tree(a + h, n - h));
}

struct OnlineAccD { double m, d; };
// d = sum exp((x - m) * inv_t): inv_t = 1/T, 1 without a temperature.
inline OnlineAccD merge_online(const OnlineAccD& a, const OnlineAccD& b, double inv_t = 1.0) {
  if (a.m != a.m || b.m != b.m) return {std::numeric_limits<double>::quiet_NaN(), 0};
  double M = std::max(a.m, b.m);
  if (std::isinf(M)) return {M, a.d + b.d};
  return {M, a.d * std::exp((a.m - M) * inv_t) + b.d * std::exp((b.m - M) * inv_t)};
}
OnlineAccD merge_online_tree(const OnlineAccD* a, std::size_t n, double inv_t = 1.0) {
  if (n == 1) return a[0];
  std::size_t h = n / 2;
  return merge_online(merge_online_tree(a, h, inv_t), merge_online_tree(a + h, n - h, inv_t), inv_t);
}

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

// Adaptive temperature (Velickovic et al. 2024, "softmax is not enough",
// Fig. 5): beta = max(1, p(H)) for H > 0.5, else 1, with the paper's degree-4
// fit p(H) = -0.037 H^4 + 0.481 H^3 - 2.3 H^2 + 4.917 H - 1.791.
// Evaluated in long double: the terms cancel (at H = 3 they sum to 2.25 from
// magnitudes up to 21), which costs ~20 ulp of beta in double, and beta's
// error multiplies every beta (x - m) of the row.
inline double adaptive_beta_of_entropy(double h) {
  if (!(h > 0.5)) return 1.0;
  using L = long double;
  const L H = h;
  const L p = (((L(-0.037) * H + L(0.481)) * H - L(2.3)) * H + L(4.917)) * H - L(1.791);
  return std::max(1.0, double(p));
}

template <class T>
struct RowSolver {
  using S = typename ComputeType<T>::type;
  const Kernels<T, S>& k;
  std::size_t kChunk_;
  Op op;
  Alg alg;

  // Scratch owned by the thread running the row (not shared).
  std::vector<double>* sums;
  std::vector<ExtAccD>* exts;
  std::vector<OnlineAccD>* onl;
  std::vector<S>* reload_buf;
  std::vector<double>* sums2 = nullptr;  // temperature: the adaptive entropy's chunk sums
  // temperature: one T for every row is prepared once per call, not per row
  const ExpScale<S>* shared_sc = nullptr;
  double shared_t = 0;
  bool shared_ok = false;

  bool prepare(double t, ExpScale<S>* sc) const {
    if (shared_sc != nullptr && t == shared_t) {
      *sc = *shared_sc;
      return shared_ok;
    }
    return k.prepare_temperature(t, sc);
  }

  // The contract's rows that the kernels do not: NaN, +inf present, all -inf.
  void special(const T* x, std::size_t n, T* y, T* lse) const {
    bool nan = false;
    double m = -std::numeric_limits<double>::infinity();
    std::size_t ninf = 0;
    for (std::size_t i = 0; i < n; ++i) {
      double v = to_double(x[i]);
      if (v != v) nan = true;
      else if (v > m) m = v;
      if (v == std::numeric_limits<double>::infinity()) ++ninf;
    }
    const double inf = std::numeric_limits<double>::infinity(), qnan = std::numeric_limits<double>::quiet_NaN();
    if (op == kLogSumExp) {
      *lse = from_double<T>(nan ? qnan : m);  // +inf, -inf (all -inf), or NaN
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      double v = to_double(x[i]), r;
      if (nan || m == -inf) r = qnan;  // NaN row; all -inf: 0/0
      else if (v == inf) r = op == kSoftmax ? 1.0 / double(ninf) : -std::log(double(ninf));
      else r = op == kSoftmax ? 0.0 : -inf;
      y[i] = from_double<T>(r);
    }
  }

  std::size_t nchunks(std::size_t n) const { return (n + kChunk_ - 1) / kChunk_; }

  // Max-based finishing passes given m and d = sum exp(x - m).
  void finish_maxbased(const T* x, std::size_t n, T* y, T* lse, double m, double d, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    if (op == kLogSumExp) {
      *lse = from_double<T>(m + std::log(d));
    } else if (op == kSoftmax) {
      S scale = S(1.0 / d);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vscaleexpminusmax(x + lo, len, S(m), scale, y + lo);
      });
    } else {
      S logd = S(std::log(d));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vlogsoftmaxminusmax(x + lo, len, S(m), logd, y + lo);
      });
    }
  }

  double row_max(const T* x, std::size_t n, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = k.rmax(x + lo, len);
    });
    double m = -std::numeric_limits<double>::infinity();
    for (double v : *sums) { if (v != v) return v; m = std::max(m, v); }
    return m;
  }

  void three_pass(const T* x, std::size_t n, T* y, T* lse, bool reload, const ChunkRunner& run) const {
    double m = row_max(x, n, run);
    if (!std::isfinite(m)) return special(x, n, y, lse);
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    if (reload && op == kSoftmax) {
      return reload_softmax(n, nc, y, run, [&](std::size_t lo, std::size_t len, S* out) {
        return k.raddstoreexpminusmax(x + lo, len, S(m), out);
      });
    }
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = k.raddexpminusmax(x + lo, len, S(m));
    });
    finish_maxbased(x, n, y, lse, m, merge_sum(sums->data(), nc), run);
  }

  // Softmax of a row whose exps are stored once and rescaled: in y itself when it
  // has the compute type, else in a float scratch row (never rounded to 16 bits
  // twice). store(lo, len, out) writes the chunk [lo, lo + len)'s exps to out and
  // returns their sum; sums holds nc zeros.
  template <class Store>
  void reload_softmax(std::size_t n, std::size_t nc, T* y, const ChunkRunner& run, Store store) const {
    S* buf;
    if constexpr (std::is_same_v<T, S>) buf = y;
    else { reload_buf->resize(n); buf = reload_buf->data(); }
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = store(lo, len, buf + lo);
    });
    S scale = S(1.0 / merge_sum(sums->data(), nc));
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      k.vscale(buf + lo, len, scale, y + lo);
    });
  }

  void online(const T* x, std::size_t n, T* y, T* lse, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    onl->assign(nc, OnlineAccD{0, 0});
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      auto a = k.ronlineexp(x + lo, len);
      (*onl)[c] = OnlineAccD{double(a.m), double(a.d)};
    });
    OnlineAccD acc = merge_online_tree(onl->data(), nc);
    if (!std::isfinite(acc.m)) return special(x, n, y, lse);
    if (acc.d == 0) acc.m = -std::numeric_limits<double>::infinity();  // all -inf
    if (acc.m == -std::numeric_limits<double>::infinity()) return special(x, n, y, lse);
    finish_maxbased(x, n, y, lse, acc.m, acc.d, run);
  }

  void two_pass(const T* x, std::size_t n, T* y, T* lse, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    exts->assign(nc, ExtAccD{0, 0});
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      auto a = k.raddextexp(x + lo, len);
      (*exts)[c] = ExtAccD{double(a.v), double(a.e)};
    });
    ExtAccD acc = merge_ext_tree(exts->data(), nc);
    // e = round(max x * log2 e) (entries clamped at -2L). A row whose max is
    // beyond +-L (minus a margin), and every row with +-inf or NaN (e or v not
    // finite, or all entries clamped), takes the max-based path: exact there
    // (Sterbenz), and it sends the contract's special rows to special().
    const double limit = std::is_same_v<S, float> ? double(kExtExpLimitF32) : kExtExpLimitF64;
    const double log2e = 0x1.71547652b82fep0;
    if (!(std::fabs(acc.e) < limit * log2e - 2) || !std::isfinite(acc.v)) {
      return three_pass(x, n, y, lse, /*reload=*/true, run);
    }
    const double ln2 = 0x1.62e42fefa39efp-1;
    double lse_d = acc.e * ln2 + std::log(acc.v);
    if (op == kLogSumExp) {
      *lse = from_double<T>(lse_d);
    } else if (op == kSoftmax) {
      S inv_v = S(1.0 / acc.v);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vscaleextexp(x + lo, len, inv_v, S(acc.e), y + lo);
      });
    } else {
      S logv = S(std::log(acc.v));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vlogsoftmaxextexp(x + lo, len, logv, S(acc.e), S(lse_d), y + lo);
      });
    }
  }

  // ------------------------------------------------------------- temperature
  // op(x / T) for one row, T > 0 (finite or +inf), or adaptive. A finite T
  // keeps +-inf and NaN where they are, so special() serves the same rows.
  // Passes over x: as without a temperature (three-pass 3, three-pass-reload
  // 2 + a rescale of y, online 2 (softmax, log_softmax) or 1 (logsumexp),
  // two-pass 2 or 1, T folded into its (p, n) reduction). Adaptive: max, then d and S1 = sum e^(x-m)(x-m) in one pass,
  // then beta and the max-based passes of beta*x (reload: 3 reads of x and a
  // rescale of y; three-pass: 4 reads; logsumexp: 3 reads).
  void solve_t(const T* x, std::size_t n, T* y, T* lse, double t, bool adaptive, const ChunkRunner& run) const {
    const double inf = std::numeric_limits<double>::infinity();
    if (!adaptive && t == inf) return uniform(x, n, y, lse);
    if (!adaptive && !(t > 0)) {
      // Unvalidated input (a traced JAX array): NaN, as the reference gives.
      const T qnan = from_double<T>(std::numeric_limits<double>::quiet_NaN());
      if (op == kLogSumExp) *lse = qnan;
      else for (std::size_t i = 0; i < n; ++i) y[i] = qnan;
      return;
    }
    std::size_t nc = nchunks(n);
    ExpScale<S> sc;
    if (alg == kOnline && !adaptive) {
      if (!prepare(t, &sc)) return three_pass_t(x, n, y, lse, t, false, false, run);
      onl->assign(nc, OnlineAccD{0, 0});
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        auto a = k.ronlineexp_t(x + lo, len, sc.inv_t);
        (*onl)[c] = OnlineAccD{double(a.m), double(a.d)};
      });
      OnlineAccD acc = merge_online_tree(onl->data(), nc, double(sc.inv_t));
      if (!std::isfinite(acc.m) || acc.d == 0) return special(x, n, y, lse);
      return finish_maxbased_t(x, n, y, lse, acc.m, acc.d, t, sc, run);
    }
    if (alg == kTwoPass && !adaptive) return two_pass_t(x, n, y, lse, t, run);
    three_pass_t(x, n, y, lse, t, adaptive, alg != kThreePass, run);
  }

  // two_pass() of x / T with T folded into the (p, n) reduction. Temperatures
  // outside the fused window, rows whose max |x / T| is beyond the two-pass
  // limit and the special rows take the max-based route (three-pass-reload).
  void two_pass_t(const T* x, std::size_t n, T* y, T* lse, double t, const ChunkRunner& run) const {
    ExpScale<S> sc;
    if (!prepare(t, &sc) || !sc.fused) return three_pass_t(x, n, y, lse, t, false, true, run);
    std::size_t nc = nchunks(n);
    exts->assign(nc, ExtAccD{0, 0});
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      auto a = k.raddextexp_t(x + lo, len, &sc);
      (*exts)[c] = ExtAccD{double(a.v), double(a.e)};
    });
    ExtAccD acc = merge_ext_tree(exts->data(), nc);
    const double limit = std::is_same_v<S, float> ? double(kExtExpLimitF32) : kExtExpLimitF64;
    const double log2e = 0x1.71547652b82fep0;
    if (!(std::fabs(acc.e) < limit * log2e - 2) || !std::isfinite(acc.v))
      return three_pass_t(x, n, y, lse, t, false, true, run);
    const double ln2 = 0x1.62e42fefa39efp-1;
    double lse_d = acc.e * ln2 + std::log(acc.v);  // logsumexp(x / T)
    if (op == kLogSumExp) {
      *lse = from_double<T>(lse_d);
    } else if (op == kSoftmax) {
      S inv_v = S(1.0 / acc.v);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vscaleextexp_t(x + lo, len, inv_v, S(acc.e), &sc, y + lo);
      });
    } else {
      S logv = S(std::log(acc.v));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vlogsoftmaxextexp_t(x + lo, len, logv, S(acc.e), S(lse_d), &sc, y + lo);
      });
    }
  }

  void three_pass_t(const T* x, std::size_t n, T* y, T* lse, double t, bool adaptive, bool reload,
                    const ChunkRunner& run) const {
    double m = row_max(x, n, run);
    if (!std::isfinite(m)) return special(x, n, y, lse);
    std::size_t nc = nchunks(n);
    if (adaptive) t = 1.0 / adaptive_beta(x, n, m, run);
    ExpScale<S> sc;
    if (!prepare(t, &sc)) return scalar_t(x, n, y, lse, m, t);
    sums->assign(nc, 0.0);
    if (reload && op == kSoftmax) {
      // The stored exps are e^((x - m)/T) 2^shift and so is their sum: the shift cancels.
      return reload_softmax(n, nc, y, run, [&](std::size_t lo, std::size_t len, S* out) {
        return k.raddstoreexpminusmax_t(x + lo, len, S(m), &sc, out);
      });
    }
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      (*sums)[c] = k.raddexpminusmax_t(x + lo, len, S(m), &sc);
    });
    finish_maxbased_t(x, n, y, lse, m, std::ldexp(merge_sum(sums->data(), nc), -sc.shift), t, sc, run);
  }

  // d: sum exp((x - m)/T) itself (no shift).
  void finish_maxbased_t(const T* x, std::size_t n, T* y, T* lse, double m, double d, double t,
                         const ExpScale<S>& sc, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    if (op == kLogSumExp) {
      *lse = from_double<T>(m / t + std::log(d));
    } else if (op == kSoftmax) {
      S scale = S(std::ldexp(1.0 / d, -sc.shift));  // the kernel's exps carry 2^shift
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vscaleexpminusmax_t(x + lo, len, S(m), scale, &sc, y + lo);
      });
    } else {
      S logd = S(std::log(d));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
        k.vlogsoftmaxminusmax_t(x + lo, len, S(m), logd, sc.inv_t, y + lo);
      });
    }
  }

  // beta = max(1, p(H)) where H > 0.5, else 1; H = log d - S1/d is the exact
  // entropy of softmax(x) (d and S1 relative to the max m, finite here).
  double adaptive_beta(const T* x, std::size_t n, double m, const ChunkRunner& run) const {
    std::size_t nc = nchunks(n);
    sums->assign(nc, 0.0);
    sums2->assign(nc, 0.0);
    run(nc, [&](std::size_t c) {
      std::size_t lo = c * kChunk_, len = std::min(kChunk_, n - lo);
      S s1 = 0;
      (*sums)[c] = k.raddexpminusmax_entropy(x + lo, len, S(m), &s1);
      (*sums2)[c] = s1;
    });
    double d = merge_sum(sums->data(), nc), s1 = merge_sum(sums2->data(), nc);
    return adaptive_beta_of_entropy(std::log(d) - s1 / d);
  }

  // Temperatures beyond the vector kernels' window (prepare_temperature):
  // scalar, in long double (x - m never overflows there, 1/T is not needed).
  void scalar_t(const T* x, std::size_t n, T* y, T* lse, double m, double t) const {
    using L = long double;
    L d = 0;
    for (std::size_t i = 0; i < n; ++i) d += std::exp((L(to_double(x[i])) - L(m)) / L(t));
    const L logd = std::log(d);
    if (op == kLogSumExp) { *lse = from_double<T>(double(L(m) / L(t) + logd)); return; }
    for (std::size_t i = 0; i < n; ++i) {
      L z = (L(to_double(x[i])) - L(m)) / L(t);
      y[i] = from_double<T>(double(op == kSoftmax ? std::exp(z) / d : z - logd));
    }
  }

  // T = +inf: uniform over the finite entries; +inf entries, NaN and all -inf
  // rows as special() (the contract's rules hold in the limit).
  void uniform(const T* x, std::size_t n, T* y, T* lse) const {
    const double inf = std::numeric_limits<double>::infinity();
    std::size_t finite = 0;
    bool other = false;
    for (std::size_t i = 0; i < n; ++i) {
      double v = to_double(x[i]);
      if (std::isfinite(v)) ++finite;
      else if (v != -inf) other = true;  // NaN or +inf
    }
    if (other || finite == 0) return special(x, n, y, lse);
    const double c = double(finite);
    if (op == kLogSumExp) { *lse = from_double<T>(std::log(c)); return; }
    const T in = from_double<T>(op == kSoftmax ? 1.0 / c : -std::log(c));
    const T out = from_double<T>(op == kSoftmax ? 0.0 : -inf);
    for (std::size_t i = 0; i < n; ++i) y[i] = std::isfinite(to_double(x[i])) ? in : out;
  }

  // x, y contiguous (y unused for logsumexp, lse unused otherwise).
  void solve(const T* x, std::size_t n, T* y, T* lse, const ChunkRunner& run) const {
    switch (alg) {
      case kThreePass: return three_pass(x, n, y, lse, false, run);
      case kThreePassReload: return three_pass(x, n, y, lse, true, run);
      case kOnline: return online(x, n, y, lse, run);
      case kTwoPass: return two_pass(x, n, y, lse, run);
    }
  }
};

// ---------------------------------------------------------------------------
// Layout: batch dims x reduced dims, arbitrary strides.

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
};

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

// One row, contiguous, as the row functions see it.
template <class T>
struct Row {
  std::size_t index;        // C-order index over the batch dims
  const T* x;               // n entries, masked ones replaced by -inf
  T* y;                     // n entries (Out::kRow), the row's value (Out::kScalar), or null
  const unsigned char* mask;  // n keep flags, or null when unmasked
  std::size_t live;         // unmasked entries
};

// Walks the rows of P, gathering rows that are strided or masked into
// thread-local buffers and scattering their results back, and calls
// fn(row, scratch, chunk_runner) for each. Rows go to the runner's threads when
// there are many; a few long rows are done one at a time with their chunks
// spread over the threads instead.
template <class T, class Fn>
void for_rows(const Problem& P, const Runner& runner, Fn&& fn) {
  const std::size_t n = P.n;
  const T ninf = from_double<T>(-std::numeric_limits<double>::infinity());

  // Row offsets are found by unravelling the row index over the batch dims.
  auto row_offsets = [&](std::size_t r, std::ptrdiff_t& ox, std::ptrdiff_t& oy, std::ptrdiff_t& ow) {
    if (P.batch.shape.size() == 1) {  // the common case (batch dims collapsed): no division per row
      ox = std::ptrdiff_t(r) * P.batch.xs[0], oy = std::ptrdiff_t(r) * P.batch.ys[0];
      ow = std::ptrdiff_t(r) * P.batch.ws[0];
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
      // Gather the row (masked entries become -inf) into a thread-local buffer.
      sc.xrow.resize(n);
      if (P.out == Out::kRow) sc.yrow.resize(n);
      std::size_t i = 0, live = 0;
      if (P.w) sc.mrow.resize(n);
      for_each_index(P.red, [&](std::ptrdiff_t a, std::ptrdiff_t, std::ptrdiff_t c) {
        T v;
        std::memcpy(&v, P.x + ox + a, sizeof(T));
        if (P.w) {
          unsigned char keep = static_cast<unsigned char>(P.w[ow + c] != 0);
          sc.mrow[i] = keep;
          live += keep;
          if (!keep) v = ninf;
        }
        sc.xrow[i++] = v;
      });
      if (!P.w) live = n;
      fn(Row<T>{r, sc.xrow.data(), P.out == Out::kRow ? sc.yrow.data() : yr, P.w ? sc.mrow.data() : nullptr, live},
         sc, run);
      if (P.out != Out::kRow) continue;
      i = 0;
      for_each_index(P.red, [&](std::ptrdiff_t, std::ptrdiff_t b, std::ptrdiff_t) {
        std::memcpy(P.y + oy + b, &sc.yrow[i++], sizeof(T));
      });
    }
  };

  // Waking the pool costs tens of microseconds, and a row split over threads wakes
  // it once per pass: below these sizes (measured with `python -m softmaxlib bench`,
  // 1 vs 2 threads) one thread is faster.
  constexpr std::size_t kMinParallelElements = std::size_t(1) << 16;
  constexpr std::size_t kMinSplitRow = std::size_t(1) << 20;
  const std::size_t total = P.rows * n;
  const int nt = runner.threads();
  if (nt <= 1 || total < kMinParallelElements) {
    do_rows(0, P.rows, false);
  } else if (n >= kMinSplitRow && n >= 4 * P.chunk && P.rows < std::size_t(nt) * 2) {
    // Few long rows: one at a time, their chunks spread over the threads.
    do_rows(0, P.rows, true);
  } else {
    // Many rows (or rows too short to split): spread them, ~32K elements per task.
    std::size_t grain = std::max<std::size_t>(1, (1u << 15) / std::max<std::size_t>(n, 1));
    parallel_for(runner, P.rows, grain, [&](std::size_t r0, std::size_t r1) { do_rows(r0, r1, false); });
  }
}

// Masked entries of a row result: 0 (softmax) or -inf (log_softmax).
template <class T>
void fill_masked(Op op, const Row<T>& row, std::size_t n) {
  if (row.mask == nullptr) return;
  const T fill = from_double<T>(op == kSoftmax ? 0.0 : -std::numeric_limits<double>::infinity());
  for (std::size_t j = 0; j < n; ++j) if (!row.mask[j]) row.y[j] = fill;
}

template <class T>
void compute_rows(Op op, Alg alg, const Problem& P, const Kernels<T, typename ComputeType<T>::type>& kern,
                  const Runner& runner, const Temperature* temp = nullptr) {
  const std::size_t n = P.n;
  ExpScale<typename ComputeType<T>::type> shared_sc{};
  bool shared_ok = false;
  const bool shared = temp != nullptr && temp->mode == Temperature::kScalar;
  if (shared) shared_ok = kern.prepare_temperature(temp->value, &shared_sc);
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>& sc, const ChunkRunner& run) {
    const bool lse_op = op == kLogSumExp;
    if (row.mask && row.live == 0) {
      // Fully masked row: 0 / -inf / -inf.
      const T fill = from_double<T>(op == kSoftmax ? 0.0 : -std::numeric_limits<double>::infinity());
      if (lse_op) *row.y = fill;
      else for (std::size_t j = 0; j < n; ++j) row.y[j] = fill;
      return;
    }
    RowSolver<T> solver{kern, P.chunk, op, alg, &sc.sums, &sc.exts, &sc.onl, &sc.reload_buf};
    if (temp == nullptr) {
      solver.solve(row.x, n, lse_op ? nullptr : row.y, lse_op ? row.y : nullptr, run);
    } else {
      solver.sums2 = &sc.sums2;
      if (shared) {
        solver.shared_sc = &shared_sc;
        solver.shared_t = temp->value;
        solver.shared_ok = shared_ok;
      }
      const double t = temp->mode == Temperature::kPerRow ? temp->per_row[row.index] : temp->value;
      solver.solve_t(row.x, n, lse_op ? nullptr : row.y, lse_op ? row.y : nullptr, t,
                     temp->mode == Temperature::kAdaptive, run);
    }
    if (!lse_op) fill_masked(op, row, n);
  });
}

// Pass 1 of a piece: the online kernel in chunks, merged in a fixed tree; rows
// with +inf or NaN (rare) are redone in scalar double to count them.
template <class T>
void accumulate_rows(const Problem& P, const Kernels<T, typename ComputeType<T>::type>& kern, double* acc,
                     const Runner& runner) {
  const std::size_t n = P.n, chunk = P.chunk;
  const double inf = std::numeric_limits<double>::infinity();
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>& sc, const ChunkRunner& run) {
    double* a = acc + kAccSize * row.index;
    double m = -inf, d = 0, n_posinf = 0, has_nan = 0;
    if (row.live > 0) {
      const std::size_t nc = (n + chunk - 1) / chunk;
      sc.onl.assign(nc, OnlineAccD{0, 0});
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        auto r = kern.ronlineexp(row.x + lo, len);
        sc.onl[c] = OnlineAccD{double(r.m), double(r.d)};
      });
      OnlineAccD o = merge_online_tree(sc.onl.data(), nc);
      if (std::isfinite(o.m) && std::isfinite(o.d)) {
        if (o.d > 0) { m = o.m; d = o.d; }  // else: all -inf, the identity
      } else {
        for (std::size_t i = 0; i < n; ++i) {
          double v = to_double(row.x[i]);  // masked entries are -inf here
          if (v != v) has_nan = 1;
          else if (v == inf) n_posinf += 1;
          else if (v > m) m = v;
        }
        if (m > -inf) for (std::size_t i = 0; i < n; ++i) {
          double v = to_double(row.x[i]);
          if (std::isfinite(v)) d += std::exp(v - m);
        }
      }
    }
    a[0] = m; a[1] = d; a[2] = n_posinf; a[3] = has_nan; a[4] = double(row.live);
  });
}

// Pass 2 of a piece given the row's merged accumulator.
template <class T>
void finish_rows(Op op, const Problem& P, const Kernels<T, typename ComputeType<T>::type>& kern, const double* acc,
                 const Runner& runner) {
  using S = typename ComputeType<T>::type;
  const std::size_t n = P.n, chunk = P.chunk;
  const double inf = std::numeric_limits<double>::infinity(), qnan = std::numeric_limits<double>::quiet_NaN();
  for_rows<T>(P, runner, [&](const Row<T>& row, ThreadScratch<T>&, const ChunkRunner& run) {
    const double* a = acc + kAccSize * row.index;
    const double m = a[0], d = a[1], n_posinf = a[2], has_nan = a[3], n_valid = a[4];
    const double left_out = op == kSoftmax ? 0.0 : -inf;
    if (has_nan != 0 || n_posinf > 0 || n_valid <= 0 || !(m > -inf) || !(d > 0) || !std::isfinite(m)) {
      // The contract's special rows, as _reference._apply_special_values.
      double special;
      const bool share_among_posinf = has_nan == 0 && n_posinf > 0;  // NaN comes first
      if (has_nan != 0) special = qnan;
      else if (share_among_posinf) special = -1;  // per entry below
      else if (n_valid <= 0) special = left_out;
      else if (!(m > -inf)) special = qnan;  // all -inf: 0/0
      else special = qnan;  // an accumulator that no row can produce
      for (std::size_t i = 0; i < n; ++i) {
        double r = special;
        if (share_among_posinf) {
          bool pinf = to_double(row.x[i]) == inf;
          r = pinf ? (op == kSoftmax ? 1.0 / n_posinf : -std::log(n_posinf)) : left_out;
        }
        row.y[i] = from_double<T>(r);
      }
      fill_masked(op, row, n);
      return;
    }
    const std::size_t nc = (n + chunk - 1) / chunk;
    if (op == kSoftmax) {
      S scale = S(1.0 / d);
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        kern.vscaleexpminusmax(row.x + lo, len, S(m), scale, row.y + lo);
      });
    } else {
      S logd = S(std::log(d));
      run(nc, [&](std::size_t c) {
        std::size_t lo = c * chunk, len = std::min(chunk, n - lo);
        kern.vlogsoftmaxminusmax(row.x + lo, len, S(m), logd, row.y + lo);
      });
    }
    fill_masked(op, row, n);
  });
}

std::vector<std::ptrdiff_t> c_strides(const std::vector<std::ptrdiff_t>& shape, std::ptrdiff_t item) {
  std::vector<std::ptrdiff_t> s(shape.size());
  std::ptrdiff_t acc = item;
  for (std::size_t i = shape.size(); i-- > 0;) { s[i] = acc; acc *= std::max<std::ptrdiff_t>(shape[i], 1); }
  return s;
}

// Splits x (and where) into batch and reduced dims. y_batch_item: the byte
// stride of one batch row in a C-contiguous output of rows (0: y is x-shaped).
Problem make_problem(DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where, void* y,
                     Out out, std::ptrdiff_t y_batch_item) {
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
    yfull = c_strides(x.shape, item);
  } else {
    std::vector<std::ptrdiff_t> bshape;
    for (std::size_t i = 0; i < nd; ++i) if (!reduced[i]) bshape.push_back(x.shape[i]);
    auto bs = c_strides(bshape, y_batch_item);
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
            rows, n, table_now()->chunk, out, false};
  // A row goes straight to the kernels when its reduced part is one
  // contiguous run in x (and in y); otherwise it is gathered.
  bool xy_contig = P.red.shape.empty() ||
                   (P.red.shape.size() == 1 && P.red.xs[0] == item && (out != Out::kRow || P.red.ys[0] == item));
  P.contiguous = xy_contig && wptr == nullptr;
  return P;
}

template <template <class> class F, class... A>
void dispatch(DType dtype, const KernelTable* t, A&&... a) {
  switch (dtype) {
    case kF32: return F<float>::run(t->f32, a...);
    case kF64: return F<double>::run(t->f64, a...);
    case kF16: return F<f16_t>::run(t->f16, a...);
    case kBF16: return F<bf16_t>::run(t->bf16, a...);
  }
  throw std::invalid_argument("bad dtype code");
}

template <class T> struct ComputeFn {
  template <class K> static void run(const K& k, Op op, Alg alg, const Problem& P, const Runner& r) {
    compute_rows<T>(op, alg, P, k, r);
  }
};
template <class T> struct ComputeTemperatureFn {
  template <class K>
  static void run(const K& k, Op op, Alg alg, const Problem& P, const Runner& r, const Temperature* t) {
    compute_rows<T>(op, alg, P, k, r, t);
  }
};
template <class T> struct AccumulateFn {
  template <class K> static void run(const K& k, const Problem& P, double* acc, const Runner& r) {
    accumulate_rows<T>(P, k, acc, r);
  }
};
template <class T> struct FinishFn {
  template <class K> static void run(const K& k, Op op, const Problem& P, const double* acc, const Runner& r) {
    finish_rows<T>(op, P, k, acc, r);
  }
};

void check_dtype(DType dtype) {
  if (dtype < kF32 || dtype > kBF16) throw std::invalid_argument("bad dtype code");
}

const PoolRunner g_pool_runner;

}  // namespace

std::size_t item_size(DType dtype) {
  static const std::size_t kItemSize[] = {4, 8, 2, 2};
  check_dtype(dtype);
  return kItemSize[dtype];
}

const Runner& pool_runner() { return g_pool_runner; }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("number of threads must be >= 1");
  g_num_threads.store(n);
}

int num_threads() { return threads_now(); }

const KernelTable* current_table() { return table_now(); }

std::vector<std::string> compiled_isas() {
  std::vector<std::string> v;
  for (const auto& e : kIsas) v.push_back(e.name);
  return v;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> v;
  for (const auto& e : kIsas) if (e.supported()) v.push_back(e.name);
  return v;
}

std::string set_isa(const std::string& name) {
  const IsaEntry* e = find_isa(name);
  if (e == nullptr) throw std::invalid_argument("unknown ISA '" + name + "'");
  if (!e->supported()) throw std::invalid_argument("ISA '" + name + "' is not supported by this CPU");
  std::string prev = table_now()->isa;
  g_table.store(e->table());
  return prev;
}

void compute(Op op, Alg alg, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
             void* y, const Runner& runner) {
  if (op < kSoftmax || op > kLogSumExp || alg < kThreePass || alg > kTwoPass) throw std::invalid_argument("bad op/alg code");
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, y, op == kLogSumExp ? Out::kScalar : Out::kRow,
                           std::ptrdiff_t(item_size(dtype)));
  if (P.rows == 0 || P.n == 0) return;
  dispatch<ComputeFn>(dtype, table_now(), op, alg, P, runner);
}

void compute_temperature(Op op, Alg alg, DType dtype, const Strided& x, const std::vector<bool>& reduced,
                         const Strided& where, const Temperature& temperature, void* y, const Runner& runner) {
  if (temperature.mode == Temperature::kNone) return compute(op, alg, dtype, x, reduced, where, y, runner);
  if (op < kSoftmax || op > kLogSumExp || alg < kThreePass || alg > kTwoPass) throw std::invalid_argument("bad op/alg code");
  if (temperature.mode < Temperature::kNone || temperature.mode > Temperature::kAdaptive)
    throw std::invalid_argument("bad temperature mode");
  if (temperature.mode == Temperature::kPerRow && temperature.per_row == nullptr)
    throw std::invalid_argument("per-row temperature without its array");
  if (temperature.mode == Temperature::kScalar && !(temperature.value > 0))
    throw std::invalid_argument("temperature must be > 0");
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, y, op == kLogSumExp ? Out::kScalar : Out::kRow,
                           std::ptrdiff_t(item_size(dtype)));
  if (P.rows == 0 || P.n == 0) return;
  dispatch<ComputeTemperatureFn>(dtype, table_now(), op, alg, P, runner, &temperature);
}

void accumulate(DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where, double* acc,
                const Runner& runner) {
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, nullptr, Out::kNone, 0);
  if (P.rows == 0) return;
  if (P.n == 0) {
    const double inf = std::numeric_limits<double>::infinity();
    for (std::size_t r = 0; r < P.rows; ++r) {
      double* a = acc + kAccSize * r;
      a[0] = -inf; a[1] = a[2] = a[3] = a[4] = 0;
    }
    return;
  }
  dispatch<AccumulateFn>(dtype, table_now(), P, acc, runner);
}

void finish(Op op, DType dtype, const Strided& x, const std::vector<bool>& reduced, const Strided& where,
            const double* acc, void* y, const Runner& runner) {
  if (op != kSoftmax && op != kLogSoftmax) throw std::invalid_argument("finish: op must be softmax or log_softmax");
  check_dtype(dtype);
  Problem P = make_problem(dtype, x, reduced, where, y, Out::kRow, 0);
  if (P.rows == 0 || P.n == 0) return;
  dispatch<FinishFn>(dtype, table_now(), op, P, acc, runner);
}

}  // namespace driver
}  // namespace softmaxlib

// The softmax family (fused top-k, StableMax): its own file, sharing this
// file's internals.
#include "driver_family.inc"
