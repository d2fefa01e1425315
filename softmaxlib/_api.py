"""softmax, log_softmax and logsumexp: argument checks, then dispatch by namespace."""

import contextlib
import math
import operator

import array_api_compat
import numpy as np

from softmaxlib import _backends, _reference

ALGORITHMS = ("auto",) + _reference.ALGORITHMS

_COMMON_PARAMETERS = """x : array_like
        Input array of any Array-API library (NumPy, JAX, CuPy, PyTorch, Dask,
        array-api-strict, ...), or anything NumPy can turn into an array.
        Integer and boolean inputs are promoted to the namespace's default real
        floating dtype; float16 and bfloat16 are computed in float32 and rounded once.
    axis : int, tuple of int or None, optional
        The axis or axes to normalise over; None means all axes.  Default: the last.
    where : array_like of bool, optional
        Broadcastable to ``x``.  Only entries where it is True take part; the others
        are left out of the normalisation."""

_COMMON_OPTIONS = """algorithm : {"auto", "three-pass", "three-pass-reload", "online", "two-pass"}
        How to compute it; see :data:`softmaxlib.ALGORITHMS`.  All give the same
        result within the documented tolerance; "auto" picks the fastest for the
        backend, dtype and size.
    xp : array namespace, optional
        The namespace of ``x``, when the caller knows it; found from ``x`` otherwise."""


def softmax(x, /, axis=-1, *, where=None, algorithm="auto", xp=None):
    """Softmax of ``x`` along ``axis``: ``exp(x) / sum(exp(x))``, without overflow.

    Parameters
    ----------
    {params}
    {options}

    Returns
    -------
    y : array
        Same namespace, device, shape and floating dtype as ``x``; each slice along
        ``axis`` sums to 1 (masked entries are 0).

    Notes
    -----
    Correct for every finite input: no intermediate overflows, even for
    ``±3.4e38`` in float32.  Entries equal to ``+inf`` share the row's mass evenly
    and the others get 0 (the limit of the infinite entries growing together;
    SciPy, JAX and PyTorch give NaN there).  A NaN in an unmasked entry makes the
    row NaN, a row of all ``-inf`` gives NaN (0/0), and a row masked out entirely
    gives 0.  A 0-d input gives 1.0.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxlib
    >>> softmaxlib.softmax(np.array([1.0, 2.0, 3.0]))
    array([0.09003057, 0.24472847, 0.66524096])

    Huge logits do not overflow:

    >>> softmaxlib.softmax(np.array([3.4e38, 3.4e38, 0.0], dtype=np.float32))
    array([0.5, 0.5, 0. ], dtype=float32)

    ``where`` leaves entries out of the normalisation:

    >>> softmaxlib.softmax(np.array([1.0, 2.0, 3.0]), where=np.array([True, True, False]))
    array([0.26894142, 0.73105858, 0.        ])
    """
    return _compute("softmax", x, axis, where, algorithm, xp)


def log_softmax(x, /, axis=-1, *, where=None, algorithm="auto", xp=None):
    """Logarithm of the softmax of ``x`` along ``axis``: ``x - logsumexp(x)``, exactly.

    Parameters
    ----------
    {params}
    {options}

    Returns
    -------
    y : array
        Same namespace, device, shape and floating dtype as ``x``; masked entries
        are ``-inf``.

    Notes
    -----
    Computed without forming ``x - logsumexp(x)`` from a rounded logsumexp, so it
    stays accurate for large logits.  A result beyond the dtype's range rounds to
    ``-inf``.  The special values follow :func:`softmax`: entries equal to ``+inf``
    get ``-log(count of +inf)``, the others ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxlib
    >>> softmaxlib.log_softmax(np.array([1.0, 2.0, 3.0]))
    array([-2.40760596, -1.40760596, -0.40760596])
    >>> softmaxlib.log_softmax(np.array([1e30, 0.0], dtype=np.float32))
    array([ 0.e+00, -1.e+30], dtype=float32)
    """
    return _compute("log_softmax", x, axis, where, algorithm, xp)


def logsumexp(x, /, axis=-1, *, keepdims=False, where=None, algorithm="auto", xp=None):
    """``log(sum(exp(x)))`` along ``axis``, without overflow or underflow.

    Parameters
    ----------
    {params}
    keepdims : bool, optional
        Keep the reduced axes as axes of length one.
    {options}

    Returns
    -------
    lse : array
        Same namespace, device and floating dtype as ``x``, with ``axis`` removed
        (or kept with length 1 if ``keepdims``).  A full reduction gives a 0-d
        array, as the Array API standard says (SciPy returns a NumPy scalar).

    Notes
    -----
    A row containing ``+inf`` gives ``+inf``; a row of all ``-inf``, a row masked
    out entirely and an empty axis give ``-inf``; a NaN gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxlib
    >>> softmaxlib.logsumexp(np.array([1.0, 2.0, 3.0]))
    array(3.40760596)
    >>> softmaxlib.logsumexp(np.array([[1000.0, 1000.0], [-1000.0, -1000.0]]), axis=1)
    array([1000.69314718, -999.30685282])
    >>> softmaxlib.logsumexp(np.zeros((2, 3)), axis=None, keepdims=True)
    array([[1.79175947]])
    """
    return _compute("logsumexp", x, axis, where, algorithm, xp, keepdims=keepdims)


for _function in (softmax, log_softmax, logsumexp):
    _function.__doc__ = _function.__doc__.format(params=_COMMON_PARAMETERS, options=_COMMON_OPTIONS)
del _function


def _compute(op, x, axis, where, algorithm, xp, keepdims=False):
    """Check the arguments, run the fast path of ``x``'s namespace or the reference."""
    if xp is None and type(x) is np.ndarray:
        xp = _NUMPY  # the common case, without array_namespace's generic search
    else:
        xp, x = _namespace_and_array(x, xp)
    x = _as_floating(xp, x)
    if algorithm not in ALGORITHMS:
        msg = f"unknown algorithm {algorithm!r}; valid names are {', '.join(map(repr, ALGORITHMS))}"
        raise ValueError(msg)
    shape = tuple(x.shape)
    axes = _normalize_axes(axis, len(shape))
    where = _broadcast_mask(xp, where, x)
    if not shape:
        # A 0-d input is softmaxed over its single element, for every valid axis.
        x = xp.reshape(x, (1,))
        where = None if where is None else xp.reshape(where, (1,))
        axes = (0,)

    result = NotImplemented
    fast = _backends.fast_path(xp)
    if fast is not None and math.prod(x.shape) > 0:
        result = fast.compute(op, x, axes, where, algorithm)
    if result is NotImplemented:
        with _quiet_numpy(xp):
            result = _reference.compute(xp, op, x, axes, where, algorithm)

    if not shape:
        return xp.reshape(result, ())
    if op == "logsumexp" and keepdims:
        result = xp.reshape(result, tuple(1 if a in axes else s for a, s in enumerate(shape)))
    return result


_NUMPY = array_api_compat.array_namespace(np.empty(0))


def _namespace_and_array(x, xp):
    """The namespace to compute in and ``x`` as its array (SciPy's rule for non-arrays)."""
    if xp is None:
        if array_api_compat.is_array_api_obj(x):
            xp = array_api_compat.array_namespace(x)
        else:
            x = np.asarray(x)
            xp = _NUMPY
    elif not array_api_compat.is_array_api_obj(x):
        x = xp.asarray(x)
    return xp, x


def _as_floating(xp, x):
    """Promote integers and booleans; refuse complex and non-numeric dtypes."""
    try:
        kind = _DTYPE_KINDS[(xp, x.dtype)]
    except KeyError:
        kind = _DTYPE_KINDS[(xp, x.dtype)] = _dtype_kind(xp, x.dtype)
    except TypeError:  # an unhashable dtype: classify it every time
        kind = _dtype_kind(xp, x.dtype)
    if kind == "floating":
        return x
    if kind == "promote":
        default = xp.__array_namespace_info__().default_dtypes(device=array_api_compat.device(x))
        return xp.astype(x, default["real floating"])
    if kind == "complex":
        msg = (
            f"softmaxlib needs real input, got dtype {x.dtype}; take the real part or the "
            "magnitude first (for example softmax(abs(x)))"
        )
    else:
        msg = (
            f"unsupported dtype {x.dtype}: softmaxlib computes on real floating dtypes "
            "(float16, bfloat16, float32, float64) and promotes integers and booleans; "
            "convert the input with astype first"
        )
    raise TypeError(msg)


# (namespace, dtype) -> "floating", "promote", "complex" or "unsupported"; a handful
# of entries, looked up on every call instead of asking the namespace.
_DTYPE_KINDS = {}


def _dtype_kind(xp, dtype):
    if _reference._is_half(dtype):
        return "floating"
    try:
        if xp.isdtype(dtype, "real floating"):
            return "floating"
        if xp.isdtype(dtype, ("integral", "bool")):
            return "promote"
        if xp.isdtype(dtype, "complex floating"):
            return "complex"
    except (TypeError, ValueError):  # a dtype the namespace itself does not classify
        pass
    return "unsupported"


def _normalize_axes(axis, ndim):
    """``axis`` (int, tuple of int or None) as a sorted tuple of non-negative axes."""
    if type(axis) is int and -ndim <= axis < ndim:
        return (axis % ndim,)  # the common case
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    result = []
    for a in axes:
        try:
            a = operator.index(a)
        except TypeError:
            msg = f"axis must be an int, a tuple of ints or None, got {axis!r}"
            raise TypeError(msg) from None
        if ndim == 0 and a in (0, -1):
            continue  # the single element of a 0-d input
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        result.append(a % ndim)
    if len(set(result)) != len(result):
        msg = f"repeated axis in {axis!r}"
        raise ValueError(msg)
    return tuple(sorted(result))


def _broadcast_mask(xp, where, x):
    """``where`` as a boolean array of ``x``'s namespace and device, broadcast to its shape."""
    if where is None:
        return None
    where = xp.asarray(where, device=array_api_compat.device(x))
    if where.dtype != xp.bool:
        msg = f"where must be a boolean array, got dtype {where.dtype}"
        raise TypeError(msg)
    try:
        return xp.broadcast_to(where, tuple(x.shape))
    except (ValueError, RuntimeError) as error:
        msg = f"where of shape {tuple(where.shape)} does not broadcast to x's shape {tuple(x.shape)}"
        raise ValueError(msg) from error


def _quiet_numpy(xp):
    """NumPy's error state with floating-point warnings off, for NumPy arrays.

    The reference never divides by zero or forms NaN, but a result past the range
    (log_softmax of ±3.4e38) rounds to -inf as the contract says, and a user's
    ``np.seterr(all="raise")`` must not turn that into an exception.
    """
    if array_api_compat.is_numpy_namespace(xp):
        return np.errstate(all="ignore")
    return contextlib.nullcontext()
