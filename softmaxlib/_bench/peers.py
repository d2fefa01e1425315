"""The implementations softmaxlib is compared with, on a NumPy array.

Each peer is a function ``prepare(x) -> call`` that converts the input once
(outside the timing) and returns a zero-argument callable computing softmax over
the last axis with a fresh output, as a user gets it. ``prepare`` raises
``Unavailable`` when the peer is not installed or cannot take this dtype.
"""

import contextlib
import dataclasses
import importlib.util

import numpy as np

from softmaxlib import _native_loader as native


class Unavailable(Exception):
    """This peer cannot run here (not installed, dtype unsupported)."""


def _require(module):
    if importlib.util.find_spec(module) is None:
        raise Unavailable(f"{module} not installed")
    return importlib.import_module(module)


def numpy_by_hand(x):
    """Softmax as a user writes it in NumPy: max, subtract, exp, sum, divide."""

    def call():
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return call


def scipy_softmax(x):
    special = _require("scipy.special")
    return lambda: special.softmax(x, axis=-1)


def to_torch(x):
    """The NumPy array ``x`` as a torch tensor sharing its memory (bfloat16 included)."""
    torch = _require("torch")
    if x.dtype.name == "bfloat16":
        return torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(x)


def torch_softmax(x):
    torch = _require("torch")
    t = to_torch(x)
    return lambda: torch.softmax(t, -1)


def to_jax(x):
    """The NumPy array ``x`` on JAX's default device, in the same dtype."""
    jax = _require("jax")
    if x.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    xj = jax.device_put(x)
    if xj.dtype != x.dtype:
        raise Unavailable(f"JAX turned {x.dtype} into {xj.dtype}")
    return xj


def jax_softmax(x):
    jax = _require("jax")
    xj = to_jax(x)
    f = jax.jit(jax.nn.softmax)
    return lambda: f(xj).block_until_ready()


def copy(x):
    """The physical yardstick: one read and one write of the same bytes."""
    return x.copy


def read_once(x):
    """The yardstick of a reduction (a top-k): one read of the same bytes, as max per row."""
    return lambda: x.max(axis=-1)


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    prepare: object
    #: Does the peer follow the thread count being measured (torch), or run on its
    #: own fixed threads (NumPy and SciPy: 1; JAX: XLA's default, set at start-up)?
    follows_threads: bool
    #: Threads it runs with when it does not follow (None: the library's default).
    own_threads: int | None = 1


#: Peers of the NumPy section, in table order.
NUMPY_PEERS = (
    Peer("numpy (by hand)", numpy_by_hand, follows_threads=False),
    Peer("scipy", scipy_softmax, follows_threads=False),
    Peer("torch", torch_softmax, follows_threads=True),
    Peer("jax (jit)", jax_softmax, follows_threads=False, own_threads=None),
)

COPY = Peer("x.copy()", copy, follows_threads=False)


@contextlib.contextmanager
def threads_set_to(n):
    """Run the block with softmaxlib's native kernels and torch on ``n`` threads.

    Either library may be absent (or the native module lack ``set_num_threads``);
    the previous settings are restored afterwards.
    """
    restore = []
    previous = native.get_num_threads()
    native.set_num_threads(n)
    restore.append(lambda: native.set_num_threads(previous))
    if importlib.util.find_spec("torch") is not None:
        import torch

        previous_torch = torch.get_num_threads()
        torch.set_num_threads(n)
        restore.append(lambda: torch.set_num_threads(previous_torch))
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()


def native_threads():
    """The native kernels' current thread count (1 without the extension)."""
    return native.get_num_threads()
