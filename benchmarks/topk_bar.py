"""The fused softmax + top-k bar of issue 8, measured side by side in one run.

float32, 8 x 128256 (a language model's vocabulary), k = 50, one core:
softmaxlib's native ``softmax_topk`` (for each ISA this CPU has) against
``torch.topk(torch.softmax(x, -1), 50)`` with ``torch.set_num_threads(1)`` and
against ``scipy.special.softmax`` followed by ``np.argpartition`` and sorting the
k winners. Bar: >= 4x faster than torch, >= 20x faster than SciPy.

Run (from the repository root, on an otherwise idle machine)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/topk_bar.py

Prints the median of ``--repeats`` timings of each (each timing the mean of
``--number`` calls; the rounds interleave the contenders) and the ratios.
(``forced_isa`` switches the ISA unit process-wide; its cost, a lock and two
calls, is inside the softmaxlib timings.)
"""

import argparse
import os
import statistics
import timeit

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import numpy as np
import scipy.special

import softmaxlib
from softmaxlib import _native_loader as native


def _interleaved_medians(fns, number, repeats):
    """Median seconds per call of each fn; the repeats are interleaved (one timing of
    every fn per round), so a busy machine slows them alike. Each timing follows an
    untimed call of the same fn, so that none pays for the caches another left."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n = number.get(name, 1)
            fn()
            times[name].append(timeit.timeit(fn, number=n) / n)
    return {name: statistics.median(t) for name, t in times.items()}


def _scipy_topk(x, k):
    p = scipy.special.softmax(x, axis=-1)
    idx = np.argpartition(p, -k, axis=-1)[:, -k:]
    vals = np.take_along_axis(p, idx, axis=-1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    return np.take_along_axis(vals, order, axis=-1), np.take_along_axis(idx, order, axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=128256)
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--number", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.cols), dtype=np.float32) * 3
    k = args.k
    native.set_num_threads(1)
    fns, number = {}, {}

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        xt = torch.from_numpy(x)
        fns["torch.topk(torch.softmax)"] = lambda: torch.topk(torch.softmax(xt, -1), k)
        number["torch.topk(torch.softmax)"] = args.number
    fns["scipy softmax + argpartition"] = lambda: _scipy_topk(x, k)
    number["scipy softmax + argpartition"] = max(1, args.number // 4)
    ref_v, ref_i = _scipy_topk(x.astype(np.float64), k)

    def ours(isa):
        def run():
            with native.forced_isa(isa):
                return softmaxlib.softmax_topk(x, k, axis=1)

        return run

    for isa in ("avx512f", "avx2"):
        if isa not in native.info()["isas_supported"]:
            continue
        v, i = ours(isa)()
        assert (i == ref_i).all() and np.allclose(v, ref_v, rtol=1e-6, atol=0), isa
        fns[f"softmaxlib softmax_topk [{isa}]"] = ours(isa)
        number[f"softmaxlib softmax_topk [{isa}]"] = args.number
    results = _interleaved_medians(fns, number, args.repeats)

    print(f"float32 {args.rows}x{args.cols}, k={k}, one thread; median of {args.repeats} x {args.number} calls")
    for name, t in results.items():
        print(f"  {name:36s} {t * 1e3:8.3f} ms")
    for name, t in results.items():
        if not name.startswith("softmaxlib"):
            continue
        ratios = ", ".join(
            f"{t_other / t:5.1f}x vs {other}" for other, t_other in results.items() if not other.startswith("softmaxlib")
        )
        print(f"  {name}: {ratios}")


if __name__ == "__main__":
    main()
