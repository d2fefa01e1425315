"""Per-call overhead of the NumPy path, piece by piece, and the small shapes against torch
(benchmarks/overhead.md).

Interleaved rounds: each round times every case once (a loop of calls), and the
table gives the median per call over the rounds, so that load that comes and goes
hits every case alike; the ratio column divides by torch's time for the same shape
in the same round (median of the per-round ratios). torch runs with softmaxlib's
thread count. Run from the repository root, e.g. one thread on one core:

    SOFTMAXLIB_NUM_THREADS=1 taskset -c 0 python benchmarks/overhead.py [--rounds 31] [--calls 3000]
"""

import argparse
import os
import statistics
import time

import numpy as np
import scipy.special

import softmaxlib
from softmaxlib._backends import numpy_native
from softmaxlib._native_loader import ALGORITHMS, NUMPY_DTYPES, OPS, kernels

#: The shapes of issue 17's sweep (float32, softmax over the last axis).
SHAPES = ((1, 1 << 10), (1, 1 << 11), (1, 1 << 12), (256, 128))


def cases():
    """name -> (callable, name of the torch case it is compared with, or None)."""
    rng = np.random.default_rng(0)
    x8 = rng.standard_normal((1, 8)).astype(np.float32)
    y8 = np.empty_like(x8)
    op, alg, code = OPS["softmax"], ALGORITHMS["three-pass-reload"], NUMPY_DTYPES[np.dtype(np.float32)]
    c = {
        "pybind11: a call with no arguments (get_num_threads)": (kernels.get_num_threads, None),
        "pybind11: a no-op taking 2 handles (_noop)": (lambda: kernels._noop(x8, None), None),
        "np.empty((1, 8), float32)": (lambda: np.empty((1, 8), np.float32), None),
        "np.exp(x), 1x8": (lambda: np.exp(x8), None),
        "kernels.compute into a given y, 1x8 (the full path's binding + driver + kernel)": (
            lambda: kernels.compute(op, alg, code, x8, 2, y8, None), None),
        "kernels.softmax_lane(x, -1, 'auto', None), 1x8 (the lane alone)": (
            lambda: kernels.softmax_lane(x8, -1, "auto", None), None),
        "softmax(x), 1x8": (lambda: softmaxlib.softmax(x8), None),
        "softmax(x, out=y), 1x8": (lambda: softmaxlib.softmax(x8, out=y8), None),
        "logsumexp(x), 1x8": (lambda: softmaxlib.logsumexp(x8), None),
        "softmax(x, xp=np), 1x8 (the full path)": (lambda: softmaxlib.softmax(x8, xp=np), None),
        "scipy.special.softmax(x, axis=-1), 1x8": (lambda: scipy.special.softmax(x8, axis=-1), None),
    }
    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(numpy_native.get_num_threads())
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        label = f"{shape[0]}x{shape[1]}"
        peer = f"torch.softmax(x, -1), {label}" if torch is not None else None
        c[f"softmax(x), {label}"] = ((lambda x=x: softmaxlib.softmax(x)), peer)
        if torch is not None:
            t = torch.from_numpy(x)
            c[peer] = ((lambda t=t: torch.softmax(t, -1)), None)
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    c = cases()
    for f, _ in c.values():  # warm up
        for _ in range(200):
            f()
    samples = {name: [] for name in c}
    for _ in range(args.rounds):
        for name, (f, _) in c.items():
            t0 = time.perf_counter()
            for _ in range(args.calls):
                f()
            samples[name].append((time.perf_counter() - t0) / args.calls)
    print(f"threads {numpy_native.get_num_threads()}, isa {numpy_native.info()['isa']}, "
          f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds of {args.calls} calls")
    print("| case | median per call (µs) | / torch (median of rounds) |\n|---|---|---|")
    for name, s in samples.items():
        peer = c[name][1]
        ratio = ""
        if peer is not None:
            ratio = f"{statistics.median(a / b for a, b in zip(s, samples[peer], strict=True)):.2f}"
        print(f"| {name} | {statistics.median(s) * 1e6:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
