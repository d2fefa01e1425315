"""Threads: reproducibility across thread counts, concurrent callers, fork,
and memory that stays flat over many calls."""

import concurrent.futures
import os
import sys

import numpy as np
import pytest

from softmaxlib import _native_loader
from softmaxlib._backends import numpy_native
from tests.native.helpers import ALGORITHMS, OPS, assert_close


def compute(op, x, axes, algorithm="auto", where=None):
    return numpy_native.compute(op, x, tuple(axes), where, algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("op", OPS)
def test_bitwise_identical_for_any_thread_count(isa, threads, op, algorithm):
    rng = np.random.default_rng(7)
    # Rows of 2^20 and more are split over threads (layout.h, kMinSplitRow).
    long_row = (rng.standard_normal((1, 2**20 + 1)) * 4).astype(np.float32)  # chunk-parallel
    few_rows = (rng.standard_normal((3, 2**20 + 3)) * 4).astype(np.float32)  # chunk-parallel
    many_rows = (rng.standard_normal((513, 301)) * 4).astype(np.float32)    # row-parallel
    strided = np.asfortranarray(many_rows)                                   # gathered rows
    results = {}
    cap = numpy_native.info()["max_threads"]  # (a machine with one CPU caps at 4)
    for n in sorted({min(n, cap) for n in (1, 2, 3, 4, 7)}):
        threads(n)
        results[n] = [compute(op, a, (1,), algorithm) for a in (long_row, few_rows, many_rows, strided)]
    for n, ys in results.items():
        for y, y1 in zip(ys, results[1]):
            assert y.tobytes() == y1.tobytes(), f"{n} threads differ from 1"
    assert_close(op, results[4][0], long_row, (1,))


def test_set_get_threads(threads):
    threads(3)
    assert numpy_native.get_num_threads() == 3
    with pytest.raises(ValueError):
        numpy_native.set_num_threads(0)


def test_concurrent_python_threads(threads):
    # Callers beyond the first run on their own thread (no oversubscription);
    # every result is still the single-caller result.
    threads(2)
    rng = np.random.default_rng(8)
    xs = [(rng.standard_normal((64, 5000)) * 3).astype(np.float32) for _ in range(8)]
    expected = [compute("softmax", x, (1,), "two-pass") for x in xs]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            got = list(pool.map(lambda x: compute("softmax", x, (1,), "two-pass"), xs))
            for g, e in zip(got, expected):
                assert g.tobytes() == e.tobytes()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_can_compute(threads):
    threads(2)
    x = np.random.default_rng(9).standard_normal((64, 20000)).astype(np.float32)
    expected = compute("softmax", x, (1,), "two-pass")  # the pool exists now
    r, w = os.pipe()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: ours are handled
        # JAX warns at fork once its backend runs (another test in this worker may have
        # used it); the child here never touches JAX.
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            y = compute("softmax", x, (1,), "two-pass")
            ok = y.tobytes() == expected.tobytes()
            numpy_native.set_num_threads(2)
            y2 = compute("logsumexp", x, (1,), "online")
            ok = ok and np.isfinite(y2).all()
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == b"1"


def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""), reason="ASan's quarantine holds freed memory")
def test_no_memory_growth():
    x = np.random.default_rng(10).standard_normal((4, 8)).astype(np.float32)
    w = np.ones((4, 8), bool)
    xs = np.asfortranarray(x)
    for _ in range(2000):  # warm up allocators
        compute("softmax", x, (1,))
        compute("logsumexp", xs, (1,), where=w)
    before = _rss_kib()
    for _ in range(100_000 // 2):
        compute("softmax", x, (1,))
        compute("logsumexp", xs, (1,), where=w)
    grown = _rss_kib() - before
    assert grown < 2048, f"RSS grew by {grown} KiB over 10^5 calls"


def test_gil_released(threads):
    # While one long kernel call runs on another thread, this thread keeps running
    # Python. Were the GIL held, it could not take a single step until the call ended.
    import threading

    threads(1)
    x = np.random.default_rng(11).standard_normal((1, 1 << 24)).astype(np.float32)
    started = threading.Event()

    def work():
        started.set()
        compute("softmax", x, (1,), "three-pass")

    worker = threading.Thread(target=work)
    steps = 0
    worker.start()
    started.wait()
    while worker.is_alive():
        steps += 1
    worker.join()
    assert steps > 1000, f"only {steps} Python steps ran beside a ~50 ms kernel call"


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("split_points", [(1, 1), (1 << 12, 1 << 14)], ids=["everything", "small"])
def test_bitwise_identical_at_any_split_point(isa, threads, op, split_points):
    # Small arrays split over threads (rows spread, and a long row's chunks) give the
    # single-thread bits, wherever the split points lie.
    kernels = _native_loader.kernels
    rng = np.random.default_rng(11)
    shapes = [(256, 128), (512, 128), (64, 1024), (3, 70000), (1, 3 * 2**14 + 5), (1, 40)]
    xs = [(rng.standard_normal(s) * 4).astype(np.float32) for s in shapes]
    xs.append(np.asfortranarray(xs[0]))  # gathered rows
    threads(1)
    expected = [compute(op, x, (1,)) for x in xs]
    try:
        kernels._set_parallel_thresholds(*split_points)
        assert kernels._parallel_thresholds() == split_points
        for n in (2, 3):
            threads(n)
            for x, e in zip(xs, expected):
                assert compute(op, x, (1,)).tobytes() == e.tobytes(), (n, x.shape)
    finally:
        kernels._set_parallel_thresholds(*kernels.DEFAULT_PARALLEL_THRESHOLDS)
    assert_close(op, expected[3], xs[3], (1,))
