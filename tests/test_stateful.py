"""A rule-based state machine over the whole book (Hypothesis stateful testing).

The machine keeps a small model of what it told the library (the MIS's
current records, what was last saved for each address-book contact, which of
those were removed) and drives the book through nightly full syncs, deltas,
imports, address-book saves and removals, overrides and groups, with time
always moving forward. After every step it checks the invariants of
DESIGN.md that must hold of any book, whatever happened before.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

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
    MergeResult,
    OverrideLifetime,
    Policy,
    Record,
    RemoveGroup,
    SetGroup,
    Snapshot,
    SnapshotKind,
    Status,
    contact_at,
    contacts_at,
    dumps,
    loads,
    merge,
    normalise_email,
    normalise_phone,
    recipients,
)
from sourcetruth.merge import Change
from sourcetruth.testing import strategies as sts

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

    # -- helpers ------------------------------------------------------------------

    def apply(self, change: Change, at: datetime, by: str = "machine") -> MergeResult:
        before = self.book
        result = merge(before, change, policy=self.policy, at=at, by=by)
        if result.report.status is not Status.APPLIED:
            # Held or already applied: the very same book comes back (rules 5 and 6).
            assert dumps(result.book) == dumps(before)
        self.last_step = (before, result)
        self.book = result.book
        self.now = at
        return result

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

    @initialize(policy=sts.policies(), day=st.sampled_from(FIRST_DAYS))
    def start(self, policy: Policy, day: date) -> None:
        self.policy = policy
        self.now = datetime.combine(day, time(1, 0), tzinfo=LONDON)

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
        """An address-book save of an MIS or import contact: overrides and local values."""
        at = later(self.now, minutes)
        sourced = self.sourced()
        if sourced:
            contact = data.draw(st.sampled_from(sourced))
            self.apply(AddressBookSave(contact.id, new, names), at, "office")

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
        old = Counter(o for os in before.overrides.values() for o in os)
        new = Counter(o for os in result.book.overrides.values() for o in os)
        reported = result.report.overrides_ended
        assert Counter(e.override for e in reported) == old - new
        old_ended = Counter(e for es in before.ended_overrides.values() for e in es)
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


BookMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestBook = BookMachine.TestCase
