"""Measure where algorithm="auto" should switch algorithms on the native path.

For each row length (one row of n elements: the kernels finish a row before
starting the next, so the size of one row is what decides), dtype and op, times
every algorithm single-threaded (median of repeats) and prints a Markdown table
with the fastest. In cache, three-pass-reload (one exp per element) tends to win;
out of cache, two-pass (two memory passes, no max pass) does. The switch point
found here is AUTO_TWO_PASS_MIN_ROW_BYTES in softmaxlib/_backends/numpy_native.py;
the recorded run is benchmarks/crossover.md.

    python benchmarks/crossover.py [--isa avx2] [--threads 1] [--budget 0.2]
"""

import argparse
import time

import numpy as np

from softmaxlib._backends import numpy_native

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
    args = parser.parse_args()
    numpy_native.set_num_threads(args.threads)
    info = numpy_native.info()
    isa = args.isa or info["isa"]
    rng = np.random.default_rng(0)
    print(f"ISA {isa}, threads {args.threads}, median of repeats within {args.budget}s\n")
    print("| op | dtype | row length | row bytes | " + " | ".join(f"{a} (µs)" for a in ALGORITHMS) + " | fastest | two-pass / reload |")
    print("|---" * (6 + len(ALGORITHMS)) + "|")
    with numpy_native.forced_isa(isa):
        for op in args.ops.split(","):
            for dtype in args.dtypes.split(","):
                for n in SIZES:
                    x = (rng.standard_normal((1, n)) * 3).astype(dtype)
                    t = {a: median_time(lambda a=a: numpy_native.compute(op, x, (1,), None, a), args.budget)
                         for a in ALGORITHMS}
                    best = min(t, key=t.get)
                    ratio = t["two-pass"] / t["three-pass-reload"]
                    print(f"| {op} | {dtype} | {n} | {x.nbytes // 1024} KiB | "
                          + " | ".join(f"{t[a] * 1e6:.1f}" for a in ALGORITHMS)
                          + f" | {best} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
