"""Sphinx configuration of refinewidgets' documentation site.

Built by CI with warnings as errors (``.ci/run``)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The API reference is generated from the docstrings (autosummary, numpydoc style read by
napoleon); the tutorial notebook is executed at build time by myst-nb, so what it shows is what
the code does today.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import refinewidgets  # noqa: E402

project = "refinewidgets"
author = "the refinewidgets developers"
copyright = "2026, the refinewidgets developers"
release = refinewidgets.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "app-*.png"]
templates_path: list[str] = []

# The API pages: one per public object, from its docstring.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
# Our docstrings name parameters without types (types live in the signatures).
napoleon_custom_sections = [("Returns", "params_style")]

# Tutorials are executed at every build; an error in a cell fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

nitpicky = False
suppress_warnings = ["myst.header"]

html_theme = "sphinx_book_theme"
html_title = "refinewidgets"
html_static_path: list[str] = []
html_theme_options = {
    "repository_url": "https://github.com/refinewidgets/refinewidgets",
    "use_repository_button": True,
    "show_toc_level": 2,
}
