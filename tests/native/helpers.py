"""Oracle and tolerance helpers of the native kernel tests."""

import numpy as np

ALGORITHMS = ("three-pass", "three-pass-reload", "online", "two-pass")
OPS = ("softmax", "log_softmax", "logsumexp")


def oracle(op, x, axes, where=None):
    """float64 (long double for float64 input) reference of op over axes."""
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    x = np.asarray(x).astype(wide)
    if where is not None:
        x = np.where(where, x, -np.inf)
    m = np.max(x, axis=axes, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        e = np.exp(x - m)
        s = np.sum(e, axis=axes, keepdims=True)
        if op == "softmax":
            return e / s
        if op == "log_softmax":
            return (x - m) - np.log(s)
        return np.squeeze(m + np.log(s), axis=axes)


def tolerances(dtype):
    """(rtol, cond, tiny) of the design's accuracy targets for a dtype."""
    name = np.dtype(dtype).name
    if name == "float64":
        return 1e-14, 2.0**-52, np.finfo(np.float64).tiny
    if name == "float32":
        return 1e-6, 2.0**-23, np.finfo(np.float32).tiny
    if name == "float16":  # computed in float32, rounded once
        return 2.0**-11, 2.0**-23, float(np.finfo(np.float16).tiny)
    return 2.0**-8, 2.0**-23, 2.0**-126  # bfloat16


def assert_close(op, y, x, axes, where=None):
    """Check y = op(x) against the oracle with the design's per-element bounds."""
    exact = oracle(op, x, axes, where)
    rtol, cond, tiny = tolerances(x.dtype)
    y = np.asarray(y).astype(exact.dtype)
    assert y.shape == exact.shape
    xw = np.asarray(x).astype(exact.dtype)
    if where is not None:
        xw = np.where(where, xw, -np.inf)
    with np.errstate(invalid="ignore"):
        dist = np.abs(xw - np.max(xw, axis=axes, keepdims=True))
    dist = np.where(np.isfinite(dist), dist, 0)
    if op == "logsumexp":
        dist = np.max(dist, axis=axes)
    # a result beyond the dtype's range rounds to +-inf (the contract)
    import ml_dtypes

    top = float(ml_dtypes.finfo(x.dtype).max)
    exact = np.where(exact > top, np.inf, np.where(exact < -top, -np.inf, exact))
    with np.errstate(invalid="ignore"):
        err = np.abs(y - exact)
        if op == "softmax":
            bound = np.where(exact < tiny, tiny, (rtol + cond * dist) * exact)
        else:
            bound = rtol * np.maximum(1, np.abs(exact)) + cond * dist
        same_special = (np.isnan(y) & np.isnan(exact)) | (y == exact)
        ok = same_special | (err <= bound)
    assert ok.all(), (
        f"{op}: {np.count_nonzero(~ok)} bad; worst got {y[~ok][:3]}, exact {exact[~ok][:3]}"
    )
