"""The deterministic merge, and the queries over a book.

:func:`merge` is a pure function of (book, change, policy, time, who): it
reads no clock, no environment and no randomness, never changes the book it
is given, and returns a new book with a :class:`Report` of everything that
happened. A merge that raises leaves nothing behind; a held merge returns the
book it was given.

The queries (:func:`contact_at`, :func:`explain`, :func:`recipients`,
:func:`possible_duplicates`) answer for any time, past or present, from the
history the book keeps: one version per changed record, never copies of the
book.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

import attrs

from sourcetruth.audience import (
    Recipient,
    Recipients,
    Unreachable,
    recipients,
    usable_address,
)
from sourcetruth.duplicates import duplicates_among, possible_duplicates
from sourcetruth.effective import (
    Explanation,
    OverrideEvent,
    comparable,
    contact_at,
    contacts_at,
    effective_contact,
    explain,
    last_data,
    resolve_id,
    source_provenance,
    version_at,
)
from sourcetruth.exceptions import (
    ConfirmationMismatchError,
    EmptySnapshotError,
    OutOfOrderError,
    SourceDataError,
    StaleSnapshotError,
    UnknownContactError,
    UnknownGroupError,
    UnknownRecordError,
    UsageError,
)
from sourcetruth.model import (
    ADDRESS_BOOK,
    FIELDS,
    KEPT_AT_SYNC,
    AddressBookRemove,
    AddressBookSave,
    Book,
    ClearOverride,
    ConfirmSync,
    Contact,
    ContactData,
    ContactEntry,
    EndedOverride,
    Erase,
    GroupDefinition,
    GroupVersion,
    Link,
    Membership,
    Override,
    OverrideOutcome,
    ProvenanceKind,
    Record,
    RecordState,
    RecordVersion,
    Redirect,
    RemoveGroup,
    Role,
    SetGroup,
    SetOverride,
    Snapshot,
    SnapshotKind,
    SourceKind,
    SyncRecord,
    Unlink,
    check_fields,
    record_id,
    split_record_id,
    suppression_check,
    suppression_digest,
    utc,
)
from sourcetruth.normalise import normalise_email, normalise_phone
from sourcetruth.policy import Policy
from sourcetruth.report import (
    FieldChange,
    Held,
    MergeResult,
    PossibleDuplicate,
    Report,
    Status,
    Unnormalised,
)
from sourcetruth.serialise import to_primitive

__all__ = [
    "EXPIRY",
    "Change",
    "Explanation",
    "FieldChange",
    "Held",
    "MergeResult",
    "OverrideEvent",
    "PossibleDuplicate",
    "Recipient",
    "Recipients",
    "Report",
    "Status",
    "Unnormalised",
    "Unreachable",
    "comparable",
    "contact_at",
    "contacts_at",
    "dry_run",
    "explain",
    "merge",
    "possible_duplicates",
    "recipients",
    "usable_address",
]

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
)


# -- small helpers ---------------------------------------------------------------


def _is_local(state: RecordState) -> bool:
    """A local record: address-book values kept for a contact whose home is a feed.

    Its key is that contact's id, so it holds a ':', which the key of an
    address-book contact of its own never does.
    """
    return state.source == ADDRESS_BOOK and ":" in state.key


def _problems(rid: str, data: ContactData, region: str) -> Iterator[Unnormalised]:
    for i, phone in enumerate(data.phones):
        checked = normalise_phone(phone.number, region)
        if checked.problem is not None:
            yield Unnormalised(rid, "phones", i, checked.problem)
    for i, email in enumerate(data.emails):
        checked = normalise_email(email.address)
        if checked.problem is not None:
            yield Unnormalised(rid, "emails", i, checked.problem)


# -- merge -------------------------------------------------------------------------


#: ``ended_by`` of an override that ended because its ``until`` passed.
EXPIRY: Final = "(expired)"


class _Draft:
    """A copy-on-write working copy of a book for one merge."""

    def __init__(self, book: Book, policy: Policy, at: datetime, by: str) -> None:
        self.old = book
        self.policy = policy
        self.at = at
        self.by = by
        self.seq = book.seq + 1
        self.records: dict[str, Mapping[str, RecordState]] = dict(book.records)
        self._copied: dict[str, dict[str, RecordState]] = {}
        self.contacts: Mapping[str, ContactEntry] = book.contacts
        self._contacts_copied = False
        self.overrides: dict[str, tuple[Override, ...]] = dict(book.overrides)
        self.ended: dict[str, tuple[EndedOverride, ...]] = dict(book.ended_overrides)
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
        self.sync: int | None = None
        self.suppressed = book.suppressed
        self.suppression_check = book.suppression_check
        self.skipped = 0

    # records and contacts

    def forget(self, source: str) -> None:
        """Drop the working copy of a source that no longer holds any record."""
        self._copied.pop(source, None)

    def states(self, source: str) -> dict[str, RecordState]:
        if source not in self._copied:
            self._copied[source] = dict(self.records.get(source, {}))
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
        version = RecordVersion(data, self.at, extracted_at, self.seq, self.by)
        state = RecordState(source, key, cid, (version,))
        self.states(source)[key] = state
        entry = self.contacts.get(cid)
        member = Membership(rid, self.at)
        if entry is None:
            self.put_contact(ContactEntry(cid, (member,)))
            self.created.append(cid)
        else:
            self.put_contact(
                attrs.evolve(entry, members=(*entry.members, member)).close_redirects(self.at)
            )
        self.affected.add(cid)
        return state

    def put_contact(self, entry: ContactEntry) -> None:
        if not self._contacts_copied:
            self.contacts = dict(self.contacts)
            self._contacts_copied = True
        assert isinstance(self.contacts, dict)
        self.contacts[entry.id] = entry

    def drop_contact(self, cid: str) -> None:
        self.put_contact(self.contacts[cid])  # ensures the copy
        assert isinstance(self.contacts, dict)
        del self.contacts[cid]

    def book(self) -> Book:
        """The book as the draft stands: the merge's result, or for queries within it."""
        return Book(
            records=self.records,
            contacts=self.contacts,
            overrides={k: v for k, v in self.overrides.items() if v},
            ended_overrides=self.ended,
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
        self.overrides[cid] = tuple(o for o in self.overrides.get(cid, ()) if o is not override)
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


def _outcome(override: Override, data: ContactData | None, region: str) -> OverrideOutcome:
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


def _token(snapshot: Snapshot, last: SyncRecord | None) -> str:
    """Binds a confirmation to one snapshot's content and the book's last sync of it."""
    body = to_primitive(
        attrs.evolve(
            snapshot,
            records=sorted(snapshot.records, key=lambda r: r.key),
            removed=sorted(snapshot.removed),
        )
    )
    payload = json.dumps([body, None if last is None else last.seq], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _complete(records: tuple[Record, ...], states: Mapping[str, RecordState]) -> tuple[Record, ...]:
    """Partial delta records made whole from the book's current version of each.

    For a person the book does not hold as present there is nothing to keep:
    the record's data, the source's best knowledge, stands for every field.
    """
    whole = []
    for record in records:
        state = states.get(record.key)
        current = None if state is None else state.current.data
        if record.fields is None:
            whole.append(record)
            continue
        if current is None:
            whole.append(Record(record.key, record.data))
            continue
        given = {name: getattr(record.data, name) for name in sorted(record.fields)}
        whole.append(Record(record.key, attrs.evolve(current, **given)))
    return tuple(whole)


def _apply_snapshot(draft: _Draft, snapshot: Snapshot, token: str | None) -> Held | None:
    policy, at = draft.policy, draft.at
    name = snapshot.source
    source = policy.source(name)
    if source.kind is SourceKind.ADDRESS_BOOK:
        msg = "the address book changes by saves, not snapshots"
        raise UsageError(msg)
    if snapshot.extracted_at > at:
        msg = "a snapshot cannot be applied before it was extracted"
        raise UsageError(msg)
    syncs = draft.syncs.get(name, ())
    last = syncs[-1] if syncs else None
    if last is not None and snapshot.extracted_at < last.extracted_at:
        msg = "this snapshot was read before the last one applied for its source"
        raise StaleSnapshotError(msg, source=name)
    records = snapshot.records
    keys = {r.key for r in records}
    if len(keys) != len(records):
        seen: set[str] = set()
        dup = ""
        for r in records:
            if r.key in seen:
                dup = r.key
                break
            seen.add(r.key)
        msg = "two records share one key"
        raise SourceDataError(msg, source=name, key=dup)
    if snapshot.kind is SnapshotKind.FULL and not records:
        msg = "the snapshot holds no records: never read as 'everyone left'"
        raise EmptySnapshotError(msg, source=name)
    both = keys.intersection(snapshot.removed)
    if both:
        msg = "a delta both changes and removes one record"
        raise SourceDataError(msg, source=name, key=min(both))

    if draft.suppressed:
        # Erased people stay out (rule 13): their records are skipped, and counted.
        secret = policy.suppression_key
        if suppression_check(secret) != draft.suppression_check:
            msg = (
                "the policy's suppression_key is not the one this book's erasures used, "
                "so erased people could come back: use that key"
            )
            raise UsageError(msg)
        # An erased record left the book, so only keys the book lacks can be
        # suppressed: the records of everyone present cost no hash.
        known = draft.records.get(name, {})
        kept = tuple(
            r
            for r in records
            if r.key in known or suppression_digest(secret, name, r.key) not in draft.suppressed
        )
        draft.skipped = len(records) - len(kept)
        records = kept
    states = draft.records.get(name, {})
    if any(r.fields is not None for r in records):
        records = _complete(records, states)
    # The hot path: an unchanged record costs one comparison of raw values.
    changed = [
        r for r in records if (s := states.get(r.key)) is None or s.versions[-1].data != r.data
    ]
    population = 0
    if snapshot.kind is SnapshotKind.FULL:
        departing = []
        for key, state in states.items():
            if state.versions[-1].data is not None:
                population += 1
                if key not in keys:
                    departing.append(key)
    else:
        # A delta must cost what it holds, not what the source holds.
        population = last.present if last is not None else 0
        departing = [
            k for k in set(snapshot.removed) if k in states and states[k].current.data is not None
        ]
    departing.sort()

    if last is not None and snapshot.extracted_at == last.extracted_at:
        if changed or departing:
            msg = "a different snapshot with the same extraction time was already applied"
            raise StaleSnapshotError(msg, source=name)
        return None  # the same snapshot again: nothing to do (rule 5)

    if token is not None and token != _token(snapshot, last):
        msg = "this confirmation was given for another snapshot or an earlier book"
        raise ConfirmationMismatchError(msg)
    if token is None and policy.guard.trips(len(departing), population):
        reason = (
            f"{len(departing)} of {population} present records of {name} would depart; "
            f"the guard allows {policy.guard.max_count} or "
            f"{policy.guard.max_fraction:.0%}. Check the export, then confirm this snapshot."
        )
        who = tuple(sorted({states[k].contact_id for k in departing}))
        return Held(reason, len(departing), population, _token(snapshot, last), who)

    draft.sync = draft.seq
    region = policy.default_region
    arrived = 0
    for record in sorted(changed, key=lambda r: r.key):
        previous = states.get(record.key)
        if previous is None:
            state = draft.new_record(name, record.key, record.data, snapshot.extracted_at)
            arrived += 1
        else:
            arrived += previous.current.data is None
            state = draft.put_version(previous, record.data, snapshot.extracted_at)
        draft.unnormalised.extend(_problems(state.id, record.data, region))
    if snapshot.kind is SnapshotKind.FULL:
        present = len(records)
    else:
        present = population + arrived - len(departing)
    for key in departing:
        draft.put_version(states[key], None, snapshot.extracted_at)
    draft.syncs[name] = (
        *syncs,
        SyncRecord(
            draft.seq,
            name,
            snapshot.kind,
            snapshot.extracted_at,
            at,
            draft.by,
            len(records),
            present,
        ),
    )

    # Overrides of this source end at its first sync read after the edit (rule 3).
    new_states = draft.records.get(name, {})
    for cid in sorted(draft.overrides):
        for override in draft.overrides[cid]:
            if override.source != name or override.set_at >= snapshot.extracted_at:
                continue
            data = new_states[split_record_id(override.record)[1]].current.data
            outcome = _outcome(override, data, region)
            if outcome in KEPT_AT_SYNC[override.lifetime]:
                draft.overrides_kept.append(override)
                continue
            draft.end_override(override, outcome)

    if changed:
        book = draft.book()
        fresh = [book.records[name][r.key] for r in changed]
        draft.duplicates.extend(duplicates_among(book, policy, fresh))
    return None


def _home(draft: _Draft, cid: str) -> Contact:
    contact = effective_contact(draft.book(), cid, draft.policy, draft.at)
    if contact is None:
        msg = f"the book holds no contact {cid!r}"
        raise UnknownContactError(msg)
    return contact


def _save(draft: _Draft, change: AddressBookSave) -> None:
    names = change.fields if change.fields is not None else frozenset(FIELDS)
    check_fields(names)
    cid = resolve_id(draft.old, change.contact_id)
    region = draft.policy.default_region
    if cid not in draft.contacts:
        source, key = split_record_id(cid)
        if source != ADDRESS_BOOK:
            msg = f"the book holds no contact {cid!r}; new contacts are '{ADDRESS_BOOK}:KEY'"
            raise UnknownContactError(msg)
        if ":" in key or not key:
            msg = "an address-book key must be non-empty and hold no ':'"
            raise UsageError(msg)
        if key in draft.records.get(ADDRESS_BOOK, {}):
            msg = f"the address-book key {key!r} is taken"
            raise UsageError(msg)
        state = draft.new_record(ADDRESS_BOOK, key, change.data.only(tuple(names)), draft.at)
        draft.unnormalised.extend(_problems(state.id, change.data.only(tuple(names)), region))
        return
    contact = _home(draft, cid)
    home_source = split_record_id(contact.home)[0]
    if home_source == ADDRESS_BOOK:
        state = draft.state(contact.home)
        held = last_data(state, state.current)
        base = held.data if held is not None and held.data is not None else ContactData()
        new = attrs.evolve(base, **{n: change.data.get(n) for n in names})
        if new != state.current.data:
            draft.put_version(state, new, draft.at)
            draft.unnormalised.extend(_problems(state.id, new, region))
        return
    if contact.departed:
        msg = "the contact has departed its source; it cannot be edited"
        raise UsageError(msg)
    local: dict[str, Any] = {}
    for name in sorted(names):
        value = change.data.get(name)
        owner = _owner(draft, contact, name)
        if owner is None:
            local[name] = value
            continue
        wanted = comparable(name, value, region)
        if wanted == comparable(name, contact.data.get(name), region):
            continue
        in_force = [o for o in draft.overrides.get(cid, ()) if o.field == name]
        source_data = owner.current.data or ContactData()
        if in_force and wanted == comparable(name, source_data.get(name), region):
            # Saving the source's own value back undoes the edit.
            for override in in_force:
                draft.end_override(override, OverrideOutcome.CLEARED)
            continue
        _set_override(draft, contact, SetOverride(cid, name, change.data.only((name,))))
    if local:
        _save_local(draft, contact, local)


def _owner(draft: _Draft, contact: Contact, field_name: str) -> RecordState | None:
    """The feed record whose value of *field_name* the contact shows, if a feed supplies it.

    An edit of that field is an override of that record, ended by that
    feed's next sync; a field no feed supplies is a local value.
    """
    prov = contact.provenance[field_name]
    if prov.kind is ProvenanceKind.DEFAULT or prov.source in (None, ADDRESS_BOOK):
        return None
    return draft.state(record_id(prov.source, prov.record_key or ""))


def _save_local(draft: _Draft, contact: Contact, local: dict[str, Any]) -> None:
    """Keep values for fields that no feed supplies, in the contact's local record."""
    key = contact.id
    state = draft.records.get(ADDRESS_BOOK, {}).get(key)
    if state is None:
        state = draft.new_record(ADDRESS_BOOK, key, ContactData(**local), draft.at, contact.id)
    else:
        new = attrs.evolve(state.current.data or ContactData(), **local)
        if new == state.current.data:
            return
        state = draft.put_version(state, new, draft.at)
    assert state.current.data is not None
    draft.unnormalised.extend(_problems(state.id, state.current.data, draft.policy.default_region))


def _set_override(draft: _Draft, contact: Contact, change: SetOverride) -> None:
    if split_record_id(contact.home)[0] == ADDRESS_BOOK:
        msg = "address-book contacts are edited directly, not overridden"
        raise UsageError(msg)
    owner = _owner(draft, contact, change.field)
    if owner is None:
        msg = f"no source supplies {change.field!r} for this contact: save it in the address book"
        raise UsageError(msg)
    if contact.departed:
        msg = "the contact has departed its source; it cannot be overridden"
        raise UsageError(msg)
    if change.until is not None and change.until <= draft.at:
        msg = "an override's 'until' must be after the time it is set"
        raise UsageError(msg)
    for existing in draft.overrides.get(contact.id, ()):
        if existing.field == change.field:
            draft.end_override(existing, OverrideOutcome.CLEARED)
    source_data = owner.current.data or ContactData()
    override = Override(
        contact_id=contact.id,
        field=change.field,
        value=change.value.only((change.field,)),
        base=source_data.only((change.field,)),
        record=owner.id,
        set_by=draft.by,
        set_at=draft.at,
        lifetime=change.lifetime,
        until=change.until,
    )
    draft.add_override(override)
    draft.unnormalised.extend(_problems(owner.id, override.value, draft.policy.default_region))


def _remove(draft: _Draft, change: AddressBookRemove) -> None:
    contact = _home(draft, resolve_id(draft.old, change.contact_id))
    if split_record_id(contact.home)[0] != ADDRESS_BOOK:
        msg = "this contact's home is a source: remove it there"
        raise UsageError(msg)
    if not contact.departed:
        draft.put_version(draft.state(contact.home), None, draft.at)


def _clear(draft: _Draft, change: ClearOverride) -> None:
    cid = resolve_id(draft.old, change.contact_id)
    found = [o for o in draft.overrides.get(cid, ()) if o.field == change.field]
    if not found:
        msg = f"no override of {change.field!r} is in force for that contact"
        raise UsageError(msg)
    for override in found:
        draft.end_override(override, OverrideOutcome.CLEARED)


def _set_group(draft: _Draft, group: GroupDefinition | None, name: str) -> None:
    if group is not None:
        missing = sorted(m for m in group.members if resolve_id(draft.old, m) not in draft.contacts)
        if missing:
            msg = f"group {name!r} names contacts the book does not hold: {missing}"
            raise UnknownContactError(msg)
    elif not draft.groups.get(name) or draft.groups[name][-1].group is None:
        msg = f"no group named {name!r}"
        raise UnknownGroupError(msg)
    versions = draft.groups.get(name, ())
    if group is not None and versions and versions[-1].group == group:
        return
    draft.groups[name] = (*draft.groups.get(name, ()), GroupVersion(name, draft.at, group))


def _move(draft: _Draft, rid: str, source_cid: str, target_cid: str) -> None:
    """Move record *rid* from one contact to another, from now on."""
    at = draft.at
    old = draft.contacts[source_cid]
    draft.put_contact(
        attrs.evolve(
            old,
            members=tuple(
                attrs.evolve(m, until=at) if m.record == rid and m.until is None else m
                for m in old.members
            ),
        )
    )
    target = draft.contacts.get(target_cid)
    member = Membership(rid, at)
    if target is None:
        draft.put_contact(ContactEntry(target_cid, (member,)))
    else:
        draft.put_contact(
            attrs.evolve(target, members=(*target.members, member)).close_redirects(at)
        )
    state = draft.state(rid)
    draft.states(state.source)[state.key] = attrs.evolve(state, contact_id=target_cid)
    draft.affected.update((source_cid, target_cid))


def _clear_all(draft: _Draft, cid: str) -> None:
    for override in draft.overrides.get(cid, ()):
        draft.end_override(override, OverrideOutcome.CLEARED)


def _linked(draft: _Draft, cid: str) -> list[RecordState]:
    """The records that make up a contact now, its local record aside."""
    found = [draft.state(m.record) for m in draft.contacts[cid].members if m.until is None]
    return [state for state in found if not _is_local(state)]


def _link(draft: _Draft, change: Link) -> None:
    a, b = draft.state(change.record), draft.state(change.other)
    if _is_local(a) or _is_local(b):
        msg = "a contact's local record is not a person of its own: link the contact's records"
        raise UsageError(msg)
    ca, cb = resolve_id(draft.old, a.contact_id), resolve_id(draft.old, b.contact_id)
    if ca == cb:
        msg = "these records are already one person"
        raise UsageError(msg)
    records_a, records_b = _linked(draft, ca), _linked(draft, cb)
    shared = sorted({s.source for s in records_a} & {s.source for s in records_b})
    if shared:
        msg = f"both people have a record in {shared[0]}: one source cannot hold one person twice"
        raise UsageError(msg)
    strongest = draft.policy.strongest
    rank = draft.policy.rank
    home_a = strongest(s.source for s in records_a)
    home_b = strongest(s.source for s in records_b)
    keep, gone = (ca, cb) if rank(home_a) <= rank(home_b) else (cb, ca)
    _clear_all(draft, keep)
    _clear_all(draft, gone)
    for member in draft.contacts[gone].members:
        if member.until is None:
            _move(draft, member.record, gone, keep)
    entry = draft.contacts[gone]
    draft.put_contact(attrs.evolve(entry, redirects=(*entry.redirects, Redirect(keep, draft.at))))


def _unlink(draft: _Draft, change: Unlink) -> None:
    state = draft.state(change.record)
    if _is_local(state):
        msg = "a contact's local record is not linked: it belongs to the contact"
        raise UsageError(msg)
    cid = state.contact_id
    linked = [s.id for s in _linked(draft, cid)]
    if len(linked) < 2:
        msg = "this record is not linked to another"
        raise UsageError(msg)
    _clear_all(draft, cid)
    # The contact keeps its id, so the record it is named after stays in it.
    leaving = [r for r in linked if r != cid] if state.id == cid else [state.id]
    for rid in leaving:
        _move(draft, rid, cid, rid)


def _record_exists(draft: _Draft, rid: str) -> bool:
    source, key = split_record_id(rid)
    return key in draft.records.get(source, {})


def _erase(draft: _Draft, change: Erase) -> None:
    cid = resolve_id(draft.old, change.contact_id)
    if cid not in draft.contacts:
        msg = "the book holds no such contact"
        raise UnknownContactError(msg)
    ids = {cid} | {c.id for c in draft.contacts.values() if resolve_id(draft.old, c.id) == cid}
    erased_records: list[tuple[str, str]] = []
    for each in sorted(ids):
        for member in draft.contacts[each].members:
            source, key = split_record_id(member.record)
            state = draft.states(source).get(key)
            if state is not None and resolve_id(draft.old, state.contact_id) == cid:
                del draft.states(source)[key]
                erased_records.append((source, key))
        draft.drop_contact(each)
        draft.overrides.pop(each, None)
        draft.ended.pop(each, None)
    for other in list(draft.contacts.values()):
        kept = tuple(m for m in other.members if _record_exists(draft, m.record))
        redirects = tuple(r for r in other.redirects if r.into not in ids)
        if kept != other.members or redirects != other.redirects:
            draft.put_contact(attrs.evolve(other, members=kept, redirects=redirects))
    for name, versions in list(draft.groups.items()):
        draft.groups[name] = tuple(
            attrs.evolve(v, group=attrs.evolve(v.group, members=v.group.members - ids))
            if v.group is not None and v.group.members & ids
            else v
            for v in versions
        )
    for source in sorted({source for source, _ in erased_records}):
        if not draft.states(source):
            del draft.records[source]  # as if it had never held a record
            draft.forget(source)
    if change.suppress:
        secret = draft.policy.suppression_key
        if draft.suppressed and suppression_check(secret) != draft.suppression_check:
            msg = "the policy's suppression_key is not the one this book's erasures used"
            raise UsageError(msg)
        draft.suppression_check = suppression_check(secret)
        draft.suppressed = draft.suppressed | {
            suppression_digest(secret, source, key)
            for source, key in erased_records
            if source != ADDRESS_BOOK
        }
    draft.erased.append(cid)


def _end_expired(draft: _Draft) -> None:
    """End the overrides whose ``until`` has passed, as of that time, judged by the source then."""
    region = draft.policy.default_region
    for cid in sorted(draft.overrides):
        for override in draft.overrides[cid]:
            until = override.until
            if until is not None and until <= draft.at:
                version = version_at(draft.state(override.record), until)
                data = None if version is None else version.data
                draft.end_override(override, _outcome(override, data, region), expired_at=until)


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
    value = data.get(name)
    if name not in _REPEATING or not isinstance(value, str | Role):
        return data.only((name,))
    key = (name, value)
    found = shared.get(key)
    if found is None:
        found = shared[key] = data.only((name,))
    return found


#: The text fields, which compare trimmed: whitespace alone is empty.
_TEXT: Final = frozenset(n for n in FIELDS if isinstance(ContactData().get(n), str))
_REPEATING: Final = frozenset(
    {"given_name", "family_name", "role", "year_group", "registration_group"}
)


def _created(
    book: Book, contact_id: str, policy: Policy, shared: dict[tuple[str, Any], ContactData]
) -> list[FieldChange] | None:
    """What :func:`_diff` gives for a contact this merge created from one record.

    An initial sync creates every contact of a school, so this path matters.
    A contact of one record with one version, and no link or override, is
    that record's covered values with one provenance: its changes come
    straight from the record, with no effective contact to build. None for
    any other contact.
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
    if len(state.versions) != 1 or data is None or version.applied_at != book.updated_at:
        return None
    provenance = source_provenance(book, state, version, version.applied_at)
    covers = policy.source(source).covers
    changes = []
    for name in FIELDS:
        new = data.get(name)
        if name not in covers or _is_empty(name, new):
            continue
        changes.append(
            FieldChange(contact_id, name, None, _only(data, name, shared), None, provenance)
        )
    return changes


def _is_empty(name: str, value: Any) -> bool:
    """Whether *value* compares equal to an empty field *name* (rule 10), without normalising.

    An empty field compares as its empty value, and only an empty value (or
    text of whitespace alone) compares equal to it.
    """
    if value == _EMPTY[name]:
        return True
    return name in _TEXT and isinstance(value, str) and not value.strip()


_EMPTY: Final = {name: ContactData().get(name) for name in FIELDS}


_KIND_NAMES = {
    Snapshot: "snapshot",
    ConfirmSync: "confirm-sync",
    AddressBookSave: "address-book-save",
    AddressBookRemove: "address-book-remove",
    SetOverride: "set-override",
    ClearOverride: "clear-override",
    SetGroup: "set-group",
    RemoveGroup: "remove-group",
    Link: "link",
    Unlink: "unlink",
    Erase: "erase",
}


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
    if not by:
        msg = "say who makes the change ('by')"
        raise UsageError(msg)
    kind = _KIND_NAMES.get(type(change))
    if kind is None:
        msg = f"merge cannot apply a {type(change).__name__}"
        raise UsageError(msg)
    if book.updated_at is not None and book.updated_at > at:
        msg = "the book already holds a change made after this time; merges go forward in time"
        raise OutOfOrderError(msg, latest=book.updated_at)
    draft = _Draft(book, policy, at, by)
    source: str | None = None
    held: Held | None = None
    if isinstance(change, Snapshot | ConfirmSync):
        snapshot = change if isinstance(change, Snapshot) else change.snapshot
        source = snapshot.source
        held = _apply_snapshot(
            draft, snapshot, change.token if isinstance(change, ConfirmSync) else None
        )
        if held is not None:
            return MergeResult(book, Report(Status.HELD, kind, at, by, source=source, held=held))
        if draft.sync is None:
            report = Report(Status.NO_CHANGE, kind, at, by, source=source, suppressed=draft.skipped)
            return MergeResult(book, report)
    elif isinstance(change, AddressBookSave):
        _save(draft, change)
    elif isinstance(change, AddressBookRemove):
        _remove(draft, change)
    elif isinstance(change, SetOverride):
        _set_override(draft, _home(draft, resolve_id(book, change.contact_id)), change)
    elif isinstance(change, ClearOverride):
        _clear(draft, change)
    elif isinstance(change, SetGroup):
        _set_group(draft, change.group, change.group.name)
    elif isinstance(change, RemoveGroup):
        _set_group(draft, None, change.name)
    elif isinstance(change, Link):
        _link(draft, change)
    elif isinstance(change, Unlink):
        _unlink(draft, change)
    else:
        _erase(draft, change)
    _end_expired(draft)
    if draft.sync is None and not (draft.affected or draft.erased or draft.groups != book.groups):
        # An edit that changes nothing (a save of the same values) leaves the book as it
        # was; a sync always counts, since it confirms what the source still holds.
        return MergeResult(book, Report(Status.NO_CHANGE, kind, at, by))
    new_book = draft.book()
    region = policy.default_region
    changes: list[FieldChange] = []
    departed: list[str] = []
    returned: list[str] = []
    created = set(draft.created)
    shared: dict[tuple[str, Any], ContactData] = {}
    for cid in sorted(draft.affected - set(draft.erased)):
        if cid in created and cid not in book.contacts:
            fresh = _created(new_book, cid, policy, shared)
            if fresh is not None:
                changes.extend(fresh)
                continue
        before = effective_contact(book, cid, policy, at) if cid in book.contacts else None
        after = effective_contact(new_book, cid, policy, at)
        changes.extend(_diff(before, after, region, shared))
        if after is not None and after.departed and (before is None or not before.departed):
            departed.append(cid)
        if before is not None and before.departed and after is not None and not after.departed:
            returned.append(cid)
    report = Report(
        Status.APPLIED,
        kind,
        at,
        by,
        source=source,
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


def dry_run(book: Book, change: Change, *, policy: Policy, at: datetime, by: str) -> Report:
    """The report that :func:`merge` would give, without keeping the new book (rule 4)."""
    return merge(book, change, policy=policy, at=at, by=by).report
