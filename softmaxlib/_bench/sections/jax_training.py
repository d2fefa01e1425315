"""JAX training section: a jitted ``jax.grad`` of ``(f(x) * w).sum()`` (forward +
backward) for softmax, log_softmax and logsumexp, softmaxlib against jax.nn.

The contenders of one function are timed side by side (interleaved rounds) with
the traffic floor, what any forward + backward must move: for softmax and
log_softmax a jitted ``x + 1`` (x in, y out) and a jitted ``x * w + x`` (y and g
in, dx out); for logsumexp, whose output and cotangent are one value per row, a
jitted row max (x in) and a jitted ``x * w[:, None]`` (x in, dx out). The floor
in our place gives each speed-up's ceiling. One thread runs in a subprocess
(``jax_section.run_single_threaded``, with ``SOFTMAXLIB_NUM_THREADS=1`` too);
default threads in this process.

Beside the times, the residuals ``jax.grad`` keeps between the two passes
(``jax.ad_checkpoint.print_saved_residuals``'s list). The acceptance checks are
the training bars (one thread, 64x32000 float32) and "no more residual elements
than jax.nn" on 64x1000, with and without ``where``.

The three functions' timings are not measurements of the report's tables (a
table compares implementations of one function): they are in the checks and the
notes, and in the JSON through the checks' timings.
"""

import importlib.util
import json

import numpy as np

from softmaxlib._bench.context import BenchContext, Contender
from softmaxlib._bench.harness import Harness, format_seconds
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, ratio

OPS = ("softmax", "log_softmax", "logsumexp")
#: The speed-up over jax.nn each function's training step needs (one thread).
REQUIRED = {"softmax": 1.35, "log_softmax": 1.2, "logsumexp": 1.5}
SHAPE = (64, 32000)
RESIDUAL_SHAPE = (64, 1000)
OURS_NAME, PEER_NAME, FLOOR_NAME = "softmaxlib", "jax.nn", "traffic floor"


def _function(op, implementation):
    import jax

    import softmaxlib

    if implementation == OURS_NAME:
        return getattr(softmaxlib, op)
    return {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax, "logsumexp": jax.nn.logsumexp}[op]


def inputs(op, shape, seed=0):
    """(x, w) as JAX float32 arrays: logits and the loss's weights (per row for logsumexp)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 3
    w = rng.standard_normal(shape[:-1] if op == "logsumexp" else shape).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(w)


def loss_of(op, implementation, w, where=None):
    """The weighted sum of ``op(x)``, by ``implementation`` (OURS_NAME or PEER_NAME)."""
    import jax.numpy as jnp

    f = _function(op, implementation)

    def loss(x):
        y = f(x, axis=-1) if where is None else f(x, axis=-1, where=where)
        return jnp.sum(jnp.where(where, y, 0) * w if where is not None and op != "logsumexp" else y * w)

    return loss


def training_step(op, implementation, x, w):
    """A callable running one jitted ``jax.grad`` of the loss to completion."""
    import jax

    step = jax.jit(jax.grad(loss_of(op, implementation, w)))
    return lambda: step(x).block_until_ready()


def traffic_floor(op, x, w):
    """A callable running the floor's forward and backward (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    if op == "logsumexp":
        forward, backward = jax.jit(lambda a: jnp.max(a, axis=-1)), jax.jit(lambda a, b: a * b[:, None])
    else:
        forward, backward = jax.jit(lambda a: a + 1), jax.jit(lambda a, b: a * b + a)

    def both():
        forward(x).block_until_ready()
        backward(x, w).block_until_ready()

    return both


def saved_residuals(loss, x):
    """(count, elements, bytes) of what ``jax.grad(loss)`` keeps for its backward pass."""
    from jax._src.ad_checkpoint import saved_residuals as listed  # print_saved_residuals' own list

    avals = [aval for aval, _ in listed(loss, x)]
    elements = sum(int(np.prod(a.shape)) for a in avals)
    return len(avals), elements, sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in avals)


def measure(ctx, threads, shape=SHAPE):
    """{op: {name: median seconds or None}}: ours, jax.nn and the floor, side by side."""
    out = {}
    for op in OPS:
        x, w = inputs(op, shape)
        host = np.asarray(x)  # what a Contender reads its shape and dtype from
        contenders = [
            Contender(lambda op=op, x=x, w=w: training_step(op, OURS_NAME, x, w), OURS_NAME, OURS, host),
            Contender(lambda op=op, x=x, w=w: training_step(op, PEER_NAME, x, w), PEER_NAME, PEER, host),
            Contender(lambda op=op, x=x, w=w: traffic_floor(op, x, w), FLOOR_NAME, YARDSTICK, host),
        ]
        measured = ctx.measure_together(f"jax training {op}", contenders, backend="jax", threads=threads)
        out[op] = {m.implementation: m.median_s for m in measured}
    return out


def _worker(spec):
    """Entry point of the single-threaded subprocess: prints ``measure``'s result as JSON."""
    from softmaxlib._bench.sections.jax_section import pin_to_one_core

    spec = json.loads(spec)
    pin_to_one_core()
    ctx = BenchContext(options=None, harness=Harness(budget_s=spec["budget_s"], progress_stream=None),
                       machine={})
    print(json.dumps(measure(ctx, threads=1, shape=tuple(spec["shape"]))))


def _timing_note(op, threads, times, kept):
    ours, peer, floor = (times.get(n) for n in (OURS_NAME, PEER_NAME, FLOOR_NAME))
    speed_up, ceiling = ratio(peer, ours), ratio(peer, floor)

    def fmt(s):
        return format_seconds(s) if s is not None else "skipped"

    def res(name):
        count, _, nbytes = kept[name]
        return f"{count} arrays, {nbytes / 1e6:.1f} MB"

    return (f"{op}, {threads}: softmaxlib {fmt(ours)} ({res(OURS_NAME)} kept), jax.nn {fmt(peer)} "
            f"({res(PEER_NAME)} kept); speed-up {_x(speed_up)}, ceiling {_x(ceiling)} "
            f"(floor {fmt(floor)})")


def _x(value):
    return "n/a" if value is None else f"{value:.2f}x"


def run(ctx):
    result = SectionResult(name="jax_training", title="JAX training: jit(grad) of a weighted sum, forward + "
                           "backward", backend="jax", show_tables=False)
    if importlib.util.find_spec("jax") is None:
        result.notes.append("jax not installed: section skipped")
        return result
    from softmaxlib._bench.sections.jax_section import run_single_threaded

    if not ctx.options.peers:
        result.notes.append("--no-peers: jax.nn is timed anyway (it is what the checks compare with)")
    label = f"{SHAPE[0]}x{SHAPE[1]} float32"
    spec = {"shape": list(SHAPE), "budget_s": ctx.harness.budget_s}
    what = "JAX training single-threaded run (a subprocess; its checks read N/A)"
    single, failure = run_single_threaded("softmaxlib._bench.sections.jax_training", spec, what,
                                          extra_env={"SOFTMAXLIB_NUM_THREADS": "1"})
    if failure:
        result.failures.append(failure)
    default = measure(ctx, threads=None)
    for op in OPS:
        x, w = inputs(op, SHAPE)
        kept = {name: saved_residuals(loss_of(op, name, w), x) for name in (OURS_NAME, PEER_NAME)}
        times = (single or {}).get(op, {})
        result.notes.append(_timing_note(op, "1 thread", times, kept))
        result.notes.append(_timing_note(op, "default threads", default[op], kept))
        result.bars.append(Bar(
            description=f"{label}, 1 thread, jit(grad) of {op}: jax.nn time / ours",
            measured=ratio(times.get(PEER_NAME), times.get(OURS_NAME)),
            required=REQUIRED[op],
            timings={f"{n} (1t)": times.get(n) for n in (OURS_NAME, PEER_NAME, FLOOR_NAME)},
            ceiling=ratio(times.get(PEER_NAME), times.get(FLOOR_NAME)),
            note=None if single else "the single-threaded subprocess failed (see FLAGS)",
        ))
    for op in OPS:
        for masked in (False, True):
            x, w = inputs(op, RESIDUAL_SHAPE)
            where = (np.arange(RESIDUAL_SHAPE[-1]) % 3 != 0) if masked else None
            ours, peer = (saved_residuals(loss_of(op, n, w, where), x)[1] for n in (OURS_NAME, PEER_NAME))
            result.bars.append(Bar(
                description=(f"{RESIDUAL_SHAPE[0]}x{RESIDUAL_SHAPE[1]} residual elements kept by grad of {op}"
                             f"{' with where' if masked else ''}: ours / jax.nn"),
                measured=ours / peer, required=1.0, at_least=False,
                note=f"softmaxlib {ours}, jax.nn {peer} elements"))
    return result

