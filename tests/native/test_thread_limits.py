"""Limits on the pool: the thread cap, threads the system refuses, and the
warnings for SOFTMAXLIB_* values that cannot be taken as given.

Every check that changes the process's limits or environment runs in a
subprocess, bounded in time; none starts more than the cap's threads."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from softmaxlib._backends import numpy_native
from softmaxlib._native_loader import kernels

THREADS_PER_CPU = kernels.THREADS_PER_CPU

TIMEOUT_S = 120


def _run(code, env=None, launcher=()):
    """Runs ``code`` in a fresh interpreter of this tree; its CompletedProcess.

    ``launcher`` is a command that sets a limit and execs the interpreter (taskset,
    prlimit): a ``preexec_fn`` would run Python in a child forked from this
    multithreaded process, which JAX and CPython warn of, rightly.
    """
    return subprocess.run([*launcher, sys.executable, "-c", code], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def _cpus(cpus):
    """The launcher that runs a command on ``cpus`` only."""
    return ("taskset", "-c", ",".join(map(str, sorted(cpus))))


INFO = "import json; from softmaxlib._native_loader import info; print(json.dumps(info()))"


def test_cap_is_a_few_threads_per_usable_cpu():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert numpy_native.info()["max_threads"] == THREADS_PER_CPU * cpus


def test_set_num_threads_above_the_cap_warns_and_caps(threads):
    cap = numpy_native.info()["max_threads"]
    with pytest.warns(RuntimeWarning, match=f"above the cap of {cap}; using {cap}"):
        threads(2**31 - 1)
    assert numpy_native.get_num_threads() == cap
    x = np.random.default_rng(1).standard_normal((513, 301)).astype(np.float32)
    y = numpy_native.compute("softmax", x, (1,), None, "auto")
    threads(1)
    assert y.tobytes() == numpy_native.compute("softmax", x, (1,), None, "auto").tobytes()
    assert 1 <= numpy_native.info()["pool_threads"] <= cap


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or shutil.which("taskset") is None,
                    reason="needs sched_getaffinity and taskset (util-linux)")
def test_environment_count_above_the_cap_uses_the_cap():
    # One CPU allowed: the cap is THREADS_PER_CPU, whatever the machine.
    out = _run(INFO, {"SOFTMAXLIB_NUM_THREADS": "2147483647"}, launcher=_cpus({min(os.sched_getaffinity(0))}))
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    cap = THREADS_PER_CPU
    assert info["threads"] == info["max_threads"] == cap
    assert f"SOFTMAXLIB_NUM_THREADS='2147483647' is above the cap of {cap} threads" in out.stderr


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "3.5"])
def test_invalid_thread_count_warns_and_uses_the_cpus(value):
    out = _run(INFO, {"SOFTMAXLIB_NUM_THREADS": value})
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert info["threads"] == cpus
    assert f"RuntimeWarning: SOFTMAXLIB_NUM_THREADS={value!r} is not a whole number >= 1; using {cpus}" in out.stderr


def test_valid_thread_count_says_nothing():
    out = _run(INFO, {"SOFTMAXLIB_NUM_THREADS": " 3"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["threads"] == 3
    assert "Warning" not in out.stderr


def test_unknown_isa_warns_and_uses_the_best():
    out = _run(INFO, {"SOFTMAXLIB_ISA": "bogus"})
    assert out.returncode == 0, out.stderr
    best = numpy_native.info()["isas_supported"][0]
    assert json.loads(out.stdout)["isa"] == best
    assert f"RuntimeWarning: SOFTMAXLIB_ISA='bogus' is not one of" in out.stderr
    assert f"using {best}" in out.stderr


@pytest.mark.parametrize("name", ["AVX2", "Baseline", "avx512F"])
def test_isa_name_is_case_insensitive(name):
    if name.lower() not in numpy_native.info()["isas_supported"]:
        pytest.skip(f"{name} is not supported by this CPU")
    out = _run(INFO, {"SOFTMAXLIB_ISA": name})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["isa"] == name.lower()
    assert "Warning" not in out.stderr
    with numpy_native.forced_isa(name):
        assert numpy_native.info()["isa"] == name.lower()


# Under an address-space limit that leaves room for about two thread stacks, the
# pool asked for 8 threads starts those it can and computes with them.
REFUSED_THREADS = r"""
import json, resource
import numpy as np
from softmaxlib._backends import numpy_native as n

x = np.random.default_rng(2).standard_normal((513, 301)).astype(np.float32)
n.set_num_threads(1)
expected = n.compute("softmax", x, (1,), None, "auto")
out_bytes = expected.nbytes
with open("/proc/self/status") as f:
    vm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
limit = vm_kib * 1024 + 2 * stack + stack // 2 + 4 * out_bytes
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
n.set_num_threads(8)
same = [n.compute("softmax", x, (1,), None, "auto").tobytes() == expected.tobytes() for _ in range(3)]
print(json.dumps({"same": same, "pool": n.info()["pool_threads"], "threads": n.get_num_threads()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not (shutil.which("prlimit") and shutil.which("taskset")),
                    reason="reads /proc, sets RLIMIT_AS; needs prlimit and taskset (util-linux)")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""), reason="ASan reserves terabytes of address space")
def test_refused_threads_leave_a_working_pool():
    import resource

    stack = 8 << 20  # the new threads' stacks: glibc takes RLIMIT_STACK's soft value

    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    hard = "unlimited" if hard == resource.RLIM_INFINITY else hard
    small_fixed_stack = ("prlimit", f"--stack={stack}:{hard}")
    two_cpus = _cpus(list(os.sched_getaffinity(0))[:2])
    out = _run(REFUSED_THREADS, launcher=small_fixed_stack + two_cpus)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["same"] == [True, True, True]
    assert result["threads"] == min(8, THREADS_PER_CPU * min(2, len(os.sched_getaffinity(0))))
    assert 1 <= result["pool"] < result["threads"], result
