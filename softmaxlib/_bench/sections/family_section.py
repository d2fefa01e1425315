"""The softmax family (issue 8): fused softmax + top-k, and the cost of a temperature.

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
from softmaxlib._bench.peers import _require, threads_set_to, to_torch
from softmaxlib._bench.results import OURS, PEER, Bar, SectionResult, ratio

ISSUE = "#8"
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
    result = SectionResult(name="family", title="Softmax family (issue 8): fused top-k, temperature",
                           backend="numpy", show_tables=False)
    measure = functools.partial(ctx.measure, "family", backend="numpy", threads=1)
    peers = ctx.options.peers

    def timed(prepare, name, kind, x, out_nbytes=None):
        m = measure(prepare, implementation=name, kind=kind, x=x, out_nbytes=out_nbytes)
        result.measurements.append(m)
        return m

    def bar(description, numerator, denominator, required, at_least=True):
        pair = (numerator, denominator)
        reasons = [f"{m.implementation}: {m.skipped}" for m in pair if m is not None and m.skipped]
        if None in pair:
            reasons.append("peer not measured (--no-peers)")
        result.bars.append(Bar(
            issue=ISSUE, description=description,
            measured=None if reasons else ratio(numerator.median_s, denominator.median_s),
            required=required, at_least=at_least,
            timings={m.implementation: m.median_s for m in pair if m is not None},
            note="; ".join(reasons) or None,
        ))

    x = make_logits(VOCABULARY, "float32")
    out = 2 * VOCABULARY[0] * K * 8  # the k values and indices
    shape = "x".join(map(str, VOCABULARY))
    with threads_set_to(1):
        ours = timed(lambda: functools.partial(softmaxlib.softmax_topk, x, K),
                     f"softmax_topk (k={K})", OURS, x, out)
        torch = timed(lambda: torch_softmax_topk(x, K), "torch softmax + topk", PEER, x, out) if peers else None
    scipy = timed(lambda: scipy_softmax_argpartition(x, K), "scipy softmax + argpartition", PEER, x,
                  out) if peers else None
    bar(f"{shape}, k={K}, 1 thread: torch.topk(torch.softmax) time / ours", torch, ours, 4.0)
    bar(f"{shape}, k={K}, 1 thread: scipy softmax + argpartition time / ours", scipy, ours, 20.0)

    x = make_logits((64, 32000), "float32")
    with threads_set_to(1):
        plain = timed(lambda: functools.partial(softmaxlib.softmax, x), "softmax", OURS, x)
        scaled = timed(lambda: functools.partial(softmaxlib.softmax, x, temperature=TEMPERATURE),
                       f"softmax, temperature={TEMPERATURE}", OURS, x)
    bar(f"64x32000, 1 thread: softmax with temperature={TEMPERATURE} time / without",
        scaled, plain, 1.05, at_least=False)
    if not peers:
        result.notes.append("--no-peers: the bars against peers read N/A")
    return result
