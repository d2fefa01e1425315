"""The Array-API reference of every softmax algorithm: the executable specification.

Everything here uses only functions of the Array API standard (no NumPy), so it runs
unchanged on NumPy, CuPy, PyTorch, JAX (traced or not), Dask and array-api-strict.
Each fast path is tested against this module and against a float64 / mpmath oracle.

The algorithms work on *rows*: the reduced axes moved last and flattened into one axis
of length ``n`` (``to_rows``), so that each is written once, along ``axis=-1``.
They see a *clean* row, in which every entry is finite or ``-inf``: the contract's
special values (masked entries, NaN, ``+inf``) are set aside first by ``compute`` and
applied last by ``_apply_special_values``, in one place for all algorithms.

Names follow the papers:

* three-pass: m = max x, d = sum exp(x - m), y = exp(x - m) / d.
* three-pass-reload: the same, with exp(x - m) stored in pass 2 and reloaded in pass 3.
* online (Milakov & Gimelshein 2018): the running pair (m, d), merged with
  (m, d) + (m', d') = (M, d e^(m - M) + d' e^(m' - M)), M = max(m, m').
* two-pass (Dukhan & Ablavatski 2020): e^x = p 2^n with p = e^t, t = x - n ln 2, and the
  sum kept as an extended-exponent pair (v, e) merged with
  (v, e) + (v', e') = (v 2^(e - M) + v' 2^(e' - M), M), M = max(e, e').

A ``temperature`` rescales the clean row before the algorithm runs: op(x / T) is
computed as op(z) with z = (x - max x) / T (max-shifted first, so that a small T
cannot overflow x / T), logsumexp adding max x / T back.  The adaptive temperature
(Velickovic et al. 2024) is z = beta (x - max x), with beta from the row's entropy.
"""

import math

#: The concrete algorithms, in the order of the design's table.
ALGORITHMS = ("three-pass", "three-pass-reload", "online", "two-pass")

#: The algorithm the reference runs for ``algorithm="auto"``: the fewest array operations.
AUTO_ALGORITHM = "three-pass-reload"

OPERATIONS = ("softmax", "log_softmax", "logsumexp")

#: The adaptive temperature's fit beta = p(H) of Velickovic et al. 2024 (arXiv
#: 2410.01104, Fig. 5), coefficients highest power first, and the entropy above which
#: it applies.
ADAPTIVE_POLYNOMIAL = (-0.037, 0.481, -2.3, 4.917, -1.791)
ADAPTIVE_MIN_ENTROPY = 0.5

# Rows are split into blocks of this many entries for the online and two-pass
# algorithms: a block stands for one SIMD lane's or one thread's piece of the row.
BLOCK = 256

LOG2E = float.fromhex("0x1.715476p0")  # log2(e) rounded to float32, exact in float64 too.
LN2 = float.fromhex("0x1.62E42FEFA39EFp-1")  # ln(2) rounded to float64.
# Cody & Waite's split of ln 2 for the range reduction t = x - n ln 2: LN2_HI is ln 2
# rounded to 14 significant bits, so n * LN2_HI is exact for |n| < 2^10 in float32 and
# |n| < 2^39 in float64, and LN2_LO = ln 2 - LN2_HI rounded to float64.
LN2_HI = float.fromhex("0x1.62E8p-1")
LN2_LO = float.fromhex("-0x1.E8082E3086543p-16")


def compute(xp, op, x, axes, where, algorithm, temperature=None):
    """Compute ``op`` of ``x`` over ``axes`` with the reference ``algorithm``.

    ``x`` is a floating array of the namespace ``xp`` with ``size > 0`` or not;
    ``axes`` a sorted tuple of distinct non-negative axes (may be empty only for
    ``x.ndim == 0``, which the caller reshapes beforehand); ``where`` None or a boolean
    array of ``x``'s shape.  ``temperature`` is None, a Python float (positive, may be
    ``inf``), the string ``"adaptive"``, or a floating array of the batch shape (``x``'s
    shape without ``axes``); rows whose temperature is not positive (NaN, say, from a
    traced array nobody could check) give NaN.  Returns the unreduced result for softmax
    and log_softmax and the reduced one (axes removed) for logsumexp, in ``x``'s dtype.
    """
    if algorithm == "auto":
        algorithm = AUTO_ALGORITHM
    run = _ALGORITHMS[algorithm]
    if temperature is None:
        return on_rows(xp, op, x, axes, where, lambda op, rows, valid, clean: (run(xp, op, clean), None))

    def scaled(op, rows, valid, clean):
        return _with_temperature(xp, op, run, rows, valid, clean, temperature)

    return on_rows(xp, op, x, axes, where, scaled)


def on_rows(xp, op, x, axes, where, core, special_op=None):
    """Run ``core`` on the clean rows of ``x`` and apply the contract around it.

    The frame every reference shares: float16 and bfloat16 computed in float32,
    the reduced axes made rows, empty inputs, the special values set aside
    (``clean``: masked, NaN and +inf entries as -inf) and applied afterwards, the
    layout and dtype restored.  ``core(op, rows, valid, clean)`` returns
    ``(result, nan_rows)``, ``nan_rows`` None or a boolean (batch..., 1) array of
    rows to make NaN.  ``special_op`` names whose special values apply ("softmax",
    "log_softmax", "logsumexp"; default ``op``).
    """
    out_dtype = x.dtype
    if is_half(x.dtype):
        # float16 and bfloat16 are computed in float32 and rounded once at the end.
        x = xp.astype(x, xp.float32)
    special_op = special_op or op
    batch_shape, rows, valid = to_rows(xp, x, axes, where)
    n = rows.shape[-1]
    if n == 0 or math.prod(batch_shape) == 0:
        result = _empty_result(xp, special_op, rows)
    else:
        clean = xp.where(valid & ~xp.isnan(rows) & (rows != math.inf), rows, -math.inf)
        result, nan_rows = core(op, rows, valid, clean)
        result = _apply_special_values(xp, special_op, rows, valid, result, nan_rows)
    if special_op == "logsumexp":
        result = xp.reshape(result, batch_shape)
    else:
        result = from_rows(xp, result, x.shape, axes)
    if out_dtype != result.dtype:
        result = xp.astype(_overflow_to_inf(xp, result, out_dtype), out_dtype)
    return result


# --------------------------------------------------------------------------- layout


def to_rows(xp, x, axes, where):
    """Move ``axes`` last and flatten them: returns (batch shape, rows, valid)."""
    batch_axes = tuple(a for a in range(x.ndim) if a not in axes)
    batch_shape = tuple(x.shape[a] for a in batch_axes)
    n = math.prod(x.shape[a] for a in axes)
    perm = batch_axes + tuple(axes)

    def rows_of(a):
        return xp.reshape(xp.permute_dims(a, perm), batch_shape + (n,))

    rows = rows_of(x)
    valid = xp.ones(rows.shape, dtype=xp.bool, device=device_of(x)) if where is None else rows_of(where)
    return batch_shape, rows, valid


def from_rows(xp, y, shape, axes):
    """Inverse of ``to_rows`` for an unreduced result."""
    batch_axes = tuple(a for a in range(len(shape)) if a not in axes)
    perm = batch_axes + tuple(axes)
    y = xp.reshape(y, tuple(shape[a] for a in perm))
    inverse = tuple(perm.index(a) for a in range(len(shape)))
    return xp.permute_dims(y, inverse)


def _empty_result(xp, op, rows):
    if op == "logsumexp":
        return xp.full(rows.shape[:-1], -math.inf, dtype=rows.dtype, device=device_of(rows))
    return rows  # no element to compute: an empty array of the right shape


# --------------------------------------------------------------------------- the algorithms
# Each takes a clean row (entries finite or -inf, never NaN or +inf) along the last
# axis and returns y (softmax or log_softmax, the row's shape) or the logsumexp (the
# row's shape without the last axis).  A row that is all -inf gives finite or -inf
# garbage here, never a floating-point exception: _apply_special_values replaces it.


def three_pass(xp, op, x):
    """Pass 1: m = max x.  Pass 2: d = sum exp(x - m).  Pass 3: y = exp(x - m) / d."""
    m = safe_max(xp, x)
    e = xp.exp(subtract(xp, x, m))
    d = xp.sum(e, axis=-1, keepdims=True)
    return _max_based_result(xp, op, x, m, d, _sum_beside_max(xp, x, m, e), None)


def three_pass_reload(xp, op, x):
    """As three-pass, but pass 2 stores exp(x - m) and pass 3 reloads it."""
    m = safe_max(xp, x)
    stored = xp.exp(subtract(xp, x, m))
    d = xp.sum(stored, axis=-1, keepdims=True)
    return _max_based_result(xp, op, x, m, d, _sum_beside_max(xp, x, m, stored), None if op != "softmax" else stored)


def online(xp, op, x):
    """Milakov & Gimelshein's online normaliser, a block of the row at a time.

    Pass 1 turns each block into its pair (m_b, d_b) = (max, sum exp(x - m_b)) and
    merges the pairs with the associative operator, in a pairwise tree; pass 2 writes
    exp(x - m) / d with the merged pair.
    """
    m, count, rest = online_normaliser(xp, x)
    return _max_based_result(xp, op, x, m, count + rest, (count - 1) + rest, None)


def online_normaliser(xp, x):
    """The row's (m, count, rest) (keepdims), merged from per-block triples in a
    pairwise tree: m the max, count the entries equal to it, rest the sum of
    exp(x - m) over the others (d = count + rest)."""
    blocks = _blocks(xp, x, -math.inf)
    m_b = safe_max(xp, blocks)
    at_max = blocks == m_b
    e_b = xp.exp(subtract(xp, blocks, m_b))
    c_b = xp.sum(xp.astype(at_max, x.dtype), axis=-1)
    r_b = xp.sum(xp.where(at_max, xp.zeros_like(e_b), e_b), axis=-1)
    m, c, r = _tree_reduce(xp, _merge_max_count_rest, (-math.inf, 0.0, 0.0), m_b[..., 0], c_b, r_b)
    return m[..., None], c[..., None], r[..., None]


def two_pass(xp, op, x):
    """Dukhan & Ablavatski's two-pass softmax with exponent tracking.

    Pass 1 writes each e^x as p 2^n and sums the row as (v, e), sum e^x = v 2^e, with no
    max subtracted, so that no intermediate overflows.  Pass 2 writes p 2^(n - e) / v.

    The range reduction t = x - n ln 2 is only accurate while |x| is moderate, so rows
    whose max has magnitude >= ``_large_logit(x.dtype)`` are shifted by that max first
    (a max the kernels track inside pass 1).  For them x - max is exact for every entry
    that survives (Sterbenz's lemma), so the row stays exact.
    """
    m = safe_max(xp, x)
    threshold = _large_logit(xp, x.dtype)
    shift = xp.where(xp.abs(m) >= threshold, m, xp.zeros_like(m))
    z = subtract(xp, x, shift)
    p, n = _exp_parts(xp, z, threshold)
    n_b, p_b = _blocks(xp, n, -math.inf), _blocks(xp, p, 0.0)
    e_b = xp.max(n_b, axis=-1)
    v_b = xp.sum(p_b * _exp2_scale(xp, n_b, e_b[..., None]), axis=-1)
    v, e = _tree_reduce(xp, _merge_extended, (0.0, -math.inf), v_b, e_b)
    v, e = v[..., None], e[..., None]
    v = xp.where(v == 0, xp.ones_like(v), v)  # an all -inf row: any v, replaced later
    e = xp.where(e == -math.inf, xp.zeros_like(e), e)
    # The rounded v can put a result a few ulp outside its exact range (the max
    # term alone or nearly): each is held to it.
    if op == "softmax":
        return xp.minimum((p / v) * _exp2_scale(xp, n, e), xp.ones_like(v))
    # Rows the max dominates (d = sum e^(x - m) < 2): log d is near 0 and log v + e ln 2
    # carries an absolute error of a few ulp of 1, not a relative one; there the row is
    # summed again beside its max and finished max-based, with log1p.  Elsewhere
    # log d >= log 2 and the (v, e) form is accurate to the condition number.
    beyond_one = _sum_beside_max(xp, x, m, xp.exp(subtract(xp, x, m)))
    dominated = beyond_one < 1
    max_based = _max_based_result(xp, op, x, m, beyond_one + 1, beyond_one, None)
    if op == "logsumexp":
        count = xp.asarray(x.shape[-1], dtype=x.dtype)
        lse = shift + (xp.log(v) + e * LN2)
        lse = xp.squeeze(xp.minimum(xp.maximum(lse, m), m + xp.log(count)), axis=-1)
        return xp.where(xp.squeeze(dominated, axis=-1), max_based, lse)
    # log_softmax: t - log v + (n - e) ln 2, with t = z - n ln 2 formed in _exp_parts'
    # way; entries that the clamp left out (z < -2T) have no t: z - log(sum) is exact
    # enough there (|z| > 2T dwarfs the rounding).
    t = _reduce_by(xp, z, xp.where(n == -math.inf, xp.zeros_like(n), n))
    near = (t - xp.log(v)) + (n - e) * LN2
    far = z - (xp.log(v) + e * LN2)
    return xp.where(dominated, max_based, xp.minimum(xp.where(n == -math.inf, far, near), xp.zeros_like(v)))


_ALGORITHMS = {
    "three-pass": three_pass,
    "three-pass-reload": three_pass_reload,
    "online": online,
    "two-pass": two_pass,
}


# --------------------------------------------------------------------------- temperature


def _with_temperature(xp, op, run, rows, valid, clean, temperature):
    """``run`` on the clean row rescaled by ``temperature``: (result, rows to make NaN).

    The row is shifted by its max first, z = (x - m) / T, so that no T overflows it;
    z keeps the clean row's form (finite or -inf, max 0), so every algorithm runs on
    it unchanged.  logsumexp adds m / T back.  Where x - m itself overflowed (|x| and
    |m| near the range's end, of opposite signs), z = x / T - m / T: no cancellation
    there, and a large T brings it back into range.
    """
    m = safe_max(xp, clean)
    shifted = subtract(xp, clean, m)  # <= 0, or -inf
    finite = shifted > -math.inf
    overflowed = (clean > -math.inf) & ~finite
    zero = xp.zeros_like(shifted)
    # The inner where()s keep -inf out of the unselected branches: their gradients
    # would be inf * 0 = NaN under automatic differentiation.
    shifted_safe = xp.where(finite, shifted, zero)
    nan_rows = None
    if isinstance(temperature, str):  # "adaptive": z = beta (x - m), beta >= 1
        beta = adaptive_beta(xp, shifted)
        z = xp.where(finite, _multiply(xp, shifted_safe, beta), -math.inf)
        offset = _multiply(xp, m, beta)
    else:
        if not isinstance(temperature, float):
            # NaN or <= 0 (only a traced array gets here), told from the values as given:
            # a positive one that rounds to 0 in the row's dtype is the limit T -> 0.
            nan_rows = ~(temperature > 0)[..., None]
            temperature = _as_dtype(xp, temperature, rows.dtype)[..., None]
        z = xp.where(
            finite,
            _divide(xp, shifted_safe, temperature),
            xp.where(overflowed, _divide_overflowed(xp, xp.where(overflowed, clean, zero), m, temperature), -math.inf),
        )
        offset = _divide(xp, m, temperature)
    result = run(xp, op, z)
    if op == "logsumexp":
        result = result + xp.squeeze(offset, axis=-1)
    return result, nan_rows


# Rescaling without a floating-point exception: every operation below is guarded so
# that a result past the range is written as +-inf, never formed by overflowing (a
# lazy backend, Dask or array-api-strict, would raise NumPy's warning outside any
# errstate the caller sets).


def _as_dtype(xp, t, dtype):
    """Temperatures ``t`` in ``dtype``; those past its range become inf without the
    cast's overflow (which a lazy backend would report outside any errstate)."""
    if t.dtype == dtype:
        return t
    if xp.finfo(t.dtype).max > xp.finfo(dtype).max:
        t = xp.where(t > xp.finfo(dtype).max, math.inf, t)
    return xp.astype(t, dtype)


def _divide(xp, a, temperature):
    """a / T for finite a and T > 0, past the range +-inf; 0 where a = 0 (also where T
    rounded to 0 in the dtype) and where T = inf."""
    big = xp.finfo(a.dtype).max
    if isinstance(temperature, float):
        # T as the dtype holds it, as a per-row array would be: past the range it is
        # inf, below half the smallest subnormal 0 (the limit T -> 0); never a cast of
        # T that overflows or a 0 / 0.
        if temperature > float(big):
            return xp.zeros_like(a)
        if temperature < float(xp.finfo(a.dtype).smallest_normal) * float(xp.finfo(a.dtype).eps) / 2:
            infinite = xp.where(a < 0, -math.inf, xp.full_like(a, math.inf))
            return xp.where(a == 0, xp.zeros_like(a), infinite)
        keep = a == 0
        over = xp.abs(a) > big * min(temperature, 1.0)
    else:
        keep = (a == 0) | (temperature == math.inf)
        over = ~keep & (xp.abs(a) > big * xp.where(temperature < 1, temperature, xp.ones_like(temperature)))
    skip = keep | over
    divisor = temperature if isinstance(temperature, float) else xp.where(skip, 1.0, temperature)
    quotient = xp.where(skip, xp.zeros_like(a), a) / divisor
    return xp.where(over, xp.where(a < 0, -math.inf, xp.full_like(a, math.inf)), quotient)


def _divide_overflowed(xp, x, m, temperature):
    """(x - m) / T where x - m itself overflowed: x / T - m / T (opposite signs, no
    cancellation), which is back in range only for T > 1."""
    if isinstance(temperature, float):
        if temperature <= 1:
            return xp.full_like(x, -math.inf)
        if temperature > float(xp.finfo(x.dtype).max):  # T past the dtype's range is inf there
            return xp.zeros_like(x)
        return subtract(xp, x / temperature, m / temperature)
    above = temperature > 1
    safe = xp.where(above, temperature, xp.ones_like(temperature))
    return xp.where(above, subtract(xp, x / safe, m / safe), -math.inf)


def _multiply(xp, a, beta):
    """a beta for finite a and finite beta >= 1, past the range +-inf."""
    over = xp.abs(a) > xp.finfo(a.dtype).max / beta
    product = xp.where(over, xp.zeros_like(a), a) * beta
    return xp.where(over, xp.where(a < 0, -math.inf, xp.full_like(a, math.inf)), product)


def adaptive_beta(xp, shifted):
    """Velickovic et al.'s beta = max(1, p(H)) where H > 0.5, else 1 (keepdims).

    H is the exact Shannon entropy of softmax(x), from the sums the normaliser needs:
    with d = sum e^(x - m) and S1 = sum e^(x - m) (x - m) over the row,
    H = log d - S1 / d.  (The paper's listing adds 1e-9 inside its log; we do not.)
    ``shifted`` is x - m, entries <= 0 or -inf; an all -inf row gives beta 1 (its
    result is NaN or -inf whatever beta is).
    """
    finite = shifted > -math.inf
    e = xp.exp(shifted)
    d = xp.sum(e, axis=-1, keepdims=True)
    s1 = xp.sum(xp.where(finite, e * xp.where(finite, shifted, xp.zeros_like(shifted)), 0.0), axis=-1, keepdims=True)
    d = xp.where(d == 0, xp.ones_like(d), d)
    entropy = xp.log(d) - s1 / d
    fit = xp.zeros_like(entropy)
    for coefficient in ADAPTIVE_POLYNOMIAL:  # Horner
        fit = fit * entropy + coefficient
    return xp.where(entropy > ADAPTIVE_MIN_ENTROPY, xp.maximum(fit, xp.ones_like(fit)), xp.ones_like(fit))


# --------------------------------------------------------------------------- shared pieces


def _max_based_result(xp, op, x, m, d, beyond_one, stored):
    """The last pass of the max-based algorithms, from the row's m, d = sum exp(x - m)
    and beyond_one = d - 1 summed without the max's own term (log d = log1p of it)."""
    # d >= 1 exactly (the max's own term); 0 for an all -inf row, replaced later.
    d = xp.where(d < 1, xp.ones_like(d), d)
    if op != "softmax":
        # log1p of the terms beside the max: log d near 0 to its relative accuracy
        # (logsumexp([0, -40]) = 4.25e-18, not 0; Blanchard, Higham & Higham 2021).
        log_d = xp.log1p(xp.where(beyond_one > 0, beyond_one, xp.zeros_like(beyond_one)))
        if op == "logsumexp":
            return xp.squeeze(m + log_d, axis=-1)
        return subtract(xp, x, m) - log_d
    exp_shifted = stored if stored is not None else xp.exp(subtract(xp, x, m))
    return exp_shifted / d


def _sum_beside_max(xp, x, m, e):
    """d - 1 for d = sum e, e = exp(x - m): the count of entries equal to the max, less
    one, plus the sum of the other terms (each entry at the max adds exactly 1)."""
    at_max = x == m
    count = xp.sum(xp.astype(at_max, x.dtype), axis=-1, keepdims=True)
    return (count - 1) + xp.sum(xp.where(at_max, xp.zeros_like(e), e), axis=-1, keepdims=True)


def safe_max(xp, x):
    """The row max (keepdims), with an all -inf row's max taken as 0 so no -inf - -inf."""
    m = xp.max(x, axis=-1, keepdims=True)
    return xp.where(m == -math.inf, xp.zeros_like(m), m)


def subtract(xp, x, m):
    """x - m rounded as IEEE does (to -inf past the range), without raising an overflow.

    Halving is exact and commutes with rounding, so x - m overflows exactly when
    x/2 - m/2, which cannot, falls below -MAX/2; those entries get -inf.
    """
    half_max = xp.finfo(x.dtype).max / 2
    overflows = (x / 2 - m / 2) < -half_max
    return xp.where(overflows, -math.inf, xp.where(overflows, m, x) - m)


def _large_logit(xp, dtype):
    """T: rows whose max has |max| >= T take the max-shifted path in two-pass.

    Chosen so that (i) 2T log2(e) < 2^10 (float32) and 2^39 (float64): n * LN2_HI is
    exact and the reduction is accurate, and (ii) T is above twice the underflow range
    (104 in float32, 745 in float64), which makes x - max exact for every surviving entry.

    Each path has its own T, because each forms t = x - n ln 2 its own way; the
    result is the same either side of any of them (both routes are accurate there):
    - here, in the input dtype through generic namespace ops (no FMA promised),
      with the 14-bit LN2_HI: n * LN2_HI is exact only for |n| < 2^10 in float32,
      hence 256 / 2048;
    - the CUDA kernels (softmaxlib/_cuda/softmax.cu, ``large_logit``) keep these
      values, so a GPU row takes the same route as the reference's;
    - the CPU kernels (kExtExpLimitF32 / kExtExpLimitF64 in
      softmaxlib/_native/kernel_table.h) reduce with an FMA (or its exact float
      emulation) and ln 2 rounded to float, exact for every n they meet, so only the
      float32 accuracy of n * ln 2 limits them: 2^20 (float32) and 2^19 (float64).
    """
    return 256.0 if dtype == xp.float32 else 2048.0


def _exp_parts(xp, z, threshold):
    """e^z as (p, n): n = round(z log2 e), p = e^t, t = z - n ln 2, |t| <= ln(2) / 2.

    Entries below -2T contribute exactly nothing (their share of the row is below
    e^-T, far under the smallest subnormal): p = 0 and n = -inf, the identity.
    """
    far = z < -2 * threshold
    z_in = xp.where(far, xp.zeros_like(z), z)
    n = xp.round(z_in * LOG2E)
    p = xp.exp(_reduce_by(xp, z_in, n))
    return xp.where(far, xp.zeros_like(p), p), xp.where(far, -math.inf, n)


def _reduce_by(xp, z, n):
    """Cody & Waite's t = z - n ln 2 with the split constant (n LN2_HI is exact)."""
    return (z - n * LN2_HI) - n * LN2_LO


def _exp2_scale(xp, n, e):
    """2^(n - e) for n <= e, with n = -inf (the identity's exponent) giving 0."""
    identity = n == -math.inf
    e = xp.where(e == -math.inf, xp.zeros_like(e), e)  # e = -inf only beside n = -inf
    return xp.where(identity, xp.zeros_like(n), 2.0 ** xp.where(identity, xp.zeros_like(n), n - e))


def _merge_extended(xp, v1, e1, v2, e2):
    """(v, e) + (v', e') = (v 2^(e - M) + v' 2^(e' - M), M): sums as mantissa and exponent."""
    e = xp.maximum(e1, e2)
    return v1 * _exp2_scale(xp, e1, e) + v2 * _exp2_scale(xp, e2, e), e


def _merge_max_count_rest(xp, m1, c1, r1, m2, c2, r2):
    """(m, c, r) + (m', c', r'): the online normaliser's merge, with d = c + r kept as
    c, the entries at the max (each adds exactly 1), and r, the sum of the others'
    exp(x - m).  A side whose max is below the merged one moves into r.

    The identity is (-inf, 0, 0); merging two identities gives the identity, not NaN.
    """
    m = xp.maximum(m1, m2)
    both_empty = m == -math.inf
    m_safe = xp.where(both_empty, xp.zeros_like(m), m)
    zero = xp.zeros_like(m)
    count, rest = zero, zero
    for mi, ci, ri in ((m1, c1, r1), (m2, c2, r2)):
        top = mi == m
        count = count + xp.where(top, ci, zero)
        rest = rest + xp.where(top, ri, (ci + ri) * xp.exp(subtract(xp, mi, m_safe)))
    return m, count, rest


def _blocks(xp, x, fill):
    """View the last axis as (blocks, BLOCK), padding with ``fill`` (the identity's part)."""
    n = x.shape[-1]
    nblocks = -(-n // BLOCK)
    pad = nblocks * BLOCK - n
    if pad:
        filler = xp.full(x.shape[:-1] + (pad,), fill, dtype=x.dtype, device=device_of(x))
        x = xp.concat([x, filler], axis=-1)
    return xp.reshape(x, x.shape[:-1] + (nblocks, BLOCK))


def _tree_reduce(xp, merge, identity, *parts):
    """Reduce the tuples ``parts`` (arrays of one shape) along the last axis with
    ``merge``, pairwise.

    ``identity`` is the merge's neutral tuple, used to pad an odd number of tuples.
    """
    while parts[0].shape[-1] > 1:
        if parts[0].shape[-1] % 2:
            shape, dev = parts[0].shape[:-1] + (1,), device_of(parts[0])
            parts = [xp.concat([a, xp.full(shape, i, dtype=a.dtype, device=dev)], axis=-1) for a, i in zip(parts, identity)]
        parts = merge(xp, *(a[..., 0::2] for a in parts), *(a[..., 1::2] for a in parts))
    return tuple(a[..., 0] for a in parts)


# --------------------------------------------------------------------------- the contract


def _apply_special_values(xp, op, x, valid, result, nan_rows=None):
    """Apply the contract's rules for NaN, +inf, all -inf and fully masked rows.

    In order of precedence: a NaN in an unmasked entry (or a row in ``nan_rows``)
    makes the row NaN; +inf entries share the mass evenly (logsumexp +inf); a row
    with no unmasked entry gives 0 / -inf / -inf; a row that is all -inf gives
    NaN / NaN / -inf.  Masked entries always get 0 (softmax) or -inf (log_softmax).
    """
    flags = row_flags(xp, x, valid, nan_rows)
    return apply_row_flags(xp, op, flags, valid & (x == math.inf), valid, result)


def row_flags(xp, x, valid, nan_rows=None):
    """What the contract needs to know of each row (keepdims): NaN, count of +inf,
    no unmasked entry, every unmasked entry -inf."""
    nan_row = xp.any(valid & xp.isnan(x), axis=-1, keepdims=True)
    if nan_rows is not None:
        nan_row = nan_row | nan_rows
    n_posinf = xp.sum(xp.astype(valid & (x == math.inf), x.dtype), axis=-1, keepdims=True)
    no_valid = ~xp.any(valid, axis=-1, keepdims=True)
    all_neginf = ~no_valid & ~xp.any(valid & (x > -math.inf), axis=-1, keepdims=True)
    return nan_row, n_posinf, no_valid, all_neginf


def apply_row_flags(xp, op, flags, posinf, valid, result):
    """``_apply_special_values`` given the rows' flags and the entries' ``posinf``
    (unmasked +inf) and ``valid``, of ``result``'s shape (top-k passes k entries)."""
    nan_row, n_posinf, no_valid, all_neginf = flags
    nan = xp.full_like(n_posinf, math.nan)
    if op == "logsumexp":
        result = result[..., None]
        result = xp.where(all_neginf | no_valid, -math.inf, result)
        result = xp.where(n_posinf > 0, math.inf, result)
        return xp.squeeze(xp.where(nan_row, nan, result), axis=-1)
    count = xp.where(n_posinf > 0, n_posinf, xp.ones_like(n_posinf))
    zero = xp.zeros_like(result)
    if op == "softmax":
        shared, left_out = xp.where(posinf, 1 / count, zero), 0.0
    else:
        shared, left_out = xp.where(posinf, -xp.log(count), zero - math.inf), -math.inf
    result = xp.where(n_posinf > 0, shared, result)
    result = xp.where(all_neginf | nan_row, nan, result)
    result = xp.where(no_valid | ~valid, left_out, result)
    return result


# Magnitudes from which a float32 value rounds to infinity in the half types: the
# largest finite number plus half an ULP (float16: 65504 + 16; bfloat16: 0x1.FEp127 + 2^119).
_ROUNDS_TO_INF = {"float16": float.fromhex("0x1.FFEp15"), "bfloat16": float.fromhex("0x1.FFp127")}


def _overflow_to_inf(xp, y, dtype):
    """Set what rounds past ``dtype``'s range to +-inf already, so the cast warns of nothing."""
    limit = _ROUNDS_TO_INF.get(_dtype_name(dtype))
    if limit is None:
        return y
    return xp.where(y >= limit, math.inf, xp.where(y <= -limit, -math.inf, y))


def is_half(dtype):
    """float16 or bfloat16, in any namespace (bfloat16 is ml_dtypes' on NumPy)."""
    return _dtype_name(dtype) in ("float16", "bfloat16")


def _dtype_name(dtype):
    return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]


def device_of(x):
    import array_api_compat

    return array_api_compat.device(x)
