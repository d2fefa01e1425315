"""The shape of the source tree: the import graph of softmaxlib runs one way, and
the native sources stay small enough to read (the kernel templates excepted)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "softmaxlib"

# Kernel templates: one file per family of kernels, long by nature (every
# variant beside its siblings).
KERNEL_TEMPLATES = {"kernels.inc", "family.inc"}
MAX_NATIVE_LINES = 500


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name, path, modules):
    """The softmaxlib modules ``name`` imports, anywhere in its body (lazy imports too).

    ``from package import sub`` counts as an import of the submodule ``sub`` when it is
    one, else of ``package``.
    """
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def test_there_is_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["softmaxlib._backends.numpy_native"] >= {"softmaxlib._native_loader"}  # the graph is read
    done, active, stack = set(), set(), []

    def visit(name):
        active.add(name)
        stack.append(name)
        for dep in sorted(graph[name]):
            if dep in active:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in done:
                visit(dep)
        stack.pop()
        active.discard(name)
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name)


def test_only_the_loader_imports_the_extension():
    modules = _modules()
    importers = {name for name, path in modules.items()
                 if "softmaxlib._kernels" in _imports_with_extension(name, path)}
    assert importers == {"softmaxlib._native_loader"}


def _imports_with_extension(name, path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (PACKAGE / "_native").iterdir() if p.is_file() and p.name not in KERNEL_TEMPLATES
           and p.suffix in {".h", ".cc", ".in", ".inc"}),
    ids=lambda p: p.name,
)
def test_native_sources_stay_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_NATIVE_LINES, f"{path.name}: {lines} lines"
