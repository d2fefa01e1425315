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
