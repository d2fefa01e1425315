"""The temperature's rules, written once: which values are allowed and which shapes.

``softmaxlib._api`` checks every call's temperature with them before any backend
runs; the PyTorch path under ``torch.compile`` (which cannot trace ``_api``'s generic
checks) applies the same two rules in torch ops.  A backend receives a checked
temperature (a positive float, ``"adaptive"``, or an array of the batch shape) and
only translates it.
"""

import math

import numpy as np

KINDS = "a positive number, an array of positive numbers or 'adaptive'"


def is_scalar(temperature):
    """Is ``temperature`` a Python or NumPy number (one temperature for every row)?"""
    return isinstance(temperature, (int, float, complex, np.number, np.bool_))


def positive_scalar(temperature):
    """A scalar temperature (``is_scalar``) as a float > 0 (``inf`` included), or an error.

    An integer past float's range is as good as ``inf``.  Bools and complex numbers
    are refused (TypeError), zero, negative and NaN values too (ValueError).
    """
    if isinstance(temperature, (bool, np.bool_, complex, np.complexfloating)):
        msg = f"temperature must be {KINDS}, got {temperature!r} of type {type(temperature).__name__}"
        raise TypeError(msg)
    try:
        value = float(temperature)
    except OverflowError:  # an int past float's range
        value = math.inf
    if not value > 0:
        msg = f"temperature must be positive, got {temperature!r}"
        raise ValueError(msg)
    return value


def to_batch_shape(xp, t, shape, axes):
    """A per-row temperature ``t`` as an array of the batch shape (``shape`` without
    ``axes``): ``t`` may have that shape, the keepdims shape (1 on the reduced axes),
    or broadcast to the batch shape.  ``xp`` is any namespace with ``reshape`` and
    ``broadcast_to`` (``torch`` itself under ``torch.compile``)."""
    shape, given_shape = tuple(shape), tuple(t.shape)
    batch = tuple(s for a, s in enumerate(shape) if a not in axes)
    if t.ndim == len(shape) and all(t.shape[a] == 1 for a in axes):
        t = xp.reshape(t, tuple(s for a, s in enumerate(t.shape) if a not in axes))
    try:
        return xp.broadcast_to(t, batch)
    except (ValueError, RuntimeError) as error:
        keepdims = tuple(1 if a in axes else s for a, s in enumerate(shape))
        msg = (
            f"temperature of shape {given_shape} broadcasts neither to the batch shape {batch} "
            f"(x's shape {shape} without the reduced axes) nor to the keepdims shape {keepdims}"
        )
        raise ValueError(msg) from error
