"""Sphinx settings for the documentation site (``sphinx-build -W docs site``).

Sphinx, because the docstrings are reStructuredText (``code``, :func:`roles`):
autodoc renders and links them as written. The Markdown pages are read by MyST.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import sourcetruth

project = "sourcetruth"
author = "The sourcetruth developers"
release = sourcetruth.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 4
myst_enable_extensions = ["deflist"]
# A type named in two modules (a protocol and its re-export) is ambiguous to Sphinx; both
# targets describe the same object, so either link is right.
suppress_warnings = ["myst.header", "ref.python"]

html_theme = "furo"
html_title = "sourcetruth"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Types named in signatures that Sphinx cannot link are left as text, not warned about.
nitpicky = False


def public_modules() -> list[str]:
    """Every module of the package whose dotted name has no part starting with '_'."""
    names = []
    for info in pkgutil.walk_packages(sourcetruth.__path__, prefix="sourcetruth."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _home_of(name: str) -> str:
    """Where the API reference describes the package's *name*: its public home module."""
    if name == "__version__":
        return "sourcetruth.__version__"
    defined_in = getattr(getattr(sourcetruth, name), "__module__", None)
    homes = [
        module_name
        for module_name in public_modules()
        if module_name != "sourcetruth"
        and name in getattr(importlib.import_module(module_name), "__all__", ())
    ]
    if defined_in in homes:
        return f"{defined_in}.{name}"
    return f"{min(homes, key=lambda m: m.count('.'))}.{name}"


def _package_names(app: Any, docname: str, source: list[str]) -> None:
    """Append to the package's page a link to each name of ``sourcetruth.__all__``."""
    if docname != "reference/sourcetruth":
        return
    lines = [f"- {{py:obj}}`{name} <{_home_of(name)}>`" for name in sourcetruth.__all__]
    source[0] += "\n" + "\n".join(lines) + "\n"


def setup(app: Any) -> None:
    app.connect("source-read", _package_names)
