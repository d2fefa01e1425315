"""softmaxlib._backends.numpy_native against a float64 / long double oracle:
every algorithm, op, dtype, ISA and layout, the contract's special values,
masks, long rows."""

import ml_dtypes
import numpy as np
import pytest

from softmaxlib import _native_loader
from softmaxlib._backends import numpy_native

from tests.native.helpers import ALGORITHMS, OPS, assert_close

DTYPES = (np.float32, np.float64, np.float16, ml_dtypes.bfloat16)


def compute(op, x, axes, where=None, algorithm="auto"):
    y = numpy_native.compute(op, x, tuple(axes), where, algorithm)
    assert y is not NotImplemented
    return y


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS + ("auto",))
@pytest.mark.parametrize("op", OPS)
def test_random_rows(isa, op, algorithm, dtype):
    rng = np.random.default_rng(0)
    for shape, axes in [((7, 1000), (1,)), ((3, 5, 70), (0, 2)), ((2, 9000), (1,)), ((50, 3), (0,)),
                        ((4,), (0,)), ((1, 1), (1,)), ((3, 33), (1,))]:
        x = (rng.standard_normal(shape) * 5).astype(dtype)
        y = compute(op, x, axes, algorithm=algorithm)
        assert y.dtype == x.dtype and y.flags.c_contiguous
        assert_close(op, y, x, axes)


LAYOUTS = {
    "last": lambda a: (a, (2,)),
    "first": lambda a: (a, (0,)),
    "middle": lambda a: (a, (1,)),
    "tuple": lambda a: (a, (0, 2)),
    "all": lambda a: (a, (0, 1, 2)),
    "fortran": lambda a: (np.asfortranarray(a), (2,)),
    "negative": lambda a: (a[::-1, :, ::-1], (2,)),
    "negative-tuple": lambda a: (a[:, ::-2, ::-1], (1, 2)),
    "sliced": lambda a: (a[:, 1::2, 3:], (2,)),
    "transposed": lambda a: (a.transpose(2, 0, 1), (0,)),
    "broadcast": lambda a: (np.broadcast_to(a[:, :1, :], a.shape), (1,)),
    "broadcast-row": lambda a: (np.broadcast_to(a[:, :, :1], a.shape), (2,)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_layouts(isa, layout, op, algorithm):
    rng = np.random.default_rng(1)
    base = (rng.standard_normal((4, 6, 37)) * 3).astype(np.float32)
    x, axes = LAYOUTS[layout](base)
    y = compute(op, x, axes, algorithm=algorithm)
    assert_close(op, y, np.ascontiguousarray(x), axes)
    # same values as the contiguous copy (layout never changes the result)
    y2 = compute(op, np.ascontiguousarray(x), axes, algorithm=algorithm)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_special_values(isa, algorithm, dtype):
    inf, nan = np.inf, np.nan
    big = float(ml_dtypes.finfo(dtype).max) if dtype in (np.float32, ml_dtypes.bfloat16) else None
    rows = [  # 45 entries each: several vectors plus a tail
        [1.0, inf, 2.0, inf, -inf] + [0.0] * 40,
        [1.0, nan, 2.0] + [0.0] * 42,
        [-inf] * 45,
        [inf, nan] + [0.0] * 43,
        [-inf, 3.0] + [-inf] * 43,
    ]
    x = np.array(rows, dtype=np.float64).astype(dtype)
    sm = compute("softmax", x, (1,), algorithm=algorithm).astype(np.float64)
    ls = compute("log_softmax", x, (1,), algorithm=algorithm).astype(np.float64)
    lse = compute("logsumexp", x, (1,), algorithm=algorithm).astype(np.float64)
    # +inf entries share the mass
    assert sm[0, 1] == 0.5 and sm[0, 3] == 0.5 and np.all(sm[0, [0, 2, 4]] == 0) and np.all(sm[0, 5:] == 0)
    assert lse[0] == inf
    assert abs(ls[0, 1] + np.log(2)) < 1e-2 and ls[0, 0] == -inf
    # NaN row; all -inf row
    for r in (1, 3):
        assert np.isnan(sm[r]).all() and np.isnan(ls[r]).all() and np.isnan(lse[r])
    assert np.isnan(sm[2]).all() and np.isnan(ls[2]).all() and lse[2] == -inf
    assert sm[4, 1] == 1 and np.all(sm[4, [0, 2]] == 0) and ls[4, 1] == 0 and lse[4] == 3
    if big is not None:
        x = np.array([[big, -big], [-big, -big], [big, big]], dtype=dtype)
        for alg_op in OPS:
            y = compute(alg_op, x, (1,), algorithm=algorithm).astype(np.float64)
            if alg_op == "softmax":
                assert y[0].tolist() == [1, 0] and np.allclose(y[1:], 0.5)
            elif alg_op == "log_softmax":
                assert y[0, 0] == 0 and y[0, 1] == -inf
            assert_close(alg_op, compute(alg_op, x, (1,), algorithm=algorithm), x, (1,))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_where(isa, algorithm, dtype):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 300)) * 4).astype(dtype)
    x[0, 3] = np.nan  # masked NaN and +inf are ignored
    x[0, 4] = np.inf
    where = rng.random((6, 300)) < 0.6
    where[0, 3:5] = False
    where[1] = False  # fully masked row
    for op in OPS:
        y = compute(op, x, (1,), where=where, algorithm=algorithm)
        y64 = y.astype(np.float64)
        if op == "softmax":
            assert np.all(y64[~where] == 0) and np.all(y64[1] == 0)
        elif op == "log_softmax":
            assert np.all(y64[~where] == -np.inf)
        else:
            assert y64[1] == -np.inf
        live = where.any(axis=1)
        if op == "logsumexp":
            assert_close(op, y[live], x[live], (1,), where[live])
        else:
            assert_close(op, np.where(where, y, 0 if op == "softmax" else -np.inf)[live], x[live], (1,), where[live])
    # a broadcast (zero-stride) mask over a middle axis
    row = rng.random((1, 300)) < 0.5
    row[0, 3:5] = False
    w2 = np.broadcast_to(row, x.shape)
    assert_close("softmax", compute("softmax", x, (1,), where=w2, algorithm=algorithm), x, (1,), w2)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e4, 3e5, 1e7, 1e30])
def test_two_pass_any_scale(isa, scale):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 5000)) * scale).astype(np.float32)
    for op in OPS:
        assert_close(op, compute(op, x, (1,), algorithm="two-pass"), x, (1,))


def test_log_softmax_no_cancellation(isa):
    # x_i - lse would lose everything here; the exponent-tracking form does not.
    x = np.array([[1e5, 1e5 - 1.0, 1e5 - 2.0, 1e5 - 30.0]], dtype=np.float32)
    for algorithm in ALGORITHMS:
        assert_close("log_softmax", compute("log_softmax", x, (1,), algorithm=algorithm), x, (1,))


def test_long_row_two_pass_1e6(isa):
    rng = np.random.default_rng(4)
    n = 1 << 20
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    y = compute("softmax", x, (0,), algorithm="two-pass").astype(np.float64)
    exact = oracle_softmax(x)
    rel = np.abs(y - exact) / exact
    assert rel.max() <= 1e-6, rel.max()


@pytest.mark.slow
def test_long_row_two_pass_2_24():
    rng = np.random.default_rng(5)
    n = 1 << 24
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    y = compute("softmax", x, (0,), algorithm="two-pass").astype(np.float64)
    rel = np.abs(y - oracle_softmax(x)) / oracle_softmax(x)
    assert rel.max() <= 1e-6, rel.max()


def oracle_softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max())
    return e / np.sum(e)


def test_not_implemented_cases():
    assert numpy_native.compute("softmax", np.zeros(3, np.int32), (0,), None, "auto") is NotImplemented
    assert numpy_native.compute("softmax", np.zeros(3, np.complex64), (0,), None, "auto") is NotImplemented


def test_info():
    info = numpy_native.info()
    assert info["available"]
    assert info["isa"] in info["isas_supported"]
    assert "baseline" in info["isas_compiled"]
    assert "raddextexp" in info["kernels"] and info["threads"] >= 1


def test_auto_takes_two_pass_once_the_data_leaves_l2():
    info = numpy_native.info()
    limit = info["auto_two_pass_min_row_bytes"]
    assert limit == max(2 << 20, info["l2_cache_bytes"])
    auto = numpy_native.auto_algorithm
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    # Everything in L2: the max-based algorithms.
    for op, in_cache in _native_loader.AUTO_IN_CACHE.items():
        assert auto(op, f32, 64 << 10, 1 << 20) == in_cache
    # A row longer than L2: two-pass for every op.
    for op in ("softmax", "log_softmax", "logsumexp"):
        assert auto(op, f32, limit, limit) == "two-pass"
        assert auto(op, f64, limit, 4 * limit) == "two-pass"
    # Many shorter rows beyond L2: logsumexp always, log_softmax from 16 KiB rows;
    # within L3 only where the L2 holds 2 MiB (with less, the max-based algorithms).
    small_l2 = info["l2_cache_bytes"] < 2 << 20
    assert auto("logsumexp", f32, 64, 4 * limit) == "two-pass"
    assert auto("log_softmax", f32, 4 << 10, 4 * limit) == "three-pass"
    assert auto("log_softmax", f32, 16 << 10, 4 * limit) == ("three-pass" if small_l2 else "two-pass")
    assert auto("log_softmax", f32, 16 << 10, 64 << 20) == "two-pass"
    # softmax: float32 rows of 64 KiB or more in arrays under 32 MiB, with AVX-512
    # and 2 MiB of L2.
    with numpy_native.forced_isa("baseline"):
        assert auto("softmax", f32, 128 << 10, 8 << 20) == "three-pass-reload"
    if "avx512f" in info["isas_supported"]:
        with numpy_native.forced_isa("avx512f"):
            expected = "three-pass-reload" if small_l2 else "two-pass"
            assert auto("softmax", f32, 128 << 10, max(8 << 20, limit)) == expected
            assert auto("softmax", f32, 32 << 10, 8 << 20) == "three-pass-reload"
            assert auto("softmax", f32, 128 << 10, 64 << 20) == "three-pass-reload"
            assert auto("softmax", f64, 128 << 10, 8 << 20) == "three-pass-reload"
    # float64 logsumexp reads once with two-pass, which wins from 32 KiB rows on.
    assert auto("logsumexp", f64, 32 << 10, 32 << 10) == "two-pass"
    # numpy_native's own entry: only the reduced axes make the row.
    x = np.empty((3, limit // 4), np.float32)
    assert numpy_native._auto("softmax", x, (1,)) == "two-pass"
    assert numpy_native._auto("softmax", x.T, (1,)) == "three-pass-reload"


@pytest.mark.parametrize(
    ("env", "expect"),
    [({"SOFTMAXLIB_ISA": "baseline"}, ("isa", "baseline")), ({"SOFTMAXLIB_NUM_THREADS": "3"}, ("threads", 3))],
)
def test_environment_variables(env, expect):
    import json
    import os
    import subprocess
    import sys

    code = "import json; from softmaxlib._backends import numpy_native as n; print(json.dumps(n.info()))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    info = json.loads(out.stdout)
    assert info[expect[0]] == expect[1]


def test_forced_isa_rejects_unknown():
    with pytest.raises(ValueError, match="unknown ISA"):
        with numpy_native.forced_isa("sse9"):
            pass
