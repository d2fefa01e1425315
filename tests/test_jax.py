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


# ------------------------------------------------------------------ the family (issue 8)
# Under reference_only: these check the generic reference on JAX (jit, vmap, grad);
# the FFI path's own transformations are tested in tests/test_jax_ffi.py.


@pytest.fixture
def reference():
    from softmaxlib._backends import reference_only

    with reference_only():
        yield


def _paper_adaptive_softmax(logits):
    """Velickovic et al. 2024, Fig. 5's listing (their 1e-9 inside the log)."""
    probs = jax.nn.softmax(logits)
    poly_fit = jnp.array([-0.037, 0.481, -2.3, 4.917, -1.791])
    entropy = jnp.sum(-probs * jnp.log(probs + 1e-9), axis=-1, keepdims=True)
    beta = jnp.where(entropy > 0.5, jnp.maximum(jnp.polyval(poly_fit, entropy), 1.0), 1.0)
    return jax.nn.softmax(logits * beta)


@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
def test_temperature_jit_and_vmap(reference, algorithm):
    x = _x((4, 6))
    t = jnp.asarray([0.5, 1.0, 2.0, 40.0])
    expected = jax.nn.log_softmax(x / t[:, None])
    jitted = jax.jit(lambda a, t: softmaxlib.log_softmax(a, temperature=t, algorithm=algorithm))(x, t)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(expected), rtol=1e-13, atol=1e-14)
    mapped = jax.vmap(lambda row, t: softmaxlib.log_softmax(row, temperature=t, algorithm=algorithm))(x, t)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(expected), rtol=1e-13, atol=1e-14)


def test_traced_bad_temperature_gives_nan_rows(reference):
    """Inside jit the values cannot be checked: such rows are NaN, the others exact."""
    x = _x((3, 4))
    y = jax.jit(lambda a, t: softmaxlib.softmax(a, temperature=t))(x, jnp.asarray([1.0, 0.0, jnp.nan]))
    y = np.asarray(y)
    assert np.all(np.isnan(y[1:])) and np.all(np.isfinite(y[0]))


def test_temperature_grad_matches_jax_nn(reference):
    x, w = _x((4, 6)), _x((4, 6), seed=1)
    t = jnp.asarray([0.5, 1.0, 2.0, 3.0])

    def ours(a, t):
        return jnp.sum(w * softmaxlib.softmax(a, temperature=t))

    def theirs(a, t):
        return jnp.sum(w * jax.nn.softmax(a / t[:, None]))

    for argnum in (0, 1):  # with respect to the logits and to the temperatures
        np.testing.assert_allclose(
            np.asarray(jax.grad(ours, argnum)(x, t)), np.asarray(jax.grad(theirs, argnum)(x, t)), rtol=1e-12, atol=1e-14
        )


def test_adaptive_temperature_matches_the_papers_listing(reference):
    # Rows from high entropy (beta up to ~2.3) to low (beta 1).
    x = _x((6, 16)) * jnp.asarray([0.1, 0.5, 1.0, 2.0, 4.0, 30.0])[:, None]
    ours = jax.jit(lambda a: softmaxlib.softmax(a, temperature="adaptive"))(x)
    # The paper's 1e-9 moves H by at most n 1e-9 and the result by ~1e-7 relative.
    np.testing.assert_allclose(np.asarray(ours), np.asarray(_paper_adaptive_softmax(x)), rtol=1e-6, atol=1e-12)
    w = _x((6, 16), seed=3)
    g_ours = jax.grad(lambda a: jnp.sum(w * softmaxlib.softmax(a, temperature="adaptive")))(x)
    g_paper = jax.grad(lambda a: jnp.sum(w * _paper_adaptive_softmax(a)))(x)
    np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_paper), rtol=1e-5, atol=1e-9)


def _finite_difference_check(f, x, seed):
    """grad f . v against the central difference (f(x + h v) - f(x - h v)) / 2h, float64."""
    v = _x(x.shape, seed=seed)
    h = 1e-6
    numeric = (f(x + h * v) - f(x - h * v)) / (2 * h)
    analytic = jnp.sum(jax.grad(f)(x) * v)
    np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["stablemax", "log_stablemax"])
def test_stablemax_grad_matches_finite_differences(reference, name):
    function = getattr(softmaxlib, name)
    w = _x((3, 7), seed=5)
    # Entries on both sides of 0 (s is x + 1 or 1 / (1 - x)), none at the kink.
    x = _x((3, 7)) * 3 + 0.01
    for seed in (1, 2):
        _finite_difference_check(jax.jit(lambda a: jnp.sum(w * function(a))), x, seed)
    # Huge and -inf entries: finite gradients, and 0 for the -inf entries.
    x = x.at[0, 0].set(1e300).at[1, 2].set(-1e300).at[2, 3].set(-jnp.inf)
    g = np.asarray(jax.grad(lambda a: jnp.sum(w * function(a)))(x))
    assert np.all(np.isfinite(g)) and g[2, 3] == 0


def test_stablemax_jit_and_vmap(reference):
    x = _x((4, 5))
    expected = np.asarray(softmaxlib.stablemax(np.asarray(x)))
    np.testing.assert_allclose(np.asarray(jax.jit(softmaxlib.stablemax)(x)), expected, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(jax.vmap(softmaxlib.stablemax)(x)), expected, rtol=1e-14)


def test_softmax_topk_jit_vmap_and_grad(reference):
    x = _x((3, 9))
    values, indices = jax.jit(lambda a: softmaxlib.softmax_topk(a, 4))(x)
    expected = jnp.take_along_axis(jax.nn.softmax(x), indices, axis=-1)
    np.testing.assert_allclose(np.asarray(values), np.asarray(expected), rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(indices), np.argsort(-np.asarray(x), axis=-1, kind="stable")[:, :4])
    mapped_values, mapped_indices = jax.vmap(lambda row: softmaxlib.softmax_topk(row, 4))(x)
    np.testing.assert_array_equal(np.asarray(mapped_indices), np.asarray(indices))
    np.testing.assert_allclose(np.asarray(mapped_values), np.asarray(values), rtol=1e-14)
    # The values are differentiable in x: as softmax gathered at the (constant) indices.
    w = _x((3, 4), seed=2)
    g = jax.grad(lambda a: jnp.sum(w * softmaxlib.softmax_topk(a, 4)[0]))(x)
    g_expected = jax.grad(lambda a: jnp.sum(w * jnp.take_along_axis(jax.nn.softmax(a), indices, axis=-1)))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_expected), rtol=1e-12, atol=1e-14)
    assert jnp.issubdtype(indices.dtype, jnp.integer)
