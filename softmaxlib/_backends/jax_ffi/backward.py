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

Second order: the JVP of either primitive with respect to its saved operands is
that of its jnp formula. Masked entries (``where`` False) get 0 both ways. The
reduced axes are the ``n_reduced`` minor ones (the caller moved them there).
"""

import functools

import numpy as np

from softmaxlib import _native_loader as native
from softmaxlib._backends.jax_ffi import primitives

_TARGET = "softmaxlib_backward"


def _formula(op, n_reduced, transposed, saved, lse, where, t):
    """The jnp formula of either direction (the reference of the native kernel)."""
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


def _split(op, masked, args):
    """(saved, lse, where, t) from a primitive's operands."""
    saved, rest = args[0], list(args[1:])
    lse = rest.pop(0) if op == "logsumexp" else None
    where = rest.pop(0) if masked else None
    return saved, lse, where, rest[0]


def apply(op, n_reduced, transposed, saved, lse, where, t):
    """Bind the primitive of one direction: operands saved[, lse][, where], t."""
    operands = (saved,) + ((lse,) if op == "logsumexp" else ()) + ((where,) if where is not None else ()) + (t,)
    return _primitive().bind(*operands, op=op, n_reduced=n_reduced, transposed=transposed, masked=where is not None)


@functools.cache
def _primitive():
    import jax
    from jax.extend.core import Primitive
    from jax.interpreters import ad

    prim = Primitive("softmaxlib_derivative")

    def abstract(*args, op, n_reduced, transposed, masked):
        saved = args[0]
        if op == "logsumexp" and not transposed:
            return jax.core.ShapedArray(saved.shape[: saved.ndim - n_reduced], saved.dtype)
        return jax.core.ShapedArray(saved.shape, saved.dtype)

    def generic(*args, op, n_reduced, transposed, masked):
        saved, lse, where, t = _split(op, masked, args)
        return _formula(op, n_reduced, transposed, saved, lse, where, t)

    def lower(ctx, *args, op, n_reduced, transposed, masked):
        if not transposed:
            return jax.interpreters.mlir.lower_fun(generic, multiple_results=False)(
                ctx, *args, op=op, n_reduced=n_reduced, transposed=transposed, masked=masked)
        import jax.numpy as jnp

        def native_call(*a):
            saved, lse, where, g = _split(op, masked, a)
            batch = saved.shape[: saved.ndim - n_reduced]
            operands = (saved, g) + ((lse,) if op == "logsumexp" else ()) + ((where,) if masked else ())
            dt_type = jnp.float64 if saved.dtype == jnp.float64 else jnp.float32
            dx, _ = jax.ffi.ffi_call(
                _TARGET, (jax.ShapeDtypeStruct(saved.shape, saved.dtype), jax.ShapeDtypeStruct(batch, dt_type)))(
                *operands, op=np.int32(native.OPS[op]), n_reduced=np.int32(n_reduced), masked=np.int32(masked),
                mode=np.int32(0), temperature=np.float64(1.0))
            return dx

        return jax.interpreters.mlir.lower_fun(native_call, multiple_results=False)(ctx, *args)

    def transpose(ct, *args, op, n_reduced, transposed, masked):
        saved, lse, where, t = _split(op, masked, args)
        if any(ad.is_undefined_primal(a) for a in (saved, lse, where) if a is not None):
            msg = "softmaxlib: the derivative is linear only in its last operand"
            raise NotImplementedError(msg)
        if type(ct) is ad.Zero:
            out = ad.Zero(t.aval)
        else:
            out = apply(op, n_reduced, not transposed, saved, lse, where, ct)
        return [None] * (len(args) - 1) + [out]

    def jvp(primals, tangents, *, op, n_reduced, transposed, masked):
        # Linear in t (the primitive itself); the saved operands move with the
        # point: the jnp formula's JVP in them, t held (where never moves).
        saved, lse, where, t = _split(op, masked, primals)
        d_saved, d_lse, _, d_t = _split(op, masked, tangents)
        out = prim.bind(*primals, op=op, n_reduced=n_reduced, transposed=transposed, masked=masked)
        t_out = ad.Zero(jax.core.get_aval(out).to_tangent_aval()) if type(d_t) is ad.Zero else apply(
            op, n_reduced, transposed, saved, lse, where, d_t)
        moving = [type(d) is not ad.Zero for d in (d_saved, d_lse) if d is not None or op == "logsumexp"]
        if any(moving):
            def of_point(s, l):
                return _formula(op, n_reduced, transposed, s, l, where, t)

            point = (saved, lse if lse is not None else saved)
            dots = (ad.instantiate_zeros(d_saved), ad.instantiate_zeros(d_lse) if lse is not None else
                    jax.numpy.zeros_like(saved))
            _, extra = jax.jvp(lambda s, l: of_point(s, l if lse is not None else None), point, dots)
            t_out = extra if type(t_out) is ad.Zero else t_out + extra
        return out, t_out

    primitives.register(prim, abstract, lower, generic)
    ad.primitive_jvps[prim] = jvp
    ad.primitive_transposes[prim] = transpose
    return prim
