"""Dask fast path: rows chunked along the reduced axes, never gathered into one task.

Softmax needs one number per row, the normaliser, and that number is a monoid: each
chunk of a row reduces to an accumulator, accumulators merge associatively, and the
merged one rescales every chunk independently.  So the graph is

* pass 1: one ``dask.array.reduction``: a blockwise kernel turns each chunk into its
  accumulator (one read), and a tree of merges combines them;
* pass 2: one blockwise rescale of every chunk with its row's merged accumulator
  (one read, one write).

The accumulator of a piece of a row is ``(m, d, n_posinf, has_nan, n_valid)``: the
online normaliser's running pair (Milakov & Gimelshein), m the max of the piece's
valid finite entries and d = sum exp(x - m) in float64, beside what the contract's
special values need to know about the piece.  The identity is
``(-inf, 0, 0, 0, 0)``, and merging two identities gives the identity.

On NumPy chunks the per-chunk work runs the native kernels
(``numpy_native.accumulate`` and ``numpy_native.finish``), each task bringing its own
threads; other chunk types (CuPy, ...) return NotImplemented and run the reference.
Every ``algorithm`` name gives this scheme on Dask: it is the one that reads each
chunk twice and never moves a row.
"""

import math

import numpy as np

from softmaxlib import _native_loader as native
from softmaxlib._backends import numpy_native

# One accumulator per row, as a structured scalar so that Dask can concatenate,
# slice and ship accumulators like any other array.
ACCUMULATOR = np.dtype([(name, np.float64) for name in native.ACCUMULATOR_FIELDS])
_FIELDS = ACCUMULATOR.names


def compute(op, x, axes, where, algorithm, temperature=None):
    """The Dask version of ``softmaxlib._reference.compute`` (contract there)."""
    import dask.array as da

    if op not in ("softmax", "log_softmax", "logsumexp") or temperature is not None:
        return NotImplemented
    if not isinstance(x._meta, np.ndarray) or native.kernels is None:
        return NotImplemented
    if any(math.isnan(c) for chunks in x.chunks for c in chunks):
        return NotImplemented  # unknown chunk sizes: the reduction cannot be laid out
    if where is not None:
        where = da.asarray(where).rechunk(x.chunks)
    operands = (x,) if where is None else (x, where)
    meta = np.empty((0,) * x.ndim, dtype=ACCUMULATOR)

    # Pass 1: each chunk to its accumulators (blockwise), then a tree of merges.
    per_chunk = da.map_blocks(
        _accumulate_block,
        *operands,
        axes=axes,
        chunks=tuple((1,) * len(c) if i in axes else c for i, c in enumerate(x.chunks)),
        dtype=ACCUMULATOR,
        meta=meta,
    )
    acc = da.reduction(
        per_chunk,
        chunk=_as_is,
        combine=_merge,
        aggregate=_merge,
        axis=axes,
        keepdims=True,
        dtype=ACCUMULATOR,
        meta=meta,
        name="softmaxlib-merge",
    )

    # Pass 2: logsumexp is the accumulators themselves; softmax rescales each chunk.
    if op == "logsumexp":
        return da.map_blocks(
            _logsumexp_of,
            acc,
            axes=axes,
            out_dtype=x.dtype,
            drop_axis=axes,
            dtype=x.dtype,
            meta=np.empty((0,) * (x.ndim - len(axes)), dtype=x.dtype),
        )
    return da.map_blocks(
        _finish_block,
        x,
        acc,
        *operands[1:],
        op=op,
        axes=axes,
        dtype=x.dtype,
        meta=np.empty((0,) * x.ndim, dtype=x.dtype),
    )


def _accumulate_block(block, mask=None, *, axes):
    """Pass 1 on one chunk: its accumulators, with the reduced axes kept as length 1."""
    keep_shape = tuple(1 if i in axes else s for i, s in enumerate(block.shape))
    if block.size == 0:
        acc = np.zeros(keep_shape, dtype=ACCUMULATOR)
        acc["m"] = -np.inf
        return acc
    values = numpy_native.accumulate(block, tuple(axes), mask)  # batch shape + (5,)
    return np.ascontiguousarray(values).view(ACCUMULATOR).reshape(keep_shape)


def _as_is(accs, axis, keepdims):
    return accs


def _merge(accs, axis, keepdims=True):
    """Merge accumulators along ``axis`` (kept): the monoid's operation, vectorised.

    (m, d) + (m', d') = (M, d e^(m - M) + d' e^(m' - M)); the counts add (a positive
    NaN count is the row's NaN flag).
    """
    m = np.max(accs["m"], axis=axis, keepdims=True)
    empty = m == -np.inf  # only identities: keep d = 0 without -inf - -inf
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.where(accs["m"] == -np.inf, 0.0, np.exp(accs["m"] - np.where(empty, 0.0, m)))
    out = np.empty(m.shape, dtype=ACCUMULATOR)
    out["m"] = m
    out["d"] = np.sum(accs["d"] * scale, axis=axis, keepdims=True)
    for field in ("n_posinf", "has_nan", "n_valid"):
        out[field] = np.sum(accs[field], axis=axis, keepdims=True)
    return out


def _as_float64(acc, axes):
    """Structured accumulators (reduced axes of length 1) as float64 (batch..., 5)."""
    acc = np.squeeze(acc, axis=tuple(axes))
    return np.stack([acc[name] for name in _FIELDS], axis=-1)


def _finish_block(block, acc, mask=None, *, op, axes):
    """Pass 2 on one chunk: rescale with its rows' merged accumulators."""
    if block.size == 0:
        return np.empty(block.shape, dtype=block.dtype)
    return numpy_native.finish(op, block, tuple(axes), mask, _as_float64(acc, axes))


def _logsumexp_of(acc, *, axes, out_dtype):
    """logsumexp from merged accumulators (``native.logsumexp_of_accumulator``)."""
    acc = np.squeeze(acc, axis=tuple(axes))
    lse = native.logsumexp_of_accumulator(np, acc["m"], acc["d"], acc["n_posinf"], acc["has_nan"])
    return lse.astype(out_dtype)
