"""JAX training through the native backward kernels (jax_ffi/backward.py):
gradients, forward mode and second order against a float64 oracle, the
residuals grad keeps (no more elements than jax.nn's), eager mode under
jax.disable_jit(), and jax_debug_nans / jax_debug_infs where the contract's
result is finite."""

import math
import re

import numpy as np
import pytest

import softmaxlib

jax = pytest.importorskip("jax")
jnp = jax.numpy

from softmaxlib._backends import jax_ffi  # noqa: E402

pytestmark = pytest.mark.skipif(not jax_ffi.available(), reason="built without the XLA FFI headers")

OPS = ("softmax", "log_softmax", "logsumexp")
NN = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax, "logsumexp": jax.nn.logsumexp}


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 3).astype(np.float32), rng.standard_normal(shape), rng.random(shape) < 0.7


def _exact_grad(op, x, w, where=None):
    """d/dx of sum(w * op(x)) (logsumexp: sum(w[..., 0] * lse)) in float64 over the last axis."""
    x = x.astype(np.float64)
    keep = np.ones(x.shape, bool) if where is None else where
    z = np.where(keep, x, -np.inf)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    if op == "softmax":
        g = np.where(keep, w, 0)
        dx = p * (g - np.sum(g * p, -1, keepdims=True))
    elif op == "log_softmax":
        g = np.where(keep, w, 0)
        dx = g - p * g.sum(-1, keepdims=True)
    else:
        dx = w[..., :1] * p
    return np.where(keep, dx, 0)


def _loss(op, w, **kw):
    f = getattr(softmaxlib, op)
    if op == "logsumexp":
        return lambda a: jnp.sum(f(a, axis=-1, **kw) * w[..., 0])
    if "where" in kw:
        return lambda a: jnp.sum(jnp.where(kw["where"], f(a, axis=-1, **kw), 0) * w)
    return lambda a: jnp.sum(f(a, axis=-1, **kw) * w)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_gradients_match_the_oracle(op, masked):
    x, w, where = _data((6, 300))
    kw = {"where": jnp.asarray(where)} if masked else {}
    exact = _exact_grad(op, x, w, where if masked else None)
    loss = _loss(op, jnp.asarray(w, jnp.float32), **kw)
    scale = np.max(np.abs(w))
    for grad in (jax.grad(loss), jax.jit(jax.grad(loss)), jax.jacfwd(loss), jax.jacrev(loss)):
        np.testing.assert_allclose(np.asarray(grad(jnp.asarray(x)), np.float64), exact, atol=2e-6 * scale, rtol=1e-5)


def test_the_jitted_gradient_runs_the_native_backward():
    x = jnp.ones((4, 8), jnp.float32)
    for op in OPS:
        f = getattr(softmaxlib, op)
        text = jax.jit(jax.grad(lambda a, f=f: jnp.sum(f(a)))).lower(x).as_text()
        assert "softmaxlib_backward" in text


@pytest.mark.parametrize("op", OPS)
def test_second_order(op):
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 7)))
        where = jnp.asarray(np.random.default_rng(2).random((3, 7)) < 0.7)
        f = getattr(softmaxlib, op)
        check_grads(lambda a: f(a, axis=-1), (x,), order=2, modes=("fwd", "rev"))
        check_grads(lambda a: f(a, axis=-1, where=where), (x,), order=2, modes=("fwd", "rev"))
        check_grads(lambda a: f(a, axis=0), (x,), order=2, modes=("rev",))


def _residual_elements(f, x, capsys):
    capsys.readouterr()
    from jax.ad_checkpoint import print_saved_residuals

    print_saved_residuals(f, x)
    text = capsys.readouterr().out
    shapes = re.findall(r"^\w+\[([\d,]*)\]", text, flags=re.M)
    return sum(math.prod(int(d) for d in s.split(",") if d) for s in shapes), text


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_residuals_no_more_than_jax_nn(op, masked, capsys):
    x, _, where = _data((64, 1000))
    x = jnp.asarray(x)
    m = jnp.asarray(where) if masked else None
    ours = getattr(softmaxlib, op)
    ref = NN[op]
    mine, text = _residual_elements(lambda a: jnp.sum(ours(a, axis=-1, where=m)), x, capsys)
    theirs, _ = _residual_elements(lambda a: jnp.sum(ref(a, axis=-1, where=m)), x, capsys)
    assert mine <= theirs, text
    # what is kept: y (softmax, log_softmax) or x and lse (logsumexp), plus where
    expect = x.size + (x.shape[0] if op == "logsumexp" else 0) + (x.size if masked else 0)
    assert mine <= expect, text
    batched, text = _residual_elements(jax.vmap(lambda a: jnp.sum(ours(a, axis=-1, where=m))), x[None].repeat(2, 0),
                                       capsys)
    assert batched <= 2 * expect, text


@pytest.mark.parametrize("op", OPS)
def test_eager_under_disable_jit(op):
    x, w, where = _data((4, 9))
    f = getattr(softmaxlib, op)
    jitted = jax.jit(jax.grad(_loss(op, jnp.asarray(w, jnp.float32))))(jnp.asarray(x))
    with jax.disable_jit():
        y = f(jnp.asarray(x), axis=-1)
        assert y.shape == (x.shape if op != "logsumexp" else x.shape[:1])
        f(jnp.asarray(x), axis=-1, where=jnp.asarray(where))
        f(jnp.asarray(x), axis=-1, temperature=2.0)
        eager = jax.grad(_loss(op, jnp.asarray(w, jnp.float32)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op", OPS)
def test_debug_nans_and_infs_where_the_result_is_finite(op):
    # a confident row (exp underflows to 0 for the others) and a masked one
    x = jnp.asarray([[0.0, -200.0, -90.0, 3.0], [1.0, 2.0, 3.0, 4.0]], jnp.float32)
    where = jnp.asarray([[True, True, True, True], [True, False, True, True]])
    f = getattr(softmaxlib, op)
    cases = [{}] if op == "log_softmax" else [{}, {"where": where}]  # masked log_softmax is -inf by contract
    with jax.debug_nans(True), jax.debug_infs(True):
        for kw in cases:
            for dj in (False, True):
                with jax.disable_jit(dj):
                    f(x, **kw)
                    jax.grad(lambda a, kw=kw: jnp.sum(f(a, **kw)))(x)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["scalar", "per_row"])
@pytest.mark.parametrize("op", OPS)
def test_residuals_with_a_temperature(op, kind, masked, capsys):
    # As without one, plus the per-row temperatures; z (x-sized) only when the
    # temperatures are differentiated too.
    x, _, where = _data((64, 1000))
    x = jnp.asarray(x)
    m = jnp.asarray(where) if masked else None
    rows = jnp.linspace(0.5, 2.0, x.shape[0], dtype=jnp.float32)
    t = 2.0 if kind == "scalar" else rows
    f = getattr(softmaxlib, op)
    mine, text = _residual_elements(lambda a: jnp.sum(f(a, axis=-1, where=m, temperature=t)), x, capsys)
    expect = (x.size + (x.shape[0] if op == "logsumexp" else 0) + (x.size if masked else 0)
              + (x.shape[0] if kind == "per_row" else 0))
    assert mine <= expect, text
    if kind == "per_row":
        from jax._src.ad_checkpoint import saved_residuals

        both = saved_residuals(lambda a, r: jnp.sum(f(a, axis=-1, where=m, temperature=r)), x, rows)
        assert sum(math.prod(a.shape) for a, _ in both) <= expect + x.size, both


@pytest.mark.parametrize("kind", ["scalar", "per_row"])
@pytest.mark.parametrize("op", OPS)
def test_temperature_gradients_match_the_oracle(op, kind):
    # d/dx of sum(w * op(x / T)) = (the T = 1 gradient at z = x / T) / T
    x, w, _ = _data((6, 50), seed=3)
    t = np.float32(1.7) if kind == "scalar" else np.linspace(0.5, 3.0, 6).astype(np.float32)
    tt = t if kind == "scalar" else t[:, None]
    exact = _exact_grad(op, (x.astype(np.float64) / tt.astype(np.float64)), w) / tt
    loss = _loss(op, jnp.asarray(w, jnp.float32), temperature=float(t) if kind == "scalar" else jnp.asarray(t))
    g = jax.jit(jax.grad(loss))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), exact, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("op", OPS)
def test_vmap_of_grad_and_grad_of_vmap(op):
    # vmap adds a leading batch axis to the backward's custom call (the batching rule)
    x, w, where = _data((3, 5, 40), seed=4)
    loss = _loss(op, jnp.asarray(w[0], jnp.float32))
    exact = np.stack([_exact_grad(op, x[i], w[0]) for i in range(3)])
    per_batch = jax.jit(jax.vmap(jax.grad(loss)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(per_batch), exact, rtol=2e-5, atol=2e-6)
    summed = jax.jit(jax.grad(lambda a: jnp.sum(jax.vmap(loss)(a))))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(summed), exact, rtol=2e-5, atol=2e-6)
    m = jnp.asarray(where)  # a batched mask too
    masked = jax.vmap(lambda a, k: jax.grad(_loss(op, jnp.asarray(w[0], jnp.float32), where=k))(a))(jnp.asarray(x), m)
    exact_m = np.stack([_exact_grad(op, x[i], w[0], where[i]) for i in range(3)])
    np.testing.assert_allclose(np.asarray(masked), exact_m, rtol=2e-5, atol=2e-6)


_SHARDED_GRAD_SCRIPT = """
import json, os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import softmaxlib

mesh = jax.make_mesh((2,), ("a",))
rng = np.random.default_rng(0)
x = (rng.normal(size=(8, 64)) * 3).astype(np.float32)
w = rng.normal(size=(8, 64)).astype(np.float32)
keep = rng.random((8, 64)) < 0.7
rows = np.linspace(0.5, 2.0, 8).astype(np.float32)
xs = jax.device_put(x, NamedSharding(mesh, P("a")))
out = {}
for op in ("softmax", "log_softmax", "logsumexp"):
    f = getattr(softmaxlib, op)
    for name, kw in (("plain", {}), ("where", {"where": keep}), ("scalar", {"temperature": 0.7}),
                     ("rows", {"temperature": rows})):
        def loss(a, f=f, kw=kw, op=op):
            y = f(a, axis=-1, **kw)
            if op == "logsumexp":
                return jnp.sum(y * w[:, 0])
            return jnp.sum(jnp.where(keep, y, 0) * w) if "where" in kw else jnp.sum(y * w)
        g = jax.jit(jax.grad(loss))
        hlo = g.lower(xs).compile().as_text()
        expect = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(x)))  # one device
        got = np.asarray(g(xs))
        out[f"{op}-{name}"] = {"all_gather": "all-gather" in hlo, "custom_call": "softmaxlib_backward" in hlo,
                               "ok": bool(np.allclose(got, expect, rtol=1e-6, atol=1e-7))}
print(json.dumps(out))
"""


@pytest.mark.slow  # ~9 s: a fresh JAX with two host devices and a dozen compilations
def test_sharded_grad_stays_shard_local_in_subprocess():
    # a batch-sharded x: the backward's custom call runs on each shard (batch
    # partitionable, as the forward's), no all-gather, the same gradient as on one device
    from tests.test_jax_ffi import check_sharding_script

    check_sharding_script(_SHARDED_GRAD_SCRIPT)
