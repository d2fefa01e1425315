"""The NumPy fast path: native SIMD kernels (``softmaxlib._kernels``).

``compute`` is a thin shell: it maps dtype, op and algorithm to the extension's
codes, allocates the output and hands the array *as it is* (any strides, no
copy) to C++, which walks the layout, releases the GIL and runs the kernels on
its own threads. Everything numerical lives in ``softmaxlib/_native/``.

If the extension cannot be imported (a source tree without a build, an
unusual platform), this module still imports: ``compute`` returns
``NotImplemented`` so the caller runs the reference, and ``info()`` says why.
"""

import contextlib
import os
import threading

import numpy as np

try:
    from softmaxlib import _kernels
except ImportError as exc:  # pragma: no cover - depends on the build
    _kernels = None
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _IMPORT_ERROR = None

_OPS = {"softmax": 0, "log_softmax": 1, "logsumexp": 2}
_ALGORITHMS = {"three-pass": 0, "three-pass-reload": 1, "online": 2, "two-pass": 3}
_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}
try:
    import ml_dtypes

    _DTYPES[np.dtype(ml_dtypes.bfloat16)] = 3
except ImportError:  # pragma: no cover - ml_dtypes is optional
    pass

# Crossovers for algorithm="auto", measured by benchmarks/crossover.py (see
# benchmarks/crossover.md, on a Xeon with 2 MiB of L2 per core). While the data
# stays in the core's own L2, the max-based algorithms win: their later passes
# re-read a row from L2 and they evaluate one exp per element
# (three-pass-reload for softmax; three-pass for log_softmax and logsumexp,
# which store nothing). Past L2, two-pass (no max pass: each read of memory
# does the exp work beside it) wins:
#  - a row longer than L2: every op, by ~20% (two memory passes against three);
#  - an array larger than L2, rows shorter: logsumexp by 25-40% for any row
#    (one read pass against two; AVX2 too), log_softmax by ~25% up to 24 MiB
#    and ~5% beyond for rows of 16 KiB or more (shorter rows: AVX2 loses up to
#    24%); softmax in float32 with AVX-512 by 7-19% for rows of 64 KiB or more
#    and arrays below 32 MiB (beyond that, or with AVX2 or in float64,
#    three-pass-reload leads);
#  - float64 logsumexp from 32 KiB rows on, cached or not.
# The L2 threshold is never below 2 MiB: a Zen 4 core (1 MiB of L2 and a fast
# L3) still ran three-pass-reload faster at 1 MiB rows.
_L2_BYTES = int(_kernels.l2_cache_bytes()) if _kernels is not None else 0
AUTO_TWO_PASS_MIN_ROW_BYTES = max(2 << 20, _L2_BYTES)
AUTO_TWO_PASS_MIN_ROW_BYTES_F64_LOGSUMEXP = 32 << 10
_AUTO_LOG_SOFTMAX_MIN_ROW_BYTES = 16 << 10
_AUTO_SOFTMAX_MIN_ROW_BYTES = 64 << 10
_AUTO_SOFTMAX_MAX_BYTES = 32 << 20
_AUTO_IN_CACHE = {"softmax": "three-pass-reload", "log_softmax": "three-pass", "logsumexp": "three-pass"}


def auto_algorithm(op, dtype, row_bytes, total_bytes):
    """What ``algorithm="auto"`` runs for ``op`` on rows of ``row_bytes`` in an
    array of ``total_bytes`` of ``dtype`` (the NumPy and JAX native paths alike)."""
    beyond_l2 = AUTO_TWO_PASS_MIN_ROW_BYTES
    if row_bytes >= beyond_l2:
        return "two-pass"
    if op == "logsumexp" and dtype == np.float64 and row_bytes >= AUTO_TWO_PASS_MIN_ROW_BYTES_F64_LOGSUMEXP:
        return "two-pass"
    if total_bytes >= beyond_l2:
        if op == "logsumexp" or (op == "log_softmax" and row_bytes >= _AUTO_LOG_SOFTMAX_MIN_ROW_BYTES):
            return "two-pass"
        if (dtype == np.float32 and row_bytes >= _AUTO_SOFTMAX_MIN_ROW_BYTES
                and total_bytes < _AUTO_SOFTMAX_MAX_BYTES and _kernels.get_isa() == "avx512f"):
            return "two-pass"
    return _AUTO_IN_CACHE[op]


def _auto(op, x, axes):
    row = 1
    for a in axes:
        row *= x.shape[a]
    return auto_algorithm(op, x.dtype, row * x.itemsize, x.nbytes)


def compute(op, x, axes, where, algorithm, temperature=None):
    """Compute ``op`` over ``axes`` of the NumPy array ``x`` natively.

    Parameters follow :func:`softmaxlib._reference.compute` without ``xp``: ``axes``
    is a sorted tuple of unique non-negative axes, ``where`` None or a bool array
    of ``x.shape`` (any strides), ``temperature`` None, a real scalar (> 0, may be
    inf), "adaptive" or a float array of the batch shape: op(x / T), fused into the
    kernels (no x / T array, the passes of each algorithm as without a temperature;
    adaptive: one more pass for the entropy, and the max-based algorithms; see
    ``RowSolver::solve_t`` in driver.cc).
    Returns a new C-contiguous array (``x.shape`` for
    softmax/log_softmax, ``axes`` removed for logsumexp) of ``x.dtype``, or
    ``NotImplemented`` for what the kernels do not handle.
    """
    if _kernels is None or type(x) is not np.ndarray:
        return NotImplemented
    if op in _FAMILY_OPS:  # (StableMax takes no temperature)
        return _stablemax(op, x, axes, where) if temperature is None else NotImplemented
    code = _DTYPES.get(x.dtype)
    if code is None or x.size == 0:
        return NotImplemented
    if algorithm == "auto":
        algorithm = _auto(op, x, axes)
    alg = _ALGORITHMS.get(algorithm)
    if alg is None or op not in _OPS:
        return NotImplemented
    where = _mask_of(where, x.shape)
    if op == "logsumexp":
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    else:
        shape = x.shape
    if temperature is None:
        y = np.empty(shape, dtype=x.dtype)
        _kernels.compute(_OPS[op], alg, code, x, _axes_mask(axes), y, where)
        return y
    mode_value_rows = _temperature_args(temperature, x, axes)
    if mode_value_rows is NotImplemented:
        return NotImplemented
    y = np.empty(shape, dtype=x.dtype)
    _kernels.compute_temperature(_OPS[op], alg, code, x, _axes_mask(axes), y, where, *mode_value_rows)
    return y


def _temperature_args(temperature, x, axes):
    """(mode, value, per_row) of the extension for a validated ``temperature``.

    A Python/NumPy real scalar (finite > 0 or inf) is mode 1; "adaptive" mode 3;
    an array of the batch shape (x.shape without ``axes``), mode 2, one float64 per
    row (a copy of the batch shape only, never of ``x``). Anything else:
    NotImplemented (the reference runs).
    """
    if isinstance(temperature, str):
        return (3, 1.0, None) if temperature == "adaptive" else NotImplemented
    if isinstance(temperature, (int, float, np.integer, np.floating)) and not isinstance(temperature, bool):
        t = float(temperature)
        return (1, t, None) if t > 0 else NotImplemented
    if type(temperature) is not np.ndarray or temperature.dtype.kind not in "fiu":
        return NotImplemented
    batch_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    if temperature.shape != batch_shape:
        return NotImplemented
    if temperature.ndim == 0:
        t = float(temperature)
        return (1, t, None) if t > 0 else NotImplemented
    return (2, 1.0, np.ascontiguousarray(temperature, dtype=np.float64))


_FAMILY_OPS = {"stablemax": 0, "log_stablemax": 1}


def _stablemax(op, x, axes, where):
    """StableMax / log-StableMax natively (``compute``'s contract; no algorithms)."""
    code = _DTYPES.get(x.dtype)
    if code is None or x.size == 0 or not axes:
        return NotImplemented
    y = np.empty(x.shape, dtype=x.dtype)
    _kernels.stablemax(_FAMILY_OPS[op], code, x, _axes_mask(axes), y, _mask_of(where, x.shape))
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
    if _kernels is None or type(x) is not np.ndarray or x.ndim == 0 or x.size == 0:
        return NotImplemented
    code = _DTYPES.get(x.dtype)
    if code is None:
        return NotImplemented
    batch = x.shape[:axis] + x.shape[axis + 1 :]
    values = np.empty(batch + (k,), dtype=x.dtype)
    indices = np.empty(batch + (k,), dtype=np.int64)
    _kernels.softmax_topk(code, x, axis, k, _mask_of(where, x.shape), values, indices)
    return np.moveaxis(values, -1, axis), np.moveaxis(indices, -1, axis)


def _mask_of(where, shape):
    """``where`` as a bool array of ``shape`` (a broadcast view, never a copy), or None."""
    if where is None:
        return None
    where = np.asarray(where)
    if where.dtype != np.bool_ or where.shape != shape:
        where = np.broadcast_to(np.asarray(where, dtype=bool), shape)
    return where


def _axes_mask(axes):
    mask = 0
    for a in axes:
        mask |= 1 << a
    return mask


def _piece_args(x, axes, where):
    x = np.asarray(x)
    code = _DTYPES.get(x.dtype)
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
    if _kernels is None:
        msg = f"the native kernels are not available ({_IMPORT_ERROR})"
        raise RuntimeError(msg)
    x, code, axes, where, batch_shape = _piece_args(x, axes, where)
    acc = np.empty(batch_shape + (5,), dtype=np.float64)
    _kernels.accumulate(code, x, _axes_mask(axes), where, acc)
    return acc


def finish(op, x, axes, where, acc):
    """Pass 2 over a piece of each row given the row's merged accumulator.

    ``op`` is "softmax" or "log_softmax"; ``acc`` float64 of ``batch_shape + (5,)`` as
    :func:`accumulate` returns it, merged over the whole row. Writes ``exp(x - m) / d``
    or ``(x - m) - log d`` with the contract's special values (NaN rows, ``+inf``
    entries sharing the mass, rows with no valid entry, all ``-inf`` rows, masked
    entries 0 / -inf). One read of ``x``, one write; ``x``'s dtype and shape.
    """
    if _kernels is None:
        msg = f"the native kernels are not available ({_IMPORT_ERROR})"
        raise RuntimeError(msg)
    if op not in ("softmax", "log_softmax"):
        msg = f"finish computes softmax or log_softmax, not {op!r}"
        raise ValueError(msg)
    x, code, axes, where, batch_shape = _piece_args(x, axes, where)
    acc = np.ascontiguousarray(acc, dtype=np.float64)
    if acc.shape != batch_shape + (5,):
        msg = f"acc has shape {acc.shape}, expected {batch_shape + (5,)}"
        raise ValueError(msg)
    y = np.empty(x.shape, dtype=x.dtype)
    _kernels.finish(_OPS[op], code, x, _axes_mask(axes), where, acc, y)
    return y


def set_num_threads(n):
    """Set the number of threads the native kernels use (>= 1), process-wide."""
    if _kernels is None:
        return
    _kernels.set_num_threads(int(n))


def get_num_threads():
    """Number of threads the native kernels use (default: the CPUs this process may
    use, or ``SOFTMAXLIB_NUM_THREADS``)."""
    if _kernels is None:
        return 1
    return _kernels.get_num_threads()


_isa_lock = threading.Lock()


@contextlib.contextmanager
def forced_isa(name):
    """Run the block with the kernels of ISA ``name`` ("avx512f", "avx2", "baseline").

    Process-wide (not per thread): meant for tests and benchmarks. Raises
    ValueError when the ISA is not compiled in or not supported by this CPU.
    """
    if _kernels is None:
        msg = f"the native kernels are not available ({_IMPORT_ERROR})"
        raise RuntimeError(msg)
    with _isa_lock:
        previous = _kernels.set_isa(name)
    try:
        yield
    finally:
        with _isa_lock:
            _kernels.set_isa(previous)


def info():
    """What the native path is doing on this machine, as a dict."""
    if _kernels is None:
        return {"available": False, "reason": _IMPORT_ERROR}
    return {
        "available": True,
        "isa": _kernels.get_isa(),
        "isas_compiled": list(_kernels.compiled_isas()),
        "isas_supported": list(_kernels.supported_isas()),
        "threads": _kernels.get_num_threads(),
        "kernels": list(_kernels.kernel_names()),
        "chunk": int(_kernels.chunk()),
        "l2_cache_bytes": _L2_BYTES,
        "auto_two_pass_min_row_bytes": AUTO_TWO_PASS_MIN_ROW_BYTES,
        "env": {k: os.environ[k] for k in ("SOFTMAXLIB_ISA", "SOFTMAXLIB_NUM_THREADS") if k in os.environ},
    }
