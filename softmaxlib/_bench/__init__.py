"""The benchmark report, ``python -m softmaxlib bench``.

One job per module:

- ``options``   what to measure (sizes, dtypes, backends, algorithms, threads, budget);
- ``machine``   what it is measured on (CPU, caches, ISA in use, threads, versions);
- ``arrays``    the inputs; ``peers`` the implementations compared with ours;
- ``harness``   warm-up, timed samples within a budget, medians, progress on stderr;
- ``context``   ``BenchContext.measure``: one case, never failing the whole run;
- ``sections``  the pluggable list of sections (NumPy sweep, bars, JAX, ...);
- ``results``   measurements, acceptance checks and the ratio/bandwidth arithmetic;
- ``verdict``   where softmaxlib leads and where a peer does, per size class;
- ``flags``     what looks wrong (a slow auto, a thread count that slows a call, a
  section that failed);
- ``report``    the printed report; ``plot`` the PNG; this module runs it all and
  writes the JSON.
"""

import dataclasses
import datetime
import json
import os
import sys
import time
import traceback

from softmaxlib._bench.context import BenchContext
from softmaxlib._bench.flags import all_flags
from softmaxlib._bench.harness import Harness
from softmaxlib._bench.machine import machine_info
from softmaxlib._bench.options import BenchOptions
from softmaxlib._bench.results import SCHEMA, TRAFFIC_MODEL, Failure, SectionResult
from softmaxlib._bench.sections import SECTIONS, selected
from softmaxlib._bench.verdict import verdict_rows

__all__ = ["BenchOptions", "Report", "SECTIONS", "run_benchmark", "write_json"]

#: Where the JSON and the PNG go unless ``--out``, ``--json`` or ``--plot`` say otherwise.
DEFAULT_OUT_DIR = "softmaxlib-bench"


@dataclasses.dataclass
class Report:
    options: BenchOptions
    machine: dict
    sections: list
    started: str
    elapsed_s: float
    command: list

    def to_dict(self):
        return {
            "schema": SCHEMA,
            "started": self.started,
            "elapsed_s": self.elapsed_s,
            "command": self.command,
            "traffic_model": TRAFFIC_MODEL,
            "options": self.options.to_dict(),
            "machine": self.machine,
            "verdict": [r.to_dict() for r in verdict_rows(self.sections, self.machine)],
            "flags": [dataclasses.asdict(f) for f in all_flags(self.sections)],
            "sections": [s.to_dict() for s in self.sections],
        }


def default_path(extension, started, out_dir=DEFAULT_OUT_DIR):
    """``<out_dir>/bench-<host>-<time>.<extension>``: one file per run, never overwritten."""
    import socket

    stamp = started.replace(":", "").replace("-", "")[:15]
    return os.path.join(out_dir, f"bench-{socket.gethostname()}-{stamp}.{extension}")


def _command_line():
    """The command as a user would type it again (no path of this machine's install)."""
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if program in ("__main__.py", "-m", "-c", ""):
        program = "python -m softmaxlib"
    return program.split() + list(sys.argv[1:])


def _run_section(section, ctx):
    """``section.run(ctx)``; a section that raises becomes a result holding the error."""
    try:
        return section.run(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken section never ends the report
        if ctx.harness.progress_stream is not None:
            traceback.print_exception(exc, file=ctx.harness.progress_stream)
        result = SectionResult(name=section.name, title=section.title, backend=section.backend)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result.failures.append(Failure(
            what="the section stopped; it has no results",
            error=f"{type(exc).__name__}: {exc}".strip()
                  + f" (at {os.path.basename(where.filename)}:{where.lineno})",
            advice=f"the whole traceback is on stderr above; run this section alone with "
                   f"--backends {section.backend} to check a fix"))
        return result


def run_benchmark(options, progress_stream=sys.stderr, section_names=None):
    """Run every selected section and return a ``Report``."""
    started = datetime.datetime.now().isoformat(timespec="seconds")
    begin = time.perf_counter()
    machine = machine_info()
    harness = Harness(budget_s=options.budget_s, max_samples=max(3, options.repeat),
                      progress_stream=progress_stream)
    ctx = BenchContext(options, harness, machine)
    results = []
    for section in selected(options.backends, section_names):
        if progress_stream is not None:
            print(f"== {section.title}", file=progress_stream, flush=True)
        results.append(_run_section(section, ctx))
    return Report(options, machine, results, started, time.perf_counter() - begin,
                  _command_line())


def write_json(report, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f, indent=1)
        f.write("\n")
