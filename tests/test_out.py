"""``out=`` on softmax, log_softmax, stablemax and log_stablemax (NumPy, and PyTorch by
torch's own convention): the
result written into a given array, in place with ``out=x``, refused with a
clear error, before any work, when it cannot be written."""

import ml_dtypes
import numpy as np
import pytest

import softmaxlib

FUNCTIONS = (softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.stablemax, softmaxlib.log_stablemax)
WITH_ALGORITHM = (softmaxlib.softmax, softmaxlib.log_softmax)


def _x(shape, dtype=np.float32, seed=0, special=False):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * 5)
    if special:
        flat = x.reshape(-1)
        idx = rng.permutation(flat.size)[:9]
        flat[idx[:3]], flat[idx[3:6]], flat[idx[6]] = np.inf, -np.inf, np.nan
    return np.asarray(x.astype(dtype))


def _every_other(shape, dtype):
    """An array of ``shape`` over every other element of a buffer (never C-contiguous but 0-d)."""
    a = np.empty(shape + (2,), dtype)
    return a[..., 0] if shape else a[:1].reshape(())


def _calls(function):
    return [{"algorithm": a} for a in softmaxlib.ALGORITHMS] if function in WITH_ALGORITHM else [{}]


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("shape", "axis"), [((6, 37), -1), ((3, 40000), -1), ((37, 6), 0), ((4, 5, 6), (0, 2)),
                                             ((8, 9), None), ((5,), ()), ((), -1)])
def test_same_bits_as_a_fresh_result(function, dtype, shape, axis):
    x = _x(shape, dtype, special=len(shape) > 1 and shape[0] > 3)
    for kwargs in _calls(function):
        with np.errstate(all="ignore"):
            expected = function(x, axis=axis, **kwargs)
            outs = {"C-ordered": np.empty_like(x, order="C"), "reversed strides": np.empty(shape[::-1], x.dtype).T,
                    "every other element": _every_other(shape, x.dtype)}
            for name, out in outs.items():
                before = x.copy()
                assert function(x, axis=axis, out=out, **kwargs) is out, name
                assert out.tobytes() == expected.tobytes(), name
                assert x.tobytes() == before.tobytes(), "x changed"
            every_other = _every_other(shape, x.dtype)
            every_other[...] = x
            for y in (x.copy(), np.asfortranarray(x), every_other):
                assert function(y, axis=axis, out=y, **kwargs) is y  # in place
                assert y.tobytes() == expected.tobytes(), (kwargs, y.flags)


@pytest.mark.parametrize("function", WITH_ALGORITHM, ids=lambda f: f.__name__)
@pytest.mark.parametrize("temperature", [0.5, np.array([0.5, 2.0, np.inf]), "adaptive"], ids=str)
def test_with_temperature(function, temperature):
    x = _x((3, 50))
    expected = function(x, temperature=temperature)
    out = np.empty_like(x)
    assert function(x, temperature=temperature, out=out) is out
    assert out.tobytes() == expected.tobytes()
    assert function(x, temperature=temperature, out=x) is x
    assert x.tobytes() == expected.tobytes()


def test_with_where_and_the_reference():
    x = _x((4, 30))
    where = np.random.default_rng(1).random((4, 30)) > 0.3
    expected = softmaxlib.softmax(x, where=where)
    out = np.full_like(x, 7.0)
    assert softmaxlib.softmax(x, where=where, out=out) is out
    assert out.tobytes() == expected.tobytes()
    with softmaxlib._backends.reference_only():
        expected = softmaxlib.log_softmax(x, where=where)
        assert softmaxlib.log_softmax(x, where=where, out=x) is x
    assert x.tobytes() == expected.tobytes()


def test_integer_and_list_input_write_the_default_float():
    out = np.empty(3)
    assert softmaxlib.softmax([1, 2, 3], out=out) is out
    np.testing.assert_allclose(out, softmaxlib.softmax(np.array([1.0, 2.0, 3.0])), rtol=0)


@pytest.mark.parametrize(
    ("make_out", "error", "match"),
    [
        (lambda x: np.empty((4, 6), np.float32), ValueError, r"shape \(4, 6\).*result has shape \(4, 5\)"),
        (lambda x: np.empty((4, 5), np.float64), ValueError, "dtype float64.*dtype float32"),
        (lambda x: np.empty((5, 4), np.float32), ValueError, "shape"),
        (lambda x: np.broadcast_to(np.float32(0), x.shape), ValueError, "read-only"),
        (lambda x: x[::-1], ValueError, "overlaps x without being x"),
        (lambda x: x.base[0:4], ValueError, "overlaps x without being x"),
        (lambda x: [[0.0] * 5] * 4, TypeError, "numpy.ndarray"),
        (lambda x: np.ma.zeros((4, 5), np.float32), TypeError, "numpy.ndarray"),
    ],
    ids=["shape", "dtype", "transposed-shape", "read-only", "reversed-x", "shifted-x", "list", "masked"],
)
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_refused_before_any_work(function, make_out, error, match):
    base = np.arange(30, dtype=np.float32).reshape(6, 5) / 7
    x = base[1:5]
    before = base.copy()
    out = make_out(x)
    out_before = np.array(out, copy=True)
    with pytest.raises(error, match=match):
        function(x, out=out)
    assert base.tobytes() == before.tobytes()
    assert np.asarray(out).tobytes() == out_before.tobytes()


def test_out_overlapping_where_is_refused():
    buf = np.zeros(10, np.float64)
    where = buf.view(bool)[:5]
    with pytest.raises(ValueError, match="out overlaps where"):
        softmaxlib.softmax(np.ones(5), where=where, out=buf[:5])


def test_masked_input_refuses_out():
    x = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[0, 0, 1])
    with pytest.raises(TypeError, match="masked"):
        softmaxlib.softmax(x, out=np.empty(3))


def test_jax_refuses_out_because_its_arrays_are_immutable():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.ones((2, 3))
    for function in FUNCTIONS:
        with pytest.raises(TypeError, match="immutable"):
            function(x, out=x)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("shape", "axis"), [((6, 37), -1), ((37, 6), 0), ((4, 5, 6), (0, 2)), ((8, 9), None)])
def test_torch_out_gives_the_same_bits_and_returns_out(function, dtype, shape, axis):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(_x(shape, np.float32, special=True)).to(getattr(torch, dtype))
    for kwargs in _calls(function):
        expected = function(x, axis=axis, **kwargs)
        fresh, transposed, copy = torch.empty(shape, dtype=x.dtype), torch.empty(shape[::-1], dtype=x.dtype).permute(*range(len(shape))[::-1]), x.clone()
        for given, out in ((x, fresh), (x, transposed), (copy, copy)):  # the last in place
            y = function(given, axis=axis, out=out, **kwargs)
            assert y is out
            assert torch.equal(y.isnan(), expected.isnan())
            assert torch.equal(torch.nan_to_num(y), torch.nan_to_num(expected)), f"{function.__name__} {kwargs}"


def test_torch_out_takes_the_promoted_dtype_a_temperature_and_the_generic_path():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(_x((4, 5)))
    t = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = softmaxlib.softmax(x, temperature=t, out=torch.empty(4, 5))
    assert torch.equal(y, softmaxlib.softmax(x, temperature=t))
    y = softmaxlib.softmax(torch.arange(6).reshape(2, 3), out=torch.empty(2, 3))
    assert torch.equal(y, softmaxlib.softmax(torch.arange(6.0).reshape(2, 3)))
    with softmaxlib._backends.generic_only():
        y = softmaxlib.log_softmax(x, out=torch.empty(4, 5))
    assert torch.allclose(y, torch.log_softmax(x, -1))


def test_torch_out_of_another_shape_is_resized_as_torch_does():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(_x((4, 5)))
    out = torch.empty(0)
    assert softmaxlib.softmax(x, out=out) is out and out.shape == (4, 5)
    out = torch.empty(2, 2)
    with pytest.warns(UserWarning, match="resized"):
        softmaxlib.softmax(x, out=out)
    assert torch.equal(out, softmaxlib.softmax(x))


@pytest.mark.parametrize(("make_out", "error", "match"), [
    (lambda torch, x: torch.empty(4, 5, dtype=torch.float64), RuntimeError, "dtype"),
    (lambda torch, x: np.empty((4, 5), np.float32), TypeError, "torch.Tensor"),
    (lambda torch, x: x[1:], RuntimeError, "single memory location"),
    (lambda torch, x: torch.empty(4, 5, requires_grad=True), RuntimeError, "automatic differentiation"),
])
def test_torch_out_refused_as_torch_refuses_it(make_out, error, match):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(_x((4, 5)))
    before = x.clone()
    with pytest.raises(error, match=match):
        softmaxlib.softmax(x, out=make_out(torch, x))
    assert torch.equal(x, before), "nothing is written before the refusal"
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        softmaxlib.softmax(x.clone().requires_grad_(), out=torch.empty(4, 5))
    with torch.no_grad():
        y = softmaxlib.softmax(x.clone().requires_grad_(), out=torch.empty(4, 5))
    assert torch.equal(y, softmaxlib.softmax(x))


def test_other_libraries_refuse_out():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="NumPy arrays and torch tensors only"):
        softmaxlib.log_softmax(da.ones((2, 3)), out=np.empty((2, 3)))
