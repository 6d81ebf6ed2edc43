"""Old module paths that still import, with a DeprecationWarning, for one release.

Version 0.1 moved the edges into folders that say what they touch
(``adapters/sources``, ``adapters/stores``, ``adapters/transports``, ``app``),
and renamed the data manager's worklists (``reports`` to ``worklists``) so that
"report" means what a merge did. Names that left a module that stayed
(``sourcetruth.merge``, ``sourcetruth.model``) are kept there by
:func:`moved_names`, a module ``__getattr__`` that warns the same way.
Code written against the old paths (``from sourcetruth.adapters.oneroster
import OneRosterAdapter``) keeps working: importing an old path gives the very
module object of its new home, so classes and functions are identical and
``isinstance`` holds across both names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Final

__all__ = ["MOVED", "install", "moved_names"]

#: Each old module path and its new home.
MOVED: Final = {
    "sourcetruth.adapters.base": "sourcetruth.adapters.sources.base",
    "sourcetruth.adapters.export": "sourcetruth.adapters.sources.export",
    "sourcetruth.adapters.oneroster": "sourcetruth.adapters.sources.oneroster",
    "sourcetruth.adapters.sds": "sourcetruth.adapters.sources.sds",
    "sourcetruth.adapters.tabular": "sourcetruth.adapters.sources.tabular",
    "sourcetruth.adapters.text": "sourcetruth.adapters.sources.text",
    "sourcetruth.adapters.vcard": "sourcetruth.adapters.sources.vcard",
    "sourcetruth.adapters.jsonstore": "sourcetruth.adapters.stores.jsonstore",
    "sourcetruth.adapters.sqlite": "sourcetruth.adapters.stores.sqlite",
    "sourcetruth.adapters.store": "sourcetruth.adapters.stores.base",
    "sourcetruth.adapters.sms": "sourcetruth.adapters.transports.sms",
    "sourcetruth.adapters.smtp": "sourcetruth.adapters.transports.smtp",
    "sourcetruth.adapters.transport": "sourcetruth.adapters.transports.outbox",
    "sourcetruth.bookfolder": "sourcetruth.app.bookfolder",
    "sourcetruth.demo": "sourcetruth.app.demo",
    "sourcetruth.distributed": "sourcetruth.app.distributed",
    "sourcetruth.sending": "sourcetruth.app.sending",
    "sourcetruth.settings": "sourcetruth.app.settings",
    "sourcetruth.reports": "sourcetruth.worklists",
}


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module of its new home (imported, then shared)."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        msg = f"{spec.name} moved to {self.new}; import it from there"
        warnings.warn(msg, DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module ran under its own name); give it back its own spec.

        The import system stamps the old name's spec on the module it was
        given; pickling, reloading and ``python -m`` need the module's own.
        """
        module.__spec__ = self.spec


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder on :data:`sys.meta_path` once (the package's ``__init__`` calls it)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())


def moved_names(module: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that left *module*: each from its home, with a warning.

    *homes* maps each moved name to the module that holds it now; any other
    name is an ``AttributeError`` as usual.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            msg = f"module {module!r} has no attribute {name!r}"
            raise AttributeError(msg)
        msg = f"{module}.{name} has moved: import it from {home} (or from sourcetruth)"
        warnings.warn(msg, DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(home), name)

    return __getattr__
