"""The softmax family: fused softmax + top-k, and the cost of a temperature.

Fused top-k: ``softmaxlib.softmax_topk`` on a language model's vocabulary
(8 x 128256 logits, k = 50), one thread, against what a user writes without it:
``torch.topk(torch.softmax(x, -1), k)`` (torch on one thread) and SciPy's softmax
followed by ``np.argpartition`` and a sort of the k winners (softmaxlib returns
them sorted). Temperature: ``softmax(x, temperature=0.7)`` against ``softmax(x)``
on 64 x 32000, one thread; the temperature is fused into the kernels, so the two
should cost the same.
"""

import functools

import numpy as np

import softmaxlib
from softmaxlib._bench.arrays import make_logits
from softmaxlib._bench.context import Contender
from softmaxlib._bench.peers import _require, read_once, to_torch
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, ratio_of

VOCABULARY = (8, 128256)
K = 50
TEMPERATURE = 0.7


def torch_softmax_topk(x, k):
    torch = _require("torch")
    t = to_torch(x)
    return lambda: torch.topk(torch.softmax(t, -1), k, dim=-1)


def scipy_softmax_argpartition(x, k):
    special = _require("scipy.special")

    def call():
        p = special.softmax(x, axis=-1)
        top = np.argpartition(p, -k, axis=-1)[:, -k:]
        values = np.take_along_axis(p, top, axis=-1)
        order = np.argsort(-values, axis=-1, kind="stable")
        return np.take_along_axis(values, order, axis=-1), np.take_along_axis(top, order, axis=-1)

    return call


def run(ctx):
    result = SectionResult(name="family", title="Acceptance checks: softmax family (fused top-k, temperature)",
                           backend="numpy", show_tables=False)
    peers = ctx.options.peers

    def timed_together(*contenders):
        return ctx.measure_bar("family", result, contenders, threads=1)

    def bar(description, numerator, denominator, required, at_least=True, yardstick=None):
        pair = (numerator, denominator)
        reasons = [f"{m.implementation}: {m.skipped}" for m in pair if m is not None and m.skipped]
        if None in pair:
            reasons.append("peer not measured (--no-peers)")
        result.bars.append(Bar(
            description=description,
            measured=None if reasons else ratio_of(numerator, denominator),
            required=required, at_least=at_least,
            timings={m.implementation: m.median_s for m in (*pair, yardstick) if m is not None},
            note="; ".join(reasons) or None,
            ceiling=None if reasons else ratio_of(numerator, yardstick),
        ))

    x = make_logits(VOCABULARY, "float32")
    out = 2 * VOCABULARY[0] * K * 8  # the k values and indices
    shape = "x".join(map(str, VOCABULARY))
    ours, torch, scipy, read = timed_together(
        Contender(lambda: functools.partial(softmaxlib.softmax_topk, x, K),
                  f"softmax_topk (k={K})", OURS, x, out),
        Contender(lambda: torch_softmax_topk(x, K), "torch softmax + topk", PEER, x, out)
        if peers else None,
        Contender(lambda: scipy_softmax_argpartition(x, K), "scipy softmax + argpartition", PEER,
                  x, out) if peers else None,
        # The top-k's yardstick: any top-k reads x once, and a max per row does no more.
        Contender(lambda: read_once(x), "x.max(axis=-1) (one read)", YARDSTICK, x,
                  4 * VOCABULARY[0]),
    )
    bar(f"{shape}, k={K}, 1 thread: torch.topk(torch.softmax) time / ours", torch, ours, 4.0,
        yardstick=read)
    bar(f"{shape}, k={K}, 1 thread: scipy softmax + argpartition time / ours", scipy, ours, 20.0,
        yardstick=read)

    x = make_logits((64, 32000), "float32")
    plain, scaled = timed_together(
        Contender(lambda: functools.partial(softmaxlib.softmax, x), "softmax", OURS, x),
        Contender(lambda: functools.partial(softmaxlib.softmax, x, temperature=TEMPERATURE),
                  f"softmax, temperature={TEMPERATURE}", OURS, x),
    )
    bar(f"64x32000, 1 thread: softmax with temperature={TEMPERATURE} time / without",
        scaled, plain, 1.05, at_least=False)
    if not peers:
        result.notes.append("--no-peers: the checks against peers read N/A")
    return result
