"""Benchmark inputs: reproducible random logits of a given shape and dtype."""

import numpy as np


def numpy_dtype(name):
    """The NumPy dtype called ``name``; bfloat16 comes from ml_dtypes.

    Raises ImportError when ml_dtypes is needed and missing.
    """
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def make_logits(shape, dtype_name, seed=0):
    """Standard-normal logits (scaled by 4, a typical logit spread) as a C-contiguous array."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= 4
    return x.astype(numpy_dtype(dtype_name), copy=False)


def available_memory_bytes():
    """MemAvailable from /proc/meminfo, or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fits_in_memory(nbytes, copies=8):
    """Can ``copies`` arrays of ``nbytes`` (input, outputs, peers' temporaries) fit?"""
    available = available_memory_bytes()
    return available is None or copies * nbytes <= available
