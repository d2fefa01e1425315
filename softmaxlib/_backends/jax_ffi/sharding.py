"""Rows sharded along a reduced axis: per-shard accumulators merged across devices.

When a JAX array's type says that one of the reduced axes is sharded (an explicit
sharding), each shard runs pass 1 (the ``softmaxlib_accumulate`` target), the
accumulators are merged over the mesh axes with the (m, d) monoid, and each shard
runs pass 2 (``softmaxlib_finish``): only the accumulators cross devices.
"""

import numpy as np

from softmaxlib import _native_loader as native


def reduced_sharding(x, n_reduced):
    """(mesh, spec, mesh axes) when ``x``'s type says a reduced axis is sharded, else None.

    Only explicit shardings are visible while tracing (``jax.typeof(x).sharding``);
    for the others XLA gathers the row before the custom call (see ``_primitive``).
    """
    import jax

    try:
        sharding = jax.typeof(x).sharding
    except Exception:  # noqa: BLE001 - an old JAX or an untyped value: no explicit sharding
        return None
    mesh, spec = getattr(sharding, "mesh", None), getattr(sharding, "spec", None)
    if mesh is None or spec is None or getattr(mesh, "empty", True):
        return None
    spec = tuple(spec) + (None,) * (x.ndim - len(spec))
    names = []
    for entry in spec[x.ndim - n_reduced:]:
        if entry is not None:
            names.extend(entry if isinstance(entry, tuple) else (entry,))
    return (mesh, spec, tuple(names)) if names else None


def merged_over_shards(op, n_reduced, x, mesh, spec, names):
    """Rows sharded along a reduced axis: each shard's accumulator, merged, no gather.

    Pass 1 (the ``softmaxlib_accumulate`` custom call) gives every shard's
    [m, d, n_posinf, has_nan, n_valid] per row; they are merged across the mesh
    axes that shard the row with the (m, d) monoid (pmax, then psum of
    d e^(m - M)) and psums of the counts; pass 2 (``softmaxlib_finish``) writes
    each shard's part of the result. Only the accumulators cross devices.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.sharding import PartitionSpec

    nb = x.ndim - n_reduced
    acc_dtype = jnp.float64 if jnp.dtype(x.dtype) == jnp.float64 else jnp.float32
    in_spec = PartitionSpec(*spec)
    out_spec = PartitionSpec(*spec[:nb]) if op == "logsumexp" else in_spec

    def local(xl):
        acc_shape = jax.ShapeDtypeStruct(xl.shape[:nb] + (len(native.ACCUMULATOR_FIELDS),), acc_dtype)
        acc = jax.ffi.ffi_call("softmaxlib_accumulate", acc_shape, vmap_method="broadcast_all")(
            xl, n_reduced=np.int32(n_reduced))
        m, d, n_posinf, has_nan, n_valid = (acc[..., i] for i in range(len(native.ACCUMULATOR_FIELDS)))
        big_m = lax.pmax(m, names)
        shift = jnp.where(jnp.isfinite(big_m), big_m, 0)
        d = lax.psum(jnp.where(d > 0, d * jnp.exp(m - shift), 0), names)
        n_posinf, has_nan, n_valid = lax.psum(n_posinf, names), lax.pmax(has_nan, names), lax.psum(n_valid, names)
        if op == "logsumexp":
            return native.logsumexp_of_accumulator(jnp, big_m, d, n_posinf, has_nan).astype(xl.dtype)
        merged = jnp.stack([big_m, d, n_posinf, has_nan, n_valid], axis=-1)
        out = jax.ShapeDtypeStruct(xl.shape, xl.dtype)
        return jax.ffi.ffi_call("softmaxlib_finish", out, vmap_method="broadcast_all")(
            xl, merged, op=np.int32(native.OPS[op]), n_reduced=np.int32(n_reduced))

    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:  # pragma: no cover - older JAX
        from jax.experimental.shard_map import shard_map
    return shard_map(local, mesh=mesh, in_specs=in_spec, out_specs=out_spec)(x)
