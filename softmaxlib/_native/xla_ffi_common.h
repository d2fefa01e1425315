// What every XLA FFI handler shares (xla_ffi.cc, xla_ffi_family.cc): XLA's
// intra-op pool as a driver Runner, dtype codes, row-major buffers and the
// `where` operand. Internal linkage: each handler unit keeps its own copy.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "driver.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace softmaxlib {
namespace {

namespace drv = softmaxlib::driver;

// XLA's intra-op pool as a driver Runner. The calling thread takes blocks
// too, and waits only for blocks that some thread has already claimed: a task
// that XLA starts late (or never, when every pool thread is busy running other
// devices' computations) finds no block left and returns. So a call finishes
// even if none of its tasks ever runs: no deadlock under multi-device CPU runs,
// where several custom calls share one pool.
class XlaPoolRunner final : public drv::Runner {
 public:
  explicit XlaPoolRunner(ffi::ThreadPool& pool) : pool_(pool) {
    // XLA sizes its pool from the machine; softmaxlib's own setting
    // (SOFTMAXLIB_NUM_THREADS, set_num_threads, the CPUs this process may run
    // on) caps it, so one knob limits both paths.
    std::int64_t n = std::min<std::int64_t>(pool_.num_threads(), drv::num_threads());
    threads_ = n > 1 ? int(n) : 1;
  }
  int threads() const override { return threads_; }
  void run(std::size_t n, const std::function<void(std::size_t)>& body) const override {
    if (threads_ <= 1 || n <= 1) {
      for (std::size_t b = 0; b < n; ++b) body(b);
      return;
    }
    struct Shared {
      std::atomic<std::size_t> next{0}, done{0};
      std::size_t n = 0;
      const std::function<void(std::size_t)>* body = nullptr;
      std::mutex mu;
      std::condition_variable cv;
    };
    auto st = std::make_shared<Shared>();
    st->n = n;
    st->body = &body;
    auto work = [](Shared& s) {
      for (;;) {
        std::size_t b = s.next.fetch_add(1);
        if (b >= s.n) return;
        (*s.body)(b);
        if (s.done.fetch_add(1) + 1 == s.n) {
          std::lock_guard<std::mutex> lk(s.mu);
          s.cv.notify_all();
        }
      }
    };
    std::size_t helpers = std::min<std::size_t>(std::size_t(threads_) - 1, n - 1);
    for (std::size_t i = 0; i < helpers; ++i) pool_.Schedule([st, work] { work(*st); });
    work(*st);
    std::unique_lock<std::mutex> lk(st->mu);
    st->cv.wait(lk, [&] { return st->done.load() == st->n; });
  }

 private:
  ffi::ThreadPool& pool_;
  int threads_ = 1;
};

// XLA's CPU result buffers come from plain aligned allocations: the first
// write to each 4 KiB page of a fresh one faults and zeroes it, which on a
// 1x2^24 float32 softmax costs more than the kernels. Asking for transparent
// huge pages on the 2 MiB-aligned part of a large result (what NumPy does for
// every large array it allocates) makes those faults 512 times fewer; on
// pages already touched, or where THP is off, the call changes nothing.
inline void advise_huge_pages(void* data, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = std::uintptr_t(1) << 21;
  if (bytes < 2 * kHuge) return;  // NumPy's threshold too (4 MiB)
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only: errors ignored
#else
  (void)data;
  (void)bytes;
#endif
}

inline bool dtype_code(ffi::DataType t, drv::DType& code) {
  switch (t) {
    case ffi::DataType::F32: code = drv::kF32; return true;
    case ffi::DataType::F64: code = drv::kF64; return true;
    case ffi::DataType::F16: code = drv::kF16; return true;
    case ffi::DataType::BF16: code = drv::kBF16; return true;
    default: return false;
  }
}

// XLA's buffers are row-major.
inline drv::Strided row_major(const void* data, ffi::AnyBuffer::Dimensions dims, std::size_t item) {
  std::vector<std::ptrdiff_t> shape(dims.begin(), dims.end());
  std::vector<std::ptrdiff_t> strides = drv::row_major_strides(shape, std::ptrdiff_t(item));
  return drv::Strided{data, std::move(shape), std::move(strides)};
}

// where: null, or a PRED buffer of x's shape (dims).
inline ffi::Error where_mask(const ffi::AnyBuffer* where, ffi::AnyBuffer::Dimensions dims, drv::Strided& w) {
  w = drv::Strided{nullptr, {}, {}};
  if (where == nullptr) return ffi::Error::Success();
  if (where->element_type() != ffi::DataType::PRED) return ffi::Error::InvalidArgument("softmaxlib: where must be a bool array");
  auto wd = where->dimensions();
  bool same = wd.size() == dims.size();
  for (std::size_t i = 0; same && i < dims.size(); ++i) same = wd[i] == dims[i];
  if (!same) return ffi::Error::InvalidArgument("softmaxlib: where must have x's shape");
  w = row_major(where->untyped_data(), wd, 1);
  return ffi::Error::Success();
}

}  // namespace
}  // namespace softmaxlib
