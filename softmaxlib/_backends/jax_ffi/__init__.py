"""The JAX fast path: the native kernels as an XLA CPU custom call (typed FFI).

``compute`` runs ``softmaxlib._kernels``' XLA FFI handlers (softmaxlib/_native/
xla_ffi.cc, thin shells over the same driver as the NumPy path) through
``jax.ffi.ffi_call``:

* the reduced axes are moved last when they are not already (the common last-axis
  case needs no transpose); every other axis is a batch axis for the kernel;
* a ``jax.custom_jvp`` gives forward and reverse mode from the output y through
  one linear primitive (``backward``): jnp forward (softmax ``y (t - sum t y)``,
  log_softmax ``t - sum t e^y``, logsumexp ``sum t e^(x - lse)``) whose transpose
  is the native backward kernel (``softmaxlib_backward``); reverse mode keeps only
  y (logsumexp: x and y); the rules are differentiable again (second order);
* ``vmap`` adds leading batch axes (``vmap_method="broadcast_all"``);
* each primitive lowers to its custom call on CPU and to the generic fast path
  (``softmaxlib._backends.generic``, the reference for what it leaves) elsewhere, also under a ``jit`` that does not know its device yet (there is no
  ``lax.platform_dependent`` switch, whose other branch's intermediates would be
  saved for the derivative);
* the targets are registered as batch partitionable: with several CPU devices an
  input sharded over batch axes runs shard-locally; one whose type shows a
  reduced axis sharded (an explicit sharding) runs per shard under ``shard_map``
  and merges only the per-row accumulators across devices (``sharding``);
  otherwise XLA gathers the row before the call (correct, more traffic).

With a temperature (op(x / T)) the ``softmaxlib_compute_t`` target runs instead: one
temperature is an attribute, one per row an operand of the batch shape, the adaptive
one a mode; its ``custom_jvp`` differentiates through x, the per-row temperatures and
the adaptive beta (``_with_jvp_t``), through the same derivative primitive (its
transpose the native backward kernel with the temperature, dx = dz / T). Inputs sharded along a reduced axis are gathered
by XLA before it (no per-shard accumulators for a temperature).

The softmax family (fused softmax + top-k, StableMax) takes the same scheme
(``family``). The package's modules, each one job: ``primitives`` (target
registration and the rules every primitive shares), ``softmax`` (softmax,
log_softmax, logsumexp, with and without a temperature), ``backward`` (their
derivative primitive), ``family``, and
``sharding`` (rows split across devices).

If the extension was built without the XLA FFI headers, or JAX is missing,
``compute`` returns ``NotImplemented`` and the generic path runs.
"""

from softmaxlib import _native_loader as native
from softmaxlib._backends.jax_ffi import family, primitives, softmax


def available():
    """Is the custom call built and registered?"""
    return primitives.registered()


def compute(op, x, axes, where, algorithm, temperature=None):
    """``op`` over ``axes`` of the JAX array (or tracer) ``x``; see ``_reference.compute``."""
    if op in native.STABLEMAX_OPS and temperature is None:
        return family.stablemax(op, x, axes, where)
    return softmax.compute(op, x, axes, where, algorithm, temperature)


def softmax_topk(x, k, axis, where):
    """Fused softmax + top-k of a JAX array along ``axis``; see ``family``."""
    return family.softmax_topk(x, k, axis, where)
