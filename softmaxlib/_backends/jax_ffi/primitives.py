"""What every softmaxlib JAX primitive shares: the registration of the XLA FFI
targets, the rules of a primitive (eager calls, vmap, lowering for CPU and the
reference elsewhere), the batch-partitionable lowering with its Shardy rule, and
moving the reduced axes last."""

import functools

import numpy as np

from softmaxlib import _native_loader as native


@functools.cache
def registered():
    """Register the FFI targets once; False if this build or install cannot."""
    kernels = native.kernels
    if kernels is None or not hasattr(kernels, "xla_ffi_handlers"):
        return False
    handlers = kernels.xla_ffi_handlers()
    if not handlers:
        return False
    try:
        import jax
        import jax.ffi
    except ImportError:  # pragma: no cover - the backend is only looked up for JAX arrays
        return False
    for name, capsule in handlers.items():
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")
        partitionable = getattr(jax.ffi, "register_ffi_target_as_batch_partitionable", None)
        if partitionable is not None:
            partitionable(name)
    return True


def reduced_last(op, x, axes, where, call):
    """``call(x, where)`` with the reduced axes moved last, and the result moved back.

    The kernels take the reduced axes last and contiguous; the batch axes keep their
    order, so a per-row temperature of the batch shape still lines up.  logsumexp's
    result has only the batch axes: nothing to move back.
    """
    import jax.numpy as jnp

    nd = x.ndim
    batch = tuple(a for a in range(nd) if a not in axes)
    perm = batch + tuple(axes)
    moved = perm != tuple(range(nd))
    if moved:
        x = jnp.transpose(x, perm)
        if where is not None:
            where = jnp.transpose(where, perm)
    y = call(x, where)
    if moved and op != "logsumexp":
        y = jnp.transpose(y, np.argsort(perm))
    return y


def register(prim, abstract, lower, generic):
    """Give ``prim`` the rules every softmaxlib primitive has, and return it.

    Eager calls compile the primitive alone (its lowering, cached per static
    configuration by JAX), also under ``jax.disable_jit()``; vmap moves its axis to the front of every operand,
    where the kernels take leading batch axes; ``lower`` (the custom call) lowers for
    CPU and ``generic`` (the reference) for every other platform.
    """
    import jax
    import jax.numpy as jnp
    from jax.interpreters import batching, mlir

    from jax._src import dispatch

    # Eager calls compile the primitive alone, the way JAX's own primitives do: a
    # jax.jit of the bind would, under jax.disable_jit(), call this impl again.
    impl = functools.partial(dispatch.apply_primitive, prim)

    def batch(args, dims, **params):
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        moved = [jnp.broadcast_to(a, (size,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
                 for a, d in zip(args, dims)]
        out = prim.bind(*moved, **params)
        return out, ((0,) * len(out) if prim.multiple_results else 0)

    prim.def_impl(impl)
    prim.def_abstract_eval(abstract)
    batching.primitive_batchers[prim] = batch
    mlir.register_lowering(prim, mlir.lower_fun(generic, multiple_results=prim.multiple_results))
    mlir.register_lowering(prim, lower, platform="cpu")
    return prim


def lower_ffi(ctx, args, target, num_batch, rule, attrs):
    """The custom call's lowering, marked batch partitionable over ``num_batch`` axes.

    The ``num_batch_dims`` frontend attribute is what the batch-partitionable
    registration reads (GSPMD); ``rule``, the Shardy rule, is None where it has none.
    """
    import jax
    from jax.interpreters import mlir

    extra = {"mhlo.frontend_attributes": mlir.ir_attribute({"num_batch_dims": str(num_batch)})}
    if rule is not None:
        extra["sdy.sharding_rule"] = rule
    return jax.ffi.ffi_lowering(target, extra_attributes=extra)(ctx, *args, **attrs)


def sdy_rule(ctx, num_batch, n_reduced):
    """The Shardy rule: batch axes pass through, reduced axes need replication."""
    import jax

    if not getattr(jax.config, "jax_use_shardy_partitioner", False) or num_batch == 0:
        return None  # (no batch axis: XLA's default, replication, is what we need)
    try:  # private helpers (the same the jax.lax.linalg custom calls use)
        from jax._src.custom_partitioning_sharding_rule import (
            sdy_sharding_rule_to_mlir,
            str_to_sdy_sharding_rule,
        )
        from jax.interpreters import mlir
    except ImportError:  # pragma: no cover - a JAX without them: XLA's default (replicate)
        return None
    batch = [f"b{i}" for i in range(num_batch)]
    red = [f"r{i}" for i in range(n_reduced)]
    full = " ".join(batch + red)
    # x and where carry every factor; per-row temperatures, logsumexp's lse and g, and
    # the backward's dL/dT (batch rank) only the batch ones
    lhs = ", ".join(" ".join(batch) if a.ndim == num_batch else full for a in ctx.avals_in)
    rhs = ", ".join(" ".join(batch) if a.ndim == num_batch else full for a in ctx.avals_out)
    rule = str_to_sdy_sharding_rule(f"{lhs} -> {rhs}", need_replication_factors=tuple(red))
    types = [mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_in]
    out_types = [mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_out]
    return sdy_sharding_rule_to_mlir(rule, types, out_types)
