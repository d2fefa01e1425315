"""Flags: what in a run looks wrong, each with what to do about it.

- ``auto`` slower than the best explicit algorithm on a shape by more than
  ``AUTO_TOLERANCE`` (its choice is wrong for this machine and size);
- a thread count that makes one of our calls slower than a smaller one did, by
  more than ``THREADS_TOLERANCE`` (the split costs more than it brings);
- a section, or a part of one, that failed: its real error and what to do.

Flags read the sweep sections' medians; the acceptance checks speak for themselves.
"""

import dataclasses

from softmaxlib._bench.harness import format_seconds
from softmaxlib._bench.options import format_shape
from softmaxlib._bench.results import OURS, grouped

#: auto may be this much slower than the best explicit algorithm before it is flagged.
AUTO_TOLERANCE = 1.15
#: More threads may be this much slower than fewer before it is flagged (timing noise
#: of a shared machine stays below it).
THREADS_TOLERANCE = 1.10


@dataclasses.dataclass
class Flag:
    #: "auto", "threads" or "failed".
    kind: str
    text: str
    advice: str


def threads_text(threads, backend=None):
    """``2 threads``; ``None`` is the library's own default (XLA's, for JAX; a GPU's)."""
    if threads is None:
        return {"jax": "XLA's default threads", "cupy": "the GPU"}.get(
            backend, "the library's default threads")
    return f"{threads} thread" + ("" if threads == 1 else "s")


def _case(section, m, threads=True):
    where = f"{section.title}, {format_shape(m.shape)} {m.dtype}"
    return where + (f", {threads_text(m.threads, section.backend)}" if threads else "")


def auto_flags(sections):
    out = []
    for section in sections:
        if not section.show_tables:
            continue
        groups = grouped(section.measurements, lambda m: m.group_key(),
                         lambda m: m.kind == OURS and m.median_s)
        for group in groups.values():
            auto = next((m for m in group if m.implementation == "auto"), None)
            explicit = [m for m in group if m.implementation != "auto"]
            if auto is None or not explicit:
                continue
            best = min(explicit, key=lambda m: m.median_s)
            if auto.median_s > AUTO_TOLERANCE * best.median_s:
                out.append(Flag(
                    "auto",
                    f"{_case(section, auto)}: auto took {format_seconds(auto.median_s)}, "
                    f"{auto.median_s / best.median_s:.2f}x the {format_seconds(best.median_s)} "
                    f"of {best.implementation}",
                    f"pass algorithm={best.implementation!r} for arrays like this one; auto's "
                    "choice is tuned per ISA and size (benchmarks/crossover.py measures it)"))
    return out


def thread_flags(sections):
    out = []
    for section in sections:
        if not section.show_tables:
            continue
        cases = grouped(section.measurements, lambda m: (m.implementation, tuple(m.shape), m.dtype),
                        lambda m: m.kind == OURS and m.median_s and m.group_threads is None)
        for ms in cases.values():
            # The library default (None) counts as more threads than any explicit count.
            ms = sorted(ms, key=lambda m: (m.threads is None, m.threads or 0))
            for i, more in enumerate(ms[1:], start=1):
                fewer = min(ms[:i], key=lambda m: m.median_s)
                if more.median_s > THREADS_TOLERANCE * fewer.median_s:
                    out.append(Flag(
                        "threads",
                        f"{_case(section, more, threads=False)}: {more.implementation} on "
                        f"{threads_text(more.threads, section.backend)} took "
                        f"{format_seconds(more.median_s)}, "
                        f"{more.median_s / fewer.median_s:.2f}x its "
                        f"{format_seconds(fewer.median_s)} on "
                        f"{threads_text(fewer.threads, section.backend)}",
                        _thread_advice(section.backend, fewer.threads)))
    return out


def _thread_advice(backend, threads):
    if backend == "jax":
        return ("XLA's thread pool is the one JAX starts with; for arrays like this one, "
                "XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' "
                "runs them on one; a loaded machine (see load avg) can cause this too: rerun "
                "to confirm")
    count = threads if threads is not None else 1
    return (f"for arrays like this one, SOFTMAXLIB_NUM_THREADS={count} is faster here; "
            "a loaded machine (see load avg) can cause this too: rerun to confirm")


def failure_flags(sections):
    out = []
    for section in sections:
        for failure in section.failures:
            out.append(Flag("failed", f"{section.title}: {failure.what}\n{failure.error}",
                            failure.advice))
        for m in section.measurements:
            if m.failed:
                out.append(Flag(
                    "failed", f"{_case(section, m)}: {m.implementation} raised {m.skipped}",
                    "the traceback is on stderr above; the other implementations were "
                    "still measured"))
    return out


def all_flags(sections):
    """Every flag of a run: failures first, then auto, then threads."""
    return failure_flags(sections) + auto_flags(sections) + thread_flags(sections)
