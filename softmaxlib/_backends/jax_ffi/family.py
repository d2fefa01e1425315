"""The JAX fast path of the softmax family: fused softmax + top-k and StableMax.

The same scheme as :mod:`softmaxlib._backends.jax_ffi.softmax`: the native
kernels' XLA FFI handlers (softmaxlib/_native/xla_ffi_family.cc)
behind one primitive with a batching rule (``vmap``, nested too), a
batch-partitionable lowering, ``lax.platform_dependent`` (the custom call on CPU,
the generic reference elsewhere) and a ``jax.custom_jvp``:

* StableMax, s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0), y = s / S: with
  s'(x) = 1 resp. 1 / (1 - x)^2, ``dy = s' t / S - y sum(s' t) / S``; since
  s' / s = 1 / (1 + |x|) =: g, that is ``dy = y (g t - sum(y g t))`` and
  ``d log y = g t - sum(y g t)`` (no overflow: g <= 1).
* Top-k: the values are softmax(x) at the indices, so
  ``dv = v (t[idx] - sum_j y_j t_j)`` with y the full softmax (our custom call);
  the indices are integers (a float0 tangent: not differentiable).
"""

import functools

import numpy as np

from softmaxlib import _native_loader as native
from softmaxlib import _reference
from softmaxlib._backends.jax_ffi import primitives, softmax

_TARGETS = {
    ("topk", False): "softmaxlib_topk",
    ("topk", True): "softmaxlib_topk_masked",
    ("stablemax", False): "softmaxlib_stablemax",
    ("stablemax", True): "softmaxlib_stablemax_masked",
}


def _supported(x):
    import jax.numpy as jnp

    return primitives.registered() and jnp.dtype(x.dtype).name in native.DTYPES


def _generic_stablemax(op, x, axes, where):
    """The generic reference (``softmaxlib._reference.stablemax``), for other platforms."""
    import array_api_compat

    return _reference.stablemax.compute(array_api_compat.array_namespace(x), op, x, axes, where)


def _generic_topk(x, k, axis, where):
    """The generic reference (``softmaxlib._reference.topk``), for other platforms."""
    import array_api_compat

    return _reference.topk.softmax_topk(array_api_compat.array_namespace(x), x, k, axis, where)


def stablemax(op, x, axes, where):
    """``op`` ("stablemax" / "log_stablemax") over ``axes`` of a JAX array or tracer."""
    if op not in native.STABLEMAX_OPS or not _supported(x):
        return NotImplemented
    import jax

    def ours(x, where):
        def call(x, where):
            return _stablemax_call(op, len(axes), x, where)

        return primitives.reduced_last(op, x, axes, where, call)

    def reference(x, where):
        return _generic_stablemax(op, x, axes, where)

    return jax.lax.platform_dependent(x, where, cpu=ours, default=reference)


def _stablemax_call(op, n_reduced, x, where):
    import jax.numpy as jnp

    if where is None:
        return _stablemax_jvp(op, n_reduced, False)(x, jnp.zeros((), dtype=bool))
    return _stablemax_jvp(op, n_reduced, True)(x, where)


@functools.cache
def _stablemax_jvp(op, n_reduced, masked):
    import jax
    import jax.numpy as jnp

    red = tuple(range(-n_reduced, 0))

    @jax.custom_jvp
    def f(x, where):
        operands = (x, where) if masked else (x,)
        (y,) = primitive().bind(*operands, kind=op, n_reduced=n_reduced, k=0)
        return y

    @f.defjvp
    def f_jvp(primals, tangents):
        x, where = primals
        t, _ = tangents
        y = f(x, where)
        g = 1 / (1 + jnp.abs(x))  # s'/s; 0 at +-inf
        p = y if op == "stablemax" else jnp.exp(y)  # masked entries: 0
        gt = g * t
        mean = jnp.sum(p * gt, axis=red, keepdims=True)
        ty = p * (gt - mean) if op == "stablemax" else gt - mean
        if masked:
            ty = jnp.where(where, ty, jnp.zeros_like(ty))
        return y, ty

    return f


def softmax_topk(x, k, axis, where):
    """(values, indices) of the top ``k`` of softmax(x) along ``axis`` (see numpy_native)."""
    if not _supported(x) or x.ndim == 0:
        return NotImplemented
    import jax
    import jax.numpy as jnp

    def ours(x, where):
        last = axis == x.ndim - 1
        if not last:
            x = jnp.moveaxis(x, axis, -1)
            where = None if where is None else jnp.moveaxis(where, axis, -1)
        if where is None:
            v, i = _topk_jvp(k, False)(x, jnp.zeros((), dtype=bool))
        else:
            v, i = _topk_jvp(k, True)(x, where)
        if not last:
            v, i = jnp.moveaxis(v, -1, axis), jnp.moveaxis(i, -1, axis)
        return v, i

    def reference(x, where):
        # (the branches must agree on the index dtype: JAX's default int)
        v, i = _generic_topk(x, k, axis, where)
        return v, i.astype(jax.dtypes.canonicalize_dtype(np.int64))

    return jax.lax.platform_dependent(x, where, cpu=ours, default=reference)


@functools.cache
def _topk_jvp(k, masked):
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def f(x, where):
        operands = (x, where) if masked else (x,)
        v, i = primitive().bind(*operands, kind="topk", n_reduced=1, k=k)
        return v, i

    @f.defjvp
    def f_jvp(primals, tangents):
        x, where = primals
        t, _ = tangents
        v, i = f(x, where)
        # The full softmax (three-pass-reload), itself differentiable.
        y = softmax.call("softmax", native.ALGORITHMS["three-pass-reload"], 1, x, where if masked else None)
        mean = jnp.sum(y * t, axis=-1, keepdims=True)
        tv = v * (jnp.take_along_axis(t, i, axis=-1) - mean)
        return (v, i), (tv, np.zeros(i.shape, dtype=jax.dtypes.float0))

    return f


@functools.cache
def primitive():
    """One primitive for the family's custom calls (see softmax._primitive).

    ``kind`` is "stablemax", "log_stablemax" or "topk"; results are always a
    tuple: (y,) or (values, indices). The reduced axes are the ``n_reduced``
    minor ones (top-k: the last one).
    """
    import jax
    from jax.extend.core import Primitive

    prim = Primitive("softmaxlib_family_ffi")
    prim.multiple_results = True

    def abstract(x, *where, kind, n_reduced, k):
        if kind == "topk":
            shape = x.shape[:-1] + (k,)
            index = jax.dtypes.canonicalize_dtype(np.int64)
            return (jax.core.ShapedArray(shape, x.dtype), jax.core.ShapedArray(shape, index))
        return (jax.core.ShapedArray(x.shape, x.dtype),)

    def lower(ctx, *args, kind, n_reduced, k):
        num_batch = ctx.avals_in[0].ndim - n_reduced
        masked = len(args) == 2
        if kind == "topk":
            rule = _topk_sdy_rule(ctx, num_batch)
            target = _TARGETS["topk", masked]
            attrs = {"k": np.int64(k)}
        else:
            rule = primitives.sdy_rule(ctx, num_batch, n_reduced)
            target = _TARGETS["stablemax", masked]
            attrs = {"op": np.int32(native.STABLEMAX_OPS[kind]), "n_reduced": np.int32(n_reduced)}
        return primitives.lower_ffi(ctx, args, target, num_batch, rule, attrs)

    def generic(x, *where, kind, n_reduced, k):
        # Other platforms: the reference (see softmax._primitive).
        where = where[0] if where else None
        if kind == "topk":
            v, i = _generic_topk(x, k, x.ndim - 1, where)
            return [v, i.astype(jax.dtypes.canonicalize_dtype(np.int64))]
        return [_generic_stablemax(kind, x, tuple(range(x.ndim - n_reduced, x.ndim)), where)]

    return primitives.register(prim, abstract, lower, generic)


def _topk_sdy_rule(ctx, num_batch):
    """Shardy: batch axes pass through; the row needs replication, k is the results' own."""
    import jax

    if not getattr(jax.config, "jax_use_shardy_partitioner", False) or num_batch == 0:
        return None
    try:  # private helpers, as primitives.sdy_rule
        from jax._src.custom_partitioning_sharding_rule import (
            sdy_sharding_rule_to_mlir,
            str_to_sdy_sharding_rule,
        )
        from jax.interpreters import mlir

        batch = " ".join(f"b{i}" for i in range(num_batch))
        lhs = ", ".join(f"{batch} r0" for _ in ctx.avals_in)
        rule = str_to_sdy_sharding_rule(f"{lhs} -> {batch} k0, {batch} k0", need_replication_factors=("r0",))
        types = [mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_in]
        out_types = [mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_out]
        return sdy_sharding_rule_to_mlir(rule, types, out_types)
    except Exception:  # noqa: BLE001 - a JAX without these helpers or this rule form: replicate
        return None
