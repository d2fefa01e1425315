"""No hidden copies of the input on the NumPy path: the peak of NumPy's traced
allocations during a call, beyond its output, stays under 0.1x the input."""

import tracemalloc

import numpy as np
import pytest

import softmaxlib
from softmaxlib._backends import numpy_native

pytestmark = pytest.mark.skipif(not numpy_native.info()["available"], reason="native kernels not built")

N = 1 << 22  # 16 MiB of float32: a copy of the input shows plainly


def _extra_over_input(call, x, out_bytes):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del y
    return (peak - out_bytes) / (x.size * x.itemsize)


def _inputs(tmp_path):
    rng = np.random.default_rng(0)
    strided = rng.standard_normal((2, 2 * N), dtype=np.float32)[:, ::4]
    fortran = np.asfortranarray(rng.standard_normal((1024, N // 1024), dtype=np.float32))
    path = tmp_path / "x.bin"
    rng.standard_normal(N, dtype=np.float32).tofile(path)
    memmap = np.memmap(path, dtype=np.float32, mode="r", shape=(N,))
    big_endian = rng.standard_normal(N, dtype=np.float32).astype(">f4")
    return {
        "big-endian '>f4', softmax": (lambda: softmaxlib.softmax(big_endian), big_endian, big_endian.size * 4),
        "strided rows, softmax": (lambda: softmaxlib.softmax(strided), strided, strided.size * 4),
        "Fortran order, axis=None, log_softmax": (lambda: softmaxlib.log_softmax(fortran, axis=None), fortran,
                                                  fortran.size * 4),
        "np.memmap, logsumexp": (lambda: softmaxlib.logsumexp(memmap), memmap, 0),
        "np.memmap, softmax": (lambda: softmaxlib.softmax(memmap), memmap, memmap.size * 4),
    }


@pytest.mark.parametrize("name", ["big-endian '>f4', softmax", "strided rows, softmax", "Fortran order, axis=None, log_softmax",
                                  "np.memmap, logsumexp", "np.memmap, softmax"])
def test_no_copy_of_the_input(tmp_path, name):
    call, x, out_bytes = _inputs(tmp_path)[name]
    extra = _extra_over_input(call, x, out_bytes)
    assert extra <= 0.1, f"{name}: {extra:.2f}x the input beyond the output"


def test_memmap_gives_a_plain_array_with_the_same_bits(tmp_path):
    x = np.random.default_rng(1).standard_normal((64, 300), dtype=np.float32)
    path = tmp_path / "m.bin"
    x.tofile(path)
    m = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    for function in (softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.logsumexp):
        y = function(m)
        assert type(y) is np.ndarray
        assert y.tobytes() == function(x).tobytes()


@pytest.mark.parametrize("function", [softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.logsumexp,
                                      softmaxlib.stablemax, softmaxlib.log_stablemax], ids=lambda f: f.__name__)
def test_other_byte_order_gives_the_same_values_in_its_dtype(function):
    x = np.random.default_rng(2).standard_normal((5, 301))
    x[1, 3] = np.inf
    for dtype in (">f4", ">f8", ">f2"):
        swapped, native = x.astype(dtype), x.astype(np.dtype(dtype).newbyteorder("="))
        where = native > -1
        with np.errstate(all="ignore"):
            y, expected = function(swapped, where=where), function(native, where=where)
        assert y.dtype == swapped.dtype
        assert y.astype(expected.dtype).tobytes() == expected.tobytes()
    out = np.empty(x.shape, ">f4")
    if function is not softmaxlib.logsumexp:
        assert function(x.astype(">f4"), out=out) is out
        assert out.astype("<f4").tobytes() == function(x.astype("<f4")).tobytes()


@pytest.mark.parametrize("function", [softmaxlib.softmax, softmaxlib.log_softmax, softmaxlib.log_stablemax],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("layout", ["Fortran order", "every other element", "in place, transposed"])
def test_strided_out_is_written_without_a_temporary(function, layout):
    x = np.random.default_rng(3).standard_normal((N // 1024, 1024), dtype=np.float32)
    expected = function(x)
    if layout == "Fortran order":
        out = np.empty((1024, N // 1024), np.float32).T
    elif layout == "every other element":
        out = np.empty((N // 1024, 2048), np.float32)[:, ::2]
    else:
        x = np.ascontiguousarray(x.T).T  # x itself strided, written in place
        out = x
    extra = _extra_over_input(lambda: function(x, out=out), x, 0)
    assert extra <= 0.1, f"{layout}: {extra:.2f}x the input"
    assert out.tobytes() == expected.tobytes()
