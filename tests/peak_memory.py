"""Peak memory of one softmaxlib call beyond its output, as a multiple of its input.

Measured in a fresh Python process from the resident set's high-water mark
(Linux ``VmHWM``, reset through ``/proc/self/clear_refs``), so that it counts
every allocation: NumPy's (which ``tracemalloc`` sees) and the native
extension's C++ buffers (which it does not). The child process:

1. runs ``setup`` (Python source that defines ``x``, the input, and ``call``,
   a function of no arguments making the measured call) with ``n`` = 256 and
   calls ``call()`` once, so that imports, the thread pool and the lazily
   initialised tables are in place before anything is measured;
2. runs ``setup`` again with the ``n`` asked for, returns freed heap memory to the
   system (``malloc_trim``) and reads its resident set;
3. resets the high-water mark, calls ``call()`` and reads the mark again.

The result is ``(mark - resident before - bytes of the result) / x.nbytes``.
glibc's threshold for serving an allocation with its own mapping is pinned at
128 KiB (``MALLOC_MMAP_THRESHOLD_``): by default it grows after a large block is
freed, and later buffers would then reuse heap pages that are already resident
and go unseen.
"""

import os
import subprocess
import sys

_CHILD = r"""
import ctypes, sys
import numpy as np

def resident(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(key)

def result_bytes(y):
    if isinstance(y, tuple):
        return sum(result_bytes(v) for v in y)
    return np.asarray(y).nbytes

setup, n = sys.argv[1], int(sys.argv[2])
space = {"n": 256}
exec(setup, space)
space["call"]()
space = {"n": n}
exec(setup, space)
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = resident("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
y = space["call"]()
mark = resident("VmHWM")
print((mark - before - result_bytes(y)) / space["x"].nbytes)
"""


def available():
    """Whether the measurement can run here (Linux's /proc and glibc)."""
    return sys.platform.startswith("linux") and os.access("/proc/self/clear_refs", os.W_OK)


def peak_extra(setup, n, *, env=None):
    """Peak memory beyond the result of ``call()`` defined by ``setup`` (see the module
    docstring), as a multiple of ``x.nbytes``, with ``n`` bound in ``setup``."""
    child_env = dict(os.environ if env is None else env)
    child_env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    done = subprocess.run([sys.executable, "-c", _CHILD, setup, str(n)], capture_output=True, text=True,
                          env=child_env, check=False)
    if done.returncode != 0:
        msg = f"the measuring process failed:\n{done.stderr}"
        raise RuntimeError(msg)
    return float(done.stdout.split()[-1])


_PRELUDE = "import numpy as np\nimport softmaxlib\nrng = np.random.default_rng(0)\n"


def _case(body):
    return _PRELUDE + body


#: The inputs whose peak extra memory is held to a bar: name -> ``setup`` source,
#: with ``n`` the number of elements of the input (a power of two, at least 2^12).
CASES = {
    "contiguous row, softmax": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\ncall = lambda: softmaxlib.softmax(x)"),
    "strided row x[:, ::2], softmax": _case(
        "x = rng.standard_normal((1, 2 * n), dtype=np.float32)[:, ::2]\ncall = lambda: softmaxlib.softmax(x)"),
    "negative strides x[::-1, ::-1], log_softmax": _case(
        "x = rng.standard_normal((64, n // 64), dtype=np.float32)[::-1, ::-1]\n"
        "call = lambda: softmaxlib.log_softmax(x)"),
    "Fortran order, axis=None, log_softmax": _case(
        "x = np.asfortranarray(rng.standard_normal((1024, n // 1024), dtype=np.float32))\n"
        "call = lambda: softmaxlib.log_softmax(x, axis=None)"),
    "leading axis of a tall array, axis=0, softmax": _case(
        "x = rng.standard_normal((n // 2, 2), dtype=np.float32)\ncall = lambda: softmaxlib.softmax(x, axis=0)"),
    "Fortran order, axis=1, softmax": _case(
        "x = np.asfortranarray(rng.standard_normal((64, n // 64), dtype=np.float32))\n"
        "call = lambda: softmaxlib.softmax(x, axis=1)"),
    "masked row, (1, n) mask, softmax": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\nw = rng.random((1, n)) < 0.7\n"
        "call = lambda: softmaxlib.softmax(x, where=w)"),
    "masked row, (n,) mask, log_softmax": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\nw = rng.random(n) < 0.7\n"
        "call = lambda: softmaxlib.log_softmax(x, where=w)"),
    "masked row, logsumexp": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\nw = rng.random((1, n)) < 0.7\n"
        "call = lambda: softmaxlib.logsumexp(x, where=w)"),
    "broadcast mask (n // 64,) over (64, n // 64), softmax": _case(
        "x = rng.standard_normal((64, n // 64), dtype=np.float32)\nw = rng.random(n // 64) < 0.7\n"
        "call = lambda: softmaxlib.softmax(x, where=w)"),
    "masked row with a temperature, softmax": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\nw = rng.random((1, n)) < 0.7\n"
        "call = lambda: softmaxlib.softmax(x, where=w, temperature=2.0)"),
    "float16, three-pass-reload, softmax": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32).astype(np.float16)\n"
        "call = lambda: softmaxlib.softmax(x, algorithm='three-pass-reload')"),
    "big-endian '>f4', softmax": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32).astype('>f4')\ncall = lambda: softmaxlib.softmax(x)"),
    "big-endian '>f4', logsumexp": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32).astype('>f4')\ncall = lambda: softmaxlib.logsumexp(x)"),
    "big-endian '>f8', logsumexp, masked": _case(
        "x = rng.standard_normal((1, n)).astype('>f8')\nw = rng.random((1, n)) < 0.7\n"
        "call = lambda: softmaxlib.logsumexp(x, where=w)"),
    "big-endian '>f4', log_softmax, axis=0": _case(
        "x = rng.standard_normal((n // 64, 64), dtype=np.float32).astype('>f4')\n"
        "call = lambda: softmaxlib.log_softmax(x, axis=0)"),
    "np.memmap, logsumexp": _case(
        "import tempfile\nf = tempfile.TemporaryFile()\n"
        "rng.standard_normal(n, dtype=np.float32).tofile(f)\nf.flush()\n"
        "x = np.memmap(f, dtype=np.float32, mode='r', shape=(n,))\nx.sum()\n"
        "call = lambda: softmaxlib.logsumexp(x)"),
    "softmax_topk, masked row, k=8": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\nw = rng.random((1, n)) < 0.7\n"
        "call = lambda: softmaxlib.softmax_topk(x, 8, where=w)"),
    "stablemax, masked row": _case(
        "x = rng.standard_normal((1, n), dtype=np.float32)\nw = rng.random((1, n)) < 0.7\n"
        "call = lambda: softmaxlib.stablemax(x, where=w)"),
    "log_stablemax, strided row": _case(
        "x = rng.standard_normal((1, 2 * n), dtype=np.float32)[:, ::2]\n"
        "call = lambda: softmaxlib.log_stablemax(x)"),
}


def bar(name):
    """The most extra memory the input ``name`` of CASES may take, x the input: a
    fraction of it, except float16 with three-pass-reload, which keeps the row's
    float32 exps by design (2x the input)."""
    return 2.1 if name == "float16, three-pass-reload, softmax" else 0.1
