"""Per-call overhead of the NumPy path, piece by piece (benchmarks/overhead.md).

Interleaved rounds: each round times every case once (a loop of calls), and the
table gives the median per call over the rounds, so that load that comes and goes
hits every case alike. Run from the repository root:

    python benchmarks/overhead.py [--rounds 31] [--calls 5000]
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


def cases():
    rng = np.random.default_rng(0)
    x8 = rng.standard_normal((1, 8)).astype(np.float32)
    x1k = rng.standard_normal((1, 1024)).astype(np.float32)
    y8, y1k = np.empty_like(x8), np.empty_like(x1k)
    op, alg, code = OPS["softmax"], ALGORITHMS["three-pass-reload"], NUMPY_DTYPES[np.dtype(np.float32)]
    c = {
        "a pybind11 call with no arguments (get_num_threads)": kernels.get_num_threads,
        "np.empty((1, 8), float32)": lambda: np.empty((1, 8), np.float32),
        "np.exp(x), 1x8": lambda: np.exp(x8),
        "kernels.compute into a given y, 1x8 (binding + driver + kernel)": lambda: kernels.compute(
            op, alg, code, x8, 2, y8, None),
        "softmax(x), 1x8 (the short path)": lambda: softmaxlib.softmax(x8),
        "softmax(x, out=y), 1x8 (the short path)": lambda: softmaxlib.softmax(x8, out=y8),
        "softmax(x, xp=np), 1x8 (the full path)": lambda: softmaxlib.softmax(x8, xp=np),
        "scipy.special.softmax(x, axis=-1), 1x8": lambda: scipy.special.softmax(x8, axis=-1),
        "kernels.compute into a given y, 1x1024": lambda: kernels.compute(op, alg, code, x1k, 2, y1k, None),
        "softmax(x), 1x1024 (the short path)": lambda: softmaxlib.softmax(x1k),
        "softmax(x, xp=np), 1x1024 (the full path)": lambda: softmaxlib.softmax(x1k, xp=np),
    }
    try:
        import torch

        t1k = torch.from_numpy(x1k)
        c["torch.softmax(x, -1), 1x1024"] = lambda: torch.softmax(t1k, -1)
    except ImportError:
        pass
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    c = cases()
    for f in c.values():  # warm up
        for _ in range(100):
            f()
    samples = {name: [] for name in c}
    for _ in range(args.rounds):
        for name, f in c.items():
            t0 = time.perf_counter()
            for _ in range(args.calls):
                f()
            samples[name].append((time.perf_counter() - t0) / args.calls)
    print(f"threads {numpy_native.get_num_threads()}, isa {numpy_native.info()['isa']}, "
          f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds of {args.calls} calls")
    print("| case | median per call (µs) |\n|---|---|")
    for name, s in samples.items():
        print(f"| {name} | {statistics.median(s) * 1e6:.2f} |")


if __name__ == "__main__":
    main()
