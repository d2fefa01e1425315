"""The one door to the native CPU extension (``softmaxlib._kernels``).

Every Python module that calls the extension (the NumPy, JAX and Dask paths)
goes through here: this module imports it (or records why it could not), reads
the codes it exports for ops, algorithms, dtypes and temperature modes, owns its
process-wide settings (threads, ISA), its description (``info``) and the policy
of ``algorithm="auto"``, which the NumPy and JAX paths share because they run
the same kernels.

If the extension cannot be imported (a source tree without a build, an unusual
platform), this module still imports: ``kernels`` is None, the code tables are
empty, and ``info()`` says why.
"""

import contextlib
import os
import re
import threading
import warnings

import numpy as np

try:
    from softmaxlib import _kernels as kernels
except ImportError as exc:  # pragma: no cover - depends on the build
    kernels = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

#: The extension's codes, defined once in C++ (driver.h, driver_family.h) and
#: exported by it: op name -> code, algorithm name -> code, dtype name -> code,
#: StableMax op -> code, temperature mode -> code.
OPS = dict(kernels.OPS) if kernels is not None else {}
ALGORITHMS = dict(kernels.ALGORITHMS) if kernels is not None else {}
DTYPES = dict(kernels.DTYPES) if kernels is not None else {}
STABLEMAX_OPS = dict(kernels.STABLEMAX_OPS) if kernels is not None else {}
TEMPERATURE_MODES = dict(kernels.TEMPERATURE_MODES) if kernels is not None else {}

#: The per-row accumulator of ``accumulate`` / ``finish`` (and of the JAX
#: accumulate / finish targets): float64 fields in this order.
ACCUMULATOR_FIELDS = tuple(kernels.ACCUMULATOR_FIELDS) if kernels is not None else (
    "m", "d", "n_posinf", "has_nan", "n_valid")


def _numpy_dtype_codes():
    codes = {}
    for name, code in DTYPES.items():
        try:
            codes[np.dtype(name)] = code
        except TypeError:  # bfloat16 without ml_dtypes imported
            try:
                import ml_dtypes
            except ImportError:  # pragma: no cover - ml_dtypes is optional
                continue
            codes[np.dtype(getattr(ml_dtypes, name))] = code
    return codes


#: NumPy dtype -> the extension's dtype code (bfloat16 when ml_dtypes is installed).
NUMPY_DTYPES = _numpy_dtype_codes()


def require():
    """The extension, or RuntimeError saying why it is missing."""
    if kernels is None:
        msg = f"the native kernels are not available ({IMPORT_ERROR})"
        raise RuntimeError(msg)
    return kernels


def axes_mask(axes):
    """The extension's reduced-axes argument: bit ``a`` set for each axis ``a``."""
    mask = 0
    for a in axes:
        mask |= 1 << a
    return mask


def temperature_spec(temperature):
    """``(mode, value, rows)`` of the extension for a temperature ``softmaxlib._api``
    has checked: a float > 0 (``inf`` included) is mode "scalar" with that value,
    ``"adaptive"`` mode "adaptive", an array of the batch shape mode "per_row" with the
    array as ``rows`` (each backend converts it to the dtype its kernels read).
    ``rows`` is None for the first two."""
    if isinstance(temperature, str):
        return TEMPERATURE_MODES["adaptive"], 1.0, None
    if isinstance(temperature, float):
        return TEMPERATURE_MODES["scalar"], temperature, None
    return TEMPERATURE_MODES["per_row"], 1.0, temperature


def logsumexp_of_accumulator(xp, m, d, n_posinf, has_nan):
    """logsumexp of rows from their merged accumulators: m + log d, with the
    contract's special rows (no valid finite entry: -inf; +inf present: +inf; NaN:
    NaN). ``xp`` is the namespace of the fields (NumPy for Dask blocks, jax.numpy
    inside the JAX sharded path)."""
    positive = d > 0
    # d >= 1 exactly (the max's own term): a rounded d a few ulp below would put
    # the logsumexp below the max.
    log_d = xp.maximum(xp.log(xp.where(positive, d, 1.0)), 0.0)
    lse = xp.where(positive, m + log_d, -xp.inf)
    lse = xp.where(n_posinf > 0, xp.inf, lse)
    return xp.where(has_nan > 0, xp.nan, lse)


# --------------------------------------------------------------------------- auto policy

# The policy itself is the extension's (_native/auto_policy.cc, with the
# measurements behind it), so that the NumPy short lane, which runs it in C++,
# and every Python caller pick the same algorithm.
L2_BYTES = int(kernels.l2_cache_bytes()) if kernels is not None else 0
AUTO_TWO_PASS_MIN_ROW_BYTES = int(kernels.AUTO_TWO_PASS_MIN_ROW_BYTES) if kernels is not None else 0
_ALGORITHM_NAMES = {code: name for name, code in ALGORITHMS.items()}
#: op -> the algorithm "auto" runs while the data stays in L2.
AUTO_IN_CACHE = ({op: _ALGORITHM_NAMES[kernels.AUTO_IN_CACHE[code]] for op, code in OPS.items()}
                 if kernels is not None else {})


def auto_algorithm(op, dtype, row_bytes, total_bytes):
    """What ``algorithm="auto"`` runs for ``op`` on rows of ``row_bytes`` in an
    array of ``total_bytes`` of ``dtype`` (the NumPy and JAX native paths alike)."""
    code = kernels.auto_algorithm(OPS[op], NUMPY_DTYPES.get(np.dtype(dtype), -1), row_bytes, total_bytes)
    return _ALGORITHM_NAMES[code]


# --------------------------------------------------------------------------- settings


#: Did the user choose softmaxlib's thread count (``set_num_threads`` or the
#: environment)?  Where not, the PyTorch path follows ``torch.get_num_threads()``.
threads_given = bool(os.environ.get("SOFTMAXLIB_NUM_THREADS"))


def set_num_threads(n):
    """Set the number of threads the native kernels use (>= 1), process-wide.

    The count is capped at ``max_num_threads()`` (a few per CPU this process may
    use), with a RuntimeWarning: more threads only add switching, and an
    unbounded count would use up the machine's process table.
    """
    global threads_given
    if kernels is None:
        return
    n = int(n)
    kernels.set_num_threads(n)
    threads_given = True
    if n > kernels.get_num_threads():
        msg = f"{n} threads is above the cap of {max_num_threads()}; using {kernels.get_num_threads()}"
        warnings.warn(msg, RuntimeWarning, stacklevel=2)


def get_num_threads():
    """Number of threads the native kernels use (default: the CPUs this process may
    use, or ``SOFTMAXLIB_NUM_THREADS``). When the system refuses to start a
    thread, the pool runs with those it could start (``info()["pool_threads"]``)."""
    if kernels is None:
        return 1
    return kernels.get_num_threads()


def max_num_threads():
    """The most threads the native kernels use: a few per CPU this process may use."""
    if kernels is None:
        return 1
    return kernels.max_num_threads()


# What the extension accepts from SOFTMAXLIB_NUM_THREADS (strtol, base 10, nothing after).
_WHOLE_NUMBER = re.compile(r"\s*\+?[0-9]+")


def _warn_about_environment():
    """Warn once, at import, about a SOFTMAXLIB_* variable the extension cannot
    take as given (it then uses its default, which the warning names)."""
    threads = os.environ.get("SOFTMAXLIB_NUM_THREADS")
    if threads is not None:
        used = kernels.get_num_threads()
        if not _WHOLE_NUMBER.fullmatch(threads) or int(threads) < 1:
            msg = (f"SOFTMAXLIB_NUM_THREADS={threads!r} is not a whole number >= 1; "
                   f"using {used} threads (the CPUs this process may use)")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        elif int(threads) > used:
            msg = (f"SOFTMAXLIB_NUM_THREADS={threads!r} is above the cap of {max_num_threads()} "
                   f"threads ({kernels.THREADS_PER_CPU} per CPU this process may use); using {used}")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
    isa = os.environ.get("SOFTMAXLIB_ISA")
    if isa:  # empty: unset
        used = kernels.get_isa()
        if isa.lower() not in kernels.compiled_isas():
            msg = (f"SOFTMAXLIB_ISA={isa!r} is not one of {', '.join(kernels.compiled_isas())} "
                   f"(case-insensitive); using {used}")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        elif isa.lower() not in kernels.supported_isas():
            msg = f"SOFTMAXLIB_ISA={isa!r} is not supported by this CPU; using {used}"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)


if kernels is not None:
    _warn_about_environment()


_isa_lock = threading.Lock()


@contextlib.contextmanager
def forced_isa(name):
    """Run the block with the kernels of ISA ``name`` ("avx512f", "avx2", "baseline").

    Process-wide (not per thread): meant for tests and benchmarks. Raises
    ValueError when the ISA is not compiled in or not supported by this CPU.
    """
    require()
    with _isa_lock:
        previous = kernels.set_isa(name)
    try:
        yield
    finally:
        with _isa_lock:
            kernels.set_isa(previous)


def info():
    """What the native kernels are doing on this machine, as a dict."""
    if kernels is None:
        return {"available": False, "reason": IMPORT_ERROR}
    return {
        "available": True,
        "isa": kernels.get_isa(),
        "isas_compiled": list(kernels.compiled_isas()),
        "isas_supported": list(kernels.supported_isas()),
        "threads": kernels.get_num_threads(),
        "max_threads": kernels.max_num_threads(),
        "pool_threads": kernels.pool_threads(),
        "kernels": list(kernels.kernel_names()),
        "chunk": int(kernels.chunk()),
        "l2_cache_bytes": L2_BYTES,
        "auto_two_pass_min_row_bytes": AUTO_TWO_PASS_MIN_ROW_BYTES,
        "env": {k: os.environ[k] for k in ("SOFTMAXLIB_ISA", "SOFTMAXLIB_NUM_THREADS") if k in os.environ},
    }
