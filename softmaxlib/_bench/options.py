"""What a benchmark run measures: sizes, dtypes, backends, algorithms, threads, budget.

``BenchOptions.defaults(quick)`` gives the full report's choices or ``--quick``'s;
the command line overrides any of them. Sizes are written ``ROWSxCOLS`` or as a
plain element count (one row): ``1024``, ``2^20``, ``64K``, ``16M`` (K and M are
binary: 1K = 2^10 elements).
"""

import dataclasses
import re

from softmaxlib import _native_loader as native
from softmaxlib._bench.machine import usable_cpus

ALL_DTYPES = ("float32", "float64", "float16", "bfloat16")

#: Batched shapes every full report includes: attention-like and LM-vocabulary rows.
BATCHED_SHAPES = ((256, 128), (4096, 1024), (64, 32000), (8, 128256))


def parse_count(text):
    """Element count from ``"4096"``, ``"2^12"``, ``"4K"`` or ``"64M"``."""
    text = text.strip()
    if m := re.fullmatch(r"(\d+)\^(\d+)", text):
        return int(m[1]) ** int(m[2])
    if m := re.fullmatch(r"(\d+)([KkMmGg])", text):
        return int(m[1]) * 2 ** {"k": 10, "m": 20, "g": 30}[m[2].lower()]
    if text.isdigit():
        return int(text)
    raise ValueError(f"not an element count: {text!r} (try 4096, 2^12, 4K, 64M)")


def parse_shape(text):
    """``"64x32000"`` -> (64, 32000); ``"2^20"`` -> (1, 1048576)."""
    parts = text.lower().split("x")
    if len(parts) == 1:
        return (1, parse_count(parts[0]))
    if len(parts) == 2:
        return (parse_count(parts[0]), parse_count(parts[1]))
    raise ValueError(f"not a shape: {text!r} (try 64x32000 or 2^20)")


def format_shape(shape):
    """(1, 1048576) -> "1x2^20"; powers of two are written as such."""
    def one(n):
        return f"2^{n.bit_length() - 1}" if n >= 1024 and n & (n - 1) == 0 else str(n)

    return "x".join(one(n) for n in shape)


def split_list(text):
    """``"a,b c"`` -> ["a", "b", "c"]."""
    return [item for item in re.split(r"[,\s]+", text.strip()) if item]


def default_threads():
    """The native kernels' default thread count (the usable CPUs without the extension)."""
    return native.get_num_threads() if native.kernels is not None else usable_cpus()


@dataclasses.dataclass
class BenchOptions:
    """Everything that decides what a run measures, and where it writes."""

    quick: bool = False
    shapes: list = dataclasses.field(default_factory=list)
    dtypes: list = dataclasses.field(default_factory=lambda: ["float32"])
    #: Sections whose backend is listed run (``numpy``, ``jax``, ...).
    backends: list = dataclasses.field(default_factory=lambda: ["numpy", "jax", "torch", "dask", "cupy"])
    algorithms: list = dataclasses.field(default_factory=list)
    threads: list = dataclasses.field(default_factory=list)
    #: Most timed samples per case; at least 3 are always taken.
    repeat: int = 25
    #: Seconds of timed samples per case.
    budget_s: float = 0.3
    peers: bool = True
    json_path: str | None = None
    plot_path: str | None = None

    @classmethod
    def defaults(cls, quick=False):
        from softmaxlib import ALGORITHMS

        threads = default_threads()
        if quick:
            return cls(
                quick=True,
                shapes=[(1, 2**10), (1, 2**14), (1, 2**18), (1, 2**22), (64, 32000)],
                algorithms=list(ALGORITHMS),
                threads=[threads],
                repeat=7,
                budget_s=0.05,
            )
        return cls(
            shapes=[(1, 2**k) for k in range(10, 27)] + list(BATCHED_SHAPES),
            algorithms=list(ALGORITHMS),
            threads=sorted({1, threads}),
            repeat=25,
            budget_s=0.3,
        )

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["shapes"] = [format_shape(s) for s in self.shapes]
        return d
