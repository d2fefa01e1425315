"""The verdict: where softmaxlib leads and where a peer does, per backend and size class.

For every shape of a section's sweep, softmaxlib's fastest algorithm is set against
the fastest installed peer (peer time / ours: above 1, softmaxlib is faster) and
against the yardstick (ours / copy: 1 is memory speed). The shapes are then put in
size classes of this machine (small: the input fits the L1 data cache; in cache:
input and output fit one core's L2, where a copy runs at cache speed; out of cache:
beyond), and each class of
each backend, dtype and thread count gives one row per outcome. A class where
softmaxlib is faster on some shapes and slower on others gives two rows, so a
peer's lead is never averaged away, and ``peer_faster`` lists each such shape.
"""

import dataclasses
import math
import re

from softmaxlib._bench.results import OURS, PEER, YARDSTICK, grouped

#: Cache sizes assumed when the machine does not say (a common x86 core).
DEFAULT_L1D = 32 * 2**10
DEFAULT_L2 = 1 * 2**20


def cache_bytes(text):
    """``"32K"`` -> 32768, ``"2M"`` -> 2097152; None when not a size."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", str(text or ""), re.I)
    if not m:
        return None
    return int(m[1]) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m[2].upper()]


def format_bytes(n):
    """32768 -> "32 KiB"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


@dataclasses.dataclass(frozen=True)
class SizeClasses:
    """The machine's size classes, by the bytes of the input ``x``."""

    l1d: int
    #: One core's L2: beyond it (x and y together) a copy slows to the next level's speed.
    l2: int

    @classmethod
    def of(cls, machine):
        caches = (machine or {}).get("caches") or {}
        l1d = cache_bytes(caches.get("L1d")) or DEFAULT_L1D
        return cls(l1d, cache_bytes(caches.get("L2")) or max(DEFAULT_L2, 2 * l1d))

    def labels(self):
        return (f"small (x <= {format_bytes(self.l1d)})",
                f"in cache (x <= {format_bytes(self.l2 // 2)})",
                f"out of cache (x > {format_bytes(self.l2 // 2)})")

    def of_bytes(self, nbytes):
        """The label of an input of ``nbytes`` bytes."""
        small, in_cache, out_of_cache = self.labels()
        if nbytes <= self.l1d:
            return small
        return in_cache if 2 * nbytes <= self.l2 else out_of_cache


@dataclasses.dataclass
class ShapeComparison:
    """One shape of one group: our fastest algorithm, the fastest peer, the yardstick."""

    section: str
    backend: str
    dtype: str
    threads: int | None
    shape: tuple
    nbytes: int
    ours: object
    peer: object = None
    copy: object = None

    @property
    def peer_over_ours(self):
        """Peer time / our time: above 1, softmaxlib is faster; None without a peer."""
        return None if self.peer is None else self.peer.median_s / self.ours.median_s

    @property
    def ours_over_copy(self):
        return None if self.copy is None else self.ours.median_s / self.copy.median_s


def comparisons(sections):
    """A ``ShapeComparison`` per measured shape of every sweep section (not the checks)."""
    out = []
    for section in sections:
        if not section.show_tables:
            continue
        groups = grouped(section.measurements, lambda m: m.group_key(),
                         lambda m: m.median_s is not None and m.median_s > 0)
        for (backend, shape, dtype, threads), group in groups.items():
            ours = [m for m in group if m.kind == OURS]
            if not ours:
                continue
            best = min(ours, key=lambda m: m.median_s)
            peers = [m for m in group if m.kind == PEER]
            copy = next((m for m in group if m.kind == YARDSTICK), None)
            out.append(ShapeComparison(
                section=section.title, backend=backend, dtype=dtype, threads=threads,
                # ``bytes`` counts x read and y written, two arrays of x's size.
                shape=shape, nbytes=best.bytes // 2, ours=best,
                peer=min(peers, key=lambda m: m.median_s) if peers else None, copy=copy))
    return out


@dataclasses.dataclass
class VerdictRow:
    """One size class of one (section, dtype, thread count), for one outcome."""

    section: str
    backend: str
    dtype: str
    threads: int | None
    size_class: str
    #: "faster" or "slower" (softmaxlib against the fastest peer), or "no peer".
    outcome: str
    shapes: list

    @property
    def ours_s(self):
        """Our best time: the geometric mean over the row's shapes."""
        return geomean([c.ours.median_s for c in self.shapes])

    @property
    def peer_s(self):
        with_peer = [c for c in self.shapes if c.peer is not None]
        return geomean([c.peer.median_s for c in with_peer]) if with_peer else None

    @property
    def peer_names(self):
        """The fastest peers of the row's shapes, most frequent first."""
        names = [c.peer.implementation for c in self.shapes if c.peer is not None]
        return sorted(set(names), key=lambda n: (-names.count(n), names.index(n)))

    @property
    def ratios(self):
        return [c.peer_over_ours for c in self.shapes if c.peer is not None]

    @property
    def vs_copy(self):
        values = [c.ours_over_copy for c in self.shapes if c.copy is not None]
        return geomean(values) if values else None

    def to_dict(self):
        ratios = self.ratios
        return {
            "section": self.section, "backend": self.backend, "dtype": self.dtype,
            "threads": self.threads, "size_class": self.size_class, "outcome": self.outcome,
            "shapes": [list(c.shape) for c in self.shapes],
            "ours_s": self.ours_s, "peer_s": self.peer_s, "peers": self.peer_names,
            "peer_over_ours": geomean(ratios) if ratios else None,
            "peer_over_ours_range": [min(ratios), max(ratios)] if ratios else None,
            "ours_over_copy": self.vs_copy,
        }


def verdict_rows(sections, machine):
    """The verdict's rows, in report order: section, dtype, threads, size class, outcome."""
    classes = SizeClasses.of(machine)
    order = {label: i for i, label in enumerate(classes.labels())}
    outcomes = ("faster", "slower", "no peer")
    rows = {}
    for c in comparisons(sections):
        ratio = c.peer_over_ours
        outcome = "no peer" if ratio is None else "faster" if ratio >= 1 else "slower"
        key = (c.section, c.backend, c.dtype, c.threads, classes.of_bytes(c.nbytes), outcome)
        rows.setdefault(key, []).append(c)
    out = [VerdictRow(*key, sorted(shapes, key=lambda c: (c.nbytes, c.shape)))
           for key, shapes in rows.items()]
    section_order = list(dict.fromkeys(r.section for r in out))
    return sorted(out, key=lambda r: (
        section_order.index(r.section), r.dtype, _threads_order(r.threads),
        order[r.size_class], outcomes.index(r.outcome)))


def peer_faster(sections):
    """Every shape where the fastest peer beats softmaxlib's fastest algorithm."""
    return [c for c in comparisons(sections)
            if c.peer_over_ours is not None and c.peer_over_ours < 1]


def _threads_order(threads):
    return (1, 0) if threads is None else (0, threads)


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))
