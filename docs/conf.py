"""Sphinx configuration of hcore's documentation.

Sphinx rather than MkDocs: hcore's docstrings use Sphinx's field lists
(``:param:``, ``:return:``, ``:raises:``), which autodoc renders as they
are, and MyST lets the guides be written in Markdown beside them.
"""

from __future__ import annotations

project = "hcore"
author = "the hcore developers"
copyright = "2026, the hcore developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The reference documents each public name once, where its package lists
# it in __all__; signatures keep the types as written.
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"

html_theme = "furo"
html_title = "hcore"
