// softmaxlib's CUDA kernels: softmax, log_softmax and logsumexp over rows.
//
// Compiled at run time by CuPy (cupy.RawModule, NVRTC), so this file includes no
// header at all (NVRTC has no C++ standard library): half and bfloat16 are moved
// as raw 16-bit patterns and converted here.  tests/test_cuda.py compiles it with
// nvcc for sm_80 in CI (no GPU needed), instantiating every template it uses.
//
// A "row" is one softmax: the reduced axes, moved last and collapsed to a single
// element stride by softmaxlib/_backends/cupy_cuda.py.  Rows are addressed through
// up to four collapsed batch dimensions (shape and stride each, in elements), so a
// transposed or sliced view runs in place, without a copy.  The output is written
// C-contiguous in the (batch..., row) order: row r's element j is at y[r * n + j].
//
// Two families of kernels (see docs in cupy_cuda.py for the dispatch):
//
// * softmax_cached<T, ITEMS, WARP>: a row small enough for one warp (WARP) or one
//   block is read once into registers, ITEMS entries per thread, reduced to its
//   accumulator with warp shuffles (and shared memory across warps), then
//   written once.  1 read, 1 write.
// * the long-row family: a row is cut into chunks, one block per chunk.
//   softmax_partial writes one accumulator per chunk, softmax_merge reduces each
//   row's chunk accumulators (and writes logsumexp), softmax_finalize rescales.
//   2 reads, 1 write.
//
// Two accumulators, selected at run time by `alg` (uniform per launch):
//
// * ALG_MAX_BASED (the online normaliser, Milakov & Gimelshein 2018): (m, d) with
//   d = sum exp(x - m), merged as (M, d e^(m - M) + d' e^(m' - M)).
// * ALG_TWO_PASS (Dukhan & Ablavatski 2020): e^x = p 2^n, the sum kept as
//   (v, e) with sum = v 2^e, merged as (v 2^(e - M) + v' 2^(e' - M), M).  The
//   row max m is tracked beside it: rows with |m| >= T (kLargeLogit) are summed
//   again with the max subtracted (exact there, by Sterbenz), as in the reference.
//
// Both carry the contract's bookkeeping: the count of +inf entries and flags for
// "an unmasked NaN" and "an unmasked entry".  The identity is m = -inf, d = v = 0,
// e = -inf, and merging two identities gives the identity (never -inf - -inf).
//
// Special values (softmaxlib/_reference/softmax.py, _apply_special_values), in order of
// precedence: a masked entry gets 0 / -inf; a row with an unmasked NaN is NaN; +inf
// entries share the mass (1/k, log: -log k; logsumexp +inf); a row whose unmasked
// entries are all -inf is NaN (logsumexp -inf); a fully masked row is 0 / -inf / -inf.

// ------------------------------------------------------------------ storage types

struct half_t { unsigned short bits; };      // IEEE binary16
struct bfloat16_t { unsigned short bits; };  // bfloat16: the top half of a float32

__device__ __forceinline__ float to_compute(float x) { return x; }
__device__ __forceinline__ double to_compute(double x) { return x; }
__device__ __forceinline__ float to_compute(half_t x) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
  return f;
}
__device__ __forceinline__ float to_compute(bfloat16_t x) {
  return __int_as_float(static_cast<int>(static_cast<unsigned>(x.bits) << 16));
}

template <class T> struct Store;
template <> struct Store<float> {
  static __device__ __forceinline__ float from(float c) { return c; }
};
template <> struct Store<double> {
  static __device__ __forceinline__ double from(double c) { return c; }
};
template <> struct Store<half_t> {
  // One rounding, to nearest even; beyond 65520 it rounds to +-inf (as NumPy).
  static __device__ __forceinline__ half_t from(float c) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(c));
    return h;
  }
};
template <> struct Store<bfloat16_t> {
  // Round to nearest even on the bit pattern (no sm_80 instruction needed); a NaN
  // stays a quiet NaN.  Overflow carries into the exponent and gives +-inf.
  static __device__ __forceinline__ bfloat16_t from(float c) {
    unsigned u = static_cast<unsigned>(__float_as_int(c));
    bfloat16_t b;
    if (c != c) {
      b.bits = static_cast<unsigned short>((u >> 16) | 0x40u);
    } else {
      u += 0x7FFFu + ((u >> 16) & 1u);
      b.bits = static_cast<unsigned short>(u >> 16);
    }
    return b;
  }
};

// The type the arithmetic runs in: float32 for every 16-bit type.
template <class T> struct ComputeOf { typedef float type; };
template <> struct ComputeOf<double> { typedef double type; };

// ------------------------------------------------------------------ constants

enum { OP_SOFTMAX = 0, OP_LOG_SOFTMAX = 1, OP_LOGSUMEXP = 2 };
enum { ALG_MAX_BASED = 0, ALG_TWO_PASS = 1 };
enum { FLAG_NAN = 1, FLAG_VALID = 2 };

template <class C> struct Consts;
template <> struct Consts<float> {
  static __device__ __forceinline__ float inf() { return __int_as_float(0x7f800000); }
  // log2(e) rounded to float.
  static __device__ __forceinline__ float log2e() { return 0x1.715476p+0f; }
  // ln 2 split Cody & Waite style: hi = ln 2 rounded to float, lo = ln 2 - hi;
  // with FMAs t = x - n hi - n lo carries one rounding for every |n| < 2^10.
  static __device__ __forceinline__ float ln2_hi() { return 0x1.62E430p-1f; }
  static __device__ __forceinline__ float ln2_lo() { return -0x1.05C610p-29f; }
  static __device__ __forceinline__ float ln2() { return 0x1.62E430p-1f; }
  // T: the reference's value (256 for float32, and the half types), not the CPU
  // kernels' (see _large_logit in softmaxlib/_reference for why they differ).
  static __device__ __forceinline__ float large_logit() { return 256.0f; }
  // 2^k for integer k >= -126 is a normal float: exponent field k + 127.
  static __device__ __forceinline__ float pow2_flush(float k) {
    k = fmaxf(k, -127.0f);  // -127 (and -inf, NaN) give the bit pattern 0: +0
    return __int_as_float((static_cast<int>(k) + 127) << 23);
  }
};
template <> struct Consts<double> {
  static __device__ __forceinline__ double inf() { return __longlong_as_double(0x7ff0000000000000LL); }
  static __device__ __forceinline__ double log2e() { return 0x1.71547652b82fep+0; }
  // fdlibm's split: hi has 32 significant bits, n hi exact for |n| < 2^21.
  static __device__ __forceinline__ double ln2_hi() { return 0x1.62e42feep-1; }
  static __device__ __forceinline__ double ln2_lo() { return 0x1.a39ef35793c76p-33; }
  static __device__ __forceinline__ double ln2() { return 0x1.62E42FEFA39EFp-1; }
  static __device__ __forceinline__ double large_logit() { return 2048.0; }
  static __device__ __forceinline__ double pow2_flush(double k) {
    k = fmax(k, -1023.0);
    return __longlong_as_double(static_cast<long long>(static_cast<int>(k) + 1023) << 52);
  }
};

__device__ __forceinline__ float exp_c(float x) { return expf(x); }   // <= 2 ulp
__device__ __forceinline__ double exp_c(double x) { return exp(x); }
__device__ __forceinline__ float log_c(float x) { return logf(x); }
__device__ __forceinline__ double log_c(double x) { return log(x); }
__device__ __forceinline__ float max_c(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max_c(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float rint_c(float a) { return rintf(a); }
__device__ __forceinline__ float fma_c(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_c(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ double rint_c(double a) { return rint(a); }

// ------------------------------------------------------------------ the accumulator

template <class C> struct Acc {
  C m;       // max of the clean unmasked entries (finite or -inf); -inf when none
  C v;       // max-based: d = sum exp(x - m).  two-pass: v of sum = v 2^e (after shift)
  C e;       // two-pass only: the exponent, integer-valued, -inf for an empty sum
  int npos;  // unmasked +inf entries
  int flags; // FLAG_NAN | FLAG_VALID
};

// cupy_cuda.py allocates the long-row workspace with these sizes.
static_assert(sizeof(Acc<float>) == 20, "Acc<float> layout");
static_assert(sizeof(Acc<double>) == 32, "Acc<double> layout");

template <class C> __device__ __forceinline__ Acc<C> acc_identity() {
  Acc<C> a;
  a.m = -Consts<C>::inf(); a.v = C(0); a.e = -Consts<C>::inf(); a.npos = 0; a.flags = 0;
  return a;
}

// e^(a - b) for a <= b, where a = b = -inf (two identities) gives 0, not NaN.
template <class C> __device__ __forceinline__ C exp_rescale(C a, C b) {
  return a == -Consts<C>::inf() ? C(0) : exp_c(a - b);
}

// 2^(a - b) for integer-valued a <= b, with a = -inf giving 0 (flushes below normal).
template <class C> __device__ __forceinline__ C pow2_rescale(C a, C b) {
  return a == -Consts<C>::inf() ? C(0) : Consts<C>::pow2_flush(a - b);
}

template <class C> __device__ __forceinline__ Acc<C> acc_merge(const Acc<C>& a, const Acc<C>& b, int alg) {
  Acc<C> r;
  r.npos = a.npos + b.npos;
  r.flags = a.flags | b.flags;
  r.m = max_c(a.m, b.m);
  if (alg == ALG_MAX_BASED) {
    r.e = -Consts<C>::inf();
    r.v = a.v * exp_rescale(a.m, r.m) + b.v * exp_rescale(b.m, r.m);
  } else {
    r.e = max_c(a.e, b.e);
    r.v = a.v * pow2_rescale(a.e, r.e) + b.v * pow2_rescale(b.e, r.e);
  }
  return r;
}

// The clean value of an entry: itself if unmasked, finite or -inf; else -inf.
// Updates the bookkeeping of the accumulator.
template <class C> __device__ __forceinline__ C classify(C x, bool valid, Acc<C>& a) {
  if (!valid) return -Consts<C>::inf();
  a.flags |= FLAG_VALID;
  if (x != x) { a.flags |= FLAG_NAN; return -Consts<C>::inf(); }
  if (x == Consts<C>::inf()) { a.npos += 1; return -Consts<C>::inf(); }
  return x;
}

// The clean value alone, without bookkeeping (for second sweeps).
template <class C> __device__ __forceinline__ C clean(C x, bool valid) {
  return (valid && x == x && x != Consts<C>::inf()) ? x : -Consts<C>::inf();
}

// e^z = p 2^n: n = round(z log2 e), p = e^t, t = z - n ln 2 (|t| <= ln2 / 2).
// Entries below -2T contribute nothing: n = -inf, p = 0 (the identity's part).
template <class C> __device__ __forceinline__ void exp_pn(C z, C& p, C& n, C& t) {
  if (!(z >= C(-2) * Consts<C>::large_logit())) {  // also z = -inf
    p = C(0); n = -Consts<C>::inf(); t = C(0);
    return;
  }
  n = rint_c(z * Consts<C>::log2e());
  t = fma_c(n, -Consts<C>::ln2_hi(), z);
  t = fma_c(n, -Consts<C>::ln2_lo(), t);
  p = exp_c(t);
}

// Add the clean entries c[0..K) to a (two-pass): one exponent update per group.
template <class C, int K> __device__ __forceinline__ void add_two_pass(Acc<C>& a, const C* c, C shift) {
  C p[K], n[K];
  C emax = a.e;
  for (int k = 0; k < K; ++k) {
    C t;
    exp_pn(c[k] - shift, p[k], n[k], t);
    emax = max_c(emax, n[k]);
  }
  if (emax == -Consts<C>::inf()) return;
  C v = a.v * pow2_rescale(a.e, emax);
  for (int k = 0; k < K; ++k) v += p[k] * pow2_rescale(n[k], emax);
  a.v = v;
  a.e = emax;
}

// Add the clean entries c[0..K) to a (max-based, online): one rescale per group.
template <class C, int K> __device__ __forceinline__ void add_max_based(Acc<C>& a, const C* c) {
  C mnew = a.m;
  for (int k = 0; k < K; ++k) mnew = max_c(mnew, c[k]);
  if (mnew == -Consts<C>::inf()) return;
  C d = a.v * exp_rescale(a.m, mnew);
  for (int k = 0; k < K; ++k) d += exp_c(c[k] - mnew);  // exp(-inf) = 0
  a.v = d;
  a.m = mnew;
}

// ------------------------------------------------------------------ the row's result

// The finished row: its accumulator read into the numbers the output needs.
template <class C> struct RowResult {
  int special;   // 0: normal; 1: NaN row; 2: +inf entries share; 3: fully masked
  C shift;       // two-pass: the max subtracted (0 unless |max| >= T)
  C m, d_inv, log_d;        // max-based
  C v_inv, e, log_sum_rel;  // two-pass: log_sum_rel = log v + e ln 2
  C share, log_share;       // 1/k and -log k for k +inf entries
  C lse;                    // logsumexp
};

template <class C> __device__ __forceinline__ RowResult<C> finish_row(const Acc<C>& a, int alg, C shift) {
  RowResult<C> r;
  const C inf = Consts<C>::inf();
  const C nan = inf - inf;
  r.shift = shift;
  r.m = a.m; r.d_inv = C(0); r.log_d = C(0); r.v_inv = C(0); r.e = C(0); r.log_sum_rel = C(0);
  r.share = C(0); r.log_share = -inf;
  const bool any_valid = (a.flags & FLAG_VALID) != 0;
  if (a.flags & FLAG_NAN) {
    r.special = 1; r.lse = nan;
  } else if (a.npos > 0) {
    r.special = 2; r.lse = inf;
    r.share = C(1) / C(a.npos);
    r.log_share = -log_c(C(a.npos));
  } else if (!any_valid) {
    r.special = 3; r.lse = -inf;
  } else if (a.m == -inf) {  // all unmasked entries are -inf: 0/0
    r.special = 1; r.lse = -inf;
  } else {
    r.special = 0;
    if (alg == ALG_MAX_BASED) {
      r.d_inv = C(1) / a.v;
      r.log_d = log_c(a.v);
      r.lse = a.m + r.log_d;
    } else {
      r.v_inv = C(1) / a.v;
      r.e = a.e;
      r.log_sum_rel = log_c(a.v) + a.e * Consts<C>::ln2();
      r.lse = shift + r.log_sum_rel;
    }
  }
  return r;
}

// The output of one entry x (raw, unclassified) of a finished row.
template <class C> __device__ __forceinline__ C entry_result(C x, bool valid, const RowResult<C>& r, int op, int alg) {
  const C inf = Consts<C>::inf();
  const bool log_op = op == OP_LOG_SOFTMAX;
  if (!valid || r.special == 3) return log_op ? -inf : C(0);
  if (r.special == 1) return inf - inf;
  if (r.special == 2) {
    if (x == inf) return log_op ? r.log_share : r.share;
    return log_op ? -inf : C(0);
  }
  // Masked entries were handled; an unmasked entry of a normal row is finite or -inf.
  if (alg == ALG_MAX_BASED) {
    C z = x - r.m;  // -inf past the range: exp gives 0, the log -inf
    return log_op ? z - r.log_d : exp_c(z) * r.d_inv;
  }
  C z = x - r.shift, p, n, t;
  exp_pn(z, p, n, t);
  if (log_op) {
    if (n == -inf) return z - r.log_sum_rel;  // far below: exact enough (|z| > 2T)
    return (t - (r.log_sum_rel - r.e * Consts<C>::ln2())) + (n - r.e) * Consts<C>::ln2();
  }
  return (p * r.v_inv) * pow2_rescale(n, r.e);
}

// ------------------------------------------------------------------ layout

// Up to four collapsed batch dimensions, C order: row r's offset from its
// coordinates; b1..b3 the sizes of dimensions 1..3 (unused ones 1, stride 0),
// t0..t3 the strides in elements.
__device__ __forceinline__ long long batch_offset(long long r, long long s1, long long s2, long long s3,
                                                  long long t0, long long t1, long long t2, long long t3) {
  long long i3 = r % s3; r /= s3;
  long long i2 = r % s2; r /= s2;
  long long i1 = r % s1; r /= s1;
  return r * t0 + i1 * t1 + i2 * t2 + i3 * t3;
}

// The arguments every kernel shares, in one order (cupy_cuda.py builds them once).
#define ROW_ARGS                                                                         \
  const T *__restrict__ x, const unsigned char *__restrict__ mask, T *__restrict__ y,  \
      long long rows, long long n, long long xs, long long ms, int has_mask,          \
      long long b1, long long b2, long long b3,                                        \
      long long xb0, long long xb1, long long xb2, long long xb3,                      \
      long long mb0, long long mb1, long long mb2, long long mb3, int op, int alg

// ------------------------------------------------------------------ reductions

template <class C> __device__ __forceinline__ Acc<C> shfl_xor(const Acc<C>& a, int lane_mask) {
  Acc<C> b;
  b.m = __shfl_xor_sync(0xffffffffu, a.m, lane_mask);
  b.v = __shfl_xor_sync(0xffffffffu, a.v, lane_mask);
  b.e = __shfl_xor_sync(0xffffffffu, a.e, lane_mask);
  b.npos = __shfl_xor_sync(0xffffffffu, a.npos, lane_mask);
  b.flags = __shfl_xor_sync(0xffffffffu, a.flags, lane_mask);
  return b;
}

// Butterfly over a warp: every lane ends with the warp's accumulator.
template <class C> __device__ __forceinline__ Acc<C> warp_reduce(Acc<C> a, int alg) {
  for (int o = 16; o > 0; o >>= 1) a = acc_merge(a, shfl_xor(a, o), alg);
  return a;
}

// Over the whole block (blockDim.x a multiple of 32, <= 1024): every thread gets it.
// `scratch` holds 32 accumulators; the block synchronises twice.
template <class C> __device__ __forceinline__ Acc<C> block_reduce(Acc<C> a, int alg, Acc<C>* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  a = warp_reduce(a, alg);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  a = lane < warps ? scratch[lane] : acc_identity<C>();
  return warp_reduce(a, alg);
}

// ------------------------------------------------------------------ rows in registers

// Entries of a thread's registers summed together (one rescale per group).
#define CACHED_GROUP 4

// WARP: one warp per row, blockDim.x / 32 rows per block.  Else one block per row.
// Each thread keeps ITEMS entries (j = lane + k * G, G the group's threads).
template <class T, int ITEMS, bool WARP, int ALG>
__global__ void __launch_bounds__(1024) softmax_cached(ROW_ARGS) {
  // ALG is a template parameter here (the register budget is tight: only one
  // algorithm's finishing code is live); the `alg_` argument is ignored.
  (void)alg;
  enum { alg_ = ALG };
  typedef typename ComputeOf<T>::type C;
  __shared__ Acc<C> scratch[32];
  const long long row = WARP ? (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)
                             : (long long)blockIdx.x;
  const int g = WARP ? (threadIdx.x & 31) : threadIdx.x;
  const int G = WARP ? 32 : blockDim.x;
  if (WARP && row >= rows) return;  // whole warps leave: no shuffle misses them
  const long long xo = batch_offset(row, b1, b2, b3, xb0, xb1, xb2, xb3);
  const long long mo = has_mask ? batch_offset(row, b1, b2, b3, mb0, mb1, mb2, mb3) : 0;
  const T* xr = x + xo;
  const unsigned char* mr = mask + mo;
  T* yr = y + row * n;

  // Only the raw values and a validity bit stay live (ITEMS registers + 1): the
  // clean values are formed again, GROUP at a time, for each sweep.
  C v[ITEMS];
  unsigned valid_bits = 0;  // bit k: entry k exists and is unmasked
  Acc<C> a = acc_identity<C>();
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    const long long j = g + (long long)k * G;
    const bool in = j < n;
    v[k] = in ? to_compute(xr[(int)j * xs]) : C(0);
    const bool ok = in && (!has_mask || mr[(int)j * ms]);
    valid_bits |= (ok ? 1u : 0u) << k;
  }
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) a.m = max_c(a.m, classify(v[k], ((valid_bits >> k) & 1u) != 0, a));
  // a.m is now the thread's max: the online merge of its entries needs no rescale.
  const C thread_max = a.m;
  a.m = -Consts<C>::inf();
  C shift = C(0);
#pragma unroll
  for (int k0 = 0; k0 < ITEMS; k0 += CACHED_GROUP) {
    C c[CACHED_GROUP];
#pragma unroll
    for (int k = 0; k < CACHED_GROUP; ++k) c[k] = clean(v[k0 + k], ((valid_bits >> (k0 + k)) & 1u) != 0);
    if (alg_ == ALG_MAX_BASED) add_max_based<C, CACHED_GROUP>(a, c);
    else add_two_pass<C, CACHED_GROUP>(a, c, shift);
  }
  a.m = thread_max;
  a = WARP ? warp_reduce(a, alg_) : block_reduce(a, alg_, scratch);
  if (alg_ == ALG_TWO_PASS && a.m != -Consts<C>::inf() && !(a.m < Consts<C>::large_logit() &&
                                                          a.m > -Consts<C>::large_logit())) {
    // Large logits: sum again with the max subtracted (uniform over the group).
    shift = a.m;
    Acc<C> b = acc_identity<C>();
#pragma unroll
    for (int k0 = 0; k0 < ITEMS; k0 += CACHED_GROUP) {
      C c[CACHED_GROUP];
#pragma unroll
      for (int k = 0; k < CACHED_GROUP; ++k) c[k] = clean(v[k0 + k], ((valid_bits >> (k0 + k)) & 1u) != 0);
      add_two_pass<C, CACHED_GROUP>(b, c, shift);
    }
    b = WARP ? warp_reduce(b, alg_) : block_reduce(b, alg_, scratch);
    a.v = b.v; a.e = b.e;
  }
  const RowResult<C> r = finish_row(a, alg_, shift);
  if (op == OP_LOGSUMEXP) {
    if (g == 0) y[row] = Store<T>::from(r.lse);
    return;
  }
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    const long long j = g + (long long)k * G;
    if (j < n) yr[j] = Store<T>::from(entry_result(v[k], ((valid_bits >> k) & 1u) != 0, r, op, alg_));
  }
}

// ------------------------------------------------------------------ long rows

// Entries each thread handles together (loads in flight, one rescale per group).
#define GROUP 4

// Pass 1: the accumulator of chunk c of row r, block b = r * nchunks + c, into
// partial[b].  With `redo`, only rows whose merged max (row_acc) has |m| >= T are
// summed again, shifted by that max (two-pass's large-logit path); others return.
template <class T>
__global__ void __launch_bounds__(512) softmax_partial(ROW_ARGS, long long chunk, long long nchunks,
                                                      Acc<typename ComputeOf<T>::type>* partial,
                                                      const Acc<typename ComputeOf<T>::type>* row_acc,
                                                      int redo) {
  typedef typename ComputeOf<T>::type C;
  __shared__ Acc<C> scratch[32];
  const long long blk = blockIdx.x;
  const long long row = blk / nchunks, ci = blk % nchunks;
  C shift = C(0);
  if (redo) {
    const Acc<C> ra = row_acc[row];
    const bool large = ra.m != -Consts<C>::inf() &&
                       !(ra.m < Consts<C>::large_logit() && ra.m > -Consts<C>::large_logit());
    if (!large || ra.npos > 0 || (ra.flags & FLAG_NAN)) return;  // uniform per block
    shift = ra.m;
  }
  const long long xo = batch_offset(row, b1, b2, b3, xb0, xb1, xb2, xb3);
  const long long mo = has_mask ? batch_offset(row, b1, b2, b3, mb0, mb1, mb2, mb3) : 0;
  const long long begin = ci * chunk;
  const long long end = begin + chunk < n ? begin + chunk : n;
  Acc<C> a = acc_identity<C>();
  for (long long j0 = begin + threadIdx.x; j0 < end; j0 += (long long)blockDim.x * GROUP) {
    C c[GROUP];
#pragma unroll
    for (int k = 0; k < GROUP; ++k) {
      const long long j = j0 + (long long)k * blockDim.x;
      const bool in = j < end;
      const C xv = in ? to_compute(x[xo + j * xs]) : C(0);
      const bool ok = in && (!has_mask || mask[mo + j * ms]);
      c[k] = classify(xv, ok, a);
    }
    if (alg == ALG_MAX_BASED) {
      add_max_based<C, GROUP>(a, c);
    } else {
#pragma unroll
      for (int k = 0; k < GROUP; ++k) a.m = max_c(a.m, c[k]);
      add_two_pass<C, GROUP>(a, c, shift);
    }
  }
  a = block_reduce(a, alg, scratch);
  if (threadIdx.x == 0) {
    if (redo) {  // keep the row's bookkeeping; replace the sum
      Acc<C> old = partial[blk];
      old.v = a.v; old.e = a.e;
      partial[blk] = old;
    } else {
      partial[blk] = a;
    }
  }
}

// Merge: one block per row reduces its nchunks partials into row_acc[row]; for
// logsumexp it also writes y[row].  `shifted`: the partials of large rows were
// summed with the max subtracted (after a redo pass).
template <class T>
__global__ void __launch_bounds__(1024) softmax_merge(const Acc<typename ComputeOf<T>::type>* partial,
                                                     Acc<typename ComputeOf<T>::type>* row_acc, T* y,
                                                     long long rows, long long nchunks, int op, int alg) {
  typedef typename ComputeOf<T>::type C;
  __shared__ Acc<C> scratch[32];
  const long long row = blockIdx.x;
  Acc<C> a = acc_identity<C>();
  for (long long i = threadIdx.x; i < nchunks; i += blockDim.x) a = acc_merge(a, partial[row * nchunks + i], alg);
  a = block_reduce(a, alg, scratch);
  if (threadIdx.x == 0) {
    row_acc[row] = a;
    if (op == OP_LOGSUMEXP) {
      C shift = C(0);
      if (alg == ALG_TWO_PASS && a.m != -Consts<C>::inf() &&
          !(a.m < Consts<C>::large_logit() && a.m > -Consts<C>::large_logit()))
        shift = a.m;
      y[row] = Store<T>::from(finish_row(a, alg, shift).lse);
    }
  }
}

// Pass 2: every entry of chunk c of row r from the row's accumulator.
template <class T>
__global__ void __launch_bounds__(512) softmax_finalize(ROW_ARGS, long long chunk, long long nchunks,
                                                       const Acc<typename ComputeOf<T>::type>* row_acc) {
  typedef typename ComputeOf<T>::type C;
  const long long blk = blockIdx.x;
  const long long row = blk / nchunks, ci = blk % nchunks;
  const Acc<C> a = row_acc[row];
  C shift = C(0);
  if (alg == ALG_TWO_PASS && a.m != -Consts<C>::inf() &&
      !(a.m < Consts<C>::large_logit() && a.m > -Consts<C>::large_logit()))
    shift = a.m;
  const RowResult<C> r = finish_row(a, alg, shift);
  const long long xo = batch_offset(row, b1, b2, b3, xb0, xb1, xb2, xb3);
  const long long mo = has_mask ? batch_offset(row, b1, b2, b3, mb0, mb1, mb2, mb3) : 0;
  const long long begin = ci * chunk;
  const long long end = begin + chunk < n ? begin + chunk : n;
  for (long long j0 = begin + threadIdx.x; j0 < end; j0 += (long long)blockDim.x * GROUP) {
    C xv[GROUP];
    bool ok[GROUP];
#pragma unroll
    for (int k = 0; k < GROUP; ++k) {
      const long long j = j0 + (long long)k * blockDim.x;
      const bool in = j < end;
      xv[k] = in ? to_compute(x[xo + j * xs]) : C(0);
      ok[k] = in && (!has_mask || mask[mo + j * ms]);
    }
#pragma unroll
    for (int k = 0; k < GROUP; ++k) {
      const long long j = j0 + (long long)k * blockDim.x;
      if (j < end) y[row * n + j] = Store<T>::from(entry_result(xv[k], ok[k], r, op, alg));
    }
  }
}
