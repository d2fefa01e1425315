"""PyTorch section: the PyTorch fast path against torch's own ops, CPU tensors.

64x32000 float32, with one thread and with torch's default count: forward of
softmax, log_softmax and logsumexp (ours against torch's), forward plus backward
(``torch.autograd.grad(f(x), x, g)``) and the backward alone (the graph kept,
``retain_graph``), ``torch.compile``d ours against ``torch.compile``d torch, and a
copy of the tensor as the yardstick.  256x128 shows the per-call cost of both of
our routes: the direct eager call and the custom op (``softmaxlib::compute``).

Acceptance checks (one thread): softmax forward >= 1.6x torch.softmax, log_softmax
and logsumexp >= 1.5x, forward+backward >= 1.2x (ceiling: torch's time over a copy
plus ``g + y``, the traffic floor of a softmax and its backward), backward alone no
slower than torch's, and the 256x128 eager call no slower than torch.softmax.
"""

import importlib.util

import softmaxlib
from softmaxlib._bench.arrays import make_logits
from softmaxlib._bench.context import Contender
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, add_ratios, ratio_of

SHAPE = (64, 32000)
SMALL = (256, 128)
TITLE = "PyTorch: the native path on CPU tensors vs torch's own ops"


def _ops(torch):
    return {
        "softmax": (softmaxlib.softmax, lambda t: torch.softmax(t, -1)),
        "log_softmax": (softmaxlib.log_softmax, lambda t: torch.log_softmax(t, -1)),
        "logsumexp": (softmaxlib.logsumexp, lambda t: torch.logsumexp(t, -1)),
    }


def run(ctx):
    result = SectionResult(name="torch", title=TITLE, backend="torch", show_tables=True,
                           ratio_reference="ours softmax")
    if importlib.util.find_spec("torch") is None:
        result.notes.append("torch not installed: section skipped")
        return result
    import torch

    from softmaxlib._backends import torch_native

    x = make_logits(SHAPE, "float32")
    t = torch.from_numpy(x)
    g = torch.from_numpy(make_logits(SHAPE, "float32", seed=1))
    ops = _ops(torch)

    def timed(contenders, threads):
        return ctx.measure_bar("torch", result, contenders, threads=threads)

    def forward(name, f):
        return lambda: (lambda: f(t))

    def forward_backward(f):
        def prepare():
            leaf = t.clone().requires_grad_()
            return lambda: torch.autograd.grad(f(leaf), leaf, g)
        return prepare

    def backward(f):
        def prepare():
            leaf = t.clone().requires_grad_()
            y = f(leaf)
            return lambda: torch.autograd.grad(y, leaf, g, retain_graph=True)
        return prepare

    def compiled(f):
        def prepare():
            c = torch.compile(f, fullgraph=True)
            c(t)
            return lambda: c(t)
        return prepare

    def traffic_floor():
        y = torch.softmax(t, -1)
        return lambda: (t.clone(), g + y)

    copy = Contender(lambda: (lambda: t.clone()), "x.clone()", YARDSTICK, x)
    bars = {}
    for threads in (1, torch.get_num_threads()):
        for name, (ours, theirs) in ops.items():
            m = timed([Contender(forward(name, ours), f"ours {name}", OURS, x),
                       Contender(forward(name, theirs), f"torch {name}", PEER, x), copy], threads)
            bars[("forward", name, threads)] = m
        ours, theirs = ops["softmax"]
        bars[("fwd+bwd", threads)] = timed(
            [Contender(forward_backward(ours), "ours softmax fwd+bwd", OURS, x),
             Contender(forward_backward(theirs), "torch softmax fwd+bwd", PEER, x),
             Contender(traffic_floor, "x.clone() + (g + y)", YARDSTICK, x)], threads)
        bars[("bwd", threads)] = timed(
            [Contender(backward(ours), "ours softmax backward", OURS, x),
             Contender(backward(theirs), "torch softmax backward", PEER, x)], threads)
        timed([Contender(compiled(ours), "ours softmax compiled", OURS, x),
               Contender(compiled(theirs), "torch softmax compiled", PEER, x)], threads)
        if threads == torch.get_num_threads() == 1:
            break

    small = make_logits(SMALL, "float32")
    s = torch.from_numpy(small)
    route_op = torch_native._compute_op
    eager, custom_op, theirs_small = timed(
        [Contender(lambda: (lambda: softmaxlib.softmax(s)), "ours softmax 256x128 direct", OURS, small),
         Contender(lambda: (lambda: route_op(s, "softmax", [1], None, "auto", None, None)),
                   "ours softmax 256x128 custom op", OURS, small),
         Contender(lambda: (lambda: torch.softmax(s, -1)), "torch softmax 256x128", PEER, small)], 1)
    add_ratios(result.measurements, preferred="ours softmax")

    def bar(description, theirs, ours, required, ceiling_of=None):
        result.bars.append(Bar(
            description=description, measured=ratio_of(theirs, ours), required=required,
            timings={m.implementation: m.median_s for m in (theirs, ours, ceiling_of) if m is not None},
            ceiling=ratio_of(theirs, ceiling_of)))

    for name, required in (("softmax", 1.6), ("log_softmax", 1.5), ("logsumexp", 1.5)):
        ours_m, theirs_m, copy_m = bars[("forward", name, 1)]
        bar(f"64x32000, 1 thread: torch {name} time / ours", theirs_m, ours_m, required, copy_m)
    ours_m, theirs_m, floor_m = bars[("fwd+bwd", 1)]
    bar("64x32000, 1 thread: torch softmax fwd+bwd time / ours", theirs_m, ours_m, 1.2, floor_m)
    ours_m, theirs_m = bars[("bwd", 1)]
    bar("64x32000, 1 thread: torch softmax backward time / ours", theirs_m, ours_m, 1.0)
    bar("256x128, 1 thread, eager without autograd: torch.softmax time / ours", theirs_small, eager, 1.0)
    result.notes.append(
        "256x128 per call: direct route "
        + ", ".join(f"{m.implementation.split()[-1]} {m.median_s * 1e6:.1f} us"
                    for m in (eager, custom_op) if m.median_s is not None))
    return result
