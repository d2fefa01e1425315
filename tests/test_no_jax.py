"""Without JAX at run time softmaxlib still imports and works (the JAX path is optional)."""

import subprocess
import sys
import textwrap


def test_imports_and_computes_without_jax():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["jax"] = None  # import jax now raises ImportError
        import numpy as np
        import softmaxlib
        from softmaxlib._backends import jax_ffi
        assert not jax_ffi.available()
        y = softmaxlib.softmax(np.array([1.0, 2.0, 3.0]))
        assert abs(float(y.sum()) - 1.0) < 1e-12
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
