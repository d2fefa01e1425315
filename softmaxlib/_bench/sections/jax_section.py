"""JAX section: jitted ``softmaxlib.softmax`` (the XLA FFI custom call) vs jitted ``jax.nn.softmax``.

A jitted ``x + 1`` (a fresh output of the same size) is the yardstick: one read
and one write, what XLA does at memory speed. XLA's CPU threads are fixed when JAX
starts, so the single-threaded run happens in a subprocess started with
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` and pinned to one core (threads = 1); the default
run is in this process (threads = None: XLA's default, which our custom call
shares through the FFI's intra-op thread pool).
"""

import dataclasses
import functools
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys

import softmaxlib
from softmaxlib._bench.arrays import make_logits
from softmaxlib._bench.harness import Harness
from softmaxlib._bench.peers import jax_softmax, to_jax
from softmaxlib._bench.results import (
    OURS, PEER, YARDSTICK, Failure, Measurement, SectionResult, add_ratios,
)

QUICK_SHAPES = ((256, 128), (64, 32000), (1, 2**20))
FULL_SHAPES = QUICK_SHAPES + ((1, 2**24),)
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _jitted(fn, x):
    import jax

    xj = to_jax(x)
    f = jax.jit(fn)
    return lambda: f(xj).block_until_ready()


def _measure_all(ctx, shapes, dtypes, peers, threads):
    out = []
    for dtype in dtypes:
        for shape in shapes:
            x = make_logits(shape, dtype)
            measure = functools.partial(ctx.measure, "jax", backend="jax", x=x, threads=threads)
            out.append(measure(lambda x=x: _jitted(softmaxlib.softmax, x),
                               implementation="softmaxlib (jit)", kind=OURS))
            if peers:
                out.append(measure(functools.partial(jax_softmax, x),
                                   implementation="jax.nn.softmax (jit)", kind=PEER))
            out.append(measure(lambda x=x: _jitted(lambda a: a + 1, x),
                               implementation="x + 1 (jit)", kind=YARDSTICK))
    return out


def _single_threaded(ctx, shapes, dtypes, peers):
    """The same cases in a subprocess with XLA's intra-op threads off, on one core.

    Returns (measurements, None), or ([], Failure) when the subprocess failed.
    """
    spec = {"shapes": [list(s) for s in shapes], "dtypes": list(dtypes), "peers": peers,
            "budget_s": ctx.harness.budget_s}
    what = "JAX single-threaded run (a subprocess; its table and plot panel are missing)"
    rows, failure = run_single_threaded("softmaxlib._bench.sections.jax_section", spec, what)
    return [Measurement(**{**r, "shape": tuple(r["shape"])}) for r in rows or ()], failure


def run_single_threaded(module, spec, what, extra_env=None):
    """``module._worker(json spec)`` in a subprocess with XLA's intra-op threads off
    (``SINGLE_THREAD_XLA_FLAGS``, plus ``extra_env``); the worker pins itself to one core
    and prints its result as JSON on its last line.

    Returns (that result, None), or (None, Failure) when the subprocess failed.
    """
    own = {"XLA_FLAGS": SINGLE_THREAD_XLA_FLAGS, "JAX_PLATFORMS": "cpu", **(extra_env or {})}
    env = {**os.environ, **own}
    code = f"import sys; import {module} as section; section._worker(sys.argv[1])"
    command = [sys.executable, "-c", code, json.dumps(spec)]
    advice = ("run the subprocess alone to see its whole output: "
              + shlex.join(["env", *(f"{k}={v}" for k, v in own.items()), "python", *command[1:]])
              + "; the results on XLA's default threads are unaffected")
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        return None, Failure(what, f"no result after {exc.timeout:.0f} s", advice)
    if proc.returncode != 0:
        return None, Failure(what, subprocess_error(proc.stderr, proc.returncode), advice)
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def pin_to_one_core():
    """The single-threaded worker's first step: run on the last usable CPU only."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})


#: Lines of a native stack dump (absl, glibc backtrace, faulthandler frames): never the error.
_STACK_FRAME = re.compile(r"^\s*(@\s+0x|#\d+\s+0x|\*\*\* .*stack trace|File \"|\^+$)")
#: Lines that state an error: a Python exception, an absl fatal log (F1202 ...), a signal.
_ERROR_LINE = re.compile(r"(Error|Exception|error:|Check failed|^F\d{4} |Fatal|Aborted|"
                         r"Segmentation fault|terminate called)")


def subprocess_error(stderr, returncode, tail=5):
    """What a failed subprocess said: how it ended, the last line that states an
    error, and the last ``tail`` lines of its stderr that are not stack frames."""
    if returncode < 0:
        try:
            ended = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            ended = f"killed by signal {-returncode}"
    else:
        ended = f"exit status {returncode}"
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    useful = [line for line in lines if not _STACK_FRAME.search(line)]
    errors = [line for line in useful if _ERROR_LINE.search(line)]
    last = useful[-tail:]
    if errors and errors[-1] not in last:
        last = [errors[-1], "...", *last]
    if not last:
        return f"{ended}, nothing on stderr"
    return f"{ended}; the end of its stderr:\n" + "\n".join(last)


def _worker(spec):
    """Entry point of the single-threaded subprocess: prints its measurements as JSON."""
    from softmaxlib._bench.context import BenchContext

    spec = json.loads(spec)
    pin_to_one_core()
    ctx = BenchContext(options=None, harness=Harness(budget_s=spec["budget_s"], progress_stream=None),
                       machine={})
    rows = _measure_all(ctx, [tuple(s) for s in spec["shapes"]], spec["dtypes"], spec["peers"], threads=1)
    print(json.dumps([dataclasses.asdict(m) for m in rows]))


def run(ctx):
    result = SectionResult(name="jax", title="JAX (jit, CPU)", backend="jax",
                           ratio_reference="softmaxlib (jit)")
    if importlib.util.find_spec("jax") is None:
        result.notes.append("jax not installed: section skipped")
        return result
    import jax

    from softmaxlib._backends import jax_ffi

    if not jax_ffi.available():
        result.notes.append("softmaxlib's JAX fast path is not available here (built without the XLA "
                            "FFI headers?): softmaxlib runs the generic fast path under jit")
    else:
        result.notes.append("softmaxlib runs the native kernels as an XLA FFI custom call")
    result.notes.append(f"devices: {[d.platform for d in jax.devices()]}; threads 1: a subprocess with "
                        f"XLA_FLAGS='{SINGLE_THREAD_XLA_FLAGS}' pinned to one core; threads "
                        "'library default': XLA's intra-op pool, shared by the custom call")
    shapes = QUICK_SHAPES if ctx.options.quick else FULL_SHAPES
    single, problem = _single_threaded(ctx, shapes, ctx.options.dtypes, ctx.options.peers)
    if problem:
        result.failures.append(problem)
    result.measurements.extend(single)
    result.measurements.extend(_measure_all(ctx, shapes, ctx.options.dtypes, ctx.options.peers, threads=None))
    add_ratios(result.measurements, preferred="softmaxlib (jit)")
    return result
