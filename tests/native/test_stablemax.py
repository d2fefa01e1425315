"""StableMax / log-StableMax (Prieto et al. 2025) natively, against a float64 /
long double oracle: s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0), normalised.

Measured accuracy (this file's bounds, with margin): stablemax within 3 eps
relative (float32 and float64, every ISA, measured <= 3.0; results below the smallest normal
number within that number absolutely), log_stablemax within 2 eps *
max(1, |exact|) (measured <= 1.6); float16 and bfloat16 correctly rounded (0.5 eps) but for the
rare value next to a rounding boundary."""

import ml_dtypes
import numpy as np
import pytest

from softmaxlib._backends import numpy_native

DTYPES = (np.float32, np.float64, np.float16, ml_dtypes.bfloat16)
OPS = ("stablemax", "log_stablemax")


def oracle(op, x, axes, where=None):
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    xw = np.asarray(x).astype(wide)
    keep = np.ones(xw.shape, bool) if where is None else np.broadcast_to(where, xw.shape)
    with np.errstate(all="ignore"):
        s = np.where(xw >= 0, xw + 1, 1 / (1 - xw))
        s = np.where(keep, s, 0)
        n_posinf = np.sum(keep & (xw == np.inf), axis=axes, keepdims=True)
        S = np.sum(np.where(np.isfinite(s), s, 0), axis=axes, keepdims=True)
        y = s / S  # all -inf: 0/0 = NaN
        y = np.where(n_posinf > 0, np.where(keep & (xw == np.inf), 1 / np.maximum(n_posinf, 1), 0), y)
        nan_rows = np.any(keep & np.isnan(xw), axis=axes, keepdims=True)
        y = np.where(nan_rows, np.nan, np.where(keep, y, 0))
        no_valid = ~np.any(keep, axis=axes, keepdims=True)
        y = np.where(no_valid, 0, y)
        if op == "log_stablemax":
            y = np.where(nan_rows, np.nan, np.log(y))
            # log of the unrounded ratio where y is tiny (no underflow in the oracle)
            exact_log = np.where(xw >= 0, np.log1p(np.where(xw >= 0, xw, 0)), -np.log1p(np.where(xw < 0, -xw, 0)))
            exact_log = exact_log - np.log(S)
            y = np.where(np.isfinite(y) & (n_posinf == 0) & keep, exact_log, y)
    return y


def check(op, x, axes=(1,), where=None):
    y = numpy_native.compute(op, x, tuple(axes), where, "auto")
    assert y.dtype == x.dtype and y.shape == x.shape
    exact = oracle(op, x, tuple(axes), where)
    fi = ml_dtypes.finfo(x.dtype)
    eps, tiny, top = float(fi.eps), float(fi.tiny), float(fi.max)
    exact = np.where(exact > top, np.inf, np.where(exact < -top, -np.inf, exact))
    wide_bits = x.dtype in (np.float32, np.float64)
    got = y.astype(exact.dtype)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - exact)
        if op == "stablemax":
            bound = np.where(exact < tiny, tiny, (3.0 if wide_bits else 1.0) * eps * exact)
        else:
            bound = (2.0 if wide_bits else 1.0) * eps * np.maximum(1, np.abs(exact))
        ok = (np.isnan(got) & np.isnan(exact)) | (got == exact) | (err <= bound)
    assert ok.all(), f"{op}: {np.count_nonzero(~ok)} bad; got {got[~ok][:4]}, exact {exact[~ok][:4]}"
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_random_and_wide_range(isa, op, dtype):
    rng = np.random.default_rng(0)
    big = float(ml_dtypes.finfo(dtype).max)
    cases = [rng.standard_normal((6, 257)) * s for s in (0.1, 1, 10, 1e3)]
    cases += [
        rng.uniform(-1, 1, (6, 257)) * big,  # +-max: no overflow (scaled sum)
        -rng.uniform(0.5, 1, (6, 257)) * big,  # every s(x) near the smallest: no underflow
        rng.uniform(0.5, 1, (6, 257)) * big,
        np.exp(rng.uniform(-0.9, 0.9, (6, 257)) * np.log(big)) * rng.choice([-1, 1], (6, 257)),
    ]
    for c in cases:
        check(op, c.astype(dtype))


@pytest.mark.parametrize("op", OPS)
def test_extremes_exactly(isa, op):
    for dtype in (np.float32, np.float64):
        big = np.finfo(dtype).max
        check(op, np.array([[big, big, big, -big]], dtype))
        check(op, np.array([[-big, -big, -big]], dtype))  # s ~ 1/big: scaled, never subnormal
        check(op, np.array([[-big, -big / 2, 0.0, -0.0]], dtype))
    y = numpy_native.compute("stablemax", np.array([[3.0, -1.0, 0.0]]), (1,), None, "auto")
    np.testing.assert_allclose(y, [[4 / 5.5, 0.5 / 5.5, 1 / 5.5]], rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_special_rows_and_masks(isa, op, dtype):
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [1.0, -inf, 3.0, -2.0],  # s(-inf) = 0
            [inf, 1.0, inf, -inf],  # +inf share the mass
            [-inf, -inf, -inf, -inf],  # 0/0
            [1.0, nan, 2.0, 3.0],  # NaN row
            [0.0, 0.0, 0.0, 0.0],
        ],
    ).astype(dtype)
    check(op, x)
    where = np.array([[1, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 1], [1, 1, 0, 0]], bool)
    y = check(op, x, where=where)
    fill = 0 if op == "stablemax" else -np.inf
    assert (y[~where] == fill).all()  # masked (incl. the fully masked row and the masked NaN)


@pytest.mark.parametrize("op", OPS)
def test_lengths_axes_strides(isa, op):
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 16, 17, 65, 4095, 4097, 10001):
        check(op, (rng.standard_normal((2, n)) * 3).astype(np.float32))
    x = (rng.standard_normal((5, 30, 7)) * 3).astype(np.float64)
    for axes in ((0,), (1,), (2,), (0, 2), (0, 1, 2)):
        check(op, x, axes)
    check(op, x.transpose(2, 1, 0), (1,))
    check(op, x[::-1, ::2, 1:], (1,))
    check(op, x, (1,), where=rng.random((5, 30, 7)) < 0.6)
    check(op, x, (2,), where=rng.random(7) < 0.6)  # broadcast mask


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
def test_long_rows_bitwise_identical_across_threads(isa, threads, op):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 2**20 + 3)) * 4).astype(np.float32)
    results = {}
    for n in (1, 2):
        threads(n)
        results[n] = numpy_native.compute(op, x, (1,), None, "auto")
    assert results[1].tobytes() == results[2].tobytes()
    check(op, x)


def test_not_implemented():
    x = np.ones((2, 3), np.float32)
    assert numpy_native.compute("stablemax", x, (1,), None, "auto", temperature=2.0) is NotImplemented
    assert numpy_native.compute("stablemax", np.ones((2, 3), np.int64), (1,), None, "auto") is NotImplemented
    assert numpy_native.compute("stablemax", np.ones((0, 3), np.float32), (1,), None, "auto") is NotImplemented
