"""The PyTorch fast path: the native kernels on a CPU tensor's own memory.

A CPU tensor of float16, bfloat16, float32 or float64 is seen as a NumPy array (a
view: same memory, same strides, no copy; bfloat16 through ml_dtypes) and handed to
the NumPy path's ``compute``, which runs the native driver with the GIL released.
The result, a new C-contiguous array, becomes a tensor without a copy.

Two routes lead there:

- a plain eager call that needs no autograd (no input requires grad, or grad mode
  is off) and is not traced (``torch.compile``, ``torch.func``, a dispatch mode)
  calls the kernels directly: a custom op's dispatch costs about 10 us a call;
- every other call goes through the custom op ``softmaxlib::compute``
  (``torch.library.custom_op`` with a fake kernel, an autograd formula and a vmap
  rule), so that ``torch.compile(fullgraph=True)`` traces it, ``opcheck`` checks it,
  autograd differentiates it and ``torch.func.vmap`` batches it.  Under
  ``torch.func.grad`` / ``jvp`` the generic path's torch ops run instead (see
  ``_functorch_differentiates``).

The backward runs the native backward kernels (``numpy_backward``: one fused pass
pair per row) where it is not itself differentiated or traced.  Where it is
(``create_graph``, ``torch.compile``, ``torch.func``) it is written with torch ops,
so that second order works: softmax's VJP ``y (g - sum g y)`` (over one axis torch's own fused
``_softmax_backward_data``); log_softmax's
``(g - sum g) - expm1(y) sum g`` (``exp(y) sum g`` would round a confident row's
gradient to 0 in float32); logsumexp's ``g softmax(x)``, the softmax being this
op again.  With a temperature T the op is of ``z = x / T``: ``dx = dz / T`` and, for
a per-row T, ``dT = -sum(dz x) / T^2``.

The thread count follows ``torch.get_num_threads()`` unless softmaxlib's own setting
was given (``set_num_threads`` or ``SOFTMAXLIB_NUM_THREADS``).  CUDA tensors, other
devices and the cases the kernels do not take return ``NotImplemented``: the generic
path runs them (with torch's own autograd).
"""

import warnings

import ml_dtypes
import numpy as np
import torch

from softmaxlib import _native_loader as native, _temperature
from softmaxlib import _backends
from softmaxlib._backends import numpy_native
from softmaxlib._native_loader import info  # noqa: F401 - the kernels' report, for the docs

OPERATIONS = ("softmax", "log_softmax", "logsumexp")

_HALF = (torch.float16, torch.bfloat16)
_DTYPES = (torch.float32, torch.float64, *_HALF)
_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


#: ``compute`` takes ``out=`` and writes the result into it.
WRITES_OUT = True


def compute(op, x, axes, where, algorithm, temperature=None, out=None):
    """``softmaxlib._backends``' contract for a torch tensor (see the module docstring);
    ``out``, a tensor ``check_out`` accepted, is written in place where the kernels run
    directly (the caller copies any other result into it)."""
    if not _native_tensor(x):
        return NotImplemented
    if not _needs_custom_op(x, where, temperature):
        return _direct(numpy_native.compute, op, x, axes, where, algorithm, temperature, out)
    if op not in OPERATIONS or isinstance(temperature, str) or _functorch_differentiates():
        return NotImplemented  # the generic path or the reference, with torch's autograd
    t_scalar = temperature if isinstance(temperature, float) else None
    t_rows = temperature if isinstance(temperature, torch.Tensor) else None
    return _compute_op(x, op, list(axes), where, algorithm, t_scalar, t_rows)


def softmax_topk(x, k, axis, where):
    """The NumPy path's ``softmax_topk`` on the tensor's memory (eager, no autograd:
    differentiable values come from the reference, in torch ops)."""
    if not _native_tensor(x) or _needs_custom_op(x, where, None):
        return NotImplemented
    threads = _follow_torch_threads()
    try:
        result = numpy_native.softmax_topk(_as_numpy(x), k, axis, _mask(where))
    finally:
        _restore_threads(threads)
    if result is NotImplemented:
        return result
    values, indices = result
    return _as_tensor(values, x.dtype), torch.from_numpy(np.ascontiguousarray(indices))


def _native_tensor(x):
    return native.kernels is not None and x.dtype in _DTYPES and x.device.type == "cpu" and x.ndim > 0


def _needs_custom_op(x, where, temperature):
    """Is this call traced, transformed or differentiated (the custom op's work)?"""
    if torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack():
        return True
    if type(x) is not torch.Tensor or torch._C._functorch.is_functorch_wrapped_tensor(x):
        return True
    if where is not None and torch._C._functorch.is_functorch_wrapped_tensor(where):
        return True
    if isinstance(temperature, torch.Tensor):
        if torch._C._functorch.is_functorch_wrapped_tensor(temperature):
            return True
        if temperature.requires_grad and torch.is_grad_enabled():
            return True
    return x.requires_grad and torch.is_grad_enabled()


def _functorch_differentiates():
    """Is a ``torch.func.grad`` / ``jvp`` (or ``jacrev``...) transform active?  A custom op's
    autograd formula does not run under them in this PyTorch (its generated
    ``autograd.Function`` lacks ``setup_context``), so the torch ops of the generic path
    do the work there."""
    if torch._C._functorch.peek_interpreter_stack() is None:
        return False
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    differentiating = (torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp)
    return any(i.key() in differentiating for i in retrieve_all_functorch_interpreters())


def _direct(function, op, x, axes, where, algorithm, temperature, out=None):
    if isinstance(temperature, torch.Tensor):
        temperature = _as_numpy(temperature.to(torch.float64))
    into = {} if out is None or out.device.type != "cpu" else {"out": _as_numpy(out)}
    threads = _follow_torch_threads()
    try:
        y = function(op, _as_numpy(x), axes, _mask(where), algorithm, temperature=temperature, **into)
    finally:
        _restore_threads(threads)
    if y is NotImplemented:
        return y
    return out if into else _as_tensor(y, x.dtype)


def lane(name, x, axis, algorithm, last):
    """The common eager call on a float32/float64 CPU tensor (``softmaxlib._api._lane``:
    no where, temperature, xp or out) on the NumPy path's short lane, on the tensor's
    memory; NotImplemented for anything else (another type or device, autograd,
    tracing, a forced reference or generic path), which then takes the full path.
    The lane's checks are the full path's for such a call, so the result is the same."""
    if torch.compiler.is_compiling() or type(x) is not torch.Tensor or x.dtype not in _LANE_DTYPES:
        return NotImplemented
    if (name != "logsumexp_lane" and last is not None) or x.device.type != "cpu" or x.is_neg() or x.is_conj():
        return NotImplemented
    numpy_lane = _backends.numpy_lane()
    if numpy_lane is None or _needs_custom_op(x, None, None):
        return NotImplemented
    threads = _follow_torch_threads()
    try:
        y = getattr(numpy_lane, name)(x.numpy(), axis, algorithm, last)
    finally:
        _restore_threads(threads)
    return y if y is NotImplemented else torch.from_numpy(y)


_LANE_DTYPES = (torch.float32, torch.float64)


def check_out(out, x, x_given, shape, where, temperature):
    """Accept ``out=`` as torch's own functions do, before any work, or raise.

    A tensor of the result's dtype (``x``'s, after promotion) on ``x``'s device; not
    with autograd (an input or ``out`` that requires grad, with grad mode on); not
    partly overlapping the input ``x_given`` or ``where`` (``out=x`` itself is in
    place).  A shape other than the result's is
    resized to it, with torch's warning where ``out`` had elements.  RuntimeError
    (TypeError for a non-tensor), as torch raises.
    """
    if not isinstance(out, torch.Tensor):
        msg = f"out must be a torch.Tensor for a tensor input, got {type(out).__module__}.{type(out).__name__}"
        raise TypeError(msg)
    if out.dtype != x.dtype or out.device != x.device:
        msg = (f"Expected out tensor to have dtype {x.dtype} on device {x.device}, "
               f"but got dtype {out.dtype} on device {out.device} instead")
        raise RuntimeError(msg)
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad
                                       for t in (x_given, out, temperature)):
        msg = ("functions with out=... arguments don't support automatic differentiation, "
               "but one of the arguments requires grad")
        raise RuntimeError(msg)
    for other in (x_given, where):
        if isinstance(other, torch.Tensor) and _partly_overlap(out, other):
            msg = ("unsupported operation: some elements of the input tensor and the written-to "
                   "tensor refer to a single memory location; clone() the tensor first")
            raise RuntimeError(msg)
    if tuple(out.shape) != tuple(shape):
        if out.numel():
            warnings.warn(
                f"An output with one or more elements was resized since it had shape {list(out.shape)}, "
                f"which does not match the required output shape {list(shape)}; resize it to zero "
                "elements first (out.resize_(0)) to reuse it without this warning", UserWarning, stacklevel=4)
        out.resize_(shape)


def _partly_overlap(a, b):
    """Do tensors ``a`` and ``b`` share memory without being the same view of it?"""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    if a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype:
        return False

    def extent(t):
        start = t.data_ptr()
        last = sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if s > 0)
        first = sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if s < 0)
        return start + first * t.element_size(), start + (last + 1) * t.element_size()

    (a0, a1), (b0, b1) = extent(a), extent(b)
    return a0 < b1 and b0 < a1


def _as_numpy(t):
    """A NumPy view of a CPU tensor: its memory and strides, no copy."""
    if t.requires_grad:
        t = t.detach()
    if t.is_neg():
        t = t.resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_BFLOAT16)
    return t.numpy()


def _as_tensor(a, dtype):
    """A new NumPy result as a tensor of ``dtype`` (no copy)."""
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _mask(where):
    return None if where is None else _as_numpy(where)


def _follow_torch_threads():
    """Run the kernels on torch's thread count unless softmaxlib's was given: the
    count to restore afterwards, or None."""
    if native.threads_given:
        return None
    wanted, current = torch.get_num_threads(), native.kernels.get_num_threads()
    if wanted == current:
        return None
    native.kernels.set_num_threads(wanted)
    return current


def _restore_threads(previous):
    if previous is not None:
        native.kernels.set_num_threads(previous)


# ------------------------------------------------------------------- the custom op


@torch.library.custom_op("softmaxlib::compute", mutates_args=())
def _compute_op(
    x: torch.Tensor,
    op: str,
    axes: list[int],
    where: torch.Tensor | None,
    algorithm: str,
    t_scalar: float | None,
    t_rows: torch.Tensor | None,
) -> torch.Tensor:
    """``op`` of ``x / T`` over ``axes`` by the native kernels (T: ``t_scalar``,
    ``t_rows`` of the batch shape, or none)."""
    temperature = t_scalar if t_rows is None else t_rows
    y = _direct(numpy_native.compute, op, x, tuple(axes), where, algorithm, temperature)
    if y is NotImplemented:  # what the kernels leave: the generic path, then the reference
        from softmaxlib import _reference
        from softmaxlib._backends import generic

        y = generic.compute(op, x, tuple(axes), where, algorithm, temperature=temperature)
        if y is NotImplemented:
            xp = _namespace()
            y = _reference.compute(xp, op, x, tuple(axes), where, algorithm, temperature)
        y = y.contiguous().clone()
    return y


def _namespace():
    import array_api_compat

    return array_api_compat.array_namespace(torch.empty(0))


@_compute_op.register_fake
def _compute_fake(x, op, axes, where, algorithm, t_scalar, t_rows):
    if op == "logsumexp":
        return x.new_empty([s for i, s in enumerate(x.shape) if i not in axes])
    return x.new_empty(x.shape)


def _setup_context(ctx, inputs, output):
    x, op, axes, where, algorithm, t_scalar, t_rows = inputs
    ctx.op, ctx.axes, ctx.algorithm, ctx.t_scalar = op, tuple(axes), algorithm, t_scalar
    ctx.save_for_backward(x, where, t_rows, output)


def _backward(ctx, g):
    x, where, t_rows, y = ctx.saved_tensors
    op, axes = ctx.op, ctx.axes
    if _native_backward_applies(g, y):
        return _native_backward(ctx, g, x, where, t_rows, y)
    if op == "logsumexp":  # g softmax(x / T), the softmax by this op (differentiable)
        y = _compute_op(x, "softmax", list(axes), where, ctx.algorithm, ctx.t_scalar, t_rows)
        dz = _unsqueeze(g, axes) * y
    elif op == "softmax" and len(axes) == 1:  # torch's own fused pass pair, differentiable
        dz = torch._softmax_backward_data(g, y, axes[0], y.dtype)
    elif op == "softmax":
        dz = y * (g - (g * y).sum(axes, keepdim=True))
    else:
        if where is not None:
            g = torch.where(where, g, 0)
        total = g.sum(axes, keepdim=True)
        dz = (g - total) - torch.expm1(y) * total
    if where is not None:
        dz = torch.where(where, dz, 0)
    dx, dt = dz, None
    if ctx.t_scalar is not None:
        dx = dz / ctx.t_scalar
    elif t_rows is not None:
        t = _unsqueeze(t_rows, axes).to(dz.dtype)
        dx = dz / t
        if ctx.needs_input_grad[6]:
            dzx = dz * x if where is None else torch.where(where, dz * x, 0)
            dt = (-dzx.sum(axes) / (t_rows.to(dz.dtype) ** 2)).to(t_rows.dtype)
    return dx, None, None, None, None, None, dt


def _native_backward_applies(g, y):
    """The native backward kernels run where this backward is not itself differentiated
    (grad mode is off inside it unless ``create_graph``) nor traced; otherwise the
    torch ops above, which autograd can differentiate again."""
    if torch.is_grad_enabled() or g.dtype != y.dtype or g.device.type != "cpu":
        return False
    return not _needs_custom_op(g, None, None) and not torch._C._functorch.is_functorch_wrapped_tensor(y)


def _native_backward(ctx, g, x, where, t_rows, y):
    """dx (and a per-row temperature's dT) by one fused native pass pair per row."""
    from softmaxlib._backends import numpy_backward

    op, axes = ctx.op, ctx.axes
    temperature = ctx.t_scalar
    if t_rows is not None:
        temperature = _as_numpy(t_rows.to(torch.float64))
    want_dt = t_rows is not None and ctx.needs_input_grad[6]
    saved, lse = (x, y) if op == "logsumexp" else (y, None)
    threads = _follow_torch_threads()
    try:
        out = numpy_backward.backward(
            op, _as_numpy(saved), _as_numpy(g), axes, lse=None if lse is None else _as_numpy(lse),
            where=_mask(where), temperature=temperature, temperature_grad=want_dt)
    finally:
        _restore_threads(threads)
    dx, dt = (out if want_dt else (out, None))
    dx = _as_tensor(dx, y.dtype if op != "logsumexp" else x.dtype)
    if dt is not None:
        dt = torch.from_numpy(dt).to(t_rows.dtype)
    return dx, None, None, None, None, None, dt


def _unsqueeze(a, axes):
    for axis in axes:
        a = a.unsqueeze(axis)
    return a


_compute_op.register_autograd(_backward, setup_context=_setup_context)


@_compute_op.register_vmap
def _compute_vmap(info, in_dims, x, op, axes, where, algorithm, t_scalar, t_rows):
    """One call on the batch: the vmapped dimension in front of every tensor."""
    x_dim, _, _, where_dim, _, _, t_dim = in_dims

    def front(a, dim, shape):
        if a is None:
            return None
        return a.movedim(dim, 0) if dim is not None else a.expand(info.batch_size, *shape)

    x = front(x, x_dim, x.shape)
    where = front(where, where_dim, x.shape[1:])
    t_rows = front(t_rows, t_dim, () if t_rows is None else t_rows.shape)
    return _compute_op(x, op, [a + 1 for a in axes], where, algorithm, t_scalar, t_rows), 0


# ------------------------------------------------------------ under torch.compile


def traced(op, x, axes, where, algorithm, keepdims, temperature):
    """The call as ``torch.compile`` traces it: the custom op, with the argument handling
    of ``softmaxlib._api`` redone in torch ops Dynamo follows (its generic handling,
    ``array_api_compat``'s cached lookups and the masked-array checks, is not
    traceable).  A temperature array cannot be checked here (traced values): a zero
    or negative one gives NaN rows, as under ``jax.jit``.  ``NotImplemented`` for what
    the custom op does not take (the StableMax pair, an adaptive temperature, a
    non-CPU tensor): the ordinary path runs it.
    """
    if op not in OPERATIONS or isinstance(temperature, str) or not isinstance(x, torch.Tensor):
        return NotImplemented
    if x.device.type != "cpu" or native.kernels is None:
        return NotImplemented
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.dtype not in _DTYPES:
        return NotImplemented
    shape = tuple(x.shape)
    if not axes:  # each element its own row
        x, axes = x.unsqueeze(-1), (x.ndim,)
    if where is not None:
        where = torch.broadcast_to(torch.as_tensor(where, device=x.device), x.shape)
    t_scalar = t_rows = None
    if temperature is not None:
        if isinstance(temperature, torch.Tensor):
            t_rows = temperature if temperature.is_floating_point() else temperature.to(x.dtype)
            t_rows = _temperature.to_batch_shape(torch, t_rows, x.shape, axes)
        else:
            t_scalar = _temperature.positive_scalar(temperature)
    y = _compute_op(x, op, list(axes), where, algorithm, t_scalar, t_rows)
    if op == "logsumexp":
        if keepdims and shape:
            return y.reshape([1 if a in axes else s for a, s in enumerate(shape)])
        return y.reshape([s for a, s in enumerate(shape) if a not in axes])
    return y.reshape(shape)
