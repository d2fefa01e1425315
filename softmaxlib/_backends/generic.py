"""The generic fast path: softmax from a namespace's own few operations.

Every namespace without a native fast path runs this (array-api-strict, PyTorch, JAX
off the CPU, CuPy without its kernels, any other Array-API library), and so does
``algorithm="auto"``, "three-pass" and "three-pass-reload" there.  It is the classic
max-shifted computation, written with whole-array operations over ``axes`` (no moving
of axes, no copy of ``x``)::

    m = max x;  z = x - m;  e = exp z;  softmax = e / sum e
                            log_softmax = z - log sum e;  logsumexp = m + log sum e

(log sum e as log1p of the terms beside the max's own 1 in rows the max dominates,
``_log_sum``: there it is near 0 and must keep its relative accuracy), which is
three-pass-reload for softmax (exp is stored, then scaled) and three-pass for
the others; in a namespace of whole-array operations the two give the same result.
"online" and "two-pass" are not this computation (their point is the block structure
and the extended exponent), so for them ``compute`` returns ``NotImplemented`` and the
reference runs their algorithm.

The contract's special values cost nothing on an ordinary row.  They all show in the
row max: a +inf entry makes it +inf, a row of -inf or masked entries -inf, and a NaN
makes it NaN (the Array API standard says max propagates NaN; NumPy, array-api-strict,
PyTorch and JAX do, which tests/test_generic.py checks).  So one look at the row maxima
(a batch-sized array) tells whether any row needs more.  If none does, the plain
computation above is the whole call.  If one does, or the check cannot be made (a JAX
tracer under ``jit`` or ``grad``, a ``torch.func.vmap`` batch), the call runs the
branch-free form (``_with_special_rows``): the same computation on the row with NaN,
+inf and masked entries set to -inf, then the contract's values written into the rows
that need them.  Those values are closed-form
(1/count or -log count on the +inf entries, NaN, 0, -inf), the reference's rules for
them, so the reference itself is not called; gradients stay finite in every row (no
inf - inf or 0/0 is formed, even in a branch a ``where`` discards).

``x - m`` past the range (|x| and |m| near the largest finite number, of opposite
signs) rounds to -inf, which is the right result for every op: its exp is 0, and
log_softmax there is below -max, so -inf.  NumPy-backed namespaces would warn of that
overflow, so the work runs under ``np.errstate(all="ignore")`` (and so a discarded
branch's NaN never warns either); other namespaces do not warn.

float16 and bfloat16 are computed in float32 and rounded once.  A temperature T, a
number or one per row, becomes z = (x/2 - m/2) (2/T): halving is exact (but for
subnormal x, by far less than the tolerance) and keeps the subtraction in range, so
that a large T brings an x - m past the range back, and the three roundings are the
oracle's allowance.  An adaptive temperature, and a T whose 2/T is not a normal
number of the dtype, return ``NotImplemented``.
"""

import math

import array_api_compat
import numpy as np

#: The ``algorithm`` names this path computes; the others run the reference.
ALGORITHMS = ("auto", "three-pass", "three-pass-reload")

OPERATIONS = ("softmax", "log_softmax", "logsumexp")


def compute(op, x, axes, where, algorithm, temperature=None):
    """``op`` of ``x`` over ``axes`` from ``x``'s namespace's own operations.

    The contract of :func:`softmaxlib._reference.compute` without ``xp``; returns
    ``NotImplemented`` for what this path leaves to the reference: other ops (the
    StableMax pair), "online" and "two-pass", ``axes=()``, the temperatures named in
    the module's docstring, and Dask arrays (see ``dask_chunked``).
    """
    if op not in OPERATIONS or algorithm not in ALGORITHMS or not axes:
        return NotImplemented
    if array_api_compat.is_dask_array(x):
        # Lazy: its NumPy chunks are computed later, outside the errstate below, and
        # would warn of an x - m past the range; the reference never forms one.
        return NotImplemented
    xp = _namespace(type(x))
    if xp is None:
        xp = _NAMESPACES[type(x)] = array_api_compat.array_namespace(x)
    out_dtype = x.dtype
    if _is_half(out_dtype):
        x = xp.astype(x, xp.float32)
    scale = _scale(xp, x, axes, temperature)
    if scale is NotImplemented:
        return NotImplemented
    with np.errstate(all="ignore"):
        result = _ordinary_rows(xp, op, x, axes, where, scale)
        if result is None:
            result = _with_special_rows(xp, op, x, axes, where, scale)
        if result.dtype != out_dtype:
            result = xp.astype(result, out_dtype)
    return result


# Array type -> its namespace: array_namespace's search costs more than a small call.
_NAMESPACES = {}
_namespace = _NAMESPACES.get


def _ordinary_rows(xp, op, x, axes, where, scale):
    """The plain computation, or None if some row needs the special values (or if
    that cannot be known without tracing a branch)."""
    if where is not None:
        x = xp.where(where, x, -math.inf)
    m = xp.max(x, axis=axes, keepdims=True)
    # One small reduction and one read: a NaN or infinite row max makes the sum NaN or
    # infinite (so may many finite maxima near the range's end: they take the other
    # form).  bool() of a bool array: torch warns of float() where x requires grad.
    try:
        ordinary = bool(xp.isfinite(xp.sum(m)))
    except (TypeError, RuntimeError, ValueError):  # a JAX tracer, a torch.func batch, ...
        return None
    if not ordinary:
        return None
    z = _shift(x, m, scale)
    # The last step writes into this path's own array where it may (one array fewer
    # to allocate and fill: about 7% of a softmax on array-api-strict).
    if op == "softmax":
        e = xp.exp(z)
        total = xp.sum(e, axis=axes, keepdims=True)
        if _writable(e):
            e /= total
            return e
        return e / total
    total = xp.sum(xp.exp(z), axis=axes, keepdims=True)
    try:
        dominated = bool(xp.any(total < 2))
    except (TypeError, RuntimeError, ValueError):
        dominated = True
    log_total = _log_sum(xp, z, total, axes) if dominated else xp.log(total)
    if op == "log_softmax":
        if _writable(z):
            z -= log_total
            return z
        return z - log_total
    return _reduced(xp, _offset(m, scale) + log_total, axes)


def _log_sum(xp, z, total, axes):
    """log total for total = sum exp(z), max z = 0, to its relative accuracy near 0.

    Where the max dominates (total < 2) the max's own term 1 swamps the rest of the
    rounded total, so there the row is summed again beside its max: log1p of (the
    entries at the max, less one, plus the other terms) (Blanchard, Higham & Higham
    2021).  Elsewhere log total >= log 2 and log() of the total is accurate enough.
    """
    at_max = z == 0
    e = xp.exp(z)
    count = xp.sum(xp.astype(at_max, z.dtype), axis=axes, keepdims=True)
    beyond = (count - 1) + xp.sum(xp.where(at_max, xp.zeros_like(e), e), axis=axes, keepdims=True)
    beyond = xp.where(beyond > 0, beyond, xp.zeros_like(beyond))  # an empty row: replaced by the caller
    return xp.where(total < 2, xp.log1p(beyond), xp.log(total))


def _writable(a):
    """May ``a``, an array this path made, be overwritten?  Not where an autograd graph
    records it (PyTorch refuses a saved tensor changed in place).  A namespace without
    in-place operators (JAX) makes a new array for ``a /= b``, which is as good."""
    return not getattr(a, "requires_grad", False)


def _with_special_rows(xp, op, x, axes, where, scale):
    """Branch-free: the computation on the clean row, then the contract's special values.

    The rules and their precedence are those of the reference's
    ``apply_row_flags``: a NaN in an unmasked entry makes the row NaN; +inf entries
    share the mass (logsumexp +inf); a row with no unmasked entry gives 0 / -inf /
    -inf; a row of -inf gives NaN / NaN / -inf; masked entries get 0 / -inf.
    """
    nan = xp.isnan(x)
    posinf = x == math.inf
    usable = ~(nan | posinf)
    if where is not None:
        nan, posinf, usable = nan & where, posinf & where, usable & where
    clean = xp.where(usable, x, -math.inf)
    m = xp.max(clean, axis=axes, keepdims=True)
    empty = m == -math.inf  # no finite unmasked entry
    m = xp.where(empty, xp.zeros_like(m), m)
    z = _shift(clean, m, scale)
    e = xp.exp(z)
    total = xp.sum(e, axis=axes, keepdims=True)
    total = xp.where(total == 0, xp.ones_like(total), total)  # an empty row: replaced below

    n_posinf = xp.sum(xp.astype(posinf, x.dtype), axis=axes, keepdims=True)
    has_posinf = n_posinf > 0
    nan_row = xp.any(nan, axis=axes, keepdims=True)
    nan_value = xp.full_like(m, math.nan)
    log_total = _log_sum(xp, z, total, axes)
    if op == "logsumexp":
        result = _offset(m, scale) + log_total
        result = xp.where(empty, -math.inf, result)
        result = xp.where(has_posinf, math.inf, result)
        return _reduced(xp, xp.where(nan_row, nan_value, result), axes)

    count = xp.where(has_posinf, n_posinf, xp.ones_like(n_posinf))
    if op == "softmax":
        result = e / total
        shared, left_out = xp.where(posinf, 1 / count, xp.zeros_like(result)), 0.0
    else:
        result = z - log_total
        shared = xp.where(posinf, -xp.log(count), xp.full_like(result, -math.inf))
        left_out = -math.inf
    result = xp.where(has_posinf, shared, result)
    all_neginf = empty & ~has_posinf
    if where is not None:
        all_neginf = all_neginf & xp.any(where, axis=axes, keepdims=True)
    result = xp.where(all_neginf | nan_row, nan_value, result)
    if where is not None:
        result = xp.where(where, result, left_out)
    return result


def _shift(x, m, scale):
    """z = x - m, or (x - m) / T as (x/2 - m/2) (2/T) with a temperature."""
    if scale is None:
        return x - m
    return (x * 0.5 - m * 0.5) * scale[0]


def _offset(m, scale):
    """What logsumexp adds back: m, or m / T."""
    return m if scale is None else m * scale[1]


def _scale(xp, x, axes, temperature):
    """(2/T, 1/T) as Python floats or keepdims arrays, None, or NotImplemented.

    2/T must be a normal number of the dtype (so is 1/T then): T = inf (uniform over
    the finite entries, whose -inf entries 2/T = 0 would turn into NaN), a T so large
    that 2/T is subnormal, or one so small that it overflows, go to the reference.
    """
    if temperature is None:
        return None
    if isinstance(temperature, str):  # "adaptive": one more pass for the entropy
        return NotImplemented
    info = xp.finfo(x.dtype)
    low, high = 2 * float(info.smallest_normal), float(info.max)
    if isinstance(temperature, float):
        scale = 2.0 / temperature
        return (scale, 1.0 / temperature) if low <= scale <= high else NotImplemented
    keepdims = tuple(1 if a in axes else s for a, s in enumerate(x.shape))
    # Checked in the temperature's own dtype (it may be wider than x's): cast first, a
    # huge T would overflow to inf and a tiny one round to 0.
    t = xp.reshape(temperature, keepdims)
    with np.errstate(all="ignore"):
        scale = 2.0 / t
        try:
            usable = bool(xp.all((scale >= low) & (scale <= high)))
        except (TypeError, RuntimeError):  # traced: cannot be checked, the reference runs
            return NotImplemented
    if not usable:
        return NotImplemented
    return xp.astype(scale, x.dtype), xp.astype(1.0 / t, x.dtype)


def _reduced(xp, a, axes):
    """A keepdims result with ``axes`` removed."""
    return xp.reshape(a, tuple(s for i, s in enumerate(a.shape) if i not in axes))


def _is_half(dtype):
    return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1] in ("float16", "bfloat16")
