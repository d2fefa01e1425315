"""log_softmax and logsumexp accurate to their condition number, on every path.

The bound (tests/oracle.py, ``condition_check``) asks for relative accuracy where
the results are near 0, which a max-shifted sum followed by log() cannot give: the
max's own term 1 swamps the rest of the sum.  The rows here are where it matters:
one dominant logit (float32 gaps of 20 to 100, float64 40 to 700), ties at the max,
a logsumexp near 0 by cancellation, a long row with one outlier, and the same under
``where`` and a temperature.
"""

import numpy as np
import pytest

import softmaxlib
from tests.backends import numpy_dtype
from tests.oracle import condition_check

GAPS = {"float32": (20.0, 30.0, 45.0, 60.0, 80.0, 100.0), "float64": (40.0, 100.0, 300.0, 500.0, 700.0)}
LONG = 2**16


def adversarial_rows(dtype_name):
    """Rows (float64 arrays whose entries are exact in the dtype), grouped by name."""
    dtype = numpy_dtype(dtype_name)
    rng = np.random.default_rng(16)
    rows = {}
    for g in GAPS[dtype_name]:
        rows[f"dominant-{g:g}"] = [0.0, -g]
        rows[f"dominant-shifted-{g:g}"] = [5.0, 5.0 - g, 5.0 - g - 1.5]
        rows[f"dominant-negative-{g:g}"] = [-7.25, -7.25 - g - 0.5, -7.25 - g]
    rows["ties-2"] = [0.0, 0.0]
    rows["ties-3-and-far"] = [2.0, 2.0, 2.0 - GAPS[dtype_name][1], 2.0]
    rows["ties-below"] = [-3.0, -3.0 - GAPS[dtype_name][0], -3.0]
    ln2 = float(np.log(np.asarray(2.0, dtype)))
    rows["cancel-ln2"] = [-ln2, -ln2]  # lse = log 2 - ln2 rounded: tiny
    rows["cancel-1e-3"] = [-1e-3, -6.9]  # lse = -1e-3 + log1p(e^-6.899) ~ 1e-5
    rows["cancel-many"] = [-np.log(8.0)] * 8  # lse = log 8 - log(8) rounded
    top = 10.0
    tail = top - GAPS[dtype_name][1] - rng.integers(0, 256, size=LONG - 1) / 16.0
    rows["long-outlier"] = np.insert(tail, LONG // 3, top)
    rows["long-normal-outlier"] = np.insert(np.round(rng.normal(0.0, 2.0, size=LONG - 1) * 64) / 64, 7, 40.0)
    return {name: np.asarray(row, dtype=np.float64).astype(dtype).astype(np.float64) for name, row in rows.items()}


def _call(backend, op, values, dtype_name, **kwargs):
    function = softmaxlib.log_softmax if op == "log_softmax" else softmaxlib.logsumexp
    x = backend.from_numpy(values.astype(numpy_dtype(dtype_name)))
    if "where" in kwargs:
        kwargs["where"] = backend.from_numpy(kwargs["where"]) if backend.name.startswith("jax") else kwargs["where"]
    return backend.to_numpy(backend.call(function, x, **kwargs))


def every_case(test):
    """Parametrize ``test`` over op, dtype and algorithm."""
    test = pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)(test)
    test = pytest.mark.parametrize("dtype_name", ["float32", "float64"])(test)
    return pytest.mark.parametrize("op", ["log_softmax", "logsumexp"])(test)


def _check_rows(backend, op, dtype_name, rows, temperature=None, **kwargs):
    """op of each row (x = row * temperature, so that x / temperature is the row
    exactly) against the bound, one call per row."""
    if temperature is not None:
        kwargs["temperature"] = temperature
    for name, row in rows.items():
        values = row if temperature is None else row * temperature
        y = _call(backend, op, values[None, :], dtype_name, **kwargs)
        try:
            condition_check(op, y[0], row, dtype_name)
        except AssertionError as error:
            raise AssertionError(f"row {name}, temperature {temperature}: {error}") from None


def _skip_missing(backend, dtype_name):
    if dtype_name not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype_name}")


def _mark_known_gap(request, backend):
    """Dask's chunk accumulator (m, d, ...) still carries the max's own 1 inside d, so
    its merged rows lose what log1p needs; it has to split d into the count at the max
    and the sum beside it (a monoid too) to pass."""
    if backend.name == "dask":
        request.applymarker(pytest.mark.xfail(reason=_mark_known_gap.__doc__, strict=True))


@every_case
def test_adversarial_rows(request, backend, op, dtype_name, algorithm):
    _skip_missing(backend, dtype_name)
    _mark_known_gap(request, backend)
    _check_rows(backend, op, dtype_name, adversarial_rows(dtype_name), algorithm=algorithm)


@every_case
def test_adversarial_rows_masked(request, backend, op, dtype_name, algorithm):
    """A dominant logit and a cancellation among masked entries that would swamp them."""
    _skip_missing(backend, dtype_name)
    _mark_known_gap(request, backend)
    g = GAPS[dtype_name][1]
    row = np.array([50.0, 0.0, 60.0, -g, 50.0, -np.log(2.0), -np.log(2.0), 0.5])
    where = np.array([[False, True, False, True, False, False, False, False],
                      [False, False, False, False, False, True, True, False]])
    values = np.broadcast_to(row.astype(numpy_dtype(dtype_name)).astype(np.float64), where.shape).copy()
    y = _call(backend, op, values, dtype_name, where=where, algorithm=algorithm)
    for r in range(where.shape[0]):
        condition_check(op, y[r], values[r], dtype_name, where=where[r])


@every_case
@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_adversarial_rows_temperature(backend, op, dtype_name, algorithm, temperature):
    """op(x / T) with T a power of 2: x / T is exact, so the oracle's z is."""
    _skip_missing(backend, dtype_name)
    short = {name: row for name, row in adversarial_rows(dtype_name).items() if row.size <= 64}
    _check_rows(backend, op, dtype_name, short, algorithm=algorithm, temperature=temperature)
