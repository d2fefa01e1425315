"""What every section gets: the options, the harness, and ``measure`` for one case."""

import dataclasses
import traceback

from softmaxlib._bench.harness import Harness, format_seconds
from softmaxlib._bench.options import BenchOptions, format_shape
from softmaxlib._bench.peers import Unavailable
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
        shape, dtype = tuple(x.shape), str(x.dtype)
        m = Measurement(
            backend=backend, implementation=implementation, kind=kind, shape=shape,
            dtype=dtype, threads=threads,
            bytes=ideal_bytes(x.nbytes, x.nbytes if out_nbytes is None else out_nbytes),
        )
        label = f"{format_shape(shape)} {dtype} threads={threads} {implementation}"
        try:
            timing = self.harness.time(prepare())
        except Unavailable as exc:
            m.skipped = str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded in the report instead
            m.skipped = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            if self.harness.progress_stream is not None:
                traceback.print_exc(limit=2, file=self.harness.progress_stream)
        else:
            m.median_s, m.min_s = timing.median_s, timing.min_s
            m.samples, m.calls_per_sample = len(timing.samples), timing.calls_per_sample
        result = format_seconds(m.median_s) if m.skipped is None else f"skipped ({m.skipped})"
        self.harness.progress(section, f"{label}: {result}")
        return m
