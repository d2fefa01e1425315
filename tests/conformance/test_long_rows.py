"""The bar's scale: rows of 2^20 elements and logits of +-3.4e38, on every backend path."""

import numpy as np
import pytest

import softmaxlib
from tests.backends import numpy_dtype
from tests.conformance.test_matrix import OPS
from tests.oracle import check

pytestmark = pytest.mark.slow

N = 2**20


def _long_rows(dtype, rng):
    """Three rows of 2^20: N(0, 3) logits, N(0, 1e30) logits, and +-max among N(0, 10)."""
    big = float(np.finfo(dtype).max)
    x = np.empty((3, N))
    x[0] = rng.normal(0, 3, size=N)
    x[1] = rng.normal(0, 1e30, size=N)
    x[2] = rng.normal(0, 10, size=N)
    x[2, rng.integers(0, N, 1000)] = big
    x[2, rng.integers(0, N, 1000)] = -big
    return x


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_long_rows(backend, dtype_name, algorithm):
    if dtype_name not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype_name}")
    dtype = numpy_dtype(dtype_name)
    values = _long_rows(dtype, np.random.default_rng(7)).astype(dtype)
    x = backend.from_numpy(values)
    for op, function in OPS.items():
        y = backend.call(function, x, compiled=True, algorithm=algorithm)
        check(op, backend.to_numpy(y), values.astype(np.float64), (1,), None, dtype_name)
