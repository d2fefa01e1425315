"""CuPy section: softmaxlib's CUDA kernels against the GPU peers, with its acceptance checks.

On 4096x32000 and 1x2^28 float32 (the last axis), side by side in one run:
``softmaxlib.softmax`` on a CuPy array, ``cupyx.scipy.special.softmax``,
``torch.softmax`` on CUDA (same memory, through DLPack) and a device-to-device copy
of the same array (one read, one write: the physical yardstick). Every timed call
ends with a synchronisation of the current stream, so the harness's wall-clock
medians are GPU times (plus one launch latency, small at these sizes).

Skipped, with a note, when CuPy is not installed or no CUDA device is usable.
"""

import functools
import importlib.util

import softmaxlib
from softmaxlib._bench.peers import Unavailable
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, add_ratios, ratio

SHAPES = ((4096, 32000), (1, 2**28))
QUICK_SHAPES = ((4096, 32000), (1, 2**24))


def _synced(fn):
    import cupy

    def call():
        fn()
        cupy.cuda.get_current_stream().synchronize()

    return call


def _ours(x):
    return _synced(functools.partial(softmaxlib.softmax, x, axis=-1))


def _cupyx(x):
    if importlib.util.find_spec("cupyx") is None:
        raise Unavailable("cupyx not installed")
    from cupyx.scipy import special

    return _synced(functools.partial(special.softmax, x, axis=-1))


def _torch(x):
    if importlib.util.find_spec("torch") is None:
        raise Unavailable("torch not installed")
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("torch has no CUDA here")
    t = torch.from_dlpack(x)

    def call():
        torch.softmax(t, -1)
        torch.cuda.synchronize()

    return call


def _copy(x):
    import cupy

    out = cupy.empty_like(x)

    def call():
        cupy.copyto(out, x)
        cupy.cuda.get_current_stream().synchronize()

    return call


def _unavailable():
    if importlib.util.find_spec("cupy") is None:
        return "CuPy not installed: section skipped"
    from softmaxlib._backends import cupy_cuda

    info = cupy_cuda.info()
    if not info["available"]:
        return f"no usable CUDA device ({info['reason']}): section skipped"
    return None


def run(ctx):
    result = SectionResult(name="cupy", title="CuPy (CUDA): softmax over the last axis",
                           backend="cupy", ratio_reference="softmaxlib")
    reason = _unavailable()
    if reason is not None:
        result.notes.append(reason)
        return result
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    result.notes.append(f"device: {props['name'].decode() if isinstance(props['name'], bytes) else props['name']}; "
                        f"CuPy {cupy.__version__}; medians of synchronised calls")
    shapes = QUICK_SHAPES if ctx.options.quick else SHAPES
    peers = ctx.options.peers
    for shape in shapes:
        x = cupy.random.default_rng(0).standard_normal(shape, dtype=cupy.float32) * 3
        measure = functools.partial(ctx.measure, "cupy", backend="cupy", x=x, threads=None)
        ours = measure(lambda x=x: _ours(x), implementation="softmaxlib", kind=OURS)
        cupyx = measure(lambda x=x: _cupyx(x), implementation="cupyx.scipy.special.softmax",
                        kind=PEER) if peers else None
        torch = measure(lambda x=x: _torch(x), implementation="torch.softmax (cuda)",
                        kind=PEER) if peers else None
        copy = measure(lambda x=x: _copy(x), implementation="device copy", kind=YARDSTICK)
        result.measurements.extend(m for m in (ours, cupyx, torch, copy) if m is not None)
        label = "x".join(str(s) for s in shape)
        copy_limit = 1.3 if shape[0] > 1 else 1.8

        def bar(description, num, den, required, at_least=True):
            ok = num is not None and den is not None and num.median_s and den.median_s
            result.bars.append(Bar(
                description=description,
                measured=ratio(num.median_s, den.median_s) if ok else None,
                required=required, at_least=at_least,
                timings={m.implementation: m.median_s for m in (num, den) if m is not None},
                note=None if ok else "not measured (peer missing or --no-peers)",
            ))

        bar(f"{label} float32: cupyx softmax time / ours", cupyx, ours, 3.0)
        bar(f"{label} float32: torch.softmax time / ours", torch, ours, 1.0)
        bar(f"{label} float32: ours / device copy", ours, copy, copy_limit, at_least=False)
        del x
        cupy.get_default_memory_pool().free_all_blocks()
    add_ratios(result.measurements, preferred="softmaxlib")
    return result
