"""The measurement harness: warm-up, repeated timed runs, medians, progress.

``Harness.time(fn)`` calls ``fn()`` twice to warm up (compilation, page faults,
thread-pool start), then times samples with ``time.perf_counter`` until the
case's time budget is spent, keeping between ``min_samples`` and ``max_samples``
samples; ``Harness.time_together`` does the same for several callables in
interleaved rounds (the bars' contenders). Calls much shorter than a millisecond
are timed in loops of several calls per sample (as ``timeit`` does), so the
clock's own cost stays negligible.
"""

import dataclasses
import sys
import time

from softmaxlib._bench.results import median

#: A sample should last at least this long; shorter calls are looped.
MIN_SAMPLE_S = 1e-3


@dataclasses.dataclass
class Timing:
    """Per-call seconds of each timed sample."""

    samples: list
    calls_per_sample: int

    @property
    def median_s(self):
        return median(self.samples)

    @property
    def min_s(self):
        return min(self.samples)


def calls_per_sample(one_call_s, min_sample_s=MIN_SAMPLE_S):
    """How many calls to loop in one sample so that it lasts ``min_sample_s``."""
    if one_call_s >= min_sample_s:
        return 1
    return max(1, min(100_000, int(min_sample_s / max(one_call_s, 1e-9)) + 1))


@dataclasses.dataclass
class Harness:
    """Times callables within a budget and reports progress on stderr."""

    #: Seconds of timed samples per case (the warm-up is not counted).
    budget_s: float = 0.3
    min_samples: int = 3
    max_samples: int = 25
    #: ``time_together`` of several callables takes up to this many times
    #: ``max_samples`` rounds: a ratio of two noisy medians needs more samples than
    #: one median in a table, and the budget still bounds the time.
    rounds_factor: int = 4
    #: Where progress lines go (None: silent).
    progress_stream: object = sys.stderr
    _count: int = 0

    def time(self, fn):
        """Warm ``fn`` up, then time it; returns a ``Timing``."""
        return self.time_together([fn], [self.warm_up(fn)])[0]

    def warm_up(self, fn):
        """Call ``fn`` twice untimed (compilation, first-touch page faults, thread
        pools); returns how many calls one timed sample of it loops."""
        start = time.perf_counter()
        fn()
        warm_s = time.perf_counter() - start
        # The second call estimates one call better than the first.
        start = time.perf_counter()
        fn()
        return calls_per_sample(min(warm_s, time.perf_counter() - start))

    def time_together(self, fns, numbers):
        """Time warmed-up callables in interleaved rounds, one sample of each per
        round, until ``budget_s`` per callable is spent; a ``Timing`` per callable.

        ``numbers[i]`` is the calls per sample of ``fns[i]`` (``warm_up``). Side by
        side, a machine whose speed drifts (other tenants, clock changes) slows
        every contender alike, so the ratios of their medians hold; blocks timed
        one after the other can each catch a different phase of the drift.
        """
        if not fns:
            return []
        samples = [[] for _ in fns]
        deadline = time.perf_counter() + self.budget_s * len(fns)
        max_rounds = self.max_samples * (self.rounds_factor if len(fns) > 1 else 1)
        while len(samples[0]) < max_rounds:
            for fn, number, out in zip(fns, numbers, samples):
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                out.append((time.perf_counter() - start) / number)
            if len(samples[0]) >= self.min_samples and time.perf_counter() >= deadline:
                break
        return [Timing(s, number) for s, number in zip(samples, numbers)]

    def progress(self, section, text):
        """One progress line on stderr: ``[section  #n] text``."""
        self._count += 1
        if self.progress_stream is not None:
            print(f"[{section} #{self._count}] {text}", file=self.progress_stream, flush=True)


def format_seconds(seconds):
    """Human-readable duration: ns, µs, ms or s with 3 significant digits."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
