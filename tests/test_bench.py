"""The benchmark report: the CLI runs, the JSON keeps its schema, the arithmetic is right.

No timing is asserted: timings depend on the machine. The CLI run uses tiny sizes
and budgets so that it stays well under 30 seconds.
"""

import json
import os
import subprocess
import sys

import pytest

from softmaxlib._bench.context import BenchContext, Contender
from softmaxlib._bench.harness import Harness, calls_per_sample, format_seconds
from softmaxlib._bench.peers import Unavailable
from softmaxlib._bench.options import BenchOptions, format_shape, parse_shape
from softmaxlib._bench.results import (
    OURS, PEER, SCHEMA, YARDSTICK, Bar, Measurement, add_ratios, bandwidth_gbs, median,
    reference_of,
)

MEASUREMENT_KEYS = {
    "backend", "implementation", "kind", "shape", "size", "dtype", "threads", "group_threads",
    "median_s", "min_s", "samples", "calls_per_sample", "bytes", "gbs", "vs_copy",
    "peer_over_ours", "skipped",
}
BAR_KEYS = {"issue", "description", "measured", "required", "at_least", "status", "timings",
            "note", "ceiling", "reachable"}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    json_path, plot_path = out / "r.json", out / "r.png"
    command = [
        sys.executable, "-m", "softmaxlib", "bench", "--sizes", "1K,2x512",
        "--algorithms", "auto,two-pass", "--threads", "1", "--backends", "numpy",
        "--budget", "0.002", "--repeat", "3", "--json", str(json_path), "--plot", str(plot_path),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return proc, json_path, plot_path


def test_cli_runs_and_prints_tables(cli_run):
    proc, _, _ = cli_run
    assert proc.returncode == 0, proc.stderr
    assert "median time per call" in proc.stdout
    assert "x.copy()" in proc.stdout
    assert "two-pass" in proc.stdout
    assert "bars:" in proc.stdout
    assert "[numpy #1]" in proc.stderr  # progress goes to stderr


def test_json_schema(cli_run):
    proc, json_path, plot_path = cli_run
    assert proc.returncode == 0, proc.stderr
    report = json.loads(json_path.read_text())
    assert report["schema"] == SCHEMA
    assert {"started", "elapsed_s", "command", "traffic_model", "options", "machine",
            "sections"} <= set(report)
    machine = report["machine"]
    assert {"cpu_model", "cpus_usable", "native", "versions", "caches"} <= set(machine)
    assert "numpy" in machine["versions"]
    assert report["options"]["shapes"] == ["1x2^10", "2x512"]
    names = [s["name"] for s in report["sections"]]
    assert names == ["numpy", "bars", "family"]
    numpy_section = report["sections"][0]
    implementations = {m["implementation"] for m in numpy_section["measurements"]}
    assert {"auto", "two-pass", "x.copy()"} <= implementations
    for m in numpy_section["measurements"]:
        assert set(m) == MEASUREMENT_KEYS
        assert m["kind"] in (OURS, PEER, YARDSTICK)
        assert m["median_s"] is not None or m["skipped"]
        assert m["bytes"] == 2 * m["size"] * 4  # float32, one read + one write
    for section in report["sections"][1:]:
        assert section["bars"], section["name"]
        for bar in section["bars"]:
            assert set(bar) == BAR_KEYS
            assert bar["status"] in ("PASS", "FAIL", "FAIL (out of reach)", "N/A")
    # Every speed-up over a peer has its ceiling: the same peer over the yardstick.
    peer_bars = [bar for section in report["sections"][1:] for bar in section["bars"]
                 if "scipy" in bar["description"] and bar["description"].endswith("time / ours")
                 and bar["measured"] is not None]
    assert peer_bars
    for bar in peer_bars:
        assert bar["ceiling"] is not None and bar["reachable"] is not None
    if proc.stdout.count("plot written"):
        assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _m(implementation, kind, seconds, threads=1, shape=(1, 1000), group_threads=None):
    return Measurement(backend="numpy", implementation=implementation, kind=kind,
                       shape=shape, dtype="float32", threads=threads, median_s=seconds,
                       bytes=8000, group_threads=group_threads)


def test_ratio_arithmetic_on_synthetic_timings():
    copy = _m("x.copy()", YARDSTICK, 1e-6, group_threads=2)
    auto = _m("auto", OURS, 2e-6, threads=2)
    two = _m("two-pass", OURS, 1.5e-6, threads=2)
    scipy = _m("scipy", PEER, 1e-5, group_threads=2)
    torch = _m("torch", PEER, 4e-6, threads=2)
    other_group = _m("scipy", PEER, 3e-5, threads=1)  # no "ours" in its group
    add_ratios([copy, auto, two, scipy, torch, other_group])
    assert auto.vs_copy == pytest.approx(2.0)
    assert two.vs_copy == pytest.approx(1.5)
    # Peers are compared with "auto" (what a user gets), not the fastest algorithm.
    assert scipy.peer_over_ours == pytest.approx(5.0)
    assert torch.peer_over_ours == pytest.approx(2.0)
    assert other_group.peer_over_ours is None
    assert copy.gbs == pytest.approx(8000 / 1e-6 / 1e9)
    assert copy.vs_copy is None and copy.peer_over_ours is None


def test_reference_falls_back_to_fastest_and_skips_missing():
    slow, fast = _m("online", OURS, 3e-6), _m("two-pass", OURS, 1e-6)
    skipped = _m("auto", OURS, None)
    assert reference_of([slow, fast, skipped]) is fast
    assert reference_of([_m("scipy", PEER, 1.0)]) is None


def test_median_bandwidth_and_bars():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert bandwidth_gbs(2e9, 2.0) == pytest.approx(1.0)
    assert bandwidth_gbs(100, None) is None
    assert Bar("#3", "speed-up", 2.6, 2.5).status == "PASS"
    assert Bar("#3", "speed-up", 2.4, 2.5).status == "FAIL"
    assert Bar("#3", "time ratio", 1.7, 1.8, at_least=False).status == "PASS"
    assert Bar("#3", "time ratio", 1.9, 1.8, at_least=False).status == "FAIL"
    assert Bar("#3", "not measured", None, 1.8).status == "N/A"


def test_bar_ceiling_marks_bars_out_of_reach():
    # A peer only 4.8x slower than a copy: no implementation can be 8x faster than it.
    out_of_reach = Bar("#3", "speed-up", 3.7, 8.0, ceiling=4.8)
    assert out_of_reach.reachable is False
    assert out_of_reach.status == "FAIL (out of reach)"
    missed = Bar("#3", "speed-up", 3.7, 4.0, ceiling=4.8)
    assert missed.reachable is True and missed.status == "FAIL"
    # A pass stays a pass; without a yardstick nothing is claimed.
    assert Bar("#3", "speed-up", 4.5, 4.0, ceiling=4.8).status == "PASS"
    assert Bar("#3", "speed-up", 3.7, 8.0).reachable is None
    assert Bar("#3", "speed-up", 3.7, 8.0).status == "FAIL"
    assert Bar("#3", "speed-up", 3.7, 8.0, ceiling=4.8).to_dict()["reachable"] is False


def test_harness_sample_counts_and_loops():
    harness = Harness(budget_s=0.0, min_samples=3, max_samples=5, progress_stream=None)
    timing = harness.time(lambda: None)
    assert 3 <= len(timing.samples) <= 5
    assert timing.calls_per_sample > 1  # a no-op is timed in loops
    assert calls_per_sample(1.0) == 1
    assert calls_per_sample(1e-4) == 11
    assert format_seconds(1.5e-3) == "1.5 ms"
    assert format_seconds(2.5e-8) == "25 ns"


def test_harness_times_contenders_in_interleaved_rounds():
    order = []
    fns = [lambda: order.append("a"), lambda: order.append("b")]
    harness = Harness(budget_s=0.0, min_samples=3, max_samples=4, progress_stream=None)
    timings = harness.time_together(fns, [1, 1])
    assert [len(t.samples) for t in timings] == [3, 3]
    assert order == ["a", "b"] * 3  # one sample of each per round
    # With time to spare, contenders get rounds_factor times the samples of one case.
    roomy = Harness(budget_s=60.0, min_samples=3, max_samples=4, progress_stream=None)
    assert [len(t.samples) for t in roomy.time_together(fns, [1, 1])] == [16, 16]
    assert len(roomy.time(fns[0]).samples) == 4
    assert harness.time_together([], []) == []


def test_measure_together_skips_one_contender_and_times_the_rest():
    import numpy as np

    def unavailable():
        raise Unavailable("peer not installed")

    ctx = BenchContext(options=BenchOptions(), machine={},
                       harness=Harness(budget_s=0.0, progress_stream=None))
    x = np.zeros((2, 8), np.float32)
    missing, copy = ctx.measure_together("t", [
        Contender(unavailable, "missing", PEER, x), Contender(lambda: x.copy, "x.copy()", YARDSTICK, x),
    ], backend="numpy", threads=1)
    assert missing.skipped == "peer not installed" and missing.median_s is None
    assert copy.skipped is None and copy.median_s > 0 and copy.samples >= 3
    assert copy.bytes == 2 * x.nbytes


@pytest.mark.parametrize(("text", "shape"), [
    ("1024", (1, 1024)), ("2^20", (1, 2**20)), ("64K", (1, 65536)), ("16M", (1, 2**24)),
    ("64x32000", (64, 32000)), ("4Kx1K", (4096, 1024)),
])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


def test_parse_shape_rejects_garbage_and_formats():
    with pytest.raises(ValueError):
        parse_shape("1x2x3")
    with pytest.raises(ValueError):
        parse_shape("big")
    assert format_shape((1, 2**20)) == "1x2^20"
    assert format_shape((64, 32000)) == "64x32000"
