"""The issue-3 bar for the native path, side by side in one run (float32).

    python benchmarks/native_bar.py [--isa avx2] [--repeat 21]

Prints medians (ms) of: 64x32000 vs torch.softmax (1 thread) and
scipy.special.softmax; 1x2^24 two-pass vs three-pass-reload vs x.copy();
4096x1024 with 1 and 2 threads; per-call time on a 1x8 array vs scipy, through
the public softmaxlib.softmax.
"""

import argparse
import time

import numpy as np

import softmaxlib
from softmaxlib import _native_loader as native


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--isa", default=None)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    r = args.repeat
    rng = np.random.default_rng(0)
    isa = args.isa or native.info()["isa"]
    with native.forced_isa(isa):
        native.set_num_threads(1)
        print(f"ISA {isa}; float32; medians of {r} runs (ms)")

        x = rng.standard_normal((64, 32000)).astype(np.float32)
        ours = median_ms(lambda: softmaxlib.softmax(x), r)
        line = f"64x32000: softmaxlib auto {ours:.3f}"
        try:
            import scipy.special

            sp = median_ms(lambda: scipy.special.softmax(x, axis=-1), r)
            line += f" | scipy {sp:.3f} ({sp / ours:.1f}x)"
        except ImportError:
            pass
        try:
            import torch

            torch.set_num_threads(1)
            xt = torch.from_numpy(x)
            tt = median_ms(lambda: torch.softmax(xt, dim=-1), r)
            line += f" | torch(1 thread) {tt:.3f} ({tt / ours:.1f}x)"
        except ImportError:
            pass
        print(line)

        x = rng.standard_normal((1, 1 << 24)).astype(np.float32)
        cp = median_ms(x.copy, r)
        tp = median_ms(lambda: softmaxlib.softmax(x, axis=1, algorithm="two-pass"), r)
        rl = median_ms(lambda: softmaxlib.softmax(x, axis=1, algorithm="three-pass-reload"), r)
        print(f"1x2^24: two-pass {tp:.2f} | three-pass-reload {rl:.2f} ({rl / tp:.2f}x) | "
              f"x.copy() {cp:.2f} (two-pass / copy {tp / cp:.2f})")

        x = rng.standard_normal((4096, 1024)).astype(np.float32)
        t1 = median_ms(lambda: softmaxlib.softmax(x), r)
        native.set_num_threads(2)
        t2 = median_ms(lambda: softmaxlib.softmax(x), r)
        native.set_num_threads(1)
        print(f"4096x1024 auto: 1 thread {t1:.3f} | 2 threads {t2:.3f} (speed-up {t1 / t2:.2f}x)")

        x = rng.standard_normal((1, 8)).astype(np.float32)
        us = median_ms(lambda: softmaxlib.softmax(x), r * 50) * 1e3
        line = f"1x8 per call: softmaxlib {us:.2f} us"
        try:
            import scipy.special

            sp = median_ms(lambda: scipy.special.softmax(x, axis=-1), r * 50) * 1e3
            line += f" | scipy {sp:.2f} us (ratio {us / sp:.2f})"
        except ImportError:
            pass
        print(line)


if __name__ == "__main__":
    main()
