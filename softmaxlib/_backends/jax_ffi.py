"""The JAX fast path: the native kernels as an XLA CPU custom call (typed FFI).

``compute`` runs ``softmaxlib._kernels``' XLA FFI handlers (softmaxlib/_native/
xla_ffi.cc, thin shells over the same driver as the NumPy path) through
``jax.ffi.ffi_call``:

* the reduced axes are moved last when they are not already (the common last-axis
  case needs no transpose); every other axis is a batch axis for the kernel;
* a ``jax.custom_jvp`` gives forward and reverse mode from the output y:
  softmax ``y (t - sum t y)``, log_softmax ``t - sum t e^y``, logsumexp
  ``sum t softmax(x)``; the rules are differentiable again (second order);
* ``vmap`` adds leading batch axes (``vmap_method="broadcast_all"``);
* ``lax.platform_dependent`` picks the custom call on CPU and the generic fast path
  (``softmaxlib._backends.generic``) elsewhere, also under a ``jit`` that does not
  know its device yet;
* the targets are registered as batch partitionable: with several CPU devices an
  input sharded over batch axes runs shard-locally; one whose type shows a
  reduced axis sharded (an explicit sharding) runs per shard under ``shard_map``
  and merges only the per-row accumulators across devices (``_merged_over_shards``);
  otherwise XLA gathers the row before the call (correct, more traffic).

With a temperature (op(x / T)) the ``softmaxlib_compute_t`` target runs instead: one
temperature is an attribute, one per row an operand of the batch shape, the adaptive
one a mode; its ``custom_jvp`` differentiates through x, the per-row temperatures and
the adaptive beta (``_with_jvp_t``). Inputs sharded along a reduced axis are gathered
by XLA before it (no per-shard accumulators for a temperature).

If the extension was built without the XLA FFI headers, or JAX is missing,
``compute`` returns ``NotImplemented`` and the generic path runs.
"""

import functools
import math

import numpy as np

from softmaxlib import _reference
from softmaxlib._backends import numpy_native

_OPS = {"softmax": 0, "log_softmax": 1, "logsumexp": 2}
_ALGORITHMS = {"three-pass": 0, "three-pass-reload": 1, "online": 2, "two-pass": 3}
_DTYPES = ("float16", "bfloat16", "float32", "float64")
_TARGET = "softmaxlib_compute"
_TARGET_MASKED = "softmaxlib_compute_masked"
_TARGET_T = "softmaxlib_compute_t"
_MODE_SCALAR, _MODE_ROWS, _MODE_ADAPTIVE = 1, 2, 3


@functools.cache
def _registered():
    """Register the FFI targets once; False if this build or install cannot."""
    kernels = numpy_native._kernels
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


def available():
    """Is the custom call built and registered?"""
    return _registered()


def compute(op, x, axes, where, algorithm, temperature=None):
    """``op`` over ``axes`` of the JAX array (or tracer) ``x``; see ``_reference.compute``."""
    if op in ("stablemax", "log_stablemax") and temperature is None:
        from softmaxlib._backends import jax_ffi_family

        return jax_ffi_family.stablemax(op, x, axes, where)
    if op not in _OPS or not _registered():
        return NotImplemented
    import jax
    import jax.numpy as jnp

    dtype = jnp.dtype(x.dtype)
    if dtype.name not in _DTYPES:
        return NotImplemented
    row = math.prod(x.shape[a] for a in axes)
    requested = algorithm
    if algorithm == "auto":  # numpy_native's choice: the same kernels, the same crossovers
        itemsize = np.dtype(dtype).itemsize
        algorithm = numpy_native.auto_algorithm(op, np.dtype(dtype), row * itemsize,
                                                math.prod(x.shape) * itemsize)
    if algorithm not in _ALGORITHMS:
        return NotImplemented
    if temperature is not None:
        return _compute_t(op, algorithm, x, axes, where, temperature)

    def ours(x, where):
        return _native(op, _ALGORITHMS[algorithm], x, axes, where)

    def elsewhere(x, where):  # other platforms: the generic path, or the reference for
        # what it leaves ("online", "two-pass")
        import array_api_compat

        from softmaxlib._backends import generic

        result = generic.compute(op, x, axes, where, requested)
        if result is NotImplemented:
            xp = array_api_compat.array_namespace(x)
            result = _reference.compute(xp, op, x, axes, where, algorithm)
        return result

    return jax.lax.platform_dependent(x, where, cpu=ours, default=elsewhere)


def softmax_topk(x, k, axis, where):
    """Fused softmax + top-k of a JAX array along ``axis``; see ``jax_ffi_family``."""
    from softmaxlib._backends import jax_ffi_family

    return jax_ffi_family.softmax_topk(x, k, axis, where)


def _native(op, alg, x, axes, where):
    """The custom call on ``x`` in any layout (see ``_reduced_last``)."""
    return _reduced_last(op, x, axes, where, lambda x, where: _call(op, alg, len(axes), x, where))


def _reduced_last(op, x, axes, where, call):
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


def _ffi(op, alg, n_reduced, x, where):
    """The custom call itself (no derivative rule)."""
    operands = (x,) if where is None else (x, where)
    return _primitive().bind(*operands, op=op, alg=alg, n_reduced=n_reduced)


@functools.cache
def _primitive():
    """A primitive around the custom call, so that its lowering can say how it shards.

    ``jax.ffi.ffi_call`` would do for one device, but XLA replicates a custom call
    (all-gathers its operands) unless told that its leading axes are batch axes:
    the lowering adds the ``num_batch_dims`` frontend attribute that the
    batch-partitionable registration reads (GSPMD) and the matching Shardy rule,
    in which the reduced axes need replication: an input sharded along a reduced
    axis is gathered along it, so the answer stays right.
    """
    import jax
    from jax.extend.core import Primitive

    prim = Primitive("softmaxlib_ffi")

    def abstract(x, *where, op, alg, n_reduced):
        shape = x.shape[: x.ndim - n_reduced] if op == "logsumexp" else x.shape
        return jax.core.ShapedArray(shape, x.dtype)

    def lower(ctx, *args, op, alg, n_reduced):
        num_batch = ctx.avals_in[0].ndim - n_reduced
        target = _TARGET if len(args) == 1 else _TARGET_MASKED
        attrs = {"op": np.int32(_OPS[op]), "alg": np.int32(alg), "n_reduced": np.int32(n_reduced)}
        rule = _sdy_rule(ctx, num_batch, n_reduced)
        return _lower_ffi(ctx, args, target, num_batch, rule, attrs)

    def generic(x, *where, op, alg, n_reduced):
        # Other platforms: the reference. (platform_dependent selects the custom
        # call for CPU only, but a lowering for several platforms at once lowers
        # every branch for each of them.)
        import array_api_compat

        axes = tuple(range(x.ndim - n_reduced, x.ndim))
        name = next(k for k, v in _ALGORITHMS.items() if v == alg)
        xp = array_api_compat.array_namespace(x)
        return _reference.compute(xp, op, x, axes, where[0] if where else None, name)

    return _register(prim, abstract, lower, generic)


def _register(prim, abstract, lower, generic):
    """Give ``prim`` the rules every softmaxlib primitive has, and return it.

    Eager calls run a jit of the bind (so they take the lowering too), compiled once
    per static configuration; vmap moves its axis to the front of every operand,
    where the kernels take leading batch axes; ``lower`` (the custom call) lowers for
    CPU and ``generic`` (the reference) for every other platform.
    """
    import jax
    import jax.numpy as jnp
    from jax.interpreters import batching, mlir

    @functools.cache
    def compiled(**params):
        return jax.jit(lambda *a: prim.bind(*a, **params))

    def impl(*args, **params):
        return compiled(**params)(*args)

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


def _lower_ffi(ctx, args, target, num_batch, rule, attrs):
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


def _sdy_rule(ctx, num_batch, n_reduced):
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
    # x and where carry every factor; per-row temperatures (batch rank) only the batch ones
    lhs = ", ".join(" ".join(batch) if a.ndim == num_batch else full for a in ctx.avals_in)
    rhs = " ".join(batch) if ctx.avals_out[0].ndim == num_batch else full
    rule = str_to_sdy_sharding_rule(f"{lhs} -> {rhs}", need_replication_factors=tuple(red))
    types = [mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_in]
    out_types = [mlir.aval_to_ir_type(ctx.module_context, a) for a in ctx.avals_out]
    return sdy_sharding_rule_to_mlir(rule, types, out_types)


@functools.cache
def _with_jvp(op, alg, n_reduced, masked):
    """The custom call with its derivative rule, one per static configuration."""
    import jax
    import jax.numpy as jnp

    red = tuple(range(-n_reduced, 0))

    if masked:
        @jax.custom_jvp
        def f(x, where):
            return _ffi(op, alg, n_reduced, x, where)
    else:
        @jax.custom_jvp
        def f(x, where):
            sharded = _reduced_sharding(x, n_reduced)
            if sharded is not None:
                return _merged_over_shards(op, n_reduced, x, *sharded)
            return _ffi(op, alg, n_reduced, x, None)

    @f.defjvp
    def f_jvp(primals, tangents):
        x, where = primals
        t, _ = tangents
        y = f(x, where)
        if op == "softmax":
            ty = y * (t - jnp.sum(t * y, axis=red, keepdims=True))
        elif op == "log_softmax":
            p = jnp.exp(y)  # masked entries: exp(-inf) = 0
            ty = t - jnp.sum(t * p, axis=red, keepdims=True)
            if masked:
                ty = jnp.where(where, ty, jnp.zeros_like(ty))
        else:
            # d lse = sum t softmax(x): our softmax (itself differentiable), more
            # accurate than exp(x - lse) with a rounded lse.
            p = _with_jvp("softmax", alg, n_reduced, masked)(x, where)
            ty = jnp.sum(t * p, axis=red)
        return y, ty

    return f


def _call(op, alg, n_reduced, x, where):
    import jax.numpy as jnp

    if where is None:
        # A placeholder operand keeps one signature; the unmasked target ignores it.
        return _with_jvp(op, alg, n_reduced, False)(x, jnp.zeros((), dtype=bool))
    return _with_jvp(op, alg, n_reduced, True)(x, where)


# --------------------------------------------------------------------------- temperature


def _compute_t(op, algorithm, x, axes, where, temperature):
    """op(x / T) through the ``softmaxlib_compute_t`` custom call (see ``compute``)."""
    import jax

    spec = _temperature_spec(temperature, x, axes)
    if spec is NotImplemented:
        return NotImplemented
    mode, value, rows = spec

    def ours(x, where, rows):
        return _native_t(op, _ALGORITHMS[algorithm], x, axes, where, mode, value, rows)

    def reference(x, where, rows):
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        return _reference.compute(xp, op, x, axes, where, algorithm, temperature=_temperature_arg(mode, value, rows))

    return jax.lax.platform_dependent(x, where, rows, cpu=ours, default=reference)


def _temperature_spec(temperature, x, axes):
    """(mode, value, per-row array or None) of the custom call, or NotImplemented.

    A real scalar (> 0, may be inf) is an attribute (mode 1: one compilation per
    value, like any static argument); "adaptive" mode 3; an array of the batch shape
    (x.shape without ``axes``, concrete or traced) an operand (mode 2), float32 (float64
    with float64 x or a float64 array), differentiable.
    """
    import jax.numpy as jnp

    if isinstance(temperature, str):
        return (_MODE_ADAPTIVE, 1.0, None) if temperature == "adaptive" else NotImplemented
    if isinstance(temperature, (int, float, np.integer, np.floating)) and not isinstance(temperature, (bool, np.bool_)):
        t = float(temperature)
        return (_MODE_SCALAR, t, None) if t > 0 else NotImplemented
    try:
        rows = jnp.asarray(temperature)
    except TypeError:
        return NotImplemented
    batch_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    if rows.shape != batch_shape or rows.dtype.kind not in "fiu":
        return NotImplemented
    wide = jnp.float64 in (jnp.dtype(x.dtype), rows.dtype)
    return (_MODE_ROWS, 1.0, rows.astype(jnp.float64 if wide else jnp.float32))


def _temperature_arg(mode, value, rows):
    """The reference's temperature argument for a (mode, value, rows) spec."""
    return {_MODE_SCALAR: value, _MODE_ROWS: rows, _MODE_ADAPTIVE: "adaptive"}[mode]


def _native_t(op, alg, x, axes, where, mode, value, rows):
    """As ``_native``, with a temperature (the batch axes keep their order: rows fit)."""
    import jax.numpy as jnp

    def call(x, where):
        masked = where is not None
        placeholder = jnp.zeros((), dtype=x.dtype)
        f = _with_jvp_t(op, alg, len(axes), masked, mode, value)
        return f(x, where if masked else jnp.zeros((), dtype=bool), placeholder if rows is None else rows)

    return _reduced_last(op, x, axes, where, call)


@functools.cache
def _primitive_t():
    """The temperature custom call as a primitive (see ``_primitive``): operands
    x[, where][, per-row temperatures], params op, alg, n_reduced, masked, mode, value."""
    import jax
    from jax.extend.core import Primitive

    prim = Primitive("softmaxlib_ffi_t")

    def abstract(x, *rest, op, alg, n_reduced, masked, mode, value):
        shape = x.shape[: x.ndim - n_reduced] if op == "logsumexp" else x.shape
        return jax.core.ShapedArray(shape, x.dtype)

    def lower(ctx, *args, op, alg, n_reduced, masked, mode, value):
        num_batch = ctx.avals_in[0].ndim - n_reduced
        attrs = {"op": np.int32(_OPS[op]), "alg": np.int32(alg), "n_reduced": np.int32(n_reduced),
                 "masked": np.int32(masked), "mode": np.int32(mode), "temperature": np.float64(value)}
        rule = _sdy_rule(ctx, num_batch, n_reduced)
        return _lower_ffi(ctx, args, _TARGET_T, num_batch, rule, attrs)

    def generic(x, *rest, op, alg, n_reduced, masked, mode, value):
        import array_api_compat

        axes = tuple(range(x.ndim - n_reduced, x.ndim))
        name = next(k for k, v in _ALGORITHMS.items() if v == alg)
        where = rest[0] if masked else None
        rows = rest[-1] if mode == _MODE_ROWS else None
        xp = array_api_compat.array_namespace(x)
        return _reference.compute(xp, op, x, axes, where, name, temperature=_temperature_arg(mode, value, rows))

    return _register(prim, abstract, lower, generic)


@functools.cache
def _with_jvp_t(op, alg, n_reduced, masked, mode, value):
    """The temperature custom call with its derivative rule (one per static configuration).

    With z = x / T the rule is the T = 1 rule of ``_with_jvp`` applied to the
    tangent of z: tx / T - x tT / T^2 for one temperature per row (tT = 0 for a
    scalar), beta tx + x dbeta for the adaptive one, where dbeta is the true
    derivative of beta(H(softmax(x))) (the entropy's own derivative through our
    softmax and log_softmax, so the rule is differentiable again). Entries that
    are masked or not finite do not move z (tangent 0 there).
    """
    import jax
    import jax.numpy as jnp

    red = tuple(range(-n_reduced, 0))

    @jax.custom_jvp
    def f(x, where, rows):
        operands = (x,) + ((where,) if masked else ()) + ((rows,) if mode == _MODE_ROWS else ())
        return _primitive_t().bind(*operands, op=op, alg=alg, n_reduced=n_reduced, masked=masked, mode=mode,
                                   value=value)

    def beta_of(x, where):
        # beta = max(1, p(H)) where H > 0.5, else 1, H the entropy of softmax(x).
        w = where if masked else None
        p = _call("softmax", alg, n_reduced, x, w)
        logp = _call("log_softmax", alg, n_reduced, x, w)
        h = -jnp.sum(p * jnp.where(p > 0, logp, 0), axis=red, keepdims=True)
        poly = jnp.polyval(jnp.asarray(_reference_poly(), dtype=h.dtype), h)
        return jnp.where(h > 0.5, jnp.maximum(1, poly), 1)

    @f.defjvp
    def f_jvp(primals, tangents):
        x, where, rows = primals
        tx, _, trows = tangents
        y = f(x, where, rows)
        valid = jnp.isfinite(x) if not masked else jnp.isfinite(x) & where
        xs = jnp.where(valid, x, 0)
        if mode == _MODE_ADAPTIVE:
            beta, dbeta = jax.jvp(lambda a: beta_of(a, where), (xs,), (jnp.where(valid, tx, 0),))
            tz = beta * tx + xs * dbeta
        elif mode == _MODE_ROWS:
            shape = rows.shape + (1,) * n_reduced
            inv = (1 / rows).astype(x.dtype).reshape(shape)
            tz = tx * inv - xs * (trows.astype(x.dtype).reshape(shape) * inv * inv)
        else:
            tz = tx * (1 / value)
        tz = jnp.where(valid, tz, jnp.zeros_like(tz))
        if op == "softmax":
            ty = y * (tz - jnp.sum(tz * y, axis=red, keepdims=True))
        elif op == "log_softmax":
            ty = tz - jnp.sum(tz * jnp.exp(y), axis=red, keepdims=True)
            if masked:
                ty = jnp.where(where, ty, jnp.zeros_like(ty))
        else:
            p = _with_jvp_t("softmax", alg, n_reduced, masked, mode, value)(x, where, rows)
            ty = jnp.sum(tz * p, axis=red)
        return y, ty

    return f


def _reference_poly():
    """The adaptive temperature's polynomial (Velickovic et al. 2024), highest power first."""
    return getattr(_reference, "ADAPTIVE_POLYNOMIAL", (-0.037, 0.481, -2.3, 4.917, -1.791))


# --------------------------------------------------------------------------- sharded rows


def _reduced_sharding(x, n_reduced):
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


def _merged_over_shards(op, n_reduced, x, mesh, spec, names):
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
        acc_shape = jax.ShapeDtypeStruct(xl.shape[:nb] + (5,), acc_dtype)
        acc = jax.ffi.ffi_call("softmaxlib_accumulate", acc_shape, vmap_method="broadcast_all")(
            xl, n_reduced=np.int32(n_reduced))
        m, d, n_posinf, has_nan, n_valid = (acc[..., i] for i in range(5))
        big_m = lax.pmax(m, names)
        shift = jnp.where(jnp.isfinite(big_m), big_m, 0)
        d = lax.psum(jnp.where(d > 0, d * jnp.exp(m - shift), 0), names)
        n_posinf, has_nan, n_valid = lax.psum(n_posinf, names), lax.pmax(has_nan, names), lax.psum(n_valid, names)
        if op == "logsumexp":
            lse = jnp.where(d > 0, big_m + jnp.log(jnp.where(d > 0, d, 1)), -jnp.inf)
            lse = jnp.where(n_posinf > 0, jnp.inf, lse)
            lse = jnp.where(has_nan > 0, jnp.nan, lse)
            return lse.astype(xl.dtype)
        merged = jnp.stack([big_m, d, n_posinf, has_nan, n_valid], axis=-1)
        out = jax.ShapeDtypeStruct(xl.shape, xl.dtype)
        return jax.ffi.ffi_call("softmaxlib_finish", out, vmap_method="broadcast_all")(
            xl, merged, op=np.int32(_OPS[op]), n_reduced=np.int32(n_reduced))

    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:  # pragma: no cover - older JAX
        from jax.experimental.shard_map import shard_map
    return shard_map(local, mesh=mesh, in_specs=in_spec, out_specs=out_spec)(x)
