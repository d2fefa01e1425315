"""softmax, log_softmax and logsumexp of JAX arrays through the XLA FFI targets.

The custom call behind a primitive (``_primitive``; ``_primitive_t`` with a
temperature) and a ``jax.custom_jvp`` per static configuration (``_with_jvp``,
``_with_jvp_t``); see the package's docstring for the whole scheme.
"""

import functools
import math

import numpy as np

from softmaxlib import _native_loader as native
from softmaxlib import _reference
from softmaxlib._backends.jax_ffi import backward, primitives, sharding

_TARGET = "softmaxlib_compute"
_TARGET_MASKED = "softmaxlib_compute_masked"
_TARGET_T = "softmaxlib_compute_t"
_MODES = native.TEMPERATURE_MODES  # the extension's temperature modes, by name


def compute(op, x, axes, where, algorithm, temperature=None):
    """softmax, log_softmax or logsumexp over ``axes`` of the JAX array (or tracer) ``x``;
    see ``_reference.compute``."""
    if op not in native.OPS or not primitives.registered():
        return NotImplemented
    import jax
    import jax.numpy as jnp

    dtype = jnp.dtype(x.dtype)
    if dtype.name not in native.DTYPES:
        return NotImplemented
    row = math.prod(x.shape[a] for a in axes)
    if algorithm == "auto":  # the NumPy path's choice: the same kernels, the same crossovers
        itemsize = np.dtype(dtype).itemsize
        algorithm = native.auto_algorithm(op, np.dtype(dtype), row * itemsize, math.prod(x.shape) * itemsize)
    if algorithm not in native.ALGORITHMS:
        return NotImplemented
    if temperature is not None:
        return _compute_t(op, algorithm, x, axes, where, temperature)

    # The primitives lower to the custom call on CPU and to the generic path elsewhere
    # themselves: no platform switch here, whose other branch's intermediates
    # would become residuals of the derivative.
    return _native(op, native.ALGORITHMS[algorithm], x, axes, where)


def _native(op, alg, x, axes, where):
    """The custom call on ``x`` in any layout (see ``_reduced_last``)."""
    return primitives.reduced_last(op, x, axes, where, lambda x, where: call(op, alg, len(axes), x, where))


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
        attrs = {"op": np.int32(native.OPS[op]), "alg": np.int32(alg), "n_reduced": np.int32(n_reduced)}
        rule = primitives.sdy_rule(ctx, num_batch, n_reduced)
        return primitives.lower_ffi(ctx, args, target, num_batch, rule, attrs)

    def generic(x, *where, op, alg, n_reduced):
        # Other platforms: the generic fast path, or the reference for what it
        # leaves ("online", "two-pass").
        import array_api_compat

        from softmaxlib._backends import generic as generic_path

        axes = tuple(range(x.ndim - n_reduced, x.ndim))
        name = next(k for k, v in native.ALGORITHMS.items() if v == alg)
        mask = where[0] if where else None
        result = generic_path.compute(op, x, axes, mask, name)
        if result is NotImplemented:
            xp = array_api_compat.array_namespace(x)
            result = _reference.compute(xp, op, x, axes, mask, name)
        return result

    return primitives.register(prim, abstract, lower, generic)


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
            sharded = sharding.reduced_sharding(x, n_reduced)
            if sharded is not None:
                return sharding.merged_over_shards(op, n_reduced, x, *sharded)
            return _ffi(op, alg, n_reduced, x, None)

    @f.defjvp
    def f_jvp(primals, tangents):
        # The derivative primitive: jnp forward, the native backward kernel as its
        # transpose; it keeps y (logsumexp: x and y) and nothing else.
        x, where = primals
        t, _ = tangents
        y = f(x, where)
        w = where if masked else None
        if op == "logsumexp":
            ty = backward.apply(op, n_reduced, False, x, y, w, t)
        else:
            ty = backward.apply(op, n_reduced, False, y, None, w, t)
        return y, ty

    return f


def call(op, alg, n_reduced, x, where):
    import jax.numpy as jnp

    if where is None:
        # A placeholder operand keeps one signature; the unmasked target ignores it.
        return _with_jvp(op, alg, n_reduced, False)(x, jnp.zeros((), dtype=bool))
    return _with_jvp(op, alg, n_reduced, True)(x, where)


# --------------------------------------------------------------------------- temperature


def _compute_t(op, algorithm, x, axes, where, temperature):
    """op(x / T) through the ``softmaxlib_compute_t`` custom call (see ``compute``).

    As without a temperature, the primitives choose the custom call on CPU and the
    reference elsewhere themselves: no platform switch, whose other branch's
    intermediates would become residuals of the derivative.
    """
    mode, value, rows = _temperature_spec(temperature, x, axes)
    return _native_t(op, native.ALGORITHMS[algorithm], x, axes, where, mode, value, rows)


def _temperature_spec(temperature, x, axes):
    """(mode, value, per-row array or None) of the custom call for a checked temperature.

    A scalar is an attribute (mode "scalar": one compilation per value, like any static
    argument); "adaptive" its mode; an array of the batch shape (concrete or traced) an
    operand (mode "per_row"), float32 (float64 with float64 x or a float64 array),
    differentiable.
    """
    import jax.numpy as jnp

    mode, value, rows = native.temperature_spec(temperature)
    if rows is None:
        return mode, value, None
    rows = jnp.asarray(rows)
    wide = jnp.float64 in (jnp.dtype(x.dtype), rows.dtype)
    return mode, value, rows.astype(jnp.float64 if wide else jnp.float32)


def _temperature_arg(mode, value, rows):
    """The reference's temperature argument for a (mode, value, rows) spec."""
    return {_MODES["scalar"]: value, _MODES["per_row"]: rows, _MODES["adaptive"]: "adaptive"}[mode]


def _native_t(op, alg, x, axes, where, mode, value, rows):
    """As ``_native``, with a temperature (the batch axes keep their order: rows fit)."""
    import jax.numpy as jnp

    def call(x, where):
        masked = where is not None
        placeholder = jnp.zeros((), dtype=x.dtype)
        f = _with_jvp_t(op, alg, len(axes), masked, mode, value)
        return f(x, where if masked else jnp.zeros((), dtype=bool), placeholder if rows is None else rows)

    return primitives.reduced_last(op, x, axes, where, call)


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
        attrs = {"op": np.int32(native.OPS[op]), "alg": np.int32(alg), "n_reduced": np.int32(n_reduced),
                 "masked": np.int32(masked), "mode": np.int32(mode), "temperature": np.float64(value)}
        rule = primitives.sdy_rule(ctx, num_batch, n_reduced)
        return primitives.lower_ffi(ctx, args, _TARGET_T, num_batch, rule, attrs)

    def generic(x, *rest, op, alg, n_reduced, masked, mode, value):
        import array_api_compat

        axes = tuple(range(x.ndim - n_reduced, x.ndim))
        name = next(k for k, v in native.ALGORITHMS.items() if v == alg)
        where = rest[0] if masked else None
        rows = rest[-1] if mode == _MODES["per_row"] else None
        xp = array_api_compat.array_namespace(x)
        return _reference.compute(xp, op, x, axes, where, name, temperature=_temperature_arg(mode, value, rows))

    return primitives.register(prim, abstract, lower, generic)


@functools.cache
def _with_jvp_t(op, alg, n_reduced, masked, mode, value):
    """The temperature custom call with its derivative rule (one per static configuration).

    With z = x / T, the tangent of z is tx / T - z tT / T for one temperature per
    row (tT = 0 for a scalar), beta tx + x dbeta for the adaptive one, where dbeta
    is the true derivative of beta(H(softmax(x))) (the entropy's own derivative
    through our softmax and log_softmax, so the rule is differentiable again).
    Scalar and per-row: the derivative primitive (``backward``) applies op's
    Jacobian to (tx - z tT) / T, with the native kernel as its transpose (dx = dz /
    T formed in the kernel), and keeps what the plain path keeps plus the per-row
    temperatures; z is needed only when the temperatures themselves are
    differentiated, and only up to a per-row constant for softmax (log y) and
    log_softmax (y), which their Jacobians ignore. Adaptive: the primitive at T =
    1 on z's tangent (entries that are masked or not finite do not move z).
    """
    import jax
    import jax.numpy as jnp
    from jax.custom_derivatives import SymbolicZero

    red = tuple(range(-n_reduced, 0))

    @jax.custom_jvp
    def f(x, where, rows):
        operands = (x,) + ((where,) if masked else ()) + ((rows,) if mode == _MODES["per_row"] else ())
        return _primitive_t().bind(*operands, op=op, alg=alg, n_reduced=n_reduced, masked=masked, mode=mode,
                                   value=value)

    def beta_of(x, where):
        # beta = max(1, p(H)) where H > 0.5, else 1, H the entropy of softmax(x).
        w = where if masked else None
        p = call("softmax", alg, n_reduced, x, w)
        logp = call("log_softmax", alg, n_reduced, x, w)
        h = -jnp.sum(p * jnp.where(p > 0, logp, 0), axis=red, keepdims=True)
        poly = jnp.polyval(jnp.asarray(_reference.ADAPTIVE_POLYNOMIAL, dtype=h.dtype), h)
        return jnp.where(h > _reference.ADAPTIVE_MIN_ENTROPY, jnp.maximum(1, poly), 1)

    def z_up_to_a_row_constant(x, y, rows):
        """z = x / T where the Jacobian needs it exactly (logsumexp), else log y
        (softmax) or y (log_softmax); 0 where z is not finite (it does not move)."""
        if op == "logsumexp":
            return jnp.where(jnp.isfinite(x), x, 0) * (1 / rows).astype(x.dtype).reshape(rows.shape + (1,) * n_reduced)
        if op == "softmax":
            return jnp.where(y > 0, jnp.log(jnp.where(y > 0, y, 1)), 0)
        return jnp.where(jnp.isfinite(y), y, 0)

    def f_jvp(primals, tangents):
        x, where, rows = primals
        tx, _, trows = tangents
        y = f(x, where, rows)
        w = where if masked else None
        saved, lse = (x, y) if op == "logsumexp" else (y, None)
        if mode == _MODES["adaptive"]:
            tx = jnp.zeros_like(x) if isinstance(tx, SymbolicZero) else tx
            valid = jnp.isfinite(x) if not masked else jnp.isfinite(x) & where
            xs = jnp.where(valid, x, 0)
            beta, dbeta = jax.jvp(lambda a: beta_of(a, where), (xs,), (jnp.where(valid, tx, 0),))
            tz = jnp.where(valid, beta * tx + xs * dbeta, 0)
            if op == "logsumexp":
                saved = x * beta  # z
            return y, backward.apply(op, n_reduced, False, saved, lse, w, tz)
        t = None if isinstance(tx, SymbolicZero) else tx
        if mode == _MODES["per_row"] and not isinstance(trows, SymbolicZero):
            z_dt = z_up_to_a_row_constant(x, y, rows) * trows.astype(x.dtype).reshape(rows.shape + (1,) * n_reduced)
            t = -z_dt if t is None else t - z_dt
        if t is None:
            return y, jnp.zeros_like(y)
        per_row = rows if mode == _MODES["per_row"] else None
        return y, backward.apply(op, n_reduced, False, saved, lse, w, t, mode, value, per_row)

    f.defjvp(f_jvp, symbolic_zeros=True)
    return f
