"""Dask section: one long row chunked along the reduced axis, on a 2-worker LocalCluster.

softmaxlib's chunked path (one reduction of accumulators, one blockwise rescale)
against the ``dask.array`` code a user would write by hand (max, exp, sum,
divide), side by side on the same persisted row, with each worker's peak memory
above its idle baseline (before the row is loaded) read from the kernel's peak-RSS
counter (VmHWM, reset through /proc/self/clear_refs before each implementation).

The result is reduced to its sum on the workers, as a pipeline would consume it,
so that no output is gathered by the client: what is timed is the softmax. The
yardstick is ``x + 1`` reduced the same way: one read and one write of each chunk.
Acceptance checks: no worker above its share of the row plus 4 chunks, and >= 1.5x
faster than the hand-written version.
"""

import functools
import importlib.util

import softmaxlib
from softmaxlib._bench.options import format_shape
from softmaxlib._bench.results import OURS, PEER, YARDSTICK, Bar, SectionResult, add_ratios, ratio

FULL = (2**28, 2**24)  # a 1 GiB float32 row in 64 MiB chunks
QUICK = (2**24, 2**20)
WORKERS = 2


def _hand_written(x):
    import dask.array as da

    e = da.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def run(ctx):
    result = SectionResult(name="dask", title="Dask: one long row on a 2-worker LocalCluster",
                           backend="dask", show_tables=True, ratio_reference="softmaxlib")
    if importlib.util.find_spec("distributed") is None:
        result.notes.append("dask.distributed not installed: section skipped")
        return result
    import dask.array as da
    import distributed

    n, chunk = QUICK if ctx.options.quick else FULL
    with distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        # Idle = a worker with the libraries loaded (imports are not the row's memory).
        tiny = da.ones((1, 4 * WORKERS), chunks=(1, 4), dtype="float32")
        client.compute([softmaxlib.softmax(tiny).sum(), _hand_written(tiny).sum()], sync=True)
        idle = client.run(functools.partial(_rss_kib, "VmRSS"))
        x = da.random.default_rng(0).standard_normal((1, n), chunks=(1, chunk), dtype="float32")
        x = client.persist(x * 3)
        distributed.wait(x)
        measured = {}
        for name, kind, build in (("softmaxlib", OURS, softmaxlib.softmax),
                                  ("dask by hand", PEER, _hand_written),
                                  ("x + 1", YARDSTICK, lambda a: a + 1)):
            total = build(x).sum()
            client.run(_reset_peak_rss)
            m = ctx.measure("dask", lambda t=total: (lambda: client.compute(t).result()),
                            backend="dask", implementation=name, kind=kind, x=x, threads=WORKERS)
            peaks = client.run(functools.partial(_rss_kib, "VmHWM"))
            m_peak = max(peaks[w] - idle[w] for w in peaks) * 1024
            result.measurements.append(m)
            measured[name] = (m, m_peak)
            if kind == YARDSTICK:
                continue
            result.notes.append(f"{name}: peak worker memory above its idle baseline "
                                f"{m_peak / 2**20:.0f} MiB (the row's share is "
                                f"{x.nbytes / WORKERS / 2**20:.0f} MiB)")
    add_ratios(result.measurements, preferred="softmaxlib")
    ours, ours_peak = measured["softmaxlib"]
    hand, _ = measured["dask by hand"]
    share = x.nbytes / WORKERS + 4 * chunk * x.dtype.itemsize
    result.bars.append(Bar(
        description=f"{format_shape((1, n))} float32 in {format_shape((chunk,))}-element chunks: "
                    "dask by hand time / ours",
        measured=ratio(hand.median_s, ours.median_s), required=1.5,
        timings={"softmaxlib": ours.median_s, "dask by hand": hand.median_s}))
    result.bars.append(Bar(
        description="peak worker memory above idle / (row share + 4 chunks)",
        measured=ours_peak / share, required=1.0, at_least=False))
    return result
