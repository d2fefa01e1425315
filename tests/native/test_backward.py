"""The native backward kernels (_native/backward.h, reached through
softmaxlib._backends.numpy_backward): dx and the temperature's cotangent of
softmax, log_softmax and logsumexp against an exact float64 (long double for
float64) oracle from x, on every ISA, dtype and layout, with masks and scalar
and per-row temperatures; the special rows; and a finite-difference check of
the temperature's cotangent, which the oracle's formula alone would not catch.

The saved values are the forward's own outputs in the test's dtype, as in
training. The bound of each entry is c * u * (the first-order size of the
rounding errors of y, g and z = x / T through the formula), u the dtype's unit
roundoff; see _bounds."""

import ml_dtypes
import numpy as np
import pytest

from softmaxlib._backends import numpy_native
from softmaxlib._backends.numpy_backward import backward, backward_raw
from softmaxlib import _native_loader

from tests.native.helpers import OPS

DTYPES = (np.float32, np.float64, np.float16, ml_dtypes.bfloat16)
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
C = 8  # a few roundings per entry


def _wide(dtype):
    return np.longdouble if np.dtype(dtype) == np.float64 else np.float64


def _exact(op, x, g, axes, where, temperature):
    """(dx, dT per row, p, z, lse, T, g, keep) in the oracle's precision from x itself
    (a fully masked row's p is NaN and its dx 0)."""
    with np.errstate(invalid="ignore"):
        return _exact_unchecked(op, x, g, axes, where, temperature)


def _exact_unchecked(op, x, g, axes, where, temperature):
    wide = _wide(x.dtype)
    xw = x.astype(wide)
    t = np.asarray(1.0 if temperature is None else temperature, dtype=wide)
    t = np.expand_dims(t, axes) if t.ndim else t
    keep = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    z = np.where(keep, xw / t, -np.inf)
    m = np.max(z, axis=axes, keepdims=True)
    e = np.exp(z - m)
    s = np.sum(e, axis=axes, keepdims=True)
    p = e / s
    lse = m + np.log(s)
    gw = g.astype(wide)
    if op == "softmax":
        dz = p * (gw - np.sum(gw * p, axis=axes, keepdims=True))
    elif op == "log_softmax":
        gw = np.where(keep, gw, 0)
        dz = gw - p * np.sum(gw, axis=axes, keepdims=True)
    else:
        gw = np.expand_dims(gw, axes)
        dz = gw * p
    dz = np.where(keep, dz, 0)
    zdz = np.where(keep, np.where(keep, z, 0) * dz, 0)
    d_t = -np.sum(zdz, axis=axes) / np.squeeze(np.broadcast_to(t, lse.shape), axis=axes)
    return dz / t, d_t, p, np.where(keep, z, 0), lse, t, gw, keep


def _bounds(op, x, g, axes, where, temperature):
    """Per-entry bound on |dx - exact| and per-row bound on |dT - exact|."""
    with np.errstate(invalid="ignore"):
        return _bounds_unchecked(op, x, g, axes, where, temperature)


def _bounds_unchecked(op, x, g, axes, where, temperature):
    u = UNIT_ROUNDOFF[np.dtype(x.dtype).name]
    dx, _, p, z, lse, t, gw, keep = _exact(op, x, g, axes, where, temperature)
    ag = np.abs(gw)
    spread = 1 + np.abs(z - lse) + np.abs(z)  # relative error of p (and of z) from the forward's rounding
    if op == "softmax":
        b = p * spread * (ag + np.sum(ag * p * spread, axis=axes, keepdims=True))
    elif op == "log_softmax":
        # (g - sum g) - expm1(y) sum g passes through values of size |sum g|
        sum_g = np.abs(np.sum(gw, axis=axes, keepdims=True))
        b = ag + sum_g + p * spread * np.sum(ag, axis=axes, keepdims=True)
    else:
        b = ag * p * spread
    tiny = float(np.finfo(x.dtype).smallest_normal) * float(np.max(ag, initial=1.0))
    b = np.where(keep, C * u * (b + np.abs(dx * t)) / np.abs(t) + tiny, 0)
    b_t = np.sum(np.where(keep, spread * b + C * u * np.abs(z * dx), 0), axis=axes)
    return b, b_t


def _forward(op, x, axes, where, temperature):
    y = numpy_native.compute(op, x, axes, where, "auto", temperature=temperature)
    assert y is not NotImplemented
    return y


def _check(op, x, axes, where=None, temperature=None, seed=0):
    rng = np.random.default_rng(seed)
    batch = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    g = rng.standard_normal(batch if op == "logsumexp" else x.shape).astype(x.dtype)
    y = _forward(op, x, axes, where, temperature)
    saved, lse = (x, y) if op == "logsumexp" else (y, None)
    if temperature is None:
        dx = backward(op, saved, g, axes, lse=lse, where=where)
        d_t = None
    else:
        dx, d_t = backward(op, saved, g, axes, lse=lse, where=where, temperature=temperature, temperature_grad=True)
    exact, exact_t, *_ = _exact(op, x, g, axes, where, temperature)
    b, b_t = _bounds(op, x, g, axes, where, temperature)
    assert dx.dtype == x.dtype and dx.shape == x.shape
    err = np.abs(dx.astype(exact.dtype) - exact)
    assert np.all(err <= b), f"max err/bound {np.max(err / np.maximum(b, 1e-300))}"
    if where is not None:
        assert np.all(dx[~np.broadcast_to(where, x.shape)] == 0)
    if temperature is not None:
        if np.ndim(temperature) == 0:
            exact_t, b_t = np.sum(exact_t), np.sum(b_t)
        assert np.all(np.abs(d_t - exact_t) <= b_t), (d_t, exact_t, b_t)
    return dx


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_rows_every_isa_and_dtype(op, dtype, isa):
    rng = np.random.default_rng(1)
    for n in (1, 3, 17, 1000, 4099):
        x = (rng.standard_normal((3, n)) * 4).astype(dtype)
        _check(op, x, (1,))


@pytest.mark.parametrize("dtype", (np.float32, np.float64, ml_dtypes.bfloat16), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_layouts(op, dtype):
    rng = np.random.default_rng(2)
    base = (rng.standard_normal((6, 8, 10)) * 3).astype(dtype)
    cases = [
        (base, (2,)),
        (base, (0,)),
        (base, (0, 2)),
        (base.transpose(2, 0, 1), (1,)),
        (base[:, ::2, ::-3], (2,)),
        (base[::-1, :, 1:], (0, 1)),
    ]
    for x, axes in cases:
        _check(op, x, axes)


@pytest.mark.parametrize("dtype", (np.float32, np.float64, np.float16), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_masked(op, dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 33)) * 2).astype(dtype)
    where = rng.random((7, 33)) < 0.6
    where[2] = False  # a fully masked row: dx = 0
    where[3] = False
    where[3, 5] = True  # one live entry
    dx = _check(op, x, (1,), where=where)
    assert np.all(dx[2] == 0)
    _check(op, x.T, (0,), where=where.T)
    _check(op, x, (1,), where=where[0])  # a mask broadcast along the rows (zero strides)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_temperatures(op, dtype, isa):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((5, 300)) * 3).astype(dtype)
    for t in (0.5, 1.0, 3.0):
        _check(op, x, (1,), temperature=t)
    _check(op, x, (1,), temperature=np.array([0.3, 1.0, 2.0, 7.5, 0.9]))
    where = rng.random(x.shape) < 0.7
    _check(op, x, (1,), where=where, temperature=np.array([0.3, 1.0, 2.0, 7.5, 0.9]))
    x3 = x.reshape(5, 3, 100).transpose(1, 0, 2)
    _check(op, x3, (2,), temperature=rng.uniform(0.5, 2, (3, 5)))


@pytest.mark.parametrize("op", OPS)
def test_temperature_cotangent_by_finite_differences(op):
    """dL/dT with L = sum(g * op(x / T)), against a central difference in float64."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 50)) * 2
    t = np.array([0.7, 1.0, 1.6, 3.0])
    g = rng.standard_normal((4,) if op == "logsumexp" else x.shape)
    y = _forward(op, x, (1,), None, t)
    saved, lse = (x, y) if op == "logsumexp" else (y, None)
    _, d_t = backward(op, saved, g, (1,), lse=lse, temperature=t, temperature_grad=True)
    h = 1e-6
    row_losses = [g * _forward(op, x, (1,), None, t + s * h) for s in (1, -1)]
    loss = [v if op == "logsumexp" else np.sum(v, axis=-1) for v in row_losses]
    numeric = (loss[0] - loss[1]) / (2 * h)
    np.testing.assert_allclose(d_t, numeric, rtol=1e-6, atol=1e-8)


def test_confident_log_softmax_keeps_its_gradient():
    """y = log(1 - 4.2e-18) rounds to -4.2e-18 in float32, whose exp is 1: with
    exp(y) - 1 the gradient g - exp(y) sum g of the confident entry would be 0."""
    x = np.array([[0.0, -40.0, -41.0]], np.float32)
    g = np.array([[1.0, 0.0, 0.0]], np.float32)
    y = _forward("log_softmax", x, (1,), None, None)
    dx = backward("log_softmax", y, g, (1,))
    exact = np.exp(-40.0) + np.exp(-41.0)  # 1 - p0, to first order
    assert dx[0, 0] == pytest.approx(exact, rel=1e-5)


def test_special_rows():
    inf, nan = np.inf, np.nan
    x = np.array([[1.0, inf, 2.0], [inf, inf, 0.0], [nan, 1.0, 2.0], [-inf, -inf, -inf]], np.float32)
    g = np.array([[1.0, 2.0, 3.0]] * 4, np.float32)
    y = _forward("softmax", x, (1,), None, None)
    dx = backward("softmax", y, g, (1,))
    assert np.all(dx[0] == 0)  # one +inf entry: the result is constant, derivative 0
    np.testing.assert_array_equal(dx[1], [-0.25, 0.25, 0])  # the two-way tie's derivative
    assert np.all(np.isnan(dx[2])) and np.all(np.isnan(dx[3]))
    ly = _forward("log_softmax", x, (1,), None, None)
    ldx = backward("log_softmax", ly, g, (1,))
    np.testing.assert_array_equal(ldx[0], [1, -4, 3])  # g - onehot * sum g
    assert np.all(np.isnan(ldx[2])) and np.all(np.isnan(ldx[3]))
    lse = _forward("logsumexp", x, (1,), None, None)
    sdx = backward("logsumexp", x, g[:, 0], (1,), lse=lse)
    assert sdx[0, 0] == 0 and sdx[0, 2] == 0 and np.isnan(sdx[0, 1])
    assert np.all(np.isnan(sdx[2])) and np.all(np.isnan(sdx[3]))


def test_raw_binding_writes_a_strided_output():
    """The raw-pointer binding (what non-NumPy callers use) with dx a transposed view."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 9)).astype(np.float32)
    y = _forward("softmax", x, (1,), None, None)
    g = rng.standard_normal(x.shape).astype(np.float32)
    out = np.full((9, 40), np.nan, np.float32)
    dx = out.T
    ptr = lambda a: (a.__array_interface__["data"][0], a.strides)  # noqa: E731
    backward_raw("softmax", _native_loader.NUMPY_DTYPES[x.dtype], x.shape, (1,), ptr(y), ptr(g), ptr(dx))
    np.testing.assert_array_equal(dx, backward("softmax", y, g, (1,)))


def test_threads_do_not_change_results(threads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, 1000)).astype(np.float32)
    y = _forward("log_softmax", x, (1,), None, None)
    g = rng.standard_normal(x.shape).astype(np.float32)
    threads(1)
    one = backward("log_softmax", y, g, (1,))
    threads(2)
    np.testing.assert_array_equal(backward("log_softmax", y, g, (1,)), one)


def test_rejects_bad_arguments():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="g has shape"):
        backward("softmax", x, np.zeros((3, 2), np.float32), (1,))
    with pytest.raises(ValueError, match="needs its output"):
        backward("logsumexp", x, np.zeros(2, np.float32), (1,))
    with pytest.raises(ValueError, match="needs a temperature"):
        backward("softmax", x, x, (1,), temperature_grad=True)
    with pytest.raises(ValueError, match="batch shape"):
        backward("softmax", x, x, (1,), temperature=np.ones(3))
    with pytest.raises(TypeError, match="no native kernel"):
        backward("softmax", x.astype(np.int32), x, (1,))
