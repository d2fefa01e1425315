"""The Array-API reference of the fused softmax + top-k (Milakov & Gimelshein 2018).

``softmax_topk`` returns the k largest probabilities of each row, normalised over the
whole row, sorted descending, and their indices.  The fused kernels read x once,
keeping the online normaliser's running (max, sum) pair beside a running top-k of the
logits; this reference computes the same two things with whole-array operations:

* the normaliser (m, d) with the online algorithm's blocked merge
  (``softmax.online_normaliser``);
* the ranking by a stable descending sort: by logit, ties by the lower index; the
  entries without mass (-inf, and NaN, whose row is NaN anyway) after the others, by
  index; masked entries after every unmasked one, by index;

and the values p_i = exp(x_i - m) / d of the ranked logits, with softmax's special
values (+inf entries share the mass, a NaN or all -inf row is NaN, a fully masked row
0).  Array API standard only, like ``softmax``.
"""

import math

from softmaxlib._reference import softmax


def softmax_topk(xp, x, k, axis, where):
    """(values, indices) of the top ``k`` of ``softmax(x)`` along ``axis``.

    ``x`` a floating array with ``x.ndim >= 1``, ``axis`` a non-negative int, ``1 <= k <=
    x.shape[axis]``, ``where`` None or a boolean array of ``x``'s shape.  Returns
    ``values`` of ``x``'s dtype and ``indices`` of the namespace's default integer
    dtype, both of ``x``'s shape with ``axis``'s length ``k``.
    """
    out_dtype = x.dtype
    if softmax.is_half(x.dtype):
        x = xp.astype(x, xp.float32)  # computed in float32, rounded once at the end
    device = softmax.device_of(x)
    int_dtype = xp.__array_namespace_info__().default_dtypes(device=device)["integral"]
    out_shape = tuple(k if a == axis else s for a, s in enumerate(x.shape))
    batch_shape, rows, valid = softmax.to_rows(xp, x, (axis,), where)
    n = rows.shape[-1]
    if math.prod(batch_shape) == 0:
        return xp.empty(out_shape, dtype=out_dtype, device=device), xp.empty(out_shape, dtype=int_dtype, device=device)

    nan = xp.isnan(rows)
    clean = xp.where(valid & ~nan & (rows != math.inf), rows, -math.inf)
    m, count, rest = softmax.online_normaliser(xp, clean)
    d = count + rest

    # The ranking: a stable descending sort by logit puts the finite and +inf entries
    # first, in the right order; the -inf keys (-inf, NaN and masked entries) come
    # last, and are put in their order (unmasked first, then by index) by a second key.
    key = xp.where(valid & ~nan, rows, -math.inf)
    by_value = xp.argsort(key, axis=-1, descending=True, stable=True)
    position = xp.argsort(by_value, axis=-1, stable=True)  # each entry's place in by_value
    index = xp.arange(n, dtype=position.dtype, device=device)
    masked_last = xp.astype(~valid, position.dtype) * n
    order = xp.where(key == -math.inf, (n + index) + masked_last, position)
    indices = xp.argsort(order, axis=-1, stable=True)[..., :k]
    # The ranked logits, without a gather: the sorted keys are them, position by
    # position; the unmasked entries are the first n_valid positions.
    top = xp.sort(key, axis=-1, descending=True, stable=True)[..., :k]
    n_valid = xp.sum(xp.astype(valid, position.dtype), axis=-1, keepdims=True)
    valid_top = index[:k] < n_valid

    d = xp.where(d == 0, xp.ones_like(d), d)  # an all -inf row: replaced below
    finite_top = xp.where(top == math.inf, -math.inf, top)  # +inf: shared mass, set below
    values = xp.exp(softmax.subtract(xp, finite_top, m)) / d
    flags = softmax.row_flags(xp, rows, valid)
    values = softmax.apply_row_flags(xp, "softmax", flags, top == math.inf, valid_top, values)
    if out_dtype != values.dtype:
        values = xp.astype(values, out_dtype)
    values = softmax.from_rows(xp, values, out_shape, (axis,))
    indices = softmax.from_rows(xp, xp.astype(indices, int_dtype), out_shape, (axis,))
    return values, indices
