"""The benchmark report, ``python -m softmaxlib bench``.

One job per module:

- ``options``   what to measure (sizes, dtypes, backends, algorithms, threads, budget);
- ``machine``   what it is measured on (CPU, caches, ISA in use, threads, versions);
- ``arrays``    the inputs; ``peers`` the implementations compared with ours;
- ``harness``   warm-up, timed samples within a budget, medians, progress on stderr;
- ``context``   ``BenchContext.measure``: one case, never failing the whole run;
- ``sections``  the pluggable list of sections (NumPy sweep, bars, JAX, ...);
- ``results``   measurements, bars and the ratio/bandwidth arithmetic;
- ``report``    the printed tables; ``plot`` the PNG; this module runs it all and
  writes the JSON.
"""

import dataclasses
import datetime
import json
import os
import sys
import time

from softmaxlib._bench.context import BenchContext
from softmaxlib._bench.harness import Harness
from softmaxlib._bench.machine import machine_info
from softmaxlib._bench.options import BenchOptions
from softmaxlib._bench.results import SCHEMA, TRAFFIC_MODEL
from softmaxlib._bench.sections import SECTIONS, selected

__all__ = ["BenchOptions", "Report", "SECTIONS", "run_benchmark", "write_json"]

RESULTS_DIR = os.path.join("benchmarks", "results")


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
            "sections": [s.to_dict() for s in self.sections],
        }


def default_path(extension, started):
    """``benchmarks/results/bench-<host>-<time>.<extension>`` under the working directory."""
    import socket

    stamp = started.replace(":", "").replace("-", "")[:15]
    return os.path.join(RESULTS_DIR, f"bench-{socket.gethostname()}-{stamp}.{extension}")


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
        results.append(section.run(ctx))
    return Report(options, machine, results, started, time.perf_counter() - begin,
                  list(sys.argv))


def write_json(report, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f, indent=1)
        f.write("\n")
