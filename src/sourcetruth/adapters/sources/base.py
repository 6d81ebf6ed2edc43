"""What an adapter is: the protocols every source and address-book adapter keeps.

An adapter turns the outside world (a OneRoster bundle, a CSV file, a vCard
export) into the model's values and back. It does input and output; the merge
stays pure. What an adapter reads comes back as a :class:`Reading`: the
snapshot, and every :class:`Notice` about things the input did that the
adapter tolerated (a misspelt header, a link pointing the wrong way, a date in
an unexpected format). Tolerated is never silent: each is a notice.

Anything an adapter cannot tolerate raises a :class:`~sourcetruth.SourceDataError`
(one problem) or a :class:`~sourcetruth.RejectedFileError` (every problem of a
file); outside failures raise :class:`~sourcetruth.AdapterError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

from attrs import field, frozen

from sourcetruth._util import to_tuple as _tuple
from sourcetruth.changes import AddressBookSave
from sourcetruth.model import ADDRESS_BOOK, Record, Snapshot, SourceKind, record_id

__all__ = [
    "AddressBookAdapter",
    "AddressBookReading",
    "Notice",
    "Reading",
    "SourceAdapter",
    "address_book_saves",
]


@frozen
class Notice:
    """Something an input did that the adapter tolerated and reports.

    ``code`` is a stable, machine-readable kebab-case word (``header-drift``,
    ``agent-direction``, ``unnormalised-phone``); ``message`` says it for a
    person. Like errors, a notice names where, never the personal value,
    nor anything else read from the input that may be one: the built-in
    readers name a row by ``file`` and ``line`` (never by its ``key``: a file
    may be keyed by email, and a damaged one has phone numbers where its ids
    were) and a column by the field it was read as, or by position
    (``column 3``), never by its header cell.
    """

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = [
            f"{label} {value}"
            for label, value in (
                ("file", self.file),
                ("line", self.line),
                ("field", self.field),
                ("record", self.key),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(where)})" if where else self.message


@frozen
class Reading:
    """What one read of a source gave: a snapshot and the notices about it.

    ``rejected`` counts the rows the adapter could not use. When it is not
    zero the snapshot is a delta even if the input was complete, so that a
    rejected row is never read as a departure (see ``docs/adapters.md``).
    """

    snapshot: Snapshot
    notices: tuple[Notice, ...] = field(default=(), converter=_tuple)
    rejected: int = 0


@frozen
class AddressBookReading:
    """Address-book entries read from a file, each a record under a stable key."""

    entries: tuple[Record, ...] = field(default=(), converter=_tuple, repr=False)
    notices: tuple[Notice, ...] = field(default=(), converter=_tuple)


def address_book_saves(entries: Iterable[Record]) -> tuple[AddressBookSave, ...]:
    """One :class:`~sourcetruth.AddressBookSave` per entry, keyed ``address-book:KEY``.

    Merge them one after the other (in key order, as returned) to bring a
    file's entries into the book: a new key creates a local contact, a known
    one updates it (rule 2).
    """
    return tuple(
        AddressBookSave(record_id(ADDRESS_BOOK, entry.key), entry.data)
        for entry in sorted(entries, key=lambda e: e.key)
    )


@runtime_checkable
class SourceAdapter(Protocol):
    """Reads snapshots of one source (an MIS feed or an import).

    ``source`` is the source's name in the policy; ``kind`` and ``covers``
    say what the adapter's format can carry, so that a policy can be checked
    against it. ``supports_delta`` is true when the format has deltas (a
    OneRoster delta bundle); :meth:`read` then returns whichever kind the
    input is.

    ``extracted_at`` is when the data was read at the source. It is an
    argument, not a clock reading, so that reading the same input twice gives
    equal snapshots.
    """

    @property
    def source(self) -> str: ...

    @property
    def kind(self) -> SourceKind: ...

    @property
    def covers(self) -> frozenset[str]: ...

    @property
    def supports_delta(self) -> bool: ...

    def read(self, *, extracted_at: datetime) -> Reading: ...


@runtime_checkable
class AddressBookAdapter(Protocol):
    """Reads and writes address-book entries in a file format (vCard, say).

    Keys are stable across reads of the same file: the entry's own id (a
    vCard ``UID``) where it has one, otherwise one derived from its content
    and said so in a notice.
    """

    def read_entries(self) -> AddressBookReading: ...

    def write_entries(self, entries: Iterable[Record]) -> None: ...
