"""Several builds of the extension in one process, timed in interleaved rounds.

Each build's ``_kernels`` module is loaded under its own package name, so their
kernels run side by side in the same process, on the same arrays: the rounds
alternate the builds call by call, which cancels the slow drift of a shared
machine that separate processes cannot. Times the kernel entry point
``compute(op, alg, dtype, x, axes, y, where)`` (the same in every build compared
here), float32, on the shapes of the report's bars and the accuracy checks:

    python benchmarks/builds.py old=/path/tree-a new=/path/tree-b [...] [--rounds 41] [--filter 64x32000]

Prints, per case, each build's median time and the median over rounds of the
paired ratio against the first build.
"""

import argparse
import glob
import importlib.util
import statistics
import time

import numpy as np

OPS = {"softmax": 0, "log_softmax": 1, "logsumexp": 2}
ALGS = {"three-pass": 0, "three-pass-reload": 1, "online": 2, "two-pass": 3}


def load(tag, tree):
    path = glob.glob(f"{tree}/softmaxlib/_kernels*.so")[0]
    spec = importlib.util.spec_from_file_location(f"{tag}._kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases():
    rng = np.random.default_rng(0)
    for shape in ((64, 32000), (1, 2**24)):
        x = (2 * rng.standard_normal(shape)).astype(np.float32)
        dominated = x.copy()
        dominated[:, 0] = dominated.max(axis=1) + 30  # one logit 30 above the rest of its row
        for rows, label in ((x, "N(0,4)"), (dominated, "max+30")):
            for op in OPS:
                for alg in ALGS:
                    yield f"{shape[0]}x{shape[1]} {label} {op} {alg}", rows, OPS[op], ALGS[alg], 1
    z = (2 * rng.standard_normal((4096, 1024))).astype(np.float32)
    yield "4096x1024 softmax reload 1t", z, 0, 1, 1
    yield "4096x1024 softmax reload 2t", z, 0, 1, 2
    w = (2 * rng.standard_normal((256, 128))).astype(np.float32)
    yield "256x128 softmax reload 1t", w, 0, 1, 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("builds", nargs="+", help="NAME=TREE, the first the base")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--filter", default="")
    args = parser.parse_args()
    builds = [(name, load(name, tree)) for name, tree in (b.split("=", 1) for b in args.builds)]
    names = [n for n, _ in builds]
    print(f"{'case':44s} " + " ".join(f"{n + ' us':>11s}" for n in names)
          + " " + " ".join(f"{n + '/' + names[0]:>12s}" for n in names[1:]))
    for label, x, op, alg, threads in cases():
        if args.filter not in label:
            continue
        y = np.empty(x.shape[:1] if op == 2 else x.shape, np.float32)
        for _, k in builds:
            k.set_num_threads(threads)
            k.compute(op, alg, 0, x, 2, y, None)
        t0 = time.perf_counter(); builds[0][1].compute(op, alg, 0, x, 2, y, None)
        loops = max(1, int(2e-3 / (time.perf_counter() - t0)))
        times = {n: [] for n in names}
        for r in range(args.rounds):
            order = builds if r % 2 == 0 else builds[::-1]
            for n, k in order:
                t = time.perf_counter()
                for _ in range(loops):
                    k.compute(op, alg, 0, x, 2, y, None)
                times[n].append((time.perf_counter() - t) / loops)
        med = [statistics.median(times[n]) for n in names]
        paired = [statistics.median(b / a for a, b in zip(times[names[0]], times[n])) for n in names[1:]]
        print(f"{label:44s} " + " ".join(f"{m * 1e6:11.1f}" for m in med) + " "
              + " ".join(f"{p:12.3f}" for p in paired), flush=True)


if __name__ == "__main__":
    main()
