"""One thread against two on batches of short rows and on long rows (float32 softmax).

For each shape, each round times a loop of calls with ``set_num_threads(1)`` and
one with ``set_num_threads(2)``, back to back (interleaved rounds); the table gives
the median time per call of each, the median over rounds of their ratio, and the
ratio of the best rounds (the least disturbed by other load). Calls
follow each other at once, so the pool's workers are still spinning when the next
call comes (the cheapest wake). The crossover where two threads start paying off is
what the split points in softmaxlib/_native/layout.cc (``ParallelThresholds``) are
set from: ``--split-everything`` lowers them for the run, so that two threads are used
at every size, and the crossover shows. Run from the repository root on two cores:

    taskset -c 0,1 python benchmarks/threads.py --split-everything [--rounds 15] [--seconds 0.02]

``--kept`` times ``[softmax(x) for _ in range(5)]`` instead (every output kept alive
until the five are done, so each call writes fresh pages), for 4096x1024 and
1x2^24; the issue's bar is two threads at least 1.7x as fast as one. Measure that
also in two processes (``taskset -c 0`` against ``taskset -c 0,1``, one thread each
way of counting) to see the machine's own scaling.
"""

import argparse
import statistics
import time

import numpy as np

import softmaxlib
from softmaxlib._backends import numpy_native
from softmaxlib._native_loader import kernels

SHAPES = ((64, 128), (128, 128), (256, 128), (512, 128), (1024, 128), (16, 1024), (32, 1024), (64, 1024),
          (256, 1024), (4096, 1024), (1, 1 << 14), (1, 1 << 15), (1, 1 << 16), (1, 1 << 17), (1, 1 << 18),
          (1, 1 << 19), (1, 1 << 20))
KEPT_SHAPES = ((4096, 1024), (1, 1 << 24))


def _time(f, seconds):
    calls, t0 = 0, time.perf_counter()
    while True:
        f()
        calls += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return t / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.02, help="time per case per round")
    parser.add_argument("--kept", action="store_true", help="five calls with their outputs kept alive")
    parser.add_argument("--split-everything", action="store_true",
                        help="two threads at every size (the split points lowered for this run)")
    args = parser.parse_args()
    if args.split_everything:
        kernels._set_parallel_thresholds(1, 1)
    print(f"split points (min elements, min row to split): {kernels._parallel_thresholds()}")
    rng = np.random.default_rng(0)
    print(f"isa {numpy_native.info()['isa']}, {args.rounds} rounds, "
          f"{'5 calls with outputs kept' if args.kept else 'one call'} per timing")
    print("| shape | 1 thread (µs) | 2 threads (µs) | 1 thread / 2 threads | best 1 / best 2 |\n|---|---|---|---|---|")
    for shape in KEPT_SHAPES if args.kept else SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        if args.kept:
            def f(x=x):
                return [softmaxlib.softmax(x) for _ in range(5)]
        else:
            def f(x=x):
                return softmaxlib.softmax(x)
        one, two = [], []
        for _ in range(args.rounds):
            for n, samples in ((1, one), (2, two)):
                numpy_native.set_num_threads(n)
                f()  # wake the pool
                samples.append(_time(f, args.seconds))
        ratio = statistics.median(a / b for a, b in zip(one, two, strict=True))
        print(f"| {shape[0]}x{shape[1]} | {statistics.median(one) * 1e6:.1f} | {statistics.median(two) * 1e6:.1f} "
              f"| {ratio:.2f} | {min(one) / min(two):.2f} |", flush=True)


if __name__ == "__main__":
    main()
