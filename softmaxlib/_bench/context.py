"""What every section gets: the options, the harness, and ``measure`` for one case."""

import dataclasses
import traceback

from softmaxlib._bench.harness import Harness, format_seconds
from softmaxlib._bench.options import BenchOptions, format_shape
from softmaxlib._bench.peers import Unavailable, threads_set_to
from softmaxlib._bench.results import Measurement, ideal_bytes


@dataclasses.dataclass
class BenchContext:
    options: BenchOptions
    harness: Harness
    machine: dict

    def measure(self, section, prepare, *, backend, implementation, kind, x, threads,
                out_nbytes=None):
        """Time ``prepare()``'s callable on input ``x``; a skipped ``Measurement`` on failure.

        ``prepare`` is called once, untimed (conversions, jit); it may raise
        ``Unavailable``. Any error while preparing or warming up is recorded as
        the reason the case was skipped, so one broken peer never ends the report.
        """
        contender = Contender(prepare, implementation, kind, x, out_nbytes)
        return self.measure_together(section, [contender], backend=backend, threads=threads)[0]

    def measure_together(self, section, contenders, *, backend, threads):
        """``measure`` for several ``Contender``s timed side by side, in interleaved
        rounds (``Harness.time_together``): the bars compare these. One
        ``Measurement`` per contender, in order; one that fails to prepare or warm
        up is skipped and the others are still timed.
        """
        measurements, ready = [], []
        for c in contenders:
            m = Measurement(
                backend=backend, implementation=c.implementation, kind=c.kind,
                shape=tuple(c.x.shape), dtype=str(c.x.dtype), threads=threads,
                bytes=ideal_bytes(c.x.nbytes, c.x.nbytes if c.out_nbytes is None else c.out_nbytes),
            )
            measurements.append(m)
            try:
                fn = c.prepare()
                ready.append((m, fn, self.harness.warm_up(fn)))
            except Exception as exc:  # noqa: BLE001 - recorded in the report instead
                self._skip(m, exc)
        try:
            timings = self.harness.time_together([fn for _, fn, _ in ready],
                                                 [number for _, _, number in ready])
        except Exception as exc:  # noqa: BLE001 - recorded in the report instead
            for m, _, _ in ready:
                self._skip(m, exc)
        else:
            for (m, _, _), timing in zip(ready, timings):
                m.median_s, m.min_s = timing.median_s, timing.min_s
                m.samples, m.calls_per_sample = len(timing.samples), timing.calls_per_sample
        for m in measurements:
            label = f"{format_shape(m.shape)} {m.dtype} threads={threads} {m.implementation}"
            result = format_seconds(m.median_s) if m.skipped is None else f"skipped ({m.skipped})"
            self.harness.progress(section, f"{label}: {result}")
        return measurements

    def measure_bar(self, section, result, contenders, *, threads=1):
        """The contenders of one bar (``None``: a peer left out), timed side by side on
        ``threads`` native and torch threads (``measure_together``) and appended to
        ``result.measurements``; their Measurements in order, ``None`` where left out."""
        present = [c for c in contenders if c is not None]
        with threads_set_to(threads):
            measured = iter(self.measure_together(section, present, backend=result.backend,
                                                  threads=threads))
        out = [None if c is None else next(measured) for c in contenders]
        result.measurements.extend(m for m in out if m is not None)
        return out

    def _skip(self, m, exc):
        if isinstance(exc, Unavailable):
            m.skipped = str(exc)
            return
        m.skipped = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        m.failed = True
        if self.harness.progress_stream is not None:
            traceback.print_exception(exc, limit=2, file=self.harness.progress_stream)


@dataclasses.dataclass(frozen=True)
class Contender:
    """One case of ``BenchContext.measure_together``: ``prepare()`` returns the
    callable to time (it may raise ``Unavailable``); ``out_nbytes`` is the output's
    size when it is not ``x``'s (see ``TRAFFIC_MODEL``)."""

    prepare: object
    implementation: str
    kind: str
    x: object
    out_nbytes: int | None = None
