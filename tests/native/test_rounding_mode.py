"""The kernels round to nearest whatever rounding mode the caller has set.

The mode is set with libc's fesetround through ctypes (x86-64 glibc's values) and
restored afterwards; every op and algorithm, on every ISA unit, must stay within the
oracle's usual tolerances, give the very bits it gives in round-to-nearest, and leave
the caller's mode as it was.
"""

import contextlib
import ctypes
import ctypes.util
import platform

import numpy as np
import pytest

import softmaxlib
from softmaxlib import _native_loader
from tests.oracle import check

if platform.machine() not in ("x86_64", "AMD64") or ctypes.util.find_library("m") is None:
    pytest.skip("the FE_* values below are x86-64 glibc's", allow_module_level=True)

LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
MODES = {"downward": 0x400, "upward": 0x800, "toward-zero": 0xC00, "nearest": 0}
OPS = {"softmax": softmaxlib.softmax, "log_softmax": softmaxlib.log_softmax, "logsumexp": softmaxlib.logsumexp}


@contextlib.contextmanager
def rounding(mode):
    before = LIBM.fegetround()
    assert LIBM.fesetround(MODES[mode]) == 0
    try:
        yield
        assert LIBM.fegetround() == MODES[mode], "the call changed the caller's rounding mode"
    finally:
        LIBM.fesetround(before)


def _rows(dtype):
    """[0, -d] for d across the exp's range (the rows that showed it), and N(0, 4) rows."""
    rng = np.random.default_rng(2)
    d = np.geomspace(1e-3, 80.0 if dtype == np.float32 else 700.0, 64)
    pairs = np.stack([np.zeros_like(d), -d], axis=-1)
    pairs = np.concatenate([pairs, np.zeros((64, 1022))], axis=-1)
    pairs[:, 2:] = -np.inf
    return [pairs.astype(dtype), rng.normal(0.0, 4.0, size=(16, 1000)).astype(dtype)]


def _in_mode(mode, function, x, **kwargs):
    with rounding(mode):
        return np.asarray(function(x, **kwargs))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("algorithm", softmaxlib.ALGORITHMS)
def test_every_op_in_every_mode(isa, mode, dtype, algorithm):
    """Within the oracle's tolerances, and bit for bit the results of round-to-nearest."""
    dtype_name = np.dtype(dtype).name
    for x in _rows(dtype):
        for op, function in OPS.items():
            y = _in_mode(mode, function, x, algorithm=algorithm)
            check(op, y.astype(np.float64), x.astype(np.float64), (1,), None, dtype_name)
            np.testing.assert_array_equal(y, function(x, algorithm=algorithm))
        y = _in_mode(mode, softmaxlib.softmax, x, algorithm=algorithm, temperature=0.7)
        check("softmax", y.astype(np.float64), x.astype(np.float64), (1,), None, dtype_name, 0.7)
        np.testing.assert_array_equal(y, softmaxlib.softmax(x, algorithm=algorithm, temperature=0.7))


@pytest.mark.parametrize("mode", MODES)
def test_long_row_on_the_pool_threads(isa, mode, threads):
    """A row long enough that its chunks run on the pool's workers."""
    threads(2)
    x = np.random.default_rng(3).normal(0.0, 4.0, size=(1, 2**20)).astype(np.float32)
    for algorithm in softmaxlib.ALGORITHMS:
        y = _in_mode(mode, softmaxlib.softmax, x, algorithm=algorithm)
        check("softmax", y.astype(np.float64), x.astype(np.float64), (1,), None, "float32")
        np.testing.assert_array_equal(y, softmaxlib.softmax(x, algorithm=algorithm))


@pytest.mark.parametrize("mode", MODES)
def test_exp_itself(isa, mode):
    """The kernels' exp (the test-only bindings): bit for bit its round-to-nearest results."""
    kernels = _native_loader.kernels
    x = np.linspace(-700.0, 700.0, 200_001)
    x32 = x[np.abs(x) < 87].astype(np.float32)
    for function, values in ((kernels._exp_f64, x), (kernels._exp_f32, x32)):
        np.testing.assert_array_equal(_in_mode(mode, function, values), function(values))
