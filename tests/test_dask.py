"""The Dask path: rows chunked along the reduced axis, on a real dask.distributed cluster.

The conformance suite already runs on Dask arrays (tests/backends.py's "dask" case,
chunked along every axis); this module checks what only Dask has: laziness, the shape
of the graph, chunkings, and a cluster of worker processes that loses one mid-run.
"""

import os
import signal
import time

import numpy as np
import pytest

import softmaxlib
from tests.oracle import check

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """Two worker processes with nannies on loopback, one thread each."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # any free port: two test workers may start clusters at once
        silence_logs=40,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def _rows(shape=(3, 1000), seed=0):
    return np.random.default_rng(seed).normal(0, 30, size=shape).astype(np.float32)


OPS = {"softmax": softmaxlib.softmax, "log_softmax": softmaxlib.log_softmax, "logsumexp": softmaxlib.logsumexp}


def test_result_is_lazy_and_the_graph_has_one_reduction():
    x = da.from_array(_rows(), chunks=(2, 100))
    y = softmaxlib.softmax(x)
    assert isinstance(y, da.Array)
    layers = list(y.__dask_graph__().layers)
    # One tree of merges (the reduction's partial and aggregate layers), not a max
    # reduction followed by a sum reduction.
    reductions = [name.rsplit("-", 1)[0] for name in layers if name.endswith("aggregate", 0, name.rfind("-"))]
    assert reductions == ["softmaxlib-merge-aggregate"], layers
    assert not any(name.startswith(("max-", "amax-", "sum-")) for name in layers), layers


@pytest.mark.distributed
@pytest.mark.parametrize("chunks", [(3, 1000), (1, 100), (2, (1, 499, 0, 500)), (3, (7, 993))])
@pytest.mark.parametrize("op", OPS)
def test_matches_numpy_on_a_cluster(client, op, chunks):
    values = _rows()
    x = da.from_array(values, chunks=chunks)
    y = OPS[op](x).compute()
    check(op, y, values.astype(np.float64), (1,), None, "float32")


@pytest.mark.distributed
@pytest.mark.parametrize("op", OPS)
def test_special_values_in_one_chunk_reach_the_whole_row(client, op):
    values = _rows((4, 400))
    values[0, 10] = np.nan  # a NaN in the first chunk: the whole row is NaN
    values[1, 350] = np.inf  # +inf in the last chunk: it takes all the mass
    values[2, :] = -np.inf
    x = da.from_array(values, chunks=(2, 100))
    where = np.ones(400, dtype=bool)
    where[::3] = False
    for mask in (None, where):
        y = OPS[op](x, where=mask).compute()
        check(op, y, values.astype(np.float64), (1,), mask, "float32")
    if op == "softmax":  # the last mask's result
        assert np.all(y[0][~where] == 0) and np.isnan(y[0][where]).all()
        assert y[1, 350] == 1 and np.count_nonzero(y[1]) == 1


@pytest.mark.distributed
def test_tuple_axes_and_dask_mask(client):
    values = _rows((4, 6, 50))
    mask = np.random.default_rng(1).random((4, 6, 50)) < 0.8
    x = da.from_array(values, chunks=(2, 3, 20))
    y = softmaxlib.log_softmax(x, axis=(0, 2), where=da.from_array(mask, chunks=(4, 2, 25))).compute()
    check("log_softmax", y, values.astype(np.float64), (0, 2), mask, "float32")


@pytest.mark.distributed
def test_half_and_double_dtypes(client):
    import ml_dtypes

    for dtype, name in ((np.float16, "float16"), (ml_dtypes.bfloat16, "bfloat16"), (np.float64, "float64")):
        values = _rows((3, 300)).astype(dtype)
        y = softmaxlib.softmax(da.from_array(values, chunks=(2, 64))).compute()
        assert y.dtype == values.dtype
        check("softmax", y.astype(np.float64), values.astype(np.float64), (1,), None, name)


def _slow_identity(block):
    time.sleep(0.05)
    return block


@pytest.mark.distributed
def test_a_worker_killed_mid_computation_is_recovered(client):
    values = _rows((2, 2**16), seed=3)
    x = da.from_array(values, chunks=(1, 2**11)).map_blocks(_slow_identity, dtype=values.dtype)
    future = client.compute(softmaxlib.softmax(x))
    time.sleep(0.8)  # the graph takes several seconds: kill while tasks run
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)  # the nanny restarts it; Dask recomputes what it held
    y = future.result(timeout=120)
    assert not future.cancelled()
    check("softmax", y, values.astype(np.float64), (1,), None, "float32")
