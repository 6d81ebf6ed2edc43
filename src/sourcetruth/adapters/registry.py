"""Finding adapters: built in, registered by the caller, or installed as plugins.

A package that provides an adapter declares it under one of the entry-point
groups in :data:`GROUPS`, for example in its ``pyproject.toml``::

    [project.entry-points."sourcetruth.sources"]
    arbor = "arbor_sourcetruth:ArborAdapter"

Entry points are loaded lazily, the first time an adapter of that kind is
looked up, and one at a time: a plugin that fails to import is logged and
skipped, so one broken package never stops the others. Explicit
:func:`register` calls take precedence over plugins of the same name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Final, Literal

from sourcetruth.exceptions import UnknownAdapterError, UsageError

__all__ = ["GROUPS", "AdapterKind", "available", "get", "register", "unregister"]

_log = logging.getLogger(__name__)

#: The four kinds of adapter a name can be registered as.
AdapterKind = Literal["source", "address-book", "transport", "store"]

#: The entry-point group for each kind of adapter.
GROUPS: Final[dict[AdapterKind, str]] = {
    "source": "sourcetruth.sources",
    "address-book": "sourcetruth.address_books",
    "transport": "sourcetruth.transports",
    "store": "sourcetruth.stores",
}

# The built-in adapters, named by import path so that looking one up imports
# only that module.
_BUILT_IN: Final[dict[AdapterKind, dict[str, str]]] = {
    "source": {
        "oneroster": "sourcetruth.adapters.sources.oneroster:OneRosterAdapter",
        "oneroster-rest": "sourcetruth.adapters.sources.oneroster_rest:OneRosterRestAdapter",
        "sds": "sourcetruth.adapters.sources.sds:SdsAdapter",
        "csv": "sourcetruth.adapters.sources.tabular:CsvImportAdapter",
    },
    "address-book": {
        "vcard": "sourcetruth.adapters.sources.vcard:VCardAdapter",
    },
    "transport": {
        "outbox": "sourcetruth.adapters.transports.outbox:OutboxTransport",
        "smtp": "sourcetruth.adapters.transports.smtp:SmtpTransport",
        "sms-http": "sourcetruth.adapters.transports.sms:HttpSmsTransport",
    },
    "store": {
        "sqlite": "sourcetruth.adapters.stores.sqlite:SqliteStore",
        "json": "sourcetruth.adapters.stores.jsonstore:JsonStore",
    },
}

_registered: dict[AdapterKind, dict[str, Callable[..., Any]]] = {k: {} for k in GROUPS}
_plugins: dict[AdapterKind, dict[str, Callable[..., Any]]] | None = None


def _check_kind(kind: str) -> AdapterKind:
    if kind not in GROUPS:
        msg = f"unknown adapter kind {kind!r}; kinds are {', '.join(GROUPS)}"
        raise UsageError(msg)
    return kind


def _import(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    module = __import__(module_name, fromlist=[attribute])
    found: Callable[..., Any] = getattr(module, attribute)
    return found


def _load_plugins() -> dict[AdapterKind, dict[str, Callable[..., Any]]]:
    global _plugins
    if _plugins is None:
        loaded: dict[AdapterKind, dict[str, Callable[..., Any]]] = {k: {} for k in GROUPS}
        for kind, group in GROUPS.items():
            for point in sorted(entry_points(group=group), key=lambda p: (p.name, p.value)):
                try:
                    loaded[kind][point.name] = point.load()
                    if point.name in _BUILT_IN[kind]:
                        _log.info(
                            "the plugin %s replaces the built-in %s adapter %r",
                            point.value,
                            kind,
                            point.name,
                        )
                except Exception:  # a plugin's own bug must not stop the others
                    _log.warning(
                        "skipped the %s adapter %r (%s): it failed to load",
                        kind,
                        point.name,
                        point.value,
                        exc_info=True,
                    )
        _plugins = loaded
    return _plugins


def register(kind: AdapterKind, name: str, factory: Callable[..., Any]) -> None:
    """Make *factory* the adapter of *kind* called *name*, ahead of any plugin."""
    _registered[_check_kind(kind)][name] = factory


def unregister(kind: AdapterKind, name: str) -> None:
    """Undo :func:`register`; a plugin or built-in adapter of that name shows again."""
    _registered[_check_kind(kind)].pop(name, None)


def available(kind: AdapterKind) -> tuple[str, ...]:
    """The names of every adapter of *kind* that can be looked up, sorted."""
    kind = _check_kind(kind)
    names = set(_BUILT_IN[kind]) | set(_registered[kind]) | set(_load_plugins()[kind])
    return tuple(sorted(names))


def get(kind: AdapterKind, name: str) -> Callable[..., Any]:
    """The factory (usually a class) of the adapter of *kind* called *name*.

    Registered adapters come first, then plugins, then the built-in ones.
    """
    kind = _check_kind(kind)
    if name in _registered[kind]:
        return _registered[kind][name]
    plugins = _load_plugins()[kind]
    if name in plugins:
        return plugins[name]
    if name in _BUILT_IN[kind]:
        return _import(_BUILT_IN[kind][name])
    msg = f"no {kind} adapter called {name!r}; available: {', '.join(available(kind))}"
    raise UnknownAdapterError(msg)
