import pytest

from tests.backends import CASES


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def backend(request):
    """Each registered backend path, inside the context that selects it."""
    case = request.param
    reason = case.missing()
    if reason:
        pytest.skip(f"backend {case.name}: {reason}")
    with case.context():
        yield case
