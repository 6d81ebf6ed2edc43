"""What one merge changed, and the report that says so (package-private).

After a change is applied to the draft, each affected contact is compared
before and after, as effective contacts at the merge's time: every field
whose value changed (compared as :func:`~sourcetruth.comparable` compares,
rule 10) is a :class:`~sourcetruth.FieldChange` with its provenance before
and after, and a contact that left or came back is a departure or a return.
A contact the merge created from one record (every contact of an initial
sync) takes its changes straight from that record. The report adds what the
draft noted as it went.

The same pass keeps the book's current view (:mod:`sourcetruth.view`): the
entry of each contact the merge touched is recomputed, and the effective
contact after the merge is read off it; the one before, off the old entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from sourcetruth import _build as build
from sourcetruth._draft import Draft
from sourcetruth._history import SourceOrigin, SyncsAt, origin_provenance
from sourcetruth._overlay import Overlay, settled
from sourcetruth.effective import comparable, effective_contact
from sourcetruth.model import FIELDS, Book, Contact, ContactData, Role, split_record_id
from sourcetruth.policy import Policy
from sourcetruth.report import FieldChange, Held, MergeResult, Report, Status
from sourcetruth.view import (
    Checked,
    Coverage,
    CurrentContact,
    build_view,
    coverage,
    current_entry,
    entry_holds,
    fresh_entry,
    view_basis,
    view_is_current,
)

__all__ = ["applied", "on_hold", "unchanged"]


def on_hold(draft: Draft, kind: str, held: Held) -> MergeResult:
    """The book unchanged, and a report of why the sync was held (rule 6)."""
    report = Report(Status.HELD, kind, draft.at, draft.by, source=draft.source, held=held)
    return MergeResult(draft.old, report)


def unchanged(draft: Draft, kind: str) -> MergeResult:
    """The book unchanged: the same snapshot again (rule 5), or an edit that changes nothing."""
    report = Report(
        Status.NO_CHANGE, kind, draft.at, draft.by, source=draft.source, suppressed=draft.skipped
    )
    return MergeResult(draft.old, report)


def applied(draft: Draft, kind: str, *, refresh: bool = False) -> MergeResult:
    """The new book, and the report of everything the change did to it.

    The new book's current view is the old one with the entries of the
    contacts this merge touched recomputed, when the old one was computed
    under the same basis (or the book was empty); with *refresh*, the whole
    view rebuilt. Otherwise the new book has no view.
    """
    new_book = draft.book()
    old, policy = draft.old, draft.policy
    basis = view_basis(policy)
    keep = old.view_basis == basis or (old.seq == 0 and not old.contacts)
    upkeep: dict[str, CurrentContact | None] | None = {} if keep and not refresh else None
    changes, departed, returned = _compare(draft, new_book, upkeep)
    if refresh:
        new_book = attrs.evolve(new_book, view=build_view(new_book, policy), view_basis=basis)
    elif upkeep is not None:
        if draft.erased:
            # An erasure may take linked contacts with it: no entry may outlive its contact.
            upkeep.update((cid, None) for cid in old.view if cid not in new_book.contacts)
        view: Mapping[str, CurrentContact]
        if old.view_basis == basis and old.view:
            overlay = Overlay(old.view)
            for cid, entry in upkeep.items():
                if entry is not None:
                    overlay[cid] = entry
                elif cid in overlay:
                    del overlay[cid]
            view = settled(overlay)
        else:
            # An empty view (a new file's table) is not looked up key by key: a
            # first sync's entries are the new view, as they come.
            view = {cid: entry for cid, entry in upkeep.items() if entry is not None}
        new_book = attrs.evolve(new_book, view=view, view_basis=basis)
    report = Report(
        Status.APPLIED,
        kind,
        draft.at,
        draft.by,
        source=draft.source,
        sync=draft.sync,
        created=tuple(sorted(draft.created)),
        changes=tuple(changes),
        departed=tuple(departed),
        returned=tuple(returned),
        erased=tuple(sorted(draft.erased)),
        overrides_set=tuple(draft.overrides_set),
        overrides_ended=tuple(draft.overrides_ended),
        overrides_kept=tuple(draft.overrides_kept),
        unnormalised=tuple(draft.unnormalised),
        duplicates=tuple(draft.duplicates),
        suppressed=draft.skipped,
    )
    return MergeResult(new_book, report)


def _compare(
    draft: Draft, new_book: Book, upkeep: dict[str, CurrentContact | None] | None
) -> tuple[list[FieldChange], list[str], list[str]]:
    """The field changes, departures and returns of the contacts the draft affected.

    With *upkeep*, each affected contact's new view entry is put there, and
    the effective contact after the merge is read off it.
    """
    book, policy, at = draft.old, draft.policy, draft.at
    changes: list[FieldChange] = []
    departed: list[str] = []
    returned: list[str] = []
    created = set(draft.created)
    shared: dict[tuple[str, Any], ContactData] = {}
    sources: dict[str, Coverage] = {}  # what each source covers, looked up once
    syncs_at: SyncsAt = {}
    old_view = view_is_current(book, policy, at)
    same_basis = bool(book.view_basis) and book.view_basis == view_basis(policy)
    for cid in sorted(draft.affected - set(draft.erased)):
        if cid in created and cid not in book.contacts:
            fresh = _created(new_book, cid, policy, shared, draft.checked, sources, syncs_at)
            if fresh is not None:
                changes.extend(fresh[0])
                if upkeep is not None:
                    upkeep[cid] = fresh[1]
                continue
        previous = book.view.get(cid) if same_basis else None
        before: Contact | None
        if old_view and (previous is None or entry_holds(previous, at)):
            before = None if previous is None else previous.contact(book, at)
        else:
            before = effective_contact(book, cid, policy, at) if cid in book.contacts else None
        if upkeep is None:
            after = effective_contact(new_book, cid, policy, at)
        else:
            entry = current_entry(
                new_book, cid, policy, at, checked=draft.checked, previous=previous
            )
            upkeep[cid] = entry
            after = None if entry is None else entry.contact(new_book, at)
        region = policy.region_of(None if after is None else after.provenance["phones"].source)
        changes.extend(_diff(before, after, region, shared))
        if after is not None and after.departed and (before is None or not before.departed):
            departed.append(cid)
        if before is not None and before.departed and after is not None and not after.departed:
            returned.append(cid)
    return changes, departed, returned


def _diff(
    before: Contact | None,
    after: Contact | None,
    region: str,
    shared: dict[tuple[str, Any], ContactData],
) -> Iterator[FieldChange]:
    if after is None:
        return
    for name in FIELDS:
        new = after.data.get(name)
        if before is None:
            if _is_empty(name, new):
                continue
            yield FieldChange(
                after.id, name, None, _only(after.data, name, shared), None, after.provenance[name]
            )
            continue
        old = before.data.get(name)
        # Equal raw values are equal normalised values: normalise only what differs.
        if old == new or comparable(name, old, region) == comparable(name, new, region):
            continue
        yield FieldChange(
            after.id,
            name,
            _only(before.data, name, shared),
            _only(after.data, name, shared),
            before.provenance[name],
            after.provenance[name],
        )


def _only(data: ContactData, name: str, shared: dict[tuple[str, Any], ContactData]) -> ContactData:
    """``data.only((name,))``, one copy per value for the fields whose values repeat.

    Roles, year and registration groups and names recur across a school,
    and a report of an initial sync holds one per contact and field.
    """
    value = getattr(data, name)
    if name not in _REPEATING or not isinstance(value, _SHARED_TYPES):
        return build.only(data, name)
    key = (name, value)
    found = shared.get(key)
    if found is None:
        found = shared[key] = build.only(data, name)
    return found


#: The text fields, which compare trimmed: whitespace alone is empty.
_TEXT: Final = frozenset(n for n in FIELDS if isinstance(ContactData().get(n), str))
_SHARED_TYPES: Final = (str, Role)
_REPEATING: Final = frozenset(
    {"given_name", "family_name", "role", "year_group", "registration_group"}
)


def _created(
    book: Book,
    contact_id: str,
    policy: Policy,
    shared: dict[tuple[str, Any], ContactData],
    checked: Checked,
    sources: dict[str, Coverage],
    syncs_at: SyncsAt,
) -> tuple[list[FieldChange], CurrentContact] | None:
    """What :func:`_diff` gives for a contact this merge created from one record, and its entry.

    An initial sync creates every contact of a school, so this path matters.
    A contact of one record with one version, and no link or override, is
    that record's covered values with one provenance: its changes and its
    view entry come straight from the record, with no effective contact to
    build. None for any other contact.
    """
    entry = book.contacts[contact_id]
    if (
        len(entry.members) != 1
        or entry.redirects
        or contact_id in book.overrides
        or contact_id in book.ended_overrides
    ):
        return None
    source, key = split_record_id(entry.members[0].record)
    state = book.records[source][key]
    version = state.versions[0]
    data = version.data
    if (
        len(state.versions) != 1
        or data is None
        or version.applied_at != book.updated_at
        or state.id != contact_id
    ):
        return None
    # Every such version was applied by this merge: one sync lookup per source.
    origin = SourceOrigin(source, key, version, None)
    provenance = origin_provenance(book, origin, version.applied_at, syncs_at)
    covers = sources.get(source)
    if covers is None:
        covers = sources[source] = coverage(policy, source)
    changes = []
    for name in covers.names:
        if _is_empty(name, getattr(data, name)):
            continue
        changes.append(
            build.field_change(contact_id, name, None, _only(data, name, shared), None, provenance)
        )
    return changes, fresh_entry(state, version, policy, checked, covers, origin)


def _is_empty(name: str, value: Any) -> bool:
    """Whether *value* compares equal to an empty field *name* (rule 10), without normalising.

    An empty field compares as its empty value, and only an empty value (or
    text of whitespace alone) compares equal to it.
    """
    if value == _EMPTY[name]:
        return True
    return name in _TEXT and isinstance(value, str) and not value.strip()


_EMPTY: Final = {name: ContactData().get(name) for name in FIELDS}
