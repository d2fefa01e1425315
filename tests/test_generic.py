"""The generic fast path (softmaxlib._backends.generic): where it runs and what it relies on.

Its results are held to the oracle by the conformance suite (tests/backends.py registers
it on array-api-strict, torch and, forced, JAX); these tests check the dispatch, the
assumption the cheap special-value check rests on, the branch-free form's gradients,
and what it leaves to the reference.
"""

import math

import numpy as np
import pytest

import softmaxlib
from softmaxlib import _backends
from softmaxlib._backends import generic


def _spy(monkeypatch):
    """Record the namespaces generic.compute runs on (and its answers)."""
    calls = []
    compute = generic.compute

    def recording(op, x, *args, **kwargs):
        result = compute(op, x, *args, **kwargs)
        calls.append((type(x).__module__.split(".")[0], result is not NotImplemented))
        return result

    monkeypatch.setattr(generic, "compute", recording)
    return calls


def test_namespaces_without_a_native_path_take_it(monkeypatch):
    import array_api_strict
    import torch

    calls = _spy(monkeypatch)
    softmaxlib.softmax(array_api_strict.asarray([1.0, 2.0]))
    softmaxlib.softmax(torch.tensor([1.0, 2.0]))  # CPU: the PyTorch path's kernels
    with torch.device("meta"):  # a device the kernels do not run on
        softmaxlib.softmax(torch.tensor([1.0, 2.0]))
    native_cpu = softmaxlib._native_loader.kernels is not None
    assert calls == [("array_api_strict", True)] + [("torch", True)] * (1 if native_cpu else 2)


def test_an_unknown_namespace_takes_it():
    import types

    assert _backends.fast_path(types.ModuleType("some_array_library")) is generic


def test_generic_only_forces_it_and_reference_only_wins(monkeypatch):
    calls = _spy(monkeypatch)
    x = np.array([1.0, 2.0, 3.0])
    with _backends.generic_only():
        assert _backends.fast_path(softmaxlib._api._NUMPY) is generic
        y = softmaxlib.softmax(x)
        with _backends.reference_only():
            assert _backends.fast_path(softmaxlib._api._NUMPY) is None
    assert calls == [("numpy", True)]
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(), rtol=1e-15)


def test_a_native_paths_not_implemented_runs_it(monkeypatch):
    """What a native path leaves runs generically (here: NumPy without its extension)."""
    from softmaxlib import _native_loader

    calls = _spy(monkeypatch)
    monkeypatch.setattr(_native_loader, "kernels", None)
    x = np.array([[1.0, 2.0, 3.0], [0.0, -np.inf, np.inf]])
    y = softmaxlib.log_softmax(x)
    assert calls == [("numpy", True)]
    np.testing.assert_allclose(y[0], x[0] - np.log(np.exp(x[0]).sum()), rtol=1e-15)
    np.testing.assert_array_equal(y[1], [-np.inf, -np.inf, 0.0])


@pytest.mark.parametrize("algorithm", ["online", "two-pass"])
def test_other_algorithms_run_the_reference(algorithm):
    import array_api_strict

    x = array_api_strict.asarray([[1.0, 2.0]])
    assert generic.compute("softmax", x, (1,), None, algorithm) is NotImplemented
    assert generic.compute("softmax", x, (1,), None, "three-pass") is not NotImplemented


@pytest.mark.parametrize("temperature", ["adaptive", math.inf, 1e-320, 1e308])
def test_temperatures_it_leaves_to_the_reference(temperature):
    x = np.array([[1.0, 2.0]])
    result = generic.compute("softmax", x, (1,), None, "auto", temperature=temperature)
    assert result is NotImplemented


@pytest.mark.parametrize("library", ["numpy", "array_api_strict", "torch", "jax.numpy"])
def test_max_propagates_nan(library):
    """The cheap check finds NaN rows from the row max: the Array API standard says max
    propagates NaN, and each library the path runs on here must do so."""
    import importlib

    import array_api_compat

    module = importlib.import_module(library)
    x = module.asarray([[1.0, math.nan, 2.0], [math.nan, 0.0, -math.inf]])
    xp = array_api_compat.array_namespace(x)
    m = xp.max(x, axis=(1,), keepdims=True)
    assert bool(xp.all(xp.isnan(m)))


@pytest.mark.parametrize("op", generic.OPERATIONS)
def test_special_rows_beside_ordinary_ones(op):
    """One call with every special row: the branch-free form, equal to the reference."""
    import array_api_strict as xp

    big = float(np.finfo(np.float32).max)
    values = np.array(
        [
            [1.0, 2.0, 3.0, 4.0],
            [np.inf, 0.0, np.inf, 1.0],
            [-np.inf] * 4,
            [np.nan, np.inf, 1.0, 2.0],
            [big, -big, 0.0, 1.0],
            [5.0, 6.0, 7.0, 8.0],
        ],
        dtype=np.float32,
    )
    mask = np.ones(values.shape, bool)
    mask[5] = False
    mask[3, 0] = False  # the NaN is masked: a +inf row
    x, where = xp.asarray(values), xp.asarray(mask)
    ours = generic.compute(op, x, (1,), where, "auto")
    with _backends.reference_only():
        function = getattr(softmaxlib, op)
        expected = function(x, where=where)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=2e-7, atol=0)


def test_gradients_stay_finite_in_special_rows_jax():
    """Under jax.grad the branch-free form runs: a fully masked row's gradient is 0."""
    import jax
    import jax.numpy as jnp

    x = jnp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, -jnp.inf, 1.0]])
    where = jnp.asarray([[True, True, True], [False, False, False], [True, True, True]])
    with _backends.generic_only():
        for function in (softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.logsumexp):

            def loss(x, function=function):
                y = function(x, where=where)
                weights = jnp.arange(1.0, 1.0 + y.size).reshape(y.shape)
                return jnp.sum(jnp.where(jnp.isfinite(y), y, 0.0) * weights)

            g = jax.grad(loss)(x)
            assert bool(jnp.all(jnp.isfinite(g))), (function.__name__, g)
            assert bool(jnp.all(g[1] == 0))


def test_gradients_stay_finite_in_special_rows_torch():
    import torch

    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, -math.inf, 1.0]], requires_grad=True)
    where = torch.tensor([[True, True, True], [False, False, False], [True, True, True]])
    y = softmaxlib.log_softmax(x, where=where)
    (g,) = torch.autograd.grad(torch.where(torch.isfinite(y), y, 0.0).sum(), x)
    assert torch.all(torch.isfinite(g)) and torch.all(g[1] == 0)


def test_jax_off_cpu_takes_it(monkeypatch):
    """Lowered for a GPU, JAX's fast path picks the generic branch (exported here: this
    machine has no GPU to run it)."""
    import jax
    import jax.numpy as jnp

    calls = _spy(monkeypatch)
    x = jnp.ones((4, 50), jnp.float32)
    checks = [jax.export.DisabledSafetyCheck.custom_call("softmaxlib_compute")]
    jitted = jax.jit(softmaxlib.softmax)
    export = jax.export.export(jitted, platforms=["cuda"], disabled_checks=checks)
    exported = export(x)
    assert "softmaxlib_compute" not in exported.mlir_module()
    assert ("jax", True) in calls


def test_no_warning_for_huge_logits():
    """array-api-strict wraps NumPy, which would warn of x - max past the range
    (pytest turns warnings into errors here)."""
    import array_api_strict as xp

    big = float(np.finfo(np.float32).max)
    x = xp.asarray([[big, -big, 0.0]], dtype=xp.float32)
    y = softmaxlib.log_softmax(x)
    assert np.asarray(y)[0, 1] == -np.inf and np.asarray(y)[0, 0] == 0
    np.testing.assert_array_equal(np.asarray(softmaxlib.softmax(x)), [[1.0, 0.0, 0.0]])
    assert float(softmaxlib.logsumexp(x)[0]) == big
