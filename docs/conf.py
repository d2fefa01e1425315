"""Sphinx configuration of the softmaxlib documentation.

The build needs no network: no intersphinx, MathJax from the ``sphinx-mathjax-offline``
package, the theme's own bundled assets.  Everything the pages show that comes from the
code or from measurements (the capability table, the accuracy plots, the performance
plots) is generated into ``docs/generated/`` when the build starts, by the scripts in
``docs/_scripts/``; nothing generated is committed.
"""

import pathlib
import sys
import time

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_scripts"))

import softmaxlib  # noqa: E402

project = "softmaxlib"
author = "the softmaxlib developers"
copyright = f"{time.gmtime().tm_year}, {author}"  # noqa: A001
release = softmaxlib.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # bundles MathJax 3 into _static/mathjax: no CDN
    "numpydoc",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "generated/*.md", "README.md"]
templates_path = ["_templates"]

# MyST: $...$ / $$...$$ math, ::: fences, heading anchors for [text](page.md#anchor).
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: autosummary stubs are written at build time (docs/generated/api/).
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# Every cross-reference must resolve (sphinx-build -n); the docstrings' informal
# type descriptions are not references.
nitpicky = True

pygments_style = "sphinx"
html_theme = "pydata_sphinx_theme"
html_title = f"softmaxlib {release}"
html_static_path = ["_static"]
html_css_files = ["softmaxlib.css"]
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
    "navbar_end": ["theme-switcher"],
}
html_sidebars = {"**": []}  # the pages are flat: the top bar is the navigation
html_favicon = "_static/favicon.svg"
# The theme's light/dark switch starts from the reader's system preference.
html_context = {"default_mode": "auto"}


def _generate(app):
    """Write the generated tables and plots before Sphinx reads the sources."""
    import capabilities
    import performance

    out = DOCS / "generated"
    out.mkdir(exist_ok=True)
    capabilities.write(out)
    performance.write(out, ROOT / "benchmarks" / "results")
    if app.config.softmaxlib_skip_accuracy:
        import accuracy

        accuracy.write_placeholder(out)
    else:
        import accuracy

        accuracy.write(out)


def setup(app):
    app.add_config_value("softmaxlib_skip_accuracy", False, "env")
    app.connect("builder-inited", _generate)
