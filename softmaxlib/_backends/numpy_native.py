"""The NumPy fast path: native SIMD kernels (``softmaxlib._kernels``).

``compute`` is a thin shell: it maps dtype, op and algorithm to the extension's
codes, allocates the output and hands the array *as it is* (any strides, no
copy) to C++, which walks the layout, releases the GIL and runs the kernels on
its own threads. Everything numerical lives in ``softmaxlib/_native/``. The
common call skips even that: ``softmax_lane`` and its siblings take the public
function's own arguments to C++ (``_native/module_lane.cc``).

The extension, its codes, threads, ISA, ``info()`` and the ``algorithm="auto"``
policy (defined in C++) belong to :mod:`softmaxlib._native_loader` (shared with the JAX and Dask
paths); the settings are re-exported here. If the extension cannot be imported,
this module still imports: ``compute`` returns ``NotImplemented`` so the caller
runs the reference, and ``info()`` says why.
"""

import numpy as np

from softmaxlib import _native_loader as native
from softmaxlib._native_loader import auto_algorithm, forced_isa, get_num_threads, info, set_num_threads

__all__ = ["accumulate", "auto_algorithm", "compute", "finish", "forced_isa", "get_num_threads", "info",
           "set_num_threads", "softmax_topk"]


def _auto(op, x, axes):
    row = 1
    for a in axes:
        row *= x.shape[a]
    return auto_algorithm(op, x.dtype.newbyteorder("="), row * x.itemsize, x.nbytes)


#: ``compute`` takes ``out=`` and writes the result into it.
WRITES_OUT = True


def compute(op, x, axes, where, algorithm, temperature=None, out=None):
    """Compute ``op`` over ``axes`` of the NumPy array ``x`` natively.

    Parameters follow :func:`softmaxlib._reference.compute` without ``xp``: ``axes``
    is a sorted tuple of unique non-negative axes, ``where`` None or a bool array
    of ``x.shape`` (any strides), ``temperature`` None, a real scalar (> 0, may be
    inf), "adaptive" or a float array of the batch shape: op(x / T), fused into the
    kernels (no x / T array, the passes of each algorithm as without a temperature;
    adaptive: one more pass for the entropy, and the max-based algorithms; see
    ``RowSolver::solve_t`` in _native/row_solver.h).
    Returns a new C-contiguous array (``x.shape`` for
    softmax/log_softmax, ``axes`` removed for logsumexp) of ``x.dtype``, or
    ``NotImplemented`` for what the kernels do not handle. With ``out`` (softmax
    and the like; checked by the caller: the result's shape and dtype, writable,
    ``x`` itself or not overlapping it) the result goes there and ``out`` is
    returned, written directly whatever its strides (the kernels read each row
    before they write it, so ``out=x`` works in place; a row of a strided ``out``
    goes through a row-sized buffer, never an array-sized one).
    """
    if native.kernels is None or type(x) is not np.ndarray:
        return NotImplemented
    dtype = x.dtype.newbyteorder("=")
    if dtype != x.dtype and op != "logsumexp":
        return _byte_swapped(op, x, axes, where, algorithm, temperature, out)
    if op in native.STABLEMAX_OPS:  # (StableMax takes no temperature)
        return _stablemax(op, x, axes, where, out) if temperature is None else NotImplemented
    code = native.NUMPY_DTYPES.get(dtype)
    if code is None or x.size == 0:
        return NotImplemented
    if algorithm == "auto":
        algorithm = _auto(op, x, axes)
    alg = native.ALGORITHMS.get(algorithm)
    if alg is None or op not in native.OPS:
        return NotImplemented
    where = _mask_of(where, x.shape)
    if op == "logsumexp":
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    else:
        shape = x.shape
    if temperature is None:
        y = _output(shape, dtype, out)
        native.kernels.compute(native.OPS[op], alg, code, x, native.axes_mask(axes), y, where)
        return _in_byte_order(y, x.dtype)
    mode_value_rows = _temperature_args(temperature)
    y = _output(shape, dtype, out)
    native.kernels.compute_temperature(native.OPS[op], alg, code, x, native.axes_mask(axes), y, where,
                                       *mode_value_rows)
    return _in_byte_order(y, x.dtype)


def _no_lane(*args):
    return NotImplemented


#: The short lane of the common call, in C++ (_native/module_lane.cc):
#: ``softmax_lane(x, axis, algorithm, out)``, ``log_softmax_lane`` alike and
#: ``logsumexp_lane(x, axis, algorithm, keepdims)``, straight from the public
#: function's arguments; NotImplemented for any call but the common one (and
#: always without the extension), which then takes the full path.
softmax_lane = native.kernels.softmax_lane if native.kernels is not None else _no_lane
log_softmax_lane = native.kernels.log_softmax_lane if native.kernels is not None else _no_lane
logsumexp_lane = native.kernels.logsumexp_lane if native.kernels is not None else _no_lane


def _byte_swapped(op, x, axes, where, algorithm, temperature, out):
    """``compute`` of an array in the other byte order ('>f4' here) for softmax and
    the like: on a native-order copy, computed in place, then swapped back in
    place, so that the copy becomes the result (no memory beyond it). (logsumexp,
    whose result is small, has the kernels swap the entries as they read them.)"""
    native_dtype = x.dtype.newbyteorder("=")
    if native_dtype not in native.NUMPY_DTYPES or x.size == 0:
        return NotImplemented
    copy = x.astype(native_dtype, order="C")
    in_place = op != "logsumexp" and out is None
    y = compute(op, copy, axes, where, algorithm, temperature, out=copy if in_place else None)
    if y is NotImplemented:
        return NotImplemented
    if out is not None:
        np.copyto(out, y)
        return out
    return y.byteswap(inplace=True).view(x.dtype)


def _in_byte_order(y, dtype):
    """The kernels' native-order result ``y`` in ``dtype``'s byte order (swapped in place)."""
    return y if y.dtype == dtype else y.byteswap(inplace=True).view(dtype)


def _output(shape, dtype, out):
    """The array the kernels write: ``out`` (any strides), else a fresh C-contiguous one."""
    return np.empty(shape, dtype=dtype) if out is None else out


def _temperature_args(temperature):
    """(mode, value, per_row) of the extension for a checked ``temperature``: the
    per-row temperatures as one contiguous float64 per row (a copy of the batch shape
    only, never of ``x``); a 0-d array, the batch of a single row, as a scalar."""
    mode, value, rows = native.temperature_spec(temperature)
    if rows is None:
        return mode, value, None
    if rows.ndim == 0:
        return native.TEMPERATURE_MODES["scalar"], float(rows), None
    return mode, value, np.ascontiguousarray(rows, dtype=np.float64)


def _stablemax(op, x, axes, where, out=None):
    """StableMax / log-StableMax natively (``compute``'s contract; no algorithms)."""
    code = native.NUMPY_DTYPES.get(x.dtype)
    if code is None or x.size == 0 or not axes:
        return NotImplemented
    y = _output(x.shape, x.dtype, out)
    native.kernels.stablemax(native.STABLEMAX_OPS[op], code, x, native.axes_mask(axes), y, _mask_of(where, x.shape))
    return y


def softmax_topk(x, k, axis, where):
    """The k largest entries of ``softmax(x, axis, where=where)`` and their indices.

    One read of ``x`` per row (Milakov & Gimelshein 2018): the online normaliser
    and a running top-k of the logits, merged across lanes, chunks and threads
    in a fixed order, so the result does not depend on the thread count.

    Parameters
    ----------
    x : numpy.ndarray
        float16, bfloat16, float32 or float64, any strides, ``x.ndim >= 1``.
    k : int
        ``1 <= k <= x.shape[axis]`` (validated by the caller).
    axis : int
        A single non-negative axis.
    where : numpy.ndarray or None
        Bool mask broadcastable to ``x.shape``.

    Returns
    -------
    (values, indices) or NotImplemented
        ``values`` in ``x.dtype`` and ``indices`` int64, of ``x.shape`` with
        ``axis`` of length ``k`` (views with ``axis`` moved into place). Sorted by
        probability descending, ties by the lower index; masked entries rank after
        every unmasked one (value 0), ``-inf`` entries after the finite ones (value
        0); ``+inf`` entries share the mass. A NaN in an unmasked entry makes every
        value NaN (the indices are then k distinct indices, in no promised order).
        ``NotImplemented`` for what the kernels do not take (other dtypes, empty
        arrays, non-NumPy arrays, 0-d input).
    """
    if native.kernels is None or type(x) is not np.ndarray or x.ndim == 0 or x.size == 0:
        return NotImplemented
    code = native.NUMPY_DTYPES.get(x.dtype)
    if code is None:
        return NotImplemented
    batch = x.shape[:axis] + x.shape[axis + 1 :]
    values = np.empty(batch + (k,), dtype=x.dtype)
    indices = np.empty(batch + (k,), dtype=np.int64)
    native.kernels.softmax_topk(code, x, axis, k, _mask_of(where, x.shape), values, indices)
    return np.moveaxis(values, -1, axis), np.moveaxis(indices, -1, axis)


def _mask_of(where, shape):
    """``where`` as a bool array of ``shape`` (a broadcast view, never a copy), or None."""
    if where is None:
        return None
    where = np.asarray(where)
    if where.dtype != np.bool_ or where.shape != shape:
        where = np.broadcast_to(np.asarray(where, dtype=bool), shape)
    return where


def _piece_args(x, axes, where):
    x = np.asarray(x)
    code = native.NUMPY_DTYPES.get(x.dtype)
    if code is None:
        msg = f"unsupported dtype {x.dtype}: the native kernels take float16, bfloat16, float32, float64"
        raise TypeError(msg)
    axes = tuple(sorted(a % x.ndim for a in axes)) if x.ndim else ()
    if not axes:
        msg = "at least one reduced axis is needed"
        raise ValueError(msg)
    where = _mask_of(where, x.shape)
    batch_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return x, code, axes, where, batch_shape


def accumulate(x, axes, where=None):
    """Pass 1 over a piece of each row: the mergeable accumulator of every row.

    ``x`` is a float16/bfloat16/float32/float64 NumPy array (any strides), ``axes``
    the reduced axes, ``where`` None or a bool array broadcastable to ``x``. Returns
    float64 of shape ``batch_shape + (5,)``: per row ``[m, d, n_posinf, has_nan,
    n_valid]``, with ``m`` the max of the valid finite entries (-inf if none),
    ``d = sum exp(x - m)`` over them (the online kernel: one read of ``x``), the count
    of valid ``+inf`` entries, 1.0 if a valid NaN exists, and the count of valid
    entries. Accumulators of pieces of the same row merge as (m, d) pairs,
    ``M = max(m, m')``, ``d e^(m - M) + d' e^(m' - M)`` (identity (-inf, 0)), with the
    last three entries added (has_nan: max).
    """
    kernels = native.require()
    x, code, axes, where, batch_shape = _piece_args(x, axes, where)
    acc = np.empty(batch_shape + (len(native.ACCUMULATOR_FIELDS),), dtype=np.float64)
    kernels.accumulate(code, x, native.axes_mask(axes), where, acc)
    return acc


def finish(op, x, axes, where, acc):
    """Pass 2 over a piece of each row given the row's merged accumulator.

    ``op`` is "softmax" or "log_softmax"; ``acc`` float64 of ``batch_shape + (5,)`` as
    :func:`accumulate` returns it, merged over the whole row. Writes ``exp(x - m) / d``
    or ``(x - m) - log d`` with the contract's special values (NaN rows, ``+inf``
    entries sharing the mass, rows with no valid entry, all ``-inf`` rows, masked
    entries 0 / -inf). One read of ``x``, one write; ``x``'s dtype and shape.
    """
    kernels = native.require()
    if op not in ("softmax", "log_softmax"):
        msg = f"finish computes softmax or log_softmax, not {op!r}"
        raise ValueError(msg)
    x, code, axes, where, batch_shape = _piece_args(x, axes, where)
    acc = np.ascontiguousarray(acc, dtype=np.float64)
    if acc.shape != batch_shape + (5,):
        msg = f"acc has shape {acc.shape}, expected {batch_shape + (5,)}"
        raise ValueError(msg)
    y = np.empty(x.shape, dtype=x.dtype)
    kernels.finish(native.OPS[op], code, x, native.axes_mask(axes), where, acc, y)
    return y

