"""The report's sections, in the order they run and print.

A section is a ``Section(name, backend, title, run)`` whose ``run(ctx)`` takes a
``BenchContext`` and returns a ``SectionResult`` (measurements, bars, notes). The
harness, the tables, the JSON and the plot know nothing about particular
sections: a new backend (Dask, CuPy) or a new function (fused top-k) adds its
module here and appends one entry to ``SECTIONS``.
"""

import dataclasses

from softmaxlib._bench.sections import (
    bars, cupy_section, dask_section, family_section, jax_section, jax_training, numpy_sweep, torch_section,
)


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    #: The ``--backends`` name that selects this section.
    backend: str
    title: str
    run: object


SECTIONS = [
    Section("numpy", "numpy", "NumPy: softmax over the last axis", numpy_sweep.run),
    Section("bars", "numpy", "Acceptance checks: NumPy native kernels", bars.run),
    Section("family", "numpy", "Acceptance checks: softmax family (fused top-k, temperature)",
            family_section.run),
    Section("jax", "jax", "JAX: jitted softmaxlib.softmax vs jitted jax.nn.softmax",
            jax_section.run),
    Section("jax_training", "jax", "JAX training: jit(grad) of a weighted sum, forward + backward",
            jax_training.run),
    Section("torch", "torch", torch_section.TITLE, torch_section.run),
    Section("dask", "dask", "Dask: one long row chunked along the reduced axis", dask_section.run),
    Section("cupy", "cupy", "CuPy: CUDA kernels vs cupyx, torch (CUDA) and a device copy",
            cupy_section.run),
]


def selected(backends, names=None):
    """The sections whose backend is in ``backends`` (and name in ``names`` if given)."""
    return [s for s in SECTIONS
            if s.backend in backends and (names is None or s.name in names)]
