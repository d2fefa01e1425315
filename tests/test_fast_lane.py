"""The common NumPy call's short lane (``numpy_native.softmax_lane`` and the like, in
C++): the same result and the same errors as the full path, which ``xp=`` (or any
other option) takes."""

import numpy as np
import pytest

import softmaxlib
from softmaxlib._backends import numpy_native

pytestmark = pytest.mark.skipif(not numpy_native.info()["available"], reason="native kernels not built")


@pytest.mark.parametrize("function", [softmaxlib.softmax, softmaxlib.log_softmax], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((1, 8), -1), ((3, 1000), 1), ((40, 3), 0), ((2, 3, 4), -2),
                                             ((5, 6), None), ((7,), 0)])
def test_same_bits_as_the_full_path(function, dtype, shape, axis):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype) * 4
    if x.size > 20:  # rows with +inf entries too
        x.reshape(-1)[::7] = np.inf
    for algorithm in softmaxlib.ALGORITHMS:
        with np.errstate(all="ignore"):
            full = function(x, axis=axis, algorithm=algorithm, xp=np)
            lane = function(x, axis=axis, algorithm=algorithm)
            out = np.empty_like(x)
            assert function(x, axis=axis, algorithm=algorithm, out=out) is out
        assert lane.tobytes() == full.tobytes() == out.tobytes()
        assert lane.dtype == full.dtype and lane.shape == full.shape


def test_the_lane_skips_the_full_path(monkeypatch):
    # With the full path's native entry broken, the common call still runs: it never went there.
    def broken(*args, **kwargs):
        raise AssertionError("the full path ran")

    monkeypatch.setattr(numpy_native, "compute", broken)
    x = np.float32([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(softmaxlib.softmax(x), [[0.09003057, 0.24472847, 0.66524096]], rtol=1e-6)
    with pytest.raises(AssertionError, match="full path ran"):
        softmaxlib.softmax(x, where=np.ones(3, bool))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"axis": True}, TypeError), ({"axis": 2}, (ValueError, IndexError)), ({"axis": 1.0}, TypeError),
     ({"algorithm": "fast"}, ValueError), ({"out": np.empty((2, 3), np.float64)}, ValueError)],
    ids=str,
)
def test_the_full_path_errors_stay(kwargs, error):
    x = np.ones((2, 3), np.float32)
    with pytest.raises(error):
        softmaxlib.softmax(x, **kwargs)
    with pytest.raises(error):
        softmaxlib.softmax(x, xp=np, **kwargs)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_reference_only_is_honoured(monkeypatch, name):
    x = np.float32([[0.0, 1.0]])

    def broken(*args, **kwargs):
        raise AssertionError("native ran under reference_only")

    monkeypatch.setattr(numpy_native, f"{name}_lane", broken)
    monkeypatch.setattr(numpy_native, "compute", broken)
    with pytest.raises(AssertionError, match="native ran"):  # the spy is in the call path
        getattr(softmaxlib, name)(x)
    with softmaxlib._backends.reference_only():
        getattr(softmaxlib, name)(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((1, 8), -1), ((3, 1000), 1), ((40, 3), 0), ((2, 3, 4), -2),
                                             ((5, 6), None), ((7,), 0), ((4, 1, 5), 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_same_bits_as_the_full_path(dtype, shape, axis, keepdims):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype) * 4
    for algorithm in softmaxlib.ALGORITHMS:
        full = softmaxlib.logsumexp(x, axis=axis, keepdims=keepdims, algorithm=algorithm, xp=np)
        lane = numpy_native.logsumexp_lane(x, axis, algorithm, keepdims)
        assert lane is not NotImplemented
        assert type(lane) is type(full) is np.ndarray
        assert lane.shape == full.shape and lane.dtype == full.dtype
        assert lane.tobytes() == full.tobytes()
    np.testing.assert_allclose(lane, np.log(np.sum(np.exp(x.astype(np.float64)), axis=axis, keepdims=keepdims)),
                               rtol=2e-6 if dtype == np.float32 else 1e-13)


def _views():
    """Layouts of a 6x10 float32 array: the lane's contiguous rows and the strided walk."""
    base = np.random.default_rng(2).standard_normal((12, 20)).astype(np.float32) * 3
    return {
        "c": base[:6, :10].copy(),
        "row-slice": base[:6, :10],
        "every-other-row": base[::2, :10],
        "reversed-rows": base[5::-1, :10],
        "transposed": base[:10, :6].T,
        "every-other-column": base[:6, ::2],
        "3d-split-batch": base.reshape(3, 4, 20)[:, ::2, :10],
    }


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("view", list(_views()))
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_every_layout_against_the_oracle(name, view, axis):
    x = _views()[view]
    lane = getattr(numpy_native, f"{name}_lane")(x, axis, "auto", False if name == "logsumexp" else None)
    assert lane is not NotImplemented and lane.flags.c_contiguous
    full = getattr(softmaxlib, name)(x, axis=axis, xp=np)
    assert lane.tobytes() == full.tobytes()
    # float64 oracle, the contract's float32 tolerance.
    x64 = x.astype(np.float64)
    lse = np.log(np.sum(np.exp(x64 - x64.max(axis=axis, keepdims=True)), axis=axis, keepdims=True))
    lse += x64.max(axis=axis, keepdims=True)
    want = {"softmax": np.exp(x64 - lse), "log_softmax": x64 - lse, "logsumexp": np.squeeze(lse, axis=axis)}[name]
    np.testing.assert_allclose(lane, want, rtol=1e-6 * 4, atol=1e-6 * 4)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: numpy_native.softmax_lane(x, True, "auto", None),  # a bool axis: the full path's TypeError
        lambda x: numpy_native.softmax_lane(x, np.int64(1), "auto", None),  # a NumPy integer axis
        lambda x: numpy_native.softmax_lane(x, (1,), "auto", None),
        lambda x: numpy_native.softmax_lane(x, 2, "auto", None),
        lambda x: numpy_native.softmax_lane(x, 1 << 70, "auto", None),
        lambda x: numpy_native.softmax_lane(x, -1, "fast", None),
        lambda x: numpy_native.softmax_lane(x, -1, b"auto", None),
        lambda x: numpy_native.softmax_lane(x.astype(np.float16), -1, "auto", None),
        lambda x: numpy_native.softmax_lane(x.astype(">f4"), -1, "auto", None),
        lambda x: numpy_native.softmax_lane(x.view(np.ndarray)[:0], -1, "auto", None),
        lambda x: numpy_native.softmax_lane(x[0, 0][()], -1, "auto", None),  # a NumPy scalar
        lambda x: numpy_native.softmax_lane(np.array(1.0), None, "auto", None),  # 0-d
        lambda x: numpy_native.softmax_lane(np.ma.masked_array(x), -1, "auto", None),
        lambda x: numpy_native.softmax_lane(x.tolist(), -1, "auto", None),
        lambda x: numpy_native.softmax_lane(x, -1, "auto", np.empty_like(x, dtype=np.float64)),
        lambda x: numpy_native.softmax_lane(x, -1, "auto", np.empty((3, 2), np.float32)),
        lambda x: numpy_native.softmax_lane(x, -1, "auto", np.empty((3, 4), np.float32)[:, :3]),  # strided
        lambda x: numpy_native.softmax_lane(x, -1, "auto", x[:, ::-1]),  # overlaps x without being it
        lambda x: numpy_native.softmax_lane(x, -1, "auto", x.copy().view(np.matrix)),
        lambda x: numpy_native.softmax_lane(x, -1, "auto", np.broadcast_to(np.float32(0), x.shape)),  # read-only
        lambda x: numpy_native.logsumexp_lane(x, -1, "auto", 1),  # keepdims other than True/False
    ],
)
def test_the_lane_leaves_every_other_call_to_the_full_path(call):
    x = np.ones((2, 3), np.float32)
    assert call(x) is NotImplemented


def test_out_in_place_and_apart():
    x = np.random.default_rng(3).standard_normal((4, 9)).astype(np.float32)
    want = softmaxlib.softmax(x, xp=np)
    out = np.empty_like(x)
    assert numpy_native.softmax_lane(x, -1, "auto", out) is out
    assert out.tobytes() == want.tobytes()
    # Right after x in one buffer: apart, though the buffers touch.
    both = np.empty((8, 9), np.float32)
    both[:4] = x
    after = both[4:]
    assert numpy_native.softmax_lane(both[:4], -1, "auto", after) is after
    assert after.tobytes() == want.tobytes()
    y = x.copy()
    assert numpy_native.softmax_lane(y, -1, "auto", y) is y
    assert y.tobytes() == want.tobytes()
