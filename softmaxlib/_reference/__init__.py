"""The Array-API reference: the executable specification of every operation.

Everything here uses only functions of the Array API standard (no NumPy), so it runs
unchanged on every namespace; each fast path is tested against it and against a
float64 / mpmath oracle.  One module per operation family:

* ``softmax``: softmax, log_softmax and logsumexp by each of the four algorithms,
  with temperatures, and the helpers the others share (rows, special values);
* ``topk``: the fused softmax + top-k;
* ``stablemax``: StableMax and log-StableMax.

The names the rest of softmaxlib uses are re-exported here.
"""

from softmaxlib._reference import stablemax, topk
from softmaxlib._reference.softmax import (
    ADAPTIVE_MIN_ENTROPY,
    ADAPTIVE_POLYNOMIAL,
    ALGORITHMS,
    AUTO_ALGORITHM,
    OPERATIONS,
    compute,
    is_half,
)

__all__ = [
    "ADAPTIVE_MIN_ENTROPY",
    "ADAPTIVE_POLYNOMIAL",
    "ALGORITHMS",
    "AUTO_ALGORITHM",
    "OPERATIONS",
    "compute",
    "is_half",
    "stablemax",
    "topk",
]
