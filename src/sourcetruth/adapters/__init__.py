"""Adapters: the library's edges to files, feeds and (later) transports and stores.

The protocols live in :mod:`sourcetruth.adapters.sources.base`, discovery in
:mod:`sourcetruth.adapters.registry`. Each built-in adapter is its own module,
imported only when used: :mod:`~sourcetruth.adapters.sources.oneroster`,
:mod:`~sourcetruth.adapters.sources.sds`, :mod:`~sourcetruth.adapters.sources.tabular` (generic
CSV/TXT imports), :mod:`~sourcetruth.adapters.sources.vcard` and
:mod:`~sourcetruth.adapters.sources.export`.
"""

from __future__ import annotations

from sourcetruth.adapters.registry import available, get, register, unregister
from sourcetruth.adapters.sources.base import (
    AddressBookAdapter,
    AddressBookReading,
    Notice,
    Reading,
    SourceAdapter,
    address_book_saves,
)

__all__ = [
    "AddressBookAdapter",
    "AddressBookReading",
    "Notice",
    "Reading",
    "SourceAdapter",
    "address_book_saves",
    "available",
    "get",
    "register",
    "unregister",
]
