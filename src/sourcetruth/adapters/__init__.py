"""Adapters: the library's edges to files, feeds and (later) transports and stores.

The protocols live in :mod:`sourcetruth.adapters.base`, discovery in
:mod:`sourcetruth.adapters.registry`. Each built-in adapter is its own module,
imported only when used: :mod:`~sourcetruth.adapters.oneroster`,
:mod:`~sourcetruth.adapters.sds`, :mod:`~sourcetruth.adapters.tabular` (generic
CSV/TXT imports), :mod:`~sourcetruth.adapters.vcard` and
:mod:`~sourcetruth.adapters.export`.
"""

from __future__ import annotations

from sourcetruth.adapters.base import (
    AddressBookAdapter,
    AddressBookReading,
    Notice,
    Reading,
    SourceAdapter,
    address_book_saves,
)
from sourcetruth.adapters.registry import available, get, register, unregister

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
