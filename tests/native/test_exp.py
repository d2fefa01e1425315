"""The kernels' own exp, through the test-only bindings of softmaxlib._kernels.

Exhaustive: every float32 x whose exp is a normal float32, on every ISA unit the
CPU runs, in the plain form and in the (p, n) form of the two-pass kernels (<= 1
ulp), and in the max-based kernels' x <= 0 form (<= 4 ulp, 1 ulp for |x| < 16). The
float64 np.exp rounded to float32 is the correctly rounded result (double
rounding could only differ on astronomically rare inputs; the bound below
allows 1 ulp anyway).
"""

import numpy as np
import pytest

from softmaxlib import _native_loader

K = _native_loader.kernels
F32 = np.finfo(np.float32)
LO = np.float32(-87.33654)   # exp(LO) >= smallest normal float32
HI = np.float32(88.72283)    # exp(HI) <= largest float32


def _ulp_errors(x):
    """Max ulp distance to the correctly rounded result: plain exp, (p, n) form,
    and the kernels' exp for x <= 0."""
    exact = np.exp(x.astype(np.float64))
    keep = (exact >= F32.tiny) & (exact <= F32.max)
    x, exact = x[keep], exact[keep]
    if x.size == 0:
        return 0, 0, 0
    rounded = exact.astype(np.float32)
    ulp = np.spacing(rounded).astype(np.float64)
    plain = np.abs(K._exp_f32(x).astype(np.float64) - rounded) / ulp
    p, n = K._exp_pn_f32(x)
    pn = np.ldexp(p.astype(np.float64), n.astype(np.int64))  # exact: a float32 times 2^n
    pn = np.abs(pn - rounded) / ulp
    neg = x <= 0
    nonpos = np.abs(K._exp_nonpositive_f32(x[neg]).astype(np.float64) - rounded[neg]) / ulp[neg]
    return plain.max(), pn.max(), nonpos.max() if nonpos.size else 0


def _sweep(step):
    """All (step=1) or every step-th float32 with a normal exp, in blocks."""
    pos_end = int(HI.view(np.uint32)) + 1
    neg_end = int(np.float32(LO).view(np.uint32)) + 1
    worst = np.zeros(3)
    for start_bits, end_bits in ((0, pos_end), (0x80000000, neg_end)):
        for lo in range(start_bits, end_bits, 1 << 24):
            hi = min(lo + (1 << 24), end_bits)
            x = np.arange(lo, hi, step, dtype=np.uint32).view(np.float32)
            worst = np.maximum(worst, _ulp_errors(x))
    return worst


# Max ulp: the plain form and the two-pass kernels' (p, n) form (the design's
# target), and the max-based kernels' x <= 0 form, whose one-constant range
# reduction adds |n| (ln2 - float(ln2)) relative (see vexp_nonpositive).
BOUNDS = np.array([1.0, 1.0, 4.0])


def test_exp_sampled(isa):
    worst = _sweep(step=997)
    assert np.all(worst <= BOUNDS), worst


@pytest.mark.slow
def test_exp_exhaustive(isa):
    plain, pn, nonpos = _sweep(step=1)
    print(f"\n{isa}: max ulp vs correctly rounded: plain {plain}, (p, n) {pn}, x <= 0 form {nonpos}")
    assert np.all(np.array([plain, pn, nonpos]) <= BOUNDS), (plain, pn, nonpos)


def test_exp_edges(isa):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 89.0, 1e30, -104.0, -1e30, -87.5, -100.0, -103.2],
                 dtype=np.float32)
    y = K._exp_f32(x)
    assert y[0] == 1 and y[1] == 1
    assert y[2] == np.inf and y[3] == 0 and np.isnan(y[4])
    assert y[5] == np.inf and y[6] == np.inf
    assert y[7] == 0 and y[8] == 0
    # subnormal results: within the smallest normal absolutely, never garbage
    exact = np.exp(x[9:].astype(np.float64))
    assert np.all(np.abs(y[9:] - exact) <= F32.tiny)
    assert np.all(y[9:] >= 0)


def test_exp_nonpositive_underflow(isa):
    x = np.array([-87.0, -87.4, -88.0, -100.0, -104.0, -1e30, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)
    y = K._exp_nonpositive_f32(x)
    exact = np.exp(x.astype(np.float64))
    assert np.all(np.abs(y[:7] - exact[:7]) <= F32.tiny) and np.all(y[:7] >= 0)
    assert np.isnan(y[7]) and y[8] == 1 and y[9] == 1


def test_exp_f64(isa):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-745, 709, 200_000), rng.uniform(-1, 1, 10_000)])
    y = K._exp_f64(x)
    exact = np.exp(x.astype(np.longdouble))
    rel = np.abs((y - exact) / exact)
    normal = exact >= np.finfo(np.float64).tiny
    assert rel[normal].max() < 4e-16
    assert np.all(np.abs(y[~normal] - exact[~normal]) <= np.finfo(np.float64).tiny)
    assert K._exp_f64(np.array([np.inf, -np.inf, 710.0, -746.0]))[[0, 1, 2, 3]].tolist() == [np.inf, 0, np.inf, 0]
