"""numpy_native with temperature= (issue 8): op(x / T) for a scalar T, one T per
row, T = +inf and the adaptive temperature, against a float64 / long double
oracle (tests/native/helpers.py: oracle_t, assert_close_t) on every ISA,
algorithm, dtype and layout, plus the contract's special rows."""

import math

import ml_dtypes
import numpy as np
import pytest

import softmaxlib
from softmaxlib import _native_loader
from softmaxlib._backends import numpy_native

from tests.native.helpers import ALGORITHMS, OPS, assert_close_t

DTYPES = (np.float32, np.float64, np.float16, ml_dtypes.bfloat16)
inf, nan = np.inf, np.nan

# Temperatures through each of the kernels' forms (kernels.inc, prepare_temperature):
# fused (float32 window [2^-20, 2^20], float64 [2^-80, 2^80]), plain multiply
# (up to 2^+-100 / 2^+-1000), and the driver's scalar long double path beyond.
T_COMMON = (0.7, 1.0, 2.5, 1e-3, 1e3)
T_FLOAT32_FORMS = (2.0**-20, 2.0**20, 2.0**-21, 3e6, 2.0**-100, 2.0**100, 2.0**-101, 1e35, 1e-300, 1e300)
T_FLOAT64_FORMS = (2.0**-80, 2.0**80, 2.0**-81, 1e30, 2.0**-1000, 2.0**1000, 2.0**-1001, 5e-324, 1.7e308)


def compute(op, x, axes, temperature, where=None, algorithm="auto"):
    y = numpy_native.compute(op, x, tuple(axes), where, algorithm, temperature=temperature)
    assert y is not NotImplemented
    return y


def logits(rng, shape, dtype, scale=4.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS + ("auto",))
@pytest.mark.parametrize("op", OPS)
def test_scalar_temperature(isa, op, algorithm, dtype):
    rng = np.random.default_rng(0)
    extra = {np.float32: T_FLOAT32_FORMS, np.float64: T_FLOAT64_FORMS}.get(dtype, ())
    for t in T_COMMON + extra:
        for shape, axes in [((5, 301), (1,)), ((3, 4, 19), (0, 2)), ((2, 3), (1,))]:
            x = logits(rng, shape, dtype)
            y = compute(op, x, axes, t, algorithm=algorithm)
            assert y.dtype == x.dtype and y.flags.c_contiguous
            assert_close_t(op, y, x, axes, t)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_extreme_logits_and_temperatures(isa, algorithm, dtype):
    # x - max x overflows (6.8e38 in float32): exact 0 unless T is huge, where the
    # scalar path keeps it (e^(-6.8e38 / 1e38) = e^-6.8).
    big = float(np.finfo(dtype).max)
    x = np.array([[big, -big, 0.0, big / 3], [-big, -big / 2, -big / 4, -big], [1e-30, -1e-30, 0, 1e-38]], dtype=dtype)
    temps = (1e-3, 1.0, 1e10, big / 10, big, 1e-30, 1e-40 if dtype == np.float32 else 1e-320)
    for t in temps:
        for op in OPS:
            assert_close_t(op, compute(op, x, (1,), t, algorithm=algorithm), x, (1,), t)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e4, 3e5, 1e7, 1e30])
def test_two_pass_any_scale(isa, scale, dtype):
    # |x / T| up to the two-pass limit runs the fused (p, n) reduction with large n
    # (T ln2 split hi + lo); beyond it, and outside the fused window, the max-based path.
    rng = np.random.default_rng(3)
    x = logits(rng, (3, 2000), dtype, scale)
    for t in (0.7, 3.0, 1e-3, 2.0**-19, 2.0**19, 1e30):
        for op in OPS:
            assert_close_t(op, compute(op, x, (1,), t, algorithm="two-pass"), x, (1,), t)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_special_rows(isa, algorithm, dtype):
    # A finite T keeps +-inf and NaN: the contract's rows are those of T = 1.
    rows = [
        [1.0, inf, 2.0, inf, -inf] + [0.0] * 40,
        [1.0, nan, 2.0] + [0.0] * 42,
        [-inf] * 45,
        [-inf, 3.0] + [-inf] * 43,
    ]
    x = np.array(rows, dtype=np.float64).astype(dtype)
    for t in (0.3, 7.0, 1e-200, 1e200, "adaptive", np.array([0.5, 2.0, 3.0, 1e-9])):
        sm = compute("softmax", x, (1,), t, algorithm=algorithm).astype(np.float64)
        ls = compute("log_softmax", x, (1,), t, algorithm=algorithm).astype(np.float64)
        lse = compute("logsumexp", x, (1,), t, algorithm=algorithm).astype(np.float64)
        assert sm[0, 1] == 0.5 and sm[0, 3] == 0.5 and np.all(np.delete(sm[0], [1, 3]) == 0)
        assert lse[0] == inf and ls[0, 0] == -inf and abs(ls[0, 1] + math.log(2)) < 1e-2
        assert np.isnan(sm[1]).all() and np.isnan(ls[1]).all() and np.isnan(lse[1])
        assert np.isnan(sm[2]).all() and np.isnan(ls[2]).all() and lse[2] == -inf
        # (two-pass forms log_softmax as t/T - log v: 0 within an ulp, not exactly)
        eps = float(ml_dtypes.finfo(dtype).eps)
        assert sm[3, 1] == 1 and np.all(np.delete(sm[3], 1) == 0) and abs(ls[3, 1]) <= eps
        if not isinstance(t, (str, np.ndarray)):
            with np.errstate(over="ignore"):
                expect = float(np.float64(3.0 / t).astype(dtype))  # may round to inf
            assert lse[3] == expect or abs(lse[3] - expect) <= 1e-2 * abs(expect)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_infinite_temperature(isa, algorithm, dtype):
    # The limit T -> inf: uniform over the finite entries (masked ones left out);
    # +inf entries share the mass, NaN rows NaN, all -inf rows 0/0.
    x = np.array(
        [[1.0, -3e4, 2.0, -inf, 5.0, 0.0], [1.0, inf, 2.0, inf, -inf, 0.0], [1.0, nan, 2.0, 0, 0, 0], [-inf] * 6],
        dtype=np.float64,
    ).astype(dtype)
    where = np.ones(x.shape, bool)
    where[0, 0] = False
    for w in (None, where):
        sm = compute("softmax", x, (1,), inf, where=w, algorithm=algorithm).astype(np.float64)
        ls = compute("log_softmax", x, (1,), inf, where=w, algorithm=algorithm).astype(np.float64)
        lse = compute("logsumexp", x, (1,), inf, where=w, algorithm=algorithm).astype(np.float64)
        k = 5 if w is None else 4  # finite, unmasked entries of row 0
        live = np.isfinite(x[0].astype(np.float64)) & (True if w is None else w[0])
        expect = np.where(live, 1 / k, 0).astype(dtype).astype(np.float64)
        np.testing.assert_array_equal(sm[0], expect)
        np.testing.assert_array_equal(ls[0], np.where(live, -np.log(k), -inf).astype(dtype).astype(np.float64))
        assert lse[0] == np.float64(np.log(k).astype(dtype))
        assert sm[1].tolist() == [0, 0.5, 0, 0.5, 0, 0] and lse[1] == inf
        assert np.isnan(sm[2]).all() and np.isnan(lse[2])
        assert np.isnan(sm[3]).all() and lse[3] == -inf


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_where(isa, algorithm, dtype):
    rng = np.random.default_rng(2)
    x = logits(rng, (6, 300), dtype)
    x[0, 3] = np.nan  # masked NaN and +inf are left out
    x[0, 4] = np.inf
    where = rng.random((6, 300)) < 0.6
    where[0, 3:5] = False
    where[1] = False  # fully masked row
    for t in (0.6, np.linspace(0.2, 5, 6), inf, "adaptive"):
        for op in OPS:
            y = compute(op, x, (1,), t, where=where, algorithm=algorithm).astype(np.float64)
            if op == "softmax":
                assert np.all(y[~where] == 0) and np.all(y[1] == 0)
            elif op == "log_softmax":
                assert np.all(y[~where] == -np.inf)
            else:
                assert y[1] == -np.inf
            live = where.any(axis=1)
            tl = t[live] if isinstance(t, np.ndarray) else t
            yl = y[live] if op == "logsumexp" else np.where(where, y, 0 if op == "softmax" else -np.inf)[live]
            assert_close_t(op, yl.astype(dtype), x[live], (1,), tl, where[live])


LAYOUTS = {
    "last": lambda a: (a, (2,)),
    "first": lambda a: (a, (0,)),
    "tuple": lambda a: (a, (0, 2)),
    "all": lambda a: (a, (0, 1, 2)),
    "fortran": lambda a: (np.asfortranarray(a), (2,)),
    "negative-tuple": lambda a: (a[:, ::-2, ::-1], (1, 2)),
    "transposed": lambda a: (a.transpose(2, 0, 1), (0,)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_per_row_temperatures_and_layouts(isa, layout, algorithm):
    rng = np.random.default_rng(1)
    x, axes = LAYOUTS[layout](logits(rng, (4, 6, 37), np.float32))
    batch = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    t = np.exp(rng.uniform(-3, 3, batch))
    if t.size > 2:
        t.flat[1] = inf
        t.flat[2] = 1e-30  # the scalar path, per row
    for op in OPS:
        y = compute(op, x, axes, t, algorithm=algorithm)
        assert_close_t(op, y, np.ascontiguousarray(x), axes, t)
        # layout never changes the result, and row r is the scalar result with T = t[r]
        np.testing.assert_array_equal(y, compute(op, np.ascontiguousarray(x), axes, t, algorithm=algorithm))
        if layout == "last":
            for r in np.ndindex(*batch):
                yr = compute(op, np.ascontiguousarray(x[r]), (0,), float(t[r]), algorithm=algorithm)
                assert y[r].tobytes() == yr.tobytes()
    # a 0-d (batch-shape) array for a full reduction, and an integer array
    if not batch:
        y = compute("softmax", x, axes, np.array(3.0))
        assert_close_t("softmax", y, np.ascontiguousarray(x), axes, 3.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("op", OPS)
def test_adaptive(isa, op, algorithm, dtype):
    rng = np.random.default_rng(3)
    # Rows of every entropy: sharp (H < 0.5, beta = 1), moderate (beta > 1), flat
    # (p(H) < 1, beta = 1), short and long.
    x = np.concatenate([logits(rng, (3, 400), np.float64, s) for s in (30.0, 3.0, 1.0, 0.2)])
    x = np.concatenate([x, np.tile(np.linspace(-6, 0, 8), (12, 50))[:, :400] * 2], axis=0).astype(dtype)
    y = compute(op, x, (1,), "adaptive", algorithm=algorithm)
    assert_close_t(op, y, x, (1,), "adaptive")
    x3 = logits(rng, (2, 5, 9), dtype, 2.0)
    assert_close_t(op, compute(op, x3, (0, 2), "adaptive", algorithm=algorithm), x3, (0, 2), "adaptive")


def test_adaptive_beta_is_the_papers(isa):
    # Two-entry rows [0, -a]: H is known in closed form, so beta and the result are.
    a = np.linspace(0.01, 6, 200)
    x = np.stack([np.zeros_like(a), -a], axis=1)
    p = 1 / (1 + np.exp(-a))
    h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    poly = np.polyval([-0.037, 0.481, -2.3, 4.917, -1.791], h)
    beta = np.where(h > 0.5, np.maximum(1, poly), 1)
    y = compute("logsumexp", x, (1,), "adaptive")
    np.testing.assert_allclose(y, np.logaddexp(0, -beta * a), rtol=1e-14, atol=1e-14)
    # (2-entry rows reach H = log 2 < 0.95 at most, where beta = 1; rows of 8 equal
    # entries and one above have H up to log 9, beta up to p(2.2) ~ 2.1)
    b = np.linspace(0, 8, 100)
    x8 = np.concatenate([b[:, None], np.zeros((100, 8))], axis=1)
    q = np.exp(x8 - b[:, None])
    q /= q.sum(axis=1, keepdims=True)
    h8 = -np.sum(q * np.log(q), axis=1)
    beta8 = np.where(h8 > 0.5, np.maximum(1, np.polyval([-0.037, 0.481, -2.3, 4.917, -1.791], h8)), 1)
    assert beta8.max() > 2
    expect = beta8 * b + np.log1p(8 * np.exp(-beta8 * b))
    np.testing.assert_allclose(compute("logsumexp", x8, (1,), "adaptive"), expect, rtol=1e-13)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_long_rows(isa, algorithm):
    # Rows of 2^20 + 3 (split into chunks over the pool): accuracy of the merged sums.
    rng = np.random.default_rng(4)
    n = (1 << 20) + 3
    x = logits(rng, (1, n), np.float32, 3.0)
    for t in (0.7, "adaptive"):
        y = compute("softmax", x, (1,), t, algorithm=algorithm)
        err = assert_close_t("softmax", y, x, (1,), t)
        assert err < 2e-5, err


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bitwise_identical_for_any_thread_count(isa, threads, op, algorithm):
    rng = np.random.default_rng(7)
    long_row = logits(rng, (1, 2**20 + 1), np.float32)      # chunk-parallel
    many_rows = logits(rng, (513, 301), np.float32)          # row-parallel
    strided = np.asfortranarray(many_rows)                   # gathered rows
    per_row = np.exp(rng.uniform(-2, 2, 513))
    cases = [(long_row, 0.7), (long_row, "adaptive"), (many_rows, per_row), (strided, per_row),
             (many_rows, "adaptive")]
    results = {}
    for n in (1, 2, 3):
        threads(n)
        results[n] = [compute(op, a, (1,), t, algorithm=algorithm) for a, t in cases]
    for n, ys in results.items():
        for y, y1 in zip(ys, results[1]):
            assert y.tobytes() == y1.tobytes(), f"{n} threads differ from 1"


def test_temperatures_are_checked_before_the_kernels():
    # The backend translates a checked temperature; what the checks refuse never reaches it.
    x = np.zeros((2, 3), np.float32)
    for t in ("sharp", np.zeros((3,)), np.ones((2, 3)), 1j, -1.0, 0.0, True):
        with pytest.raises((TypeError, ValueError)):
            softmaxlib.softmax(x, temperature=t)
    # one per row: the batch shape, any real dtype (integers promoted)
    y = numpy_native.compute("softmax", x, (1,), None, "auto", temperature=np.array([1, 2]))
    np.testing.assert_allclose(y, 1 / 3, rtol=1e-6)


def test_kernel_names():
    names = numpy_native.info()["kernels"]
    assert {"raddstoreexpminusmax_t", "raddexpminusmax_entropy", "ronlineexp_t"} <= set(names)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=lambda d: np.dtype(d).name)
def test_kernel_exp_ulp(isa, dtype):
    # The temperature kernels' e^(d/T) (test-only binding; it returns e^(d/T) 2^shift,
    # see temperature_shift in kernels.inc) against the correctly rounded value
    # (float64 / long double oracle), d <= 0, over the fused window, its edges and
    # the plain (multiply) form beyond it; results down to the smallest normal.
    # float32: <= 1 ulp in the fused window, <= 4 ulp beyond it (the multiply form
    # runs the max-based kernels' exp, whose one-constant reduction allows 4);
    # float64: <= 4 ulp (the plain float64 exp measures 2).
    k = _native_loader.kernels
    f, wide, top, bound = ((k._exp_t_f32, np.float64, 87.4, 1) if dtype == np.float32
                           else (k._exp_t_f64, np.longdouble, 708.4, 4))
    rng = np.random.default_rng(11)
    for t in (1.0, 0.7, 3.0, 1e-3, 1e3, 0.1, 2.0**-20, 2.0**20, 2.0**-21, 2.0**21, 2.0**-90, 2.0**90):
        d = (-rng.uniform(0, top, 100_000) * t).astype(dtype)
        y, shift = f(d, t)
        y = np.ldexp(y.astype(wide), -shift)
        exact = np.exp(d.astype(wide) / wide(t))
        keep = exact >= np.finfo(dtype).tiny
        rounded = exact[keep].astype(dtype)
        err = np.abs(y[keep] - rounded) / np.spacing(rounded)
        fused = dtype == np.float64 or 2.0**-20 <= t <= 2.0**20
        assert err.max() <= (bound if fused else 4), (t, float(err.max()))
    assert f(np.zeros(3, dtype), 1e-305 if dtype == np.float64 else 1e-35) is None  # the driver's scalar path


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_results_near_underflow(isa, algorithm):
    # Results just above the smallest normal number with a small T: there the
    # non-vscalef fused exp once lost ~1/T ulp (t 2^n subnormal; see temperature_shift).
    rng = np.random.default_rng(12)
    for dtype, top in ((np.float32, 87.3), (np.float64, 708.3)):
        for t in (1e-3, 2.0**-20, 0.05, 3.0):
            x = np.concatenate([[0.0], -rng.uniform(top - 8, top, 500) * t]).astype(dtype)[None]
            for op in ("softmax", "log_softmax"):
                assert_close_t(op, compute(op, x, (1,), t, algorithm=algorithm), x, (1,), t)


def test_adaptive_polynomial_is_the_references():
    # C++ keeps its own copy of the adaptive temperature's fit (accumulators.h);
    # the reference's is the definition.
    from softmaxlib import _reference

    k = _native_loader.kernels
    assert k.ADAPTIVE_POLYNOMIAL == tuple(_reference.ADAPTIVE_POLYNOMIAL)
    assert k.ADAPTIVE_MIN_ENTROPY == _reference.ADAPTIVE_MIN_ENTROPY
