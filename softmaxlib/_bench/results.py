"""What a benchmark run produces: measurements, bars, sections, and their arithmetic.

Everything here is plain data plus the few pure functions that derive numbers
from timings (medians, ratios, effective bandwidth), so that the arithmetic can be
checked on synthetic timings without running anything.
"""

import dataclasses
import statistics

#: Version of the JSON layout written by ``--json``; bump it on incompatible changes.
SCHEMA = "softmaxlib-bench/2"

#: How "effective bandwidth" is counted, stated in the table and in the JSON.
TRAFFIC_MODEL = (
    "effective bandwidth = (bytes of x read once + bytes of y written once) / median time, "
    "i.e. 2 * x.nbytes per call for softmax (the ideal 1-read-1-write count, the same for "
    "every implementation, including x.copy())"
)

#: Kinds of implementation in a comparison group.
OURS, PEER, YARDSTICK = "ours", "peer", "yardstick"


def median(samples):
    """Median of the per-call times ``samples`` (seconds)."""
    if not samples:
        raise ValueError("median of no samples")
    return statistics.median(samples)


def ratio(numerator, denominator):
    """``numerator / denominator``, or None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def ratio_of(numerator, denominator):
    """The ratio of two measurements' medians; None when either is missing or skipped."""
    if numerator is None or denominator is None:
        return None
    return ratio(numerator.median_s, denominator.median_s)


def grouped(measurements, key, keep):
    """``measurements`` passing ``keep``, as lists by ``key(m)`` in first-seen order."""
    groups = {}
    for m in measurements:
        if keep(m):
            groups.setdefault(key(m), []).append(m)
    return groups


def ideal_bytes(nbytes_in, nbytes_out):
    """Bytes moved by one ideal call: the input read once, the output written once."""
    return nbytes_in + nbytes_out


def bandwidth_gbs(nbytes, seconds):
    """Effective bandwidth in GB/s (10^9 bytes per second), or None without a time."""
    if seconds is None or seconds <= 0:
        return None
    return nbytes / seconds / 1e9


@dataclasses.dataclass
class Measurement:
    """One implementation timed on one case (shape, dtype, thread count)."""

    backend: str
    #: Display name: "two-pass", "auto", "scipy", "torch", "x.copy()", ...
    implementation: str
    #: OURS, PEER or YARDSTICK.
    kind: str
    shape: tuple
    dtype: str
    #: Threads the implementation ran with (None: the library's own default, e.g. XLA).
    threads: int | None
    #: Median seconds per call, None when it was skipped.
    median_s: float | None = None
    min_s: float | None = None
    #: Number of timed samples, and calls per sample (tiny arrays are timed in loops).
    samples: int = 0
    calls_per_sample: int = 1
    #: Ideal bytes moved per call (see TRAFFIC_MODEL).
    bytes: int = 0
    gbs: float | None = None
    #: Ratios filled in by ``add_ratios``: ours / x.copy(), and peer / ours.
    vs_copy: float | None = None
    peer_over_ours: float | None = None
    #: Why it was not measured (peer missing, dtype unsupported, error text).
    skipped: str | None = None
    #: True when ``skipped`` is an error (an exception), not a peer that cannot run here.
    failed: bool = False
    #: Thread count of the comparison group (our threads) when it differs from ``threads``.
    group_threads: int | None = None

    @property
    def size(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def group_key(self):
        """Measurements sharing this key are compared with one another."""
        threads = self.group_threads if self.group_threads is not None else self.threads
        return (self.backend, tuple(self.shape), self.dtype, threads)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["size"] = self.size
        return d


@dataclasses.dataclass
class Bar:
    """One acceptance check: a measured ratio against the required one.

    ``description`` names what is measured ("64x32000, 1 thread: torch.softmax time
    / ours"), so that the check reads on its own.

    ``measured`` is oriented so that bigger is better when ``at_least`` is True
    (a speed-up) and smaller is better when it is False (a time ratio bound).

    ``ceiling``, for a speed-up over a peer, is the same ratio for the run's
    yardstick in our place (peer time / yardstick time): the yardstick moves the
    memory that any implementation must move (``x.copy()`` for a softmax, one read
    of ``x`` for a top-k), so no implementation beats its ratio on this machine.
    A bar whose ceiling misses ``required`` is out of reach here: status
    ``FAIL (out of reach)``.
    """

    description: str
    measured: float | None
    required: float
    at_least: bool = True
    #: The timings the ratio comes from: {name: median seconds}.
    timings: dict = dataclasses.field(default_factory=dict)
    note: str | None = None
    ceiling: float | None = None

    def _meets(self, value):
        return value >= self.required if self.at_least else value <= self.required

    @property
    def reachable(self):
        """False when even the yardstick misses the bar; None without a ceiling."""
        return None if self.ceiling is None else self._meets(self.ceiling)

    @property
    def status(self):
        if self.measured is None:
            return "N/A"
        if self._meets(self.measured):
            return "PASS"
        return "FAIL (out of reach)" if self.reachable is False else "FAIL"

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["status"] = self.status
        d["reachable"] = self.reachable
        return d


@dataclasses.dataclass
class SectionResult:
    """What one section of the report measured."""

    name: str
    title: str
    backend: str
    measurements: list = dataclasses.field(default_factory=list)
    bars: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    #: The implementation of ours that peers are compared with (see ``reference_of``).
    ratio_reference: str | None = None
    #: Print time/bandwidth/ratio tables of the measurements (False when the bars
    #: already show every timing).
    show_tables: bool = True
    #: What went wrong while it ran: ``Failure``s, each with its error and advice.
    failures: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return {
            "name": self.name,
            "title": self.title,
            "backend": self.backend,
            "ratio_reference": self.ratio_reference,
            "notes": list(self.notes),
            "measurements": [m.to_dict() for m in self.measurements],
            "bars": [b.to_dict() for b in self.bars],
            "failures": [dataclasses.asdict(f) for f in self.failures],
        }


@dataclasses.dataclass
class Failure:
    """A part of a section that did not run: what, the real error, what to do about it."""

    what: str
    error: str
    advice: str


def reference_of(group, preferred="auto"):
    """The measurement of ours that peers are compared with in one group.

    ``preferred`` (the algorithm a user gets by default) when it was measured,
    otherwise the fastest of our measured algorithms; None if none was measured.
    """
    ours = [m for m in group if m.kind == OURS and m.median_s is not None]
    for m in ours:
        if m.implementation == preferred:
            return m
    return min(ours, key=lambda m: m.median_s, default=None)


def add_ratios(measurements, preferred="auto"):
    """Fill ``gbs``, ``vs_copy`` (ours / copy) and ``peer_over_ours`` in place.

    Measurements are grouped by ``group_key()``; within a group the yardstick is
    the YARDSTICK measurement and "ours" is ``reference_of(group, preferred)``.
    """
    groups = {}
    for m in measurements:
        groups.setdefault(m.group_key(), []).append(m)
    for group in groups.values():
        copy = next((m for m in group if m.kind == YARDSTICK and m.median_s is not None), None)
        ours = reference_of(group, preferred)
        for m in group:
            m.gbs = bandwidth_gbs(m.bytes, m.median_s)
            if m.kind == OURS:
                m.vs_copy = ratio(m.median_s, copy.median_s if copy else None)
            elif m.kind == PEER:
                m.peer_over_ours = ratio(m.median_s, ours.median_s if ours else None)
    return measurements
