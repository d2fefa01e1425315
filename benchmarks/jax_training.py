"""A JAX training step, softmaxlib against jax.nn, side by side (float32, CPU).

    python benchmarks/jax_training.py [--shape 64 32000] [--rounds 31] [--threads 1 default]

Times ``jax.jit(jax.grad(lambda x: (f(x) * w).sum()))`` (forward + backward) for
softmax, log_softmax and logsumexp (``w`` of the output's shape: per row for
logsumexp), softmaxlib against jax.nn, in interleaved rounds (one call of each
contender per round), and prints the medians (ms) and the speed-up.

Beside each speed-up it prints the ceiling: jax.nn's time over the traffic floor,
timed in the same rounds. For softmax and log_softmax the floor is a jitted
``x + 1`` plus a jitted ``x * w + x`` (what any forward + backward must read and
write: x in, y out; y and g in, dx out); for logsumexp, whose forward writes one
value per row and whose cotangent is one value per row, a jitted row max of x
plus a jitted ``x * w[:, None]`` (x in; x in, dx out). No implementation can beat
the floor, so no speed-up can exceed the ceiling.

The contenders, the floor and the residual count are the benchmark report's
(``softmaxlib._bench.sections.jax_training``); this script adds more rounds and
the table below. It also prints, per function, the residuals ``jax.grad`` keeps between the
forward and the backward pass (``jax.ad_checkpoint.print_saved_residuals``'s
list: count, elements and bytes), on the benchmark's shape.

Each thread setting runs in its own subprocess, because XLA fixes its threads
when it starts: ``1`` with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` and ``SOFTMAXLIB_NUM_THREADS=1``, pinned to
one core; ``default`` with XLA's and softmaxlib's defaults.
"""

import argparse
import json
import os
import subprocess
import sys

from crossover import interleaved_medians  # (this script's folder is on sys.path)

from softmaxlib._bench.sections.jax_section import SINGLE_THREAD_XLA_FLAGS


def worker(shape, rounds):
    """Measure every op in this process; return rows of plain data."""
    from softmaxlib._bench.sections import jax_training as t

    rows = []
    for op in t.OPS:
        x, w = t.inputs(op, shape)
        calls = {name: t.training_step(op, name, x, w) for name in (t.OURS_NAME, t.PEER_NAME)}
        calls[t.FLOOR_NAME] = t.traffic_floor(op, x, w)
        kept = {name: t.saved_residuals(t.loss_of(op, name, w), x) for name in (t.OURS_NAME, t.PEER_NAME)}
        rows.append({"op": op, "medians_s": interleaved_medians(calls, rounds), "residuals": kept})
    return rows


def run_setting(threads, shape, rounds):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if threads == "1":
        env.update(XLA_FLAGS=SINGLE_THREAD_XLA_FLAGS, SOFTMAXLIB_NUM_THREADS="1")
    command = [sys.executable, __file__, "--worker", "--shape", *map(str, shape), "--rounds", str(rounds)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"the {threads}-thread worker failed:\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(threads, shape, rounds, rows):
    print(f"\nthreads: {threads}; float32 {shape[0]}x{shape[1]}; medians of {rounds} interleaved rounds (ms)")
    print(f"{'op':12} {'softmaxlib':>10} {'jax.nn':>8} {'speed-up':>8} {'floor':>7} {'ceiling':>7}   "
          "residuals kept by grad (count/elements/bytes): softmaxlib | jax.nn")
    for r in rows:
        ours, theirs, floor = (r["medians_s"][name] * 1e3 for name in ("softmaxlib", "jax.nn", "traffic floor"))
        res = r["residuals"]
        kept = " | ".join(f"{c}/{e}/{b}" for c, e, b in (res["softmaxlib"], res["jax.nn"]))
        print(f"{r['op']:12} {ours:10.3f} {theirs:8.3f} {theirs / ours:7.2f}x {floor:7.3f} "
              f"{theirs / floor:6.2f}x   {kept}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 32000))
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--threads", nargs="+", choices=("1", "default"), default=("1", "default"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(args.shape)
    if args.worker:
        if os.environ.get("SOFTMAXLIB_NUM_THREADS") == "1":
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
        print(json.dumps(worker(shape, args.rounds)))
        return
    import softmaxlib._native_loader as native

    print(f"softmaxlib native ISA: {native.info()['isa']}; CPU: {os.cpu_count()} logical")
    for threads in args.threads:
        report(threads, shape, args.rounds, run_setting(threads, shape, args.rounds))


if __name__ == "__main__":
    main()
