"""Oracle and tolerance helpers of the native kernel tests."""

import numpy as np

ALGORITHMS = ("three-pass", "three-pass-reload", "online", "two-pass")
OPS = ("softmax", "log_softmax", "logsumexp")


def oracle(op, x, axes, where=None):
    """float64 (long double for float64 input) reference of op over axes."""
    wide = np.longdouble if x.dtype in (np.float64, np.longdouble) else np.float64
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
    _assert_within_bounds(op, y, exact, x.dtype, rtol, cond, tiny, dist)


def _assert_within_bounds(op, y, exact, dtype, rtol, cond, tiny, dist):
    """The per-element check of assert_close and assert_close_t; returns ``exact`` clamped.

    softmax: relative ``rtol + cond * dist`` (absolute ``tiny`` below it); the others:
    ``rtol`` relative to max(1, |exact|) plus ``cond * dist``.  ``dist`` is each
    entry's (scaled) distance to the row's max, where the inputs' rounding enters.
    """
    import ml_dtypes

    # a result beyond the dtype's range rounds to +-inf (the contract)
    top = float(ml_dtypes.finfo(dtype).max)
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
    return exact


# --------------------------------------------------------------------------- temperature
# op(x / T) (issue 8): T a scalar, one per row (batch shape), +inf, or "adaptive".

ADAPTIVE_POLY = (-0.037, 0.481, -2.3, 4.917, -1.791)  # Velickovic et al. 2024, highest power first


def adaptive_beta(x, axes, where=None):
    """beta per row (keepdims) from the exact entropy of softmax(x), in the oracle's precision."""
    p = oracle("softmax", x, axes, where)
    logp = oracle("log_softmax", x, axes, where)
    with np.errstate(invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * logp, 0), axis=axes, keepdims=True)
    poly = np.polyval(np.asarray(ADAPTIVE_POLY, dtype=h.dtype), h)
    return np.where(h > 0.5, np.maximum(1, poly), 1)


def scale_of(x, axes, temperature, where=None):
    """1/T (keepdims, the oracle's precision) for a temperature argument."""
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    if isinstance(temperature, str):
        return adaptive_beta(x, axes, where).astype(wide)
    t = np.asarray(temperature, dtype=wide)
    if t.ndim:
        t = np.expand_dims(t, axes)
    with np.errstate(divide="ignore"):
        return 1 / t


def oracle_t(op, x, axes, temperature, where=None):
    """op(x / T) in float64 (long double for float64 x); T = inf is the uniform limit."""
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    inv = np.broadcast_to(scale_of(x, axes, temperature, where), _keepdims(x.shape, axes))
    xw = np.asarray(x).astype(wide)
    if where is not None:
        xw = np.where(where, xw, -np.inf)
    with np.errstate(invalid="ignore"):
        # T = inf: finite entries become 0 (uniform), +-inf stay (x * 0 would be NaN)
        z = np.where(np.isfinite(xw), xw * inv, xw)
        z = np.where((inv == 0) & np.isfinite(xw), 0, z)
    return oracle(op, z, axes, where)


def _keepdims(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def assert_close_t(op, y, x, axes, temperature, where=None, cond=None):
    """Check y = op(x / T) against oracle_t: relative 1e-6 (float32; 1e-14 float64) plus
    the conditioning term cond * |x_i - max x| / T, cond = 2^-22 (float32) or 2^-51
    (float64) by default: x_i - max x and its product by 1/T are each rounded once.
    Adaptive: |x_i - max x| beta + E_p[|x - max x| beta] (beta's own rounding).
    Returns the largest relative error seen (max_rel_error)."""
    exact = oracle_t(op, x, axes, temperature, where)
    rtol, cond0, tiny = tolerances(x.dtype)
    cond = 2 * cond0 if cond is None else cond
    y = np.asarray(y).astype(exact.dtype)
    assert y.shape == exact.shape
    xw = np.asarray(x).astype(exact.dtype)
    if where is not None:
        xw = np.where(where, xw, -np.inf)
    inv = scale_of(x, axes, temperature, where)
    with np.errstate(invalid="ignore"):
        dist = np.abs(xw - np.max(xw, axis=axes, keepdims=True)) * inv
    dist = np.where(np.isfinite(dist), dist, 0)
    if isinstance(temperature, str):
        # beta is itself rounded (relative error ~eps even when computed exactly
        # from x), which moves every beta (x_i - m) by |z_i - E_p z| times it.
        p = oracle_t("softmax", x, axes, temperature, where)
        with np.errstate(invalid="ignore"):
            mean = np.sum(np.where(p > 0, p * dist, 0), axis=axes, keepdims=True)
        dist = dist + np.where(np.isfinite(mean), mean, 0)
    if op == "logsumexp":
        dist = np.max(dist, axis=axes)
    exact = _assert_within_bounds(op, y, exact, x.dtype, rtol, cond, tiny, dist)
    return max_rel_error(op, y, exact, tiny)


def max_rel_error(op, y, exact, tiny):
    """Largest relative (softmax) or max(1,|exact|)-relative error over finite, normal entries."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if op == "softmax":
            keep = np.isfinite(exact) & (exact >= tiny)
            err = np.abs(y - exact) / np.where(keep, exact, 1)
        else:
            keep = np.isfinite(exact)
            err = np.abs(y - exact) / np.maximum(1, np.abs(np.where(keep, exact, 1)))
    return float(np.max(np.where(keep, err, 0), initial=0))
