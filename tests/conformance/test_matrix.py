"""The conformance matrix: backend x dtype x algorithm x (shape, axis, layout, values, mask).

Every path registered in ``tests/backends.py`` runs every case here; each case checks
softmax, log_softmax and logsumexp against the oracle of ``tests/oracle.py``.
"""

import dataclasses

import ml_dtypes
import numpy as np
import pytest

import softmaxlib
from tests.backends import numpy_dtype
from tests.oracle import check

OPS = {
    "softmax": softmaxlib.softmax,
    "log_softmax": softmaxlib.log_softmax,
    "logsumexp": softmaxlib.logsumexp,
}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    shape: tuple
    axis: object = -1
    values: str = "normal"
    layout: str = "contiguous"
    mask: str | None = None


SHAPE_CASES = [
    Case("0d-axis-None", (), None),
    Case("0d-axis-last", (), -1),
    Case("0d-axis-0", (), 0),
    Case("empty-row", (3, 0)),
    Case("empty-batch", (0, 4)),
    Case("empty-reduced-first", (0, 3), 0),
    Case("one-element", (1,)),
    Case("one-element-rows", (5, 1)),
    Case("row", (7,)),
    Case("long-rows", (3, 3001)),
    Case("axis-first", (6, 4, 5), 0),
    Case("axis-middle", (4, 6, 5), 1),
    Case("axis-last", (4, 5, 6), -1),
    Case("tuple-outer", (4, 5, 6), (0, 2)),
    Case("tuple-inner", (3, 4, 5), (1, 2)),
    Case("all-axes", (3, 4, 5), None),
    Case("strided", (5, 14), -1, layout="strided"),
    Case("strided-axis-0", (14, 5), 0, layout="strided"),
    Case("transposed", (6, 9), -1, layout="transposed"),
    Case("negative-stride", (5, 9), -1, layout="negative"),
]

VALUE_CASES = [
    Case(f"values-{v}", (6, 33), -1, values=v)
    for v in ("normal-30", "normal-1e3", "normal-1e30", "extremes", "subnormal", "inf", "neginf", "nan")
] + [
    Case("values-extremes-axis-0", (33, 6), 0, values="extremes"),
    Case("mask-random", (6, 33), -1, mask="random"),
    Case("mask-rows", (6, 33), -1, values="inf", mask="rows"),
    Case("mask-broadcast", (6, 33), -1, mask="broadcast"),
    Case("mask-tuple-axes", (4, 5, 6), (0, 2), values="nan", mask="random"),
]


def _values(case, dtype, rng):
    """float64 values for ``case``, exactly representable in ``dtype``."""
    shape = case.shape
    if dtype.kind in "iu":
        return rng.integers(-60, 60, size=shape).astype(np.float64)
    info = ml_dtypes.finfo(dtype) if dtype == ml_dtypes.bfloat16 else np.finfo(dtype)
    big, tiny = float(info.max), float(info.smallest_subnormal)
    kind, _, scale = case.values.partition("-")
    x = rng.standard_normal(shape) * (float(scale) if scale else 1.0)
    if x.ndim == 2 and x.shape[0] >= 6:  # one special row pattern per row
        if kind == "extremes":
            x = rng.choice([big, -big, 0.0, 1.0, -1.0], size=shape) * rng.choice([1, 1, 0.5], size=shape)
            x[0, :] = big  # all equal and huge: uniform
            x[1, :2] = [big, -big]
        elif kind == "subnormal":
            x = rng.integers(-8, 8, size=shape) * tiny
            x[1] = rng.standard_normal(x.shape[1]) * 1e-3
            x[1, ::3] = tiny
        elif kind == "inf":
            x[0, [3, 7]] = np.inf
            x[1, 5] = np.inf
            x[1, 9] = -np.inf
            x[2, :] = np.inf
        elif kind == "neginf":
            x[0, :] = -np.inf
            x[1, ::2] = -np.inf
            x[2, 1:] = -np.inf
        elif kind == "nan":
            x[0, 4] = np.nan
            x[1, :] = np.nan
            x[2, 0] = np.nan
            x[2, 1] = np.inf
    elif x.ndim == 2 and kind in ("extremes",):
        x = rng.choice([big, -big, 0.0, 1.0], size=shape)
    elif kind == "nan" and x.size:
        x.flat[3] = np.nan
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isfinite(x), np.clip(x, -big, big), x)  # past the range: the dtype's max
    with np.errstate(over="ignore"):
        return x.astype(dtype).astype(np.float64)


def _mask(case, shape, rng):
    if case.mask is None:
        return None
    if case.mask == "broadcast":
        return rng.random(shape[-1:]) < 0.7
    mask = rng.random(shape) < 0.7
    if case.mask == "rows":
        mask[0, :] = False  # fully masked row
        mask[2, :] = False  # a row of +inf, masked out
        mask[3, :] = True
    return mask


def _layout(case, xp, a, backend):
    """Apply the case's layout in the backend's own namespace (a view where it has them)."""
    if case.layout == "strided":
        return a[:, ::2] if case.axis == -1 else a[::2, :]
    if case.layout == "transposed":
        return xp.permute_dims(a, (1, 0))
    if case.layout == "negative":
        if not backend.negative_strides:
            pytest.skip(f"{backend.name} arrays cannot be indexed with a negative step")
        return a[:, ::-1]
    return a


def _as_numpy_layout(case, a):
    if case.layout == "strided":
        return a[:, ::2] if case.axis == -1 else a[::2, :]
    if case.layout == "transposed":
        return a.T
    if case.layout == "negative":
        return a[:, ::-1]
    return a


def _prepare(backend, case, dtype_name, values_of=_values):
    """(x in the backend, its values as float64 NumPy, where (NumPy), where (backend), rng).

    Skips a dtype the backend lacks.  ``values_of(case, dtype, rng)`` gives the float64
    values, exact in ``dtype``; the mask is drawn from the same ``rng`` after them.
    """
    import array_api_compat

    if dtype_name not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype_name}")
    dtype = numpy_dtype(dtype_name)
    rng = np.random.default_rng(abs(hash((case.id, dtype_name))) % 2**32)
    values = values_of(case, dtype, rng)
    base = backend.from_numpy(values.astype(dtype))
    x = _layout(case, array_api_compat.array_namespace(base), base, backend)
    x_values = _as_numpy_layout(case, values)
    where = _mask(case, x_values.shape, rng)
    where_arg = None if where is None else backend.from_numpy(where)
    return x, x_values, where, where_arg, rng


def _normalized_axes(axis, ndim):
    if ndim == 0:
        return ()
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim for a in axes))


@pytest.mark.parametrize("case", SHAPE_CASES + VALUE_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
@pytest.mark.parametrize("dtype_name", ("float16", "bfloat16", "float32", "float64", "int"))
def test_conformance(backend, dtype_name, algorithm, case):
    import array_api_compat

    x, x_values, where, where_arg, _ = _prepare(backend, case, dtype_name)
    xp = array_api_compat.array_namespace(x)
    axes = _normalized_axes(case.axis, x_values.ndim)

    for op, function in OPS.items():
        y = backend.call(function, x, axis=case.axis, where=where_arg, algorithm=algorithm)
        # Same namespace, dtype (integers promoted to the default float) and shape.
        assert array_api_compat.array_namespace(y) is xp
        expected_dtype = x.dtype if dtype_name != "int" else _default_float(xp, x)
        assert y.dtype == expected_dtype, (op, y.dtype, expected_dtype)
        expected_shape = x_values.shape if op != "logsumexp" else tuple(
            s for i, s in enumerate(x_values.shape) if i not in axes
        )
        assert tuple(y.shape) == expected_shape, (op, y.shape, expected_shape)
        if array_api_compat.is_numpy_array(x) or array_api_compat.is_torch_array(x):
            assert array_api_compat.device(y) == array_api_compat.device(x)
        result_dtype = dtype_name if dtype_name != "int" else _dtype_name(y.dtype)
        check(op, backend.to_numpy(y), x_values, axes, where, result_dtype)


def _default_float(xp, x):
    return xp.__array_namespace_info__().default_dtypes(device=__import__("array_api_compat").device(x))[
        "real floating"
    ]


def _dtype_name(dtype):
    return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]
