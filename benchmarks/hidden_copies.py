"""Peak memory of a softmaxlib call beyond its output, as a multiple of its input.

    PYTHONPATH=. python benchmarks/hidden_copies.py [--log2-size 26] [--case SUBSTRING]

Run from the repository root (it imports ``tests.peak_memory``). For every input
of ``tests.peak_memory.CASES`` (the hidden-copies table: strided, masked,
Fortran-order, float16 with three-pass-reload, big-endian, memory-mapped
inputs and the family's functions) it starts a fresh Python process, builds the
input with 2^log2-size elements, and reads the resident set's high-water mark
around one call, so that NumPy's allocations and the native extension's C++
buffers both count. It prints the peak beyond the result, in multiples of the
input's bytes, against the bar (0.1x; 2.1x for float16 with three-pass-reload,
which keeps the row's float32 exps by design). Linux only. 2^26 float32
elements take 256 MiB per input; the whole table runs in a few minutes.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import peak_memory  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2-size", type=int, default=26, help="elements per input, as a power of two")
    parser.add_argument("--case", default="", help="only the inputs whose name contains this")
    args = parser.parse_args()
    if not peak_memory.available():
        sys.exit("needs Linux's /proc/self/clear_refs")
    n = 1 << args.log2_size
    print(f"peak extra memory beyond the output, x the input, 2^{args.log2_size} elements per input")
    print(f"{'extra':>7}  {'bar':>4}  input")
    for name, setup in peak_memory.CASES.items():
        if args.case in name:
            extra = peak_memory.peak_extra(setup, n)
            bar = peak_memory.bar(name)
            verdict = "" if extra <= bar else "  OVER"
            print(f"{extra:7.3f}  {bar:4.1f}  {name}{verdict}", flush=True)


if __name__ == "__main__":
    main()
