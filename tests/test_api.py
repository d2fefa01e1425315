"""The public contract beyond the numbers: argument checks, types, shapes, namespaces."""

import warnings

import numpy as np
import pytest

import softmaxlib
from softmaxlib._backends import reference_only

FUNCTIONS = (softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.logsumexp)


@pytest.fixture(params=["default", "reference"])
def path(request):
    """Run each test on NumPy's default path (native when built) and on the reference."""
    if request.param == "reference":
        with reference_only():
            yield
    else:
        yield


@pytest.mark.parametrize("function", FUNCTIONS)
def test_unknown_algorithm_lists_the_valid_names(function):
    with pytest.raises(ValueError, match="unknown algorithm 'fast'.*'two-pass'"):
        function(np.ones(3), algorithm="fast")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_complex_input_is_refused_with_advice(function):
    with pytest.raises(TypeError, match="complex128.*real"):
        function(np.ones(3, dtype=np.complex128))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_non_numeric_input_is_refused(function):
    with pytest.raises(TypeError, match="unsupported dtype"):
        function(np.array(["a", "b"]))


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_out_of_range_axis_raises_axis_error(function, axis):
    with pytest.raises(np.exceptions.AxisError):
        function(np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_repeated_axis_raises(function):
    with pytest.raises(ValueError, match="repeated axis"):
        function(np.ones((2, 3)), axis=(1, -1))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_non_integer_axis_raises(function):
    with pytest.raises(TypeError, match="axis must be"):
        function(np.ones((2, 3)), axis=1.0)


def test_where_must_be_boolean_and_broadcastable():
    with pytest.raises(TypeError, match="boolean"):
        softmaxlib.softmax(np.ones(3), where=np.ones(3))
    with pytest.raises(ValueError, match="does not broadcast"):
        softmaxlib.softmax(np.ones((2, 3)), where=np.ones(2, dtype=bool))


def test_python_scalars_and_lists_are_numpy_arrays(path):
    y = softmaxlib.softmax([1, 2, 3])
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    np.testing.assert_allclose(y.sum(), 1.0)
    assert softmaxlib.softmax(5.0) == 1.0
    assert softmaxlib.logsumexp(2.0) == pytest.approx(2.0, rel=1e-14)


@pytest.mark.parametrize("axis", [None, -1, 0])
def test_zero_d_is_softmaxed_over_its_element(path, axis):
    x = np.float32(3.0)
    y = softmaxlib.softmax(np.asarray(x), axis=axis)
    assert y.shape == () and y.dtype == np.float32 and y == 1
    assert softmaxlib.log_softmax(np.asarray(x), axis=axis) == pytest.approx(0, abs=1e-6)
    assert softmaxlib.logsumexp(np.asarray(x), axis=axis) == pytest.approx(3, rel=1e-6)
    assert softmaxlib.logsumexp(np.asarray(x), axis=axis, keepdims=True).shape == ()


def test_integers_and_booleans_are_promoted_to_the_default_float(path):
    assert softmaxlib.softmax(np.arange(4, dtype=np.int16)).dtype == np.float64
    assert softmaxlib.softmax(np.array([True, False])).dtype == np.float64


def test_keepdims(path):
    x = np.zeros((2, 3, 4))
    assert softmaxlib.logsumexp(x, axis=(0, 2), keepdims=True).shape == (1, 3, 1)
    assert softmaxlib.logsumexp(x, axis=None, keepdims=True).shape == (1, 1, 1)
    np.testing.assert_allclose(softmaxlib.logsumexp(x, axis=1), np.log(3))


def test_empty_axis(path):
    assert softmaxlib.softmax(np.zeros((3, 0))).shape == (3, 0)
    np.testing.assert_array_equal(softmaxlib.logsumexp(np.zeros((3, 0))), [-np.inf] * 3)


def test_no_floating_point_warnings_even_when_numpy_raises(path):
    big = np.finfo(np.float32).max
    x = np.array([[big, -big, 0, np.inf], [np.nan, 1, 2, 3], [-np.inf] * 4], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for function in FUNCTIONS:
            for algorithm in softmaxlib.ALGORITHMS:
                function(x, algorithm=algorithm)
                function(x, algorithm=algorithm, where=np.array([True, False, True, True]))


def test_log_softmax_past_the_range_rounds_to_minus_inf(path):
    y = softmaxlib.log_softmax(np.array([3.4e38, -3.4e38], dtype=np.float32))
    assert y[0] == 0 and y[1] == -np.inf


def test_infinite_entries_share_the_mass(path):
    x = np.array([np.inf, 1.0, np.inf, -np.inf])
    np.testing.assert_array_equal(softmaxlib.softmax(x), [0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(softmaxlib.log_softmax(x), [-np.log(2), -np.inf, -np.log(2), -np.inf])
    assert softmaxlib.logsumexp(x) == np.inf


def test_the_result_is_a_new_array_and_the_input_is_untouched(path):
    x = np.array([1.0, 2.0, 3.0])
    before = x.copy()
    y = softmaxlib.softmax(x)
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(x, before)


def test_xp_argument_is_used_for_non_arrays():
    import array_api_strict as xps

    y = softmaxlib.softmax([1.0, 2.0], xp=xps)
    assert type(y).__module__.startswith("array_api_strict")


@pytest.mark.parametrize("library", ["torch", "jax.numpy", "array_api_strict", "dask.array"])
def test_result_stays_in_the_input_namespace(library):
    module = pytest.importorskip(library)
    x = module.asarray(np.arange(6.0).reshape(2, 3))
    y = softmaxlib.softmax(x)
    assert type(y) is type(x)


# ------------------------------------------------------------------ temperature (issue 8)

SOFTMAX_FAMILY = FUNCTIONS  # the three that take temperature=


@pytest.mark.parametrize("function", SOFTMAX_FAMILY)
@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, np.float32(-0.5), np.nan, -np.inf])
def test_non_positive_or_nan_temperature_raises(function, temperature):
    with pytest.raises(ValueError, match="temperature must be positive"):
        function(np.ones(3), temperature=temperature)


@pytest.mark.parametrize("function", SOFTMAX_FAMILY)
@pytest.mark.parametrize("entry", [0.0, -2.0, np.nan])
def test_temperature_array_with_a_bad_entry_raises(function, entry):
    with pytest.raises(ValueError, match="zero, negative or NaN"):
        function(np.ones((3, 4)), temperature=np.array([1.0, entry, 2.0]))


@pytest.mark.parametrize("temperature", [True, np.bool_(False), 1j, np.complex64(1)])
def test_temperature_of_the_wrong_type_raises(temperature):
    with pytest.raises(TypeError, match="temperature must be a positive number"):
        softmaxlib.softmax(np.ones(3), temperature=temperature)


@pytest.mark.parametrize("dtype", [bool, np.complex128])
def test_temperature_array_of_the_wrong_dtype_raises(dtype):
    with pytest.raises(TypeError, match="array of dtype"):
        softmaxlib.softmax(np.ones((2, 3)), temperature=np.ones(2, dtype=dtype))


def test_unknown_temperature_string_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown temperature 'hot'.*'adaptive'"):
        softmaxlib.softmax(np.ones(3), temperature="hot")


@pytest.mark.parametrize("shape", [(4,), (2, 3, 1), (3, 1)])
def test_temperature_array_that_does_not_broadcast_raises(shape):
    # x of shape (2, 3) over axis 1: batch shape (2,), keepdims shape (2, 1).
    with pytest.raises(ValueError, match=r"broadcasts neither to the batch shape \(2,\).*keepdims shape \(2, 1\)"):
        softmaxlib.softmax(np.ones((2, 3)), temperature=np.ones(shape))


def test_temperature_one_is_no_temperature(path):
    x = np.random.default_rng(0).normal(size=(3, 7))
    for function in SOFTMAX_FAMILY:
        np.testing.assert_allclose(function(x, temperature=1.0), function(x), rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(function(x, temperature=1), function(x), rtol=1e-15, atol=1e-15)


def test_scalar_temperature_types_agree(path):
    x = np.random.default_rng(1).normal(size=(3, 7)).astype(np.float32)
    expected = softmaxlib.softmax(x, temperature=2.0)
    for t in (2, np.float32(2), np.float64(2), np.int8(2), np.array([2.0, 2.0, 2.0])):
        np.testing.assert_array_equal(softmaxlib.softmax(x, temperature=t), expected)


def test_per_row_temperature_in_batch_and_keepdims_shape_agree(path):
    x = np.random.default_rng(2).normal(size=(2, 5, 3))  # over axis 1: batch shape (2, 3)
    t = np.array([[0.5, 1.0, 2.0], [3.0, 4.0, np.inf]])
    batch = softmaxlib.softmax(x, axis=1, temperature=t)
    keepdims = softmaxlib.softmax(x, axis=1, temperature=t[:, None, :])
    np.testing.assert_array_equal(batch, keepdims)
    np.testing.assert_allclose(batch[0, :, 0], softmaxlib.softmax(x[0, :, 0] / 0.5), rtol=1e-14)
    np.testing.assert_allclose(batch[1, :, 2], np.full(5, 0.2), rtol=1e-15)
    # A lower-dimensional array broadcasts against the batch shape.
    np.testing.assert_array_equal(
        softmaxlib.logsumexp(x, axis=1, temperature=np.array([0.5, 1.0, 2.0])),
        softmaxlib.logsumexp(x, axis=1, temperature=np.array([[0.5, 1.0, 2.0]] * 2)),
    )


def test_temperature_with_keepdims_and_full_reduction(path):
    x = np.arange(6.0).reshape(2, 3)
    y = softmaxlib.logsumexp(x, axis=None, keepdims=True, temperature=2.0)
    assert y.shape == (1, 1)
    np.testing.assert_allclose(y, softmaxlib.logsumexp(x / 2.0, axis=None, keepdims=True), rtol=1e-15)
    assert softmaxlib.softmax(np.float32(3.0), temperature=np.float32(0.1)) == 1


def test_infinite_temperature_is_uniform_over_the_unmasked_finite_entries(path):
    x = np.array([[1.0, -1e308, 1e308, -np.inf], [np.inf, 1.0, 2.0, np.inf], [1.0, np.nan, 3.0, 4.0]])
    where = np.array([True, True, True, False])
    y = softmaxlib.softmax(x, temperature=np.inf, where=where)
    np.testing.assert_array_equal(y[0], [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_array_equal(y[1], [1, 0, 0, 0])  # the +inf entry keeps the mass (the other is masked)
    assert np.all(np.isnan(y[2, :3])) and y[2, 3] == 0
    np.testing.assert_allclose(softmaxlib.logsumexp(x[:1], temperature=np.inf), [np.log(3)], rtol=1e-15)


def test_adaptive_temperature_sharpens_only_high_entropy_rows(path):
    flat = np.zeros(10)
    flat[0] = 2.0  # entropy ~2.0 > 0.5: beta = p(H) > 1
    peaked = np.array([10.0, 0.0, 0.0])  # entropy ~0.001: beta = 1
    assert softmaxlib.softmax(flat, temperature="adaptive")[0] > softmaxlib.softmax(flat)[0]
    np.testing.assert_allclose(softmaxlib.softmax(peaked, temperature="adaptive"), softmaxlib.softmax(peaked), rtol=1e-15)


def test_no_floating_point_warnings_with_temperatures(path):
    big = np.finfo(np.float32).max
    x = np.array([[big, -big, 0, 1], [1, 2, 3, 4], [-big, -big, big, -np.inf]], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for function in SOFTMAX_FAMILY:
            for t in (1e-30, 0.25, 4.0, 1e30, np.inf, "adaptive", np.array([0.5, 1e-30, np.inf])):
                function(x, temperature=t)
        softmaxlib.stablemax(x)
        softmaxlib.log_stablemax(x)
        softmaxlib.softmax_topk(x, 2)


# ------------------------------------------------------------------ softmax_topk


def test_softmax_topk_values_and_indices(path):
    x = np.array([[1.0, 3.0, 2.0, 3.0], [0.0, -np.inf, 5.0, 1.0]], dtype=np.float32)
    values, indices = softmaxlib.softmax_topk(x, 3)
    assert values.dtype == np.float32 and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, [[1, 3, 2], [2, 3, 0]])
    np.testing.assert_allclose(values, np.take_along_axis(softmaxlib.softmax(x), indices, axis=-1), rtol=1e-6)


@pytest.mark.parametrize("k", [0, -1, 5])
def test_softmax_topk_k_out_of_range_raises(k):
    with pytest.raises(ValueError, match="k must be between 1 and the length of the axis, 4"):
        softmaxlib.softmax_topk(np.ones((2, 4)), k)


@pytest.mark.parametrize("k", [1.0, "2", None, True, np.bool_(True)])
def test_softmax_topk_k_must_be_an_integer(k):
    with pytest.raises(TypeError, match="k must be an integer"):
        softmaxlib.softmax_topk(np.ones(4), k)


@pytest.mark.parametrize("axis", [None, (0,), (0, 1), 1.0, True])
def test_softmax_topk_takes_one_int_axis(axis):
    with pytest.raises(TypeError, match="one axis, an int"):
        softmaxlib.softmax_topk(np.ones((2, 4)), 1, axis=axis)


def test_softmax_topk_axis_out_of_range():
    with pytest.raises(np.exceptions.AxisError):
        softmaxlib.softmax_topk(np.ones((2, 4)), 1, axis=2)


def test_softmax_topk_zero_d(path):
    values, indices = softmaxlib.softmax_topk(np.float32(7.0), 1)
    assert values.shape == () and indices.shape == () and values == 1 and indices == 0
    with pytest.raises(ValueError, match="between 1 and the length of the axis, 1"):
        softmaxlib.softmax_topk(np.float32(7.0), 2)


def test_softmax_topk_numpy_integers_and_lists(path):
    values, indices = softmaxlib.softmax_topk([3, 1, 2], np.int64(2))
    assert values.dtype == np.float64
    np.testing.assert_array_equal(indices, [0, 2])


def test_softmax_topk_complex_input_is_refused():
    with pytest.raises(TypeError, match="real"):
        softmaxlib.softmax_topk(np.ones(3, dtype=np.complex64), 1)


# ------------------------------------------------------------------ stablemax


@pytest.mark.parametrize("function", [softmaxlib.stablemax, softmaxlib.log_stablemax])
def test_stablemax_refuses_complex_and_bad_axes(function):
    with pytest.raises(TypeError, match="real"):
        function(np.ones(3, dtype=np.complex128))
    with pytest.raises(np.exceptions.AxisError):
        function(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        function(np.ones((2, 3)), axis=(1, -1))


def test_stablemax_does_not_collapse_to_zero(path):
    x = np.array([0.0, -200.0, 200.0], dtype=np.float32)
    assert softmaxlib.softmax(x)[1] == 0  # e^-400 underflows float32
    y = softmaxlib.stablemax(x)
    assert y[1] > 0
    total = 1 + 1 / 201 + 201  # s(0) + s(-200) + s(200)
    np.testing.assert_allclose(y, [1 / total, (1 / 201) / total, 201 / total], rtol=1e-6)
    np.testing.assert_allclose(np.exp(softmaxlib.log_stablemax(x)), y, rtol=1e-6)
