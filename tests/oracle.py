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


def oracle(op, x, axes, where):
    """Exact-enough op(x) over ``axes``: float64 for <= 32-bit input, long double for float64.

    Returns (result, shifted) where ``shifted`` is x - max x (for the tolerance),
    both as arrays of the wide dtype, in the layout softmaxlib returns.
    """
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    x = np.asarray(x).astype(wide)
    valid = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    keep = dict(axis=axes, keepdims=True)
    with np.errstate(all="ignore"):
        usable = valid & np.isfinite(x)
        m = np.max(np.where(usable, x, -np.inf), initial=-np.inf, **keep)
        m = np.where(np.isfinite(m), m, 0)
        shifted = np.where(usable, x - m, -np.inf)
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
        if op == "softmax":
            r = np.where(n_posinf > 0, np.where(x == np.inf, 1 / np.maximum(n_posinf, 1), 0), e / d)
            left_out = 0.0
        else:
            r = np.where(n_posinf > 0, np.where(x == np.inf, -np.log(np.maximum(n_posinf, 1)), -np.inf),
                         shifted - np.log(d))
            left_out = -np.inf
        r = np.where(nan_row | all_neginf, np.nan, r)
        r = np.where(~valid | no_valid, left_out, r)
    return r, shifted


def check(op, y, x, axes, where, dtype_name):
    """Assert that ``y`` (float64 NumPy) is within tolerance of the oracle for ``x``."""
    if np.ndim(x) == 0:  # softmaxed over its single element
        x, axes, y = np.reshape(x, (1,)), (0,), np.reshape(y, (1,) if op != "logsumexp" else ())
        where = None if where is None else np.reshape(where, (1,))
    exact, shifted = oracle(op, x, axes, where)
    tol = TOLERANCES[dtype_name]
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
        if op == "softmax":
            bound = np.where(exact64 < tol.tiny, tol.tiny, (tol.rtol + tol.cond * dist) * exact64)
        elif op == "log_softmax":
            bound = tol.rtol * np.maximum(1, np.abs(exact64)) + tol.cond * dist
        else:
            weights = np.where(np.isfinite(shifted), np.exp(shifted), 0)
            keep = dict(axis=axes, keepdims=False)
            total = np.sum(weights, **keep)
            spread = np.sum(weights * dist, **keep) / np.where(total > 0, total, 1)
            bound = tol.rtol * np.maximum(1, np.abs(exact64)) + tol.cond * spread
    bad = finite & ~(err <= bound)
    if np.any(bad):
        worst = np.argmax(np.where(bad, err / np.where(bound > 0, bound, math.inf), -1))
        msg = (
            f"{op}: {np.count_nonzero(bad)} of {bad.size} elements out of tolerance; worst at flat "
            f"index {worst}: got {y.flat[worst]!r}, exact {float(exact.flat[worst])!r}, "
            f"error {float(err.flat[worst]):.3g} > bound {float(bound.flat[worst]):.3g}"
        )
        raise AssertionError(msg)
