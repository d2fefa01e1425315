// The function table each ISA unit fills in.
//
// This header is shared by every translation unit, so it holds only plain
// data types and declarations: no inline functions, nothing the linker could
// merge across units compiled with different -m flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>  // std::index_sequence in kernels.inc (included inside a namespace)

namespace softmaxlib {

// Storage types. float16 and bfloat16 are raw 16-bit patterns; the kernels
// widen them to float32 in registers.
struct f16_t { std::uint16_t bits; };
struct bf16_t { std::uint16_t bits; };

// Accumulator of the two-pass (exponent tracking) sum of one piece:
// sum = v * 2^e. e (the largest round(x log2 e)) doubles as the detector of
// rows beyond the range reduction's exact range and of +-inf rows, so pass 1
// needs no max pass. m: the piece's largest entry, kept beside the sum; it
// bounds the row's logsumexp from below.
template <class S> struct ExtExpAcc { S v; S e; S m; };
// Accumulator of the online (running max) sum of one piece.
template <class S> struct OnlineAcc { S m; S d; };

// Parameters of e^(d/T) for a temperature T (kernels with the _t suffix),
// filled by Kernels::prepare_temperature. Two forms:
//  fused (T within a window where every scaled constant stays a normal
//  number): the range reduction and the polynomial carry T, so e^(d/T) costs
//  exactly the operations of e^d (no multiply by 1/T): n = round(d log2e/T),
//  t = d - n (T ln2) with T ln2 split hi + lo (hi short enough that n*hi is
//  exact), u = t (c[0] + t (c[1] + ...)) with c[0] = 1/T, c[k+1] = q_k / T^(k+2);
//  plain: d * inv_t, then the ordinary exp.
constexpr int kExpScaleCoeffs = 12;  // float: 4 + 2 used, double: 10 + 2
template <class S> struct ExpScale {
  S inv_t;                 // 1/T
  S log2e_t;               // log2(e) / T
  S ln2_hi_t, ln2_lo_t;    // T ln2 = hi + lo
  S lo_t;                  // d below this gives 0 (the exp's lower clamp times T)
  S big_lo_t;              // two-pass: x clamped below at -2 L T (L = the two-pass limit)
  S c[kExpScaleCoeffs];    // c[0] = 1/T, c[k + 1] = q_k / T^(k+2)
  int fused;               // 1: the fused form, 0: the plain one
  int shift;               // the max-based _t kernels' exps come out times 2^shift (see kernels.inc)
};

// The kernels for one storage type T computing in S (float, or double for T = double).
// Naming follows XNNPACK: r* reduce a piece, v* map it elementwise.
// Every kernel works on a contiguous piece of n >= 1 elements; the caller
// splits rows into fixed chunks and merges the reductions in a fixed order.
template <class T, class S> struct Kernels {
  // max over the piece (a NaN may or may not be reported: callers detect NaN
  // rows through the sums, which NaN always poisons).
  S (*rmax)(const T* x, std::size_t n);
  // sum of exp(x - m)
  S (*raddexpminusmax)(const T* x, std::size_t n, S m);
  // sum of exp(x - m) over the entries below m; adds the count of entries
  // equal to m to *count (rows the max dominates: log1p of the rest)
  S (*raddexpminusmax_beside)(const T* x, std::size_t n, S m, S* count);
  // sum of exp(x - m), storing each exp(x - m) in buf (three-pass-reload)
  S (*raddstoreexpminusmax)(const T* x, std::size_t n, S m, S* buf);
  // y = exp(x - m) * scale (three-pass, online)
  void (*vscaleexpminusmax)(const T* x, std::size_t n, S m, S scale, T* y);
  // y = buf * scale (three-pass-reload); buf may alias y when T == S
  void (*vscale)(const S* buf, std::size_t n, S scale, T* y);
  // y = (x - m) - logd (max-based log_softmax)
  void (*vlogsoftmaxminusmax)(const T* x, std::size_t n, S m, S logd, T* y);
  // online (m, d) of the piece, starting from (lowest finite, 0)
  OnlineAcc<S> (*ronlineexp)(const T* x, std::size_t n);
  // (v, e) with sum exp(x) = v * 2^e, entries clamped below at -2*T_big
  ExtExpAcc<S> (*raddextexp)(const T* x, std::size_t n);
  // the same without the max (m = -inf): softmax's, which needs the sum alone
  ExtExpAcc<S> (*raddextexp_nomax)(const T* x, std::size_t n);
  // y = exp(x) / (v * 2^e) given inv_v = 1/v
  void (*vscaleextexp)(const T* x, std::size_t n, S inv_v, S e, T* y);
  // y = (t - log v) + (n - e) ln2, or x - lse for entries below -2*T_big
  void (*vlogsoftmaxextexp)(const T* x, std::size_t n, S logv, S e, S lse, T* y);

  // With a temperature T: op(x / T) without forming x / T, sc from
  // prepare_temperature.
  // fills sc for temperature t (finite, > 0); returns false when t is too
  // extreme for the vector kernels (the driver then takes its scalar path)
  bool (*prepare_temperature)(double t, ExpScale<S>* sc);
  // sum of exp((x - m) / T) (times 2^sc->shift, as every exp of the _t kernels)
  S (*raddexpminusmax_t)(const T* x, std::size_t n, S m, const ExpScale<S>* sc);
  // the same over the entries below m, adding the count of those equal to m to *count
  S (*raddexpminusmax_beside_t)(const T* x, std::size_t n, S m, const ExpScale<S>* sc, S* count);
  // the same as raddexpminusmax_t, storing each exp((x - m) / T) in buf
  S (*raddstoreexpminusmax_t)(const T* x, std::size_t n, S m, const ExpScale<S>* sc, S* buf);
  // y = exp((x - m) / T) * scale
  void (*vscaleexpminusmax_t)(const T* x, std::size_t n, S m, S scale, const ExpScale<S>* sc, T* y);
  // y = (x - m) / T - logd (no overflow in x - m)
  void (*vlogsoftmaxminusmax_t)(const T* x, std::size_t n, S m, S logd, S inv_t, T* y);
  // online (m, d) of the piece with d = sum exp((x - m) / T), m the max of x
  OnlineAcc<S> (*ronlineexp_t)(const T* x, std::size_t n, S inv_t);
  // adaptive temperature: returns d = sum exp(x - m) and adds
  // sum exp(x - m) (x - m) to *s1 (the entropy's sum, same pass)
  S (*raddexpminusmax_entropy)(const T* x, std::size_t n, S m, S* s1);
  // two-pass of x / T (fused form only): as raddextexp, vscaleextexp and
  // vlogsoftmaxextexp with x / T for x (lse is that of x / T)
  ExtExpAcc<S> (*raddextexp_t)(const T* x, std::size_t n, const ExpScale<S>* sc);
  ExtExpAcc<S> (*raddextexp_nomax_t)(const T* x, std::size_t n, const ExpScale<S>* sc);
  void (*vscaleextexp_t)(const T* x, std::size_t n, S inv_v, S e, const ExpScale<S>* sc, T* y);
  void (*vlogsoftmaxextexp_t)(const T* x, std::size_t n, S logv, S e, S lse, const ExpScale<S>* sc, T* y);
};

// Every member of Kernels as X(name, template arguments of its definition in
// kernels.inc): make_kernels fills the table from this list and the module's
// kernel_names() reads it, so neither can drift from the struct above (a
// static_assert in kernels.inc checks the count).
#define SOFTMAXLIB_KERNELS(X)                                                                        \
  X(rmax, A, T) X(raddexpminusmax, A, T) X(raddexpminusmax_beside, A, T)                            \
  X(raddstoreexpminusmax, A, T) X(vscaleexpminusmax, A, T)                                           \
  X(vscale, A, T) X(vlogsoftmaxminusmax, A, T) X(ronlineexp, A, T) X(raddextexp, A, T)              \
  X(vscaleextexp, A, T) X(vlogsoftmaxextexp, A, T) X(prepare_temperature, A)                         \
  X(raddexpminusmax_t, A, T) X(raddexpminusmax_beside_t, A, T)                                       \
  X(raddstoreexpminusmax_t, A, T) X(vscaleexpminusmax_t, A, T)                                       \
  X(vlogsoftmaxminusmax_t, A, T) X(ronlineexp_t, A, T) X(raddexpminusmax_entropy, A, T)             \
  X(raddextexp_t, A, T) X(vscaleextexp_t, A, T) X(vlogsoftmaxextexp_t, A, T)                      \
  X(raddextexp_nomax, A, T) X(raddextexp_nomax_t, A, T)

// The backward kernels' vector parts (backward.inc) for the compute type S:
// each takes one contiguous piece of a row; the sums come back in double.
template <class S> struct BackwardKernels {
  double (*rsum)(const S* a, std::size_t n);                    // sum a
  double (*rdot)(const S* a, const S* b, std::size_t n);        // sum a b
  double (*rdotfinite)(const S* a, const S* b, std::size_t n);  // sum a b over a > -inf
  void (*vsoftmaxgrad)(const S* y, const S* g, std::size_t n, S s, S* dx);    // y (g - s)
  void (*vlogsoftmaxgrad)(const S* y, const S* g, std::size_t n, S sg, S* dx);  // (g - sg) - expm1(y) sg
  void (*vlogsumexpgrad)(const S* x, std::size_t n, S inv_t, S lse, S g, S* dx);  // g exp(x inv_t - lse)
};

struct KernelTable {
  const char* isa;
  // Rows are cut into chunks of this many elements (a multiple of every
  // vector width), always at the same places. Within a chunk each lane
  // accumulator adds about chunk / (lanes * unroll) = 64..128 terms in
  // sequence; chunks are merged pairwise in double. So the narrower the
  // vectors, the shorter the chunk.
  std::size_t chunk;
  Kernels<float, float> f32;
  Kernels<double, double> f64;
  Kernels<f16_t, float> f16;
  Kernels<bf16_t, float> bf16;
  // test-only: the vector exp in plain and (p, n) form
  void (*exp_f32)(const float* x, std::size_t n, float* y);
  void (*exp_pn_f32)(const float* x, std::size_t n, float* p, float* e);
  void (*exp_nonpositive_f32)(const float* x, std::size_t n, float* y);  // the kernels' exp (x <= 0)
  void (*exp_f64)(const double* x, std::size_t n, double* y);
  // test-only: the temperature kernels' e^(d/T) 2^shift, d <= 0
  // (returns the shift of ExpScale, -1 for T outside the window)
  int (*exp_t_f32)(const float* d, std::size_t n, double t, float* y);
  int (*exp_t_f64)(const double* d, std::size_t n, double t, double* y);
  BackwardKernels<float> backward_f32;
  BackwardKernels<double> backward_f64;
  // test-only: the backward's vector expm1
  void (*expm1_f32)(const float* x, std::size_t n, float* y);
  void (*expm1_f64)(const double* x, std::size_t n, double* y);
};

// Above this |row max| the two-pass range reduction is no longer exact enough
// (n = round(x log2 e) needs n*ln2 formed to ~2^-24 relative); such rows take
// the max-based path, which is exact there (Sterbenz). The reference and the
// CUDA kernels use 256 / 2048 instead: their split of ln 2 is exact for fewer
// n (see _large_logit in softmaxlib/_reference, which says why each path has
// its own value).
constexpr float kExtExpLimitF32 = 0x1p20f;
constexpr double kExtExpLimitF64 = 0x1p19;  // |n| < 2^21 after clamping at -2L: n*ln2_hi exact

namespace baseline { const KernelTable* table(); }
namespace avx2 { const KernelTable* table(); }
namespace avx512f { const KernelTable* table(); }

}  // namespace softmaxlib
