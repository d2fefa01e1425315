"""The common NumPy call's short path (``_api._fast_lane``): the same result and
the same errors as the full path, which ``xp=`` (or any other option) takes."""

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


def test_reference_only_is_honoured(monkeypatch):
    x = np.float32([[0.0, 1.0]])

    def broken(*args, **kwargs):
        raise AssertionError("native ran under reference_only")

    monkeypatch.setattr(numpy_native, "compute_plain", broken)
    with softmaxlib._backends.reference_only():
        softmaxlib.softmax(x)
