"""The deterministic merge: a change applied to a book, with a report of what it did.

:func:`merge` is a pure function of (book, change, policy, time, who): it
reads no clock, no environment and no randomness, never changes the book it
is given, and returns a new book with a :class:`~sourcetruth.Report` of
everything that happened. A merge that raises leaves nothing behind; a held
merge returns the book it was given. :func:`dry_run` is the same merge with
only its report kept (rule 4).

Each kind of change is applied to a draft of the book by one function, found
in one table (``_KINDS``): a source's sync (``sourcetruth._sync``), a
person's edits (``sourcetruth._edits``) and who is who
(``sourcetruth._identity``); what changed is read off the draft
(``sourcetruth._field_changes``), which also keeps the book's current view
(:mod:`sourcetruth.view`). The queries over a book live in
:mod:`sourcetruth.effective`, :mod:`sourcetruth.audience` and
:mod:`sourcetruth.duplicates`, and the report in :mod:`sourcetruth.report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias

from sourcetruth._collector import merge_paused
from sourcetruth._draft import Draft, end_expired
from sourcetruth._edits import (
    clear_override,
    remove,
    remove_group,
    save,
    set_group,
    set_override,
)
from sourcetruth._field_changes import applied, on_hold, unchanged
from sourcetruth._identity import erase, link, unlink
from sourcetruth._moved import moved_names
from sourcetruth._sync import confirm_sync, sync
from sourcetruth.changes import (
    AddressBookRemove,
    AddressBookSave,
    ClearOverride,
    ConfirmSync,
    Erase,
    Link,
    RefreshView,
    RemoveGroup,
    SetGroup,
    SetOverride,
    Unlink,
)
from sourcetruth.exceptions import OutOfOrderError, UsageError
from sourcetruth.model import Book, Snapshot, utc
from sourcetruth.policy import Policy

if TYPE_CHECKING:
    from sourcetruth.report import Held, MergeResult, Report

__all__ = ["Change", "dry_run", "merge"]

#: Every kind of change :func:`merge` applies to a book.
Change: TypeAlias = (
    Snapshot
    | ConfirmSync
    | AddressBookSave
    | AddressBookRemove
    | SetOverride
    | ClearOverride
    | SetGroup
    | RemoveGroup
    | Link
    | Unlink
    | Erase
    | RefreshView
)


class _Kind(NamedTuple):
    """A kind of change: its name in reports and journals, and what applies it to a draft.

    ``apply`` returns the hold of a sync the departure guard stopped (rule 6).
    """

    name: str
    apply: Callable[[Draft, Any], Held | None]


#: Every kind of change :func:`merge` applies, by type.
_KINDS: Final[Mapping[type, _Kind]] = {
    Snapshot: _Kind("snapshot", sync),
    ConfirmSync: _Kind("confirm-sync", confirm_sync),
    AddressBookSave: _Kind("address-book-save", save),
    AddressBookRemove: _Kind("address-book-remove", remove),
    SetOverride: _Kind("set-override", set_override),
    ClearOverride: _Kind("clear-override", clear_override),
    SetGroup: _Kind("set-group", set_group),
    RemoveGroup: _Kind("remove-group", remove_group),
    Link: _Kind("link", link),
    Unlink: _Kind("unlink", unlink),
    Erase: _Kind("erase", erase),
    RefreshView: _Kind("refresh-view", lambda _draft, _change: None),
}


def _kind(book: Book, change: Change, at: datetime, by: str) -> _Kind:
    """The kind of *change*, once it is known that the book can take it at *at* from *by*."""
    if not by:
        msg = "say who makes the change ('by')"
        raise UsageError(msg)
    kind = _KINDS.get(type(change))
    if kind is None:
        msg = f"merge cannot apply a {type(change).__name__}"
        raise UsageError(msg)
    if book.updated_at is not None and book.updated_at > at:
        msg = "the book already holds a change made after this time; merges go forward in time"
        raise OutOfOrderError(msg, latest=book.updated_at)
    return kind


def merge(book: Book, change: Change, *, policy: Policy, at: datetime, by: str) -> MergeResult:
    """Apply *change* to *book* under *policy* at *at*, on behalf of *by*.

    Returns the new book and a report. Raises a :class:`~sourcetruth.UsageError`
    or :class:`~sourcetruth.SourceDataError` (and changes nothing) for a change
    that cannot be applied; returns the given book unchanged, with status
    ``HELD``, when the departure guard trips (rule 6), and with status
    ``NO_CHANGE`` for a snapshot already applied (rule 5) or an edit that
    changes nothing.
    """
    at = utc(at)
    kind = _kind(book, change, at, by)
    with merge_paused(_records(change)):
        draft = Draft(book, policy, at, by)
        held = kind.apply(draft, change)
        if held is not None:
            return on_hold(draft, kind.name, held)
        if draft.source is not None and draft.sync is None:
            return unchanged(draft, kind.name)  # the same snapshot again (rule 5)
        end_expired(draft)
        refresh = isinstance(change, RefreshView)
        if not (refresh or draft.changed()):
            return unchanged(draft, kind.name)
        return applied(draft, kind.name, refresh=refresh)


def _records(change: Change) -> int:
    """How many records *change* brings: what decides whether the collector pauses."""
    if isinstance(change, ConfirmSync):
        return len(change.snapshot.records)
    if isinstance(change, Snapshot):
        return len(change.records)
    return 0


def dry_run(book: Book, change: Change, *, policy: Policy, at: datetime, by: str) -> Report:
    """The report that :func:`merge` would give, without keeping the new book (rule 4)."""
    return merge(book, change, policy=policy, at=at, by=by).report


#: Where each public name that lived here before lives now. Importing one
#: from here still works, with a DeprecationWarning, for one release.
_MOVED: Final = {
    "EXPIRY": "sourcetruth.model",
    "Audience": "sourcetruth.audience",
    "Explanation": "sourcetruth.effective",
    "FieldChange": "sourcetruth.report",
    "Held": "sourcetruth.report",
    "MergeResult": "sourcetruth.report",
    "OverrideEvent": "sourcetruth.effective",
    "PossibleDuplicate": "sourcetruth.report",
    "Recipient": "sourcetruth.audience",
    "Recipients": "sourcetruth.audience",
    "Report": "sourcetruth.report",
    "Status": "sourcetruth.report",
    "Unnormalised": "sourcetruth.report",
    "Unreachable": "sourcetruth.audience",
    "comparable": "sourcetruth.effective",
    "contact_at": "sourcetruth.effective",
    "contacts_at": "sourcetruth.effective",
    "explain": "sourcetruth.effective",
    "possible_duplicates": "sourcetruth.duplicates",
    "recipients": "sourcetruth.audience",
    "usable_address": "sourcetruth.audience",
}


__getattr__ = moved_names(__name__, _MOVED)
