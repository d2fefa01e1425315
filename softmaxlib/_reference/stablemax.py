"""The Array-API reference of StableMax (Prieto et al. 2025, arXiv 2501.04697).

StableMax replaces softmax's exponential by

    s(x) = x + 1      for x >= 0,
    s(x) = 1 / (1 - x) for x < 0,

and normalises: stablemax(x)_i = s(x_i) / sum_j s(x_j), log_stablemax = log s(x_i) -
log sum_j s(x_j).  s grows linearly, so nothing collapses to an exact zero the way
float32 softmax does, but s of huge logits still overflows a plain sum: the row is
scaled by s of its max, r_i = s(x_i) / s(max x) in [0, 1], whose sum lies in [1, n].
Each r_i is written in the form of its case so that it neither overflows nor loses
digits to subnormals on the way.

The special values are softmax's (``softmax.on_rows``): +inf entries share the mass
(s(+inf) = inf), -inf entries get 0 (s(-inf) = 0), an all -inf row is NaN (0/0), a NaN
row NaN, a fully masked row 0 / -inf.  Array API standard only, like ``softmax``.
"""

import math

from softmaxlib._reference import softmax

OPERATIONS = ("stablemax", "log_stablemax")

# Which of softmax's special values each operation takes.
_SPECIAL_OP = {"stablemax": "softmax", "log_stablemax": "log_softmax"}


def compute(xp, op, x, axes, where):
    """``op`` ("stablemax" or "log_stablemax") of ``x`` over ``axes``; the contract of
    :func:`softmaxlib.softmax.compute`, without ``algorithm`` (there is one)."""
    return softmax.on_rows(
        xp, op, x, axes, where, lambda op, rows, valid, clean: (_stablemax(xp, op, clean), None), _SPECIAL_OP[op]
    )


def _stablemax(xp, op, x):
    """StableMax of clean rows (entries finite or -inf) along the last axis."""
    m = softmax.safe_max(xp, x)  # an all -inf row: m = 0, sum 0, replaced later
    finite = x > -math.inf
    zero = xp.zeros_like(x)
    # Each case's operands, with the other cases' values replaced by 0 so that no
    # unselected branch divides by zero (or has an infinite gradient).
    nonneg = finite & (x >= 0)
    x_pos = xp.where(nonneg, x, zero)
    x_neg = xp.where(finite & ~nonneg, x, zero)
    m_pos = xp.where(m >= 0, m, xp.zeros_like(m))
    m_neg = xp.where(m < 0, m, xp.zeros_like(m))
    # x < 0 <= m: 1 / ((1 - x)(1 + m)), 0 where the product would overflow (the
    # ratio is then below 1 / max, far under the smallest normal number).
    tiny_ratio = (1 - x_neg) > xp.finfo(x.dtype).max / (1 + m_pos)
    product = (1 - xp.where(tiny_ratio, zero, x_neg)) * (1 + m_pos)
    across = xp.where(tiny_ratio, zero, 1 / product)
    # 0 <= x <= m: (x + 1) / (m + 1).  XLA divides by a row's constant as a product
    # with its reciprocal, which for m + 1 past sqrt(max) is subnormal and flushed to
    # zero: such rows are scaled by 1 / sqrt(max) first (exact, a power of two).
    root = 2.0 ** (math.frexp(float(xp.finfo(x.dtype).max))[1] // 2)
    scale = xp.where(m_pos + 1 > root, 1 / root, xp.ones_like(m_pos))
    ratio = xp.where(
        nonneg,
        ((x_pos + 1) * scale) / ((m_pos + 1) * scale),
        xp.where(m < 0, (1 - m_neg) / (1 - x_neg), across),
    )
    ratio = xp.where(finite, ratio, zero)  # s(-inf) = 0
    total = xp.sum(ratio, axis=-1, keepdims=True)  # in [1, n] for a row with a finite entry
    total = xp.where(total == 0, xp.ones_like(total), total)
    if op == "stablemax":
        return ratio / total
    # log r, from r itself while it is a normal number (one rounding); below that,
    # log s(x) - log s(m), whose absolute error is small beside |log r| > 87.
    normal = ratio >= xp.finfo(x.dtype).smallest_normal
    log_small = _log_s(xp, x_pos, x_neg, nonneg) - _log_s(xp, m_pos, m_neg, m >= 0)
    log_ratio = xp.where(normal, xp.log(xp.where(normal, ratio, xp.ones_like(ratio))), log_small)
    return xp.where(finite, log_ratio - xp.log(total), -math.inf)


def _log_s(xp, v_pos, v_neg, nonneg):
    """log s(v): log1p(v) for v >= 0 and -log1p(-v) for v < 0 (both operands safe)."""
    return xp.where(nonneg, xp.log1p(v_pos), -xp.log1p(-v_neg))
