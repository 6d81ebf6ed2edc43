"""Property tests of the thirteen rules of DESIGN.md, with Hypothesis.

Each class names the rule it checks. Most tests build a random *history*
(nightly MIS syncs, imports, address-book saves, overrides, groups) with
:func:`histories`, then check a property of one more change applied to it.
All data comes from :mod:`sourcetruth.testing.strategies`: drama phone
numbers and ``.test``/``example.org`` addresses only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import budget
from sourcetruth import (
    ADDRESS_BOOK,
    EXPIRY,
    FIELDS,
    AddressBookRemove,
    AddressBookSave,
    Book,
    Channel,
    ClearOverride,
    ConfirmSync,
    Contact,
    ContactData,
    DepartureGuard,
    Email,
    EmailType,
    Erase,
    GroupDefinition,
    Link,
    MergeResult,
    OverrideLifetime,
    OverrideOutcome,
    Phone,
    PhoneType,
    Policy,
    PossibleDuplicate,
    ProvenanceKind,
    Record,
    Relationship,
    Report,
    Role,
    Rule,
    Schedule,
    SetGroup,
    SetOverride,
    Snapshot,
    SnapshotKind,
    Source,
    SourceKind,
    SourceTruthError,
    Status,
    UsageError,
    contact_at,
    contacts_at,
    dry_run,
    dumps,
    explain,
    loads,
    next_sync,
    normalise_email,
    normalise_phone,
    recipients,
    when_effective,
)
from sourcetruth.merge import Change
from sourcetruth.testing import strategies as sts
from stores import kinds, merge

# Each rule in memory, and with every merge committed to PostgreSQL and the book loaded back
# (on fewer examples: see fewer_examples_in_a_database in tests/conftest.py).
pytestmark = [
    pytest.mark.parametrize(
        "store_kind", kinds("memory", "postgres"), indirect=True, scope="module"
    ),
    pytest.mark.usefixtures("merges_through_store"),
]

LONDON = sts.LONDON
NIGHTLY = sts.NIGHTLY
#: First days of histories: an ordinary week, and the weeks of both clock changes of 2026.
FIRST_DAYS = (date(2026, 11, 23), date(2026, 3, 27), date(2026, 10, 23))
MAX_READ_AHEAD = 30  # minutes between reading the MIS and applying the sync

SETTINGS = settings(
    max_examples=budget.examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- building histories ---------------------------------------------------------------


@attrs.define
class Step:
    """One merge of a history: the book before, the change, when, and the result."""

    before: Book
    change: Change
    at: datetime
    result: MergeResult


@attrs.define
class History:
    policy: Policy
    book: Book
    now: datetime
    day: date
    steps: list[Step]
    mis: dict[str, Record]
    saved: dict[str, ContactData]
    removed: set[str]

    @property
    def last_read(self) -> datetime:
        """When the last applied MIS sync read its data."""
        return self.book.syncs["mis"][-1].extracted_at

    def apply(self, change: Change, at: datetime, by: str = "test") -> MergeResult:
        result = merge(self.book, change, policy=self.policy, at=at, by=by)
        self.steps.append(Step(self.book, change, at, result))
        self.book = result.book
        self.now = at
        return result


def nightly(day: date) -> datetime:
    """02:00 wall-clock in Europe/London on *day*."""
    return datetime.combine(day, time(2, 0), tzinfo=LONDON)


def later(at: datetime, minutes: int) -> datetime:
    """*minutes* of real time after *at*, shown in Europe/London."""
    return (at.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(LONDON)


def live(book: Book, policy: Policy, at: datetime) -> list[Contact]:
    return [c for c in contacts_at(book, policy=policy, at=at) if not c.departed]


def source_of(contact: Contact) -> str:
    return contact.home.partition(":")[0]


MIS_KEYS = sts.record_keys(prefix="M", count=12)
IMPORT_KEYS = sts.record_keys(prefix="R", count=6)
EDITS = ("save-new", "save-ab", "remove-ab", "override", "save-on-source", "clear", "group")


@st.composite
def histories(
    draw: st.DrawFn,
    *,
    policy: Policy | None = None,
    max_nights: int = 3,
    edits: tuple[str, ...] = EDITS,
    deltas: bool = True,
) -> History:
    """A book built by nightly MIS syncs with daytime edits between them."""
    if policy is None:
        policy = draw(sts.policies())
    day = draw(st.sampled_from(FIRST_DAYS))
    history = History(policy, Book(), nightly(day), day, [], {}, {}, set())
    n_ab = 0
    for night in range(draw(st.integers(1, max_nights))):
        applied = nightly(day + timedelta(days=night))
        read = later(applied, -draw(st.integers(0, MAX_READ_AHEAD)))
        kind = SnapshotKind.FULL
        if deltas and history.mis and draw(st.booleans()):
            kind = SnapshotKind.DELTA
        snap = draw(
            sts.snapshots(
                at=read, keys=MIS_KEYS, max_size=8, kind=kind, removable=sorted(history.mis)
            )
        )
        result = history.apply(snap, applied, "nightly")
        if result.report.status is Status.APPLIED:
            if kind is SnapshotKind.FULL:
                history.mis = {r.key: r for r in snap.records}
            else:
                history.mis.update({r.key: r for r in snap.records})
                for key in snap.removed:
                    history.mis.pop(key, None)
        t = later(applied, 60 * draw(st.integers(1, 12)))
        if "import" in {s.name for s in policy.sources} and draw(st.booleans()):
            history.apply(draw(import_snapshots(history, t)), t, "upload")
            t = later(t, 1)
        for _ in range(draw(st.integers(0, 3)) if edits else 0):
            t = later(t, draw(st.integers(1, 90)))
            edit = draw(st.sampled_from(edits))
            everyone = live(history.book, policy, t)
            sourced = [c for c in everyone if source_of(c) != ADDRESS_BOOK]
            local = [c.id for c in everyone if source_of(c) == ADDRESS_BOOK]
            if edit == "save-new" or (edit in ("save-ab", "remove-ab") and not local):
                cid = f"{ADDRESS_BOOK}:ab{n_ab}"
                n_ab += 1
                data = draw(sts.contact_data())
                history.apply(AddressBookSave(cid, data), t, "office")
                history.saved[cid] = data
            elif edit == "save-ab":
                cid = draw(st.sampled_from(local))
                data = draw(sts.contact_data())
                names = draw(st.frozensets(st.sampled_from(FIELDS), min_size=1))
                history.apply(AddressBookSave(cid, data, names), t, "office")
                history.saved[cid] = attrs.evolve(
                    history.saved[cid], **{n: data.get(n) for n in names}
                )
            elif edit == "remove-ab":
                cid = draw(st.sampled_from(local))
                history.apply(AddressBookRemove(cid), t, "office")
                history.removed.add(cid)
            elif edit == "override" and sourced:
                contact = draw(st.sampled_from(sourced))
                covered = sorted(policy.source(source_of(contact)).covers)
                change = draw(sts.set_overrides(contact_ids=[contact.id], fields=covered, after=t))
                history.apply(change, t, "office")
            elif edit == "save-on-source" and sourced:
                contact = draw(st.sampled_from(sourced))
                data = draw(sts.contact_data())
                names = draw(
                    st.frozensets(
                        st.sampled_from(("given_name", "phones", "emails", "year_group")),
                        min_size=1,
                    )
                )
                history.apply(AddressBookSave(contact.id, data, names), t, "office")
            elif edit == "clear" and history.book.overrides:
                cid = draw(st.sampled_from(sorted(history.book.overrides)))
                field = draw(st.sampled_from([o.field for o in history.book.overrides[cid]]))
                history.apply(ClearOverride(cid, field), t, "office")
            elif edit == "group":
                group = draw(sts.groups(contact_ids=sorted(history.book.contacts)))
                history.apply(SetGroup(group), t, "office")
    return history


@st.composite
def import_snapshots(draw: st.DrawFn, history: History, at: datetime) -> Snapshot:
    """An import read at *at*: random rows, and copies of MIS people (a hazard, rule 12)."""
    snap = draw(sts.snapshots(source="import", at=at, keys=IMPORT_KEYS, max_size=3))
    rows = {r.key: r for r in snap.records}
    if history.mis and draw(st.booleans()):
        original = history.mis[draw(st.sampled_from(sorted(history.mis)))]
        key = draw(IMPORT_KEYS)
        rows[key] = Record(key, original.data)
    return attrs.evolve(snap, records=tuple(rows[k] for k in sorted(rows)))


def next_night(history: History) -> tuple[datetime, datetime]:
    """(read, applied) of the next nightly sync after the history."""
    days = 1
    while nightly(history.day + timedelta(days=days)) <= history.now:
        days += 1
    applied = nightly(history.day + timedelta(days=days))
    return later(applied, -5), applied


def next_snapshot(history: History, draw: st.DrawFn, **kwargs: Any) -> tuple[Snapshot, datetime]:
    read, applied = next_night(history)
    kwargs.setdefault("kind", draw(st.sampled_from(SnapshotKind)))
    if kwargs["kind"] is SnapshotKind.DELTA:
        kwargs.setdefault("min_size", 0)
        kwargs.setdefault("removable", sorted(history.mis))
    snap = draw(sts.snapshots(at=read, keys=MIS_KEYS, max_size=8, **kwargs))
    return snap, applied


def serialised(result: MergeResult | Book | Report) -> str:
    if isinstance(result, MergeResult):
        return dumps(result.book) + "\n" + dumps(result.report)
    return dumps(result)


def personal_values(data: ContactData | None) -> set[str]:
    """The personal values of *data* as they may be written: names, numbers, addresses."""
    if data is None:
        return set()
    found = {v for v in (data.given_name.strip(), data.family_name.strip()) if v}
    for phone in data.phones:
        found.add(phone.number.strip())
        found.add(normalise_phone(phone.number).comparable(phone.number))
    for email in data.emails:
        found.add(email.address.strip())
        found.add(normalise_email(email.address).comparable(email.address))
    return {v for v in found if v}


def every_data(book: Book) -> Iterator[tuple[str, ContactData]]:
    """(contact id, data) of every record version and override value in *book*."""
    for states in book.records.values():
        for state in states.values():
            for version in state.versions:
                if version.data is not None:
                    yield state.contact_id, version.data
    for cid, overrides in book.overrides.items():
        for o in overrides:
            yield cid, o.value
            yield cid, o.base
    for cid, ended in book.ended_overrides.items():
        for e in ended:
            yield cid, e.override.value
            yield cid, e.override.base


def e164(phones: Iterable[Phone]) -> tuple[tuple[PhoneType, str | None], ...]:
    return tuple((p.type, normalise_phone(p.number).value) for p in phones)


def canonical_emails(emails: Iterable[Email]) -> tuple[tuple[Any, str | None], ...]:
    return tuple((e.type, normalise_email(e.address).value) for e in emails)


# -- rule 1 ------------------------------------------------------------------------


def linked_policy(mis_covers: frozenset[str], import_covers: frozenset[str]) -> Policy:
    return Policy(
        sources=(
            Source("mis", SourceKind.MIS, covers=mis_covers, schedule=NIGHTLY),
            Source("import", SourceKind.IMPORT, covers=import_covers),
        )
    )


COVERS = st.frozensets(st.sampled_from(FIELDS), min_size=1)


class TestRule1OneHomeOneTruth:
    @SETTINGS
    @given(
        mis_covers=COVERS.map(lambda c: c | {"emails"}),
        import_covers=COVERS.map(lambda c: c | {"emails"}),
        mis_data=sts.contact_data(role=Role.GUARDIAN).filter(lambda d: bool(d.emails)),
        import_emails=st.lists(sts.emails(), min_size=1, max_size=2),
        day=st.sampled_from(FIRST_DAYS),
    )
    def test_a_value_the_home_removed_is_not_resurrected_by_a_lower_source(
        self,
        mis_covers: frozenset[str],
        import_covers: frozenset[str],
        mis_data: ContactData,
        import_emails: list[Email],
        day: date,
    ) -> None:
        """The MIS removes a linked person's email: the import's stale email does not show."""
        policy = linked_policy(mis_covers, import_covers)
        imported = attrs.evolve(mis_data, emails=import_emails)
        book = Book()
        at = nightly(day)
        book = merge(
            book, Snapshot("mis", at, (Record("M1", mis_data),)), policy=policy, at=at, by="t"
        ).book
        at = later(at, 60)
        book = merge(
            book, Snapshot("import", at, (Record("R1", imported),)), policy=policy, at=at, by="t"
        ).book
        at = later(at, 60)
        book = merge(book, Link("import:R1", "mis:M1"), policy=policy, at=at, by="t").book
        assert contact_at(book, "import:R1", policy=policy, at=at).data.emails == mis_data.emails
        at = nightly(day + timedelta(days=1))
        removed = attrs.evolve(mis_data, emails=())
        result = merge(
            book, Snapshot("mis", at, (Record("M1", removed),)), policy=policy, at=at, by="t"
        )
        assert result.report.status is Status.APPLIED
        contact = contact_at(result.book, "mis:M1", policy=policy, at=later(at, 1))
        assert contact.data.emails == ()
        assert contact.provenance["emails"].source == "mis"

    @SETTINGS
    @given(
        policy=sts.policies(imports=True),
        mis_data=sts.contact_data(),
        import_data=sts.contact_data(),
        day=st.sampled_from(FIRST_DAYS),
    )
    def test_home_wins_what_it_covers_and_a_lower_source_fills_only_the_rest(
        self, policy: Policy, mis_data: ContactData, import_data: ContactData, day: date
    ) -> None:
        """Once linked, a field comes from the MIS if it covers it, else the import, else empty."""
        at = nightly(day)
        book = merge(
            Book(), Snapshot("mis", at, (Record("M1", mis_data),)), policy=policy, at=at, by="t"
        ).book
        at = later(at, 60)
        book = merge(
            book, Snapshot("import", at, (Record("R1", import_data),)), policy=policy, at=at, by="t"
        ).book
        at = later(at, 60)
        book = merge(book, Link("mis:M1", "import:R1"), policy=policy, at=at, by="t").book
        contact = contact_at(book, "import:R1", policy=policy, at=at)
        assert contact.home == "mis:M1"
        for name in FIELDS:
            if policy.covers("mis", name):
                expected, source = mis_data.get(name), "mis"
            elif policy.covers("import", name):
                expected, source = import_data.get(name), "import"
            else:
                expected, source = ContactData().get(name), None
            assert contact.data.get(name) == expected, name
            assert contact.provenance[name].source == source, name


# -- rule 2 ------------------------------------------------------------------------


class TestRule2AddressBookContactsAreLocal:
    @SETTINGS
    @given(data=st.data())
    def test_no_sync_touches_an_address_book_contact(self, data: st.DataObject) -> None:
        """Address-book contacts hold what was last saved, whatever the syncs in between."""
        history = data.draw(histories(edits=("save-new", "save-ab", "remove-ab", "override")))
        snap, applied = next_snapshot(history, data.draw)
        before = history.book
        result = history.apply(snap, applied)
        local = set(history.saved)
        assert not local & {c.contact_id for c in result.report.changes}
        assert not local & set(result.report.departed)
        for cid, saved in history.saved.items():
            contact = contact_at(result.book, cid, policy=history.policy, at=applied)
            assert contact.data == saved
            assert contact.departed == (cid in history.removed)
            assert contact == contact_at(before, cid, policy=history.policy, at=applied)

    @SETTINGS
    @given(policy=sts.policies(), data=sts.contact_data(), at=sts.aware_datetimes())
    def test_a_save_is_effective_at_once_and_explains_itself(
        self, policy: Policy, data: ContactData, at: datetime
    ) -> None:
        """A new address-book contact has the saved data at the save's own instant."""
        result = merge(
            Book(), AddressBookSave("address-book:x", data), policy=policy, at=at, by="office"
        )
        contact = contact_at(result.book, "address-book:x", policy=policy, at=at)
        assert contact.data == data
        assert {p.source for p in contact.provenance.values()} == {ADDRESS_BOOK}
        assert result.report.created == ("address-book:x",)


# -- rule 3 ------------------------------------------------------------------------


class TestRule3OverridesAreTemporary:
    @SETTINGS
    @given(data=st.data())
    def test_an_override_takes_effect_at_once(self, data: st.DataObject) -> None:
        """A SetOverride on a live sourced contact shows at the instant it is set."""
        history = data.draw(histories(edits=()))
        at = later(history.now, 1)
        sourced = [c for c in live(history.book, history.policy, at) if source_of(c) == "mis"]
        assume(sourced)
        contact = data.draw(st.sampled_from(sourced))
        covered = sorted(history.policy.source("mis").covers)
        change = data.draw(sts.set_overrides(contact_ids=[contact.id], fields=covered, after=at))
        result = history.apply(change, at)
        after = contact_at(result.book, contact.id, policy=history.policy, at=at)
        assert after.data.get(change.field) == change.value.get(change.field)
        assert after.provenance[change.field].kind is ProvenanceKind.OVERRIDE
        assert [o.field for o in result.report.overrides_set] == [change.field]

    @SETTINGS
    @given(data=st.data())
    def test_no_override_outlives_a_sync_of_its_source_read_after_the_edit(
        self, data: st.DataObject
    ) -> None:
        """NEXT_SYNC/UNTIL overrides end at the first sync read after them; SOURCE_CHANGE only
        survives while the source still holds the base value; UNTIL ones end at ``until``."""
        history = data.draw(histories(max_nights=4))
        book, policy = history.book, history.policy
        region = policy.default_region
        for overrides in book.overrides.values():
            for o in overrides:
                read_after = [s for s in book.syncs.get(o.source, ()) if s.extracted_at > o.set_at]
                if o.lifetime is OverrideLifetime.SOURCE_CHANGE:
                    if read_after:
                        state = book.records[o.source][o.record.partition(":")[2]]
                        assert state.current.data is not None
                        now = comparable(o.field, state.current.data.get(o.field), region)
                        assert now == comparable(o.field, o.base_value, region)
                else:
                    assert not read_after, (o.lifetime, o.set_at, read_after)
                if o.until is not None:
                    assert book.updated_at is not None
                    assert o.until > book.updated_at

    @SETTINGS
    @given(data=st.data())
    def test_every_ended_override_is_in_that_merges_report(self, data: st.DataObject) -> None:
        """For every merge, the overrides it ended are exactly those its report lists."""
        history = data.draw(histories(max_nights=4))
        snap, applied = next_snapshot(history, data.draw)
        history.apply(snap, applied)
        for step in history.steps:
            old = Counter(o for os in step.before.overrides.values() for o in os)
            new = Counter(o for os in step.result.book.overrides.values() for o in os)
            gone = old - new
            reported = step.result.report.overrides_ended
            assert Counter(e.override for e in reported) == gone
            old_ended = Counter(e for es in step.before.ended_overrides.values() for e in es)
            new_ended = Counter(e for es in step.result.book.ended_overrides.values() for e in es)
            assert new_ended - old_ended == Counter(reported)
            for e in reported:
                if e.ended_by == EXPIRY:  # its time ran out: it ended then, in no sync
                    assert e.override.until == e.ended_at
                    assert e.ended_at <= step.at
                    assert e.sync is None
                else:
                    assert e.ended_at == step.at

    @SETTINGS
    @given(
        base=sts.email_addresses().map(str.strip),
        edit=sts.email_addresses().map(str.strip),
        third=sts.email_addresses().map(str.strip),
        choice=st.sampled_from(("base", "edit", "third")),
        data=st.data(),
    )
    def test_an_ended_override_says_what_the_source_did(
        self, base: str, edit: str, third: str, choice: str, data: st.DataObject
    ) -> None:
        """Source holds the edit (retyped, typed otherwise or not): confirmed; the old one: lost;
        else superseded."""
        canon = {v: normalise_email(v).value for v in (base, edit, third)}
        assume(len(set(canon.values())) == 3)
        policy = Policy.simple(Source("mis", SourceKind.MIS, schedule=NIGHTLY))
        person = ContactData("Nina", "Okafor", Role.GUARDIAN, emails=(Email(base),))
        day = data.draw(st.sampled_from(FIRST_DAYS))
        at = nightly(day)
        book = merge(
            Book(), Snapshot("mis", at, (Record("M1", person),)), policy=policy, at=at, by="t"
        ).book
        override = ContactData(emails=(Email(edit),))
        at = later(at, 600)
        book = merge(
            book,
            AddressBookSave("mis:M1", override, frozenset({"emails"})),
            policy=policy,
            at=at,
            by="office",
        ).book
        target = {"base": base, "edit": edit, "third": third}[choice]
        written = data.draw(sts.email_addresses(address=target.strip()))
        at = nightly(day + timedelta(days=1))
        # A source may type an address its own way: the address decides the outcome.
        written_type = data.draw(st.sampled_from(EmailType))
        source_now = attrs.evolve(person, emails=(Email(written, written_type),))
        report = merge(
            book, Snapshot("mis", at, (Record("M1", source_now),)), policy=policy, at=at, by="t"
        ).report
        expected = {
            "base": OverrideOutcome.LOST,
            "edit": OverrideOutcome.CONFIRMED,
            "third": OverrideOutcome.SUPERSEDED,
        }[choice]
        assert [e.outcome for e in report.overrides_ended] == [expected]
        assert report.lost == (report.overrides_ended if choice == "base" else ())


def comparable(field: str, value: Any, region: str) -> Any:
    """Rule 10's comparison, written out: E.164 phones, normalised emails, trimmed text."""
    if field == "phones":
        return tuple(
            (p.type, normalise_phone(p.number, region).comparable(p.number)) for p in value
        )
    if field == "emails":
        return tuple((e.type, normalise_email(e.address).comparable(e.address)) for e in value)
    return value.strip() if isinstance(value, str) else value


# -- rule 4 ------------------------------------------------------------------------


class TestRule4DryRun:
    @SETTINGS
    @given(data=st.data())
    def test_dry_run_is_the_merge_report_and_changes_nothing(self, data: st.DataObject) -> None:
        """A dry run reports byte-for-byte what the merge does, and leaves the book alone."""
        history = data.draw(histories())
        snap, applied = next_snapshot(history, data.draw)
        before = dumps(history.book)
        report = dry_run(history.book, snap, policy=history.policy, at=applied, by="nightly")
        assert dumps(history.book) == before
        result = merge(history.book, snap, policy=history.policy, at=applied, by="nightly")
        assert dumps(report) == dumps(result.report)
        assert dumps(history.book) == before


# -- rule 5 ------------------------------------------------------------------------


BAD_SNAPSHOTS = ("duplicate-key", "stale", "empty-full", "from-the-future", "change-and-remove")


class TestRule5AllOrNothingIdempotentOrderBlind:
    @SETTINGS
    @given(data=st.data())
    def test_applying_the_same_snapshot_twice_changes_nothing_the_second_time(
        self, data: st.DataObject
    ) -> None:
        """Applying a snapshot again is NO_CHANGE (or HELD again) and leaves the same book."""
        history = data.draw(histories())
        snap, applied = next_snapshot(history, data.draw)
        first = history.apply(snap, applied)
        again_at = later(applied, data.draw(st.integers(0, 600)))
        second = merge(first.book, snap, policy=history.policy, at=again_at, by="nightly")
        assert serialised(second.book) == serialised(first.book)
        if first.report.status is Status.HELD:
            assert second.report.status is Status.HELD
            assert second.report.held == first.report.held
        else:
            assert first.report.status is Status.APPLIED
            assert second.report.status is Status.NO_CHANGE
            assert second.report.changes == ()
            assert second.report.overrides_ended == ()

    @SETTINGS
    @given(data=st.data())
    def test_the_order_of_records_never_matters(self, data: st.DataObject) -> None:
        """A permutation of a snapshot's records (and removals) gives the same bytes."""
        history = data.draw(histories())
        snap, applied = next_snapshot(history, data.draw)
        shuffled = attrs.evolve(
            snap,
            records=data.draw(st.permutations(snap.records)),
            removed=data.draw(st.permutations(snap.removed)),
        )
        a = merge(history.book, snap, policy=history.policy, at=applied, by="nightly")
        b = merge(history.book, shuffled, policy=history.policy, at=applied, by="nightly")
        assert serialised(a) == serialised(b)

    @SETTINGS
    @given(data=st.data(), bad=st.sampled_from(BAD_SNAPSHOTS))
    def test_a_failed_sync_leaves_the_book_exactly_as_it_was(
        self, data: st.DataObject, bad: str
    ) -> None:
        """A snapshot the rules refuse raises a SourceTruthError and changes nothing."""
        history = data.draw(histories(deltas=False))
        snap, applied = next_snapshot(history, data.draw, kind=SnapshotKind.FULL)
        if bad == "duplicate-key":
            twin = Record(snap.records[0].key, data.draw(sts.contact_data()))
            snap = attrs.evolve(snap, records=(*snap.records, twin))
        elif bad == "stale":
            snap = attrs.evolve(snap, extracted_at=history.last_read - timedelta(seconds=1))
        elif bad == "empty-full":
            snap = attrs.evolve(snap, records=())
        elif bad == "from-the-future":
            snap = attrs.evolve(snap, extracted_at=applied + timedelta(minutes=1))
        else:
            key = snap.records[0].key
            snap = Snapshot("mis", snap.extracted_at, snap.records, SnapshotKind.DELTA, (key,))
        before = dumps(history.book)
        with pytest.raises(SourceTruthError):
            merge(history.book, snap, policy=history.policy, at=applied, by="nightly")
        assert dumps(history.book) == before
        assert loads(before, Book) == history.book

    @SETTINGS
    @given(
        policy=sts.policies(),
        snap=sts.snapshots(
            kind=SnapshotKind.DELTA, min_size=0, max_size=3, removable=("M00", "M01")
        ),
    )
    def test_a_delta_for_a_source_never_synced_applies_or_is_refused_cleanly(
        self, policy: Policy, snap: Snapshot
    ) -> None:
        """A valid delta on a fresh book applies, or raises a SourceTruthError: no other error."""
        at = snap.extracted_at
        try:
            result = merge(Book(), snap, policy=policy, at=at, by="delta")
        except SourceTruthError:
            return
        assert result.report.status in (Status.APPLIED, Status.NO_CHANGE)
        present = {c.id for c in contacts_at(result.book, policy=policy, at=at)}
        assert present == {f"mis:{r.key}" for r in snap.records}

    @SETTINGS
    @given(data=st.data())
    def test_a_held_sync_leaves_the_book_unchanged_until_confirmed(
        self, data: st.DataObject
    ) -> None:
        """Dropping more records than the guard allows holds the sync; confirming applies it."""
        guard = DepartureGuard(max_count=1, max_fraction=0.0, min_count=1)
        policy = data.draw(sts.policies(guard=guard))
        history = data.draw(histories(policy=policy, edits=("override", "save-new")))
        present = sorted(
            k for k, s in history.book.records.get("mis", {}).items() if s.current.data is not None
        )
        assume(len(present) >= 2)
        dropping = data.draw(st.sets(st.sampled_from(present), min_size=2))
        assume(len(dropping) < len(present))
        read, applied = next_night(history)
        kept = tuple(history.mis[k] for k in present if k not in dropping)
        snap = Snapshot("mis", read, kept)
        before = dumps(history.book)
        result = merge(history.book, snap, policy=policy, at=applied, by="nightly")
        assert result.report.status is Status.HELD
        assert dumps(result.book) == before
        assert result.report.held is not None
        assert result.report.held.departures == len(dropping)
        assert result.report.held.departing == tuple(sorted(f"mis:{k}" for k in dropping))
        confirmed = merge(
            result.book,
            ConfirmSync(snap, result.report.held.token),
            policy=policy,
            at=applied,
            by="data manager",
        )
        assert confirmed.report.status is Status.APPLIED
        assert set(confirmed.report.departed) == {f"mis:{k}" for k in dropping}


# -- rule 6 ------------------------------------------------------------------------


class TestRule6NothingDeletedByAccident:
    @SETTINGS
    @given(
        policy=sts.policies(guard=DepartureGuard(enabled=False)),
        data=st.data(),
        day=st.sampled_from(FIRST_DAYS),
    )
    def test_a_missing_record_departs_is_kept_and_returns(
        self, policy: Policy, data: st.DataObject, day: date
    ) -> None:
        """A record missing from a full snapshot departs (kept, dated); it returns when back."""
        snap = data.draw(sts.snapshots(at=nightly(day), keys=MIS_KEYS, min_size=2))
        keys = [r.key for r in snap.records]
        gone = data.draw(st.sets(st.sampled_from(keys), min_size=1, max_size=len(keys) - 1))
        book = merge(Book(), snap, policy=policy, at=nightly(day), by="t").book
        at2 = nightly(day + timedelta(days=1))
        partial = attrs.evolve(
            snap, extracted_at=at2, records=tuple(r for r in snap.records if r.key not in gone)
        )
        result = merge(book, partial, policy=policy, at=at2, by="t")
        ids = sorted(f"mis:{k}" for k in gone)
        assert list(result.report.departed) == ids
        for cid in ids:
            assert cid in result.book.contacts
            contact = contact_at(result.book, cid, policy=policy, at=at2)
            assert contact.departed
            assert contact.departed_at == at2
        at3 = nightly(day + timedelta(days=2))
        back = merge(
            result.book, attrs.evolve(snap, extracted_at=at3), policy=policy, at=at3, by="t"
        )
        assert list(back.report.returned) == ids
        for cid in ids:
            assert not contact_at(back.book, cid, policy=policy, at=at3).departed


# -- rule 7 ------------------------------------------------------------------------


_CHILD = """
import json, sys
from datetime import datetime
from sourcetruth import Book, Policy, Snapshot, dumps, loads, merge
job = json.load(sys.stdin)
result = merge(loads(job["book"], Book), loads(job["snapshot"], Snapshot),
               policy=loads(job["policy"], Policy), at=datetime.fromisoformat(job["at"]), by="n")
sys.stdout.write(dumps(result.book) + "\\n" + dumps(result.report))
"""


class TestRule7Deterministic:
    @SETTINGS
    @given(data=st.data())
    def test_merging_the_same_inputs_twice_gives_the_same_bytes(self, data: st.DataObject) -> None:
        """merge is a pure function: same book, snapshot, policy and time, same serialisation."""
        history = data.draw(histories())
        snap, applied = next_snapshot(history, data.draw)
        a = merge(history.book, snap, policy=history.policy, at=applied, by="nightly")
        b = merge(history.book, snap, policy=history.policy, at=applied, by="nightly")
        assert serialised(a) == serialised(b)

    @SETTINGS
    @given(data=st.data())
    def test_the_same_time_in_another_zone_gives_the_same_bytes(self, data: st.DataObject) -> None:
        """An instant given in UTC or in Europe/London is the same instant: same bytes."""
        history = data.draw(histories())
        snap, applied = next_snapshot(history, data.draw)
        a = merge(history.book, snap, policy=history.policy, at=applied, by="nightly")
        b = merge(
            history.book, snap, policy=history.policy, at=applied.astimezone(UTC), by="nightly"
        )
        assert serialised(a) == serialised(b)

    @settings(SETTINGS, max_examples=budget.examples(3))
    @given(data=st.data(), seed=st.integers(0, 2**32 - 1))
    def test_the_same_bytes_under_another_hash_seed(self, data: st.DataObject, seed: int) -> None:
        """A merge run in a fresh interpreter with another PYTHONHASHSEED writes the same bytes."""
        history = data.draw(histories())
        snap, applied = next_snapshot(history, data.draw)
        here = merge(history.book, snap, policy=history.policy, at=applied, by="n")
        job = {
            "book": dumps(history.book),
            "snapshot": dumps(snap),
            "policy": dumps(history.policy),
            "at": applied.isoformat(),
        }
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        child = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        assert child.stdout == serialised(here)

    @SETTINGS
    @given(data=st.data())
    def test_books_and_reports_round_trip_through_json(self, data: st.DataObject) -> None:
        """loads(dumps(x), type(x)) == x for every book and report of a history."""
        history = data.draw(histories())
        for step in history.steps:
            for value in (step.result.book, step.result.report):
                text = dumps(value)
                back = loads(text, type(value))
                assert back == value
                assert dumps(back) == text

    @SETTINGS
    @given(policy=sts.policies(), snap=sts.snapshots(), naive=st.datetimes())
    def test_a_naive_time_is_refused(self, policy: Policy, snap: Snapshot, naive: datetime) -> None:
        """Time is always an explicit, timezone-aware argument."""
        with pytest.raises(UsageError):
            merge(Book(), snap, policy=policy, at=naive, by="t")


# -- rule 8 ------------------------------------------------------------------------


class TestRule8EveryValueExplainsItself:
    @SETTINGS
    @given(data=st.data())
    def test_explain_agrees_with_the_effective_contact(self, data: st.DataObject) -> None:
        """explain gives each field's effective value and provenance, at any past time."""
        history = data.draw(histories())
        step = data.draw(st.sampled_from(history.steps))
        at = later(step.at, data.draw(st.integers(0, 120)))
        for contact in contacts_at(history.book, policy=history.policy, at=at):
            for name in FIELDS:
                why = explain(history.book, contact.id, name, policy=history.policy, at=at)
                assert why.effective_value == contact.data.get(name)
                assert why.provenance == contact.provenance[name]
                prov = why.provenance
                if prov.kind is ProvenanceKind.SOURCE:
                    assert prov.read_at is not None
                    assert prov.applied_at is not None
                    assert prov.read_at <= prov.applied_at <= at
                if prov.kind is ProvenanceKind.OVERRIDE:
                    assert any(o.field == name for o in contact.overrides)

    @SETTINGS
    @given(data=st.data())
    def test_the_past_never_changes(self, data: st.DataObject) -> None:
        """After each merge, the book answers for every earlier instant as it did before."""
        history = data.draw(histories())
        for step in history.steps:
            for other in history.steps:
                t = later(other.at, -1)
                if t >= step.at:
                    continue
                policy = history.policy
                assert list(contacts_at(step.result.book, policy=policy, at=t)) == list(
                    contacts_at(step.before, policy=policy, at=t)
                )

    @SETTINGS
    @given(data=st.data(), channel=st.sampled_from(Channel))
    def test_every_address_keeps_the_provenance_of_its_contact(
        self, data: st.DataObject, channel: Channel
    ) -> None:
        """A resolved address carries, per contact, the provenance of the field it came from."""
        history = data.draw(histories())
        at = history.now
        everyone = sorted(history.book.contacts)
        assume(everyone)
        result = recipients(history.book, tuple(everyone), channel, policy=history.policy, at=at)
        field = "phones" if channel is Channel.SMS else "emails"
        for r in result.recipients:
            for cid, prov in zip(r.contact_ids, r.provenance, strict=True):
                assert (
                    prov
                    == contact_at(history.book, cid, policy=history.policy, at=at).provenance[field]
                )


# -- rule 9 ------------------------------------------------------------------------


def daily_oracle(hour: int, minute: int, after: datetime) -> datetime:
    """The first wall-clock hour:minute in London (first of a repeated hour) after *after*."""
    local = after.astimezone(LONDON).date()
    for d in range(-1, 3):
        day = local + timedelta(days=d)
        wall = datetime.combine(day, time(hour, minute), tzinfo=LONDON).replace(fold=0)
        if wall.astimezone(UTC) > after:
            return wall.astimezone(UTC)
    raise AssertionError("unreachable")


class TestRule9WhenWillItShow:
    @SETTINGS
    @given(policy=sts.policies(), at=sts.aware_datetimes())
    def test_an_address_book_change_shows_at_once(self, policy: Policy, at: datetime) -> None:
        """when_effective for the address book is the change's own time."""
        assert when_effective(policy, ADDRESS_BOOK, at) == at

    @SETTINGS
    @given(policy=sts.policies(), at=sts.aware_datetimes())
    def test_an_mis_change_shows_at_the_next_0200_london(
        self, policy: Policy, at: datetime
    ) -> None:
        """A change made at T shows at the first 02:00 Europe/London strictly after T."""
        shows = when_effective(policy, "mis", at)
        assert shows == daily_oracle(2, 0, at.astimezone(UTC))
        assert shows > at
        local = shows.astimezone(LONDON)
        assert (local.hour, local.minute) == (2, 0)

    @SETTINGS
    @given(
        hour=st.integers(0, 23),
        minute=st.sampled_from((0, 15, 30, 59)),
        at=sts.aware_datetimes(),
    )
    def test_any_daily_schedule_follows_london_wall_clock(
        self, hour: int, minute: int, at: datetime
    ) -> None:
        """A daily schedule runs once per local day, at the first of a repeated time."""
        schedule = Schedule(f"FREQ=DAILY;BYHOUR={hour};BYMINUTE={minute}", "Europe/London")
        assert next_sync(schedule, at) == daily_oracle(hour, minute, at.astimezone(UTC))


# -- rule 10 -----------------------------------------------------------------------


def reformatted(data: ContactData, draw: st.DrawFn) -> ContactData:
    """*data* with every phone and email written another way."""
    phones = tuple(
        Phone(draw(sts.phone_numbers(number=normalise_phone(p.number).value)), p.type)
        for p in data.phones
    )
    emails = tuple(
        Email(draw(sts.email_addresses(address=e.address.strip())), e.type) for e in data.emails
    )
    return attrs.evolve(data, phones=phones, emails=emails)


BAD_PHONES = ("12", "not a number", "07700 9001234", "+44")


class TestRule10NormaliseBeforeComparing:
    @SETTINGS
    @given(number=sts.phones().map(lambda p: normalise_phone(p.number).value), data=st.data())
    def test_every_way_of_writing_a_drama_number_is_one_e164_number(
        self, number: str | None, data: st.DataObject
    ) -> None:
        """All the formats of the strategies normalise to the same E.164 number."""
        assert number is not None
        written = data.draw(sts.phone_numbers(number=number))
        assert normalise_phone(written).value == number

    @SETTINGS
    @given(data=st.data())
    def test_a_reformatted_phone_or_email_is_not_a_change(self, data: st.DataObject) -> None:
        """Re-sending the same people with numbers and addresses retyped reports no change."""
        history = data.draw(histories(edits=(), deltas=False))
        assume(history.mis)
        read, applied = next_night(history)
        records = tuple(Record(r.key, reformatted(r.data, data.draw)) for r in history.mis.values())
        result = history.apply(Snapshot("mis", read, records), applied)
        assert result.report.status is Status.APPLIED
        assert result.report.changes == ()

    @SETTINGS
    @given(data=st.data())
    def test_saving_a_retyped_value_over_a_source_value_sets_no_override(
        self, data: st.DataObject
    ) -> None:
        """An address-book save of the same phones and emails, retyped, is not an edit."""
        policy = Policy.simple(Source("mis", SourceKind.MIS, schedule=NIGHTLY))
        history = data.draw(histories(policy=policy, edits=(), deltas=False))
        at = later(history.now, 1)
        sourced = [c for c in live(history.book, policy, at) if source_of(c) == "mis"]
        assume(sourced)
        contact = data.draw(st.sampled_from(sourced))
        save = AddressBookSave(
            contact.id, reformatted(contact.data, data.draw), frozenset({"phones", "emails"})
        )
        result = history.apply(save, at)
        assert result.report.overrides_set == ()
        assert result.report.changes == ()

    @SETTINGS
    @given(
        data=sts.contact_data(),
        bad=st.sampled_from(BAD_PHONES),
        index=st.integers(0, 2),
        at=sts.aware_datetimes(),
    )
    def test_a_value_that_does_not_parse_is_kept_raw_and_reported(
        self, data: ContactData, bad: str, index: int, at: datetime
    ) -> None:
        """An unparseable phone is kept as given and named in the report, never dropped."""
        phones = list(data.phones)
        index = min(index, len(phones))
        phones.insert(index, Phone(bad))
        record = Record("M1", attrs.evolve(data, phones=phones))
        policy = Policy.simple(Source("mis", SourceKind.MIS))
        result = merge(Book(), Snapshot("mis", at, (record,)), policy=policy, at=at, by="t")
        contact = contact_at(result.book, "mis:M1", policy=policy, at=at)
        assert contact.data.phones[index] == Phone(bad)
        assert [(u.record, u.field, u.index) for u in result.report.unnormalised] == [
            ("mis:M1", "phones", index)
        ]


# -- rule 11 -----------------------------------------------------------------------


class TestRule11GroupsSpanHomes:
    @SETTINGS
    @given(data=st.data(), channel=st.sampled_from(Channel))
    def test_departed_contacts_are_never_recipients_and_no_address_is_listed_twice(
        self, data: st.DataObject, channel: Channel
    ) -> None:
        """Any group, any time: no departed contact, each address once, each person once."""
        history = data.draw(histories(max_nights=4))
        group = data.draw(sts.groups(contact_ids=sorted(history.book.contacts)))
        at = history.now
        result = recipients(history.book, group, channel, policy=history.policy, at=at)
        everyone = {c.id: c for c in contacts_at(history.book, policy=history.policy, at=at)}
        reached = [cid for r in result.recipients for cid in r.contact_ids]
        assert not [cid for cid in reached if everyone[cid].departed]
        assert len(set(result.addresses)) == len(result.addresses)
        assert len(set(reached)) == len(reached)
        normalise = normalise_phone if channel is Channel.SMS else normalise_email
        for address in result.addresses:
            assert normalise(address).value == address
        listed = set(reached) | {u.contact_id for u in result.unreachable}
        for cid in group.members:
            assert cid in listed

    @SETTINGS
    @given(data=st.data(), rule=sts.rules().filter(lambda r: not r.guardians_of))
    def test_a_rule_group_is_evaluated_against_effective_data(
        self, data: st.DataObject, rule: Rule
    ) -> None:
        """A rule selects exactly the live contacts whose effective data matches it."""
        history = data.draw(histories())
        at = history.now
        everyone = list(contacts_at(history.book, policy=history.policy, at=at))
        expected = {
            c.id
            for c in everyone
            if not c.departed
            and (not rule.roles or c.data.role in rule.roles)
            and (not rule.year_groups or c.data.year_group in rule.year_groups)
            and (
                not rule.registration_groups
                or c.data.registration_group in rule.registration_groups
            )
        }
        result = recipients(history.book, rule, Channel.EMAIL, policy=history.policy, at=at)
        chosen = {cid for r in result.recipients for cid in r.contact_ids}
        chosen |= {u.contact_id for u in result.unreachable}
        assert chosen == expected

    @SETTINGS
    @given(data=st.data(), channel=st.sampled_from(Channel))
    def test_a_group_reaches_members_of_every_home(
        self, data: st.DataObject, channel: Channel
    ) -> None:
        """A static group of MIS and address-book contacts reaches each one with an address."""
        history = data.draw(histories(edits=("save-new",)))
        at = later(history.now, 1)
        members = {c.id: c for c in live(history.book, history.policy, at)}
        assume(members)
        book = history.apply(SetGroup(GroupDefinition("All", frozenset(members))), at).book
        result = recipients(book, "All", channel, policy=history.policy, at=at)
        reached = {cid for r in result.recipients for cid in r.contact_ids}
        for cid, contact in members.items():
            if channel is Channel.SMS:
                usable = any(
                    p.type is PhoneType.MOBILE and normalise_phone(p.number).ok
                    for p in contact.data.phones
                )
            else:
                usable = any(normalise_email(e.address).ok for e in contact.data.emails)
            assert (cid in reached) == usable, cid


@st.composite
def mobiles(draw: st.DrawFn) -> Phone:
    """A phone from a small pool of 07700 900xxx drama numbers (so that couples share one),
    any type, written any way; now and then one that is not a number at all."""
    if draw(st.integers(0, 9)) == 0:
        return Phone("not a number", PhoneType.MOBILE)
    number = f"+447700900{draw(st.integers(0, 15)):03d}"
    kind = draw(st.sampled_from((PhoneType.MOBILE, PhoneType.MOBILE, PhoneType.HOME)))
    return Phone(draw(sts.phone_numbers(number=number)), kind)


YEARS = ("8", "9")


@st.composite
def schools(draw: st.DrawFn) -> tuple[list[Record], list[Record]]:
    """Two nightly full MIS snapshots of a school: pupils in year and registration groups,
    guardians with one or two relationships (any priority, some not receiving messages);
    the second drops some people (they depart) and may move pupils or change guardians."""
    n_pupils = draw(st.integers(1, 6))
    pupil_keys = [f"P{i}" for i in range(n_pupils)]

    def pupil(key: str) -> Record:
        year = draw(st.sampled_from(YEARS))
        reg = year + draw(st.sampled_from("AB"))
        return Record(
            key, ContactData("Nina", "Okafor", Role.PUPIL, year_group=year, registration_group=reg)
        )

    def guardian(key: str) -> Record:
        children = draw(
            st.lists(st.sampled_from([*pupil_keys, "P99"]), min_size=1, max_size=2, unique=True)
        )
        relationships = tuple(
            Relationship(
                child,
                priority=draw(st.integers(1, 3)),
                parental_responsibility=draw(st.booleans()),
                receives_messages=draw(st.integers(0, 3)) > 0,
            )
            for child in children
        )
        return Record(
            key,
            ContactData(
                draw(st.sampled_from(sts.GIVEN_NAMES)),
                draw(st.sampled_from(sts.FAMILY_NAMES)),
                Role.GUARDIAN,
                phones=draw(st.lists(mobiles(), max_size=2)),
                emails=draw(st.lists(sts.emails(), max_size=2)),
                relationships=relationships,
            ),
        )

    first = [pupil(k) for k in pupil_keys]
    first += [guardian(f"G{i}") for i in range(draw(st.integers(1, 8)))]
    second = []
    for record in first:
        fate = draw(st.sampled_from(("same", "same", "gone", "changed")))
        if fate == "same":
            second.append(record)
        elif fate == "changed":
            maker = pupil if record.data.role is Role.PUPIL else guardian
            second.append(maker(record.key))
    if not second:
        second.append(first[0])
    return first, second


def guardians_oracle(
    school: list[Record], rule: Rule, channel: Channel
) -> tuple[dict[str, list[str]], set[str]]:
    """From the raw records: address -> contact ids reached there, and who is unreachable."""
    pupils = {
        r.key
        for r in school
        if r.data.role is Role.PUPIL
        and (not rule.year_groups or r.data.year_group in rule.year_groups)
        and (not rule.registration_groups or r.data.registration_group in rule.registration_groups)
    }
    chosen = sorted(
        f"mis:{r.key}"
        for r in school
        if any(
            rel.pupil in pupils
            and rel.receives_messages
            and (rule.max_priority is None or rel.priority <= rule.max_priority)
            for rel in r.data.relationships
        )
    )
    data = {f"mis:{r.key}": r.data for r in school}
    by_address: dict[str, list[str]] = {}
    unreachable: set[str] = set()
    for cid in chosen:
        if channel is Channel.SMS:
            values = [
                normalise_phone(p.number).value
                for p in data[cid].phones
                if p.type is PhoneType.MOBILE
            ]
        else:
            values = [normalise_email(e.address).value for e in data[cid].emails]
        usable = [v for v in values if v is not None]
        if usable:
            by_address.setdefault(usable[0], []).append(cid)
        else:
            unreachable.add(cid)
    return by_address, unreachable


class TestRule11GuardiansOf:
    @settings(SETTINGS, max_examples=budget.examples(100))
    @given(
        school=schools(),
        rule=st.builds(
            Rule,
            year_groups=st.frozensets(st.sampled_from(YEARS), max_size=1),
            registration_groups=st.frozensets(
                st.sampled_from([y + c for y in YEARS for c in "AB"]), max_size=1
            ),
            guardians_of=st.just(True),
            max_priority=st.none() | st.integers(1, 3),
        ),
        channel=st.sampled_from(Channel),
        day=st.sampled_from(FIRST_DAYS),
        after_tuesday=st.booleans(),
        minutes=st.integers(0, 22 * 60),
    )
    def test_a_guardians_of_rule_reaches_the_guardians_the_records_name(
        self,
        school: tuple[list[Record], list[Record]],
        rule: Rule,
        channel: Channel,
        day: date,
        after_tuesday: bool,
        minutes: int,
    ) -> None:
        """A rule for "parents of ..." reaches, once per address, every present guardian with a
        relationship that receives messages, within max_priority, to a present pupil who
        matches the rule, as the MIS said at that time; departed people never."""
        policy = Policy.simple(
            Source("mis", SourceKind.MIS, schedule=NIGHTLY), guard=DepartureGuard(enabled=False)
        )
        first, second = school
        monday, tuesday = nightly(day), nightly(day + timedelta(days=1))
        book = merge(Book(), Snapshot("mis", monday, first), policy=policy, at=monday, by="t").book
        result = merge(book, Snapshot("mis", tuesday, second), policy=policy, at=tuesday, by="t")
        assert result.report.status is Status.APPLIED
        at = later(tuesday if after_tuesday else monday, minutes)
        found = recipients(result.book, rule, channel, policy=policy, at=at)
        expected, unreachable = guardians_oracle(second if after_tuesday else first, rule, channel)
        assert {r.address: list(r.contact_ids) for r in found.recipients} == expected
        assert {u.contact_id for u in found.unreachable} == unreachable


# -- rule 12 -----------------------------------------------------------------------


class TestRule12TwoFeeds:
    @SETTINGS
    @given(data=st.data())
    def test_a_person_in_both_feeds_is_reported_and_not_merged(self, data: st.DataObject) -> None:
        """An import row copying an MIS person (retyped) is reported; both stay separate."""
        policy = data.draw(sts.policies(imports=True, guard=DepartureGuard(enabled=False)))
        history = data.draw(histories(policy=policy, edits=(), deltas=False))
        candidates = [
            r
            for r in history.mis.values()
            if r.data.given_name and (r.data.phones or r.data.emails)
        ]
        assume(candidates)
        original = data.draw(st.sampled_from(candidates))
        at = later(history.now, 1)
        row = Record("R99", reformatted(original.data, data.draw))
        result = history.apply(Snapshot("import", at, (row,)), at)
        pair = PossibleDuplicate("import:R99", f"mis:{original.key}", ())
        assert (pair.record, pair.other) in {(d.record, d.other) for d in result.report.duplicates}
        for cid in ("import:R99", f"mis:{original.key}"):
            assert contact_at(result.book, cid, policy=policy, at=at).id == cid
        both = recipients(
            result.book,
            ("import:R99", f"mis:{original.key}"),
            Channel.EMAIL,
            policy=policy,
            at=at,
        )
        assert len(set(both.addresses)) == len(both.addresses)


# -- rule 13 -----------------------------------------------------------------------


def reprs(history: History) -> Iterator[str]:
    policy, book = history.policy, history.book
    for step in history.steps:
        yield repr(step.change)
        yield repr(step.result.report)
        yield from (repr(c) for c in step.result.report.changes)
        yield from (repr(o) for o in step.result.report.overrides_set)
        yield from (repr(e) for e in step.result.report.overrides_ended)
    for contact in contacts_at(book, policy=policy, at=history.now):
        yield repr(contact)
        yield repr(contact.data)
        yield from (repr(o) for o in contact.overrides)
        for name in FIELDS:
            yield repr(explain(book, contact.id, name, policy=policy, at=history.now))
    for record in history.mis.values():
        yield repr(record)
    for channel in Channel:
        found = recipients(
            book, tuple(sorted(book.contacts)), channel, policy=policy, at=history.now
        )
        yield repr(found)
        yield from (repr(r) for r in found.recipients)


def provoke(fault: str, snap: Snapshot, override: SetOverride) -> None:
    """Make the library raise about data that holds *snap*'s personal values."""
    at = nightly(FIRST_DAYS[0])
    policy = Policy.simple(
        Source("mis", SourceKind.MIS, covers=frozenset({"given_name", "phones"}))
    )
    first = snap.records[0]
    if fault == "duplicate":
        twice = attrs.evolve(snap, records=(*snap.records, first))
        merge(Book(), twice, policy=policy, at=at, by="t")
    elif fault == "corrupt-json":
        envelope = json.loads(dumps(snap))
        record = envelope["data"]["records"][0]["data"]
        record["role"] = first.data.given_name
        record["phones"] = [{"number": p.number, "type": p.number} for p in first.data.phones]
        record["emails"] = [{"address": {"x": e.address}} for e in first.data.emails]
        loads(json.dumps(envelope), Snapshot)
    elif fault == "uncovered":
        book = merge(Book(), snap, policy=policy, at=at, by="t").book
        merge(book, override, policy=policy, at=later(at, 1), by="t")
    elif fault == "unknown":
        merge(Book(), AddressBookSave("mis:nobody", first.data), policy=policy, at=at, by="t")
    else:
        loads(dumps(snap), Record)


class TestRule13PersonalDataStaysInItsPlace:
    @SETTINGS
    @given(data=st.data())
    def test_no_personal_value_appears_in_a_repr(self, data: st.DataObject) -> None:
        """Names, numbers and addresses never show in the repr of any model object."""
        history = data.draw(histories())
        values = set().union(*(personal_values(d) for _, d in every_data(history.book)))
        for text in reprs(history):
            leaked = sorted(v for v in values if v in text)
            assert not leaked, text

    @SETTINGS
    @given(
        data=st.data(),
        snap=sts.snapshots(at=nightly(FIRST_DAYS[0]), min_size=1, max_size=4),
        fault=st.sampled_from(("duplicate", "corrupt-json", "uncovered", "unknown", "loads-type")),
    )
    def test_no_personal_value_appears_in_an_exception(
        self, data: st.DataObject, snap: Snapshot, fault: str
    ) -> None:
        """Errors say where and what is wrong, never the value found there."""
        values = set().union(*(personal_values(r.data) for r in snap.records))
        save = ContactData(emails=(Email(data.draw(sts.email_addresses())),))
        values |= personal_values(save)
        override = data.draw(sts.set_overrides(contact_ids=[f"mis:{snap.records[0].key}"]))
        with pytest.raises(SourceTruthError) as caught:
            provoke(fault, snap, attrs.evolve(override, field="emails", value=save))
        message = str(caught.value) + repr(caught.value) + repr(caught.value.args)
        assert not sorted(v for v in values if v in message), message

    @SETTINGS
    @given(data=st.data())
    def test_an_erased_person_leaves_no_trace_in_the_book(self, data: st.DataObject) -> None:
        """After Erase, no value held only by that person remains anywhere in the book."""
        history = data.draw(histories())
        assume(history.book.contacts)
        cid = data.draw(st.sampled_from(sorted(history.book.contacts)))
        mine: set[str] = set()
        others: set[str] = set()
        for owner, d in every_data(history.book):
            (mine if owner == cid else others).update(personal_values(d))
        only_mine = mine - others
        result = history.apply(Erase(cid), later(history.now, 1))
        assert cid not in result.book.contacts
        text = dumps(result.book)
        assert not sorted(v for v in only_mine if json.dumps(v)[1:-1] in text)
        assert result.report.erased == (cid,)
