"""What log1p accuracy costs: an old build against a new one, in alternating processes.

log_softmax and logsumexp are accurate to their condition number in the new build:
the max-based algorithms take log1p of the sum beside the max, and rows the max
dominates (sum exp(x - max) < 2) are summed again beside their max for those two
ops.  This times both builds on the same shapes, every algorithm and op, float32,
one thread:

* ``64x32000`` and ``1x2^24`` rows of N(0, 4) logits (the 3% bar: no row there is
  dominated, so nothing but the finishing step changes);
* the same shapes with one logit 30 above the rest of its row (every row dominated:
  log_softmax and logsumexp read the row once more; softmax is unchanged).

Each round runs one process per build (the order alternates round to round), each
process times every case (median of short repeats); the report is the median over
rounds of each build's time and of the paired per-round ratio new/old.

Run from the repository root, with two trees that each hold a built extension
(``softmaxlib/_kernels*.so``) and a ``sitecustomize.py`` that drops the shared
editable install (see the project's notes)::

    python benchmarks/accuracy_speed.py --old /path/to/main-tree --new . --rounds 21

On a loaded machine the paired ratios spread by 0.8-1.2 round to round; use many
rounds and read the medians.
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = {"64x32000": (64, 32000), "1x2^24": (1, 2**24)}
OPS = ("softmax", "log_softmax", "logsumexp")


def _time(fn, budget):
    """Median seconds per call of ``fn`` over repeats filling about ``budget`` seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    loops = max(1, int(2e-3 / max(one, 1e-9)))
    samples = []
    end = time.perf_counter() + budget
    while len(samples) < 3 or (time.perf_counter() < end and len(samples) < 100):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t) / loops)
    return statistics.median(samples)


def worker(budget):
    """One process: time every case with the softmaxlib on the path; print JSON."""
    import numpy as np

    import softmaxlib

    rng = np.random.default_rng(0)
    out = {}
    for shape_name, shape in SHAPES.items():
        normal = (2 * rng.standard_normal(shape)).astype(np.float32)
        dominated = normal.copy()
        top = np.argmax(normal, axis=-1)
        dominated[np.arange(shape[0]), top] += 30  # 30 above every other entry of its row
        for rows_name, x in (("N(0,4)", normal), ("max+30", dominated)):
            for algorithm in softmaxlib.ALGORITHMS:
                for op in OPS:
                    fn = getattr(softmaxlib, op)
                    out[f"{shape_name} {rows_name} {algorithm} {op}"] = _time(
                        lambda fn=fn, x=x, a=algorithm: fn(x, algorithm=a), budget
                    )
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="tree of the old build")
    parser.add_argument("--new", default=".", help="tree of the new build")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per case per process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.budget)
    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    times = {name: collections.defaultdict(list) for name in trees}
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for name in order:
            env = dict(os.environ, PYTHONPATH=trees[name], SOFTMAXLIB_NUM_THREADS="1")
            run = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", "--old", "-", "--budget", str(args.budget)],
                cwd=trees[name], env=env, capture_output=True, text=True, check=True,
            )
            for case, seconds in json.loads(run.stdout).items():
                times[name][case].append(seconds)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    print(f"{'case':48s} {'old ms':>9s} {'new ms':>9s} {'new/old':>8s}  (median of paired ratios)")
    for case in times["old"]:
        old, new = times["old"][case], times["new"][case]
        ratio = statistics.median(b / a for a, b in zip(old, new))
        print(f"{case:48s} {statistics.median(old) * 1e3:9.3f} {statistics.median(new) * 1e3:9.3f} {ratio:8.3f}")


if __name__ == "__main__":
    main()
