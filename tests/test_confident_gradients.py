"""The gradient of a confident cross-entropy is not 0 where the exact one is not.

float32 log_softmax([30, 0])[0] = -log1p(e^-30) = -9.36e-14, and its derivative with
respect to x_0 is 1 - p_0 = p_1 = 9.36e-14: both must come out to their relative
accuracy (the derivative as sum_{j != i} p_j, expm1 of the output, never 1 - exp).
"""

import math

import numpy as np
import pytest

import softmaxlib

ROWS = [[30.0, 0.0], [0.0, -45.0, -50.0], [7.0, -60.0]]


def _exact(row):
    """(loss, gradient) of -log_softmax(row)[0] in float64: p_j for j != 0, exactly
    enough (every other p_j is far below 1, so no cancellation)."""
    x = np.asarray(row, dtype=np.float64)
    rest = np.exp(x[1:] - x[0])
    loss = math.log1p(float(np.sum(rest)))
    p = rest / (1 + np.sum(rest))
    return loss, np.concatenate([[-float(np.sum(p))], p])


def _assert_close(got, exact):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), exact, rtol=16 * 2.0**-24, atol=0)


@pytest.mark.parametrize("row", ROWS)
def test_jax_grad(row):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x = jnp.asarray(row, dtype=jnp.float32)
    loss, grad = jax.value_and_grad(lambda v: -softmaxlib.log_softmax(v)[0])(x)
    exact_loss, exact_grad = _exact(row)
    _assert_close(loss, exact_loss)
    _assert_close(grad, exact_grad)
    # forward mode: the derivative along e_0
    _, tangent = jax.jvp(lambda v: -softmaxlib.log_softmax(v)[0], (x,), (jnp.asarray([1.0] + [0.0] * (len(row) - 1), jnp.float32),))
    _assert_close(tangent, exact_grad[0])


@pytest.mark.parametrize("row", ROWS)
def test_torch_grad(row):
    torch = pytest.importorskip("torch")
    x = torch.tensor(row, dtype=torch.float32, requires_grad=True)
    loss = -softmaxlib.log_softmax(x)[0]
    loss.backward()
    exact_loss, exact_grad = _exact(row)
    _assert_close(loss.detach().numpy(), exact_loss)
    _assert_close(x.grad.numpy(), exact_grad)
