"""The acceptance bars of issue 3 (NumPy native kernels), measured side by side.

Each bar is a ratio of two medians taken in this run, float32, single thread
unless said, printed next to the ratio the issue requires. Peer bars read N/A
with ``--no-peers`` or when the peer is not installed.
"""

import functools

import softmaxlib
from softmaxlib._bench.arrays import make_logits
from softmaxlib._bench.machine import usable_cpus
from softmaxlib._bench.peers import COPY, scipy_softmax, threads_set_to, torch_softmax
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, ratio

ISSUE = "#3"


def _ours(x, algorithm="auto"):
    return functools.partial(softmaxlib.softmax, x, algorithm=algorithm)


def run(ctx):
    result = SectionResult(name="bars", title="Acceptance bars (issue 3)", backend="numpy",
                           show_tables=False)
    measure = functools.partial(ctx.measure, "bars", backend="numpy")
    peers = ctx.options.peers

    def timed(prepare, name, kind, x, threads=1):
        m = measure(prepare, implementation=name, kind=kind, x=x, threads=threads)
        result.measurements.append(m)
        return m

    def bar(description, numerator, denominator, required, at_least=True, note=None):
        result.bars.append(Bar(
            issue=ISSUE, description=description,
            measured=ratio(numerator.median_s, denominator.median_s) if numerator and denominator else None,
            required=required, at_least=at_least,
            timings={m.implementation + f" ({m.threads}t)": m.median_s
                     for m in (numerator, denominator) if m is not None},
            note=note or _skip_note(numerator, denominator),
        ))

    # 64x32000, in cache, one thread: against torch (1 thread) and SciPy.
    x = make_logits((64, 32000), "float32")
    with threads_set_to(1):
        ours = timed(lambda: _ours(x), "auto", OURS, x)
        torch = timed(lambda: torch_softmax(x), "torch", PEER, x) if peers else None
    scipy = timed(lambda: scipy_softmax(x), "scipy", PEER, x) if peers else None
    bar("64x32000, 1 thread: torch.softmax time / ours", torch, ours, 2.5)
    bar("64x32000, 1 thread: scipy.special.softmax time / ours", scipy, ours, 8.0)

    # 1x2^24, out of cache, one thread: two-pass against three-pass-reload and x.copy().
    x = make_logits((1, 2**24), "float32")
    with threads_set_to(1):
        two = timed(lambda: _ours(x, "two-pass"), "two-pass", OURS, x)
        reload_ = timed(lambda: _ours(x, "three-pass-reload"), "three-pass-reload", OURS, x)
    copy = timed(lambda: COPY.prepare(x), COPY.name, YARDSTICK, x)
    bar("1x2^24, 1 thread: three-pass-reload time / two-pass", reload_, two, 1.15)
    bar("1x2^24, 1 thread: two-pass time / x.copy()", two, copy, 1.8, at_least=False)

    # 4096x1024: two threads against one.
    x = make_logits((4096, 1024), "float32")
    if usable_cpus() >= 2:
        with threads_set_to(1):
            one = timed(lambda: _ours(x), "auto", OURS, x, threads=1)
        with threads_set_to(2):
            two_threads = timed(lambda: _ours(x), "auto", OURS, x, threads=2)
        bar("4096x1024: 1-thread time / 2-thread time", one, two_threads, 1.7)
    else:
        result.bars.append(Bar(ISSUE, "4096x1024: 1-thread time / 2-thread time", None, 1.7,
                               note="fewer than 2 usable CPUs"))
    del x

    # Per-call overhead on 1x8: ours at most half of SciPy's time.
    x = make_logits((1, 8), "float32")
    with threads_set_to(1):
        tiny = timed(lambda: _ours(x), "auto", OURS, x)
    scipy_tiny = timed(lambda: scipy_softmax(x), "scipy", PEER, x) if peers else None
    bar("1x8 per-call overhead: ours time / scipy.special.softmax", tiny, scipy_tiny, 0.5,
        at_least=False)
    if not peers:
        result.notes.append("--no-peers: the bars against peers read N/A")
    return result


def _skip_note(*measurements):
    reasons = [f"{m.implementation}: {m.skipped}" for m in measurements if m and m.skipped]
    if any(m is None for m in measurements):
        reasons.append("peer not measured (--no-peers)")
    return "; ".join(reasons) or None
