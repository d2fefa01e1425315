"""The per-namespace table of fast paths, with the generic reference behind them.

In the manner of SciPy's ``_support_alternative_backends``: each array library that
has a fast path is named once in ``BACKENDS``, with the module that implements it and
what it can do.  ``fast_path(xp)`` looks the table up for an input's namespace; a
namespace with no entry gets the generic fast path (``GENERIC``, built from the
namespace's own operations), and where fast paths are switched off
(``reference_only``) the reference runs.

A fast-path module defines ``compute(op, x, axes, where, algorithm, temperature=None)``
with the contract of :func:`softmaxlib._reference.compute` (minus the ``xp``
argument), and may return ``NotImplemented`` for a case it leaves to the reference
(an ``op`` or a ``temperature`` it does not handle, say). It may also define
``softmax_topk(x, k, axis, where)``, returning ``(values, indices)`` or
``NotImplemented``.
"""

import contextlib
import contextvars
import dataclasses
import functools
import importlib
import sys

import array_api_compat


@dataclasses.dataclass(frozen=True)
class Backend:
    """One array library: how to recognise it and what softmaxlib does on it."""

    name: str
    #: Is ``xp`` this library's namespace?
    is_namespace: object
    #: Module implementing its fast path; ``GENERIC`` (or None) where there is no
    #: native one.
    fast_path_module: str | None
    #: The floating dtypes softmaxlib computes on it (others are promoted or refused).
    dtypes: tuple
    #: The library's transformations that softmaxlib's functions work under.
    transformations: tuple = ()
    #: How the work is spread over cores, or None for the library's own doing.
    threads: str | None = None
    #: Does the result stay lazy until the user computes it?
    lazy: bool = False
    #: Its distribution's name on PyPI (for the installed version).
    distribution: str = ""
    #: Anything else a user should know, in words.
    notes: str = ""
    #: Where the library has devices the native path does not run on: the devices it
    #: does run on (the others take the generic path).
    native_devices: str | None = None


#: The generic fast path: for every namespace without a native one.
GENERIC = "softmaxlib._backends.generic"

BACKENDS = (
    Backend(
        "numpy",
        array_api_compat.is_numpy_namespace,
        "softmaxlib._backends.numpy_native",
        ("float16", "bfloat16", "float32", "float64"),
        threads="softmaxlib's pool (set_num_threads, SOFTMAXLIB_NUM_THREADS), GIL released",
        distribution="numpy",
        notes="native SIMD kernels, AVX-512F / AVX2+FMA / baseline picked at run time; "
        "bfloat16 through ml_dtypes",
    ),
    Backend(
        "jax",
        array_api_compat.is_jax_namespace,
        "softmaxlib._backends.jax_ffi",
        ("float16", "bfloat16", "float32", "float64"),
        transformations=("jit", "vmap", "grad", "jvp", "sharding"),
        threads="XLA's intra-op thread pool, capped by softmaxlib's thread setting",
        distribution="jax",
        notes="the native kernels as an XLA FFI custom call; float64 needs jax_enable_x64",
        native_devices="CPU",
    ),
    Backend(
        "cupy",
        array_api_compat.is_cupy_namespace,
        "softmaxlib._backends.cupy_cuda",
        ("float16", "float32", "float64"),
        threads="one CUDA block or warp per row; long rows split across blocks",
        distribution="cupy",
        notes="CUDA kernels compiled at run time by NVRTC (cupy.RawModule), on the input's "
        "device and current stream",
    ),
    Backend(
        "torch",
        array_api_compat.is_torch_namespace,
        "softmaxlib._backends.torch_native",
        ("float16", "bfloat16", "float32", "float64"),
        transformations=("autograd", "torch.compile", "vmap", "grad"),
        threads="softmaxlib's pool, following torch.get_num_threads() unless softmaxlib's "
        "own setting was given; GIL released",
        distribution="torch",
        notes="native SIMD kernels on the tensor's own memory; the custom op softmaxlib::compute "
        "for autograd, torch.compile and torch.func",
        native_devices="CPU",
    ),
    Backend(
        "dask",
        array_api_compat.is_dask_namespace,
        "softmaxlib._backends.dask_chunked",
        ("float16", "bfloat16", "float32", "float64"),
        threads="Dask's workers; on NumPy chunks each task runs the native kernels",
        lazy=True,
        distribution="dask",
        notes="rows chunked along the reduced axes are never gathered: one reduction of "
        "(max, sum) accumulators, one blockwise rescale",
    ),
    Backend(
        "array-api-strict",
        array_api_compat.is_array_api_strict_namespace,
        GENERIC,
        ("float32", "float64"),
        distribution="array-api-strict",
        notes="the Array API standard's own test namespace",
    ),
)

_disabled = contextvars.ContextVar("softmaxlib_fast_paths_disabled", default=False)
_generic_forced = contextvars.ContextVar("softmaxlib_generic_forced", default=False)


def backend_for(xp):
    """The ``Backend`` entry of namespace ``xp``, or None for an unlisted library."""
    for backend in BACKENDS:
        if backend.is_namespace(xp):
            return backend
    return None


def fast_path(xp):
    """The fast-path module for namespace ``xp``, or None to run the reference."""
    if _disabled.get():
        return None
    if _generic_forced.get():
        return generic_path()
    return _fast_path_module(xp)


@functools.cache
def _fast_path_module(xp):
    backend = backend_for(xp)
    if backend is None or backend.fast_path_module is None:
        return generic_path()
    return importlib.import_module(backend.fast_path_module)


def numpy_lane():
    """The NumPy fast path's module for its short lane (``softmax_lane`` and the
    like), or None while fast paths are switched off or the generic one forced, and
    where the extension is not built."""
    if _disabled.get() or _generic_forced.get():
        return None
    module = sys.modules.get(_NUMPY_FAST_PATH) or importlib.import_module(_NUMPY_FAST_PATH)
    return module if module.native.kernels is not None else None  # (no build: the full path)


_NUMPY_FAST_PATH = next(b.fast_path_module for b in BACKENDS if b.name == "numpy")


def generic_path():
    """The generic fast-path module (what a fast path's ``NotImplemented`` falls back to)."""
    return importlib.import_module(GENERIC)


@contextlib.contextmanager
def reference_only():
    """Within this block every call runs the generic reference (tests, benchmarks)."""
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


@contextlib.contextmanager
def generic_only():
    """Within this block every namespace takes the generic fast path, native or not
    (tests, benchmarks); ``reference_only`` inside it still wins."""
    token = _generic_forced.set(True)
    try:
        yield
    finally:
        _generic_forced.reset(token)


#: The PyTorch path; ``torch_traced`` finds it in ``sys.modules`` (Dynamo cannot
#: trace an import), so ``torch_compiling`` imports it at the first eager call.
TORCH_PATH = "softmaxlib._backends.torch_native"


def torch_compiling():
    """Is ``torch.compile`` tracing this call?  (False, at no cost, where torch was never
    imported.)  Outside a trace, with torch imported, it makes sure the PyTorch path
    (and its custom op) is loaded for a later trace."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if torch.compiler.is_compiling():
        return True
    if TORCH_PATH not in sys.modules:
        importlib.import_module(TORCH_PATH)
    return False


def loaded_torch_path():
    """The PyTorch path's module if it is loaded (by an eager call on a tensor), else
    None: the short lane of a tensor call asks it without importing anything."""
    return sys.modules.get(TORCH_PATH)


def torch_path():
    """The PyTorch path's module (for what the public functions ask of it directly:
    ``out=``'s checks, by torch's own convention)."""
    return importlib.import_module(TORCH_PATH)


def torch_traced(op, x, axes, where, algorithm, keepdims, temperature):
    """The call under ``torch.compile``: the PyTorch path's ``traced``, or
    NotImplemented where the ordinary path runs (also where no eager call has loaded
    the PyTorch path yet, and softmaxlib was imported before torch).
    ``reference_only`` and ``generic_only`` are not seen here: Dynamo cannot read a
    context variable."""
    torch_native = sys.modules.get(TORCH_PATH)
    if torch_native is None:
        return NotImplemented
    return torch_native.traced(op, x, axes, where, algorithm, keepdims, temperature)
