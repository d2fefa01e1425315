"""The oracle and the tolerances every path is held to.

The oracle is written independently of softmaxlib: plain NumPy, max-shifted, in a
wider precision than the input (float64 for float32 and the half types, x87 long
double for float64), with the contract's special values spelled out by hand.

Tolerances, per dtype of the *result* (design.md, "Numerical targets"):

=========  ============  ==========  ====================================================
dtype      rtol / atol   cond        why
=========  ============  ==========  ====================================================
float64    1e-14         2^-52       the design's float64 target
float32    1e-6          2^-23       the design's float32 target
float16    2^-11 + 1e-6  2^-23       computed in float32, rounded once to float16 (half
                                     an ULP is 2^-11 relative)
bfloat16   2^-8 + 1e-6   2^-23       the same, bfloat16's half ULP is 2^-8
=========  ============  ==========  ====================================================

softmax is checked relatively: |y - exact| <= (rtol + cond |x_i - max x|) exact, and
absolutely, within the smallest normal number, where exact is below it.
log_softmax absolutely: |y - exact| <= atol max(1, |exact|) + cond |x_i - max x|.
logsumexp the same, with the conditioning term averaged over the row with the
softmax weights (the error of sum p_i (x_i - max) rounded is what reaches it).
Infinities and NaN must match exactly.

The rest of the family (issue 8) is held to the same table, with these terms:

* temperature T (scalar or per row): the oracle computes op(x / T) in the wide dtype
  with T as given; |x_i - max x| becomes |x_i - max x| / T and cond doubles (2^-22 in
  float32, 2^-51 in float64): x - max is rounded, then divided by T (a second
  rounding, or a rounded 1/T), and T itself is rounded to the computing dtype, about
  3 half-ULPs of |x_i - max x| / T in all.
* adaptive temperature: op(beta x), beta = max(1, p(H)) where H > 0.5, else 1, from
  the exact entropy H of softmax(x).  The terms of op(beta x) as for a temperature,
  plus the error that reaches the result through beta: the computed H is off by up
  to dH = u (8 + log2 n) (1 + |log d| + sum_i p_i |x_i - m| (1 + |x_i - m|)) (u the
  computing dtype's unit roundoff, 2^-24 or 2^-53; e^(x_i - m) carries |x_i - m| u of
  x_i - m's rounding into d = sum e^(x_i - m) and S1 = sum e^(x_i - m) (x_i - m); the
  log2 n is the summation's), and Horner's evaluation of p adds 8 u sum |a_j| H^j,
  so beta is off by dbeta = |p'(H)| dH + 8 u sum |a_j| H^j.  The oracle evaluates
  op at beta - dbeta and beta + dbeta (clamped to >= 1) and the allowed error grows
  by the larger distance from op(beta x).
* stablemax / log_stablemax: s(x) = x + 1 or 1 / (1 - x) is well conditioned
  (|x s'(x) / s(x)| <= 1), so there is no cond term: stablemax relatively within
  rtol (absolutely below the smallest normal number), log_stablemax absolutely
  within rtol max(1, |exact|).
* softmax_topk: the indices must equal the oracle's ranking exactly (a stable sort
  by logit descending, ties by index; -inf and NaN entries after the finite ones,
  masked ones last) except in NaN rows, where they must be k distinct indices of the
  axis; the values are held to softmax's bound at those indices.
"""

import dataclasses
import math

import ml_dtypes
import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float
    cond: float
    tiny: float  # smallest normal number of the result's dtype
    dtype: object  # the result's NumPy dtype: an exact value rounding past its range is +-inf


def _range(dtype):
    return float(ml_dtypes.finfo(dtype).tiny), np.dtype(dtype)


TOLERANCES = {
    "float64": Tolerance(1e-14, 2.0**-52, *_range(np.float64)),
    "float32": Tolerance(1e-6, 2.0**-23, *_range(np.float32)),
    "float16": Tolerance(2.0**-11 + 1e-6, 2.0**-23, *_range(np.float16)),
    "bfloat16": Tolerance(2.0**-8 + 1e-6, 2.0**-23, *_range(ml_dtypes.bfloat16)),
}


STABLEMAX_OPS = {"stablemax": "softmax", "log_stablemax": "log_softmax"}


def _wide(x):
    return np.longdouble if np.asarray(x).dtype == np.float64 else np.float64


def oracle(op, x, axes, where, temperature=None):
    """Exact-enough op(x) over ``axes``: float64 for <= 32-bit input, long double for float64.

    ``op`` is one of softmax, log_softmax, logsumexp (of ``x / temperature`` when
    ``temperature``, a number or an array of the keepdims shape, is given), stablemax,
    log_stablemax.  Returns (result, shifted) where ``shifted`` is the scaled x - max x
    (for the tolerance; 0 for stablemax, which has no such term), both as arrays of the
    wide dtype, in the layout softmaxlib returns.
    """
    wide = _wide(x)
    x = np.asarray(x).astype(wide)
    valid = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    keep = dict(axis=axes, keepdims=True)
    with np.errstate(all="ignore"):
        usable = valid & np.isfinite(x)
        if temperature is not None:
            x = np.where(usable, x / np.asarray(temperature, dtype=wide), x)  # x / inf = 0
        m = np.max(np.where(usable, x, -np.inf), initial=-np.inf, **keep)
        m = np.where(np.isfinite(m), m, 0)
        shifted = np.where(usable, x - m, -np.inf)
        if op in STABLEMAX_OPS:
            e = np.where(usable, np.where(x >= 0, x + 1, 1 / (1 - x)), 0)
            shifted = np.where(usable, 0, -np.inf)
        else:
            e = np.exp(shifted)
        d = np.sum(e, **keep)
        n_posinf = np.sum(valid & (x == np.inf), **keep)
        nan_row = np.any(valid & np.isnan(x), **keep)
        no_valid = ~np.any(valid, **keep)
        all_neginf = ~no_valid & (d == 0) & (n_posinf == 0) & ~nan_row
        if op == "logsumexp":
            r = m + np.log(d)
            r = np.where(n_posinf > 0, np.inf, r)
            r = np.where(no_valid | all_neginf, -np.inf, r)
            r = np.where(nan_row, np.nan, r)
            return np.squeeze(r, axis=axes), shifted
        if op in ("softmax", "stablemax"):
            r = np.where(n_posinf > 0, np.where(x == np.inf, 1 / np.maximum(n_posinf, 1), 0), e / d)
            left_out = 0.0
        else:
            log_e = np.log(e) if op == "log_stablemax" else shifted
            r = np.where(n_posinf > 0, np.where(x == np.inf, -np.log(np.maximum(n_posinf, 1)), -np.inf),
                         log_e - np.log(d))
            left_out = -np.inf
        r = np.where(nan_row | all_neginf, np.nan, r)
        r = np.where(~valid | no_valid, left_out, r)
    return r, shifted


def check(op, y, x, axes, where, dtype_name, temperature=None):
    """Assert that ``y`` (float64 NumPy) is within tolerance of the oracle for ``x``.

    ``temperature``: None, a number, a NumPy array of the keepdims shape (x's shape
    with length 1 on ``axes``), or "adaptive".
    """
    if np.ndim(x) == 0:  # softmaxed over its single element
        x, axes, y = np.reshape(x, (1,)), (0,), np.reshape(y, (1,) if op != "logsumexp" else ())
        where = None if where is None else np.reshape(where, (1,))
        if temperature is not None and not isinstance(temperature, str):
            temperature = np.reshape(temperature, (1,))
    tol = TOLERANCES[dtype_name]
    if temperature is None:
        exact, shifted = oracle(op, x, axes, where)
        compare(op, y, exact, shifted, axes, tol)
    elif isinstance(temperature, str):
        assert temperature == "adaptive"
        beta, dbeta = adaptive_beta(x, axes, where, dtype_name)
        exact, shifted = oracle(op, x, axes, where, 1 / beta)
        spread = np.zeros(exact.shape, dtype=exact.dtype)
        for other in (np.maximum(beta - dbeta, 1), beta + dbeta):
            near, _ = oracle(op, x, axes, where, 1 / other)
            with np.errstate(invalid="ignore"):
                gap = np.abs(near - exact)
            spread = np.maximum(spread, np.where(np.isfinite(gap), gap, 0))
        compare(op, y, exact, shifted, axes, tol, cond=2 * tol.cond, extra=spread)
    else:
        exact, shifted = oracle(op, x, axes, where, temperature)
        compare(op, y, exact, shifted, axes, tol, cond=2 * tol.cond)


#: p(H) of the adaptive temperature, highest power first (Velickovic et al. 2024).
ADAPTIVE_POLYNOMIAL = (-0.037, 0.481, -2.3, 4.917, -1.791)


def adaptive_beta(x, axes, where, dtype_name):
    """The adaptive temperature's beta per row (keepdims, wide) and how far the
    computed one may be from it (see the module's docstring)."""
    wide = _wide(x)
    x = np.asarray(x).astype(wide)
    u = 2.0**-53 if dtype_name == "float64" else 2.0**-24  # the dtype computed in
    valid = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    keep = dict(axis=axes, keepdims=True)
    n = math.prod(x.shape[a] for a in axes)
    with np.errstate(all="ignore"):
        usable = valid & np.isfinite(x)
        m = np.max(np.where(usable, x, -np.inf), initial=-np.inf, **keep)
        m = np.where(np.isfinite(m), m, 0)
        dist = np.where(usable, m - x, 0)
        e = np.where(usable, np.exp(-dist), 0)
        d = np.sum(e, **keep)
        d = np.where(d > 0, d, 1)
        p = e / d
        entropy = np.log(d) + np.sum(p * dist, **keep)
        fit = np.polyval(np.asarray(ADAPTIVE_POLYNOMIAL, dtype=wide), entropy)
        slope = np.polyval(np.polyder(np.asarray(ADAPTIVE_POLYNOMIAL, dtype=wide)), entropy)
        size = np.polyval(np.abs(np.asarray(ADAPTIVE_POLYNOMIAL, dtype=wide)), np.abs(entropy))
        d_entropy = u * (8 + math.log2(max(n, 1))) * (1 + np.abs(np.log(d)) + np.sum(p * dist * (1 + dist), **keep))
        beta = np.where(entropy > 0.5, np.maximum(fit, 1), 1)
        dbeta = np.abs(slope) * d_entropy + 8 * u * size
    return beta, dbeta


def compare(op, y, exact, shifted, axes, tol, cond=None, extra=0.0):
    """Assert ``y`` is within ``tol`` of ``exact`` (the oracle's (result, shifted)).

    ``cond`` replaces the tolerance's conditioning factor; ``extra`` (an array of the
    result's shape, or a number) is added to the allowed error.
    """
    cond = tol.cond if cond is None else cond
    y = np.asarray(y, dtype=np.float64)
    assert y.shape == exact.shape, (y.shape, exact.shape)
    with np.errstate(over="ignore"):
        exact64 = exact.astype(np.float64)
        overflows = np.isinf(exact64.astype(tol.dtype)) & np.isfinite(exact64)
    exact64 = np.where(overflows, np.copysign(np.inf, exact64), exact64)
    # Special values first: NaN and infinities must match exactly.
    np.testing.assert_array_equal(np.isnan(y), np.isnan(exact64), err_msg=f"{op}: NaN positions differ")
    special = ~np.isfinite(exact64)
    np.testing.assert_array_equal(y[special], exact64[special], err_msg=f"{op}: infinities differ")
    finite = ~special
    assert np.all(np.isfinite(y[finite])), f"{op}: non-finite result where the exact one is finite"
    with np.errstate(all="ignore"):
        # In the oracle's wide dtype: |x_i - max| can exceed float64's range for float64 x.
        dist = np.abs(np.where(np.isfinite(shifted), shifted, 0))
        err = np.abs(y - exact)
        if op in ("softmax", "stablemax"):
            bound = np.where(exact64 < tol.tiny, tol.tiny, (tol.rtol + cond * dist) * exact64)
        elif op in ("log_softmax", "log_stablemax"):
            bound = tol.rtol * np.maximum(1, np.abs(exact64)) + cond * dist
        else:
            weights = np.where(np.isfinite(shifted), np.exp(shifted), 0)
            keep = dict(axis=axes, keepdims=False)
            total = np.sum(weights, **keep)
            spread = np.sum(weights * dist, **keep) / np.where(total > 0, total, 1)
            bound = tol.rtol * np.maximum(1, np.abs(exact64)) + cond * spread
        bound = bound + extra
    bad = finite & ~(err <= bound)
    if np.any(bad):
        worst = np.argmax(np.where(bad, err / np.where(bound > 0, bound, math.inf), -1))
        msg = (
            f"{op}: {np.count_nonzero(bad)} of {bad.size} elements out of tolerance; worst at flat "
            f"index {worst}: got {y.flat[worst]!r}, exact {float(exact.flat[worst])!r}, "
            f"error {float(err.flat[worst]):.3g} > bound {float(bound.flat[worst]):.3g}"
        )
        raise AssertionError(msg)


def check_topk(values, indices, x, k, axis, where, dtype_name):
    """Assert softmax_topk's (values, indices) (NumPy, values float64) for ``x``.

    The indices must be the oracle's ranking exactly, except in rows with a NaN in an
    unmasked entry: there any k distinct indices of the axis, and NaN values.
    """
    x = np.asarray(x)
    if x.ndim == 0:
        x, values, indices = np.reshape(x, (1,)), np.reshape(values, (1,)), np.reshape(indices, (1,))
        where = None if where is None else np.reshape(where, (1,))
    axis = axis % x.ndim
    valid = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    nan = np.isnan(x)
    # Rank classes: 0 finite or +inf (by logit, descending), 1 unmasked -inf or NaN,
    # 2 masked; ties by index.  np.lexsort's last key is the primary one.
    rank_class = np.where(valid & ~nan & (x > -np.inf), 0, np.where(valid, 1, 2))
    with np.errstate(invalid="ignore"):
        key = np.where(rank_class == 0, -x.astype(np.float64), 0)
    position = np.broadcast_to(np.expand_dims(np.arange(x.shape[axis]), tuple(range(1, x.ndim - axis))), x.shape)
    order = np.lexsort((position, key, rank_class), axis=axis)
    expected = np.take(order, np.arange(k), axis=axis)
    assert indices.shape == expected.shape, (indices.shape, expected.shape)
    assert values.shape == expected.shape, (values.shape, expected.shape)
    nan_row = np.any(valid & nan, axis=axis, keepdims=True)
    nan_row_k = np.broadcast_to(nan_row, expected.shape)
    mismatch = (indices != expected) & ~nan_row_k
    assert not np.any(mismatch), (
        f"softmax_topk: {np.count_nonzero(mismatch)} indices differ from the ranking; got "
        f"{indices[mismatch][:5]}, expected {expected[mismatch][:5]}"
    )
    # NaN rows: k distinct indices of the axis.
    assert np.all((indices >= 0) & (indices < x.shape[axis]))
    distinct = np.sort(indices, axis=axis)
    assert np.all(np.diff(distinct, axis=axis) > 0), "softmax_topk: repeated indices"
    exact, shifted = oracle("softmax", x, (axis,), where)
    compare(
        "softmax",
        values,
        np.take_along_axis(exact, expected, axis=axis),
        np.take_along_axis(shifted, expected, axis=axis),
        (axis,),
        TOLERANCES[dtype_name],
    )


# ---------------------------------------------------------------------------------
# log_softmax and logsumexp to their condition number (Blanchard, Higham & Higham
# 2021, "Accurately computing the log-sum-exp and softmax functions"): with u the
# unit roundoff of the result's dtype, p = softmax(z), ls = log_softmax(z) and z the
# row (x / temperature, exactly), over the unmasked entries,
#     |lse_hat - lse|   <= C u (|lse| + sum_j p_j |z_j|) + tiny
#     |ls_hat_i - ls_i| <= C u (|ls_i| + (1 - p_i) |z_i| + sum_{j != i} p_j |z_j|) + tiny
# Near 0 this is relative accuracy (logsumexp([0, -40]) = 4.25e-18, not 0), which no
# oracle in a fixed wider precision gives by shifting alone, hence mpmath.

CONDITION_C = 16
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}


def exact_log_softmax(z):
    """The exact (lse, ls, p) of one row z (float64 NumPy, finite entries), by value.

    Returns (values, inverse, lse, ls, p): ``values`` the row's distinct entries
    (z = values[inverse]), lse an mpmath number, ls and p lists of mpmath numbers,
    one per distinct value (the adversarial rows repeat few values).
    """
    import mpmath

    values, inverse, counts = np.unique(np.asarray(z, dtype=np.float64), return_inverse=True, return_counts=True)
    with mpmath.workdps(60):
        vals = [mpmath.mpf(float(v)) for v in values]
        top = max(vals)
        # log of the sum as log1p of its terms beside the max's 1: relative accuracy
        # even where the sum is 1 + e^-700
        beyond_one = mpmath.fsum(int(c) * mpmath.exp(v - top) for v, c in zip(vals[:-1], counts[:-1]))
        log_sum = mpmath.log1p(beyond_one + (int(counts[-1]) - 1))
        lse = top + log_sum
        ls = [(v - top) - log_sum for v in vals]
        p = [mpmath.exp(v) for v in ls]
    return values, inverse.ravel(), counts, lse, ls, p


def condition_check(op, y, z, dtype_name, where=None):
    """Assert log_softmax or logsumexp ``y`` of one row (float64 NumPy: the row's
    log_softmax, or a scalar logsumexp) meets the bound above against ``z``, the
    row's exact arguments (x / temperature as a float64 NumPy array; the tests pick
    temperatures that divide exactly).  Masked entries (``where`` False) are left out
    and must be -inf in a log_softmax."""
    import mpmath

    z = np.asarray(z, dtype=np.float64)
    live = np.ones(z.shape, bool) if where is None else np.asarray(where, bool)
    values, inverse, counts, lse, ls, p = exact_log_softmax(z[live])
    u, tiny = UNIT_ROUNDOFF[dtype_name], float(np.finfo(dtype_name).tiny)
    with mpmath.workdps(60):
        if op == "logsumexp":
            spread = mpmath.fsum(int(c) * pk * abs(mpmath.mpf(float(v))) for c, pk, v in zip(counts, p, values))
            err = abs(mpmath.mpf(float(y)) - lse)
            bound = CONDITION_C * u * (abs(lse) + spread) + tiny
            assert err <= bound, (
                f"logsumexp: got {float(y)!r}, exact {mpmath.nstr(lse, 17)}, "
                f"error {mpmath.nstr(err, 3)} > bound {mpmath.nstr(bound, 3)}"
            )
            return
        y = np.asarray(y, dtype=np.float64)
        assert np.all(y[~live] == -np.inf), "log_softmax: masked entries must be -inf"
        got = y[live]
        lo = np.full(len(values), np.inf)
        hi = np.full(len(values), -np.inf)
        np.minimum.at(lo, inverse, got)
        np.maximum.at(hi, inverse, got)
        weighted = [int(c) * pk * abs(mpmath.mpf(float(v))) for c, pk, v in zip(counts, p, values)]
        for k, v in enumerate(values):
            av = abs(mpmath.mpf(float(v)))
            # 1 - p_k and the sum over j != k, each formed without cancellation
            others = mpmath.fsum(weighted[:k] + weighted[k + 1:]) + (int(counts[k]) - 1) * p[k] * av
            bound = CONDITION_C * u * (abs(ls[k]) - mpmath.expm1(ls[k]) * av + others) + tiny
            for g in (lo[k], hi[k]):
                err = abs(mpmath.mpf(float(g)) - ls[k]) if np.isfinite(g) else mpmath.inf
                assert err <= bound, (
                    f"log_softmax: at z = {float(v)!r}: got {float(g)!r}, exact {mpmath.nstr(ls[k], 17)}, "
                    f"error {mpmath.nstr(err, 3)} > bound {mpmath.nstr(bound, 3)}"
                )
