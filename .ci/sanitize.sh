#!/usr/bin/env bash
# Build softmaxlib._kernels with AddressSanitizer + UBSan and run tests/native
# against it (the exhaustive exp sweep and other slow tests excluded).
#
# The sanitized extension is built with CMake into a temporary directory, next
# to a copy of the Python package and the tests, so the user's installed
# softmaxlib is left alone. Python itself is not instrumented, so libasan is
# preloaded and leak detection is off (the interpreter keeps memory until exit).
# Usage: .ci/sanitize.sh [extra pytest args]
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/softmaxlib-sanitize.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python="${PYTHON:-python3}"

cmake -S "$repo" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSOFTMAXLIB_SANITIZE=ON \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$work/build" -j "${JOBS:-2}"

mkdir -p "$work/tree"
cp -r "$repo/softmaxlib" "$repo/tests" "$repo/pyproject.toml" "$work/tree/"
rm -f "$work/tree"/softmaxlib/_kernels*.so
cp "$work"/build/softmaxlib/_native/_kernels*.so "$work/tree/softmaxlib/"

# An editable install of softmaxlib (scikit-build-core) puts an import hook
# ahead of PYTHONPATH; drop it in this tree's sitecustomize so the copy here
# (with the sanitized extension) is what the tests import.
cat > "$work/tree/sitecustomize.py" <<'PY'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]
PY

libasan="$(${CXX:-g++} -print-file-name=libasan.so)"
libubsan="$(${CXX:-g++} -print-file-name=libubsan.so)"
cd "$work/tree"
export LD_PRELOAD="$libasan:$libubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_init_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$work/tree"
# Make sure the sanitized build is the one under test.
"$python" -c "import softmaxlib._kernels as k, sys; f = k.__file__; print('testing', f); sys.exit(0 if f.startswith('$work/tree') else 1)"
"$python" -m pytest tests/native -q -p no:cacheprovider -m "not slow" "$@"
