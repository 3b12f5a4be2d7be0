"""Sphinx configuration of the softtorch documentation.

Build (from the repository root)::

    sphinx-build -W -b html docs docs/_build/html        # what `tox -e docs` runs

Environment variables:

``SOFTTORCH_DOCS_INTERSPHINX=1``
    Link ``torch.*``, ``numpy.*`` and Python names to their own documentation. This fetches the
    three ``objects.inv`` inventories over the network, so it is off by default: the build then
    works offline, and references to torch or numpy render as plain code. With the variable set
    and no network, the failed fetch is a warning and ``-W`` fails the build.
``SOFTTORCH_DOCS_NITPICKY=1``
    Turn on Sphinx's nitpicky mode to report every cross-reference that does not resolve
    (references into torch/numpy/Python are ignored unless intersphinx is on as well).
``SOFTTORCH_DOCS_SKIP_GALLERY=1``
    Do not execute the tutorials (quick iterations on the reference pages); the gallery pages
    are then built from the scripts without their output and figures.
"""

from __future__ import annotations

import doctest
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # build against this checkout, installed or not
sys.path.insert(0, str(DOCS / "_ext"))

import softtorch  # noqa: E402

# Tutorials and plot directives render with matplotlib's file backend.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "softtorch"
author = "the softtorch developers"
copyright = "the softtorch developers"  # noqa: A001
release = softtorch.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # A packaged MathJax 3 copied into _static/mathjax, so every formula renders offline (it sets
    # mathjax_path to the local tex-chtml.js; tests/test_docs_offline.py checks the built site).
    "sphinx-mathjax-offline",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "softtorch_docs",  # docs/_ext/softtorch_docs.py: every public name must be on an API page
]

root_doc = "index"
exclude_patterns = ["_build", "README.md", "**sg_execution_times.rst", "**/*.ipynb", "**/*.py.md5", "**/*.codeobj.json", "**/*.zip"]
templates_path: list[str] = []
default_role = "py:obj"
pygments_style = "sphinx"

# -- autodoc / autosummary / napoleon ------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "none"  # the docstrings say the types; signatures stay as short as torch's
autodoc_preserve_defaults = True
autosummary_generate = False  # every object is documented on its family page, not on stub pages
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Shape"]
napoleon_use_rtype = False

# -- intersphinx: opt-in, see the module docstring ------------------------------------------------
INTERSPHINX = os.environ.get("SOFTTORCH_DOCS_INTERSPHINX", "") not in ("", "0")
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "numpy": ("https://numpy.org/doc/stable", None),
    }
    if INTERSPHINX
    else {}
)
intersphinx_timeout = 10

nitpicky = os.environ.get("SOFTTORCH_DOCS_NITPICKY", "") not in ("", "0")
nitpick_ignore_regex = [
    # Plain type words of the Google-style "Args:" sections.
    (r"py:.*", r"(Tensor|float|int|bool|str|tuple|dict|callable|optional|or|None|Module|Parameter)"),
]
if not INTERSPHINX:
    nitpick_ignore_regex.append((r"py:.*", r"(torch|numpy|np)(\..*)?"))
# Temporary nitpick_ignore entries for library docstrings go here, each with the reason.
nitpick_ignore: list[tuple[str, str]] = []

# -- doctest: the `>>>` examples of the pages and docstrings --------------------------------------
doctest_global_setup = """
import torch
import softtorch
import softtorch as st
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# -- plot directive (kernel plots of the user guide) ---------------------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True}
plot_pre_code = ""  # every plot imports what it uses, so the source shown is the source run

# -- sphinx-gallery: tutorials/plot_*.py are executed at build time -------------------------------
# Before each tutorial, softtorch_docs.reset_seeds seeds torch and numpy and pins torch to one
# thread (the tutorials train tiny models, for which a thread pool only adds overhead).

SKIP_GALLERY = os.environ.get("SOFTTORCH_DOCS_SKIP_GALLERY", "") not in ("", "0")
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "tutorials"),
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "softtorch_docs.TutorialOrder",
    "capture_repr": (),  # show printed output only, not the value of a block's last expression
    "plot_gallery": "False" if SKIP_GALLERY else "True",
    "download_all_examples": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib", "softtorch_docs.reset_seeds"),  # every tutorial starts seeded
    "doc_module": ("softtorch",),
    "backreferences_dir": "gen_modules/backreferences",
    "min_reported_time": 0,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "show_memory": False,
    # The execution-times pages load jQuery and DataTables from CDNs: not written, so the site
    # stays self-contained (tests/test_docs_offline.py).
    "write_computation_times": False,
}

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "sphinx_rtd_theme"
html_title = f"softtorch {release}"
html_theme_options = {"navigation_depth": 3, "collapse_navigation": False}
html_static_path = ["_static"]
html_css_files = ["softtorch.css"]
html_show_sourcelink = False
