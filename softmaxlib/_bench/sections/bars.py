"""Acceptance checks of the NumPy native kernels, measured side by side.

Each check is a ratio of two medians taken in this run, float32, single thread
unless said, printed next to the ratio it requires; the contenders of a check
are timed side by side, in interleaved rounds. Peer bars read N/A
with ``--no-peers`` or when the peer is not installed. Each speed-up over a peer
also has its ceiling, the peer's time over ``x.copy()``'s (see ``Bar``).
"""

import functools

import numpy as np

import softmaxlib
from softmaxlib._bench.arrays import make_logits
from softmaxlib._bench.context import Contender
from softmaxlib._bench.machine import usable_cpus
from softmaxlib._bench.options import default_threads, format_shape
from softmaxlib._bench.peers import COPY, scipy_softmax, torch_softmax
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, ratio_of

#: The sweep's small shapes, where the per-call overhead shows: ours against torch.
SMALL_SHAPES = ((1, 2**10), (1, 2**11), (1, 2**12), (256, 128))


def _ours(x, algorithm="auto"):
    return functools.partial(softmaxlib.softmax, x, algorithm=algorithm)


def _ours_into_reused_out(x):
    return functools.partial(softmaxlib.softmax, x, out=np.empty_like(x))


def _copyto_reused(x):
    return functools.partial(np.copyto, np.empty_like(x), x)


def _np_exp(x):
    return functools.partial(np.exp, x)


def _ours_outputs_kept(x, calls=5):
    """``calls`` softmaxes of x with every output kept until the last is done (each
    call writes fresh pages, as a loop that keeps its results does)."""
    def call():
        return [softmaxlib.softmax(x) for _ in range(calls)]
    return call


def run(ctx):
    result = SectionResult(name="bars", title="Acceptance checks: NumPy native kernels", backend="numpy",
                           show_tables=False)
    peers = ctx.options.peers

    def timed_together(*contenders, threads=1):
        return ctx.measure_bar("bars", result, contenders, threads=threads)

    def bar(description, numerator, denominator, required, at_least=True, note=None,
            yardstick=None):
        result.bars.append(Bar(
            description=description,
            measured=ratio_of(numerator, denominator),
            required=required, at_least=at_least,
            timings={m.implementation + f" ({m.threads}t)": m.median_s
                     for m in (numerator, denominator, yardstick) if m is not None},
            note=note or _skip_note(numerator, denominator),
            ceiling=ratio_of(numerator, yardstick),
        ))

    def ours(x, algorithm="auto", name="auto"):
        return Contender(lambda: _ours(x, algorithm), name, OURS, x)

    def peer(prepare, name, x):
        return Contender(lambda: prepare(x), name, PEER, x) if peers else None

    def copy_of(x):
        return Contender(lambda: COPY.prepare(x), COPY.name, YARDSTICK, x)

    # 64x32000, in cache, one thread: against torch (1 thread) and SciPy.
    x = make_logits((64, 32000), "float32")
    auto, torch, scipy, copy = timed_together(
        ours(x), peer(torch_softmax, "torch", x), peer(scipy_softmax, "scipy", x), copy_of(x))
    bar("64x32000, 1 thread: torch.softmax time / ours", torch, auto, 2.5, yardstick=copy)
    bar("64x32000, 1 thread: scipy.special.softmax time / ours", scipy, auto, 8.0, yardstick=copy)

    # 1x2^24, out of cache, one thread: two-pass against three-pass-reload and x.copy().
    x = make_logits((1, 2**24), "float32")
    two, reload_, copy = timed_together(
        ours(x, "two-pass", "two-pass"), ours(x, "three-pass-reload", "three-pass-reload"),
        copy_of(x))
    bar("1x2^24, 1 thread: three-pass-reload time / two-pass", reload_, two, 1.15)
    bar("1x2^24, 1 thread: two-pass time / x.copy()", two, copy, 1.8, at_least=False)

    # 4096x1024, five calls with their outputs kept alive: two threads against one (each
    # count timed on its own: switching the pool's size between calls would be measured too).
    x = make_logits((4096, 1024), "float32")
    kept = Contender(lambda: _ours_outputs_kept(x), "auto, 5 outputs kept", OURS, x)
    if usable_cpus() >= 2:
        (one,) = timed_together(kept, threads=1)
        (two_threads,) = timed_together(kept, threads=2)
        bar("4096x1024, outputs kept alive: 1-thread time / 2-thread time", one, two_threads, 1.7)
    else:
        result.bars.append(Bar("4096x1024, outputs kept alive: 1-thread time / 2-thread time", None, 1.7,
                               note="fewer than 2 usable CPUs"))
    del x

    # out= into a reused buffer against np.copyto into one (the yardstick of a reused
    # output: no page faults on either side).
    for shape in ((1, 2**24), (64, 32000)):
        x = make_logits(shape, "float32")
        into_out, copyto = timed_together(
            Contender(lambda x=x: _ours_into_reused_out(x), "auto, out=y reused", OURS, x),
            Contender(lambda x=x: _copyto_reused(x), "np.copyto(y, x)", YARDSTICK, x))
        bar(f"{format_shape(shape)}, 1 thread: softmax(x, out=y) time / np.copyto(y, x)", into_out, copyto, 1.5,
            at_least=False)
        del x

    # The sweep's small shapes against torch, one thread and the default count.
    for shape in SMALL_SHAPES:
        x = make_logits(shape, "float32")
        for threads in sorted({1, default_threads()}):
            small, torch_small = timed_together(ours(x), peer(torch_softmax, "torch", x), threads=threads)
            bar(f"{format_shape(shape)}, {threads} thread{'s' if threads > 1 else ''}: ours time / torch.softmax",
                small, torch_small, 1.05, at_least=False)

    # Per-call overhead on 1x8: ours at most half of SciPy's time.
    x = make_logits((1, 8), "float32")
    tiny, scipy_tiny, exp_tiny = timed_together(
        ours(x), peer(scipy_softmax, "scipy", x), Contender(lambda: _np_exp(x), "np.exp", YARDSTICK, x))
    bar("1x8 per-call overhead: ours time / scipy.special.softmax", tiny, scipy_tiny, 0.5,
        at_least=False)
    overhead = ratio_of(tiny, exp_tiny)
    if overhead is not None:
        result.notes.append(f"1x8 per-call overhead on its own: softmax takes {overhead:.2f}x np.exp of the same "
                            f"array ({tiny.median_s * 1e6:.2f} against {exp_tiny.median_s * 1e6:.2f} µs)")
    if not peers:
        result.notes.append("--no-peers: the checks against peers read N/A")
    return result


def _skip_note(*measurements):
    reasons = [f"{m.implementation}: {m.skipped}" for m in measurements if m and m.skipped]
    if any(m is None for m in measurements):
        reasons.append("peer not measured (--no-peers)")
    return "; ".join(reasons) or None
