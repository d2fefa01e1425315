#!/usr/bin/env bash
# Build the softmaxlib documentation into docs/_build/html, warnings as errors.
#
#   bash docs/build.sh            # full build (measures the accuracy plots, ~1 min)
#   bash docs/build.sh -E         # extra arguments go to sphinx-build
#
# Needs the "docs" extra (pip install -e ".[docs]") and no network: MathJax, fonts
# and the theme's assets are bundled. -n (nitpicky) makes every unresolved
# cross-reference an error; the internal links of the built HTML are checked by
# tests/test_docs.py.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/generated
start=$(date +%s)
python -m sphinx -W --keep-going -n -b html docs docs/_build/html "$@"
echo "docs built in $(( $(date +%s) - start )) s: docs/_build/html/index.html"
