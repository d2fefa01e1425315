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


def _load_torch_path():
    """With torch already imported, load the PyTorch path now: ``torch.compile`` can
    trace a call only once its custom op exists (see ``_backends.torch_traced``)."""
    import sys

    if "torch" in sys.modules:
        from softmaxlib import _backends

        _backends.torch_compiling()


_load_torch_path()
