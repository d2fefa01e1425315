"""The derivative of softmax, log_softmax and logsumexp as one linear primitive.

``tangent(op, saved, lse, t)`` is the Jacobian of ``op`` at the forward's
result applied to ``t`` (forward mode), and ``cotangent(...)`` its transpose
(reverse mode); each is the other's transpose rule, so ``jvp``, ``jacfwd``,
``grad`` and their compositions all work, and the reverse pass of ``grad``
keeps only what these primitives take: softmax's and log_softmax's output y,
logsumexp's x and output (and ``where``, an input anyway).

* forward: softmax ``y (t - sum t y)``, log_softmax ``t - sum t exp(y)`` (as
  ``(t - t_k) + sum exp(y) (t_k - t)``, k at the max: no 1 - p_k),
  logsumexp ``sum t exp(x - lse)``: jnp code, fused by XLA;
* reverse: the native backward kernels (``softmaxlib_backward``, one fused pass
  pair per row, ``_native/backward.h``) on CPU, the same formulas in jnp
  elsewhere: softmax ``y (g - sum g y)``, log_softmax
  ``(g - sum g) - expm1(y) sum g``, logsumexp ``g exp(x - lse)``.

With a temperature T (``mode`` 1: the scalar ``value``; 2: ``rows``, one per row,
an operand) both directions are those of op at z = x / T applied to t / T: the
forward's tangent is the Jacobian at y applied to t / T, the reverse's cotangent
dx = dz / T, formed by the native kernel itself (its temperature modes); the
temperature's own tangent is the caller's (a t of -z dT, see softmax.py).
logsumexp's saved operand stays x (the kernel forms z = x / T); with a
temperature its +inf entries get 0 both ways, as the temperature path's rule has
always given (the result is locally constant there), where the plain kernel
gives NaN (exp(inf - inf)).

Second order: the JVP of either primitive with respect to its saved operands
(and per-row temperatures) is that of its jnp formula. Masked entries (``where`` False) get 0 both ways. The
reduced axes are the ``n_reduced`` minor ones (the caller moved them there).
"""

import functools

import numpy as np

from softmaxlib import _native_loader as native
from softmaxlib._backends.jax_ffi import primitives

_TARGET = "softmaxlib_backward"


def _inverse_temperature(mode, value, rows, n_reduced, dtype):
    """1 / T, broadcastable against x (None without a temperature)."""
    if mode == 0:
        return None
    if mode == 1:
        return 1 / value
    return (1 / rows).astype(dtype).reshape(rows.shape + (1,) * n_reduced)


def _formula(op, n_reduced, transposed, saved, lse, where, t, mode=0, value=1.0, rows=None):
    """The jnp formula of either direction (the reference of the native kernel)."""
    import jax.numpy as jnp

    inv = _inverse_temperature(mode, value, rows, n_reduced, saved.dtype)
    if inv is None:
        return _formula_z(op, n_reduced, transposed, saved, lse, where, t)
    if op == "logsumexp":
        saved = jnp.where(saved == jnp.inf, -jnp.inf, saved * inv)  # z; +inf entries do not move (see below)
    if transposed:
        return _formula_z(op, n_reduced, transposed, saved, lse, where, t) * inv
    return _formula_z(op, n_reduced, transposed, saved, lse, where, t * inv)


def _formula_z(op, n_reduced, transposed, saved, lse, where, t):
    """``_formula`` without a temperature."""
    import jax.numpy as jnp

    red = tuple(range(-n_reduced, 0))
    keep = where if where is not None else None
    if op == "logsumexp":
        x = saved if keep is None else jnp.where(keep, saved, -jnp.inf)
        p = jnp.exp(x - jnp.expand_dims(lse, red))
        if transposed:
            out = jnp.expand_dims(t, red) * p
        else:
            return jnp.sum(jnp.where(keep, t, 0) * p if keep is not None else t * p, axis=red)
    elif op == "softmax":
        y = saved
        tt = t if keep is None else jnp.where(keep, t, 0)
        out = y * (tt - jnp.sum(tt * y, axis=red, keepdims=True))
    else:
        y = saved
        tt = t if keep is None else jnp.where(keep, t, 0)
        if transposed:
            s = jnp.sum(tt, axis=red, keepdims=True)
            out = (tt - s) - jnp.expm1(y) * s
        else:
            # t - sum_j p_j t_j as (t - t_k) + sum_j p_j (t_k - t_j), k an entry at the
            # max: no 1 - p_k is formed (a confident row's tangent would round to 0).
            top = y == jnp.max(y, axis=red, keepdims=True)
            tk = jnp.max(jnp.where(top, tt, -jnp.inf), axis=red, keepdims=True)
            out = (tt - tk) + jnp.sum(jnp.exp(y) * (tk - tt), axis=red, keepdims=True)
    return out if keep is None else jnp.where(keep, out, 0)


def _split(op, masked, mode, args):
    """(saved, lse, where, rows, t) from a primitive's operands."""
    saved, rest = args[0], list(args[1:])
    lse = rest.pop(0) if op == "logsumexp" else None
    where = rest.pop(0) if masked else None
    rows = rest.pop(0) if mode == 2 else None
    return saved, lse, where, rows, rest[0]


def apply(op, n_reduced, transposed, saved, lse, where, t, mode=0, value=1.0, rows=None):
    """Bind the primitive of one direction: operands saved[, lse][, where][, rows], t;
    ``mode`` 0 (no temperature), 1 (the scalar ``value``) or 2 (``rows``)."""
    operands = ((saved,) + ((lse,) if op == "logsumexp" else ()) + ((where,) if where is not None else ())
                + ((rows,) if mode == 2 else ()) + (t,))
    return _primitive().bind(*operands, op=op, n_reduced=n_reduced, transposed=transposed, masked=where is not None,
                             mode=mode, value=float(value))


@functools.cache
def _primitive():
    import jax
    from jax.extend.core import Primitive
    from jax.interpreters import ad

    prim = Primitive("softmaxlib_derivative")

    def abstract(*args, op, n_reduced, transposed, masked, mode, value):
        saved = args[0]
        if op == "logsumexp" and not transposed:
            return jax.core.ShapedArray(saved.shape[: saved.ndim - n_reduced], saved.dtype)
        return jax.core.ShapedArray(saved.shape, saved.dtype)

    def generic(*args, op, n_reduced, transposed, masked, mode, value):
        saved, lse, where, rows, t = _split(op, masked, mode, args)
        return _formula(op, n_reduced, transposed, saved, lse, where, t, mode, value, rows)

    def lower(ctx, *args, op, n_reduced, transposed, masked, mode, value):
        if not transposed:
            return jax.interpreters.mlir.lower_fun(generic, multiple_results=False)(
                ctx, *args, op=op, n_reduced=n_reduced, transposed=transposed, masked=masked, mode=mode, value=value)
        import jax.numpy as jnp

        def native_call(*a):
            saved, lse, where, rows, g = _split(op, masked, mode, a)
            operands = ((saved, g) + ((lse,) if op == "logsumexp" else ()) + ((where,) if masked else ())
                        + ((rows,) if mode == 2 else ()))
            dx, _ = _kernel_call().bind(*operands, op=op, n_reduced=n_reduced, masked=masked, mode=mode, value=value)
            if op == "logsumexp" and mode != 0:
                dx = jnp.where(saved == jnp.inf, jnp.zeros((), dx.dtype), dx)  # (see the docstring)
            return dx

        return jax.interpreters.mlir.lower_fun(native_call, multiple_results=False)(ctx, *args)

    def transpose(ct, *args, op, n_reduced, transposed, masked, mode, value):
        saved, lse, where, rows, t = _split(op, masked, mode, args)
        if any(ad.is_undefined_primal(a) for a in (saved, lse, where, rows) if a is not None):
            msg = "softmaxlib: the derivative is linear only in its last operand"
            raise NotImplementedError(msg)
        if type(ct) is ad.Zero:
            out = ad.Zero(t.aval)
        else:
            out = apply(op, n_reduced, not transposed, saved, lse, where, ct, mode, value, rows)
        return [None] * (len(args) - 1) + [out]

    def jvp(primals, tangents, *, op, n_reduced, transposed, masked, mode, value):
        # Linear in t (the primitive itself); the saved operands (and per-row
        # temperatures) move with the point: the jnp formula's JVP in them, t
        # held (where never moves).
        saved, lse, where, rows, t = _split(op, masked, mode, primals)
        d_saved, d_lse, _, d_rows, d_t = _split(op, masked, mode, tangents)
        params = dict(op=op, n_reduced=n_reduced, transposed=transposed, masked=masked, mode=mode, value=value)
        out = prim.bind(*primals, **params)
        t_out = ad.Zero(jax.core.get_aval(out).to_tangent_aval()) if type(d_t) is ad.Zero else apply(
            op, n_reduced, transposed, saved, lse, where, d_t, mode, value, rows)
        point = [(saved, d_saved)] + ([(lse, d_lse)] if lse is not None else []) + (
            [(rows, d_rows)] if rows is not None else [])
        if any(type(d) is not ad.Zero for _, d in point):
            def of_point(*moving):
                s, rest = moving[0], list(moving[1:])
                l = rest.pop(0) if lse is not None else None
                r = rest.pop(0) if rows is not None else None
                return _formula(op, n_reduced, transposed, s, l, where, t, mode, value, r)

            primal_in = tuple(p for p, _ in point)
            dots = tuple(ad.instantiate_zeros(d) for _, d in point)
            _, extra = jax.jvp(of_point, primal_in, dots)
            t_out = extra if type(t_out) is ad.Zero else t_out + extra
        return out, t_out

    primitives.register(prim, abstract, lower, generic)
    ad.primitive_jvps[prim] = jvp
    ad.primitive_transposes[prim] = transpose
    return prim


@functools.cache
def _kernel_call():
    """The backward custom call as a primitive of its own (results dx and each row's
    dL/dT), so that its lowering can say how it shards, as the forward's does
    (``primitives.lower_ffi``): the leading axes are batch axes (batch
    partitionable: a batch-sharded input stays shard-local, no all-gather), with the
    Shardy rule in which the reduced axes need replication. Operands: saved, g[,
    lse][, where][, rows], in the handler's order; only ever bound inside the
    derivative primitive's CPU lowering, so it lowers for CPU only."""
    import jax
    import jax.numpy as jnp
    from jax.extend.core import Primitive
    from jax.interpreters import mlir

    prim = Primitive("softmaxlib_backward_ffi")
    prim.multiple_results = True

    def abstract(saved, *rest, op, n_reduced, masked, mode, value):
        dt_type = jnp.float64 if saved.dtype == jnp.float64 else jnp.float32
        batch = saved.shape[: saved.ndim - n_reduced]
        return (jax.core.ShapedArray(saved.shape, saved.dtype), jax.core.ShapedArray(batch, dt_type))

    def lower(ctx, *args, op, n_reduced, masked, mode, value):
        num_batch = ctx.avals_in[0].ndim - n_reduced
        attrs = {"op": np.int32(native.OPS[op]), "n_reduced": np.int32(n_reduced), "masked": np.int32(masked),
                 "mode": np.int32(mode), "temperature": np.float64(value)}
        rule = primitives.sdy_rule(ctx, num_batch, n_reduced)
        return primitives.lower_ffi(ctx, args, _TARGET, num_batch, rule, attrs)

    prim.def_abstract_eval(abstract)
    mlir.register_lowering(prim, lower, platform="cpu")
    return prim
