"""JAX section: jitted ``softmaxlib.softmax`` on a JAX array vs jitted ``jax.nn.softmax``.

A placeholder until the JAX fast path (issue 4) exists: today softmaxlib on JAX
runs the generic Array-API reference, which this section states. A jitted
``x + 1`` (a fresh output of the same size) is the yardstick, as in issue 4's
bar. XLA's CPU threads are fixed when JAX starts, so ``threads`` reads None
(XLA's default).
"""

import functools
import importlib.util

import softmaxlib
from softmaxlib._backends import backend_for
from softmaxlib._bench.arrays import make_logits
from softmaxlib._bench.peers import jax_softmax, to_jax
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, SectionResult, add_ratios

QUICK_SHAPES = ((256, 128), (64, 32000), (1, 2**20))
FULL_SHAPES = QUICK_SHAPES + ((1, 2**24),)


def _jitted(fn, x):
    import jax

    xj = to_jax(x)
    f = jax.jit(fn)
    return lambda: f(xj).block_until_ready()


def run(ctx):
    result = SectionResult(name="jax", title="JAX (jit, CPU)", backend="jax",
                           ratio_reference="softmaxlib (jit)")
    if importlib.util.find_spec("jax") is None:
        result.notes.append("jax not installed: section skipped")
        return result
    import jax

    backend = backend_for(jax.numpy)
    if backend is not None and backend.fast_path_module is None:
        result.notes.append("softmaxlib has no JAX fast path yet: it runs the generic "
                            "Array-API reference under jit")
    result.notes.append(f"devices: {[d.platform for d in jax.devices()]}; "
                        "threads: XLA's default (fixed at start-up)")
    shapes = QUICK_SHAPES if ctx.options.quick else FULL_SHAPES
    for dtype in ctx.options.dtypes:
        for shape in shapes:
            x = make_logits(shape, dtype)
            measure = functools.partial(ctx.measure, "jax", backend="jax", x=x, threads=None)
            result.measurements.append(measure(
                lambda x=x: _jitted(softmaxlib.softmax, x),
                implementation="softmaxlib (jit)", kind=OURS))
            if ctx.options.peers:
                result.measurements.append(measure(
                    functools.partial(jax_softmax, x), implementation="jax.nn.softmax (jit)",
                    kind=PEER))
            result.measurements.append(measure(
                lambda x=x: _jitted(lambda a: a + 1, x), implementation="x + 1 (jit)",
                kind=YARDSTICK))
    add_ratios(result.measurements, preferred="softmaxlib (jit)")
    return result

