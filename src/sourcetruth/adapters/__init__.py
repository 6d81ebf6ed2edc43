"""Adapters: the library's edges to files, feeds, servers and stores.

Three kinds, a folder each: :mod:`~sourcetruth.adapters.sources` (readers of
MIS exports, CSV/TXT imports and vCards, and the CSV export of the book),
:mod:`~sourcetruth.adapters.stores` (SQLite, JSON) and
:mod:`~sourcetruth.adapters.transports` (the outbox, SMTP, SMS over HTTP).
Discovery, for every kind, is :mod:`sourcetruth.adapters.registry`. The
source protocols are in :mod:`sourcetruth.adapters.sources.base` (re-exported
here); the store and transport protocols are the core's,
:mod:`sourcetruth.protocols`. Each built-in adapter is imported only when used.
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
