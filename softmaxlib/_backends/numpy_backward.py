"""The native backward kernels on NumPy arrays (``softmaxlib._kernels.backward``).

One function, :func:`backward`: the vector-Jacobian product of softmax,
log_softmax or logsumexp, computed from what the forward saved (its output, or
for logsumexp its input and output) and the cotangent, in one fused pass pair
per row (see ``_native/backward.h`` for the formulas and the special rows).
Arrays go to C++ as they are (any strides, no copy); the extension's binding
takes raw pointers and byte strides, so callers holding other libraries'
buffers (torch tensors, bfloat16 included) can call it the same way through
:func:`backward_raw`.
"""

import numpy as np

from softmaxlib import _native_loader as native

__all__ = ["backward", "backward_raw"]


def backward_raw(op, dtype_code, shape, axes, saved, g, dx, *, lse=None, where=None, temperature=None,
                 dtemperature=0):
    """Call the extension on raw memory.

    ``saved``, ``g``, ``lse``, ``where`` and ``dx`` are ``(pointer, byte strides)``
    pairs (``lse`` and ``where`` may be None): ``saved``, ``where`` and ``dx`` of
    ``shape``, ``g`` and ``lse`` of ``shape`` (softmax, log_softmax) or of the batch
    shape (logsumexp). ``temperature`` is None, ``("scalar", T)`` or
    ``("per_row", pointer)`` (float64, C-contiguous, batch shape);
    ``dtemperature`` a pointer to a float64 C-contiguous batch-shaped buffer that
    receives each row's dL/dT, or 0. The caller keeps every buffer alive.
    """
    kernels = native.require()
    mode, value, per_row = 0, 1.0, 0
    if temperature is not None:
        kind, arg = temperature
        mode = native.TEMPERATURE_MODES[kind]
        if kind == "scalar":
            value = float(arg)
        else:
            per_row = arg
    lse_ptr, lse_strides = lse if lse is not None else (0, [])
    where_ptr, where_strides = where if where is not None else (0, [])
    kernels.backward(native.OPS[op], dtype_code, list(shape), native.axes_mask(axes), saved[0], list(saved[1]),
                     g[0], list(g[1]), lse_ptr, list(lse_strides), where_ptr, list(where_strides), mode, value,
                     per_row, dtemperature, dx[0], list(dx[1]))


def _view(a):
    return a.__array_interface__["data"][0], a.strides


def backward(op, saved, g, axes, *, lse=None, where=None, temperature=None, temperature_grad=False):
    """dx of ``op`` over ``axes`` (a tuple of non-negative axes) from NumPy arrays.

    ``saved``: the forward's output (softmax, log_softmax) or input x (logsumexp);
    ``g``: the cotangent, of the output's shape; ``lse``: logsumexp's output;
    ``where``: None or a bool array of x's shape (masked entries get 0);
    ``temperature``: None, a scalar T > 0, or a float array of the batch shape.
    Returns dx (a new C-contiguous array of ``saved``'s shape and dtype), or
    ``(dx, dT)`` when ``temperature_grad``: dT a float64 array of the batch
    shape (per-row temperature) or a Python float (scalar temperature).
    """
    saved = np.asarray(saved)
    code = native.NUMPY_DTYPES.get(saved.dtype)
    if code is None:
        msg = f"backward: dtype {saved.dtype} has no native kernel"
        raise TypeError(msg)
    batch = tuple(s for i, s in enumerate(saved.shape) if i not in axes)
    g = np.asarray(g, dtype=saved.dtype)
    if g.shape != (batch if op == "logsumexp" else saved.shape):
        msg = f"backward: g has shape {g.shape}, expected the output's"
        raise ValueError(msg)
    if op == "logsumexp":
        if lse is None:
            msg = "backward: logsumexp needs its output (lse)"
            raise ValueError(msg)
        lse = np.asarray(lse, dtype=saved.dtype)
        if lse.shape != batch:
            msg = f"backward: lse has shape {lse.shape}, expected {batch}"
            raise ValueError(msg)
    if where is not None:
        where = np.broadcast_to(np.asarray(where, dtype=bool), saved.shape)
    if temperature_grad and temperature is None:
        msg = "backward: temperature_grad needs a temperature"
        raise ValueError(msg)
    t_arg, t_rows = None, None
    if temperature is not None:
        if np.ndim(temperature) == 0:
            t_arg = ("scalar", float(temperature))
        else:
            t_rows = np.ascontiguousarray(temperature, dtype=np.float64)
            if t_rows.shape != batch:
                msg = f"backward: a per-row temperature has the batch shape {batch}, not {t_rows.shape}"
                raise ValueError(msg)
            t_arg = ("per_row", t_rows.__array_interface__["data"][0])
    dx = np.empty(saved.shape, dtype=saved.dtype)
    dt_rows = np.empty(batch, dtype=np.float64) if temperature_grad else None
    if dx.size:
        backward_raw(op, code, saved.shape, axes, _view(saved), _view(g), _view(dx),
                     lse=None if lse is None else _view(lse), where=None if where is None else _view(where),
                     temperature=t_arg, dtemperature=0 if dt_rows is None else dt_rows.__array_interface__["data"][0])
    elif dt_rows is not None:
        dt_rows[...] = 0.0
    if not temperature_grad:
        return dx
    return (dx, float(dt_rows.sum())) if t_rows is None else (dx, dt_rows)
