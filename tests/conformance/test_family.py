"""The rest of the softmax family on every backend path: temperature, adaptive
temperature, StableMax and the fused softmax + top-k (issue 8).

Every path registered in ``tests/backends.py`` runs every case here, against the
oracles and tolerances of ``tests/oracle.py`` (see its docstring for the terms the
temperature and the adaptive temperature add).  The cases are adversarial first:
logits of +-max, +-inf, NaN, all -inf rows, fully masked rows, ties, tiny and huge
temperatures; each algorithm is taken by some of the temperature cases rather than by
all of them, to keep the suite's time in bounds (the matrix covers the algorithms'
plain forms in full).  JAX runs each case compiled (jax.jit): one compilation per case
costs less here than eager dispatch of the reference's many small operations.
"""

import dataclasses
import math

import array_api_compat
import numpy as np
import pytest

import softmaxlib
from tests.conformance import test_matrix
from tests.conformance.test_matrix import OPS, _normalized_axes, _values
from tests.oracle import check, check_topk


@dataclasses.dataclass(frozen=True)
class Case(test_matrix.Case):
    """A matrix case plus what the family's functions take."""

    #: None, a number, "adaptive", "rows" (an array of the batch shape) or
    #: "rows-keepdims" (the same with length 1 on the reduced axes).
    temperature: object = None
    algorithm: str = "auto"
    k: int = 1
    #: Run on the paths that compile the reference for every case, too.
    compiled: bool = False


def _case_values(case, dtype, rng):
    """float64 values for ``case``, exact in ``dtype``; "scales": one scale per row."""
    if case.values == "scales":  # entropies from ~log n down to ~0, for the adaptive beta
        scales = np.array([0.1, 0.7, 1.5, 3.0, 8.0, 40.0])
        x = rng.standard_normal(case.shape) * scales[: case.shape[0], None]
        with np.errstate(over="ignore"):
            return x.astype(dtype).astype(np.float64)
    if case.values == "ties":
        return rng.integers(-2, 3, size=case.shape).astype(np.float64)
    return _values(case, dtype, rng)


def _prepare(backend, case, dtype_name):
    """test_matrix's _prepare, with this module's value kinds ("scales", "ties")."""
    return test_matrix._prepare(backend, case, dtype_name, values_of=_case_values)


def _call_all(backend, functions, x, **kwargs):
    """Each of ``functions`` of ``x``, compiled together (one jax.jit) where the path compiles."""

    def all_of(a, **kwargs):
        return tuple(function(a, **kwargs) for function in functions)

    return backend.call(all_of, x, compiled=True, **kwargs)


def _skip_on_slow_compile(backend, case):
    """Backends whose every call is a large compilation run the cases marked for them."""
    if backend.slow_compile and not case.compiled:
        pytest.skip(f"{backend.name} compiles the reference for every case: a subset of the cases runs on it")


def _result_dtype(backend, y, dtype_name):
    name = str(getattr(y.dtype, "name", y.dtype)).rsplit(".", 1)[-1]
    if dtype_name != "int":
        assert name == dtype_name, (name, dtype_name)
    return name


# --------------------------------------------------------------------------- temperature

TEMPERATURE_CASES = [
    Case("scalar-0.5", (6, 33), values="normal-30", temperature=0.5, algorithm="three-pass", compiled=True),
    Case("scalar-3", (6, 33), temperature=3.0, algorithm="two-pass", mask="random"),
    Case("scalar-tiny", (6, 33), values="ties", temperature=1e-30, algorithm="online"),
    Case("scalar-huge", (6, 33), values="normal-1e3", temperature=1e30, algorithm="three-pass-reload"),
    Case("scalar-inf", (6, 33), values="inf", temperature=math.inf, algorithm="auto"),
    Case("scalar-inf-specials", (6, 33), values="nan", temperature=math.inf, mask="rows", algorithm="two-pass", compiled=True),
    Case("extremes-sharpen", (6, 33), values="extremes", temperature=0.25, algorithm="auto"),
    Case("extremes-flatten", (6, 33), values="extremes", temperature=4.0, algorithm="online", compiled=True),
    Case("neginf", (6, 33), values="neginf", temperature=0.3, algorithm="three-pass-reload"),
    Case("rows", (6, 33), values="normal-30", temperature="rows", algorithm="two-pass"),
    Case("rows-keepdims", (6, 33), values="inf", temperature="rows-keepdims", mask="rows", algorithm="three-pass", compiled=True),
    Case("rows-axis-0", (33, 6), 0, values="extremes", temperature="rows", algorithm="online"),
    Case("rows-tuple-axes", (4, 5, 6), (0, 2), temperature="rows-keepdims", algorithm="auto", compiled=True),
    Case("rows-transposed", (6, 9), layout="transposed", temperature="rows", algorithm="three-pass-reload"),
    Case("long-rows", (3, 3001), values="normal-30", temperature="rows", algorithm="auto"),
    Case("0d", (), None, temperature=0.5, compiled=True),
    Case("adaptive", (6, 33), values="scales", temperature="adaptive", algorithm="auto", compiled=True),
    Case("adaptive-two-pass", (6, 33), values="scales", temperature="adaptive", algorithm="two-pass"),
    Case("adaptive-online", (6, 33), values="scales", temperature="adaptive", mask="random", algorithm="online"),
    Case("adaptive-long", (6, 1000), values="scales", temperature="adaptive", algorithm="three-pass"),
    Case("adaptive-specials", (6, 33), values="nan", temperature="adaptive", mask="rows", compiled=True),
    Case("adaptive-extremes", (6, 33), values="extremes", temperature="adaptive", algorithm="three-pass-reload"),
    Case("adaptive-neginf", (6, 33), values="neginf", temperature="adaptive", algorithm="two-pass"),
]


def _temperature(case, shape, axes, rng):
    """(the argument, the oracle's form: a number, "adaptive" or a keepdims array)."""
    if case.temperature not in ("rows", "rows-keepdims"):
        return case.temperature, case.temperature
    batch = tuple(s for a, s in enumerate(shape) if a not in axes)
    # Per row from 0.01 to 100 (log-uniform), and one row at +inf where there are rows.
    t = np.exp(rng.uniform(math.log(0.01), math.log(100), size=batch))
    if t.size > 2:
        t.flat[1] = np.inf
    keepdims = np.expand_dims(t, axes)
    return (keepdims if case.temperature == "rows-keepdims" else t), keepdims


def _grid(cases, dtypes, few_dtypes, few_cases):
    """(dtype, case) pairs: every case in ``dtypes``, ``few_cases`` also in ``few_dtypes``."""
    return [
        pytest.param(dtype, case, id=f"{dtype}-{case.id}")
        for dtype in dtypes + few_dtypes
        for case in cases
        if dtype in dtypes or case.id in few_cases
    ]


@pytest.mark.parametrize(
    ("dtype_name", "case"), _grid(TEMPERATURE_CASES, ["float32", "float64"], ["bfloat16"], ("scalar-0.5", "rows", "adaptive"))
)
def test_temperature(backend, dtype_name, case):
    _skip_on_slow_compile(backend, case)
    x, x_values, where, where_arg, rng = _prepare(backend, case, dtype_name)
    axes = _normalized_axes(case.axis, x_values.ndim)
    argument, exact_form = _temperature(case, x_values.shape, axes or (0,), rng)
    if isinstance(argument, np.ndarray):
        argument = backend.from_numpy(argument)
    results = _call_all(backend, OPS.values(), x, axis=case.axis, where=where_arg, temperature=argument,
                        algorithm=case.algorithm)
    for op, y in zip(OPS, results, strict=True):
        result_dtype = _result_dtype(backend, y, dtype_name)
        check(op, backend.to_numpy(y), x_values, axes, where, result_dtype, temperature=exact_form)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_temperature_compiled(backend, dtype_name):
    """Per-row temperatures as a traced argument of a compiled function (JAX: jit)."""
    case = Case("compiled", (4, 257), values="normal-30")
    x, x_values, _, _, rng = _prepare(backend, case, dtype_name)
    t = np.exp(rng.uniform(math.log(0.1), math.log(10), size=4))
    if backend.jit:
        import jax

        y = jax.jit(lambda a, t: softmaxlib.log_softmax(a, temperature=t))(x, backend.from_numpy(t))
    else:
        y = softmaxlib.log_softmax(x, temperature=backend.from_numpy(t))
    check("log_softmax", backend.to_numpy(y), x_values, (1,), None, dtype_name, temperature=t[:, None])


# --------------------------------------------------------------------------- StableMax

STABLEMAX_CASES = [
    Case("0d", (), None, compiled=True),
    Case("empty-row", (3, 0)),
    Case("one-element-rows", (5, 1)),
    Case("normal", (6, 33)),
    Case("normal-1e30", (6, 33), values="normal-1e30"),
    Case("extremes", (6, 33), values="extremes", compiled=True),
    Case("extremes-axis-0", (33, 6), 0, values="extremes"),
    Case("subnormal", (6, 33), values="subnormal"),
    Case("inf", (6, 33), values="inf", compiled=True),
    Case("neginf", (6, 33), values="neginf"),
    Case("nan-masked", (6, 33), values="nan", mask="rows", compiled=True),
    Case("mask-random", (6, 33), mask="random"),
    Case("tuple-axes", (4, 5, 6), (0, 2), compiled=True),
    Case("all-axes", (3, 4, 5), None),
    Case("strided", (5, 14), layout="strided"),
    Case("long-rows", (3, 3001), values="normal-1e3"),
]

STABLEMAX_OPS = {"stablemax": softmaxlib.stablemax, "log_stablemax": softmaxlib.log_stablemax}


@pytest.mark.parametrize(
    ("dtype_name", "case"),
    _grid(STABLEMAX_CASES, ["float32", "float64"], ["float16", "bfloat16", "int"], ("normal", "extremes", "inf", "0d")),
)
def test_stablemax(backend, dtype_name, case):
    _skip_on_slow_compile(backend, case)
    x, x_values, where, where_arg, _ = _prepare(backend, case, dtype_name)
    axes = _normalized_axes(case.axis, x_values.ndim)
    for op, y in zip(STABLEMAX_OPS, _call_all(backend, STABLEMAX_OPS.values(), x, axis=case.axis, where=where_arg),
                     strict=True):
        assert tuple(y.shape) == x_values.shape
        result_dtype = _result_dtype(backend, y, dtype_name)
        check(op, backend.to_numpy(y), x_values, axes, where, result_dtype)


# --------------------------------------------------------------------------- softmax_topk

TOPK_CASES = [
    Case("0d", (), -1, k=1, compiled=True),
    Case("one-element-rows", (5, 1), k=1),
    Case("k-1", (6, 33), values="normal-30", k=1),
    Case("k-5", (6, 33), k=5),
    Case("k-row-length", (6, 33), values="ties", k=33),
    Case("ties", (6, 33), values="ties", k=7, compiled=True),
    Case("extremes", (6, 33), values="extremes", k=4),
    Case("inf", (6, 33), values="inf", k=3, compiled=True),
    Case("neginf", (6, 33), values="neginf", k=33),
    Case("nan", (6, 33), values="nan", k=5, compiled=True),
    Case("mask-rows", (6, 33), values="ties", mask="rows", k=33, compiled=True),
    Case("mask-random", (6, 33), values="neginf", mask="random", k=20),
    Case("mask-broadcast", (6, 33), mask="broadcast", k=6),
    Case("axis-0", (33, 6), 0, values="ties", k=4),
    Case("axis-middle", (4, 9, 5), 1, values="ties", k=3, compiled=True),
    Case("transposed", (6, 9), layout="transposed", k=2),
    Case("empty-batch", (0, 4), k=2),
    Case("long-rows", (3, 3001), values="normal-30", k=50),
]


@pytest.mark.parametrize(
    ("dtype_name", "case"), _grid(TOPK_CASES, ["float32", "float64"], ["float16", "int"], ("ties", "k-5", "mask-rows", "0d"))
)
def test_softmax_topk(backend, dtype_name, case):
    _skip_on_slow_compile(backend, case)
    x, x_values, where, where_arg, _ = _prepare(backend, case, dtype_name)
    axis = case.axis

    def topk(a, **kwargs):
        return softmaxlib.softmax_topk(a, case.k, **kwargs)

    values, indices = backend.call(topk, x, compiled=True, axis=axis, where=where_arg)
    xp = array_api_compat.array_namespace(x)
    assert array_api_compat.array_namespace(values) is xp
    assert array_api_compat.array_namespace(indices) is xp
    default = xp.__array_namespace_info__().default_dtypes(device=array_api_compat.device(x))
    assert indices.dtype == default["integral"], (indices.dtype, default["integral"])
    result_dtype = _result_dtype(backend, values, dtype_name)
    check_topk(backend.to_numpy(values), np.asarray(backend.to_numpy(indices)), x_values, case.k, axis, where, result_dtype)
