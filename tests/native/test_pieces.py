"""The piece entry points (numpy_native.accumulate / finish) that Dask chunks use.

A row cut into pieces: accumulate each piece, merge the accumulators, finish
each piece with the merged one. Compared with softmaxlib.softmax on the whole row.
"""

import ml_dtypes
import numpy as np
import pytest

import softmaxlib
from softmaxlib._backends import numpy_native

pytestmark = pytest.mark.skipif(not numpy_native.info()["available"], reason="native kernels not built")

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]


def merge(a, b):
    """The (m, d) monoid merge of two accumulators, in NumPy."""
    m = np.maximum(a[..., 0], b[..., 0])
    with np.errstate(invalid="ignore", over="ignore"):
        da = np.where(a[..., 1] == 0, 0.0, a[..., 1] * np.exp(a[..., 0] - np.where(np.isfinite(m), m, 0)))
        db = np.where(b[..., 1] == 0, 0.0, b[..., 1] * np.exp(b[..., 0] - np.where(np.isfinite(m), m, 0)))
    out = np.empty_like(a)
    out[..., 0] = m
    out[..., 1] = da + db
    out[..., 2] = a[..., 2] + b[..., 2]
    out[..., 3] = np.maximum(a[..., 3], b[..., 3])
    out[..., 4] = a[..., 4] + b[..., 4]
    return out


def _logits(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 5).astype(np.float32)
    return x.astype(dtype)


def _special_rows(x):
    x = x.copy()
    x[1, 3] = np.inf
    x[1, -2] = np.inf
    x[2, 5] = np.nan
    x[3, :] = -np.inf
    x[4, : x.shape[1] // 2] = -np.inf  # one half all -inf
    return x


def _close(y, expect, dtype):
    tol = {np.float64: 1e-13}.get(dtype, 2e-6 if dtype == np.float32 else 1e-2)
    np.testing.assert_allclose(np.asarray(y, dtype=np.float64), np.asarray(expect, dtype=np.float64),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("masked", [False, True])
def test_whole_row_and_two_halves(dtype, op, masked):
    x = _special_rows(_logits((6, 3000), dtype))
    where = None
    if masked:
        where = np.random.default_rng(1).random(x.shape) < 0.7
        where[5] = False  # a fully masked row
        where[0, 1500:] = False  # one half fully masked
    expect = getattr(softmaxlib, op)(x, where=where)

    acc = numpy_native.accumulate(x, (1,), where)
    assert acc.shape == (6, 5) and acc.dtype == np.float64
    _close(numpy_native.finish(op, x, (1,), where, acc), expect, dtype)

    h = x.shape[1] // 2
    wl = None if where is None else where[:, :h]
    wr = None if where is None else where[:, h:]
    merged = merge(numpy_native.accumulate(x[:, :h], (1,), wl), numpy_native.accumulate(x[:, h:], (1,), wr))
    left = numpy_native.finish(op, x[:, :h], (1,), wl, merged)
    right = numpy_native.finish(op, x[:, h:], (1,), wr, merged)
    y = np.concatenate([left, right], axis=1)
    assert y.dtype == x.dtype
    _close(y, expect, dtype)


def test_accumulator_fields():
    x = np.array([[1.0, 2.0, np.inf, -np.inf], [np.nan, 0.0, 1.0, 2.0], [-np.inf] * 4, [3.0, 4.0, 5.0, 6.0]])
    where = np.array([[True] * 4, [True] * 4, [True] * 4, [False, True, False, False]])
    acc = numpy_native.accumulate(x, (1,), where)
    np.testing.assert_allclose(acc[0], [2.0, 1 + np.exp(-1.0), 1, 0, 4])
    assert acc[1, 3] == 1 and acc[1, 4] == 4
    np.testing.assert_array_equal(acc[2], [-np.inf, 0, 0, 0, 4])
    np.testing.assert_allclose(acc[3], [4.0, 1.0, 0, 0, 1])


def test_strided_and_several_axes():
    x = _logits((4, 5, 6, 7), np.float32)
    xt = np.transpose(x, (2, 0, 3, 1))  # non-contiguous
    axes = (1, 3)
    expect = softmaxlib.softmax(xt, axis=axes)
    acc = numpy_native.accumulate(xt, axes, None)
    assert acc.shape == (6, 7, 5)
    _close(numpy_native.finish("softmax", xt, axes, None, acc), expect, np.float32)


def test_long_row_threads():
    x = _logits((2, 1 << 20), np.float32)
    acc = numpy_native.accumulate(x, (1,))
    _close(numpy_native.finish("log_softmax", x, (1,), None, acc), softmaxlib.log_softmax(x), np.float32)


def test_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="logsumexp"):
        numpy_native.finish("logsumexp", x, (1,), None, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="shape"):
        numpy_native.finish("softmax", x, (1,), None, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="dtype"):
        numpy_native.accumulate(np.zeros((2, 3), np.int32), (1,))
