"""The JAX fast path of the softmax family (softmaxlib._backends.jax_ffi.family):
fused softmax + top-k and StableMax as XLA custom calls.

Checked here: the custom call is what runs on CPU (the reference elsewhere), the
results equal the NumPy native path's (same driver) for every dtype, axis and
mask, jit, nested vmap, derivatives (top-k values w.r.t. x, indices integer;
StableMax's custom_jvp, checked against finite differences with check_grads in
float64, second order too), the index dtype, and batch sharding over two CPU
devices (in a subprocess).
"""

import json
import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from softmaxlib._backends import jax_ffi, numpy_native  # noqa: E402

pytestmark = pytest.mark.skipif(not jax_ffi.available(), reason="built without the XLA FFI headers")

STABLE_OPS = ("stablemax", "log_stablemax")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _np(shape, dtype=np.float64, seed=0, scale=2.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def stablemax(x, axes=(-1,), where=None, op="stablemax"):
    axes = tuple(sorted(a % x.ndim for a in axes))
    return jax_ffi.compute(op, x, axes, where, "auto")


def topk(x, k, axis=-1, where=None):
    return jax_ffi.softmax_topk(x, k, axis % x.ndim, where)


def test_custom_calls_run_on_cpu():
    x = jnp.asarray(_np((3, 50), np.float32))
    assert "softmaxlib_topk" in jax.jit(lambda a: topk(a, 4)).lower(x).as_text()
    assert "softmaxlib_stablemax" in jax.jit(stablemax).lower(x).as_text()
    w = jnp.asarray(np.arange(50) % 3 > 0)
    assert "softmaxlib_topk_masked" in jax.jit(lambda a: topk(a, 4, where=jnp.broadcast_to(w, a.shape))).lower(x).as_text()


def test_other_platforms_get_the_reference():
    x = jnp.asarray(_np((3, 50), np.float32))
    for f, target in ((lambda a: topk(a, 4), "softmaxlib_topk"), (stablemax, "softmaxlib_stablemax")):
        text = jax.jit(f).trace(x).lower(lowering_platforms=("cpu", "cuda")).as_text()
        assert target in text  # the CPU branch
        assert "stablehlo.case" in text or "stablehlo.if" in text  # and a reference branch


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_topk_equals_native(dtype, axis):
    x = _np((6, 70, 5), dtype)
    k = 3
    v, i = jax.jit(lambda a: topk(a, k, axis))(jnp.asarray(x))
    v0, i0 = numpy_native.softmax_topk(x, k, axis % 3, None)
    assert v.dtype == x.dtype and i.dtype == jnp.int32  # no x64: JAX's default int
    np.testing.assert_array_equal(np.asarray(i), i0)
    np.testing.assert_array_equal(np.asarray(v).astype(np.float64), v0.astype(np.float64))
    where = np.random.default_rng(1).random(x.shape) < 0.5
    where[0] = False
    v, i = jax.jit(lambda a, w: topk(a, k, axis, w))(jnp.asarray(x), jnp.asarray(where))
    v0, i0 = numpy_native.softmax_topk(x, k, axis % 3, where)
    np.testing.assert_array_equal(np.asarray(i), i0)
    np.testing.assert_array_equal(np.asarray(v).astype(np.float64), v0.astype(np.float64))


def test_topk_float64_int64(x64):
    x = _np((4, 33))
    x[1, :5] = x[1].max()  # ties: lower index first
    x[2, 3] = np.inf
    x[3, 7] = np.nan
    v, i = jax.jit(lambda a: topk(a, 33))(jnp.asarray(x))
    assert i.dtype == jnp.int64
    v0, i0 = numpy_native.softmax_topk(x, 33, 1, None)
    np.testing.assert_array_equal(np.asarray(i)[:3], i0[:3])
    np.testing.assert_array_equal(np.asarray(v), v0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("op", STABLE_OPS)
def test_stablemax_equals_native(op, dtype):
    x = _np((4, 20, 6), dtype, scale=30)
    for axes in ((2,), (1,), (0, 2)):
        y = jax.jit(lambda a: stablemax(a, axes, op=op))(jnp.asarray(x))
        y0 = numpy_native.compute(op, x, axes, None, "auto")
        np.testing.assert_array_equal(np.asarray(y).astype(np.float64), y0.astype(np.float64))
    where = np.random.default_rng(2).random(x.shape) < 0.6
    y = jax.jit(lambda a, w: stablemax(a, (1,), w, op=op))(jnp.asarray(x), jnp.asarray(where))
    np.testing.assert_array_equal(np.asarray(y).astype(np.float64),
                                  numpy_native.compute(op, x, (1,), where, "auto").astype(np.float64))


def test_nested_vmap(x64):
    x = jnp.asarray(_np((3, 4, 40)))
    f = jax.vmap(jax.vmap(lambda r: topk(r, 5, 0)))
    v, i = f(x)
    for a in range(3):
        va, ia = topk(x[a], 5)
        np.testing.assert_array_equal(np.asarray(i[a]), np.asarray(ia))
        np.testing.assert_array_equal(np.asarray(v[a]), np.asarray(va))
    g = jax.vmap(jax.vmap(lambda r: stablemax(r, (0,))), in_axes=1, out_axes=1)
    np.testing.assert_array_equal(np.asarray(g(x)), np.asarray(stablemax(x)))
    # vmap over the mask only (x broadcast)
    w = jnp.asarray(np.random.default_rng(3).random((5, 40)) < 0.5)
    vm = jax.vmap(lambda m: topk(x[0, 0], 3, 0, m))(w)
    for b in range(5):
        np.testing.assert_array_equal(np.asarray(vm[1][b]), np.asarray(topk(x[0, 0], 3, 0, w[b])[1]))


def test_topk_gradient(x64):
    from jax.test_util import check_grads

    x = jnp.asarray(_np((3, 30), seed=4))
    weights = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4)))

    def f(a):
        v, _ = topk(a, 4)
        return jnp.sum(v * weights)

    g = jax.grad(f)(x)
    # Against the softmax's own derivative at the selected entries.
    _, idx = topk(x, 4)
    full = jnp.zeros(x.shape).at[jnp.arange(3)[:, None], idx].set(weights)
    g_ref = jax.grad(lambda a: jnp.sum(jax.nn.softmax(a, axis=-1) * full))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-12, atol=1e-15)
    check_grads(lambda a: topk(a, 4)[0], (x,), order=2, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7)
    where = jnp.asarray(np.random.default_rng(6).random((3, 30)) < 0.7)
    check_grads(lambda a: topk(a, 4, where=where)[0], (x,), order=1, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7)
    # the indices are integers: a float0 tangent
    _, (tv, ti) = jax.jvp(lambda a: topk(a, 4), (x,), (jnp.ones_like(x),))
    assert ti.dtype == jax.dtypes.float0
    np.testing.assert_allclose(np.asarray(tv), 0, atol=1e-15)  # softmax is shift invariant


@pytest.mark.parametrize("op", STABLE_OPS)
def test_stablemax_gradients(op, x64):
    from jax.test_util import check_grads

    x = jnp.asarray(_np((2, 7), seed=7, scale=3))  # both branches of s
    check_grads(lambda a: stablemax(a, op=op), (x,), order=2, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7)
    where = jnp.asarray(np.array([[1, 0, 1, 1, 1, 0, 1], [1, 1, 1, 0, 1, 1, 1]], bool))
    check_grads(lambda a: stablemax(a, where=where, op=op), (x,), order=2, modes=("fwd", "rev"), atol=1e-7,
                rtol=1e-7)
    check_grads(lambda a: stablemax(a, (0, 1), op=op), (x,), order=1, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7)
    # the formula, against central differences of the primal itself
    t = jnp.asarray(_np((2, 7), seed=8))
    _, ty = jax.jvp(lambda a: stablemax(a, op=op), (x,), (t,))
    h = 1e-6
    fd = (stablemax(x + h * t, op=op) - stablemax(x - h * t, op=op)) / (2 * h)
    np.testing.assert_allclose(np.asarray(ty), np.asarray(fd), rtol=1e-7, atol=1e-9)


def test_stablemax_gradient_at_extremes(x64):
    # s' / s = 1 / (1 + |x|) <= 1: no overflow for huge logits, zero at +-inf.
    x = jnp.asarray([[1e300, -1e300, 0.0, np.inf, -np.inf]])
    _, ty = jax.jvp(stablemax, (x,), (jnp.ones_like(x),))
    assert np.isfinite(np.asarray(ty)).all()


def test_sharding_in_subprocess():
    code = textwrap.dedent(
        """
        import json, os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from softmaxlib._backends import jax_ffi
        mesh = jax.make_mesh((2,), ("b",))
        x = np.random.default_rng(0).normal(size=(8, 300)).astype(np.float32)
        xs = jax.device_put(x, NamedSharding(mesh, P("b", None)))
        f = jax.jit(lambda a: jax_ffi.softmax_topk(a, 7, 1, None))
        g = jax.jit(lambda a: jax_ffi.compute("stablemax", a, (1,), None, "auto"))
        v, i = f(xs)
        v1, i1 = f(x)
        y, y1 = g(xs), g(x)
        hlo = f.lower(xs).compile().as_text()
        print(json.dumps({"same": bool((np.asarray(i) == np.asarray(i1)).all() and (np.asarray(v) == np.asarray(v1)).all()
                                       and (np.asarray(y) == np.asarray(y1)).all()),
                          "gather": "all-gather" in hlo}))
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["same"]
    assert not result["gather"]  # batch-partitionable: each device its own rows


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kind": "topk", "n_reduced": 1, "k": 9}, "k must be in"),
    ],
)
def test_errors_are_ffi_errors(params, message):
    # The Python side validates k; the handlers still refuse bad input with a
    # message instead of crashing.
    from softmaxlib._backends.jax_ffi import family

    x = jnp.ones((2, 8), jnp.float32)
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(family.primitive().bind(x, **params))
