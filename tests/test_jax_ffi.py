"""The JAX fast path (softmaxlib._backends.jax_ffi): the native kernels as an XLA custom call.

Values are checked by the conformance suite (the "jax" case runs this path); here:
that the custom call is what runs, transformations (jit, nested vmap, grad, jvp,
jacfwd, second-order check_grads in float64), masks, errors as ffi::Error,
the platform switch, and sharding over several CPU devices (in a subprocess,
since the device count is fixed when JAX starts).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import softmaxlib

jax = pytest.importorskip("jax")
jnp = jax.numpy

from softmaxlib._backends import jax_ffi  # noqa: E402

pytestmark = pytest.mark.skipif(not jax_ffi.available(), reason="built without the XLA FFI headers")

OPS = ("softmax", "log_softmax", "logsumexp")
NN = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax,
      "logsumexp": jax.scipy.special.logsumexp}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _x(shape, dtype=np.float64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def _hlo(f, *args):
    return jax.jit(f).lower(*args).as_text()


@pytest.mark.parametrize("op", OPS)
def test_custom_call_runs_on_cpu(op):
    x = _x((3, 5), np.float32)
    f = getattr(softmaxlib, op)
    assert "softmaxlib_compute" in _hlo(f, x)
    np.testing.assert_allclose(np.asarray(jax.jit(f)(x)), np.asarray(NN[op](x, axis=-1)), rtol=2e-6, atol=2e-6)


def test_other_platforms_get_the_reference():
    x = _x((3, 5), np.float32)
    lowered = jax.jit(softmaxlib.softmax).trace(x).lower(lowering_platforms=("cpu", "cuda"))
    text = lowered.as_text()
    assert "softmaxlib_compute" in text  # the CPU branch
    assert text.count("stablehlo.exponential") >= 1  # the reference branch for CUDA


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("axis", [-1, 0, (0, 2)])
def test_dtypes_and_axes(dtype, axis):
    x = _x((4, 3, 6), np.float32).astype(dtype)
    for op in OPS:
        y = jax.jit(lambda a, op=op: getattr(softmaxlib, op)(a, axis=axis))(x)
        assert y.dtype == x.dtype
        expect = getattr(softmaxlib, op)(np.asarray(x, dtype=np.float32), axis=axis)
        tol = 2e-6 if dtype == "float32" else 1e-2
        np.testing.assert_allclose(np.asarray(y, dtype=np.float32), expect, rtol=tol, atol=tol)


@pytest.mark.parametrize("op", OPS)
def test_nested_vmap(op, x64):
    x = _x((2, 3, 7))
    f = jax.vmap(jax.vmap(lambda r: getattr(softmaxlib, op)(r)))
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(NN[op](x, axis=-1)), rtol=1e-13, atol=1e-13)
    g = jax.vmap(lambda r: getattr(softmaxlib, op)(r, axis=0), in_axes=1)  # batch axis not leading
    np.testing.assert_allclose(np.asarray(g(x)), np.asarray(jax.vmap(lambda r: NN[op](r, axis=0), in_axes=1)(x)),
                               rtol=1e-13, atol=1e-13)


def test_vmap_with_where(x64):
    x = _x((3, 6))
    where = jnp.asarray(np.random.default_rng(2).random((3, 6)) < 0.6)
    got = jax.vmap(lambda a, w: softmaxlib.softmax(a, where=w))(x, where)
    np.testing.assert_allclose(np.asarray(got), softmaxlib.softmax(np.asarray(x), where=np.asarray(where)),
                               rtol=1e-13)


@pytest.mark.parametrize("op", OPS)
def test_jvp_grad_jacfwd(op, x64):
    x = _x((3, 5))
    t = _x((3, 5), seed=1)
    ours, theirs = getattr(softmaxlib, op), lambda a: NN[op](a, axis=-1)
    y1, ty1 = jax.jvp(ours, (x,), (t,))
    y2, ty2 = jax.jvp(theirs, (x,), (t,))
    np.testing.assert_allclose(np.asarray(ty1), np.asarray(ty2), rtol=1e-12, atol=1e-13)
    w = _x(y2.shape, seed=3)
    g1 = jax.grad(lambda a: jnp.sum(w * ours(a)))(x)
    g2 = jax.grad(lambda a: jnp.sum(w * theirs(a)))(x)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(jax.jacfwd(ours)(x[0])), np.asarray(jax.jacfwd(theirs)(x[0])),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("op", OPS)
def test_check_grads_second_order(op, x64):
    from jax.test_util import check_grads

    f = getattr(softmaxlib, op)
    check_grads(f, (_x((2, 4)),), order=2, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7)
    where = jnp.asarray([True, False, True, True])
    check_grads(lambda a: f(a, where=where), (_x((2, 4)),), order=2, modes=("fwd", "rev"), atol=1e-7, rtol=1e-7)


def test_grad_with_where(x64):
    x = _x((2, 5))
    where = jnp.asarray([True, True, False, True, False])
    assert "softmaxlib_compute_masked" in _hlo(lambda a: softmaxlib.logsumexp(a, where=where), x)
    g = jax.grad(lambda a: softmaxlib.logsumexp(a, where=where).sum())(x)
    assert np.all(np.asarray(g)[:, ~np.asarray(where)] == 0)
    np.testing.assert_allclose(np.asarray(g).sum(axis=-1), 1.0, rtol=1e-13)


def _raw(op, alg, n_reduced, x, target="softmaxlib_compute", shape=None):
    out = jax.ShapeDtypeStruct(x.shape if shape is None else shape, x.dtype)
    return jax.ffi.ffi_call(target, out)(x, op=np.int32(op), alg=np.int32(alg), n_reduced=np.int32(n_reduced))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, 3, jnp.zeros((2, 3), jnp.float32)), "n_reduced"),
        ((7, 0, 1, jnp.zeros((2, 3), jnp.float32)), "op must be"),
        ((0, 9, 1, jnp.zeros((2, 3), jnp.float32)), "alg must be"),
        ((0, 0, 1, jnp.zeros((2, 3), jnp.int32)), "float16, bfloat16, float32 or float64"),
    ],
)
def test_errors_are_ffi_errors(args, message):
    jax_ffi.available()  # registers the targets
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(_raw(*args))


def test_error_wrong_result_shape():
    jax_ffi.available()
    with pytest.raises(Exception, match="shape"):
        jax.block_until_ready(_raw(2, 0, 1, jnp.zeros((2, 3), jnp.float32), shape=(3,)))


_SHARDING_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P
    import softmaxlib

    mesh = jax.make_mesh((2, 2), ("a", "b"))
    x = (np.random.default_rng(0).normal(size=(8, 4, 64)) * 5).astype(np.float32)
    x[1, 0, 3] = np.inf
    x[2, 1, :] = -np.inf
    x[3, 2, 40] = np.nan
    out = {}
    cases = [("batch", P("a", "b"), -1), ("batch2", P(None, None, ("a", "b")), (0, 1)),
             ("reduced", P(None, None, ("a", "b")), -1), ("both", P("a", None, "b"), -1)]
    for name, spec, axis in cases:
        xs = jax.device_put(x, NamedSharding(mesh, spec))
        for op in ("softmax", "log_softmax", "logsumexp"):
            f = jax.jit(lambda a, op=op: getattr(softmaxlib, op)(a, axis=axis))
            hlo = f.lower(xs).compile().as_text()
            y = np.asarray(f(xs))
            expect = getattr(softmaxlib, op)(x, axis=axis)
            ok = bool(np.allclose(y, expect, rtol=1e-5, atol=1e-6, equal_nan=True))
            out[f"{name}-{op}"] = {"all_gather": "all-gather" in hlo, "ok": ok,
                                   "custom_call": "softmaxlib_" in hlo}
        with jax.set_mesh(mesh):
            xg = jax.device_put(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), NamedSharding(mesh, spec))
            g1 = jax.jit(jax.grad(lambda a: jnp.sum(jnp.sin(softmaxlib.log_softmax(a, axis=axis)))))(xg)
            g2 = jax.jit(jax.grad(lambda a: jnp.sum(jnp.sin(jax.nn.log_softmax(a, axis=axis)))))(xg)
        out[f"{name}-grad"] = {"all_gather": False, "custom_call": True,
                               "ok": bool(np.allclose(np.asarray(g1), np.asarray(g2), rtol=1e-4, atol=1e-5))}
    print(json.dumps(out))
    """
)


def test_sharding_in_subprocess():
    # Sharded over batch axes: shard-local. Sharded along the reduced axis (an
    # explicit sharding): per-shard accumulators merged, the rows never gathered.
    check_sharding_script(_SHARDING_SCRIPT)


def check_sharding_script(script):
    """Run a sharding script on CPU in a fresh interpreter (the host device count is
    fixed when JAX starts) and check each case of the JSON on its last line: the
    custom call ran, the result is right, and nothing was all-gathered."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, r in out.items():
        assert r["custom_call"], key
        assert r["ok"], key
        assert not r["all_gather"], key


def test_piece_handler_errors():
    jax_ffi.available()
    x = jnp.zeros((2, 3), jnp.float32)
    acc = jnp.zeros((2, 5), jnp.float32)
    finish = jax.ffi.ffi_call("softmaxlib_finish", jax.ShapeDtypeStruct(x.shape, x.dtype))
    with pytest.raises(Exception, match="finish computes"):
        jax.block_until_ready(finish(x, acc, op=np.int32(2), n_reduced=np.int32(1)))
    with pytest.raises(Exception, match="acc must be"):
        jax.block_until_ready(finish(x, jnp.zeros((3, 5), jnp.float32), op=np.int32(0), n_reduced=np.int32(1)))
    accumulate = jax.ffi.ffi_call("softmaxlib_accumulate", jax.ShapeDtypeStruct((2, 4), jnp.float32))
    with pytest.raises(Exception, match="acc must be"):
        jax.block_until_ready(accumulate(x, n_reduced=np.int32(1)))
