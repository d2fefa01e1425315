"""The benchmark report: what a newcomer reads, the files it writes, the arithmetic.

No timing is asserted: timings depend on the machine. The command-line run uses a
tiny ``--quick`` run (small sizes and budgets), so this file stays well under a
minute; the Dask run, which starts a LocalCluster, is marked slow.

One regression test (or a few) per promise of the report: a verdict first, flags
for what looks wrong, a plot that stands alone, files where the user asked, extras
and README claims that match reality.
"""

import dataclasses
import doctest
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from softmaxlib._bench import Report, run_benchmark
from softmaxlib._bench.context import BenchContext, Contender
from softmaxlib._bench.flags import auto_flags, thread_flags
from softmaxlib._bench.harness import Harness, calls_per_sample, format_seconds
from softmaxlib._bench.machine import machine_info
from softmaxlib._bench.options import BenchOptions, format_shape, parse_shape
from softmaxlib._bench.peers import Unavailable
from softmaxlib._bench.report import WIDTH, measurement_tables, render, table
from softmaxlib._bench.results import (
    OURS, PEER, SCHEMA, YARDSTICK, Bar, Measurement, SectionResult, add_ratios, bandwidth_gbs,
    median, reference_of,
)
from softmaxlib._bench.verdict import SizeClasses, peer_faster, verdict_rows

ROOT = pathlib.Path(__file__).resolve().parent.parent

MEASUREMENT_KEYS = {
    "backend", "implementation", "kind", "shape", "size", "dtype", "threads", "group_threads",
    "median_s", "min_s", "samples", "calls_per_sample", "bytes", "gbs", "vs_copy",
    "peer_over_ours", "skipped", "failed",
}
BAR_KEYS = {"description", "measured", "required", "at_least", "status", "timings",
            "note", "ceiling", "reachable"}
ALGORITHMS = ("auto", "two-pass")
MACHINE = {**machine_info(), "cpu_model": "Test CPU", "cpus_usable": 2,
           "caches": {"L1d": "32K", "L2": "1024K", "L3": "32768K"}}


def _env():
    """The subprocess imports this checkout's softmaxlib, whatever its working directory."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A tiny --quick run in an empty folder, files left to their defaults."""
    cwd = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable, "-m", "softmaxlib", "bench", "--quick", "--sizes", "1K,16K,64K,2x512",
        "--algorithms", ",".join(ALGORITHMS), "--threads", "1,2", "--backends", "numpy",
        "--budget", "0.002", "--repeat", "3",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=_env())
    assert proc.returncode == 0, proc.stderr
    out_dir = cwd / "softmaxlib-bench"
    (json_path,) = out_dir.glob("*.json")
    return proc, cwd, json_path, json.loads(json_path.read_text())


# ------------------------------------------------------------------ synthetic results


def _m(implementation, kind, seconds, threads=1, shape=(1, 1000), group_threads=None,
       backend="numpy"):
    size = int(np.prod(shape))
    return Measurement(backend=backend, implementation=implementation, kind=kind,
                       shape=shape, dtype="float32", threads=threads, median_s=seconds,
                       bytes=8 * size, group_threads=group_threads)


def _sweep(measurements, title="NumPy sweep", backend="numpy"):
    section = SectionResult(name=backend, title=title, backend=backend, ratio_reference="auto",
                            measurements=add_ratios(measurements))
    return section


def _report(sections):
    return Report(BenchOptions(), MACHINE, sections, "2026-01-01T00:00:00", 1.0,
                  ["python", "-m", "softmaxlib", "bench"])


# ------------------------------------------------------------------ 1. a verdict first


def test_verdict_comes_first(cli_run):
    proc, _, _, report = cli_run
    out = proc.stdout
    verdict, flags = out.index("VERDICT"), out.index("FLAGS")
    first_section = out.index("=" * WIDTH)
    assert out.index("CPU ") < verdict < flags < first_section
    rows = report["verdict"]
    assert {r["backend"] for r in rows} == {"numpy"}
    assert {r["outcome"] for r in rows} <= {"faster", "slower"}
    assert {r["threads"] for r in rows} == {1, 2}
    verdict_text = out[verdict:flags]
    for r in rows:
        assert r["size_class"].split(" (")[0] in verdict_text
    assert any(w in verdict_text for w in ("faster", "slower"))


def test_every_place_a_peer_is_faster_is_shown(cli_run):
    """Recomputed from the JSON's medians: each shape where a peer beats our fastest."""
    proc, _, _, report = cli_run
    (section,) = [s for s in report["sections"] if s["name"] == "numpy"]
    groups = {}
    for m in section["measurements"]:
        if m["median_s"]:
            threads = m["group_threads"] if m["group_threads"] is not None else m["threads"]
            groups.setdefault((tuple(m["shape"]), threads), []).append(m)
    expected = set()
    for (shape, threads), ms in groups.items():
        ours = min(m["median_s"] for m in ms if m["kind"] == OURS)
        peers = [m["median_s"] for m in ms if m["kind"] == PEER]
        if peers and min(peers) < ours:
            expected.add((format_shape(shape), threads))
    listed = proc.stdout[proc.stdout.index("Where a peer is faster"):proc.stdout.index("FLAGS")]
    listed = " ".join(listed.split())
    for shape, threads in expected:
        assert re.search(rf"{threads} threads?, {re.escape(shape)}:", listed), (shape, listed)
    slower_rows = [r for r in report["verdict"] if r["outcome"] == "slower"]
    assert sum(len(r["shapes"]) for r in slower_rows) == len(expected)


def test_verdict_splits_a_class_where_a_peer_leads_on_some_shapes():
    small_a, small_b = (1, 1024), (1, 2048)  # both "small": x fits the 32 KiB L1d
    ms = [
        _m("auto", OURS, 2e-6, shape=small_a), _m("torch", PEER, 1e-6, shape=small_a),
        _m("x.copy()", YARDSTICK, 5e-7, shape=small_a),
        _m("auto", OURS, 2e-6, shape=small_b), _m("torch", PEER, 6e-6, shape=small_b),
        _m("x.copy()", YARDSTICK, 5e-7, shape=small_b),
    ]
    report = _report([_sweep(ms)])
    rows = verdict_rows(report.sections, MACHINE)
    assert [(r.size_class.split(" (")[0], r.outcome) for r in rows] == [
        ("small", "faster"), ("small", "slower")]
    assert rows[1].peer_s == pytest.approx(1e-6) and rows[1].ours_s == pytest.approx(2e-6)
    assert rows[0].vs_copy == pytest.approx(4.0)
    assert [c.shape for c in peer_faster(report.sections)] == [small_a]
    text = render(report)
    assert "torch is 2.00x faster" in " ".join(text.split())
    assert SizeClasses.of(MACHINE).of_bytes(2**30).startswith("out of cache")


def test_tables_fit_in_100_columns_with_one_meaning_per_ratio_table(cli_run):
    proc, _, _, report = cli_run
    lines = proc.stdout.splitlines()
    # The report proper; the closing list of file paths is as long as the user's folders.
    report_lines = lines[: lines.index("files written:")]
    assert max(len(line) for line in report_lines) <= WIDTH
    assert "our columns" not in proc.stdout  # the old table that mixed two meanings
    (section,) = [s for s in report["sections"] if s["name"] == "numpy"]
    ours = {m["implementation"] for m in section["measurements"] if m["kind"] == OURS}
    peers = {m["implementation"] for m in section["measurements"] if m["kind"] == PEER}
    assert ours and peers
    ours_tables = [i for i, line in enumerate(lines) if line.startswith("ours / x.copy()")]
    peer_tables = [i for i, line in enumerate(lines) if line.startswith("peer / auto")]
    assert len(ours_tables) == len(peer_tables) == 2  # one per thread count
    for i in ours_tables:
        assert not any(p in lines[i + 1] for p in peers)
    for i in peer_tables:
        header = lines[i + 1]
        assert not any(re.search(rf"(^|  ){re.escape(a)}($|  )", header) for a in ours)


def test_a_wide_table_is_split_and_wrapped_within_the_width():
    headers = ["shape"] + [f"implementation number {i}" for i in range(8)]
    text = table(headers, [["1x2^10"] + ["1.23 ms"] * 8])
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert text.count("1x2^10") >= 2  # split, each part repeating the first column
    wrapped = table(["check", "measured"], [["a long description " * 8, "1.5"]], left=(0,),
                    wrap_columns=(0,))
    assert max(len(line) for line in wrapped.splitlines()) <= WIDTH


def test_a_table_of_nothing_is_not_printed():
    # Dask measurements once had no bandwidth: the tables held only "-".
    ms = [_m("softmaxlib", OURS, 1.0, backend="dask"),
          _m("dask by hand", PEER, 2.0, backend="dask")]
    text = measurement_tables(SectionResult("dask", "Dask", "dask", measurements=ms))
    assert "median time per call" in text
    assert "bandwidth" not in text and "ours / " not in text


def test_acceptance_checks_are_named_by_what_they_measure(cli_run):
    proc, _, _, report = cli_run
    assert not re.search(r"\bissues?\s*\d|#\d", proc.stdout)
    bars = [b for s in report["sections"] for b in s["bars"]]
    assert bars and all(set(b) == BAR_KEYS for b in bars)
    failing = [b for b in bars if b["status"].startswith("FAIL")]
    summary = proc.stdout[proc.stdout.index("ACCEPTANCE CHECKS:"):]
    flat = " ".join(summary.split())
    assert f"{sum(b['status'] == 'PASS' for b in bars)} of {len(bars)} pass" in summary
    # Every failure is named in the summary, with why.
    assert summary.count("  - FAIL ") == len(failing)
    for b in failing:
        assert " ".join(b["description"].split()) in flat


# ------------------------------------------------------------------ 2. flags


def test_auto_slower_than_the_best_algorithm_is_flagged():
    flagged = _sweep([_m("auto", OURS, 1.2e-3), _m("two-pass", OURS, 1.0e-3),
                      _m("online", OURS, 1.5e-3)])
    (flag,) = auto_flags([flagged])
    assert "auto took 1.2 ms, 1.20x the 1 ms of two-pass" in flag.text
    assert "algorithm='two-pass'" in flag.advice
    within = _sweep([_m("auto", OURS, 1.1e-3), _m("two-pass", OURS, 1.0e-3)])
    assert auto_flags([within]) == []


def test_a_thread_count_that_slows_a_call_is_flagged():
    slower = _sweep([_m("auto", OURS, 1.0e-3, threads=1), _m("auto", OURS, 1.3e-3, threads=2)])
    (flag,) = thread_flags([slower])
    assert "auto on 2 threads took 1.3 ms, 1.30x its 1 ms on 1 thread" in flag.text
    assert "SOFTMAXLIB_NUM_THREADS=1" in flag.advice
    faster = _sweep([_m("auto", OURS, 1.0e-3, threads=1), _m("auto", OURS, 0.6e-3, threads=2)])
    assert thread_flags([faster]) == []


def test_a_failed_section_shows_its_error_and_what_to_do(monkeypatch):
    from softmaxlib._bench import sections

    def broken(ctx):
        raise RuntimeError("the peer's library could not load libfoo.so")

    def working(ctx):
        return _sweep([_m("auto", OURS, 1e-3), _m("x.copy()", YARDSTICK, 5e-4)])

    monkeypatch.setattr(sections, "SECTIONS", [
        sections.Section("broken", "numpy", "A broken section", broken),
        sections.Section("working", "numpy", "A working section", working)])
    report = run_benchmark(BenchOptions(backends=["numpy"]), progress_stream=None)
    text = render(report)
    flags = text[text.index("FLAGS"):text.index("Details")]
    assert "RuntimeError: the peer's library could not load libfoo.so" in flags
    assert "what to do:" in flags and "--backends numpy" in flags
    assert "NumPy sweep -- float32, 1 thread" in text  # the other section still reports
    assert report.to_dict()["sections"][0]["failures"][0]["error"].startswith("RuntimeError")


def test_a_failed_subprocess_reports_its_last_stderr_lines_not_a_stack_frame():
    from softmaxlib._bench.sections.jax_section import subprocess_error

    stderr = "\n".join([
        "2026-01-01 loading", "F0101 parse_flags_from_env.cc:234] Unknown flag in XLA_FLAGS: --x",
        "*** Check failure stack trace: ***", "    @     0x7fa750558ba3  PyObject_Vectorcall",
        "    @     0x7fa750558bb0  _PyEval_EvalFrameDefault"])
    text = subprocess_error(stderr, -6)
    assert text.startswith("killed by SIGABRT")
    assert "Unknown flag in XLA_FLAGS" in text and "0x7fa7" not in text
    assert subprocess_error("", 3) == "exit status 3, nothing on stderr"


def test_the_jax_single_thread_subprocess_failure_is_its_real_error(monkeypatch):
    pytest.importorskip("jax")
    from softmaxlib._bench.sections import jax_section

    monkeypatch.setattr(jax_section, "SINGLE_THREAD_XLA_FLAGS", "--no_such_flag_for_this_test")
    ctx = BenchContext(BenchOptions(), Harness(budget_s=0.0, progress_stream=None), {})
    measurements, failure = jax_section._single_threaded(ctx, [(1, 64)], ["float32"], False)
    assert measurements == []
    assert "--no_such_flag_for_this_test" in failure.error
    assert "flag" in failure.error.lower()
    assert "run the subprocess alone" in failure.advice


# ------------------------------------------------------------------ 3. a plot that stands alone


def _plot_report():
    numpy_ms = []
    for n in (2**10, 2**14, 2**18):
        numpy_ms += [_m("auto", OURS, n * 1e-9, threads=2, shape=(1, n)),
                     _m("torch", PEER, n * 2e-9, threads=2, shape=(1, n)),
                     _m("x.copy()", YARDSTICK, n * 5e-10, shape=(1, n), group_threads=2)]
    numpy_ms += [_m("auto", OURS, 1e-3, threads=2, shape=(64, 32000)),
                 _m("torch", PEER, 2e-3, threads=2, shape=(64, 32000))]
    jax_ms = [_m("softmaxlib (jit)", OURS, 1e-4, threads=None, shape=s, backend="jax")
              for s in ((1, 2**20), (256, 128))]
    for m in numpy_ms + jax_ms:
        m.gbs = bandwidth_gbs(m.bytes, m.median_s)
    empty = SectionResult(name="cupy", title="CuPy", backend="cupy", notes=["CuPy not installed"])
    return _report([_sweep(numpy_ms, "NumPy sweep"), _sweep(jax_ms, "JAX (jit)", "jax"), empty])


def test_plot_stands_alone():
    pytest.importorskip("matplotlib")
    from softmaxlib._bench.plot import figure

    fig = figure(_plot_report())
    fig.canvas.draw()
    assert "Test CPU" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes]
    # NumPy: a line panel and a batched panel; JAX (two sizes): one panel of shapes.
    assert len(fig.axes) == 3
    assert all("thread" in t for t in titles)
    assert "batched shapes" in titles[1] and "each shape" in titles[2]
    lines_ax, batched_ax, jax_ax = fig.axes
    legend = batched_ax.get_legend()
    handles = {h.get_label(): h for h in legend.legend_handles}
    assert handles["auto"].get_linestyle() == "-" and handles["torch"].get_linestyle() == "--"
    assert "solid" in legend.get_title().get_text() and "dashed" in legend.get_title().get_text()
    drawn = [line for line in lines_ax.get_lines() if len(line.get_xdata()) == 3]
    assert {line.get_linestyle() for line in drawn} == {"-", "--", ":"}
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert any(len(line.get_xdata()) for line in ax.get_lines())  # no empty panel
        legend = ax.get_legend()
        if legend is not None:  # outside the data, to the right
            assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    assert [t.get_text() for t in batched_ax.get_xticklabels()] == ["64x32000"]
    for ax in fig.axes:
        for label in ax.get_yticklabels():
            if label.get_text():
                float(label.get_text())  # plain numbers, not 10^x mathtext
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_run_writes_a_png(cli_run):
    pytest.importorskip("matplotlib")
    _, cwd, _, _ = cli_run
    (png,) = (cwd / "softmaxlib-bench").glob("*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ 4. files where the user wants


def test_files_go_to_the_default_folder_and_are_printed_at_the_end(cli_run):
    proc, cwd, json_path, report = cli_run
    assert not (cwd / "benchmarks").exists()
    assert json_path.parent == cwd / "softmaxlib-bench"
    tail = proc.stdout.rstrip().splitlines()[-3:]
    assert tail[0] == "files written:"
    assert str(json_path) in tail[1]
    assert report["command"][:4] == ["python", "-m", "softmaxlib", "bench"]


def test_explicit_json_and_plot_win_over_out():
    from softmaxlib.__main__ import build_parser, output_paths

    parser = build_parser()
    started = "2026-01-01T00:00:00"
    json_path, plot_path = output_paths(
        parser.parse_args(["bench", "--out", "mine", "--json", "r.json"]), started)
    assert json_path == "r.json"
    assert os.path.dirname(plot_path) == "mine" and plot_path.endswith(".png")
    assert output_paths(parser.parse_args(["bench", "--plot", "p.png", "--json", ""]),
                        started) == (None, "p.png")
    default_json, _ = output_paths(parser.parse_args(["bench"]), started)
    assert os.path.dirname(default_json) == "softmaxlib-bench"


def test_docs_page_draws_only_committed_reports(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the docs page falls back to the files on disk")
    sys.path.insert(0, str(ROOT / "docs" / "_scripts"))
    try:
        import performance
    finally:
        sys.path.remove(str(ROOT / "docs" / "_scripts"))
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)

    def report(cpu):
        return json.dumps({"schema": SCHEMA, "machine": {"cpu_model": cpu}, "sections": []})

    (results / "committed.json").write_text(report("Committed CPU"))
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "report"], check=True)
    (results / "committed.json").write_text(report("Edited CPU"))  # an uncommitted edit
    (results / "bench-local-run.json").write_text(report("Local CPU"))  # a local run
    out = tmp_path / "out"
    out.mkdir()
    text = performance.render(results, out)
    assert "Committed CPU" in text
    assert "Edited CPU" not in text and "Local CPU" not in text and "bench-local-run" not in text


# ------------------------------------------------------------------ 5. extras and README


def _extras():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def _name(requirement):
    return re.split(r"[\[<>=! ]", requirement, maxsplit=1)[0].lower()


def test_bench_extra_installs_every_section_and_peer():
    bench = _extras()["bench"]
    names = {_name(r) for r in bench}
    # Peers (scipy, torch, jax), the Dask section (dask.array on a LocalCluster), bfloat16, plot.
    assert {"scipy", "torch", "jax", "dask", "distributed", "ml_dtypes", "matplotlib"} <= names
    assert any(r.startswith("dask[array]") for r in bench)
    assert "torch==2.13.0" in bench


def test_readme_claims_match_the_project():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    extras = _extras()
    # The set-up commands, verbatim (.ci/run runs the test one).
    assert 'pip install -e ".[bench]" && python -m softmaxlib bench' in readme
    assert 'pip install -e ".[test]" && pytest -n 2' in readme
    # What each extra is for, and what the test extra holds beyond bench.
    for extra in extras:
        assert re.search(rf"^\| `{extra}` \|", readme, re.M), extra
    assert {_name(r) for r in extras["bench"]} <= {_name(r) for r in extras["test"]}
    # The torch pin the README states is the one both extras hold.
    (pin,) = set(re.findall(r"torch (\d+\.\d+\.\d+)", readme))
    assert f"torch=={pin}" in extras["test"] and f"torch=={pin}" in extras["bench"]
    assert "cupy" not in {_name(r) for extra in extras.values() for r in extra}


def test_readme_cupy_skip_is_what_happens_without_cupy():
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: the README's skip without CuPy cannot be seen")
    from softmaxlib._bench.sections import cupy_section

    ctx = BenchContext(BenchOptions(quick=True), Harness(progress_stream=None), {})
    (note,) = cupy_section.run(ctx).notes
    assert f'"{note}"' in readme
    from tests import test_cuda

    assert test_cuda._gpu_missing() == "CuPy is not installed"


def test_readme_python_session_prints_what_it_shows():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```python" not in readme  # bare expressions pasted into python print nothing
    blocks = re.findall(r"^```pycon\n(.*?)^```", readme, re.M | re.S)
    assert blocks
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(blocks), {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report = []
    with np.printoptions():  # the session sets its own print options
        runner.run(test, out=report.append)
    assert runner.tries >= 10
    assert runner.failures == 0, "".join(report)


@pytest.mark.slow
@pytest.mark.distributed
def test_dask_section_fills_its_tables(tmp_path):
    pytest.importorskip("distributed")
    command = [sys.executable, "-m", "softmaxlib", "bench", "--quick", "--backends", "dask",
               "--budget", "0.01", "--repeat", "3", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=_env())
    assert proc.returncode == 0, proc.stderr
    (json_path,) = tmp_path.glob("*.json")
    (section,) = json.loads(json_path.read_text())["sections"]
    kinds = {m["kind"] for m in section["measurements"]}
    assert kinds == {OURS, PEER, YARDSTICK}
    assert all(m["gbs"] for m in section["measurements"])
    assert "ours / x + 1" in proc.stdout and "peer / softmaxlib" in proc.stdout


# ------------------------------------------------------------------ JSON and arithmetic


def test_json_schema(cli_run):
    _, _, _, report = cli_run
    assert report["schema"] == SCHEMA
    assert {"started", "elapsed_s", "command", "traffic_model", "options", "machine",
            "verdict", "flags", "sections"} <= set(report)
    machine = report["machine"]
    assert {"cpu_model", "cpus_usable", "native", "versions", "caches"} <= set(machine)
    assert "numpy" in machine["versions"]
    assert report["options"]["shapes"] == ["1x2^10", "1x2^14", "1x2^16", "2x512"]
    names = [s["name"] for s in report["sections"]]
    assert names == ["numpy", "bars", "family"]
    numpy_section = report["sections"][0]
    implementations = {m["implementation"] for m in numpy_section["measurements"]}
    assert {*ALGORITHMS, "x.copy()"} <= implementations
    for m in numpy_section["measurements"]:
        assert set(m) == MEASUREMENT_KEYS
        assert m["kind"] in (OURS, PEER, YARDSTICK)
        assert m["median_s"] is not None or m["skipped"]
        assert m["bytes"] == 2 * m["size"] * 4  # float32, one read + one write
    for section in report["sections"][1:]:
        assert section["bars"], section["name"]
        for bar in section["bars"]:
            assert bar["status"] in ("PASS", "FAIL", "FAIL (out of reach)", "N/A")
    # Every speed-up over a peer has its ceiling: the same peer over the yardstick.
    peer_bars = [bar for section in report["sections"][1:] for bar in section["bars"]
                 if "scipy" in bar["description"] and bar["description"].endswith("time / ours")
                 and bar["measured"] is not None]
    assert peer_bars
    for bar in peer_bars:
        assert bar["ceiling"] is not None and bar["reachable"] is not None


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


def test_median_bandwidth_and_checks():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert bandwidth_gbs(2e9, 2.0) == pytest.approx(1.0)
    assert bandwidth_gbs(100, None) is None
    assert Bar("speed-up", 2.6, 2.5).status == "PASS"
    assert Bar("speed-up", 2.4, 2.5).status == "FAIL"
    assert Bar("time ratio", 1.7, 1.8, at_least=False).status == "PASS"
    assert Bar("time ratio", 1.9, 1.8, at_least=False).status == "FAIL"
    assert Bar("not measured", None, 1.8).status == "N/A"


def test_check_ceiling_marks_checks_out_of_reach():
    # A peer only 4.8x slower than a copy: no implementation can be 8x faster than it.
    out_of_reach = Bar("speed-up", 3.7, 8.0, ceiling=4.8)
    assert out_of_reach.reachable is False
    assert out_of_reach.status == "FAIL (out of reach)"
    missed = Bar("speed-up", 3.7, 4.0, ceiling=4.8)
    assert missed.reachable is True and missed.status == "FAIL"
    # A pass stays a pass; without a yardstick nothing is claimed.
    assert Bar("speed-up", 4.5, 4.0, ceiling=4.8).status == "PASS"
    assert Bar("speed-up", 3.7, 8.0).reachable is None
    assert Bar("speed-up", 3.7, 8.0).status == "FAIL"
    assert Bar("speed-up", 3.7, 8.0, ceiling=4.8).to_dict()["reachable"] is False


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
    def unavailable():
        raise Unavailable("peer not installed")

    def broken():
        raise ValueError("bad input")

    ctx = BenchContext(options=BenchOptions(), machine={},
                       harness=Harness(budget_s=0.0, progress_stream=None))
    x = np.zeros((2, 8), np.float32)
    missing, failed, copy = ctx.measure_together("t", [
        Contender(unavailable, "missing", PEER, x), Contender(broken, "broken", PEER, x),
        Contender(lambda: x.copy, "x.copy()", YARDSTICK, x),
    ], backend="numpy", threads=1)
    assert missing.skipped == "peer not installed" and missing.median_s is None
    assert not missing.failed  # a peer that cannot run here is not an error
    assert failed.failed and failed.skipped == "ValueError: bad input"
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


def test_measurement_round_trips_through_json():
    m = _m("auto", OURS, 1e-3)
    m.failed = True
    d = json.loads(json.dumps(m.to_dict()))
    assert set(d) == MEASUREMENT_KEYS
    d.pop("size")
    assert Measurement(**{**d, "shape": tuple(d["shape"])}) == dataclasses.replace(m)
