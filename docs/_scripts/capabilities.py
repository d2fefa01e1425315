"""The backend x feature table, generated from ``softmaxlib._backends.BACKENDS``.

Run at every docs build (from ``conf.py``); writes ``capabilities.md`` and
``native.md`` (MyST fragments included by ``backends.md``).  The table says which
path runs for each library and device: a native one, or the generic fast path
(``softmaxlib._backends.generic``), which also runs for every library the registry
does not list (the table's last row).  Nothing here is
written by hand: a backend added to the registry, a dtype dropped or a fast path
switched on shows up in the table at the next build.

"""

import importlib
import importlib.metadata

from softmaxlib import _backends

# Column -> does the backend have it?  Read from the registry's structured fields.
FEATURE_COLUMNS = {
    "jit": lambda b: "jit" in b.transformations or "torch.compile" in b.transformations,
    "vmap": lambda b: "vmap" in b.transformations,
    "grad": lambda b: "grad" in b.transformations or "autograd" in b.transformations,
    "threads": lambda b: b.threads is not None,
    "lazy": lambda b: b.lazy,
}

YES = "✓"
NO = "—"


def _installed(backend):
    try:
        return importlib.metadata.version(backend.distribution or backend.name)
    except importlib.metadata.PackageNotFoundError:
        return None


GENERIC = "generic (the namespace's own operations), on every device"


def _fast_path(backend):
    """Which path runs, by device."""
    if backend.fast_path_module in (None, _backends.GENERIC):
        return GENERIC
    try:
        module = importlib.import_module(backend.fast_path_module)
    except ImportError as exc:
        return f"`{backend.fast_path_module}` (cannot import: {exc})"
    text = f"native: `{backend.fast_path_module.rsplit('.', 1)[-1]}`"
    info = getattr(module, "info", None)
    if info is not None:
        details = info()
        if details.get("available"):
            text += f", ISA `{details.get('isa', '?')}`"
        else:
            text += f" (not built here: {details.get('reason', 'unknown reason')})"
    if backend.native_devices:
        text += f", on {backend.native_devices}; generic on other devices"
    return text


def _escape(text):
    return str(text).replace("|", "\\|")


def capability_rows():
    """One dict per registry entry: what the table shows."""
    rows = []
    for backend in _backends.BACKENDS:
        notes = "; ".join(n for n in (backend.threads, backend.notes) if n)
        row = {
            "backend": backend.name,
            "installed": _installed(backend),
            "fast path": _fast_path(backend),
            "dtypes": ", ".join(backend.dtypes),
            "notes": notes,
        }
        for column, has in FEATURE_COLUMNS.items():
            row[column] = has(backend)
        rows.append(row)
    return rows


def capabilities_table():
    head = ["Backend", "Fast path", *FEATURE_COLUMNS, "dtypes", "Installed at build", "Notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in capability_rows():
        cells = [
            f"**{row['backend']}**",
            row["fast path"],
            *(YES if row[c] else NO for c in FEATURE_COLUMNS),
            row["dtypes"],
            row["installed"] or "no",
            row["notes"],
        ]
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    others = ["*any other Array-API library*", GENERIC, *(NO for _ in FEATURE_COLUMNS)]
    others += ["its own", "", ""]
    lines.append("| " + " | ".join(_escape(c) for c in others) + " |")
    return "\n".join(lines) + "\n"


def native_table():
    """The NumPy native kernels' ``info()`` on the build machine, as a table."""
    from softmaxlib._backends import numpy_native

    details = numpy_native.info()
    lines = ["| Field | Value on the machine that built these docs |", "|---|---|"]
    for key, value in details.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(f"`{v}`" for v in value) if value else "(none)"
        elif isinstance(value, dict):
            value = ", ".join(f"`{k}={v}`" for k, v in value.items()) or "(none set)"
        else:
            value = f"`{value}`"
        lines.append(f"| `{key}` | {_escape(value)} |")
    return "\n".join(lines) + "\n"


def write(out):
    (out / "capabilities.md").write_text(capabilities_table(), encoding="utf-8")
    (out / "native.md").write_text(native_table(), encoding="utf-8")


if __name__ == "__main__":
    print(capabilities_table())
    print(native_table())
