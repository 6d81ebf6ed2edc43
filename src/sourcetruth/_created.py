"""The journal's short entry for a contact a merge created from one record (package-private).

An initial sync creates every contact of a school, and its report holds a
:class:`~sourcetruth.FieldChange` for each of their non-empty fields: five or
so per contact, each with its value and provenance, about half of a book's
file. Every one of them follows from the record's first version and the
sync that applied it, both kept in the book. A store keeps a :class:`Created`
instead, and gives back the same changes with :func:`expand`.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from sourcetruth import _build as build
from sourcetruth.effective import source_provenance
from sourcetruth.model import Book, ProvenanceKind, check_fields, record_id, split_record_id
from sourcetruth.report import FieldChange

__all__ = ["Created", "compact", "expand"]


@frozen
class Created:
    """A contact's changes in a run: *fields* of record *record*'s first version, merge *sync*."""

    record: str
    sync: int
    fields: tuple[str, ...]


def expand(created: Created, contact_id: str, book: Book) -> tuple[FieldChange, ...]:
    """The changes *created* stands for, read from *book* (none if the record was erased)."""
    source, key = split_record_id(created.record)
    state = book.records.get(source, {}).get(key)
    if state is None:  # erased since (rule 13): nothing of it is told
        return ()
    version = state.versions[0]
    data = version.data
    if data is None:
        return ()
    provenance = source_provenance(
        book, state, version, version.applied_at, before=created.sync + 1
    )
    # A store checks every created contact's entry by expanding it (compact), and
    # reads a journal by expanding them all: the fast builders, for fields of FIELDS.
    check_fields(created.fields)
    return tuple(
        [
            build.field_change(contact_id, name, None, build.only(data, name), None, provenance)
            for name in created.fields
        ]
    )


def compact(
    contact_id: str, changes: Sequence[FieldChange], created: frozenset[str], book: Book
) -> Created | None:
    """The short entry for one contact's *changes* in a run, if they are exactly one.

    *created* are the contacts the run created and *book* the book it left.
    None unless :func:`expand` gives back *changes* exactly.
    """
    if contact_id not in created or not changes:
        return None
    provenance = changes[0].after_provenance
    if (
        provenance.kind is not ProvenanceKind.SOURCE
        or provenance.source is None
        or provenance.record_key is None
        or provenance.sync is None
        or any(
            c.before_provenance is not None
            or (c.after_provenance is not provenance and c.after_provenance != provenance)
            for c in changes
        )
    ):
        return None
    entry = Created(
        record_id(provenance.source, provenance.record_key),
        provenance.sync,
        tuple(c.field for c in changes),
    )
    return entry if expand(entry, contact_id, book) == tuple(changes) else None
