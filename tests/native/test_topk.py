"""Fused softmax + top-k (numpy_native.softmax_topk) against a float64 /
long double oracle: ranking (ties by the lower index, masked last, -inf after
the finite entries), values within the softmax tolerances, the contract's
special rows, every dtype, ISA and layout, and bitwise reproducibility across
thread counts."""

import ml_dtypes
import numpy as np
import pytest

from softmaxlib._backends import numpy_native
from tests.native.helpers import tolerances

DTYPES = (np.float32, np.float64, np.float16, ml_dtypes.bfloat16)


def topk_oracle(x, k, axis, where=None):
    """(values, indices, nan_rows) of the top k of softmax(x, where) along axis,
    with the contract's ranking, in float64 (long double for float64 input);
    axis moved last."""
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    xm = np.moveaxis(np.asarray(x).astype(wide), axis, -1)
    keep = np.ones(xm.shape, bool) if where is None else np.moveaxis(np.broadcast_to(where, x.shape), axis, -1)
    logit = np.where(keep, xm, -np.inf)
    n = xm.shape[-1]
    idx = np.broadcast_to(np.arange(n), xm.shape)
    with np.errstate(invalid="ignore"):
        group = np.where(~keep, 2, np.where(logit > -np.inf, 0, 1))  # NaN: group 1
    key = np.where(group == 0, -logit, 0)
    order = np.lexsort((idx, key, group), axis=-1)[..., :k]
    fin = np.isfinite(logit)
    m = np.max(np.where(fin, logit, -np.inf), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        e = np.where(fin, np.exp(logit - np.where(np.isfinite(m), m, 0)), 0)
        p = e / np.sum(e, axis=-1, keepdims=True)
        n_posinf = np.sum(logit == np.inf, axis=-1, keepdims=True)
        p = np.where(n_posinf > 0, np.where(logit == np.inf, 1 / np.maximum(n_posinf, 1), 0), p)
    p = np.where(keep, p, 0)
    nan_rows = np.any(np.isnan(logit), axis=-1)
    p = np.where(nan_rows[..., None], np.nan, p)
    dist = np.where(fin, np.abs(logit - np.where(np.isfinite(m), m, 0)), 0)
    return (
        np.take_along_axis(p, order, -1),
        order,
        nan_rows,
        np.take_along_axis(dist, order, -1),
    )


def check_topk(x, k, axis=-1, where=None):
    axis = axis % x.ndim
    values, indices = numpy_native.softmax_topk(x, k, axis, where)
    shape = list(x.shape)
    shape[axis] = k
    assert values.shape == tuple(shape) and indices.shape == tuple(shape)
    assert values.dtype == x.dtype and indices.dtype == np.int64
    exact, order, nan_rows, dist = topk_oracle(x, k, axis, where)
    got_v = np.moveaxis(values, axis, -1).astype(exact.dtype)
    got_i = np.moveaxis(indices, axis, -1)
    # NaN rows: every value NaN, k distinct valid indices.
    assert np.isnan(got_v[nan_rows]).all()
    nan_idx = got_i[nan_rows]
    assert ((nan_idx >= 0) & (nan_idx < x.shape[axis])).all()
    assert all(len(set(r)) == k for r in nan_idx.reshape(-1, k))
    ok_rows = ~nan_rows
    np.testing.assert_array_equal(got_i[ok_rows], order[ok_rows])
    rtol, cond, tiny = tolerances(x.dtype)
    ev, gv, dv = exact[ok_rows], got_v[ok_rows], dist[ok_rows]
    with np.errstate(invalid="ignore"):
        bound = np.where(ev < tiny, tiny, (rtol + cond * dv) * ev)
        ok = (np.isnan(gv) & np.isnan(ev)) | (gv == ev) | (np.abs(gv - ev) <= bound)
    assert ok.all(), f"{np.count_nonzero(~ok)} bad values; got {gv[~ok][:3]}, exact {ev[~ok][:3]}"
    return values, indices


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 7, 50, 300])
def test_random_rows(isa, dtype, k):
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((5, 300)) * 4).astype(dtype)
    check_topk(x, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_by_lower_index(isa, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 3, size=(6, 1000)).astype(dtype)  # every value repeated ~170 times
    for k in (1, 5, 170, 171, 999, 1000):
        check_topk(x, k)
    x[:] = 2  # all equal: 0, 1, ..., k - 1
    _, idx = check_topk(x, 33)
    assert (idx == np.arange(33)).all()


def test_lengths_around_vectors_and_chunks(isa):
    # Tails of every length, one and several chunks, blocks with and without
    # candidates (ascending rows make every element a candidate).
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 15, 16, 17, 63, 64, 65, 127, 129, 4095, 4097, 9001):
        x = (rng.standard_normal((2, n)) * 3).astype(np.float32)
        for k in sorted({1, min(n, 5), n}):
            check_topk(x, k)
        check_topk(np.sort(x, axis=-1), min(n, 10))
        check_topk(np.sort(x, axis=-1)[:, ::-1], min(n, 10))


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_rows(isa, dtype):
    inf, nan = np.inf, np.nan
    big = float(ml_dtypes.finfo(dtype).max)
    x = np.array(
        [
            [1.0, -inf, 3.0, -inf, 2.0, 0.5],  # -inf after the finite ones, value 0
            [-inf, -inf, 1.0, -inf, -inf, -inf],  # fewer finite than k
            [inf, 1.0, inf, 2.0, -inf, inf],  # +inf share the mass
            [-inf] * 6,  # all -inf: 0/0
            [1.0, nan, 2.0, 3.0, 4.0, 5.0],  # NaN row
            [big, -big, big, 0.0, -big, 1.0],  # +-max: no overflow
            [-big, -big, -big, -big, -big, -big],  # all equal at -max
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ],
    ).astype(dtype)
    for k in (1, 2, 3, 4, 6):
        check_topk(x, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks(isa, dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 70)) * 3).astype(dtype)
    x[1, ::7] = -np.inf
    x[2, 5] = np.inf
    x[3, 9] = np.nan  # masked out below: not a NaN row
    where = rng.random((6, 70)) < 0.3
    where[0] = False  # fully masked: value 0, indices 0..k-1
    where[3, 9] = False
    where[4] = False
    where[4, [3, 60]] = True  # 2 unmasked: masked entries follow by index
    for k in (1, 2, 3, 21, 70):
        values, indices = check_topk(x, k, where=where)
        assert (indices[0] == np.arange(k)).all() and (values[0] == 0).all()
    # a broadcast mask (one per column)
    check_topk(x, 10, where=rng.random(70) < 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axes_and_strides(isa, dtype):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((7, 40, 9)) * 3).astype(dtype)
    for axis in (0, 1, 2, -1):
        check_topk(x, 5, axis)
    check_topk(x.transpose(2, 0, 1), 6, 2)  # transposed
    check_topk(x[::-2, ::3, 1:], 4, 1)  # negative and step strides
    check_topk(np.asfortranarray(x[:, :, 0]), 3, 1)
    where = rng.random((7, 40, 9)) < 0.7
    check_topk(x, 8, 1, where[:, :, :])
    check_topk(x[:, ::2], 8, 1, where[:, ::2])  # strided x and mask


def test_matches_softmax(isa):
    # The values are softmax(x) at the indices, to the conformance tolerance.
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 5000)) * 5).astype(np.float32)
    values, indices = numpy_native.softmax_topk(x, 40, 1, None)
    y = numpy_native.compute("softmax", x, (1,), None, "auto")
    np.testing.assert_allclose(values, np.take_along_axis(y, indices, 1), rtol=2e-6)


@pytest.mark.slow
def test_long_rows_bitwise_identical_across_threads(isa, threads):
    # Rows of 2^20 and more are split over threads (layout.h, kMinSplitRow):
    # each thread keeps its own running top-k, merged at the end.
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((2, 2**20 + 5)) * 4).astype(np.float32)
    x[1, 2**19 :] += 0.25  # the winners in the second half
    x[1, 77] = x[1].max()  # a tie across chunks: the lower index first
    results = {}
    for n in (1, 2):
        threads(n)
        results[n] = numpy_native.softmax_topk(x, 64, 1, None)
    assert results[1][0].tobytes() == results[2][0].tobytes()
    assert results[1][1].tobytes() == results[2][1].tobytes()
    check_topk(x, 64)


def test_many_rows_across_threads(threads):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((700, 300)) * 4).astype(np.float32)
    threads(1)
    one = numpy_native.softmax_topk(x, 9, 1, None)
    threads(2)
    two = numpy_native.softmax_topk(x, 9, 1, None)
    assert one[0].tobytes() == two[0].tobytes() and one[1].tobytes() == two[1].tobytes()


def test_not_implemented_and_errors():
    assert numpy_native.softmax_topk(np.zeros(3, np.int32), 1, 0, None) is NotImplemented
    assert numpy_native.softmax_topk(np.float32(1.0), 1, 0, None) is NotImplemented
    assert numpy_native.softmax_topk(np.zeros((0, 3), np.float32), 1, 1, None) is NotImplemented
    with pytest.raises(ValueError, match="k must be"):
        numpy_native.softmax_topk(np.zeros(3, np.float32), 4, 0, None)
    with pytest.raises(ValueError, match="k must be"):
        numpy_native.softmax_topk(np.zeros(3, np.float32), 0, 0, None)
