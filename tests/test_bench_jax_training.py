"""The benchmark report's JAX training section (softmaxlib._bench.sections.jax_training),
on a small shape: both thread settings measured, the training bars measured with their
ceilings, and the residual checks (softmaxlib keeps no more elements than jax.nn)
passing. No timing is asserted."""

import pytest

from softmaxlib._bench.context import BenchContext
from softmaxlib._bench.harness import Harness
from softmaxlib._bench.options import BenchOptions

pytest.importorskip("jax")
from softmaxlib._bench.sections import jax_training  # noqa: E402 - after the skip


def test_saved_residuals_counts_what_grad_keeps():
    import jax.numpy as jnp

    x = jnp.ones((3, 5), jnp.float32)
    # exp's derivative is its output: one array of x's size
    assert jax_training.saved_residuals(lambda a: jnp.sum(jnp.exp(a)), x) == (1, 15, 60)


@pytest.mark.slow  # ~20 s: a JAX subprocess and a dozen compilations
def test_the_section_measures_both_thread_settings_and_checks_the_residuals(monkeypatch):
    monkeypatch.setattr(jax_training, "SHAPE", (4, 256))
    ctx = BenchContext(BenchOptions(), Harness(budget_s=0.0, progress_stream=None), {})
    result = jax_training.run(ctx)
    assert not result.failures
    speed = [b for b in result.bars if "jit(grad)" in b.description]
    assert [b.description.split(" of ")[1].split(":")[0] for b in speed] == list(jax_training.OPS)
    assert all(b.measured > 0 and b.ceiling > 0 for b in speed)
    assert all(set(b.timings) == {"softmaxlib (1t)", "jax.nn (1t)", "traffic floor (1t)"} for b in speed)
    residual = [b for b in result.bars if "residual" in b.description]
    assert len(residual) == 6
    assert all(b.status == "PASS" for b in residual), [(b.description, b.note) for b in residual]
    for threads in ("1 thread", "default threads"):
        lines = [n for n in result.notes if f", {threads}:" in n]
        assert len(lines) == 3 and all("skipped" not in n and "kept" in n for n in lines), lines
