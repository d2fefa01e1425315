"""Shared fixtures of the native kernel tests (softmaxlib._kernels)."""

import numpy as np
import pytest

numpy_native = pytest.importorskip("softmaxlib._backends.numpy_native")
if not numpy_native.info()["available"]:
    pytest.skip(f"native kernels not built: {numpy_native.info()['reason']}", allow_module_level=True)

ISAS = numpy_native.info()["isas_supported"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per ISA unit this CPU supports."""
    with numpy_native.forced_isa(request.param):
        yield request.param


@pytest.fixture
def threads():
    """Set the thread count inside a test; restores it afterwards."""
    before = numpy_native.get_num_threads()
    yield numpy_native.set_num_threads
    numpy_native.set_num_threads(before)
