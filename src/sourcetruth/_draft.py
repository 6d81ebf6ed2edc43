"""The draft: a copy-on-write working copy of a book for one merge (package-private).

:func:`~sourcetruth.merge` applies a change to a :class:`Draft` of the book,
never to the book itself: the draft lays an :class:`~sourcetruth._overlay.Overlay` over each of
the book's maps, so it writes only what the change touches and copies
nothing, and it notes as it goes what
the report will say (contacts created and affected, overrides set, ended and
kept, values kept raw, possible duplicates). A change that raises leaves the
book as it was; :meth:`Draft.book` is the new book.

How an override ends (:func:`outcome`), and the ending of overrides whose
time ran out (:func:`end_expired`), are here because every kind of change
ends overrides through the draft.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from sourcetruth import _build as build
from sourcetruth._overlay import Overlay, root_of, settled, touched_keys
from sourcetruth.effective import comparable, version_at
from sourcetruth.exceptions import UnknownRecordError
from sourcetruth.model import (
    EXPIRY,
    Book,
    ContactData,
    ContactEntry,
    EndedOverride,
    Override,
    OverrideOutcome,
    RecordState,
    RecordVersion,
    record_id,
    split_record_id,
)
from sourcetruth.policy import Policy
from sourcetruth.report import PossibleDuplicate, Unnormalised
from sourcetruth.view import Checked, check_addresses

__all__ = ["Draft", "end_expired", "outcome"]


class Draft:
    """A copy-on-write working copy of a book for one merge."""

    def __init__(self, book: Book, policy: Policy, at: datetime, by: str) -> None:
        self.old = book
        self.policy = policy
        self.at = at
        self.by = by
        self.seq = book.seq + 1
        self.records: dict[str, Mapping[str, RecordState]] = dict(book.records)
        self._copied: dict[str, Overlay[str, RecordState]] = {}
        self.contacts: Overlay[str, ContactEntry] = Overlay(book.contacts)
        self.overrides: Overlay[str, tuple[Override, ...]] = Overlay(book.overrides)
        self.ended: Overlay[str, tuple[EndedOverride, ...]] = Overlay(book.ended_overrides)
        self.syncs = dict(book.syncs)
        self.groups = dict(book.groups)
        self.affected: set[str] = set()
        self.created: list[str] = []
        self.overrides_set: list[Override] = []
        self.overrides_ended: list[EndedOverride] = []
        self.overrides_kept: list[Override] = []
        self.unnormalised: list[Unnormalised] = []
        self.duplicates: list[PossibleDuplicate] = []
        self.erased: list[str] = []
        self.source: str | None = None  # the source of a sync's snapshot; None for an edit
        self.sync: int | None = None  # this merge's number, once a sync applies
        self.suppressed = book.suppressed
        self.suppression_check = book.suppression_check
        self.skipped = 0
        self.checked: Checked = {}  # addresses normalised in this merge, for the view

    # records and contacts

    def forget(self, source: str) -> None:
        """Drop the working copy of a source that no longer holds any record."""
        self._copied.pop(source, None)

    def states(self, source: str) -> Overlay[str, RecordState]:
        """The source's records, to write to."""
        if source not in self._copied:
            self._copied[source] = Overlay(self.records.get(source, {}))
            self.records[source] = self._copied[source]
        return self._copied[source]

    def state(self, rid: str) -> RecordState:
        source, key = split_record_id(rid)
        try:
            return self.records[source][key]
        except KeyError:
            msg = f"the book holds no record {rid!r}"
            raise UnknownRecordError(msg) from None

    def put_version(
        self, state: RecordState, data: ContactData | None, extracted_at: datetime
    ) -> RecordState:
        version = RecordVersion(data, self.at, extracted_at, self.seq, self.by)
        new = attrs.evolve(state, versions=(*state.versions, version))
        self.states(state.source)[state.key] = new
        self.affected.add(state.contact_id)
        return new

    def new_record(
        self,
        source: str,
        key: str,
        data: ContactData,
        extracted_at: datetime,
        contact_id: str | None = None,
    ) -> RecordState:
        rid = record_id(source, key)
        cid = contact_id or rid
        # An initial sync comes here once per record: its times are the merge's
        # and the snapshot's, in UTC already, and data is a checked ContactData.
        version = build.record_version(data, self.at, extracted_at, self.seq, self.by)
        state = build.record_state(source, key, cid, (version,))
        self.states(source)[key] = state
        entry = self.contacts.get(cid)
        member = build.membership(rid, self.at)
        if entry is None:
            self.put_contact(build.contact_entry(cid, (member,)))
            self.created.append(cid)
        else:
            self.put_contact(
                attrs.evolve(entry, members=(*entry.members, member)).close_redirects(self.at)
            )
        self.affected.add(cid)
        return state

    def put_contact(self, entry: ContactEntry) -> None:
        self.contacts[entry.id] = entry

    def drop_contact(self, cid: str) -> None:
        del self.contacts[cid]

    def book(self) -> Book:
        """The book as the draft stands: the merge's result, or for queries within it.

        The draft's overlays are sealed into the book, and the draft goes on
        writing over them: the book never changes after it is made.
        """
        records: dict[str, Mapping[str, RecordState]] = {}
        for source, states in list(self.records.items()):
            records[source] = settled(states)
            if source in self._copied:
                self._copied[source] = Overlay(records[source])
                self.records[source] = self._copied[source]
        contacts, overrides, ended = (
            settled(self.contacts),
            settled(self.overrides),
            settled(self.ended),
        )
        self.contacts, self.overrides, self.ended = (
            Overlay(contacts),
            Overlay(overrides),
            Overlay(ended),
        )
        return Book(
            records=records,
            contacts=contacts,
            overrides=overrides,
            ended_overrides=ended,
            syncs=self.syncs,
            groups=self.groups,
            seq=self.seq,
            updated_at=self.at,
            suppressed=self.suppressed,
            suppression_check=self.suppression_check,
        )

    # overrides

    def end_override(
        self, override: Override, outcome: OverrideOutcome, *, expired_at: datetime | None = None
    ) -> None:
        """End *override* in this merge, or as of *expired_at* when its time ran out."""
        cid = override.contact_id
        left = tuple(o for o in self.overrides.get(cid, ()) if o is not override)
        if left:
            self.overrides[cid] = left
        elif cid in self.overrides:
            del self.overrides[cid]  # a book lists only the contacts with overrides in force
        if expired_at is None:
            ended = EndedOverride(override, self.at, outcome, self.by, self.sync)
        else:
            ended = EndedOverride(override, expired_at, outcome, EXPIRY, None)
        self.ended[cid] = (*self.ended.get(cid, ()), ended)
        self.overrides_ended.append(ended)
        self.affected.add(cid)

    def add_override(self, override: Override) -> None:
        cid = override.contact_id
        self.overrides[cid] = (*self.overrides.get(cid, ()), override)
        self.overrides_set.append(override)
        self.affected.add(cid)

    # values kept raw

    def check_values(self, rid: str, data: ContactData) -> None:
        """Report each phone and email of *data*, record *rid*, that does not normalise.

        What normalises is noted for the current view, so that it is not normalised twice.
        """
        region = self.policy.region_of(split_record_id(rid)[0])
        phones, emails = check_addresses(self.checked, data, region)
        for i, found in enumerate(phones):
            if found.problem is not None:
                self.unnormalised.append(Unnormalised(rid, "phones", i, found.problem))
        for i, found in enumerate(emails):
            if found.problem is not None:
                self.unnormalised.append(Unnormalised(rid, "emails", i, found.problem))

    # the outcome

    def changed(self) -> bool:
        """Whether the draft differs from the book it started from.

        A sync always counts, since it confirms what the source still holds;
        an edit that changes nothing (a save of the same values) does not.
        """
        return bool(
            self.sync is not None or self.affected or self.erased or self.groups != self.old.groups
        )


def outcome(override: Override, data: ContactData | None, region: str) -> OverrideOutcome:
    """How *override* ends when its source holds *data* (None: the record departed)."""
    if data is None:
        return OverrideOutcome.DEPARTED
    name = override.field
    now = comparable(name, data.get(name), region)
    edited = comparable(name, override.edited_value, region)
    base = comparable(name, override.base_value, region)
    if now == edited:
        return OverrideOutcome.CONFIRMED
    if now == base:
        return OverrideOutcome.LOST
    if name in ("phones", "emails") and _untyped(edited) != _untyped(base):
        # The edit changed numbers or addresses, and a source may type them its
        # own way (a OneRoster email has no type): what it holds decides.
        if _untyped(now) == _untyped(edited):
            return OverrideOutcome.CONFIRMED
        if _untyped(now) == _untyped(base):
            return OverrideOutcome.LOST
    return OverrideOutcome.SUPERSEDED


def _untyped(value: tuple[tuple[Any, str], ...]) -> tuple[str, ...]:
    return tuple(text for _, text in value)


def end_expired(draft: Draft) -> None:
    """End the overrides whose ``until`` has passed, as of that time, judged by the source then."""
    region_of = draft.policy.region_of
    for cid in _may_expire(draft.overrides):
        for override in draft.overrides[cid]:
            until = override.until
            if until is not None and until <= draft.at:
                version = version_at(draft.state(override.record), until)
                data = None if version is None else version.data
                ended = outcome(override, data, region_of(override.source))
                draft.end_override(override, ended, expired_at=until)


def _may_expire(overrides: Mapping[str, tuple[Override, ...]]) -> list[str]:
    """The contacts whose overrides may hold an ``until``, in order: all, unless the store says.

    A store's table of overrides may offer ``with_until()`` (the embedded
    store finds them inside its rows); the keys this merge wrote are added,
    as the store has not seen them.
    """
    with_until: Callable[[], set[str]] | None = getattr(root_of(overrides), "with_until", None)
    if with_until is None:
        return sorted(overrides)
    candidates = with_until() | touched_keys(overrides)
    return sorted(cid for cid in candidates if cid in overrides)
