"""Performance plots, drawn from the benchmark reports committed in ``benchmarks/results/``.

Run at every docs build (from ``conf.py``).  The reports are written by
``python -m softmaxlib bench --json benchmarks/results/NAME.json`` and committed with
the machine they ran on.  Only what is committed is published: in a git checkout the
page reads each report as ``HEAD`` holds it, so a local run left in the folder (or an
uncommitted edit of a report) never appears as if it were a committed one; outside a
git checkout (an unpacked sdist) every ``*.json`` there is what was shipped.  They
are read defensively: a measurement is any JSON object
with an ``implementation``, a size (``size`` or ``shape``) and a speed (``gbs`` or
``median_s``), wherever it sits in the file; the machine is the top-level object named
``machine`` (or ``system`` / ``platform``).  A file that cannot be read or holds no
measurements is listed as such; with no file at all, the page says so.

Writes ``performance.md`` (a MyST fragment with the figures and machine tables,
included by ``performance.md``) and ``perf_*.png`` into the output folder.
"""

import json
import math
import pathlib
import re
import subprocess

MAX_FIGURES_PER_REPORT = 12
MACHINE_KEYS = ("machine", "system", "platform")


def _measurements(node, context=None):
    """Every measurement-like dict below ``node``, with inherited section fields."""
    context = dict(context or {})
    if isinstance(node, dict):
        for key in ("backend", "title", "dtype", "threads"):
            value = node.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                context.setdefault("section_" + key, value)
        has_size = "size" in node or "shape" in node or "n" in node
        has_speed = "gbs" in node or "median_s" in node
        if "implementation" in node and has_size and has_speed:
            yield {**{k.removeprefix("section_"): v for k, v in context.items()}, **node}
            return
        for key, value in node.items():
            if key in MACHINE_KEYS:
                continue
            yield from _measurements(value, context if key not in ("measurements",) else context)
    elif isinstance(node, list):
        for item in node:
            yield from _measurements(item, context)


def committed_reports(results_dir):
    """[(name, text)] of the JSON reports in ``results_dir`` as git's ``HEAD`` holds them.

    Returns None when ``results_dir`` is not inside a git checkout (then the files on
    disk are the shipped ones).
    """
    def git(*args):
        return subprocess.run(["git", "-C", str(results_dir), *args], capture_output=True,
                              text=True, check=True).stdout

    try:
        git("rev-parse", "--is-inside-work-tree")
    except (OSError, subprocess.CalledProcessError):
        return None
    try:
        names = git("ls-tree", "--name-only", "HEAD", "--", ".").splitlines()
        prefix = git("rev-parse", "--show-prefix").strip()
    except subprocess.CalledProcessError:
        return []  # a repository without a commit yet: nothing is committed
    reports = []
    for name in sorted(n for n in names if n.endswith(".json") and "/" not in n):
        reports.append((name, git("show", f"HEAD:{prefix}{name}")))
    return reports


def _reports(results_dir):
    """[(name, text or OSError)] of the reports to publish (see ``committed_reports``)."""
    committed = committed_reports(results_dir)
    if committed is not None:
        return committed
    out = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            out.append((path.name, path.read_text(encoding="utf-8")))
        except OSError as exc:
            out.append((path.name, exc))
    return out


def _command_text(command):
    """The recorded command without this machine's paths: ``python -m softmaxlib bench ...``."""
    if isinstance(command, list):
        words = [str(w) for w in command]
        if words and words[0].endswith("__main__.py"):
            words = ["python", "-m", "softmaxlib", *words[1:]]
        return " ".join(words)
    return command


def _size(m):
    if isinstance(m.get("size"), (int, float)):
        return m["size"]
    if isinstance(m.get("shape"), list) and all(isinstance(s, int) for s in m["shape"]):
        return math.prod(m["shape"])
    if isinstance(m.get("n"), (int, float)):
        return m["n"]
    return None


def _speed(m):
    """(value, label): effective GB/s if given, else elements per ns from the median."""
    gbs = m.get("gbs")
    if isinstance(gbs, (int, float)) and gbs > 0:
        return gbs, "effective bandwidth (GB/s)"
    t, size = m.get("median_s"), _size(m)
    if isinstance(t, (int, float)) and t > 0 and size:
        return size / t / 1e9, "throughput (10^9 elements/s)"
    return None, None


def _machine(report):
    if not isinstance(report, dict):
        return None
    for key in MACHINE_KEYS:
        if isinstance(report.get(key), dict):
            return report[key]
    return None


def _flatten(d, prefix=""):
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            yield name, ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif isinstance(value, list):
            yield name, ", ".join(str(v) for v in value) if value else "(none)"
        else:
            yield name, value


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def _machine_table(machine):
    lines = ["| field | value |", "|---|---|"]
    for key, value in _flatten(machine):
        lines.append(f"| `{_cell(key)}` | {_cell(value)} |")
    return "\n".join(lines)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower() or "x"


def _plot_report(report, stem, out):
    """Figures of one report: one per (backend, dtype, threads), speed against the length
    of one row (batched shapes are in the report's own plot, not on these lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for m in _measurements(report):
        if m.get("skipped"):
            continue
        shape = m.get("shape")
        if isinstance(shape, list) and len(shape) > 1 and shape[0] != 1:
            continue  # a batched shape: its size would zigzag the one-row line
        size = _size(m)
        speed, label = _speed(m)
        if size is None or speed is None:
            continue
        # Peers run single-threaded are compared within our thread count's group.
        threads = m.get("group_threads") if m.get("group_threads") is not None else m.get("threads")
        section = str(m.get("title") or m.get("name") or "")
        key = (section, str(m.get("backend", "?")), str(m.get("dtype", "?")), threads, label)
        series = groups.setdefault(key, {}).setdefault(
            (str(m["implementation"]), str(m.get("kind", ""))), {}
        )
        series[size] = max(speed, series.get(size, 0.0))
    figures = []
    for (section, backend, dtype, threads, label), series_map in sorted(groups.items(), key=str):
        if len(figures) >= MAX_FIGURES_PER_REPORT:
            break
        if sum(len(s) >= 3 for s in series_map.values()) < 2:
            continue  # not a sweep over sizes (e.g. single acceptance cases): nothing to plot
        fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
        for (impl, kind), points in sorted(series_map.items()):
            sizes = sorted(points)
            style = {"linestyle": "--"} if kind == "peer" else {"linestyle": ":", "color": "gray"} if kind == "yardstick" else {"linewidth": 2}
            ax.plot(sizes, [points[s] for s in sizes], marker="o", markersize=3, label=impl, **style)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("n, elements in the row (1 x n)")
        ax.set_ylabel(label)
        thread_text = (", the library's default threads" if threads is None
                       else f", {threads} thread" + ("s" if threads != 1 else ""))
        machine = _machine(report) or {}
        cpu = machine.get("cpu_model") or machine.get("cpu")
        title = f"{section or backend}: {dtype}{thread_text}" + (f"\non {cpu}" if cpu else "")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  title="solid: softmaxlib\ndashed: peers\ndotted: yardstick", title_fontsize=7)
        name = f"perf_{_slug(stem)}_{len(figures)}_{_slug(backend)}_{_slug(dtype)}_{_slug(threads)}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        figures.append((title, name))
    return figures


def _bars(node):
    """Every bar-like dict (a ``description``, a ``measured`` and a ``required`` value)."""
    if isinstance(node, dict):
        if "description" in node and "measured" in node and "required" in node:
            yield node
            return
        for key, value in node.items():
            if key not in MACHINE_KEYS:
                yield from _bars(value)
    elif isinstance(node, list):
        for item in node:
            yield from _bars(item)


def _number(value):
    return f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _cell(value)


def _bars_table(report):
    rows = list(_bars(report))
    if not rows:
        return ""
    lines = ["| acceptance check | measured | required | ceiling | status |", "|---|---|---|---|---|"]
    for bar in rows:
        relation = ">=" if bar.get("at_least", True) else "<="
        ceiling = bar.get("ceiling")
        lines.append(
            f"| {_cell(bar.get('description'))} | {_number(bar.get('measured'))} | "
            f"{relation} {_number(bar.get('required'))} | "
            f"{'-' if ceiling is None else _number(ceiling)} | {_cell(bar.get('status', ''))} |"
        )
    return "\n".join(lines)


def render(results_dir, out):
    """The MyST text of the performance page's generated part; writes the figures."""
    results_dir = pathlib.Path(results_dir)
    reports = _reports(results_dir) if results_dir.is_dir() else []
    if not reports:
        return (
            "```{note}\nNo benchmark report was found in `benchmarks/results/` when these "
            "docs were built, so there are no performance plots in this build. Run "
            "`python -m softmaxlib bench --json benchmarks/results/<machine>.json`, commit the "
            "report and rebuild the docs.\n```\n"
        )
    parts = []
    for name, text in reports:
        stem = name.removesuffix(".json")
        parts.append(f"## Report `{name}`\n")
        try:
            if isinstance(text, OSError):
                raise text
            report = json.loads(text)
        except (OSError, ValueError) as exc:
            parts.append(f"```{{warning}}\nThis report could not be read: {_cell(exc)}\n```\n")
            continue
        if isinstance(report, dict):
            facts = []
            for key in ("schema", "started", "created", "date", "elapsed_s", "command"):
                value = report.get(key)
                if isinstance(value, float):
                    value = f"{value:.1f}"
                elif key == "command":
                    value = _command_text(value)
                if isinstance(value, (str, int)) and value != "":
                    facts.append(f"{key}: `{_cell(value)}`")
            if facts:
                parts.append("; ".join(facts) + "\n")
            if isinstance(report.get("traffic_model"), str):
                parts.append(f"*{_cell(report['traffic_model'])}*\n")
        machine = _machine(report)
        if machine:
            parts.append("**Machine**\n\n" + _machine_table(machine) + "\n")
        else:
            parts.append("*This report does not say which machine it ran on.*\n")
        figures = _plot_report(report, stem, out)
        bars = _bars_table(report)
        if bars:
            parts.append("**Acceptance checks measured in this report**\n\n" + bars + "\n")
        if not figures:
            parts.append("*This report holds no measurements over several sizes to plot.*\n")
        for title, name in figures:
            parts.append(f"```{{figure}} /generated/{name}\n:alt: {title}\n:width: 100%\n\n{title}\n```\n")
    return "\n".join(parts)


def write(out, results_dir):
    out = pathlib.Path(out)
    for old in out.glob("perf_*.png"):
        old.unlink()
    (out / "performance.md").write_text(render(results_dir, out), encoding="utf-8")


if __name__ == "__main__":
    import sys

    target = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ".")
    target.mkdir(parents=True, exist_ok=True)
    write(target, sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
    print((target / "performance.md").read_text())
