"""The CuPy fast path: softmaxlib's own CUDA kernels (``softmaxlib/_cuda/softmax.cu``).

The source is compiled at run time by NVRTC through ``cupy.RawModule`` (once per
process and device, cached by CuPy on disk), so nothing is built at install time.

``compute`` is a thin shell around the kernels:

* Layout.  The reduced axes are moved last *as a view* (no copy); they must then
  collapse to a single element stride, and the batch axes to at most four
  dimensions (jointly for ``x`` and ``where``): a transposed or sliced array runs
  in place, with its strides passed to the kernel.  Only when that fails (reduced
  axes that are not a single stride apart, e.g. ``axis=(0, 2)`` of a 3-d array,
  or more than four irreducible batch dimensions) is the view copied to a
  C-contiguous array first.  The output is written C-contiguous in the
  (batch axes, reduced axes) order and returned as a view in ``x``'s axis order;
  for the reduced axes last (the common case) that is a plain C-contiguous array.
* Kernels.  A row of up to 32768 entries (float32 and the half types; 8192 in
  float64) is read once into registers by one warp (up to 512 entries) or one
  block, reduced with warp shuffles and written once (1 read, 1 write).  Longer
  rows are cut into chunks across blocks: pass 1 writes one accumulator per
  chunk, a small merge kernel reduces each row's accumulators, pass 2 writes the
  result (2 reads, 1 write; logsumexp reads once).
* Algorithms.  "two-pass" runs Dukhan & Ablavatski's exponent-tracking sum
  (v, e); "online", "three-pass" and "three-pass-reload" run the max-based
  online normaliser (m, d) (on a GPU the three max-based variants differ only in
  how often they would read memory, and the kernels read it at most twice
  whichever is asked). "auto": online for rows in registers, two-pass for long rows.
* Stream and device: the kernels run on CuPy's current stream, on ``x``'s device
  (made current for the call); the output is allocated there.

If CuPy cannot be imported this module still imports: ``compute`` returns
``NotImplemented`` (the reference runs), and ``info()`` says why.
"""

import functools
import importlib.resources
import math

try:
    import cupy
except ImportError as exc:  # pragma: no cover - depends on the machine
    cupy = None
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _IMPORT_ERROR = None

import numpy as np

#: The CUDA kernels' own codes (softmaxlib/_cuda/softmax.cu), apart from the CPU
#: extension's (this path must not need it): op, and the two accumulators the
#: kernels know, to which the four algorithm names map.
CUDA_OPS = {"softmax": 0, "log_softmax": 1, "logsumexp": 2}
ALG_MAX_BASED, ALG_TWO_PASS = 0, 1
CUDA_ALGORITHMS = {"three-pass": ALG_MAX_BASED, "three-pass-reload": ALG_MAX_BASED,
                   "online": ALG_MAX_BASED, "two-pass": ALG_TWO_PASS}

#: dtype name -> (C++ storage type, compute type is double?)
_TYPES = {"float32": ("float", False), "float64": ("double", True),
          "float16": ("half_t", False), "bfloat16": ("bfloat16_t", False)}

#: Sizes of the kernels' Acc<float> / Acc<double> (static_assert'ed in softmax.cu).
_ACC_BYTES = {False: 20, True: 32}

#: Row-in-registers configurations, tried in order: (max row, items per thread, warp?).
#: A warp per row up to 512 entries; then a block of up to 1024 threads.
_CACHED = {
    False: ((128, 4, True), (512, 16, True), (8192, 8, False), (32768, 32, False)),
    True: ((128, 4, True), (256, 8, True), (8192, 8, False)),
}
#: Threads per block of the warp-per-row kernels (8 rows per block).
_WARP_BLOCK = 256
#: Long rows: threads per block, and entries per chunk (one block per chunk).
_LONG_THREADS = 512
_LONG_CHUNK = 8192
_MAX_BATCH_DIMS = 4


def kernel_names():
    """Every kernel instantiation the module uses (NVRTC name expressions)."""
    names = []
    for ctype, is_double in _TYPES.values():
        for _, items, warp in _CACHED[is_double]:
            for alg in (ALG_MAX_BASED, ALG_TWO_PASS):
                names.append(f"softmax_cached<{ctype}, {items}, {'true' if warp else 'false'}, {alg}>")
        names += [f"softmax_partial<{ctype}>", f"softmax_merge<{ctype}>", f"softmax_finalize<{ctype}>"]
    return names


def source():
    """The CUDA source text (shipped in the wheel as package data)."""
    return importlib.resources.files("softmaxlib._cuda").joinpath("softmax.cu").read_text()


#: NVRTC options: C++17 (static_assert, if constexpr-free code is enough for 11).
NVRTC_OPTIONS = ("--std=c++17",)


@functools.cache
def _module(device_id):
    # One RawModule per device: CuPy compiles (or loads from its cache) on first use.
    del device_id
    return cupy.RawModule(code=source(), options=NVRTC_OPTIONS, name_expressions=kernel_names())


def _kernel(name):
    return _module(cupy.cuda.Device().id).get_function(name)


def _dtype_name(dtype):
    return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]


def _collapse(shape, strides_list):
    """Merge adjacent dimensions that are contiguous in every array of ``strides_list``.

    Returns (shape, [strides...]) with size-1 dimensions dropped.
    """
    dims = [(s, [st[i] for st in strides_list]) for i, s in enumerate(shape) if s != 1]
    out = []
    for size, strides in dims:
        if out:
            psize, pstrides = out[-1]
            if all(ps == st * size for ps, st in zip(pstrides, strides)):
                out[-1] = (psize * size, strides)
                continue
        out.append((size, strides))
    return [d[0] for d in out], [[d[1][k] for d in out] for k in range(len(strides_list))]


def _layout(xv, wv, nbatch):
    """Collapsed batch dims and the single row stride of the views, or None."""
    arrays = [xv] if wv is None else [xv, wv]
    elem = [[s // a.itemsize for s in a.strides] for a in arrays]
    rshape, rstrides = _collapse(xv.shape[nbatch:], [e[nbatch:] for e in elem])
    bshape, bstrides = _collapse(xv.shape[:nbatch], [e[:nbatch] for e in elem])
    if len(rshape) > 1 or len(bshape) > _MAX_BATCH_DIMS:
        return None
    row_strides = rstrides[0] if rshape else [1] * len(arrays)
    return bshape, bstrides, row_strides


def compute(op, x, axes, where, algorithm, temperature=None):
    """Compute ``op`` over ``axes`` of the CuPy array ``x`` with the CUDA kernels.

    Parameters follow :func:`softmaxlib._reference.compute` without ``xp``.  Returns
    the result on ``x``'s device (softmax/log_softmax: ``x.shape``; logsumexp: the
    axes removed) in ``x.dtype``, or ``NotImplemented`` for what it does not handle.
    """
    if cupy is None or not isinstance(x, cupy.ndarray) or op not in CUDA_OPS or temperature is not None:
        return NotImplemented
    entry = _TYPES.get(_dtype_name(x.dtype))
    if entry is None or x.size == 0 or x.ndim == 0 or not axes:
        return NotImplemented
    if algorithm != "auto" and algorithm not in CUDA_ALGORITHMS:
        return NotImplemented
    if where is not None:
        if not isinstance(where, cupy.ndarray):
            return NotImplemented
        if where.dtype != cupy.bool_ or where.shape != x.shape:
            where = cupy.broadcast_to(where.astype(cupy.bool_, copy=False), x.shape)
    with x.device:
        return _compute(op, x, axes, where, algorithm, entry)


def _compute(op, x, axes, where, algorithm, entry):
    ctype, is_double = entry
    batch_axes = tuple(a for a in range(x.ndim) if a not in axes)
    perm = batch_axes + tuple(axes)
    batch_shape = tuple(x.shape[a] for a in batch_axes)
    red_shape = tuple(x.shape[a] for a in axes)
    rows, n = math.prod(batch_shape), math.prod(red_shape)
    xv = x.transpose(perm)
    wv = None if where is None else where.transpose(perm)
    layout = _layout(xv, wv, len(batch_axes))
    if layout is None:
        # Documented copy: the rows are not a single stride apart (or too many batch dims).
        xv = cupy.ascontiguousarray(xv)
        wv = None if wv is None else cupy.ascontiguousarray(wv)
        layout = _layout(xv, wv, len(batch_axes))
    bshape, bstrides, row_strides = layout
    pad = _MAX_BATCH_DIMS - len(bshape)
    bshape = [1] * pad + bshape
    xb = [0] * pad + bstrides[0]
    mb = [0] * pad + bstrides[1] if wv is not None else [0] * _MAX_BATCH_DIMS

    out_shape = batch_shape if op == "logsumexp" else batch_shape + (n,)
    y = cupy.empty(out_shape, dtype=x.dtype)
    alg = _choose(algorithm, n, is_double)
    i64 = np.int64
    args = (
        xv, x if wv is None else wv, y,
        i64(rows), i64(n), i64(row_strides[0]), i64(row_strides[1] if wv is not None else 0),
        np.int32(wv is not None),
        i64(bshape[1]), i64(bshape[2]), i64(bshape[3]),
        *(i64(s) for s in xb), *(i64(s) for s in mb),
        np.int32(CUDA_OPS[op]), np.int32(alg),
    )
    cached = _cached_config(n, is_double)
    if cached is not None:
        items, warp = cached
        name = f"softmax_cached<{ctype}, {items}, {'true' if warp else 'false'}, {alg}>"
        if warp:
            rows_per_block = _WARP_BLOCK // 32
            grid, block = -(-rows // rows_per_block), _WARP_BLOCK
        else:
            grid, block = rows, max(64, min(1024, 32 * -(-n // (items * 32))))
        _kernel(name)((grid,), (block,), args)
    else:
        _long_rows(ctype, is_double, args, rows, n, alg, op, y)
    if op == "logsumexp":
        return y
    y = y.reshape(batch_shape + red_shape)
    inverse = tuple(perm.index(a) for a in range(x.ndim))
    return y.transpose(inverse)


def _choose(algorithm, n, is_double):
    if algorithm == "auto":
        return ALG_MAX_BASED if _cached_config(n, is_double) is not None else ALG_TWO_PASS
    return CUDA_ALGORITHMS[algorithm]


def _cached_config(n, is_double):
    for limit, items, warp in _CACHED[is_double]:
        if n <= limit:
            return items, warp
    return None


def _long_rows(ctype, is_double, args, rows, n, alg, op, y):
    chunk = _LONG_CHUNK
    nchunks = -(-n // chunk)
    acc = _ACC_BYTES[is_double]
    partial = cupy.empty(rows * nchunks * acc, dtype=cupy.uint8)
    row_acc = cupy.empty(rows * acc, dtype=cupy.uint8)
    i64 = np.int64
    blocks = rows * nchunks
    partial_k = _kernel(f"softmax_partial<{ctype}>")
    merge_k = _kernel(f"softmax_merge<{ctype}>")
    threads = _LONG_THREADS
    merge_threads = min(1024, max(32, 32 * -(-nchunks // 32)))
    merge_args = (partial, row_acc, y, i64(rows), i64(nchunks), np.int32(CUDA_OPS[op]), np.int32(alg))
    partial_k((blocks,), (threads,), (*args, i64(chunk), i64(nchunks), partial, row_acc, np.int32(0)))
    merge_k((rows,), (merge_threads,), merge_args)
    if alg == ALG_TWO_PASS:
        # Rows whose max has |max| >= T are summed again, shifted by it (the others
        # return at once), then merged again: two short launches, no host sync.
        partial_k((blocks,), (threads,), (*args, i64(chunk), i64(nchunks), partial, row_acc, np.int32(1)))
        merge_k((rows,), (merge_threads,), merge_args)
    if op != "logsumexp":
        finalize_k = _kernel(f"softmax_finalize<{ctype}>")
        finalize_k((blocks,), (threads,), (*args, i64(chunk), i64(nchunks), row_acc))


def info():
    """What the CuPy path can do on this machine, as a dict."""
    if cupy is None:
        return {"available": False, "reason": _IMPORT_ERROR}
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    if not count:
        return {"available": False, "reason": "no CUDA device"}
    return {"available": True, "devices": count, "cupy": cupy.__version__, "kernels": kernel_names()}
