"""Odd arguments every public function must handle the same way on every path.

``axis=()`` (each element its own row), bool axes, NumPy masked arrays, per-row
temperatures past the dtype's range, a wrong ``xp`` and Dask arrays of unknown shape.
Where the answer can differ by path, the test runs on every path registered in
``tests/backends.py`` (the ``backend`` fixture); the checks made before any dispatch
run on NumPy.
"""

import math

import numpy as np
import pytest

import softmaxlib
from softmaxlib._backends import reference_only
from tests.conformance.conftest import backend  # noqa: F401  (the per-path fixture)

ROW_OPS = ("softmax", "log_softmax", "stablemax", "log_stablemax")
ALL_OPS = ROW_OPS + ("logsumexp",)
PUBLIC = tuple(getattr(softmaxlib, op) for op in ALL_OPS)


def _call(name, x, **kwargs):
    if name == "softmax_topk":
        return softmaxlib.softmax_topk(x, 1, **kwargs)
    return getattr(softmaxlib, name)(x, **kwargs)


# ------------------------------------------------------------------------------ axis=()

_LOGITS = np.array([[0.5, -2.0, np.inf], [-np.inf, np.nan, 3.0]], dtype=np.float32)
_KEEP = np.array([[True, False, True], [True, True, False]])


def _one_element_rows(op, x, keep=None):
    """What a row of one element gives, element by element (the contract)."""
    usable = ~np.isnan(x) & (x != -np.inf)
    if op in ("softmax", "stablemax"):
        y = np.where(usable, 1.0, np.nan)
        masked = 0.0
    elif op in ("log_softmax", "log_stablemax"):
        y = np.where(usable, 0.0, np.nan)
        masked = -np.inf
    else:
        y = x.astype(np.float64)
        masked = -np.inf
    return y if keep is None else np.where(keep, y, masked)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "where"])
@pytest.mark.parametrize("op", ALL_OPS)
def test_empty_axis_tuple_makes_each_element_its_own_row(backend, op, masked):
    kwargs = {"axis": ()}
    if masked:
        kwargs["where"] = backend.from_numpy(_KEEP)
    y = backend.call(getattr(softmaxlib, op), backend.from_numpy(_LOGITS), compiled=True, **kwargs)
    assert tuple(y.shape) == _LOGITS.shape
    expected = _one_element_rows(op, _LOGITS, _KEEP if masked else None)
    # float32 results, within the documented 1e-6 (special values exactly)
    np.testing.assert_allclose(backend.to_numpy(y), expected, rtol=1e-6, atol=1e-6)


def test_empty_axis_tuple_with_keepdims_and_a_temperature(backend):
    x = backend.from_numpy(_LOGITS)
    lse = softmaxlib.logsumexp(x, axis=(), keepdims=True)
    np.testing.assert_array_equal(backend.to_numpy(lse), _LOGITS.astype(np.float64))
    y = softmaxlib.softmax(x, axis=(), temperature=backend.from_numpy(np.full(_LOGITS.shape, 2.0, np.float32)))
    np.testing.assert_array_equal(backend.to_numpy(y), _one_element_rows("softmax", _LOGITS))


def test_empty_axis_tuple_on_a_0d_input():
    np.testing.assert_array_equal(softmaxlib.softmax(np.float64(3.0), axis=()), 1.0)
    np.testing.assert_array_equal(softmaxlib.logsumexp(np.float64(3.0), axis=()), 3.0)


# ------------------------------------------------------------------------- bool axis


@pytest.mark.parametrize("axis", [True, False, np.True_, (0, True)])
@pytest.mark.parametrize("name", ALL_OPS + ("softmax_topk",))
def test_a_bool_axis_is_refused(backend, name, axis):
    x = backend.from_numpy(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="axis"):
        _call(name, x, axis=axis)


# ----------------------------------------------------------------------- masked arrays


@pytest.fixture(params=["default", "reference"])
def numpy_path(request):
    """NumPy's default path (native when built) and the reference."""
    if request.param == "reference":
        with reference_only():
            yield
    else:
        yield


_MASKED = np.ma.MaskedArray(
    [[1.0, 2.0, 100.0, np.nan], [3.0, -1.0, 0.5, 2.0], [7.0, 8.0, 9.0, 10.0]],
    mask=[[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]],
)


@pytest.mark.parametrize("op", ROW_OPS)
def test_a_masked_arrays_mask_acts_as_where(numpy_path, op):
    function = getattr(softmaxlib, op)
    y = function(_MASKED)
    assert isinstance(y, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(y), _MASKED.mask)
    np.testing.assert_array_equal(y.data, function(_MASKED.data, where=~_MASKED.mask))


def test_the_masked_softmax_of_the_issue(numpy_path):
    y = softmaxlib.softmax(np.ma.MaskedArray([1.0, 2.0, 100.0], mask=[0, 0, 1]))
    np.testing.assert_allclose(y.data, [0.26894142, 0.73105858, 0.0], rtol=1e-7)
    assert list(np.ma.getmaskarray(y)) == [False, False, True]


@pytest.mark.parametrize("keepdims", [False, True])
def test_a_masked_logsumexp_is_masked_where_the_whole_row_is(numpy_path, keepdims):
    lse = softmaxlib.logsumexp(_MASKED, axis=1, keepdims=keepdims)
    assert isinstance(lse, np.ma.MaskedArray)
    expected = softmaxlib.logsumexp(_MASKED.data, axis=1, keepdims=keepdims, where=~_MASKED.mask)
    np.testing.assert_array_equal(lse.data, expected)
    np.testing.assert_array_equal(np.ma.getmaskarray(lse).ravel(), [False, False, True])
    assert lse.shape == expected.shape
    assert float(softmaxlib.logsumexp(_MASKED[0])) == pytest.approx(math.log(math.e + math.e**2))


def test_a_masked_arrays_mask_is_combined_with_where(numpy_path):
    where = np.array([True, False, True, True])
    y = softmaxlib.softmax(_MASKED, where=where)
    np.testing.assert_array_equal(y.data, softmaxlib.softmax(_MASKED.data, where=where & ~_MASKED.mask))
    np.testing.assert_array_equal(np.ma.getmaskarray(y), _MASKED.mask)


def test_a_masked_softmax_topk_never_picks_a_masked_entry_first(numpy_path):
    values, indices = softmaxlib.softmax_topk(_MASKED, 3)
    np.testing.assert_array_equal(indices.data[0, :2], [1, 0])
    np.testing.assert_allclose(values.data[0, :2], softmaxlib.softmax(np.array([1.0, 2.0]))[::-1], rtol=1e-15)
    # The third pick of row 0 and every pick of row 2 are masked entries: masked out.
    picked = np.take_along_axis(_MASKED.mask, indices.data, axis=-1)
    np.testing.assert_array_equal(np.ma.getmaskarray(values), picked)
    np.testing.assert_array_equal(np.ma.getmaskarray(indices), picked)
    assert picked[0].tolist() == [False, False, True] and picked[2].all()


@pytest.mark.parametrize("name", ALL_OPS + ("softmax_topk",))
def test_a_dask_array_of_masked_chunks_keeps_its_mask(name):
    da = pytest.importorskip("dask.array")
    d = da.from_array(_MASKED, chunks=(2, 3))
    results, expected = _call(name, d, axis=-1), _call(name, _MASKED, axis=-1)
    if name != "softmax_topk":
        results, expected = (results,), (expected,)
    for result, wanted in zip(results, expected, strict=True):
        got = result.compute()
        assert isinstance(got, np.ma.MaskedArray)
        np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(wanted))
        np.testing.assert_allclose(got.data, wanted.data, rtol=1e-14)


def test_a_masked_where_leaves_its_masked_entries_out(numpy_path):
    where = np.ma.MaskedArray([True, True, True], mask=[False, False, True])
    y = softmaxlib.softmax(np.array([1.0, 2.0, 100.0]), where=where)
    np.testing.assert_allclose(y, [0.26894142, 0.73105858, 0.0], rtol=1e-7)


def test_a_masked_temperature_is_refused():
    with pytest.raises(TypeError, match="masked array"):
        softmaxlib.softmax(np.ones((2, 3)), temperature=np.ma.MaskedArray([1.0, 2.0], mask=[0, 1]))


# ------------------------------------------------------- per-row temperature extremes

_ROWS = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])


def _strict_errstate(backend):
    """NumPy raising on every floating-point exception where softmaxlib computes
    eagerly in NumPy (the native path and the reference there quiet the ones the
    contract allows); elsewhere NumPy runs under the user's error state, and raising
    on overflow, 0/0 and division by zero (which warn by default) is what must hold.
    """
    if backend.name.startswith("numpy"):
        return np.errstate(all="raise")
    return np.errstate(over="raise", invalid="raise", divide="raise")


@pytest.mark.parametrize("tiny_or_huge", [1e-300, 1e300])
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_per_row_temperatures_are_checked_as_given(backend, op, dtype, tiny_or_huge):
    if dtype not in backend.dtypes:
        pytest.skip(f"backend {backend.name} has no {dtype}")
    function = getattr(softmaxlib, op)
    x = backend.from_numpy(_ROWS.astype(dtype))
    temperature = backend.from_numpy(np.array([tiny_or_huge, 1.0]))
    with _strict_errstate(backend):
        y = backend.to_numpy(function(x, temperature=temperature))
        per_row = [backend.to_numpy(function(x, temperature=t))[i] for i, t in enumerate((tiny_or_huge, 1.0))]
    np.testing.assert_array_equal(y, np.stack(per_row))


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_a_numpy_float64_temperature_for_a_float32_array_of_another_namespace(backend, op):
    """The array as given is NumPy's float64, whatever ``x``'s namespace."""
    function = getattr(softmaxlib, op)
    x = backend.from_numpy(_ROWS.astype(np.float32))
    with _strict_errstate(backend):
        y = backend.to_numpy(function(x, temperature=np.array([1e-300, 1.0])))
        z = backend.to_numpy(function(x, temperature=np.array([1e300, 1.0])))
    tiny, one, huge = (backend.to_numpy(function(x, temperature=t)) for t in (1e-300, 1.0, 1e300))
    np.testing.assert_array_equal(y, np.stack([tiny[0], one[1]]))
    np.testing.assert_array_equal(z, np.stack([huge[0], one[1]]))


def test_a_tiny_per_row_temperature_on_jax_without_x64():
    """float32 cannot hold 1e-300: the row is still one-hot, not NaN and not refused."""
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.asarray(_ROWS.astype(np.float32))
    y = softmaxlib.softmax(x, temperature=np.array([1e-300, 1.0]))
    np.testing.assert_array_equal(np.asarray(y)[0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(np.asarray(y)[1], softmaxlib.softmax(_ROWS[1]), rtol=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_a_bad_per_row_temperature_is_still_refused_before_any_cast(bad):
    with pytest.raises(ValueError, match="positive"):
        softmaxlib.softmax(_ROWS.astype(np.float32), temperature=np.array([bad, 1.0]))


# -------------------------------------------------------------------------- wrong xp


def _wrong_namespaces():
    import math as not_a_namespace

    import array_api_strict
    import torch

    return [
        (np.ones(3), not_a_namespace, "array namespace"),
        (np.ones(3), "numpy", "array namespace"),
        (np.ones(3), 42, "array namespace"),
        (np.ones(3), torch, "does not match"),
        (np.ones(3), array_api_strict, "does not match"),
        (torch.ones(3), np, "does not match"),
        (array_api_strict.ones(3), np, "does not match"),
    ]


@pytest.mark.parametrize("case", range(7))
@pytest.mark.parametrize("name", ALL_OPS + ("softmax_topk",))
def test_a_wrong_xp_is_a_type_error_that_says_so(name, case):
    pytest.importorskip("torch")
    pytest.importorskip("array_api_strict")
    x, xp, message = _wrong_namespaces()[case]
    with pytest.raises(TypeError, match=message):
        _call(name, x, xp=xp)


def test_a_wrong_xp_for_jax_and_dask():
    jnp = pytest.importorskip("jax.numpy")
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="does not match"):
        softmaxlib.softmax(jnp.ones(3), xp=np)
    with pytest.raises(TypeError, match="does not match"):
        softmaxlib.softmax(np.ones(3), xp=da)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax.numpy", "dask.array"])
def test_the_plain_module_of_xs_library_is_taken_as_its_namespace(library):
    module = pytest.importorskip(library)
    x = module.asarray(np.arange(3.0))
    y = softmaxlib.softmax(x, xp=module)
    assert type(y) is type(x)
    np.testing.assert_allclose(np.asarray(y), softmaxlib.softmax(np.arange(3.0)), rtol=1e-6)


# -------------------------------------------------------- Dask arrays of unknown shape


@pytest.mark.parametrize("name", ALL_OPS + ("softmax_topk",))
def test_a_dask_array_of_unknown_chunk_sizes_says_what_to_call(name):
    da = pytest.importorskip("dask.array")
    d = da.from_array(np.arange(20.0).reshape(10, 2) - 8, chunks=(3, 2))
    unknown = d[d[:, 0] > 0]
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        _call(name, unknown)
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        _call(name, d, where=(d > 0)[d[:, 0] > 0])
    known = unknown.compute_chunk_sizes()
    np.testing.assert_allclose(
        _call(name, known)[0].compute() if name == "softmax_topk" else _call(name, known).compute(),
        _call(name, known.compute())[0] if name == "softmax_topk" else _call(name, known.compute()),
        rtol=1e-12,
    )
