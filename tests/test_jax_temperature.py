"""The JAX fast path with temperature= (issue 8): the ``softmaxlib_compute_t`` custom
call for one temperature (an attribute), one per row (an operand) and the adaptive
one (a mode); values equal to the NumPy native path (same kernels), derivatives with
respect to x and to per-row temperatures (and through the adaptive beta) against
jax.grad of plain jnp formulas and check_grads in float64, jit, nested vmap, and
sharding over batch axes (in a subprocess).

Values themselves are checked against float64 oracles in tests/native/test_temperature.py
(the same driver and kernels) and by the conformance suite.
"""

import inspect
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import softmaxlib  # noqa: E402
from softmaxlib._backends import jax_ffi, numpy_native  # noqa: E402

from softmaxlib import _reference  # noqa: E402
from tests.test_jax_ffi import check_sharding_script  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not jax_ffi.available(), reason="built without the XLA FFI headers"),
    # the primitive lowers to the reference on other platforms, with temperature=
    pytest.mark.skipif("temperature" not in inspect.signature(_reference.compute).parameters,
                       reason="the reference has no temperature= yet (issue 8, _reference.py)"),
]

OPS = ("softmax", "log_softmax", "logsumexp")
POLY = (-0.037, 0.481, -2.3, 4.917, -1.791)  # Velickovic et al. 2024, Fig. 5


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def ours(op, x, temperature, axes=(1,), where=None, algorithm="auto"):
    y = jax_ffi.compute(op, x, axes, where, algorithm, temperature=temperature)
    assert y is not NotImplemented
    return y


def plain(op, x, temperature, where=None):
    """op(x / T) over the last axis in plain jnp (the adaptive beta from the exact entropy)."""
    valid = jnp.ones(x.shape, bool) if where is None else where
    if isinstance(temperature, str):
        xm = jnp.where(valid, x, -jnp.inf)
        p = jax.nn.softmax(xm, axis=-1)
        logp = jax.nn.log_softmax(xm, axis=-1)
        h = -jnp.sum(jnp.where(p > 0, p * jnp.where(p > 0, logp, 0), 0), axis=-1, keepdims=True)
        poly = jnp.polyval(jnp.asarray(POLY, x.dtype), h)
        z = x * jnp.where(h > 0.5, jnp.maximum(1, poly), 1)
    else:
        t = jnp.asarray(temperature)
        z = x / (t[..., None] if t.ndim else t)
    z = jnp.where(valid, z, -jnp.inf)
    m = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    e = jnp.exp(z - m)
    s = jnp.sum(e, axis=-1, keepdims=True)
    if op == "softmax":
        return e / s
    if op == "log_softmax":
        return z - m - jnp.log(s)
    return (m + jnp.log(s))[..., 0]


def assert_same(y, expect):
    """Bitwise equal, except results below the smallest normal number: XLA runs with
    flush-to-zero, NumPy does not (the kernels' subnormal results may flush)."""
    y, expect = np.asarray(y), np.asarray(expect)
    tiny = np.finfo(expect.dtype).tiny
    flushed = np.abs(expect) < tiny
    np.testing.assert_array_equal(np.where(flushed, 0, y), np.where(flushed, 0, expect))
    assert np.all(np.abs(y[flushed]) < tiny)


def _x(shape, dtype=np.float64, seed=0, scale=2.0):
    return jnp.asarray((np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype))


TEMPERATURES = {
    "scalar": 0.7,
    "inf": np.inf,
    "rows": np.array([0.5, 1.0, 3.0, 0.25]),
    "adaptive": "adaptive",
}


def _t(name, dtype=np.float32):
    t = TEMPERATURES[name]
    return jnp.asarray(t.astype(dtype)) if isinstance(t, np.ndarray) else t


@pytest.mark.parametrize("name", TEMPERATURES)
@pytest.mark.parametrize("op", OPS)
def test_custom_call_runs_and_matches_numpy_native(op, name):
    x = _x((4, 37), np.float32)
    t = _t(name)
    hlo = jax.jit(lambda a: ours(op, a, t)).lower(x).as_text()
    assert "softmaxlib_compute_t" in hlo
    y = jax.jit(lambda a: ours(op, a, t))(x)
    expect = numpy_native.compute(op, np.asarray(x), (1,), None, "auto",
                                  temperature=np.asarray(t) if not isinstance(t, (str, float)) else t)
    assert_same(y, expect)  # same driver, same kernels


@pytest.mark.parametrize("name", ("scalar", "rows", "adaptive"))
def test_where_and_axes(name):
    rng = np.random.default_rng(1)
    x = _x((4, 3, 6), np.float32)
    where = jnp.asarray(rng.random((4, 3, 6)) < 0.7)
    t = _t(name)
    # axes (1, 2): batch shape (4,); the reduced axes are not moved
    for op in OPS:
        for w in (None, where):
            y = jax.jit(lambda a, op=op, w=w: ours(op, a, t, axes=(1, 2), where=w))(x)
            expect = numpy_native.compute(op, np.asarray(x), (1, 2), None if w is None else np.asarray(w), "auto",
                                          temperature=np.asarray(t) if not isinstance(t, (str, float)) else t)
            assert_same(y, expect)
    # axis 0 with per-row temperatures of the batch shape (3, 6): the reduced axis moves last
    t0 = jnp.asarray(np.exp(rng.normal(size=(3, 6))).astype(np.float32)) if name == "rows" else t
    y = jax.jit(lambda a: ours("softmax", a, t0, axes=(0,)))(x)
    expect = numpy_native.compute("softmax", np.asarray(x), (0,), None, "auto",
                                  temperature=np.asarray(t0) if name == "rows" else t0)
    assert_same(y, expect)


@pytest.mark.parametrize("name", TEMPERATURES)
@pytest.mark.parametrize("op", OPS)
def test_jvp_and_grad_against_plain_jnp(op, name, x64):
    x = _x((4, 6))
    tx = _x((4, 6), seed=1)
    t = _t(name, np.float64)
    y1, ty1 = jax.jvp(lambda a: ours(op, a, t), (x,), (tx,))
    y2, ty2 = jax.jvp(lambda a: plain(op, a, t), (x,), (tx,))
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(ty1), np.asarray(ty2), rtol=1e-10, atol=1e-12)
    w = _x(y2.shape, seed=3)
    g1 = jax.grad(lambda a: jnp.sum(w * ours(op, a, t)))(x)
    g2 = jax.grad(lambda a: jnp.sum(w * plain(op, a, t)))(x)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", OPS)
def test_grad_with_respect_to_per_row_temperatures(op, x64):
    x = _x((4, 6))
    t = jnp.asarray([0.5, 1.0, 3.0, 0.25])
    w = _x((4, 6) if op != "logsumexp" else (4,), seed=3)
    g1 = jax.grad(lambda tt: jnp.sum(w * ours(op, x, tt)))(t)
    g2 = jax.grad(lambda tt: jnp.sum(w * plain(op, x, tt)))(t)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-10, atol=1e-12)
    gx1, gt1 = jax.grad(lambda a, tt: jnp.sum(w * ours(op, a, tt)), argnums=(0, 1))(x, t)
    gx2, gt2 = jax.grad(lambda a, tt: jnp.sum(w * plain(op, a, tt)), argnums=(0, 1))(x, t)
    np.testing.assert_allclose(np.asarray(gx1), np.asarray(gx2), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gt1), np.asarray(gt2), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ("scalar", "rows", "adaptive"))
@pytest.mark.parametrize("op", OPS)
def test_check_grads_second_order(op, name, x64):
    from jax.test_util import check_grads

    t = _t(name, np.float64)
    x = _x((4, 5), seed=4)
    check_grads(lambda a: ours(op, a, t), (x,), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)
    if name == "rows":  # (1/T^3 terms: central differences of step 1e-4 reach ~1e-6 relative)
        check_grads(lambda tt: ours(op, x, tt), (t,), order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)
    where = jnp.asarray(np.random.default_rng(5).random((4, 5)) < 0.7).at[:, 0].set(True)
    if op == "log_softmax":  # masked entries are -inf: differentiate the unmasked ones
        def f(a):
            return jnp.where(where, ours(op, a, t, where=where), 0)
    else:
        def f(a):
            return ours(op, a, t, where=where)
    check_grads(f, (x,), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_adaptive_derivative_includes_beta(x64):
    # Rows whose entropy puts beta on the polynomial (beta > 1): the derivative differs
    # from the one with beta held fixed, and matches the plain formula's.
    x = jnp.asarray(np.concatenate([np.full((1, 8), 0.0), np.array([[2.0] + [0.0] * 7])]))
    h = np.asarray(-jnp.sum(jax.nn.softmax(x) * jax.nn.log_softmax(x), axis=-1))
    assert np.all(np.polyval(POLY, h) > 1.2)
    w = _x((2, 8), seed=6)
    g = jax.grad(lambda a: jnp.sum(w * ours("softmax", a, "adaptive")))(x)
    g_plain = jax.grad(lambda a: jnp.sum(w * plain("softmax", a, "adaptive")))(x)
    beta = np.maximum(1, np.polyval(POLY, h))[:, None]
    g_fixed = jax.grad(lambda a: jnp.sum(w * jax.nn.softmax(a * beta)))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_plain), rtol=1e-10, atol=1e-12)
    assert not np.allclose(np.asarray(g), np.asarray(g_fixed), rtol=1e-3)


def test_special_rows_have_finite_derivatives(x64):
    # +inf entries, -inf entries and T = inf: the result is locally constant or
    # ignores those entries; the derivative is finite (0 where nothing moves).
    x = jnp.asarray([[1.0, jnp.inf, 2.0, jnp.inf], [1.0, -jnp.inf, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0]])
    for t in (0.7, jnp.asarray([0.5, 2.0, jnp.inf]), "adaptive", np.inf):
        for op in OPS:
            g = jax.grad(lambda a, op=op, t=t: jnp.sum(jnp.sin(jnp.where(jnp.isfinite(ours(op, a, t)),
                                                                        ours(op, a, t), 0))))(x)
            assert np.all(np.isfinite(np.asarray(g))), (op, t)
    g = jax.grad(lambda a: jnp.sum(jnp.sin(ours("softmax", a, np.inf))))(x[2:])
    assert np.all(np.asarray(g) == 0)


@pytest.mark.parametrize("op", OPS)
def test_nested_vmap_and_traced_temperatures(op, x64):
    x = _x((2, 3, 7))
    t = jnp.asarray(np.exp(np.random.default_rng(7).normal(size=(2, 3))))
    f = jax.vmap(jax.vmap(lambda r, tt: ours(op, r[None], tt[None], axes=(1,))[0]))
    np.testing.assert_allclose(np.asarray(f(x, t)), np.asarray(plain(op, x, t)), rtol=1e-13, atol=1e-13)
    # the temperature mapped, x not (broadcast by the batching rule)
    g = jax.vmap(lambda tt: ours(op, x[0], jnp.full((3,), tt)))(t[:, 0])
    expect = jnp.stack([plain(op, x[0], jnp.full((3,), tt)) for tt in t[:, 0]])
    np.testing.assert_allclose(np.asarray(g), np.asarray(expect), rtol=1e-13, atol=1e-13)
    a = jax.vmap(jax.vmap(lambda r: ours(op, r[None], "adaptive")[0]))(x)
    np.testing.assert_allclose(np.asarray(a), np.asarray(plain(op, x, "adaptive")), rtol=1e-12, atol=1e-13)
    # a traced per-row temperature under jit
    h = jax.jit(lambda a, tt: ours(op, a, tt))(x[0], t[0])
    np.testing.assert_allclose(np.asarray(h), np.asarray(plain(op, x[0], t[0])), rtol=1e-13, atol=1e-13)


def test_traced_nonpositive_temperature_gives_nan():
    # (Concrete values are validated by the API layer; traced ones cannot be.)
    x = _x((2, 5), np.float32)
    y = jax.jit(lambda a, tt: ours("softmax", a, tt))(x, jnp.asarray([0.0, 1.0], jnp.float32))
    assert np.isnan(np.asarray(y)[0]).all() and np.isfinite(np.asarray(y)[1]).all()


def test_other_platforms_get_the_reference():
    x = _x((3, 5), np.float32)
    for t in (0.7, "adaptive", jnp.ones((3,), jnp.float32)):
        lowered = jax.jit(lambda a, t=t: ours("softmax", a, t)).trace(x).lower(lowering_platforms=("cpu", "cuda"))
        text = lowered.as_text()
        assert "softmaxlib_compute_t" in text and text.count("stablehlo.exponential") >= 1


def test_temperatures_are_checked_before_the_custom_call():
    # The JAX path translates a checked temperature; what the checks refuse never reaches it.
    x = _x((2, 3), np.float32)
    for t in ("sharp", jnp.ones((3,)), 0.0, -1.0, True):
        with pytest.raises((TypeError, ValueError)):
            softmaxlib.softmax(x, temperature=t)


def test_handler_errors():
    jax_ffi.available()
    x = jnp.zeros((2, 3), jnp.float32)
    out = jax.ShapeDtypeStruct(x.shape, x.dtype)
    call = jax.ffi.ffi_call("softmaxlib_compute_t", out)
    attrs = {"op": np.int32(0), "alg": np.int32(0), "n_reduced": np.int32(1), "masked": np.int32(0),
             "temperature": np.float64(1.0)}
    with pytest.raises(Exception, match="mode must be"):
        jax.block_until_ready(call(x, mode=np.int32(7), **attrs))
    with pytest.raises(Exception, match="expected 2 operands"):
        jax.block_until_ready(call(x, mode=np.int32(2), **attrs))
    with pytest.raises(Exception, match="batch shape"):
        jax.block_until_ready(call(x, jnp.ones((3,), jnp.float32), mode=np.int32(2), **attrs))
    with pytest.raises(Exception, match="must be > 0"):
        jax.block_until_ready(call(x, mode=np.int32(1), **{**attrs, "temperature": np.float64(-1.0)}))


_SHARDING_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P
    from softmaxlib._backends import jax_ffi, numpy_native

    mesh = jax.make_mesh((2, 2), ("a", "b"))
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 4, 64)) * 5).astype(np.float32)
    t = np.exp(rng.normal(size=(8, 4))).astype(np.float32)
    out = {}
    for name, spec in [("batch", P("a", "b")), ("batch0", P(("a", "b")))]:
        xs = jax.device_put(x, NamedSharding(mesh, spec))
        ts = jax.device_put(t, NamedSharding(mesh, spec))
        for tname, temp in [("scalar", 0.7), ("rows", ts), ("adaptive", "adaptive")]:
            for op in ("softmax", "log_softmax", "logsumexp"):
                f = jax.jit(lambda a, tt, op=op, temp=temp: jax_ffi.compute(
                    op, a, (2,), None, "auto", temperature=tt if tname == "rows" else temp))
                hlo = f.lower(xs, ts).compile().as_text()
                y = np.asarray(f(xs, ts))
                expect = numpy_native.compute(op, x, (2,), None, "auto", temperature=t if tname == "rows" else temp)
                flushed = np.abs(expect) < np.finfo(np.float32).tiny  # XLA flushes subnormals
                out[f"{name}-{tname}-{op}"] = {"all_gather": "all-gather" in hlo,
                                               "custom_call": "softmaxlib_compute_t" in hlo,
                                               "ok": bool(np.array_equal(np.where(flushed, 0, y),
                                                                         np.where(flushed, 0, expect)))}
    print(json.dumps(out))
    """
)


def test_sharding_over_batch_axes_in_subprocess():
    check_sharding_script(_SHARDING_SCRIPT)  # shard-local: rows and their temperatures stay put
