"""Property tests (hypothesis): identities softmax must satisfy for any input.

Each property is checked on NumPy's default path (native when built) and on the
generic reference, for every algorithm, in float32 and float64.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxlib
from softmaxlib._backends import reference_only

# The design's tolerances: relative rtol + cond |x_i - max x| (softmax), absolute for logs.
RTOL = {np.float32: 1e-6, np.float64: 1e-14}
COND = {np.float32: 2.0**-23, np.float64: 2.0**-52}
# A sum of n softmax values rounded to the dtype carries about n/2 ULPs at most.
ULP = {np.float32: 2.0**-23, np.float64: 2.0**-52}


def rows(dtype, max_magnitude):
    return hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(-max_magnitude, max_magnitude, width=np.finfo(dtype).bits).map(dtype),
    )


PATHS = ["default", "reference"]
ALGORITHMS = softmaxlib.ALGORITHMS
DTYPES = [np.float32, np.float64]


def property_test(test):
    """A hypothesis test drawing from ``data``, run per dtype, path and algorithm."""
    test = settings(max_examples=40, deadline=None)(given(data=st.data())(test))
    for name, values in (("algorithm", ALGORITHMS), ("path", PATHS), ("dtype", DTYPES)):
        test = pytest.mark.parametrize(name, values)(test)
    return test


def _run(path, function, *args, **kwargs):
    if path == "reference":
        with reference_only():
            return function(*args, **kwargs)
    return function(*args, **kwargs)


def _tol(dtype, x):
    spread = np.max(x, axis=-1, keepdims=True).astype(np.float64) - x
    return RTOL[dtype] + COND[dtype] * spread


@property_test
def test_sums_to_one(path, algorithm, dtype, data):
    x = data.draw(rows(dtype, 2.0**100))
    y = _run(path, softmaxlib.softmax, x, algorithm=algorithm)
    n = x.shape[-1]
    np.testing.assert_allclose(y.astype(np.float64).sum(axis=-1), 1.0, rtol=0, atol=(n + 2) * 2 * RTOL[dtype])


@property_test
def test_shift_invariance(path, algorithm, dtype, data):
    # Multiples of 2^-10 within +-100 and shifts within +-1000: x + shift is exact in float32.
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40))
    x = data.draw(hnp.arrays(dtype, shape, elements=st.integers(-102400, 102400).map(lambda k: k / 1024)))
    shift = dtype(data.draw(st.sampled_from([-1000.0, -3.0, 0.5, 64.0, 1000.0])))
    y = _run(path, softmaxlib.softmax, x, algorithm=algorithm).astype(np.float64)
    z = _run(path, softmaxlib.softmax, x + shift, algorithm=algorithm).astype(np.float64)
    tol = 2 * _tol(dtype, x)
    np.testing.assert_array_less(np.abs(y - z), tol * y + np.finfo(dtype).tiny)


@property_test
def test_exp_of_log_softmax_is_softmax(path, algorithm, dtype, data):
    x = data.draw(rows(dtype, 1e4))
    y = _run(path, softmaxlib.softmax, x, algorithm=algorithm).astype(np.float64)
    log_y = _run(path, softmaxlib.log_softmax, x, algorithm=algorithm).astype(np.float64)
    # exp turns an absolute error a of log_y into a relative one of about a.
    tol = 2 * _tol(dtype, x) * np.maximum(1, np.abs(log_y)) + ULP[dtype]
    np.testing.assert_array_less(np.abs(np.exp(log_y) - y), tol * y + np.finfo(dtype).tiny)


@property_test
def test_logsumexp_is_consistent_with_log_softmax(path, algorithm, dtype, data):
    x = data.draw(rows(dtype, 1e4))
    lse = _run(path, softmaxlib.logsumexp, x, algorithm=algorithm, keepdims=True).astype(np.float64)
    log_y = _run(path, softmaxlib.log_softmax, x, algorithm=algorithm).astype(np.float64)
    # At the row's max, log_softmax = max - lse: small numbers, no cancellation.
    i = np.argmax(x, axis=-1)[..., None]
    m = np.take_along_axis(x, i, axis=-1).astype(np.float64)
    lhs = np.take_along_axis(log_y, i, axis=-1)
    tol = 4 * RTOL[dtype] * np.maximum(1, np.abs(lse))
    np.testing.assert_array_less(np.abs(lhs - (m - lse)), tol)


@property_test
def test_permutation_equivariance(path, algorithm, dtype, data):
    x = data.draw(rows(dtype, 1e3))
    perm = np.array(data.draw(st.permutations(range(x.shape[-1]))), dtype=np.intp)
    y = _run(path, softmaxlib.softmax, x, algorithm=algorithm).astype(np.float64)
    y_perm = _run(path, softmaxlib.softmax, x[..., perm], algorithm=algorithm).astype(np.float64)
    tol = 2 * _tol(dtype, x)[..., perm]
    np.testing.assert_array_less(np.abs(y_perm - y[..., perm]), tol * y[..., perm] + np.finfo(dtype).tiny)


# ------------------------------------------------------------------ the family (issue 8)


def family_property_test(test):
    """A hypothesis test drawing from ``data``, run per dtype and path (no algorithm)."""
    test = settings(max_examples=40, deadline=None)(given(data=st.data())(test))
    for name, values in (("path", PATHS), ("dtype", DTYPES)):
        test = pytest.mark.parametrize(name, values)(test)
    return test


@property_test
def test_power_of_two_temperature_is_exact_rescaling(path, algorithm, dtype, data):
    # x / T is exact for T a power of two (within the range), so softmax(x, T) must
    # match softmax(x / T) to the plain tolerance of the scaled row.
    x = data.draw(rows(dtype, 1e4))
    t = float(data.draw(st.sampled_from([2.0**-6, 0.5, 2.0, 2.0**10])))
    y = _run(path, softmaxlib.softmax, x, temperature=t, algorithm=algorithm).astype(np.float64)
    z = _run(path, softmaxlib.softmax, (x / dtype(t)).astype(dtype), algorithm=algorithm).astype(np.float64)
    tol = 2 * _tol(dtype, x / dtype(t))
    np.testing.assert_array_less(np.abs(y - z), tol * z + np.finfo(dtype).tiny)


@family_property_test
def test_stablemax_sums_to_one_and_matches_its_log(path, dtype, data):
    x = data.draw(rows(dtype, float(np.finfo(dtype).max)))
    y = _run(path, softmaxlib.stablemax, x).astype(np.float64)
    log_y = _run(path, softmaxlib.log_stablemax, x).astype(np.float64)
    n = x.shape[-1]
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=0, atol=(n + 2) * 2 * RTOL[dtype])
    assert np.all(np.isfinite(log_y))  # no collapse to log 0 for any finite input
    tol = 4 * RTOL[dtype] * np.maximum(1, np.abs(log_y))
    np.testing.assert_array_less(np.abs(np.exp(log_y) - y), tol * y + np.finfo(dtype).tiny)


@family_property_test
def test_softmax_topk_is_a_sorted_slice_of_softmax(path, dtype, data):
    x = data.draw(rows(dtype, 1e3))
    k = data.draw(st.integers(1, x.shape[-1]))
    values, indices = _run(path, softmaxlib.softmax_topk, x, k)
    y = _run(path, softmaxlib.softmax, x)
    # The indices: a stable descending sort of the logits, ties by index.
    np.testing.assert_array_equal(indices, np.argsort(-x.astype(np.float64), axis=-1, kind="stable")[..., :k])
    # Values below the smallest normal number are compared absolutely, within it (the
    # contract's rule for subnormal results: the two kernels round them differently).
    np.testing.assert_allclose(values, np.take_along_axis(y, indices, axis=-1), rtol=4 * RTOL[dtype],
                               atol=np.finfo(dtype).tiny)
    assert np.all(np.diff(values.astype(np.float64), axis=-1) <= 0)
