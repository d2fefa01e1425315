"""The results' own range, on every backend path and algorithm.

Whatever the rounding inside, log_softmax <= 0, max(x) <= logsumexp <= max(x) + log(n)
(n: the row's length) and 0 <= softmax <= 1, exactly, in the output dtype.  The rows
are where a rounded sum puts a result a few ulp outside: the max term alone or nearly
alone (a single entry, a dominant logit, one finite value among -inf).
"""

import numpy as np
import pytest

import softmaxlib
from tests.backends import numpy_dtype

DTYPES = ("float16", "bfloat16", "float32", "float64")


def _rows(rng):
    """Rows of 8 entries: N(0, 4), and a max above the rest by a gap of 1e-3 to ~60."""
    rows = [rng.normal(0.0, 4.0, size=8) for _ in range(6)]
    for gap in (1e-3, 0.5, 3.0, 9.0, 17.0, 25.0, 40.0, 60.0):
        for _ in range(6):
            top = rng.uniform(-8.0, 8.0)
            row = top - gap - np.abs(rng.normal(0.0, 1.0, size=8))
            row[rng.integers(0, 8)] = top
            rows.append(row)
    return np.array(rows)


def _singletons(rng):
    values = np.concatenate([[1.0, -1.0, 0.5, 3.0, 100.0, -100.0, 1e-3], rng.uniform(-50, 50, size=25)])
    return values[:, None]


def _check_range(op, y, values, dtype):
    """y (the backend's result, float64) within its exact range, bounds rounded to dtype."""
    finite = np.where(np.isfinite(values), values, -np.inf)
    m = finite.max(axis=-1)
    n = values.shape[-1]
    if op == "softmax":
        assert np.all(y >= 0) and np.all(y <= 1), y[(y < 0) | (y > 1)]
    elif op == "log_softmax":
        assert np.all(y <= 0), y[y > 0]
    else:
        upper = (m + np.log(n)).astype(dtype).astype(np.float64)
        low, high = y < m, y > upper
        assert not low.any(), (y[low], m[low])
        assert not high.any(), (y[high], upper[high])


OPS = {"softmax": softmaxlib.softmax, "log_softmax": softmaxlib.log_softmax, "logsumexp": softmaxlib.logsumexp}


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_results_within_their_range(backend, dtype_name, algorithm):
    if dtype_name not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype_name}")
    dtype = numpy_dtype(dtype_name)
    rng = np.random.default_rng(18)
    for values in (_rows(rng), _singletons(rng)):
        values = values.astype(dtype)
        x = backend.from_numpy(values)
        for op, function in OPS.items():
            y = backend.to_numpy(backend.call(function, x, algorithm=algorithm))
            _check_range(op, y, values.astype(np.float64), dtype)


def test_single_entry_two_pass():
    """The case that showed it: exp(1) rounded made log_softmax 2.98e-08 and logsumexp < 1."""
    x = np.float32([1.0])
    assert softmaxlib.log_softmax(x, algorithm="two-pass")[0] <= 0
    assert softmaxlib.logsumexp(x, algorithm="two-pass") >= 1


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
def test_one_finite_value_in_a_long_row(backend, algorithm):
    """1 x 2^20, one finite value among -inf ("auto" takes two-pass on rows this long)."""
    if "float32" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no float32")
    values = np.full((1, 2**20), -np.inf, dtype=np.float32)
    values[0, 12345] = 1.0
    x = backend.from_numpy(values)
    for op, function in OPS.items():
        y = backend.to_numpy(backend.call(function, x, algorithm=algorithm))
        _check_range(op, y, values.astype(np.float64), np.float32)
