"""softmaxlib: exact, fast softmax, log_softmax and logsumexp for every Array-API array."""

from softmaxlib._api import (
    ALGORITHMS,
    log_softmax,
    log_stablemax,
    logsumexp,
    softmax,
    softmax_topk,
    stablemax,
)

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "log_softmax", "log_stablemax", "logsumexp", "softmax", "softmax_topk", "stablemax"]
