"""The generic fast path's bar, side by side in one run (float32, one thread).

    python benchmarks/generic_bar.py [--rounds 41] [--shape 64 32000]

On array-api-strict (no native path: softmaxlib runs the generic one) softmaxlib's
softmax, log_softmax and logsumexp against ``scipy.special``'s with SCIPY_ARRAY_API=1
on the same array, and against max/exp/sum/divide written by hand in the same
namespace; then PyTorch CPU tensors through the same path against torch's own
functions (informational: PyTorch's native path is separate work).

Each round runs every contender once, in a new random order (interleaved rounds, so
that a slow spell of the machine, or what one contender leaves in the allocator, hits
all alike); the table gives medians in ms and the
ratios ours / theirs (the bar: softmax at most 1.1x SciPy and 1.15x by hand).
"""

import os

# Before anything imports SciPy (its array-API dispatch is read once, at import) or
# starts a thread pool.
os.environ["SCIPY_ARRAY_API"] = "1"
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"
os.environ["SOFTMAXLIB_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import softmaxlib  # noqa: E402


def interleaved_medians(contenders, rounds):
    """{name: median seconds} over ``rounds`` rounds, each running every contender once."""
    names = list(contenders)
    for fn in contenders.values():  # warm-up (first-call costs, caches)
        fn()
    times = {name: [] for name in names}
    order = random.Random(0)
    for _ in range(rounds):
        # A new order each round: what one contender leaves behind (SciPy's logsumexp
        # frees many large temporaries) then falls on each of the others alike.
        order.shuffle(names)
        for name in names:
            t = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def by_hand(xp):
    """The four-line max/exp/sum/divide (and its log and logsumexp forms) in ``xp``."""

    def softmax(x):
        e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
        return e / xp.sum(e, axis=-1, keepdims=True)

    def log_softmax(x):
        z = x - xp.max(x, axis=-1, keepdims=True)
        return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))

    def logsumexp(x):
        m = xp.max(x, axis=-1, keepdims=True)
        return xp.squeeze(m, axis=-1) + xp.log(xp.sum(xp.exp(x - m), axis=-1))

    return {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}


def report(title, rows):
    """rows: (op, {name: seconds}, ours, [others]) -> printed table with ratios."""
    print(f"\n{title}")
    for op, medians, ours, others in rows:
        cells = [f"{ours} {medians[ours] * 1e3:7.3f} ms"]
        for other in others:
            if other in medians:
                ratio = medians[ours] / medians[other]
                cells.append(f"{other} {medians[other] * 1e3:7.3f} ms (ours/{other} {ratio:.3f})")
        print(f"  {op:12s} " + " | ".join(cells))


def strict_section(values, rounds):
    import array_api_strict as xp
    import scipy.special

    x = xp.asarray(values)
    hand = by_hand(xp)
    rows = []
    for op in ("softmax", "log_softmax", "logsumexp"):
        ours = getattr(softmaxlib, op)
        contenders = {
            "softmaxlib": lambda op=ours: op(x),
            "by hand": lambda op=op: hand[op](x),
            "scipy": lambda op=op: getattr(scipy.special, op)(x, axis=-1),
        }
        medians = interleaved_medians(contenders, rounds)
        rows.append((op, medians, "softmaxlib", ["by hand", "scipy"]))
    report(f"array-api-strict {array_api_version(xp)}, float32 {values.shape}", rows)


def torch_section(values, rounds):
    import scipy.special
    import torch

    torch.set_num_threads(1)
    t = torch.from_numpy(values)
    torch_ops = {
        "softmax": torch.softmax,
        "log_softmax": torch.log_softmax,
        "logsumexp": torch.logsumexp,
    }
    rows = []
    for op in ("softmax", "log_softmax", "logsumexp"):
        ours = getattr(softmaxlib, op)
        contenders = {
            "softmaxlib": lambda op=ours: op(t),
            "torch": lambda op=op: torch_ops[op](t, -1),
            "scipy": lambda op=op: getattr(scipy.special, op)(t, axis=-1),
        }
        medians = interleaved_medians(contenders, rounds)
        rows.append((op, medians, "softmaxlib", ["torch", "scipy"]))
    title = f"torch {torch.__version__} CPU tensor (1 thread; informational), "
    title += f"float32 {values.shape}"
    report(title, rows)


def cpu_model():
    """The CPU's model name (Linux), else the platform's word for it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def array_api_version(xp):
    return getattr(xp, "__version__", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds (at least 21)")
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 32000))
    args = parser.parse_args()
    if args.rounds < 21:
        parser.error("--rounds must be at least 21")
    import scipy

    print(
        f"generic path bar: {cpu_model()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, softmaxlib {softmaxlib.__version__}; "
        f"medians of {args.rounds} interleaved rounds"
    )
    values = np.random.default_rng(0).standard_normal(tuple(args.shape)).astype(np.float32)
    strict_section(values, args.rounds)
    torch_section(values, args.rounds)


if __name__ == "__main__":
    main()
