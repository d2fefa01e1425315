"""The public functions: argument checks, then dispatch by namespace.

softmax, log_softmax and logsumexp (with an optional temperature), and the rest of
the family: softmax_topk, stablemax and log_stablemax.  Each checks its arguments,
runs the fast path of the input's namespace (``softmaxlib._backends``), then the
generic fast path when a native one returns NotImplemented, and the Array-API
reference when that returns NotImplemented too (or under ``reference_only``).
"""

import contextlib
import math
import operator

import array_api_compat
import numpy as np

from softmaxlib import _backends, _reference, _temperature

ALGORITHMS = ("auto",) + _reference.ALGORITHMS

_COMMON_PARAMETERS = """x : array_like
        Input array of any Array-API library (NumPy, JAX, CuPy, PyTorch, Dask,
        array-api-strict, ...), or anything NumPy can turn into an array.
        Integer and boolean inputs are promoted to the namespace's default real
        floating dtype; float16 and bfloat16 are computed in float32 and rounded once.
        A NumPy masked array's mask (also a Dask array's of masked chunks) acts as
        ``where`` (combined with any ``where`` given) and the result is a masked array
        with the input's mask (logsumexp's is masked where the whole row is).  A Dask
        array must know its chunk sizes (call ``compute_chunk_sizes()`` after boolean
        indexing).
    axis : int, tuple of int or None, optional
        The axis or axes to normalise over; None means all axes, ``()`` none (each
        element is its own row: softmax 1, log_softmax 0, logsumexp ``x``, special
        values as for a row of one).  A bool is refused (TypeError).  Default: the last.
    where : array_like of bool, optional
        Broadcastable to ``x``.  Only entries where it is True take part; the others
        are left out of the normalisation (as are masked entries of a masked
        ``where``)."""

_TEMPERATURE = """temperature : float, array or "adaptive", optional
        Divide the logits by it: the result is that of ``x / temperature``
        (logsumexp: ``logsumexp(x / temperature)``), fused into the computation (no
        temporary array).  A positive number; ``inf`` gives the uniform distribution
        over the unmasked finite entries.  Or an array of positive numbers
        broadcastable to the batch shape (``x``'s shape without the reduced axes)
        or, with ``x.ndim`` dimensions, to the keepdims shape: one temperature per
        row, checked as given (a float64 ``1e-300`` for float32 ``x`` is as tiny as
        the same number given alone).  Or ``"adaptive"``: per row, the logits are
        multiplied by ``beta = max(1, p(H))`` where the entropy ``H`` of
        ``softmax(x)`` exceeds 0.5 (Velickovic et al. 2024; see :doc:`/family`).  Zero, negative or NaN
        temperatures raise ValueError (inside ``jax.jit`` they cannot be checked:
        such rows give NaN).  Default None: no temperature."""

_XP = """xp : array namespace, optional
        The namespace of ``x``, when the caller knows it; found from ``x`` otherwise.
        The library's own module (``numpy``, ``torch``, ...) stands for its Array-API
        namespace; anything else, or a namespace that is not ``x``'s, is a TypeError."""

_OUT = """out : numpy.ndarray or torch.Tensor, optional
        The array to write the result into, and to return; same values as without
        ``out``.  NumPy: it must have the result's shape and dtype, be writable, and
        either not overlap ``x`` or be ``x`` itself (in place: ``out=x``); any strides;
        otherwise ValueError (or TypeError for a type) before any work.  PyTorch:
        torch's own convention (the result's dtype and device, no autograd, no partial
        overlap, RuntimeError otherwise; another shape is resized, with torch's
        warning if ``out`` had elements).  JAX arrays are immutable and refuse it
        (TypeError); so do the other libraries."""

_COMMON_OPTIONS = """algorithm : {"auto", "three-pass", "three-pass-reload", "online", "two-pass"}
        How to compute it; see :data:`softmaxlib.ALGORITHMS`.  All give the same
        result within the documented tolerance; "auto" picks the fastest for the
        backend, dtype and size.
    """ + _XP


def softmax(x, /, axis=-1, *, where=None, temperature=None, algorithm="auto", xp=None, out=None):
    """Softmax of ``x`` along ``axis``: ``exp(x) / sum(exp(x))``, without overflow.

    Parameters
    ----------
    {params}
    {temperature}
    {options}
    {out}

    Returns
    -------
    y : array
        Same namespace, device, shape and floating dtype as ``x``; each slice along
        ``axis`` sums to 1 (masked entries are 0).  ``out`` itself when given.

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

    A temperature flattens (T > 1) or sharpens (T < 1) the distribution; one per row
    is an array of the batch shape:

    >>> softmaxlib.softmax(np.array([1.0, 2.0, 3.0]), temperature=2.0)
    array([0.18632372, 0.30719589, 0.50648039])
    >>> softmaxlib.softmax(np.array([[1.0, 2.0], [1.0, 2.0]]), temperature=np.array([1.0, np.inf]))
    array([[0.26894142, 0.73105858],
           [0.5       , 0.5       ]])
    """
    if where is None and temperature is None and xp is None:
        y = _lane("softmax_lane", x, axis, algorithm, out)
        if y is not NotImplemented:
            return y
    return _compute("softmax", x, axis, where, algorithm, xp, False, temperature, out)


def log_softmax(x, /, axis=-1, *, where=None, temperature=None, algorithm="auto", xp=None, out=None):
    """Logarithm of the softmax of ``x`` along ``axis``: ``x - logsumexp(x)``, exactly.

    Parameters
    ----------
    {params}
    {temperature}
    {options}
    {out}

    Returns
    -------
    y : array
        Same namespace, device, shape and floating dtype as ``x``; masked entries
        are ``-inf``.  ``out`` itself when given.

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
    >>> softmaxlib.log_softmax(np.array([1.0, 2.0, 3.0]), temperature=0.5)
    array([-4.14293163, -2.14293163, -0.14293163])
    """
    if where is None and temperature is None and xp is None:
        y = _lane("log_softmax_lane", x, axis, algorithm, out)
        if y is not NotImplemented:
            return y
    return _compute("log_softmax", x, axis, where, algorithm, xp, False, temperature, out)


def logsumexp(x, /, axis=-1, *, keepdims=False, where=None, temperature=None, algorithm="auto", xp=None):
    """``log(sum(exp(x)))`` along ``axis``, without overflow or underflow.

    Parameters
    ----------
    {params}
    keepdims : bool, optional
        Keep the reduced axes as axes of length one.
    {temperature}
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

    With a temperature it is ``logsumexp(x / T)``, not ``T * logsumexp(x / T)``:

    >>> softmaxlib.logsumexp(np.array([1.0, 2.0, 3.0]), temperature=0.5)
    array(6.14293163)
    """
    if where is None and temperature is None and xp is None:
        y = _lane("logsumexp_lane", x, axis, algorithm, keepdims)
        if y is not NotImplemented:
            return y
    return _compute("logsumexp", x, axis, where, algorithm, xp, keepdims, temperature)


def softmax_topk(x, k, /, axis=-1, *, where=None, xp=None):
    """The ``k`` largest probabilities of ``softmax(x)`` along ``axis``, and their indices.

    Fused: the fast paths read ``x`` once, keeping the online normaliser's running
    (max, sum) pair beside a running top-k of the logits (Milakov & Gimelshein 2018).

    Parameters
    ----------
    x : array_like
        Input array of any Array-API library, or anything NumPy can turn into an
        array.  Integer and boolean inputs are promoted to the default real floating
        dtype; float16 and bfloat16 are computed in float32.  A NumPy masked array's
        mask acts as ``where``; ``values`` and ``indices`` are then masked arrays,
        masked where the entry picked is masked in ``x``.
    k : int
        How many to return, from 1 to ``x.shape[axis]``.
    axis : int, optional
        The one axis to rank and normalise over.  Default: the last.
    where : array_like of bool, optional
        Broadcastable to ``x``.  Only entries where it is True take part in the
        normalisation; the others have probability 0 and rank after every unmasked
        entry.
    {xp}

    Returns
    -------
    values : array
        ``softmax(x, axis, where=where)`` at ``indices`` (normalised over the whole
        row), sorted descending, in ``x``'s floating dtype; ``x``'s shape with
        ``axis``'s length ``k``.
    indices : array
        Their indices along ``axis``, in the namespace's default integer dtype.

    Raises
    ------
    ValueError
        If ``k`` is not between 1 and ``x.shape[axis]``.
    TypeError
        If ``k`` is not an integer, or ``axis`` is not a single int.

    Notes
    -----
    Ties are broken by the lower index.  ``-inf`` entries (probability 0) rank after
    the finite ones and masked entries after all unmasked ones, each by index.
    ``+inf`` entries share the row's mass and rank first.  A row with a NaN in an
    unmasked entry gives NaN values, with ``k`` distinct but otherwise unspecified
    indices.  A 0-d input is one element (``k`` must be 1) and gives 0-d results.
    See :doc:`/family`.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxlib
    >>> values, indices = softmaxlib.softmax_topk(np.array([1.0, 3.0, 2.0, 3.0]), 2)
    >>> values
    array([0.3994863, 0.3994863])
    >>> indices
    array([1, 3])

    Along another axis, with a mask:

    >>> x = np.array([[0.0, 5.0], [1.0, 4.0], [2.0, 3.0]])
    >>> softmaxlib.softmax_topk(x, 1, axis=0, where=np.array([True, False, True])[:, None])
    (array([[0.88079708, 0.88079708]]), array([[2, 0]]))
    """
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        msg = f"softmax_topk ranks along one axis, an int; got axis={axis!r}"
        raise TypeError(msg)
    x, mask, where = _unmask(x, where)
    xp, x, shape, (axis,), where = _prepare(x, axis, where, xp)
    k = _check_k(k, x.shape[axis])

    result = NotImplemented
    fast = _backends.fast_path(xp)
    topk = getattr(fast, "softmax_topk", None)
    if topk is not None and math.prod(x.shape) > 0:
        result = topk(x, k, axis, where)
    if result is NotImplemented:
        with _quiet_numpy(xp):
            result = _reference.topk.softmax_topk(xp, x, k, axis, where)
    values, indices = result
    if not shape:
        values, indices = xp.reshape(values, ()), xp.reshape(indices, ())
    if mask is not None:  # both masked where the entry picked is masked in x
        picked = mask.data if not shape else mask.take_along_axis(mask.data, indices, axis)
        values, indices = mask.masked(values, picked), mask.masked(indices, picked)
    return values, indices


def stablemax(x, /, axis=-1, *, where=None, xp=None, out=None):
    """StableMax of ``x`` along ``axis``: ``s(x) / sum(s(x))``, with no exponential.

    ``s(x) = x + 1`` for ``x >= 0`` and ``1 / (1 - x)`` for ``x < 0`` (Prieto et al.
    2025, "Grokking at the Edge of Numerical Stability").

    Parameters
    ----------
    {params}
    {xp}
    {out}

    Returns
    -------
    y : array
        Same namespace, device, shape and floating dtype as ``x``; each slice along
        ``axis`` sums to 1 (masked entries are 0).  ``out`` itself when given.

    Notes
    -----
    ``s`` grows linearly, so small probabilities do not collapse to exact zeros
    the way float32 softmax's do.  No overflow for any finite input: the sum is
    scaled by ``s`` of the row's max.  The special values follow :func:`softmax`:
    ``+inf`` entries share the mass, ``-inf`` entries get 0, a row of all ``-inf``
    is NaN, a NaN makes the row NaN, a fully masked row gives 0.  See
    :doc:`/family`.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxlib
    >>> softmaxlib.stablemax(np.array([-1.0, 0.0, 2.0]))
    array([0.11111111, 0.22222222, 0.66666667])
    >>> softmaxlib.stablemax(np.array([-100.0, 0.0, 100.0], dtype=np.float32))
    array([9.7059106e-05, 9.8029701e-03, 9.9009997e-01], dtype=float32)
    """
    return _compute("stablemax", x, axis, where, "auto", xp, out=out)


def log_stablemax(x, /, axis=-1, *, where=None, xp=None, out=None):
    """Logarithm of the StableMax of ``x`` along ``axis``: ``log s(x) - log sum s(x)``.

    Parameters
    ----------
    {params}
    {xp}
    {out}

    Returns
    -------
    y : array
        Same namespace, device, shape and floating dtype as ``x``; masked entries
        are ``-inf``.  ``out`` itself when given.

    Notes
    -----
    Accurate where :func:`stablemax` itself would underflow: ``log_stablemax`` of
    ``[-3.4e38, 3.4e38]`` in float32 is finite.  The special values follow
    :func:`log_softmax`.  See :doc:`/family`.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxlib
    >>> softmaxlib.log_stablemax(np.array([-1.0, 0.0, 2.0]))
    array([-2.19722458, -1.5040774 , -0.40546511])
    >>> softmaxlib.log_stablemax(np.array([-3e38, 3e38], dtype=np.float32))
    array([-177.1937,    0.    ], dtype=float32)
    """
    return _compute("log_stablemax", x, axis, where, "auto", xp, out=out)


for _function in (softmax, log_softmax, logsumexp, softmax_topk, stablemax, log_stablemax):
    _function.__doc__ = _function.__doc__.format(
        params=_COMMON_PARAMETERS, options=_COMMON_OPTIONS, temperature=_TEMPERATURE, xp=_XP, out=_OUT
    )
del _function


def _lane(name, x, axis, algorithm, last):
    """The common call (no where, temperature or xp: the caller checked) of a NumPy
    array or a torch CPU tensor on the NumPy fast path's short lane,
    ``numpy_native.<name>``; NotImplemented for any other call, which then takes
    the full path."""
    if type(x) is np.ndarray:
        lane = _backends.numpy_lane()
        return NotImplemented if lane is None else getattr(lane, name)(x, axis, algorithm, last)
    torch_path = _backends.loaded_torch_path()
    return NotImplemented if torch_path is None else torch_path.lane(name, x, axis, algorithm, last)


def _compute(op, x, axis, where, algorithm, xp, keepdims=False, temperature=None, out=None):
    """Check the arguments, run the fast path of ``x``'s namespace or the reference."""
    if algorithm not in ALGORITHMS:
        msg = f"unknown algorithm {algorithm!r}; valid names are {', '.join(map(repr, ALGORITHMS))}"
        raise ValueError(msg)
    if out is not None and isinstance(x, np.ma.MaskedArray):
        msg = "out= takes no masked array input (the result is a masked array); call without out="
        raise TypeError(msg)
    if out is None and type(x) is not np.ndarray and _backends.torch_compiling():
        result = _backends.torch_traced(op, x, _normalize_axes(axis, x.ndim), where, algorithm, keepdims,
                                        temperature)
        if result is not NotImplemented:
            return result
    x_given = x
    x, mask, where = _unmask(x, where)
    xp, x, shape, axes, where = _prepare(x, axis, where, xp)
    if out is not None:
        _check_out(xp, out, x_given, x, shape, where, temperature)

    result = NotImplemented
    fast = _backends.fast_path(xp)
    # The fast path writes into out itself when it can (out has x's shape here).
    writes_out = out is not None and tuple(x.shape) == shape and getattr(fast, "WRITES_OUT", False)
    fast_out = {"out": out} if writes_out else {}
    if temperature is None:  # the plain call, which every fast path takes
        if fast is not None and math.prod(x.shape) > 0:
            result = fast.compute(op, x, axes, where, algorithm, **fast_out)
    else:
        temperature = _check_temperature(xp, temperature, x, axes)
        if fast is not None and math.prod(x.shape) > 0:
            result = fast.compute(op, x, axes, where, algorithm, temperature=temperature, **fast_out)
    if result is NotImplemented and fast is not None and math.prod(x.shape) > 0:
        # What a native path leaves (no build, a dtype or temperature it lacks) runs
        # generically before it runs the reference.
        generic = _backends.generic_path()
        if fast is not generic:
            result = generic.compute(op, x, axes, where, algorithm, temperature=temperature)
    if result is NotImplemented:
        with _quiet_numpy(xp):
            if op in _reference.stablemax.OPERATIONS:
                result = _reference.stablemax.compute(xp, op, x, axes, where)
            else:
                result = _reference.compute(xp, op, x, axes, where, algorithm, temperature)

    result = _restore_shape(xp, result, x, shape)
    if out is not None:
        if result is not out:
            if type(out) is np.ndarray:
                np.copyto(out, result)
            else:
                out.copy_(result)
        return out
    if op == "logsumexp" and keepdims and shape:
        result = xp.reshape(result, tuple(1 if a in axes else s for a, s in enumerate(shape)))
    if mask is not None:
        row_mask = mask.data
        if op == "logsumexp":  # masked where the whole row is
            row_mask = mask.all(row_mask, axis=_normalize_axes(axis, row_mask.ndim), keepdims=keepdims)
        result = mask.masked(result, row_mask)
    return result


def _check_out(xp, out, x_given, x, shape, where, temperature):
    """Refuse an ``out=`` the computation cannot write into, before any work."""
    if xp is not _NUMPY:
        if array_api_compat.is_torch_namespace(xp):
            _backends.torch_path().check_out(out, x, x_given, shape, where, temperature)
            return
        if array_api_compat.is_jax_namespace(xp):
            msg = "out= is not possible for JAX arrays: they are immutable; use the returned array"
        else:
            msg = f"out= is supported for NumPy arrays and torch tensors only, not for {xp.__name__} arrays"
        raise TypeError(msg)
    if type(out) is not np.ndarray:
        msg = f"out must be a numpy.ndarray, got {type(out).__module__}.{type(out).__name__}"
        raise TypeError(msg)
    if out.shape != shape or out.dtype != x.dtype:
        msg = f"out has shape {out.shape} and dtype {out.dtype}; the result has shape {shape} and dtype {x.dtype}"
        raise ValueError(msg)
    if not out.flags.writeable:
        msg = "out is read-only"
        raise ValueError(msg)
    if out is not x_given and np.may_share_memory(out, x_given) and not _same_view(out, x_given):
        if np.shares_memory(out, x_given):
            msg = "out overlaps x without being x itself; pass out=x (in place) or an array of its own"
            raise ValueError(msg)
    if where is not None and np.may_share_memory(out, where) and np.shares_memory(out, where):
        msg = "out overlaps where"
        raise ValueError(msg)


def _same_view(a, b):
    """Do NumPy arrays ``a`` and ``b`` view the same elements the same way?"""
    return (isinstance(b, np.ndarray) and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape and a.dtype == b.dtype)


class _InputMask:
    """The mask of a masked input (a NumPy masked array, or a Dask array of them) and
    how to put it on a result of the same library."""

    def __init__(self, data, dask):
        self.data = data
        self.dask = dask

    def masked(self, result, mask):
        if self.dask:
            import dask.array as da

            return da.ma.masked_array(result, mask=mask)
        return np.ma.MaskedArray(result, mask=mask)

    def all(self, mask, axis, keepdims):
        if self.dask:
            import dask.array as da

            return da.all(mask, axis=axis, keepdims=keepdims)
        return np.all(mask, axis=axis, keepdims=keepdims)

    def take_along_axis(self, mask, indices, axis):
        if not self.dask:
            return np.take_along_axis(mask, indices, axis=axis)
        import dask.array as da  # no take_along_axis: the ranked axis as one chunk

        indices = indices.rechunk({axis: -1})
        mask = mask.rechunk(tuple(-1 if a == axis else c for a, c in enumerate(indices.chunks)))
        return da.map_blocks(np.take_along_axis, mask, indices, axis=axis, dtype=bool, chunks=indices.chunks)


def _unmask(x, where):
    """``(x, mask, where)``: a masked input's data, its ``_InputMask`` and ``where`` with
    the masked entries left out; a memory map as a plain view of its memory (the
    native kernels take only plain arrays; NumPy's own functions return plain
    arrays from one too); other inputs as they are, with mask None."""
    if type(x) is np.ndarray:  # the common case first
        return x, None, where
    if type(x) is np.memmap:
        return x.view(np.ndarray), None, where
    if isinstance(x, np.ma.MaskedArray):
        data, mask, xp = np.ma.getdata(x), _InputMask(np.ma.getmaskarray(x), dask=False), _NUMPY
    elif array_api_compat.is_dask_array(x) and isinstance(x._meta, np.ma.MaskedArray):
        import dask.array as da

        data, mask = da.ma.getdata(x), _InputMask(da.ma.getmaskarray(x), dask=True)
        xp = array_api_compat.array_namespace(x)
    else:
        return x, None, where
    keep = ~mask.data
    if where is not None:
        keep = _broadcast_mask(xp, where, data) & keep
    return data, mask, keep


def _prepare(x, axis, where, xp):
    """The argument checks every function shares: ``(xp, x, shape, axes, where)``.

    ``x`` as a floating array of namespace ``xp``, its original ``shape``, ``axes``
    as a sorted tuple of non-negative axes and ``where`` broadcast to ``x`` (or
    None).  When no axis is reduced (a 0-d input, or ``axis=()``) each element is
    its own row: ``x`` comes back with a trailing axis of length 1 to reduce over
    (shape (1,) for a 0-d input), so that every path gives a one-element row's
    result, special values and masks included; the caller reshapes the result
    back to ``shape`` (see ``_restore_shape``).
    """
    if xp is None and type(x) is np.ndarray:
        xp = _NUMPY  # the common case, without array_namespace's generic search
    else:
        xp, x = _namespace_and_array(x, xp)
    x = _as_floating(xp, x)
    shape = tuple(x.shape)
    if xp is not _NUMPY:  # (a NumPy array's shape is always known)
        _check_known_shape(shape, "x")
    axes = _normalize_axes(axis, len(shape))
    if where is not None:  # tested here: a call saved on the fast lane
        where = _broadcast_mask(xp, where, x)
    if xp is not _NUMPY and array_api_compat.is_dask_array(x):
        x, where = _without_empty_chunks(x), None if where is None else _without_empty_chunks(where)
    if not axes:
        rows = shape + (1,)
        x = xp.reshape(x, rows)
        where = None if where is None else xp.reshape(where, rows)
        axes = (len(shape),)
    return xp, x, shape, axes, where


def _restore_shape(xp, result, x, shape):
    """The result of a call ``_prepare`` gave one-element rows, back in ``shape``.

    softmax-like results lose the trailing axis of length 1; a logsumexp's is already
    ``shape`` (a 0-d input's is 0-d), reshaped all the same.
    """
    if tuple(x.shape) == shape:
        return result
    return xp.reshape(result, shape)


def _without_empty_chunks(a):
    """A Dask array with its empty chunks merged away (boolean indexing leaves them, and
    Dask's own max fails on them); the same array if it has none or is empty."""
    if a.size == 0 or all(all(a.chunks[i]) for i in range(a.ndim)):
        return a
    return a.rechunk(tuple(tuple(c for c in chunks if c) for chunks in a.chunks))


def _check_known_shape(shape, name):
    """Refuse a shape with unknown sizes (a Dask array after boolean indexing)."""
    if any(s is None or s != s for s in shape):  # None (Array API) or NaN (Dask)
        msg = (
            f"{name} has unknown sizes in its shape {shape}; softmaxlib needs the length of "
            f"every axis (for a Dask array, call {name}.compute_chunk_sizes() first)"
        )
        raise ValueError(msg)


_NUMPY = array_api_compat.array_namespace(np.empty(0))


def _namespace_and_array(x, xp):
    """The namespace to compute in and ``x`` as its array (SciPy's rule for non-arrays).

    A given ``xp`` must be an array namespace and must be ``x``'s own library (its
    plain module, ``numpy`` say, stands for the Array-API namespace of that library).
    """
    if xp is None:
        known = _TENSOR_NAMESPACES.get(type(x))
        if known is not None:
            return known, x
        if array_api_compat.is_array_api_obj(x):
            xp = array_api_compat.array_namespace(x)
            if array_api_compat.is_torch_array(x):
                _TENSOR_NAMESPACES[type(x)] = xp
            return xp, x
        return _NUMPY, np.asarray(x)
    if isinstance(xp, (str, bytes)) or not callable(getattr(xp, "asarray", None)):
        msg = (
            f"xp must be an array namespace (such as numpy, torch or "
            f"array_api_compat.array_namespace(x)), got {xp!r} of type {type(xp).__name__}"
        )
        raise TypeError(msg)
    if not array_api_compat.is_array_api_obj(x):
        x = xp.asarray(x)
    try:
        own = array_api_compat.array_namespace(x)
    except TypeError:
        own = None
    if own is xp:
        return xp, x
    if own is not None and any(same(xp) and same(own) for same in _SAME_LIBRARY):
        return own, x
    msg = (
        f"xp={getattr(xp, '__name__', xp)!r} does not match x, a {type(x).__module__}.{type(x).__name__}"
        + ("" if own is None else f" of namespace {own.__name__!r}")
        + "; pass x's own namespace or leave xp=None"
    )
    raise TypeError(msg)


# torch.Tensor (and subclasses) -> its namespace: array_namespace's search costs as
# much as a small softmax on the PyTorch path.
_TENSOR_NAMESPACES = {}

_SAME_LIBRARY = (
    array_api_compat.is_numpy_namespace,
    array_api_compat.is_cupy_namespace,
    array_api_compat.is_torch_namespace,
    array_api_compat.is_dask_namespace,
    array_api_compat.is_jax_namespace,
    array_api_compat.is_pydata_sparse_namespace,
    array_api_compat.is_ndonnx_namespace,
    array_api_compat.is_array_api_strict_namespace,
)


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
    if _reference.is_half(dtype):
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
        if isinstance(a, (bool, np.bool_)):  # operator.index takes True as 1; NumPy refuses it
            msg = f"axis must be an int, a tuple of ints or None, not a bool; got {axis!r}"
            raise TypeError(msg)
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
    if isinstance(where, np.ma.MaskedArray):  # a masked entry of the mask leaves x's entry out
        where = where.filled(False)
    where = xp.asarray(where, device=array_api_compat.device(x))
    _check_known_shape(tuple(where.shape), "where")
    if where.dtype != xp.bool:
        msg = f"where must be a boolean array, got dtype {where.dtype}"
        raise TypeError(msg)
    try:
        return xp.broadcast_to(where, tuple(x.shape))
    except (ValueError, RuntimeError) as error:
        msg = f"where of shape {tuple(where.shape)} does not broadcast to x's shape {tuple(x.shape)}"
        raise ValueError(msg) from error


def _check_k(k, n):
    """``k`` as an int in [1, n] (the length of the ranked axis), or a clear error."""
    if isinstance(k, (bool, np.bool_)):
        msg = f"k must be an integer, got the bool {k!r}"
        raise TypeError(msg)
    try:
        k = operator.index(k)
    except TypeError:
        msg = f"k must be an integer, got {k!r} of type {type(k).__name__}"
        raise TypeError(msg) from None
    if not 1 <= k <= n:
        msg = f"k must be between 1 and the length of the axis, {n}; got k={k}"
        raise ValueError(msg)
    return k


def _check_temperature(xp, temperature, x, axes):
    """``temperature`` in the form the backends take (see ``softmaxlib._backends``).

    A positive Python float (``inf`` included), ``"adaptive"``, or an array of ``x``'s
    namespace and device, of ``x``'s floating dtype (float32 for float16 and bfloat16,
    which are computed in float32) and of the batch shape.
    """
    if isinstance(temperature, str):
        if temperature == "adaptive":
            return temperature
        msg = f"unknown temperature {temperature!r}: give {_temperature.KINDS}"
        raise ValueError(msg)
    if _temperature.is_scalar(temperature):
        return _temperature.positive_scalar(temperature)
    return _temperature_array(xp, temperature, x, axes)


def _temperature_array(xp, temperature, x, axes):
    """A per-row temperature as an array of the batch shape, checked where it can be.

    The values are checked as given, before any conversion to ``x``'s namespace or
    dtype could round a tiny one to 0 or a huge one to inf; the array keeps a dtype
    wider than ``x``'s (float64 for float32 ``x``) so that the backends see them as the
    scalar path does.
    """
    if isinstance(temperature, np.ma.MaskedArray):
        msg = "temperature cannot be a masked array: fill it first (temperature.filled(1.0), say)"
        raise TypeError(msg)
    given = temperature
    if not array_api_compat.is_array_api_obj(given):
        try:
            given = np.asarray(given)
        except (TypeError, ValueError) as error:
            msg = f"temperature must be {_temperature.KINDS}, got {type(temperature).__name__}"
            raise TypeError(msg) from error
    if type(given) is np.ndarray:
        given_xp = _NUMPY
    else:
        _check_known_shape(tuple(given.shape), "temperature")
        given_xp = array_api_compat.array_namespace(given)
    kind = _dtype_kind(given_xp, given.dtype)
    if kind not in ("floating", "promote") or given_xp.isdtype(given.dtype, "bool"):
        msg = f"temperature must be {_temperature.KINDS}, got an array of dtype {given.dtype}"
        raise TypeError(msg)
    checked = _check_positive(given_xp, given)
    dtype = xp.float32 if _reference.is_half(x.dtype) else x.dtype
    if given_xp is xp and (xp is _NUMPY or array_api_compat.device(given) == array_api_compat.device(x)):
        t = given  # (asarray of a tensor that requires grad would warn)
    else:
        with np.errstate(all="ignore"):  # a narrowing conversion may round to 0 or inf
            try:
                t = xp.asarray(given, device=array_api_compat.device(x))
            except (TypeError, ValueError, RuntimeError) as error:
                msg = f"temperature must be {_temperature.KINDS}, got {type(temperature).__name__}"
                raise TypeError(msg) from error
    if t.dtype != dtype and not _bits(xp, t.dtype) > _bits(xp, dtype):
        t = xp.astype(t, dtype)  # integers and narrower floats: exact
    narrowed = type(t) is not type(given) or t.dtype != given.dtype  # (no cross-library ==)
    if checked and narrowed and _bits(given_xp, given.dtype) > _bits(xp, t.dtype):
        # The namespace holds fewer digits than given (JAX without x64): a positive
        # temperature that rounded to 0 becomes the smallest normal number instead.
        t = xp.where(t > 0, t, xp.asarray(xp.finfo(t.dtype).smallest_normal, dtype=t.dtype))
    return _temperature.to_batch_shape(xp, t, x.shape, axes)


def _check_positive(xp, t):
    """Refuse zero, negative and NaN temperatures; False where the values cannot be
    seen (a lazy Dask array, a JAX tracer inside jit or vmap: such rows give NaN)."""
    if array_api_compat.is_dask_array(t):  # a lazy Dask array is not computed here
        return False
    try:
        bad = bool(xp.any(~(t > 0)))
    except TypeError:  # a JAX tracer
        return False
    if bad:
        msg = "temperature must be positive: the array has zero, negative or NaN entries"
        raise ValueError(msg)
    return True


def _bits(xp, dtype):
    """The width of a floating dtype, 0 for others (integers: no digits to lose)."""
    if _reference.is_half(dtype):
        return 16
    if not xp.isdtype(dtype, "real floating"):
        return 0
    return xp.finfo(dtype).bits


def _quiet_numpy(xp):
    """NumPy's error state with floating-point warnings off, for NumPy arrays.

    The reference never divides by zero or forms NaN, but a result past the range
    (log_softmax of ±3.4e38) rounds to -inf as the contract says, and a user's
    ``np.seterr(all="raise")`` must not turn that into an exception.
    """
    if array_api_compat.is_numpy_namespace(xp):
        return np.errstate(all="ignore")
    return contextlib.nullcontext()
