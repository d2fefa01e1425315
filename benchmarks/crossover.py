"""Measure where algorithm="auto" should switch algorithms on the native path.

For each row length (one row of n elements: the kernels finish a row before
starting the next, so the size of one row is what decides), dtype and op, times
every algorithm single-threaded (median of repeats) and prints a Markdown table
with the fastest. In cache, three-pass-reload (one exp per element) tends to win;
out of cache, two-pass (two memory passes, no max pass) does. One row timed again
and again stays in cache up to the L2's size, so ``--grid`` also times arrays of
many rows (total size x row size): two-pass's time over the max-based
algorithm's that "auto" would otherwise run, interleaved. What
``softmaxlib._native_loader.auto_algorithm`` does follows both; the recorded runs are in
benchmarks/crossover.md.

    python benchmarks/crossover.py [--isa avx2] [--threads 1] [--budget 0.2] [--grid]
"""

import argparse
import time

import numpy as np

import softmaxlib
from softmaxlib import _native_loader as native

ALGORITHMS = ("three-pass", "three-pass-reload", "online", "two-pass")
SIZES = [1 << k for k in range(10, 25)]  # every power of two: the switch is sharp


def median_time(fn, budget):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", default=None, help="force an ISA (default: the selected one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--ops", default="softmax,log_softmax,logsumexp")
    parser.add_argument("--grid", action="store_true",
                        help="time arrays of many rows (total x row sizes) instead of one row")
    args = parser.parse_args()
    native.set_num_threads(args.threads)
    if args.grid:
        return grid(args)
    info = native.info()
    isa = args.isa or info["isa"]
    rng = np.random.default_rng(0)
    print(f"ISA {isa}, threads {args.threads}, median of repeats within {args.budget}s\n")
    print("| op | dtype | row length | row bytes | " + " | ".join(f"{a} (µs)" for a in ALGORITHMS) + " | fastest | two-pass / reload |")
    print("|---" * (6 + len(ALGORITHMS)) + "|")
    with native.forced_isa(isa):
        for op in args.ops.split(","):
            for dtype in args.dtypes.split(","):
                for n in SIZES:
                    x = (rng.standard_normal((1, n)) * 3).astype(dtype)
                    t = {a: median_time(lambda a=a: getattr(softmaxlib, op)(x, axis=1, algorithm=a), args.budget)
                         for a in ALGORITHMS}
                    best = min(t, key=t.get)
                    ratio = t["two-pass"] / t["three-pass-reload"]
                    print(f"| {op} | {dtype} | {n} | {x.nbytes // 1024} KiB | "
                          + " | ".join(f"{t[a] * 1e6:.1f}" for a in ALGORITHMS)
                          + f" | {best} | {ratio:.2f} |", flush=True)


GRID_TOTAL_MIB = (4, 8, 16, 24, 32, 48)
GRID_ROW_KIB = (1, 4, 16, 64, 256, 1024)
MAX_BASED = {"softmax": "three-pass-reload", "log_softmax": "three-pass", "logsumexp": "three-pass"}


def interleaved_medians(fns, rounds=15):
    """Median seconds of each fn over rounds that time every fn once (after two warm-ups)."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t)) for name, t in times.items()}


def grid(args):
    isa = args.isa or native.info()["isa"]
    rng = np.random.default_rng(0)
    ops = args.ops.split(",")
    print(f"ISA {isa}, threads {args.threads}: two-pass time / max-based time "
          f"({', '.join(f'{op}: {MAX_BASED[op]}' for op in ops)}), medians of interleaved rounds\n")
    print("| dtype | array | " + " | ".join(f"{r} KiB rows" for r in GRID_ROW_KIB) + " |")
    print("|---" * (2 + len(GRID_ROW_KIB)) + "|")
    with native.forced_isa(isa):
        for dtype in args.dtypes.split(","):
            itemsize = np.dtype(dtype).itemsize
            for total_mib in GRID_TOTAL_MIB:
                cells = []
                for row_kib in GRID_ROW_KIB:
                    n = row_kib * 1024 // itemsize
                    x = (rng.standard_normal(((total_mib << 20) // (n * itemsize), n)) * 3).astype(dtype)
                    ratios = []
                    for op in ops:
                        t = interleaved_medians({a: (lambda a=a: getattr(softmaxlib, op)(x, axis=1, algorithm=a))
                                                 for a in ("two-pass", MAX_BASED[op])})
                        ratios.append(t["two-pass"] / t[MAX_BASED[op]])
                    cells.append(" / ".join(f"{r:.2f}" for r in ratios))
                print(f"| {dtype} | {total_mib} MiB | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
