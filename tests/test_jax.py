"""softmaxlib on JAX arrays under jit, vmap and grad (JAX tracers are arrays too)."""

import numpy as np
import pytest

import softmaxlib

jax = pytest.importorskip("jax")
jnp = jax.numpy


@pytest.fixture(autouse=True)
def x64():
    """Gradient checks run in float64: x64 on in this test's own scope only."""
    with jax.enable_x64(True):
        yield


def _x(shape=(3, 5), seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
def test_eager_and_jit_agree(algorithm):
    x = _x()
    eager = softmaxlib.softmax(x, algorithm=algorithm)
    jitted = jax.jit(lambda a: softmaxlib.softmax(a, algorithm=algorithm))(x)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jax.nn.softmax(x)), rtol=1e-14)


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
def test_vmap_nested(algorithm):
    x = _x((2, 3, 7))
    f = jax.vmap(jax.vmap(lambda row: softmaxlib.log_softmax(row, algorithm=algorithm)))
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(jax.nn.log_softmax(x)), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
def test_grad_matches_jax_nn(algorithm):
    x = _x((4, 6))
    w = _x((4, 6), seed=1)

    def ours(a):
        return jnp.sum(w * softmaxlib.softmax(a, algorithm=algorithm))

    def theirs(a):
        return jnp.sum(w * jax.nn.softmax(a))

    np.testing.assert_allclose(np.asarray(jax.grad(ours)(x)), np.asarray(jax.grad(theirs)(x)), rtol=1e-12, atol=1e-14)
    lse_grad = jax.grad(lambda a: jnp.sum(softmaxlib.logsumexp(a, algorithm=algorithm)))(x)
    np.testing.assert_allclose(np.asarray(lse_grad), np.asarray(jax.nn.softmax(x)), rtol=1e-12)


def test_grad_with_where_leaves_masked_entries_out():
    x = _x((2, 5))
    where = jnp.asarray([True, True, False, True, False])
    g = jax.grad(lambda a: softmaxlib.logsumexp(a, where=where).sum())(x)
    assert np.all(np.asarray(g)[:, ~np.asarray(where)] == 0)
    np.testing.assert_allclose(np.asarray(g).sum(axis=-1), 1.0, rtol=1e-13)


def test_float32_stays_float32_under_x64():
    x = jnp.asarray([1.0, 2.0, 3.0], dtype=jnp.float32)
    assert softmaxlib.softmax(x).dtype == jnp.float32
    assert jax.jit(softmaxlib.logsumexp)(x).dtype == jnp.float32
