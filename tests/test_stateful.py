"""A rule-based state machine over the whole book (Hypothesis stateful testing).

The machine keeps a small model of what it told the library (the MIS's
current records, what was last saved for each address-book contact, which of
those were removed) and drives the book through nightly full syncs, deltas,
imports, address-book saves and removals, overrides and groups, links and
unlinks between the MIS and an import, and erasures, with time always moving
forward. After every step it checks the invariants of DESIGN.md that must hold
of any book, whatever happened before: among them, that an answer about an
instant already visited never changes (only an erasure may rewrite history).
"""

from __future__ import annotations

import gc
import itertools
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests.postgres_server import PostgresServer

import budget
from sourcetruth import (
    ADDRESS_BOOK,
    FIELDS,
    AddressBookRemove,
    AddressBookSave,
    Book,
    Channel,
    ClearOverride,
    ConfirmSync,
    Contact,
    ContactData,
    Erase,
    Link,
    MergeResult,
    NotInBookError,
    OverrideLifetime,
    Policy,
    Record,
    RemoveGroup,
    Role,
    Rule,
    SetGroup,
    Snapshot,
    SnapshotKind,
    Status,
    UnknownContactError,
    Unlink,
    UsageError,
    contact_at,
    contacts_at,
    dumps,
    loads,
    merge,
    normalise_email,
    normalise_phone,
    recipients,
)
from sourcetruth._history import SourceOrigin
from sourcetruth.journal import Run, erased_by, redact, run_of
from sourcetruth.merge import Change
from sourcetruth.testing import strategies as sts
from sourcetruth.view import CurrentContact, build_view, view_basis
from stores import Place, place_for

LONDON = sts.LONDON
MIS_KEYS = sts.record_keys(prefix="M", count=10)
IMPORT_KEYS = sts.record_keys(prefix="R", count=5)
FIRST_DAYS = (date(2026, 11, 23), date(2026, 3, 27), date(2026, 10, 23))


def later(at: datetime, minutes: int) -> datetime:
    return (at.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(LONDON)


def comparable(field: str, value: Any, region: str) -> Any:
    """Rule 10's comparison: E.164 phones, normalised emails, trimmed text."""
    if field == "phones":
        return tuple(
            (p.type, normalise_phone(p.number, region).comparable(p.number)) for p in value
        )
    if field == "emails":
        return tuple((e.type, normalise_email(e.address).comparable(e.address)) for e in value)
    return value.strip() if isinstance(value, str) else value


def every_change(before: Book, after: Book, policy: Policy, at: datetime) -> list[tuple[Any, ...]]:
    """Every effective field that differs between two books at *at*, contact by contact.

    The slow, obvious way: the effective contact of every id either book
    holds, before and after, compared field by field with rule 10's
    comparison. A merge's report must list exactly these, however it finds
    them.
    """
    region = policy.default_region
    found = []
    for cid in sorted(set(before.contacts) | set(after.contacts)):
        old = effective_or_none(before, cid, policy, at)
        new = effective_or_none(after, cid, policy, at)
        if new is None:
            continue
        for name in FIELDS:
            empty = ContactData().get(name)
            was = empty if old is None else old.data.get(name)
            if comparable(name, was, region) == comparable(name, new.data.get(name), region):
                continue
            found.append(
                (
                    cid,
                    name,
                    None if old is None else was,
                    new.data.get(name),
                    None if old is None else old.provenance[name],
                    new.provenance[name],
                )
            )
    return found


def effective_or_none(book: Book, cid: str, policy: Policy, at: datetime) -> Contact | None:
    """The contact *cid* itself at *at* (links not followed), or None when it has no record."""
    entry = book.contacts.get(cid)
    if entry is None or any(r.active_at(at) for r in entry.redirects):
        return None
    try:
        return contact_at(book, cid, policy=policy, at=at)
    except UnknownContactError:
        return None


def changes_of(report: Any) -> list[tuple[Any, ...]]:
    return [
        (
            c.contact_id,
            c.field,
            c.before_value,
            c.after_value,
            c.before_provenance,
            c.after_provenance,
        )
        for c in report.changes
    ]


def active(since: datetime, until: datetime | None, at: datetime) -> bool:
    """Whether a membership or a link from *since* until *until* (None: open) holds at *at*."""
    return since <= at and (until is None or at < until)


def person_of(book: Book, cid: str, at: datetime | None = None) -> str:
    """The contact that *cid* answers as: follow the links in force at *at* (None: now)."""
    seen: set[str] = set()
    while cid not in seen:
        seen.add(cid)
        entry = book.contacts.get(cid)
        if entry is None:
            return cid
        into = [
            r.into
            for r in entry.redirects
            if (r.until is None if at is None else active(r.since, r.until, at))
        ]
        assert len(into) <= 1, (cid, into)
        if not into:
            return cid
        cid = into[0]
    raise AssertionError(f"the links of {cid} go round in a circle")


def personal_values(data: ContactData | None) -> set[str]:
    """The personal values of *data* as they may be written: names, numbers, addresses."""
    if data is None:
        return set()
    found = {data.given_name.strip(), data.family_name.strip()}
    for phone in data.phones:
        found.add(phone.number.strip())
        found.add(normalise_phone(phone.number).comparable(phone.number))
    for email in data.emails:
        found.add(email.address.strip())
        found.add(normalise_email(email.address).comparable(email.address))
    return {v for v in found if v}


def every_data(book: Book) -> Iterator[tuple[str, ContactData]]:
    """(person, data) of every record version and override value in *book*, where the
    person is the contact the record or override belongs to now, links followed."""
    for states in book.records.values():
        for state in states.values():
            owner = person_of(book, state.contact_id)
            for version in state.versions:
                if version.data is not None:
                    yield owner, version.data
    for cid, overrides in book.overrides.items():
        for o in overrides:
            yield person_of(book, cid), o.value
            yield person_of(book, cid), o.base
    for cid, ended in book.ended_overrides.items():
        for e in ended:
            yield person_of(book, cid), e.override.value
            yield person_of(book, cid), e.override.base


def record_ids(book: Book) -> set[str]:
    return {state.id for states in book.records.values() for state in states.values()}


#: Audiences asked about at every visited instant, besides the book's own groups.
RULES = (
    Rule(guardians_of=True),
    Rule(year_groups=frozenset({"9", "10"}), guardians_of=True, max_priority=1),
    Rule(roles=frozenset({Role.GUARDIAN, Role.STAFF})),
)


class BookMachine(RuleBasedStateMachine):
    """The whole book under a random policy, driven one merge at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.policy: Policy = Policy.simple()
        self.book = Book()
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.mis: dict[str, Record] = {}
        self.saved: dict[str, ContactData] = {}
        self.removed: set[str] = set()
        self.last_applied: Snapshot | None = None
        self.last_step: tuple[Book, MergeResult] | None = None
        self.n_local = 0
        # Links the machine made: MIS record id <-> import record id, both ways.
        self.partner: dict[str, str] = {}
        self.ever_linked: set[str] = set()
        # The first answer about each instant visited: (ids asked, groups asked, answers).
        self.answers: dict[datetime, tuple[list[str], list[str], dict[str, str]]] = {}
        self.n_checks = 0
        # Set by the erase rule for the invariants, forgotten at the next merge.
        self.erased_ids: set[str] = set()
        self.erased_values: set[str] = set()

    # -- helpers ------------------------------------------------------------------

    def apply(self, change: Change, at: datetime, by: str = "machine") -> MergeResult:
        before = self.book
        result = merge(before, change, policy=self.policy, at=at, by=by)
        if result.report.status is not Status.APPLIED:
            # Held or already applied: the very same book comes back (rules 5 and 6).
            assert dumps(result.book) == dumps(before)
        else:
            # Another merge at the instant last asked about may change what it says.
            self.answers.pop(at, None)
            if not isinstance(change, Erase):
                assert changes_of(result.report) == every_change(
                    before, result.book, self.policy, result.report.at
                )
        self.last_step = (before, result)
        self.book = result.book
        self.now = at
        self.erased_ids = set()
        self.erased_values = set()
        return result

    def attempt(self, change: Change, at: datetime, by: str = "office") -> MergeResult | None:
        """Apply *change*; a UsageError is a refusal: None, and the book is as it was."""
        before = dumps(self.book)
        try:
            return self.apply(change, at, by)
        except UsageError:
            assert dumps(self.book) == before
            return None

    def feed_records(self, *sources: str) -> list[str]:
        return sorted(f"{s}:{key}" for s in sources for key in self.book.records.get(s, {}))

    def expected_person(self, rid: str) -> str:
        """The contact a feed record belongs to, by the links the machine made.

        The MIS ranks first in every policy drawn, so a link keeps its contact.
        """
        partner = self.partner.get(rid)
        return rid if partner is None or rid.startswith("mis:") else partner

    def ask(self, at: datetime, cids: list[str], names: list[str]) -> dict[str, str]:
        """What the book says at *at*: each contact, and each audience on each channel."""
        found: dict[str, str] = {}
        for cid in cids:
            try:
                found[cid] = dumps(contact_at(self.book, cid, policy=self.policy, at=at))
            except UnknownContactError:
                found[cid] = "unknown"
        audiences: list[tuple[str, Any]] = [(f"group {n}", n) for n in names]
        audiences += [(f"rule {i}", r) for i, r in enumerate(RULES)]
        audiences.append(("everyone", tuple(cids)))
        for label, audience in audiences:
            for channel in Channel:
                try:
                    answer = dumps(
                        recipients(self.book, audience, channel, policy=self.policy, at=at)
                    )
                except NotInBookError:  # a contact or a group the book does not hold
                    answer = "unknown"
                found[f"{label} {channel.value}"] = answer
        return found

    def live(self) -> list[Contact]:
        return [
            c for c in contacts_at(self.book, policy=self.policy, at=self.now) if not c.departed
        ]

    def sourced(self) -> list[Contact]:
        return [c for c in self.live() if not c.home.startswith(f"{ADDRESS_BOOK}:")]

    def local(self) -> list[str]:
        return sorted(cid for cid in self.saved if cid not in self.removed)

    def next_night(self) -> datetime:
        day = self.now.astimezone(LONDON).date()
        while True:
            night = datetime.combine(day, time(2, 0), tzinfo=LONDON)
            if night > self.now:
                return night
            day += timedelta(days=1)

    def has_import(self) -> bool:
        return any(s.name == "import" for s in self.policy.sources)

    # -- rules --------------------------------------------------------------------

    @initialize(day=st.sampled_from(FIRST_DAYS), fed=st.booleans(), data=st.data())
    def start(self, day: date, fed: bool, data: st.DataObject) -> None:
        """A fresh book under any policy, or (*fed*) one with an MIS and an import that
        have both synced once, so that links between the feeds come up often enough."""
        self.policy = data.draw(sts.policies(imports=True) if fed else sts.policies())
        self.now = datetime.combine(day, time(1, 0), tzinfo=LONDON)
        if fed:
            self.full_sync(data, 0, True)
            self.import_file(data, 60)

    @rule(data=st.data(), read_ahead=st.integers(0, 30), confirm=st.booleans())
    def full_sync(self, data: st.DataObject, read_ahead: int, confirm: bool) -> None:
        """The nightly full MIS sync: some records kept, some changed or new, some dropped."""
        applied = self.next_night()
        read = max(later(applied, -read_ahead), self.now)
        fresh = data.draw(sts.snapshots(at=read, keys=MIS_KEYS, max_size=6))
        kept = data.draw(st.sets(st.sampled_from(sorted(self.mis)))) if self.mis else set()
        rows = {k: self.mis[k] for k in kept}
        rows.update({r.key: r for r in fresh.records})
        snap = attrs.evolve(fresh, records=tuple(rows[k] for k in sorted(rows)))
        result = self.apply(snap, applied, "nightly")
        if result.report.status is Status.HELD and confirm:
            assert result.report.held is not None
            result = self.apply(ConfirmSync(snap, result.report.held.token), applied, "manager")
        if result.report.status is Status.APPLIED:
            self.mis = dict(rows)
            self.last_applied = snap

    @rule(data=st.data(), minutes=st.integers(1, 240))
    def delta_sync(self, data: st.DataObject, minutes: int) -> None:
        """A delta from the MIS: a few records added or changed, and some keys removed."""
        read = later(self.now, minutes)
        snap = data.draw(
            sts.snapshots(
                at=read,
                keys=MIS_KEYS,
                min_size=0,
                max_size=3,
                kind=SnapshotKind.DELTA,
                removable=sorted(self.mis),
            )
        )
        result = self.apply(snap, later(read, 1), "delta")
        if result.report.status is Status.APPLIED:
            self.mis.update({r.key: r for r in snap.records})
            for key in snap.removed:
                self.mis.pop(key, None)
            self.last_applied = snap

    @precondition(lambda self: self.last_applied is not None)
    @rule(minutes=st.integers(0, 120))
    def same_snapshot_again(self, minutes: int) -> None:
        """The last applied snapshot, applied again: nothing changes (rule 5)."""
        assert self.last_applied is not None
        before = dumps(self.book)
        result = self.apply(self.last_applied, later(self.now, minutes), "retry")
        assert result.report.status is Status.NO_CHANGE
        assert dumps(result.book) == before

    @precondition(lambda self: self.has_import())
    @rule(data=st.data(), minutes=st.integers(1, 240))
    def import_file(self, data: st.DataObject, minutes: int) -> None:
        """A CSV import, sometimes carrying a copy of an MIS person (rule 12)."""
        at = later(self.now, minutes)
        snap = data.draw(sts.snapshots(source="import", at=at, keys=IMPORT_KEYS, max_size=3))
        if self.mis and data.draw(st.booleans()):
            copied = self.mis[data.draw(st.sampled_from(sorted(self.mis)))]
            rows = {r.key: r for r in snap.records}
            rows["R9"] = Record("R9", copied.data)
            snap = attrs.evolve(snap, records=tuple(rows[k] for k in sorted(rows)))
        self.apply(snap, at, "upload")

    @rule(data=sts.contact_data(), minutes=st.integers(1, 240))
    def save_new_local_contact(self, data: ContactData, minutes: int) -> None:
        """A new address-book contact (an external governor, say)."""
        cid = f"{ADDRESS_BOOK}:ext{self.n_local}"
        self.n_local += 1
        self.apply(AddressBookSave(cid, data), later(self.now, minutes), "office")
        self.saved[cid] = data

    @precondition(lambda self: bool(self.saved))
    @rule(
        data=st.data(),
        new=sts.contact_data(),
        names=st.frozensets(st.sampled_from(FIELDS), min_size=1),
        minutes=st.integers(1, 240),
    )
    def save_local_contact(
        self, data: st.DataObject, new: ContactData, names: frozenset[str], minutes: int
    ) -> None:
        """An address-book contact saved again (restoring it, if it was removed)."""
        cid = data.draw(st.sampled_from(sorted(self.saved)))
        self.apply(AddressBookSave(cid, new, names), later(self.now, minutes), "office")
        self.saved[cid] = attrs.evolve(self.saved[cid], **{n: new.get(n) for n in names})
        self.removed.discard(cid)

    @precondition(lambda self: bool(self.local()))
    @rule(data=st.data(), minutes=st.integers(1, 240))
    def remove_local_contact(self, data: st.DataObject, minutes: int) -> None:
        """An address-book contact removed: it departs, kept."""
        cid = data.draw(st.sampled_from(self.local()))
        self.apply(AddressBookRemove(cid), later(self.now, minutes), "office")
        self.removed.add(cid)

    @rule(
        data=st.data(),
        new=sts.contact_data(),
        names=st.frozensets(st.sampled_from(FIELDS), min_size=1),
        minutes=st.integers(1, 240),
    )
    def save_over_a_sourced_contact(
        self, data: st.DataObject, new: ContactData, names: frozenset[str], minutes: int
    ) -> None:
        """An address-book save of an MIS or import contact, linked or not: overrides and
        local values, each effective at once (rules 2 and 3)."""
        at = later(self.now, minutes)
        sourced = self.sourced()
        if sourced:
            contact = data.draw(st.sampled_from(sourced))
            self.apply(AddressBookSave(contact.id, new, names), at, "office")
            now = contact_at(self.book, contact.id, policy=self.policy, at=at)
            region = self.policy.default_region
            for name in sorted(names):
                shown = comparable(name, now.data.get(name), region)
                assert shown == comparable(name, new.get(name), region), name

    @rule(data=st.data(), minutes=st.integers(1, 240))
    def set_override(self, data: st.DataObject, minutes: int) -> None:
        """An override of a field the contact's home covers, with any lifetime."""
        at = later(self.now, minutes)
        sourced = self.sourced()
        if sourced:
            contact = data.draw(st.sampled_from(sourced))
            covered = sorted(self.policy.source(contact.home.partition(":")[0]).covers)
            change = data.draw(
                sts.set_overrides(contact_ids=[contact.id], fields=covered, after=at)
            )
            result = self.apply(change, at, "office")
            assert [o.field for o in result.report.overrides_set] == [change.field]

    @precondition(lambda self: bool(self.book.overrides))
    @rule(data=st.data(), minutes=st.integers(1, 240))
    def clear_override(self, data: st.DataObject, minutes: int) -> None:
        """A person clears an override: it ends ``cleared``."""
        cid = data.draw(st.sampled_from(sorted(self.book.overrides)))
        name = data.draw(st.sampled_from(sorted({o.field for o in self.book.overrides[cid]})))
        self.apply(ClearOverride(cid, name), later(self.now, minutes), "office")

    @rule(data=st.data(), minutes=st.integers(1, 240))
    def set_group(self, data: st.DataObject, minutes: int) -> None:
        """Create or replace a group over any contacts, departed ones included."""
        group = data.draw(sts.groups(contact_ids=sorted(self.book.contacts)))
        self.apply(SetGroup(group), later(self.now, minutes), "office")

    @precondition(lambda self: any(v[-1].group is not None for v in self.book.groups.values()))
    @rule(data=st.data(), minutes=st.integers(1, 240))
    def remove_group(self, data: st.DataObject, minutes: int) -> None:
        """Remove a group that exists."""
        names = sorted(n for n, v in self.book.groups.items() if v[-1].group is not None)
        self.apply(RemoveGroup(data.draw(st.sampled_from(names))), later(self.now, minutes), "o")

    @precondition(
        lambda self: bool(self.book.records.get("mis") and self.book.records.get("import"))
    )
    @rule(data=st.data(), swap=st.booleans(), minutes=st.integers(1, 240))
    def link(self, data: st.DataObject, swap: bool, minutes: int) -> None:
        """Link an MIS record and an import record (rule 12). Refused exactly when either
        is already linked: the same person, or one source twice in one person."""
        at = later(self.now, minutes)
        mis = data.draw(st.sampled_from(self.feed_records("mis")))
        imported = data.draw(st.sampled_from(self.feed_records("import")))
        refused = mis in self.partner or imported in self.partner
        result = self.attempt(Link(imported, mis) if swap else Link(mis, imported), at)
        assert (result is None) == refused, (mis, imported, self.partner)
        if result is None:
            return
        self.partner[mis] = imported
        self.partner[imported] = mis
        self.ever_linked |= {mis, imported}
        for rid in (mis, imported):
            assert contact_at(self.book, rid, policy=self.policy, at=at).id == mis

    @precondition(lambda self: bool(self.feed_records("mis", "import")))
    @rule(data=st.data(), minutes=st.integers(1, 240))
    def unlink(self, data: st.DataObject, minutes: int) -> None:
        """Take a record out of its link: each record is its own person again. Refused for a
        record that is not linked."""
        at = later(self.now, minutes)
        pool = sorted(self.partner)
        if not pool or data.draw(st.booleans()):
            pool = self.feed_records("mis", "import")
        rid = data.draw(st.sampled_from(pool))
        result = self.attempt(Unlink(rid), at)
        assert (result is None) == (rid not in self.partner), rid
        if result is None:
            return
        other = self.partner.pop(rid)
        del self.partner[other]
        for each in (rid, other):
            assert contact_at(self.book, each, policy=self.policy, at=at).id == each

    @precondition(lambda self: bool(self.book.contacts))
    @rule(data=st.data(), minutes=st.integers(1, 240))
    def erase(self, data: st.DataObject, minutes: int) -> None:
        """Erase a person, by any of their contact ids (rule 13): every record and override
        of theirs goes, and every contact id that answers as them."""
        at = later(self.now, minutes)
        book = self.book
        pool = sorted(self.ever_linked & set(book.contacts))
        if not pool or data.draw(st.booleans()):  # people once linked have the most history
            pool = sorted(book.contacts)
        cid = data.draw(st.sampled_from(pool))
        person = person_of(book, cid)
        ids = {c for c in book.contacts if person_of(book, c) == person}
        mine: set[str] = set()
        others: set[str] = set()
        for owner, values in every_data(book):
            (mine if owner == person else others).update(personal_values(values))
        going = {
            state.id
            for states in book.records.values()
            for state in states.values()
            if person_of(book, state.contact_id) == person
        }
        result = self.apply(Erase(cid), at, "dpo")
        assert result.report.erased == (person,)
        assert record_ids(book) - record_ids(self.book) == going
        linked = {person, self.partner.get(person, person)}
        assert linked & record_ids(book) <= going
        self.erased_ids = ids
        self.erased_values = mine - others
        for rid in linked:
            self.partner.pop(rid, None)
        for each in ids:
            self.saved.pop(each, None)
            self.removed.discard(each)
        self.answers.clear()  # erasure rewrites history: ask about the past afresh
        if self.last_applied is not None:
            keys = {f"mis:{r.key}" for r in self.last_applied.records}
            if keys & going:  # applying it again would bring the erased person back
                self.last_applied = None

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def book_round_trips(self) -> None:
        """The book serialises, and reads back equal, to the same bytes."""
        text = dumps(self.book)
        back = loads(text, Book)
        assert back == self.book
        assert dumps(back) == text

    @invariant()
    def overrides_in_force_are_young_enough(self) -> None:
        """No NEXT_SYNC/UNTIL override outlives a sync of its source read after it was set;
        SOURCE_CHANGE ones only while the source holds the base value; none past ``until``."""
        region = self.policy.default_region
        for overrides in self.book.overrides.values():
            for o in overrides:
                read_after = [
                    s for s in self.book.syncs.get(o.source, ()) if s.extracted_at > o.set_at
                ]
                if read_after and o.lifetime is OverrideLifetime.SOURCE_CHANGE:
                    key = o.record.partition(":")[2]
                    data = self.book.records[o.source][key].current.data
                    assert data is not None
                    assert comparable(o.field, data.get(o.field), region) == comparable(
                        o.field, o.base_value, region
                    )
                else:
                    assert not read_after
                if o.until is not None:
                    assert self.book.updated_at is not None
                    assert o.until > self.book.updated_at

    @invariant()
    def every_ended_override_is_in_its_steps_report(self) -> None:
        """The overrides that the last step ended are exactly those its report lists."""
        if self.last_step is None:
            return
        before, result = self.last_step
        # An erasure takes the erased person's overrides with it, ended or not.
        kept = [cid for cid in before.overrides if cid not in self.erased_ids]
        old = Counter(o for cid in kept for o in before.overrides[cid])
        new = Counter(o for os in result.book.overrides.values() for o in os)
        reported = result.report.overrides_ended
        assert Counter(e.override for e in reported) == old - new
        kept = [cid for cid in before.ended_overrides if cid not in self.erased_ids]
        old_ended = Counter(e for cid in kept for e in before.ended_overrides[cid])
        new_ended = Counter(e for es in result.book.ended_overrides.values() for e in es)
        assert new_ended - old_ended == Counter(reported)

    @invariant()
    def local_contacts_hold_what_was_last_saved(self) -> None:
        """Address-book contacts equal their last save; removed ones are departed (rule 2)."""
        for cid, data in self.saved.items():
            contact = contact_at(self.book, cid, policy=self.policy, at=self.now)
            assert contact.data == data
            assert contact.departed == (cid in self.removed)

    @invariant()
    def mis_contacts_show_the_mis(self) -> None:
        """Each MIS contact shows the MIS's value for every covered field not overridden
        (rule 1); a key the MIS no longer has is departed (rule 6)."""
        covers = self.policy.source("mis").covers
        for key, state in self.book.records.get("mis", {}).items():
            contact = contact_at(self.book, f"mis:{key}", policy=self.policy, at=self.now)
            if key not in self.mis:
                assert state.current.data is None
                assert contact.departed
                continue
            assert not contact.departed
            overridden = {o.field for o in contact.overrides}
            for name in sorted(covers - overridden):
                assert contact.data.get(name) == self.mis[key].data.get(name), name

    @invariant()
    def no_departed_contact_is_ever_a_recipient(self) -> None:
        """No group reaches a departed contact, an address twice, or a person twice (rule 11)."""
        everyone = {c.id: c for c in contacts_at(self.book, policy=self.policy, at=self.now)}
        for name, versions in sorted(self.book.groups.items()):
            if versions[-1].group is None:
                continue
            for channel in Channel:
                found = recipients(self.book, name, channel, policy=self.policy, at=self.now)
                reached = [cid for r in found.recipients for cid in r.contact_ids]
                assert not [cid for cid in reached if everyone[cid].departed]
                assert len(set(reached)) == len(reached)
                assert len(set(found.addresses)) == len(found.addresses)

    @invariant()
    def the_past_never_changes(self) -> None:
        """What the book says about an instant already visited (each contact, each group,
        some rules, on each channel) stays what it said when first asked (rule 8)."""
        now = self.book.updated_at
        if now is None:
            return
        if now not in self.answers:
            cids, names = sorted(self.book.contacts), sorted(self.book.groups)
            self.answers[now] = (cids, names, self.ask(now, cids, names))
        earlier = sorted(t for t in self.answers if t < now)
        if not earlier:
            return
        at = earlier[self.n_checks % len(earlier)]
        self.n_checks += 1
        cids, names, first = self.answers[at]
        again = self.ask(at, cids, names)
        for key, answer in first.items():
            assert again[key] == answer, (at, key)

    @invariant()
    def links_point_at_contacts_the_book_holds(self) -> None:
        """Every link names a contact in the book, and the links in force are those made:
        each MIS or import record answers as its MIS partner if linked, else as itself."""
        for entry in self.book.contacts.values():
            for redirect in entry.redirects:
                assert redirect.into in self.book.contacts, (entry.id, redirect.into)
        for source in ("mis", "import"):
            for state in self.book.records.get(source, {}).values():
                assert person_of(self.book, state.contact_id) == self.expected_person(state.id)

    @invariant()
    def every_listed_contact_answers_now(self) -> None:
        """Each contact id the book lists answers contact_at at the latest time, as the
        contact it is linked into; it is unknown only if that contact has no record then."""
        at = self.book.updated_at
        if at is None:
            return
        for cid in sorted(self.book.contacts):
            target = person_of(self.book, cid, at)
            assert target in self.book.contacts, (cid, target)
            try:
                contact = contact_at(self.book, cid, policy=self.policy, at=at)
            except UnknownContactError:
                members = self.book.contacts[target].members
                assert not [
                    m
                    for m in members
                    if active(m.since, m.until, at)
                    and m.record.partition(":")[2]
                    in self.book.records.get(m.record.partition(":")[0], {})
                ], cid
            else:
                assert contact.id == target

    @invariant()
    def an_erased_person_leaves_no_value_behind(self) -> None:
        """Right after an erasure, no value that only the erased person held is anywhere in
        the serialised book, and none of their contact ids is (rule 13)."""
        if not self.erased_ids:
            return
        text = dumps(self.book)
        assert not sorted(v for v in self.erased_values if json.dumps(v)[1:-1] in text)
        assert not self.erased_ids & set(self.book.contacts)


BookMachine.TestCase.settings = settings(
    max_examples=budget.examples(50),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestBook = BookMachine.TestCase


def stamped(view: Mapping[str, CurrentContact]) -> dict[str, CurrentContact]:
    """*view* with each origin's record version reduced to its stamp, as a store keeps it."""
    kept = {}
    for cid, entry in view.items():
        origins = tuple(
            o._replace(version=attrs.evolve(o.version, data=None))
            if isinstance(o, SourceOrigin)
            else o
            for o in entry.origins
        )
        kept[cid] = attrs.evolve(entry, origins=origins)
    return kept


class SqliteBookMachine(BookMachine):
    """The same machine, each merge committed to an SQLite store and the book loaded back.

    The book it goes on with is the one the store loads, which reads its
    rows lazily from the file: every invariant is checked against it. The
    store is a file of its own (:meth:`place`); the PostgreSQL machines put
    every run's book in one database instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.where, self.name = self.place()
        self.store = self.where.open(self.name)

    def place(self) -> tuple[Place, str]:
        """Where this run's book is kept, and its name there."""
        return Place("sqlite", Path(tempfile.mkdtemp(prefix="sourcetruth-stateful-"))), "book"

    def apply(self, change: Change, at: datetime, by: str = "machine") -> MergeResult:
        before = self.book
        result = super().apply(change, at, by)
        self.store.commit(before, result, run_of(before, (change,), result.report, at=at, by=by))
        loaded = self.store.load()
        assert dumps(loaded) == dumps(result.book)
        assert loaded.view_basis == result.book.view_basis
        if loaded.view_basis:
            # The stored view is the one merge kept, and what history says now.
            assert loaded.view_basis == view_basis(self.policy)
            assert stamped(loaded.view) == stamped(result.book.view)
            assert stamped(loaded.view) == stamped(build_view(loaded, self.policy))
        else:
            assert not loaded.view
        self.book = loaded
        return result

    @invariant()
    def an_erased_person_has_no_row_of_the_view(self) -> None:
        """Right after an erasure, the stored view names none of the erased contacts."""
        if not self.erased_ids:
            return
        ids = tuple(sorted(self.erased_ids))
        marks = ",".join("?" * len(ids))
        for table in ("current", "current_links"):
            found = self.where.rows(
                self.name, f"SELECT contact_id FROM {table} WHERE contact_id IN ({marks})", ids
            )
            assert not found, (table, found)
        rows = " ".join(text for (text,) in self.where.rows(self.name, "SELECT data FROM current"))
        assert not sorted(v for v in self.erased_values if json.dumps(v)[1:-1] in rows)

    def teardown(self) -> None:
        self.store.close()
        if self.where.kind == "sqlite":
            shutil.rmtree(self.where.folder, ignore_errors=True)


SqliteBookMachine.TestCase.settings = settings(
    max_examples=budget.examples(15),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestBookInSqlite = SqliteBookMachine.TestCase


class TwinBookMachine(SqliteBookMachine):
    """The SQLite machine with a twin in memory: every change goes to both, and both say the same.

    The book in SQLite is read lazily, so a full snapshot is compared with it
    by the stored digests and possible duplicates are found by its name
    index; the twin is a plain book, compared record by record. Every report,
    journal entry, book and contact must be identical. One step in three goes
    on with the committed result rather than a fresh load, so the merge also
    meets overlays over a table whose snapshot has moved past the commit.
    """

    def __init__(self) -> None:
        super().__init__()
        self.twin = Book()
        self.journal: list[Run] = []
        self.steps = 0

    def apply(self, change: Change, at: datetime, by: str = "machine") -> MergeResult:
        before = self.twin
        try:
            expected = merge(before, change, policy=self.policy, at=at, by=by)
        except Exception as refused:
            self.refuses_too(change, at, by, refused)
            raise
        result = super().apply(change, at, by)
        assert dumps(result.report) == dumps(expected.report)
        assert dumps(result.book) == dumps(expected.book)
        run = run_of(before, (change,), expected.report, at=at, by=by)
        self.journal.append(run)
        if expected.report.erased:  # the store's journal names nobody erased, as it must
            gone = erased_by(before, expected.book)
            self.journal = [redact(each, *gone) for each in self.journal]
        assert [dumps(each) for each in self.store.journal()] == [dumps(r) for r in self.journal]
        self.twin = expected.book
        self.steps += 1
        if self.steps % 3 == 0:
            self.book = result.book
        return result

    def refuses_too(self, change: Change, at: datetime, by: str, refused: Exception) -> None:
        """The book in SQLite refuses *change* as its twin did, with the same error."""
        error: Exception | None = None
        try:
            super().apply(change, at, by)
        except Exception as raised:
            error = raised
        assert error is not None, "the book in SQLite took a change its twin refused"
        assert (type(error), str(error)) == (type(refused), str(refused))

    @rule(data=st.data(), minutes=st.integers(1, 240))
    def partial_delta(self, data: st.DataObject, minutes: int) -> None:
        """A delta whose records carry some fields only, the rest kept from the book."""
        read = later(self.now, minutes)
        keys = data.draw(st.lists(MIS_KEYS, min_size=1, max_size=3, unique=True))
        records = tuple(
            Record(
                key,
                data.draw(sts.contact_data()),
                fields=data.draw(st.sets(st.sampled_from(FIELDS), min_size=1)),
            )
            for key in sorted(keys)
        )
        snap = Snapshot("mis", read, records, SnapshotKind.DELTA)
        result = self.apply(snap, later(read, 1), "delta")
        if result.report.status is Status.APPLIED:
            states = self.book.records.get("mis", {})
            for key in keys:
                if key in states:  # else erased, so kept out (rule 13)
                    whole = states[key].current.data
                    assert whole is not None
                    self.mis[key] = Record(key, whole)
            self.last_applied = snap

    @invariant()
    def every_contact_is_its_twins(self) -> None:
        """Every contact, present or departed, reads as its twin's does now."""
        lazy = contacts_at(self.book, policy=self.policy, at=self.now)
        twin = contacts_at(self.twin, policy=self.policy, at=self.now)
        assert [dumps(c) for c in lazy] == [dumps(c) for c in twin]


TwinBookMachine.TestCase.settings = settings(
    max_examples=budget.examples(12),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestBookInSqliteAndItsTwin = TwinBookMachine.TestCase


class PostgresTwinBookMachine(TwinBookMachine):
    """The twin machine on PostgreSQL: each run a book of its own, all in one database.

    A database per run would take longer than the run; many books in one
    database is also how a provider keeps them, each behind its row policy.
    """

    #: The test's database, set by :class:`TestBookInPostgresAndItsTwin` before any run.
    database: ClassVar[Place | None] = None
    runs: ClassVar[Iterator[int]] = itertools.count()

    def place(self) -> tuple[Place, str]:
        """A new book in the test's database."""
        assert self.database is not None
        return self.database, f"run-{next(self.runs)}"

    def teardown(self) -> None:
        super().teardown()
        # A loaded book's snapshot is a transaction holding a lock on every table it read,
        # which the rewrite after another book's erasure waits for: let this run's go now.
        self.book = Book()
        self.last_step = None
        gc.collect()


PostgresTwinBookMachine.TestCase.settings = settings(
    # A commit here is some ninety round trips: half the SQLite twin's runs, each shorter
    # (the full run's are longer than SQLite's).
    max_examples=budget.examples(12) // 2,
    stateful_step_count=40 if budget.FULL else 10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TestBookInPostgresAndItsTwin(PostgresTwinBookMachine.TestCase):  # type: ignore[name-defined,misc]
    """The twin machine's runs, each committing to a book of one PostgreSQL database."""

    @pytest.fixture(autouse=True)
    def database(
        self, request: pytest.FixtureRequest, postgres_server: PostgresServer, tmp_path: Path
    ) -> Iterator[None]:
        """One database for the test's runs (its books are each run's own)."""
        PostgresTwinBookMachine.database = place_for(request, "postgres", tmp_path, "stateful")
        yield
        PostgresTwinBookMachine.database = None
