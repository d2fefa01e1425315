"""NumPy section: every algorithm over sizes 1K to 64M, beside the peers and x.copy()."""

import dataclasses
import functools

import softmaxlib
from softmaxlib._bench.arrays import fits_in_memory, make_logits
from softmaxlib._bench.options import format_shape
from softmaxlib._bench.peers import COPY, NUMPY_PEERS, native_threads, threads_set_to
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, SectionResult, add_ratios


def ours(x, algorithm):
    """softmaxlib.softmax on ``x`` with ``algorithm``, as a zero-argument callable."""
    return functools.partial(softmaxlib.softmax, x, algorithm=algorithm)


def run(ctx):
    opts = ctx.options
    result = SectionResult(
        name="numpy", title="NumPy: softmax over the last axis", backend="numpy",
        ratio_reference="auto",
    )
    if native_threads() is None:
        result.notes.append("native kernels unavailable: the thread count is not settable")
    peers = NUMPY_PEERS if opts.peers else ()
    for dtype in opts.dtypes:
        for shape in opts.shapes:
            try:
                x = make_logits(shape, dtype)
            except ImportError as exc:
                result.notes.append(f"{dtype} skipped: {exc}")
                break
            if not fits_in_memory(x.nbytes):
                result.notes.append(f"{format_shape(shape)} {dtype} skipped: not enough memory")
                continue
            result.measurements += _one_input(ctx, x, peers)
            del x
    add_ratios(result.measurements, preferred="auto")
    return result


def _one_input(ctx, x, peers):
    """All measurements of one input: fixed-thread ones once, the rest per thread count."""
    measure = functools.partial(ctx.measure, "numpy", backend="numpy", x=x)
    fixed = [measure(lambda: COPY.prepare(x), implementation=COPY.name, kind=YARDSTICK,
                     threads=COPY.own_threads)]
    for peer in peers:
        if not peer.follows_threads:
            fixed.append(measure(functools.partial(peer.prepare, x), implementation=peer.name,
                                 kind=PEER, threads=peer.own_threads))
    measurements = []
    for threads in ctx.options.threads:
        with threads_set_to(threads):
            for algorithm in ctx.options.algorithms:
                measurements.append(measure(functools.partial(ours, x, algorithm),
                                            implementation=algorithm, kind=OURS,
                                            threads=threads))
            for peer in peers:
                if peer.follows_threads:
                    measurements.append(measure(functools.partial(peer.prepare, x),
                                                implementation=peer.name, kind=PEER,
                                                threads=threads))
        # The fixed-thread measurements join every thread count's comparison group.
        measurements += [dataclasses.replace(m, group_threads=threads) for m in fixed]
    return measurements
