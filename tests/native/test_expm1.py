"""The backward kernels' vector expm1 (log_softmax's backward), through the
test-only bindings of softmaxlib._kernels, on every ISA unit the CPU runs.

float32 against float64's expm1 rounded (the correctly rounded result up to
double rounding, which the bound's slack covers): at most 1 ulp for x <= 0
(every value log_softmax's output takes) and 1.5 ulp above 0, on a sample of
every float32 in [-32, 89] and on adversarial points. float64 against mpmath:
at most 2 ulp. The ulp is that of the exact result, so near 0 the bound is
relative to x: what exp(y) - 1 would lose.
"""

import mpmath
import numpy as np
import pytest

from softmaxlib import _native_loader

K = _native_loader.kernels
LN2 = np.log(2.0)


def _adversarial(dtype):
    """Near 0 (subnormal to 2^-1), both sides of the range reduction's
    boundaries (k + 1/2) ln2, the -1 threshold and the overflow threshold."""
    info = np.finfo(dtype)
    tiny = [info.smallest_subnormal, info.tiny, *(2.0 ** -np.arange(1, 60, 3))]
    near_zero = np.array(tiny, dtype=dtype)
    bounds = ((np.arange(-40, 130) + 0.5) * LN2).astype(dtype)
    around = (bounds[:, None] + np.arange(-3, 4, dtype=dtype) * np.spacing(bounds)[:, None]).ravel()
    thresholds = np.array([-17.3, -17.33, -17.4, -36.7, -36.8, 88.72, 88.7228, 709.78], dtype=dtype)
    x = np.concatenate([near_zero, -near_zero, around, thresholds])
    return x[np.isfinite(x)]


def _ulp_errors_f32(x):
    exact = np.expm1(x.astype(np.float64))
    with np.errstate(over="ignore"):
        rounded = exact.astype(np.float32)
    finite = np.isfinite(rounded)
    ulp = np.spacing(np.abs(rounded[finite])).astype(np.float64)
    got = K._expm1_f32(x)
    assert np.all(got[~finite] == np.inf)
    return np.abs(got[finite].astype(np.float64) - exact[finite]) / ulp, x[finite]


@pytest.mark.parametrize("lo, hi, bound", [(-32.0, 0.0, 1.0), (0.0, 89.0, 1.5)])
def test_expm1_f32_sampled(isa, lo, hi, bound):
    # bit patterns are ordered like |x| within one sign: [-32, -0] is 0x80000000 .. bits(-32)
    a, b = (0x80000000, int(np.float32(lo).view(np.uint32))) if lo < 0 else (0, int(np.float32(hi).view(np.uint32)))
    x = np.arange(a, b + 1, 997, dtype=np.uint32).view(np.float32)
    err, where = _ulp_errors_f32(x)
    assert err.max() <= bound, f"{err.max():.3f} ulp at x = {where[np.argmax(err)]!r}"


def test_expm1_f32_adversarial(isa):
    x = _adversarial(np.float32)
    err, where = _ulp_errors_f32(x)
    bound = np.where(where <= 0, 1.0, 1.5)
    assert np.all(err <= bound), f"{err.max():.3f} ulp at x = {where[np.argmax(err - bound)]!r}"


def test_expm1_f64_against_mpmath(isa):
    rng = np.random.default_rng(7)
    x = np.concatenate([_adversarial(np.float64), rng.uniform(-64, 709, 1500), rng.uniform(-1.1, 1.1, 1500),
                        rng.choice([-1, 1], 500) * 10.0 ** rng.uniform(-300, 0, 500)])
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.expm1(mpmath.mpf(float(v)))) for v in x])
    finite = np.isfinite(exact)
    got = K._expm1_f64(x)
    assert np.all(got[~finite] == np.inf)
    err = np.abs(got[finite] - exact[finite]) / np.spacing(np.abs(exact[finite]))
    assert err.max() <= 2.0, f"{err.max():.3f} ulp at x = {x[finite][np.argmax(err)]!r}"


@pytest.mark.parametrize("expm1, dtype", [("_expm1_f32", np.float32), ("_expm1_f64", np.float64)])
def test_expm1_special_values(isa, expm1, dtype):
    x = np.array([0.0, -0.0, -np.inf, np.inf, np.nan, -1e4, 1e4], dtype=dtype)
    y = getattr(K, expm1)(x)
    assert y[0] == 0 and y[1] == 0
    assert y[2] == -1 and y[3] == np.inf and np.isnan(y[4]) and y[5] == -1 and y[6] == np.inf
