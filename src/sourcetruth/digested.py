"""A snapshot's records handed to the merge digests first, each built only when asked for.

A nightly export of a million people, of whom 1% changed, need not become a
million objects: a reader that can name each row's data by its digest
(:func:`sourcetruth._digest.record_digest`, computed from the row's checked
cells) hands the merge :class:`DigestedRecords`, every record's key and
digest, and a way to build any one record. A full sync against a store that
keeps each record's digest builds only the records whose digest differs
from the stored one, or that are new. Everything else sees an ordinary
sequence of records: iterating one builds each record in turn, so a book in
memory, an export or a test gets the same records a fully built snapshot
holds, and the same books, reports and journal come of either.

The reader's promise, checked for every record the merge builds: record
``i`` has key ``keys[i]``, is whole (``fields`` is None), and the digest of
its data is ``digests[i]``; building is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from sourcetruth.exceptions import UsageError

if TYPE_CHECKING:
    from sourcetruth.model import Record

__all__ = ["DigestedRecords"]


class DigestedRecords(Sequence["Record"]):
    """Records as their keys and data digests, in order; ``build(i)`` makes record ``i``.

    Equal to another sequence that holds equal records in the same order
    (two of these compare by keys and digests alone, since equal digests
    name equal data).
    """

    __slots__ = ("_build", "digests", "keys")

    def __init__(
        self, keys: Sequence[str], digests: Sequence[str], build: Callable[[int], Record]
    ) -> None:
        if len(keys) != len(digests):
            msg = "digested records need one digest for each key"
            raise UsageError(msg)
        self.keys = keys
        self.digests = digests
        self._build = build

    def __repr__(self) -> str:
        return f"<{len(self.keys)} digested records>"

    def __len__(self) -> int:
        return len(self.keys)

    def record(self, index: int) -> Record:
        """Record *index*, built now (not kept), checked to be whole and of its key."""
        built = self._build(index)
        if built.key != self.keys[index] or built.fields is not None:
            msg = "a reader built a record that is not the whole record of its key"
            raise UsageError(msg)
        return built

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Record, ...]: ...

    def __getitem__(self, index: int | slice) -> Record | tuple[Record, ...]:
        places = range(len(self.keys))
        if isinstance(index, slice):
            return tuple(self.record(i) for i in places[index])
        return self.record(places[index])

    def __iter__(self) -> Iterator[Record]:
        for index in range(len(self.keys)):
            yield self.record(index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DigestedRecords):
            return list(self.keys) == list(other.keys) and list(self.digests) == list(other.digests)
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        # Equal to the tuple of its records, so it hashes as that tuple does.
        return hash(tuple(self))

    def __reduce__(self) -> Any:
        # Its builder reads the reader's memory: what travels is the records themselves.
        return tuple, (tuple(self),)
