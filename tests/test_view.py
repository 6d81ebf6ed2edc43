"""The current view answers exactly as history does (issue 13), and falls back when it must.

A random sequence of changes (syncs of an MIS and an import, full and
delta, with departures and returns; address-book saves and removals;
overrides with every lifetime, ``until`` among them; clears; links and
unlinks; erasures; groups; view refreshes) is merged into a book. After
every merge, each reader is asked twice, once as it reads (from the view
where the view holds) and once with the view ignored (from history), at the
merge's time, at a later time that may be past an override's ``until``, and
at a past time: every effective contact with the provenance of every field,
every explanation, the recipients of several audiences on both channels,
and plans. The answers must be equal. The view itself must be the one a
rebuild from history gives, so a merge that forgot a contact it touched
fails here even where no reader happened to look.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budget
from sourcetruth import (
    ADDRESS_BOOK,
    FIELDS,
    AddressBookRemove,
    AddressBookSave,
    Book,
    Channel,
    ClearOverride,
    ContactData,
    DepartureGuard,
    Email,
    Erase,
    Link,
    Message,
    Phone,
    Plan,
    Policy,
    Record,
    RefreshView,
    Relationship,
    Role,
    Rule,
    SendMode,
    SetGroup,
    Snapshot,
    SnapshotKind,
    Source,
    SourceKind,
    SourceTruthError,
    Status,
    UnknownContactError,
    Unlink,
    contact_at,
    contacts_at,
    dumps,
    explain,
    loads,
    merge,
    plan,
    recipients,
    view_basis,
)
from sourcetruth.merge import Change
from sourcetruth.model import ADDRESS_FIELDS
from sourcetruth.testing import strategies as sts
from sourcetruth.view import _history_only, build_view, view_is_current
from sourcetruth.worklists import data_quality

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
MIS_KEYS = sts.record_keys(prefix="M", count=8)
IMPORT_KEYS = sts.record_keys(prefix="R", count=4)

SETTINGS = settings(
    max_examples=budget.examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

AUDIENCES: tuple[Any, ...] = (
    Rule(),
    Rule(roles=frozenset({Role.GUARDIAN})),
    Rule(guardians_of=True),
    Rule(year_groups=frozenset(sts.YEAR_GROUPS[:4]), guardians_of=True, max_priority=1),
    Rule(roles=frozenset({Role.PUPIL}), year_groups=frozenset(sts.YEAR_GROUPS[4:])),
)


def both(read: Callable[[], Any]) -> tuple[Any, Any]:
    """*read* answered as readers answer, and answered from history alone."""
    with _history_only():
        from_history = outcome(read)
    return outcome(read), from_history


def outcome(read: Callable[[], Any]) -> Any:
    """What *read* returns, or the type of the library error it raises."""
    try:
        return read()
    except SourceTruthError as error:
        return type(error)


class Run:
    """A book under a policy, with the times and ids the checks ask about."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.book = Book()
        self.now = START
        self.times: list[datetime] = []
        self.n_ab = 0

    def merge(self, change: Change, policy: Policy | None = None) -> None:
        try:
            result = merge(self.book, change, policy=policy or self.policy, at=self.now, by="test")
        except SourceTruthError:
            return
        self.book = result.book
        if result.report.status is Status.APPLIED:
            self.times.append(self.now)

    def live(self, *, local: bool) -> list[str]:
        """The present contacts whose home is (or is not) the address book."""
        return [
            c.id
            for c in contacts_at(self.book, policy=self.policy, at=self.now)
            if not c.departed and c.home.startswith(ADDRESS_BOOK) == local
        ]

    def record_ids(self) -> list[str]:
        return sorted(
            f"{source}:{key}"
            for source, states in self.book.records.items()
            for key in states
            if source != ADDRESS_BOOK
        )


def sync(run: Run, data: st.DataObject) -> None:
    """A full or delta MIS snapshot, read up to half an hour before it is applied."""
    delta = bool(run.book.records.get("mis")) and data.draw(st.booleans())
    snap = data.draw(
        sts.snapshots(
            at=run.now - timedelta(minutes=data.draw(st.integers(0, 30))),
            keys=MIS_KEYS,
            max_size=6,
            min_size=0 if delta else 1,
            kind=SnapshotKind.DELTA if delta else SnapshotKind.FULL,
            removable=sorted(run.book.records.get("mis", {})),
        )
    )
    run.merge(snap)


def import_(run: Run, data: st.DataObject) -> None:
    """An import, sometimes with a copy of an MIS person (someone to link)."""
    if "import" not in {s.name for s in run.policy.sources}:
        return
    snap = data.draw(sts.snapshots(source="import", at=run.now, keys=IMPORT_KEYS, max_size=3))
    mis = run.book.records.get("mis", {})
    if mis and data.draw(st.booleans()):
        state = mis[data.draw(st.sampled_from(sorted(mis)))]
        if state.current.data is not None:
            key = data.draw(IMPORT_KEYS)
            rows = {r.key: r for r in snap.records}
            rows[key] = Record(key, state.current.data)
            snap = attrs.evolve(snap, records=tuple(rows[k] for k in sorted(rows)))
    run.merge(snap)


def save_new(run: Run, data: st.DataObject) -> None:
    """A new address-book contact."""
    run.n_ab += 1
    run.merge(AddressBookSave(f"{ADDRESS_BOOK}:ab{run.n_ab}", data.draw(sts.contact_data())))


def save_ab(run: Run, data: st.DataObject) -> None:
    """A save of some fields of an address-book contact."""
    local = run.live(local=True)
    if not local:
        save_new(run, data)
        return
    names = data.draw(st.frozensets(st.sampled_from(FIELDS), min_size=1))
    cid = data.draw(st.sampled_from(local))
    run.merge(AddressBookSave(cid, data.draw(sts.contact_data()), names))


def remove_ab(run: Run, data: st.DataObject) -> None:
    """An address-book contact removed."""
    local = run.live(local=True)
    if local:
        run.merge(AddressBookRemove(data.draw(st.sampled_from(local))))


def save_on_source(run: Run, data: st.DataObject) -> None:
    """A save over a feed's contact: overrides, and local values for what no feed covers."""
    sourced = run.live(local=False)
    if sourced:
        names = data.draw(st.frozensets(st.sampled_from(FIELDS), min_size=1))
        cid = data.draw(st.sampled_from(sourced))
        run.merge(AddressBookSave(cid, data.draw(sts.contact_data()), names))


def override(run: Run, data: st.DataObject) -> None:
    """An override of a covered field, of any lifetime, ``until`` 1 to 96 hours on among them."""
    sourced = run.live(local=False)
    if sourced:
        cid = data.draw(st.sampled_from(sourced))
        home = contact_at(run.book, cid, policy=run.policy, at=run.now).home
        covered = sorted(run.policy.source(home.partition(":")[0]).covers)
        run.merge(data.draw(sts.set_overrides(contact_ids=[cid], fields=covered, after=run.now)))


def clear(run: Run, data: st.DataObject) -> None:
    """An override in force cleared."""
    if run.book.overrides:
        cid = data.draw(st.sampled_from(sorted(run.book.overrides)))
        name = data.draw(st.sampled_from([o.field for o in run.book.overrides[cid]]))
        run.merge(ClearOverride(cid, name))


def link(run: Run, data: st.DataObject) -> None:
    """Two records said to be one person (often refused: that is part of it)."""
    ids = run.record_ids()
    if ids:
        run.merge(Link(data.draw(st.sampled_from(ids)), data.draw(st.sampled_from(ids))))


def unlink(run: Run, data: st.DataObject) -> None:
    """A record taken out of the contact it was linked into."""
    ids = run.record_ids()
    if ids:
        run.merge(Unlink(data.draw(st.sampled_from(ids))))


def erase(run: Run, data: st.DataObject) -> None:
    """A person erased, suppressed or not."""
    everyone = sorted(run.book.contacts)
    if everyone:
        run.merge(Erase(data.draw(st.sampled_from(everyone)), suppress=data.draw(st.booleans())))


def group(run: Run, data: st.DataObject) -> None:
    """A group set, with static members and maybe a rule."""
    run.merge(SetGroup(data.draw(sts.groups(contact_ids=sorted(run.book.contacts)))))


def refresh(run: Run, _data: st.DataObject) -> None:
    """The view rebuilt."""
    run.merge(RefreshView())


STEPS: dict[str, Callable[[Run, st.DataObject], None]] = {
    "sync": sync,
    "import": import_,
    "save-new": save_new,
    "save-ab": save_ab,
    "remove-ab": remove_ab,
    "save-on-source": save_on_source,
    "override": override,
    "clear": clear,
    "link": link,
    "unlink": unlink,
    "erase": erase,
    "group": group,
    "refresh": refresh,
}
#: Syncs and overrides come up twice as often as the rest.
KINDS = (*STEPS, "sync", "override", "import")


def check_view_is_rebuilt_view(run: Run) -> None:
    """The view the merges kept is the one a rebuild from history gives."""
    book = run.book
    assert book.view_basis == view_basis(run.policy)
    rebuilt = build_view(book, run.policy)
    assert dict(book.view) == dict(rebuilt)
    assert len(book.view) == len(rebuilt)
    assert sorted(book.view) == sorted(rebuilt)


def check_readers(run: Run, at: datetime) -> None:
    """Every reader gives the same answer at *at* from the view as from history."""
    book, policy = run.book, run.policy
    ids = [*sorted(book.contacts), "mis:nobody"]
    for cid in ids:
        here, there = both(lambda cid=cid: contact_at(book, cid, policy=policy, at=at))
        assert here == there, cid
        if here is UnknownContactError:
            continue
        for name in FIELDS:
            here, there = both(
                lambda cid=cid, name=name: explain(book, cid, name, policy=policy, at=at)
            )
            assert here == there, (cid, name)
    here, there = both(lambda: list(contacts_at(book, policy=policy, at=at)))
    assert here == there
    audiences: list[Any] = list(AUDIENCES)
    audiences.append(frozenset(ids[::2]))
    audiences += sorted(book.groups)
    for audience in audiences:
        for channel in Channel:
            here, there = both(
                lambda a=audience, c=channel: recipients(book, a, c, policy=policy, at=at)
            )
            assert here == there, (audience, channel)
    for mode in SendMode:
        message = Message(
            "m1",
            "Subject",
            "Body",
            channels=(Channel.SMS, Channel.EMAIL),
            mode=mode,
            rules=(Rule(guardians_of=True), Rule(roles=frozenset({Role.STAFF}))),
            contacts=tuple(ids[1::3]),
            groups=tuple(sorted(g for g, v in book.groups.items() if v[-1].group is not None)),
        )
        here, there = both(lambda m=message: plan(book, m, policy=policy, at=at))
        assert here == there, mode
        if isinstance(here, Plan):  # else both raised the same error
            check_provenance_built_on_read(run, here, at)
    here, there = both(lambda: data_quality(book, policy=policy, at=at))
    assert here == there


def check_provenance_built_on_read(run: Run, planned: Plan, at: datetime) -> None:
    """Each delivery's provenance, built when read, is the contact's own for the address."""
    for delivery in planned.deliveries:
        name = ADDRESS_FIELDS[delivery.channel]
        for cid, built in zip(delivery.contact_ids, delivery.provenance, strict=True):
            with _history_only():
                contact = contact_at(run.book, cid, policy=run.policy, at=at)
            assert built == contact.provenance[name], (cid, name)


class TestTheViewAnswersAsHistoryDoes:
    """Issue 13's property: the view and history give the same answers, present and past."""

    @SETTINGS
    @given(data=st.data(), policy=sts.policies(guard=sts.DEFAULT_GUARD))
    def test_every_reader_agrees_after_every_merge(
        self, data: st.DataObject, policy: Policy
    ) -> None:
        """After each merge: contacts, explanations, recipients and plans, now, later and before."""
        run = Run(policy)
        for _ in range(data.draw(st.integers(1, 10))):
            run.now += timedelta(minutes=data.draw(st.sampled_from((1, 30, 300, 1500, 4000))))
            STEPS[data.draw(st.sampled_from(KINDS))](run, data)
            if run.book.updated_at is None:
                continue
            check_view_is_rebuilt_view(run)
            assert view_is_current(run.book, policy, run.book.updated_at)
            later = run.book.updated_at + timedelta(hours=data.draw(st.integers(0, 120)))
            past = data.draw(st.sampled_from(run.times)) - timedelta(
                minutes=data.draw(st.integers(0, 1))
            )
            for at in (run.book.updated_at, later, past):
                check_readers(run, at)


PUPIL = ContactData("Pat", "Okafor", Role.PUPIL, emails=(Email("pat@school.test"),), year_group="9")
GUARDIAN = ContactData(
    "Nina",
    "Okafor",
    Role.GUARDIAN,
    phones=(Phone("07700 900123"),),
    emails=(Email("Nina@Example.ORG"),),
    relationships=(Relationship("P1"),),
)


def some_book(policy: Policy) -> Book:
    """A small book: one MIS sync of a pupil and her guardian."""
    snap = Snapshot("mis", START, (Record("P1", PUPIL), Record("G1", GUARDIAN)))
    return merge(Book(), snap, policy=policy, at=START, by="nightly").book


class TestStaleViews:
    """A view computed under another basis is never read, and RefreshView rebuilds it."""

    @pytest.fixture
    def policy(self) -> Policy:
        """An MIS covering everything, in GB."""
        return Policy(sources=(Source("mis", SourceKind.MIS),))

    def test_the_basis_names_the_region_and_the_coverage(self, policy: Policy) -> None:
        """Another region or another coverage is another basis; a guard is not."""
        assert view_basis(attrs.evolve(policy, default_region="US")) != view_basis(policy)
        narrower = Policy(sources=(Source("mis", SourceKind.MIS, covers={"phones"}),))
        assert view_basis(narrower) != view_basis(policy)
        guarded = attrs.evolve(policy, guard=DepartureGuard(max_count=1))
        assert view_basis(guarded) == view_basis(policy)

    def test_another_basis_reads_history(self, policy: Policy) -> None:
        """Under another region the view is not current, and the answer is history's (US)."""
        book = some_book(policy)
        assert book.view
        assert book.view_basis == view_basis(policy)
        american = attrs.evolve(policy, default_region="US")
        assert not view_is_current(book, american, START)
        here = recipients(book, Rule(), Channel.SMS, policy=american, at=START)
        with _history_only():
            there = recipients(book, Rule(), Channel.SMS, policy=american, at=START)
        assert here == there
        # In the US a UK number without its country code does not normalise.
        assert not here.recipients

    def test_a_merge_under_another_basis_drops_the_view(self, policy: Policy) -> None:
        """No later merge may build on entries that missed a change."""
        book = some_book(policy)
        american = attrs.evolve(policy, default_region="US")
        edit = AddressBookSave("address-book:a1", PUPIL)
        after = merge(book, edit, policy=american, at=START + timedelta(hours=1), by="x").book
        assert not after.view
        assert after.view_basis == ""
        again = merge(
            after,
            AddressBookSave("address-book:a2", PUPIL),
            policy=policy,
            at=START + timedelta(hours=2),
            by="x",
        ).book
        assert not again.view
        assert not view_is_current(again, policy, START + timedelta(hours=3))

    def test_refresh_view_rebuilds_an_equal_view(self, policy: Policy) -> None:
        """RefreshView under a new policy gives the view a rebuild gives, and nothing else."""
        book = some_book(policy)
        american = attrs.evolve(policy, default_region="US")
        result = merge(book, RefreshView(), policy=american, at=START + timedelta(hours=1), by="x")
        assert result.report.status is Status.APPLIED
        assert result.report.change == "refresh-view"
        assert not result.report.changes
        assert result.book.view_basis == view_basis(american)
        assert dict(result.book.view) == dict(build_view(result.book, american))
        assert result.book == attrs.evolve(book, seq=2, updated_at=START + timedelta(hours=1))
        sms = result.book.view["mis:G1"].phones
        assert sms == (None,)  # re-derived in the new region
        assert book.view["mis:G1"].phones == ("+447700900123",)

    def test_a_book_read_back_has_no_view_and_reads_history(self, policy: Policy) -> None:
        """The book's document holds no view: read back, it answers from history, the same."""
        book = some_book(policy)
        back = loads(dumps(book), Book)
        assert back == book
        assert not back.view
        assert back.view_basis == ""
        assert contact_at(back, "mis:G1", policy=policy, at=START) == contact_at(
            book, "mis:G1", policy=policy, at=START
        )
