"""The CuPy fast path (softmaxlib/_backends/cupy_cuda.py, softmaxlib/_cuda/softmax.cu).

* ``test_cuda_source_compiles``: runs wherever ``nvcc`` is (CI has no GPU): the
  source is compiled for sm_80 with every template instantiation the module asks
  NVRTC for, warnings as errors.
* The rest needs CuPy and a CUDA device and is skipped with the reason otherwise.
  The conformance suite runs the "cupy" case of tests/backends.py on its own.
"""

import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import softmaxlib
from softmaxlib._backends import cupy_cuda, reference_only

ARCH = "sm_80"


def _nvcc_command(src, out):
    return ["nvcc", f"-arch={ARCH}", "-std=c++17", "-Werror", "all-warnings", "-Xptxas", "-v",
            "-c", str(src), "-o", str(out)]


def test_cuda_source_compiles(tmp_path):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not found on PATH: the CUDA source cannot be compiled here")
    source = pathlib.Path(cupy_cuda.__file__).parents[1] / "_cuda" / "softmax.cu"
    assert source.read_text() == cupy_cuda.source()
    # Taking each kernel's address instantiates it, as NVRTC's name expressions do.
    wrapper = tmp_path / "instantiate.cu"
    names = cupy_cuda.kernel_names()
    wrapper.write_text(f'#include "{source}"\n'
                       "void* softmaxlib_kernels[] = {\n"
                       + "".join(f"  (void*)&{name},\n" for name in names) + "};\n")
    result = subprocess.run(_nvcc_command(wrapper, tmp_path / "instantiate.o"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    # ptxas -v reports one "Compiling entry function" per kernel.
    assert result.stderr.count("Compiling entry function") == len(names), result.stderr


def test_module_imports_without_cupy():
    info = cupy_cuda.info()
    assert set(info) >= {"available"}
    if cupy_cuda.cupy is None:
        assert cupy_cuda.compute("softmax", np.ones(3), (0,), None, "auto") is NotImplemented


def test_collapse():
    # (2, 3, 4) C-contiguous, all axes: one dimension.
    assert cupy_cuda._collapse((2, 3, 4), [[12, 4, 1]]) == ([24], [[1]])
    # a transposed pair does not collapse; size-1 dimensions vanish.
    assert cupy_cuda._collapse((4, 1, 3), [[1, 7, 4]]) == ([4, 3], [[1, 4]])
    # a broadcast mask (stride 0) collapses with it when both do.
    assert cupy_cuda._collapse((2, 3), [[3, 1], [0, 0]]) == ([6], [[1], [0]])
    assert cupy_cuda._collapse((2, 3), [[3, 1], [1, 0]]) == ([2, 3], [[3, 1], [1, 0]])


# --------------------------------------------------------------------------- on a GPU


def _gpu_missing():
    if cupy_cuda.cupy is None:
        return "CuPy is not installed"
    info = cupy_cuda.info()
    return None if info["available"] else f"no CUDA device: {info['reason']}"


gpu = pytest.mark.skipif(_gpu_missing() is not None, reason=str(_gpu_missing()))

OPS = {"softmax": softmaxlib.softmax, "log_softmax": softmaxlib.log_softmax,
       "logsumexp": softmaxlib.logsumexp}
ALGORITHMS = ("auto", "three-pass", "three-pass-reload", "online", "two-pass")
DTYPES = ("float16", "float32", "float64")
TOL = {"float16": (2e-3, 2e-3), "float32": (2e-6, 2e-6), "float64": (1e-13, 1e-13)}


def _check(op, x, *, axis=-1, where=None, algorithm="auto"):
    import cupy

    xd = cupy.asarray(x)
    wd = None if where is None else cupy.asarray(where)
    got = OPS[op](xd, axis=axis, where=wd, algorithm=algorithm)
    assert isinstance(got, cupy.ndarray) and got.dtype == xd.dtype
    with reference_only():
        want = OPS[op](x, axis=axis, where=where, algorithm="three-pass")
    assert got.shape == want.shape
    rtol, atol = TOL[str(x.dtype)]
    np.testing.assert_allclose(cupy.asnumpy(got).astype(np.float64), want.astype(np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


@gpu
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("n", [1, 7, 128, 500, 4097, 32000, 40000, 100_000])
def test_against_reference(op, dtype, algorithm, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) * 4).astype(dtype)
    _check(op, x, algorithm=algorithm)


@gpu
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("n", [5, 300, 5000, 50_000])
def test_special_values(op, algorithm, n):
    x = np.random.default_rng(1).standard_normal((7, n)).astype(np.float32)
    x[0, n // 2] = np.nan
    x[1, :] = -np.inf
    x[2, 0] = np.inf
    x[2, n - 1] = np.inf
    x[3, :] = 3.0e38
    x[3, 0] = -3.0e38
    x[4, :] *= 1e5  # large logits: two-pass's shifted path
    x[5, 0] = -np.inf
    where = np.ones_like(x, dtype=bool)
    where[6, :] = False
    where[5, ::3] = False
    for w in (None, where):
        _check(op, x, where=w, algorithm=algorithm)


@gpu
@pytest.mark.parametrize("op", OPS)
def test_axes_strides_and_masks(op):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    where = rng.random((6, 1, 3)) > 0.3
    for axis in (0, 1, -1, (1, 2), (0, 2), (0, 1, 2, 3), None):
        _check(op, x, axis=axis)
        _check(op, x, axis=axis, where=np.broadcast_to(where, x.shape))
    _check(op, x[:, ::-2, :, 1], axis=1)
    _check(op, np.swapaxes(x, 0, 3), axis=-1)


@gpu
def test_stream_and_device():
    import cupy

    x = cupy.asarray(np.random.default_rng(3).standard_normal((64, 1000)).astype(np.float32))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        y = softmaxlib.softmax(x)
    stream.synchronize()
    assert y.device == x.device
    np.testing.assert_allclose(cupy.asnumpy(y.sum(-1)), 1.0, rtol=1e-5)
    if cupy.cuda.runtime.getDeviceCount() > 1:
        with cupy.cuda.Device(1):
            x1 = cupy.asarray(cupy.asnumpy(x))
        y1 = softmaxlib.softmax(x1)
        assert y1.device == x1.device
        np.testing.assert_allclose(cupy.asnumpy(y1), cupy.asnumpy(y), rtol=1e-6)


@gpu
def test_long_row_accuracy():
    import cupy

    x = np.random.default_rng(4).normal(0, 3, 2**24).astype(np.float32)
    y = cupy.asnumpy(softmaxlib.softmax(cupy.asarray(x), algorithm="two-pass")).astype(np.float64)
    z = np.exp(x.astype(np.float64) - x.max())
    want = z / z.sum()
    assert np.max(np.abs(y - want) / want) < 1e-6
