"""The changes a book takes: each a frozen value that :func:`sourcetruth.merge` applies.

A source's :class:`~sourcetruth.model.Snapshot` is the one change that comes
from outside; everything here is a person's doing: a save or a removal in the
address book (rule 2), an override of a source's field and its end (rule 3),
a group, a link or an unlink of two records (rule 12), an erasure (rule 13),
the confirmation of a sync that the departure guard held (rule 6), and the
rebuilding of the book's current view.
``merge`` keeps one table from each of these types to the function that
applies it.
"""

from __future__ import annotations

from datetime import datetime

import attrs
from attrs import field, frozen

from sourcetruth._util import to_frozenset
from sourcetruth.exceptions import UsageError
from sourcetruth.model import (
    ContactData,
    GroupDefinition,
    OverrideLifetime,
    Snapshot,
    check_field_name,
    utc_or_none,
)

__all__ = [
    "AddressBookRemove",
    "AddressBookSave",
    "ClearOverride",
    "ConfirmSync",
    "Erase",
    "Link",
    "RefreshView",
    "RemoveGroup",
    "SetGroup",
    "SetOverride",
    "Unlink",
]


@frozen
class ConfirmSync:
    """Apply a snapshot that the departure guard held, for that snapshot only.

    ``token`` is the one the held report gave; it binds the confirmation to
    the snapshot's content and to the book as it was when the sync was held:
    any change merged into the book since then refuses it
    (:class:`~sourcetruth.ConfirmationMismatchError`).
    """

    snapshot: Snapshot
    token: str


@frozen
class AddressBookSave:
    """A save in the local address book.

    For a new or an address-book contact, ``data`` replaces the fields named
    in ``fields`` (all of them when None), at once (rule 2). For a contact
    whose home is a source, each field that source covers becomes a temporary
    override (rule 3) and other fields are kept as local values.
    """

    contact_id: str
    data: ContactData
    fields: frozenset[str] | None = field(
        default=None, converter=attrs.converters.optional(to_frozenset)
    )


@frozen
class AddressBookRemove:
    """Remove an address-book contact: it departs (kept, restorable by a save)."""

    contact_id: str


@frozen
class SetOverride:
    """Override one source-covered field of a contact until its lifetime ends."""

    contact_id: str
    field: str = attrs.field(validator=check_field_name)
    value: ContactData
    lifetime: OverrideLifetime = OverrideLifetime.NEXT_SYNC
    until: datetime | None = attrs.field(default=None, converter=utc_or_none)

    def __attrs_post_init__(self) -> None:
        if (self.lifetime is OverrideLifetime.UNTIL) != (self.until is not None):
            msg = "'until' is given exactly when the lifetime is UNTIL"
            raise UsageError(msg)


@frozen
class ClearOverride:
    """End an override now; it is reported as ``cleared``."""

    contact_id: str
    field: str = attrs.field(validator=check_field_name)


@frozen
class SetGroup:
    """Create or replace a group."""

    group: GroupDefinition


@frozen
class RemoveGroup:
    """Remove the group called ``name`` (its members stay in the book)."""

    name: str


@frozen
class Link:
    """Say that two records are one person (rule 12).

    The records' contacts become one; its home is the best-ranked source of
    the policy among its records.
    """

    record: str
    other: str


@frozen
class Unlink:
    """Take a record out of the contact it was linked into."""

    record: str


@frozen
class Erase:
    """Erase a person from the book and its history (rule 13).

    With ``suppress`` (the default), each of the person's records leaves a
    suppression entry, a keyed hash of its source and key (see
    :func:`suppression_digest`), so that a later sync does not bring the
    person back; the sync's report counts the records it skipped.
    """

    contact_id: str
    suppress: bool = True


@frozen
class RefreshView:
    """Rebuild the book's current view from its history, under the policy merged with.

    A merge keeps the view only under the basis it was computed with (see
    :func:`~sourcetruth.view.view_basis`): after a change of policy, or a
    new release of ``phonenumbers`` or ``email-validator``, readers answer
    from history until this change re-derives every entry, once. It changes
    no contact: its report has no field changes.
    """
