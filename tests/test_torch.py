"""The PyTorch fast path (softmaxlib._backends.torch_native): its routes, autograd,
torch.compile and torch.func.  Its values are checked by the conformance suite
(cases "torch" and "torch-custom-op" in tests/backends.py)."""

import numpy as np
import pytest

import softmaxlib
from softmaxlib import _native_loader as native

torch = pytest.importorskip("torch")
from softmaxlib._backends import generic, torch_native  # noqa: E402

pytestmark = pytest.mark.skipif(native.kernels is None, reason="the native extension is not built")

OPS = {"softmax": softmaxlib.softmax, "log_softmax": softmaxlib.log_softmax, "logsumexp": softmaxlib.logsumexp}
TORCH_OPS = {
    "softmax": lambda x, axis: torch.softmax(x, axis),
    "log_softmax": lambda x, axis: torch.log_softmax(x, axis),
    "logsumexp": lambda x, axis: torch.logsumexp(x, axis),
}


@pytest.fixture
def no_generic(monkeypatch):
    """Fail any call that would leave the native kernels for the generic path."""

    def refuse(*args, **kwargs):
        raise AssertionError("the generic path ran")

    monkeypatch.setattr(generic, "compute", refuse)


def _x(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("requires_grad", [False, True], ids=["direct", "custom-op"])
def test_kernels_run_on_views(no_generic, op, dtype, requires_grad):
    """Transposed and strided views run natively on both routes; the result has the
    input's dtype and device and matches torch's own op in float64."""
    base = _x(6, 40, dtype=dtype)
    for x, axis in ((base, -1), (base.T, 0), (base[::2, 1::3], 1)):
        x = x.detach().requires_grad_(requires_grad)
        y = OPS[op](x, axis=axis)
        assert y.dtype == dtype and y.device == x.device
        assert (y.grad_fn is not None) == requires_grad
        expected = TORCH_OPS[op](x.detach().double(), axis)
        tol = 1e-12 if dtype == torch.float64 else (1e-5 if dtype == torch.float32 else 2e-2)
        torch.testing.assert_close(y.detach().double(), expected, rtol=tol, atol=tol)


def test_family_runs_natively(no_generic):
    x = _x(5, 9).T
    torch.testing.assert_close(softmaxlib.stablemax(x, axis=0).sum(0), torch.ones(5))
    values, indices = softmaxlib.softmax_topk(x, 3, axis=0)
    expected = torch.topk(torch.softmax(x, 0), 3, dim=0)
    torch.testing.assert_close(values, expected.values)
    assert torch.equal(indices, expected.indices)
    y = softmaxlib.softmax(x, axis=0, temperature="adaptive")
    torch.testing.assert_close(y.sum(0), torch.ones(5))


@pytest.mark.parametrize("route", ["short lane", "full path"])
def test_threads_follow_torch(monkeypatch, route):
    """torch.set_num_threads(1) means one thread, unless softmaxlib's own count was set."""
    seen = []
    name, where = ("softmax_lane", None) if route == "short lane" else ("compute", torch.ones(8, dtype=torch.bool))
    kernel = getattr(torch_native.numpy_native, name)

    def spy(*args, **kwargs):
        seen.append(native.get_num_threads())
        return kernel(*args, **kwargs)

    monkeypatch.setattr(torch_native.numpy_native, name, spy)
    monkeypatch.setattr(native, "threads_given", False)
    before, torch_threads = native.get_num_threads(), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        softmaxlib.softmax(_x(4, 8), where=where)
        monkeypatch.setattr(native, "threads_given", True)
        native.kernels.set_num_threads(2)
        softmaxlib.softmax(_x(4, 8), where=where)
    finally:
        torch.set_num_threads(torch_threads)
        native.kernels.set_num_threads(before)
    assert seen == [1, 2]
    assert native.get_num_threads() == before


def _double(shape, seed=0):
    return _x(*shape, dtype=torch.float64, seed=seed).requires_grad_()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("variant", ["plain", "where", "row-temperature", "scalar-temperature", "axis0"])
def test_gradcheck_and_gradgradcheck(op, variant):
    x = _double((3, 5))
    where = torch.tensor([[True, False, True, True, True]] * 3)
    t = (torch.rand(3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.5).requires_grad_()
    if variant == "plain":
        inputs, f = (x,), lambda a: OPS[op](a)
    elif variant == "where":
        inputs, f = (x,), lambda a: OPS[op](a, where=where)
    elif variant == "scalar-temperature":
        inputs, f = (x,), lambda a: OPS[op](a, temperature=0.7)
    elif variant == "axis0":
        inputs, f = (x,), lambda a: OPS[op](a, axis=0)
    else:
        inputs, f = (x, t), lambda a, temp: OPS[op](a, where=where, temperature=temp)
    if op == "log_softmax" and variant in ("where", "row-temperature"):
        # Masked entries are -inf, which finite differences cannot take (inf - inf).
        masked = f
        f = lambda *args: torch.where(where, masked(*args), 0.0)  # noqa: E731
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_log_softmax_gradient_of_a_confident_row():
    """(g - sum g) - expm1(y) sum g keeps the tiny gradient that g - exp(y) sum g
    rounds to 0 in float32 (y = -9.4e-14 there)."""
    x = torch.tensor([[30.0, 0.0]], requires_grad=True)
    (grad,) = torch.autograd.grad(softmaxlib.log_softmax(x), x, torch.tensor([[1.0, 0.0]]))
    p = 1 / (1 + np.exp(30.0))  # d log_softmax_0 / d x_0 = 1 - softmax_0 = p
    assert grad[0, 0].item() == pytest.approx(p, rel=1e-5)
    assert grad[0, 1].item() == pytest.approx(-p, rel=1e-5)


def test_topk_values_are_differentiable():
    x = _x(3, 6).requires_grad_()
    values, indices = softmaxlib.softmax_topk(x, 2)
    (grad,) = torch.autograd.grad(values.sum(), x)
    xr = x.detach().requires_grad_()
    expected = torch.autograd.grad(torch.topk(torch.softmax(xr, -1), 2).values.sum(), xr)[0]
    torch.testing.assert_close(grad, expected)
    assert not indices.requires_grad


@pytest.mark.parametrize("op", OPS)
def test_opcheck(op):
    x = _x(4, 6)
    rows = torch.rand(4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.5
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(3)) > 0.3
    cases = [
        (x, [1], None, None, None),
        (x.T.contiguous().T, [1], None, None, None),  # a transposed layout
        (x.T, [0], None, None, None),
        (x, [1], mask, None, None),
        (x.double(), [1], mask, None, rows),
        (x, [0, 1], None, 0.5, None),
    ]
    for a, axes, where, t_scalar, t_rows in cases:
        args = (a.detach().requires_grad_(), op, axes, where, "auto", t_scalar, t_rows)
        torch.library.opcheck(torch.ops.softmaxlib.compute.default, args)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_fullgraph_matches_eager():
    w = _x(16, 5, seed=4)

    def f(a):
        return softmaxlib.softmax(a) @ w

    x = _x(8, 16)
    compiled = torch.compile(f, fullgraph=True)
    torch.testing.assert_close(compiled(x), f(x), rtol=1e-6, atol=1e-6)


def test_vmap_and_grad():
    x = _x(4, 7)
    torch.testing.assert_close(torch.func.vmap(softmaxlib.softmax)(x), torch.softmax(x, -1))
    torch.testing.assert_close(torch.func.vmap(softmaxlib.log_softmax, in_dims=1)(x), torch.log_softmax(x, 0).T)
    torch.testing.assert_close(torch.func.grad(lambda a: softmaxlib.logsumexp(a).sum())(x), torch.softmax(x, -1))
    per_row = torch.func.vmap(torch.func.grad(lambda r: softmaxlib.log_softmax(r)[0]))(x)
    expected = torch.func.vmap(torch.func.grad(lambda r: torch.log_softmax(r, -1)[0]))(x)
    torch.testing.assert_close(per_row, expected)


@pytest.mark.parametrize("op", OPS)
def test_native_backward_matches_the_torch_op_formulas(monkeypatch, op):
    """A first-order backward runs the native kernels (transposed, masked, per-row
    temperature); with create_graph the torch-op formulas run: both agree."""
    from softmaxlib._backends import numpy_backward

    calls = []
    kernel = numpy_backward.backward
    monkeypatch.setattr(numpy_backward, "backward", lambda *a, **k: calls.append(a[0]) or kernel(*a, **k))
    x = _x(5, 9, dtype=torch.float64).T.requires_grad_()
    t = (torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) + 0.5).requires_grad_()
    where = (torch.rand(5, 9, generator=torch.Generator().manual_seed(6)) > 0.3).T
    y = OPS[op](x, axis=0, where=where, temperature=t)
    g = _x(*y.shape, dtype=torch.float64, seed=7)
    native_grads = torch.autograd.grad(y, (x, t), g, retain_graph=True)
    assert calls == [op]
    torch_op_grads = torch.autograd.grad(y, (x, t), g, create_graph=True)
    assert calls == [op]
    for a, b in zip(native_grads, torch_op_grads):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-13)
