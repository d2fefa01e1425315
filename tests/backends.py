"""The backends and paths the conformance suite runs on: its single registration point.

Each ``BackendCase`` turns a NumPy array into the backend's array, back again, and
selects a path (the reference, a fast path, an ISA).  A fast path joins the suite by
appending its cases to ``CASES`` (see the end of this file), never by copying tests.
"""

import contextlib
import dataclasses
import importlib.util

import ml_dtypes
import numpy as np

import softmaxlib
import softmaxlib._backends


@dataclasses.dataclass(frozen=True)
class BackendCase:
    name: str
    #: Top-level modules it needs; the case is skipped, with this reason, if one is missing.
    requires: tuple
    #: The dtypes the backend has, by name ("int" is its integer input).
    dtypes: tuple
    #: numpy array -> backend array (values exact: the dtype is already the target one).
    from_numpy: object
    #: backend array -> numpy array (float64 for floating results).
    to_numpy: object
    #: -> context manager selecting the path under test.
    context: object = contextlib.nullcontext
    #: Can the backend index with a negative step (x[..., ::-1])?
    negative_strides: bool = True
    #: -> None, or why the installed backend cannot run here (no GPU, say).
    unavailable: object = lambda: None
    #: Can the call be compiled first (JAX: jax.jit), as a user's model would run it?
    jit: bool = False
    #: Is every call a large compilation (the reference under jax.jit)?  Suites with
    #: many cases then run the subset marked for such paths.
    slow_compile: bool = False
    #: None, or (function, x, kwargs) -> result: how the path calls (out=, say).
    call_through: object = None

    def call(self, function, x, *, compiled=False, **kwargs):
        """``function(x, **kwargs)``, under jax.jit if ``compiled`` and the path has it.

        The matrix runs eagerly (one compilation per case would dominate its time);
        the long rows run compiled.
        """
        if compiled and self.jit:
            import functools

            import jax

            return jax.jit(functools.partial(function, **kwargs))(x)
        if self.call_through is not None:
            return self.call_through(function, x, kwargs)
        return function(x, **kwargs)

    def missing(self):
        """Why this case cannot run here, or None."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if absent:
            return f"{', '.join(absent)} not installed"
        return self.unavailable()


ALL_DTYPES = ("float16", "bfloat16", "float32", "float64", "int")


def numpy_dtype(name):
    """The NumPy dtype of a dtype name of the suite."""
    return {"bfloat16": np.dtype(ml_dtypes.bfloat16), "int": np.dtype(np.int32)}.get(name, np.dtype(name))


def _to_float64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype.kind in "fV" or a.dtype == ml_dtypes.bfloat16 else a


def _numpy_from(a):
    return a


def _strict_from(a):
    import array_api_strict

    return array_api_strict.asarray(a)


def _torch_from(a):
    import torch

    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(a))


def _torch_to(y):
    import torch

    y = y.detach()
    return y.to(torch.float64).numpy() if y.dtype.is_floating_point else y.numpy()


def _jax_from(a):
    import jax.numpy as jnp

    return jnp.asarray(a)


@contextlib.contextmanager
def _jax_x64():
    """float64 on JAX needs x64, switched on in the suite's own scope only."""
    import jax

    with jax.enable_x64(True):
        yield


def _dask_from(a):
    import dask.array as da

    # Several chunks along every axis, so that reductions cross chunk boundaries.
    return da.from_array(a, chunks=tuple(max(1, -(-s // 2)) for s in a.shape) or ())


def _dask_to(y):
    return _to_float64(y.compute())


def _no_cuda_device():
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        return f"CuPy is installed but CUDA is not usable here: {error}"
    return None if count else "CuPy is installed but this machine has no CUDA device"


CASES = [
    BackendCase(
        "numpy-reference",
        ("numpy",),
        ALL_DTYPES,
        _numpy_from,
        _to_float64,
        context=softmaxlib._backends.reference_only,
    ),
    BackendCase(
        "array-api-strict",
        ("array_api_strict",),
        ("float32", "float64", "int"),
        _strict_from,
        _to_float64,
        negative_strides=False,
    ),
    # array-api-strict has no native path: it runs the generic one
    # (softmaxlib._backends.generic).  "torch" runs the PyTorch fast path
    # (softmaxlib._backends.torch_native) on CPU tensors.
    BackendCase("torch", ("torch",), ALL_DTYPES, _torch_from, _torch_to, negative_strides=False),
    BackendCase("jax", ("jax",), ALL_DTYPES, _jax_from, _to_float64, context=_jax_x64, jit=True),
    BackendCase("dask", ("dask",), ALL_DTYPES, _dask_from, _dask_to),
    BackendCase(
        "cupy",
        ("cupy",),
        ("float16", "float32", "float64", "int"),
        lambda a: __import__("cupy").asarray(a),
        lambda y: _to_float64(y.get()),
        unavailable=lambda: _no_cuda_device(),
    ),
]

# ---------------------------------------------------------------------------------
# Fast paths register here: append a BackendCase per path (e.g. one per native ISA).


def _native_cases():
    """One case per native ISA unit this CPU can run (softmaxlib._backends.numpy_native)."""
    from softmaxlib._backends import numpy_native

    info = numpy_native.info()
    isas = info["isas_supported"] if info["available"] else ["avx2"]
    return [
        BackendCase(
            f"numpy-native-{isa}",
            ("numpy",),
            ALL_DTYPES,
            _numpy_from,
            _to_float64,
            context=lambda isa=isa: numpy_native.forced_isa(isa),
            unavailable=lambda: None if info["available"] else info["reason"],
        )
        for isa in isas
    ]


CASES.extend(_native_cases())


# The JAX fast path (softmaxlib._backends.jax_ffi) runs under the "jax" case above;
# this one keeps the generic reference on JAX covered too.
CASES.append(
    BackendCase(
        "jax-reference",
        ("jax",),
        ALL_DTYPES,
        _jax_from,
        _to_float64,
        context=lambda: _jax_reference(),
        jit=True,
        slow_compile=True,
    )
)


def _call_with_out(in_place):
    """How the ``out=`` paths call the functions that take it: into a fresh buffer
    with reversed strides (the kernels scatter each row into it), or,
    ``in_place``, ``f(y, out=y)`` on a C-ordered copy ``y`` of x (written directly;
    x itself stays as it is for the suite's oracle).  Either way the call must
    return ``out`` itself."""

    def call(function, x, kwargs):
        if function not in (softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.stablemax,
                            softmaxlib.log_stablemax):
            return function(x, **kwargs)
        if in_place and x.dtype.kind in "fV":
            x = out = x.copy()
        else:
            dtype = x.dtype if x.dtype.kind in "fV" else np.dtype(np.float64)
            out = np.empty(x.shape[::-1], dtype).T
        y = function(x, out=out, **kwargs)
        assert y is out, "a call with out= must return out itself"
        return y

    return call


CASES.extend(
    BackendCase(name, ("numpy",), ALL_DTYPES, _numpy_from, _to_float64, call_through=_call_with_out(in_place))
    for name, in_place in (("numpy-out", False), ("numpy-out-in-place", True))
)


@contextlib.contextmanager
def _jax_reference():
    with _jax_x64(), softmaxlib._backends.reference_only():
        yield


# The generic fast path on JAX, forced (JAX takes it off the CPU): eager in the matrix,
# under jax.jit (the branch-free form) in the family suite and the long rows.
CASES.append(
    BackendCase(
        "jax-generic",
        ("jax",),
        ALL_DTYPES,
        _jax_from,
        _to_float64,
        context=lambda: _jax_generic(),
        jit=True,
    )
)


@contextlib.contextmanager
def _jax_generic():
    with _jax_x64(), softmaxlib._backends.generic_only():
        yield


# The PyTorch path's custom op (the route of autograd and torch.compile): inputs that
# require grad.  And the generic fast path on torch, forced (CUDA tensors take it).
def _torch_autograd_from(a):
    t = _torch_from(a)
    return t.requires_grad_() if t.dtype.is_floating_point else t


CASES.append(
    BackendCase("torch-custom-op", ("torch",), ALL_DTYPES, _torch_autograd_from, _torch_to, negative_strides=False)
)
CASES.append(
    BackendCase(
        "torch-generic",
        ("torch",),
        ALL_DTYPES,
        _torch_from,
        _torch_to,
        context=softmaxlib._backends.generic_only,
        negative_strides=False,
    )
)
