"""Planning, sending and auditing messages: the scenarios, fallbacks, retries, crashes."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budget
from school import guardian, london, mis_policy, school
from sourcetruth import (
    Book,
    Channel,
    DepartureGuard,
    GroupDefinition,
    OverrideOutcome,
    Phone,
    PhoneType,
    ProvenanceKind,
    Rule,
    SetGroup,
    Snapshot,
    contact_at,
    contacts_at,
    dumps,
    loads,
    merge,
)
from sourcetruth.adapters.transports.outbox import OutboxTransport
from sourcetruth.app.sending import FileDeliveryLog, MemoryDeliveryLog, send
from sourcetruth.audit import AuditRecord, why
from sourcetruth.exceptions import UnknownContactError, UsageError
from sourcetruth.messages import (
    DeliveryResult,
    DeliveryStatus,
    Envelope,
    Message,
    SendMode,
    plan,
)
from sourcetruth.testing import strategies as sts
from test_scenarios import (
    YEAR_8_PARENTS,
    YEAR_9_PARENTS,
    governors_book,
    monday_and_tuesday,
    parent_governor_edits_email,
    sync,
)

POLICY = mis_policy()


def outboxes() -> dict[Channel, OutboxTransport]:
    return {channel: OutboxTransport(channel) for channel in Channel}


def send_now(book: Book, message: Message, at) -> tuple[AuditRecord, dict]:
    boxes = outboxes()
    planned = plan(book, message, policy=POLICY, at=at)
    audit = send(planned, boxes, log=MemoryDeliveryLog(), sent_at=at)
    return audit, boxes


class TestScenarios:
    """Scenarios 1, 2, 4 and 6 of the design, through planning and the outbox."""

    def test_1_the_afternoon_message_goes_to_the_old_number_and_says_why(self) -> None:
        """Tue 15:30 uses the number of Tue 02:00; Wednesday's book names the later change."""
        book = monday_and_tuesday(POLICY)
        message = Message(
            "m1", "Trip", "Coach at 8", channels=(Channel.SMS,), rules=(YEAR_9_PARENTS,)
        )
        audit, boxes = send_now(book, message, london(24, 15, 30))
        sent = {e.address for e in boxes[Channel.SMS].sent.values()}
        assert "+447700900101" in sent
        answer = why(audit, "mis:G9", Channel.SMS)
        assert answer.address == "+447700900101"
        assert answer.provenance is not None
        assert answer.provenance.kind is ProvenanceKind.SOURCE
        assert answer.provenance.applied_at == london(24, 2)
        assert answer.result is not None
        assert answer.result.status is DeliveryStatus.ACCEPTED
        assert answer.later is None  # the book of Tuesday knows nothing later
        book = sync(book, POLICY, 25, school(guardian("G9", "P9", mobile="07700 900999")))
        told = why(audit, "mis:G9", Channel.SMS, book=book, policy=POLICY)
        assert told.later is not None
        assert told.later.applied_at == london(25, 2)
        assert told.later_value is not None
        assert told.later_value.phones == (Phone("07700 900999"),)

    def test_2_the_next_morning_message_goes_to_the_new_number(self) -> None:
        """Wed 08:30, after Wednesday's sync: the new number, from that sync."""
        book = sync(
            monday_and_tuesday(POLICY),
            POLICY,
            25,
            school(guardian("G8", "P8", mobile="07700 900888")),
        )
        message = Message("m2", "Trip", "Coach", channels=(Channel.SMS,), rules=(YEAR_8_PARENTS,))
        audit, boxes = send_now(book, message, london(25, 8, 30))
        assert [e.address for e in boxes[Channel.SMS].sent.values()] == ["+447700900888"]
        answer = why(audit, "mis:G8", Channel.SMS)
        assert answer.provenance is not None
        assert answer.provenance.applied_at == london(25, 2)

    def test_4_a_local_edit_is_used_tonight_and_the_audit_says_it_was_an_override(self) -> None:
        """Thu 19:00 uses the address-book edit, and the audit says it was an override."""
        book = parent_governor_edits_email(POLICY)
        message = Message("m4", "Minutes", "Attached", contacts=("mis:GOV",))
        audit, boxes = send_now(book, message, london(26, 19))
        assert [e.address for e in boxes[Channel.EMAIL].sent.values()] == ["pg.new@parent.test"]
        answer = why(audit, "mis:GOV", Channel.EMAIL, book=book, policy=POLICY)
        assert answer.overridden
        assert [e.override.field for e in answer.overrides] == ["emails"]

    def test_6_the_governors_group_reaches_all_three_homes_on_both_channels(self) -> None:
        """Staff, parent and external governor, by email and by SMS."""
        book = governors_book(POLICY)
        group = GroupDefinition(
            "Governors", members=frozenset({"mis:S1", "mis:GOV", "address-book:la-governor"})
        )
        book = merge(book, SetGroup(group), policy=POLICY, at=london(24, 10), by="office").book
        message = Message(
            "m6",
            "Meeting",
            "Tuesday 6pm",
            channels=(Channel.EMAIL, Channel.SMS),
            mode=SendMode.EACH,
            groups=("Governors",),
        )
        audit, boxes = send_now(book, message, london(24, 11))
        assert sorted(e.address for e in boxes[Channel.EMAIL].sent.values()) == [
            "la.old@example.org",
            "pg.old@parent.test",
            "s1@school.test",
        ]
        assert sorted(e.address for e in boxes[Channel.SMS].sent.values()) == [
            "+447700900103",
            "+447700900201",
            "+447700900301",
        ]
        assert audit.count(DeliveryStatus.ACCEPTED) == 6
        assert audit.unreachable == ()


class TestPlanning:
    """Fallbacks, exclusions, and the shape of a plan."""

    def test_no_mobile_falls_back_to_email(self) -> None:
        """SMS first: a parent with no mobile is sent an email instead, and is not unreachable."""
        records = school(guardian("G8", "P8", email="g8@parent.test"))
        book = sync(Book(), POLICY, 23, records)
        message = Message(
            "f", "Hello", "Hi", channels=(Channel.SMS, Channel.EMAIL), rules=(YEAR_8_PARENTS,)
        )
        planned = plan(book, message, policy=POLICY, at=london(23, 9))
        assert [(d.channel, d.contact_ids) for d in planned.deliveries] == [
            (Channel.EMAIL, ("mis:G8",))
        ]
        assert planned.unreachable == ()

    def test_without_fallback_the_reason_is_reported(self) -> None:
        """SMS only: the parent with no mobile is listed with the reason."""
        book = sync(Book(), POLICY, 23, school(guardian("G8", "P8", email="g8@parent.test")))
        message = Message("f", "Hello", "Hi", channels=(Channel.SMS,), rules=(YEAR_8_PARENTS,))
        planned = plan(book, message, policy=POLICY, at=london(23, 9))
        assert planned.deliveries == ()
        assert [(c, u.contact_id, u.reason) for c, u in planned.unreachable] == [
            (Channel.SMS, "mis:G8", "no mobile number")
        ]
        with pytest.raises(UnknownContactError):
            why(
                send(planned, outboxes(), log=MemoryDeliveryLog(), sent_at=london(23, 9)),
                "mis:G9",
                Channel.SMS,
            )

    def test_guardians_who_do_not_receive_messages_and_departed_contacts_are_left_out(self) -> None:
        """The receives-messages flag and departure both keep a person out of a plan."""
        records = school(guardian("G8", "P8", mobile="07700 900102", receives=False))
        book = sync(Book(), POLICY, 23, records)
        book = sync(book, POLICY, 24, [r for r in records if r.key != "G9"])
        message = Message(
            "x",
            "Hi",
            "Hi",
            channels=(Channel.SMS,),
            rules=(YEAR_8_PARENTS, YEAR_9_PARENTS),
            contacts=("mis:G9",),
        )
        planned = plan(book, message, policy=POLICY, at=london(24, 9))
        assert "mis:G8" not in planned.reached
        assert "mis:G9" not in planned.reached
        assert ("mis:G9", "departed") in {(u.contact_id, u.reason) for _, u in planned.unreachable}

    def test_a_shared_number_is_one_delivery_for_both_parents(self) -> None:
        """Two guardians on one household number: one SMS, naming both, with both provenances."""
        records = school(
            guardian("G9", "P9", mobile="07700 900101"), guardian("G8", "P9b", mobile="07700900101")
        )
        book = sync(Book(), POLICY, 23, records)
        message = Message("h", "Hi", "Hi", channels=(Channel.SMS,), contacts=("mis:G9", "mis:G8"))
        (delivery,) = plan(book, message, policy=POLICY, at=london(23, 9)).deliveries
        assert delivery.contact_ids == ("mis:G8", "mis:G9")
        assert len(delivery.provenance) == 2

    def test_a_message_needs_an_audience_and_channels(self) -> None:
        """Empty audiences and repeated channels are usage errors."""
        with pytest.raises(UsageError):
            Message("x", "s", "b")
        with pytest.raises(UsageError):
            Message("x", "s", "b", channels=(Channel.SMS, Channel.SMS), contacts=("mis:G9",))


class Flaky:
    """A transport that fails retryably the first *failures* times it sees each key."""

    def __init__(self, channel: Channel, failures: int, crash_after: int | None = None) -> None:
        self.channel = channel
        self.failures = failures
        self.crash_after = crash_after
        self.seen: dict[str, int] = {}
        self.delivered: list[str] = []

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        results = []
        for envelope in batch:
            if self.crash_after is not None and len(self.delivered) >= self.crash_after:
                raise KeyboardInterrupt  # the process stops half-way
            count = self.seen.get(envelope.key, 0)
            self.seen[envelope.key] = count + 1
            if count < self.failures:
                results.append(DeliveryResult.failed(envelope.key, "timeout", retryable=True))
            else:
                if envelope.key not in self.delivered:
                    self.delivered.append(envelope.key)
                results.append(DeliveryResult.accepted(envelope.key))
        return results


class TestSending:
    """Retries, partial failure, and a crash half-way."""

    def message(self) -> Message:
        return Message(
            "r", "Hi", "Hi", channels=(Channel.SMS,), contacts=("mis:G9", "mis:G8", "mis:S1")
        )

    def test_retryable_failures_are_retried_under_the_same_key(self) -> None:
        """Two timeouts then success: accepted, each key delivered once."""
        book = sync(Book(), POLICY, 23, school())
        planned = plan(book, self.message(), policy=POLICY, at=london(23, 9))
        flaky = Flaky(Channel.SMS, failures=2)
        waits: list[float] = []
        audit = send(
            planned,
            {Channel.SMS: flaky},
            log=MemoryDeliveryLog(),
            sent_at=london(23, 9),
            retry_delay=0.5,
            sleep=waits.append,
        )
        assert audit.count(DeliveryStatus.ACCEPTED) == 3
        assert sorted(flaky.delivered) == sorted(d.key for d in planned.deliveries)
        assert set(flaky.seen.values()) == {3}
        assert waits == [0.5, 1.0]  # backing off, doubling

    def test_a_partial_failure_returns_every_result(self) -> None:
        """Out of attempts: failed results are in the audit with the rest."""
        book = sync(Book(), POLICY, 23, school())
        planned = plan(book, self.message(), policy=POLICY, at=london(23, 9))
        audit = send(
            planned,
            {Channel.SMS: Flaky(Channel.SMS, failures=5)},
            log=MemoryDeliveryLog(),
            sent_at=london(23, 9),
            attempts=2,
            sleep=lambda _: None,
        )
        assert audit.count(DeliveryStatus.FAILED) == 3
        assert all(o.result is not None and o.result.retryable for o in audit.outcomes)

    def test_a_missing_transport_fails_its_channel_only(self) -> None:
        """No SMS transport: SMS deliveries fail, not retryable; email goes out."""
        book = sync(Book(), POLICY, 23, school())
        message = Message(
            "t",
            "Hi",
            "Hi",
            channels=(Channel.SMS, Channel.EMAIL),
            mode=SendMode.EACH,
            contacts=("mis:G9",),
        )
        planned = plan(book, message, policy=POLICY, at=london(23, 9))
        boxes = {Channel.EMAIL: OutboxTransport(Channel.EMAIL)}
        audit = send(planned, boxes, log=MemoryDeliveryLog(), sent_at=london(23, 9))
        by_channel = {o.delivery.channel: o.result for o in audit.outcomes}
        assert by_channel[Channel.EMAIL].status is DeliveryStatus.ACCEPTED
        assert by_channel[Channel.SMS].status is DeliveryStatus.FAILED
        assert not by_channel[Channel.SMS].retryable

    def test_a_crash_half_way_resumes_without_sending_twice(self, tmp_path: Path) -> None:
        """The log says what was handed over; resuming sends the rest, each key once."""
        book = sync(Book(), POLICY, 23, school())
        planned = plan(book, self.message(), policy=POLICY, at=london(23, 9))
        log = FileDeliveryLog(tmp_path / "deliveries.jsonl")
        gateway = Flaky(Channel.SMS, failures=0, crash_after=1)
        with pytest.raises(KeyboardInterrupt):
            send(planned, {Channel.SMS: gateway}, log=log, sent_at=london(23, 9), batch_size=1)
        assert len(log.handed_over()) == 2  # the second was being handed over at the crash
        assert len(log.results()) == 1
        gateway.crash_after = None
        audit = send(
            planned,
            {Channel.SMS: gateway},
            log=FileDeliveryLog(log.path),
            sent_at=london(23, 9, 5),
            batch_size=1,
        )
        assert audit.count(DeliveryStatus.ACCEPTED) == 3
        assert sorted(gateway.delivered) == sorted(d.key for d in planned.deliveries)
        first = planned.deliveries[0].key
        assert gateway.seen[first] == 1  # the one answered before the crash was not resent
        text = log.path.read_text(encoding="utf-8")
        assert "07700" not in text
        assert "+44" not in text

    def test_the_audit_record_round_trips_through_the_books_converter(self) -> None:
        """dumps/loads give back the same record, byte for byte."""
        book = monday_and_tuesday(POLICY)
        message = Message(
            "a",
            "Trip",
            "Coach",
            channels=(Channel.SMS, Channel.EMAIL),
            rules=(YEAR_9_PARENTS,),
            html="<p>Coach</p>",
        )
        audit, _ = send_now(book, message, london(24, 15, 30))
        assert loads(dumps(audit), AuditRecord) == audit
        assert dumps(loads(dumps(audit), AuditRecord)) == dumps(audit)


@settings(
    max_examples=budget.examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    monday=sts.snapshots(source="mis", at=london(23, 2)),
    tuesday=sts.snapshots(source="mis", at=london(24, 2)),
    channels=st.permutations([Channel.SMS, Channel.EMAIL]).map(tuple),
    mode=st.sampled_from(SendMode),
    years=st.sets(st.sampled_from(sts.YEAR_GROUPS), min_size=1),
    named=st.sets(sts.record_keys(), max_size=6),
)
def test_plans_hold_no_duplicates_no_departed_and_repeat_exactly(
    monday: Snapshot, tuesday: Snapshot, channels, mode, years, named
) -> None:
    """No (person, channel, address) twice; nobody departed; the same inputs give the same plan.

    Two nights, so people depart; an audience of rules, a static group and
    single contacts, so departed people are named directly too.
    """
    policy = mis_policy(guard=DepartureGuard(enabled=False))
    book = Book()
    for snapshot, day in ((monday, 23), (tuesday, 24)):
        if snapshot.records:
            book = merge(book, snapshot, policy=policy, at=london(day, 2), by="n").book
    ids = sorted(f"mis:{key}" for key in named if f"mis:{key}" in book.contacts)
    book = merge(
        book,
        SetGroup(GroupDefinition("Some", members=frozenset(ids[: len(ids) // 2]))),
        policy=policy,
        at=london(24, 3),
        by="office",
    ).book
    message = Message(
        "p",
        "s",
        "b",
        channels=channels,
        mode=mode,
        groups=("Some",),
        rules=(Rule(year_groups=frozenset(years), guardians_of=True), Rule()),
        contacts=tuple(ids),
    )
    at = london(24, 9)
    first = plan(book, message, policy=policy, at=at)
    assert plan(book, message, policy=policy, at=at) == first
    triples = [(cid, d.channel, d.address) for d in first.deliveries for cid in d.contact_ids]
    assert len(triples) == len(set(triples))
    pairs = [(d.channel, d.address) for d in first.deliveries]
    assert len(pairs) == len(set(pairs))
    for cid in first.reached:
        assert not contact_at(book, cid, policy=policy, at=at).departed
    departed = {c.id for c in contacts_at(book, policy=policy, at=at) if c.departed}
    assert not departed & first.reached
    if mode is SendMode.FIRST:
        per_person = [cid for d in first.deliveries for cid in d.contact_ids]
        assert len(per_person) == len(set(per_person))


class TestReviewedEdges:
    """Edges a review found: each was a silent loss or a misleading answer."""

    def test_a_mobile_that_does_not_normalise_is_reported_as_a_fallback(self) -> None:
        """SMS then email: the bad mobile is not lost; why() on SMS gives the reason."""
        bad = guardian("G8", "P8", mobile="12", email="g8@parent.test")
        book = sync(Book(), POLICY, 23, school(bad))
        message = Message(
            "f", "Hi", "Hi", channels=(Channel.SMS, Channel.EMAIL), contacts=("mis:G8",)
        )
        planned = plan(book, message, policy=POLICY, at=london(23, 9))
        assert [(d.channel, d.contact_ids) for d in planned.deliveries] == [
            (Channel.EMAIL, ("mis:G8",))
        ]
        assert [(c, u.reason) for c, u in planned.fallbacks] == [
            (Channel.SMS, "mobile number does not normalise")
        ]
        audit = send(planned, outboxes(), log=MemoryDeliveryLog(), sent_at=london(23, 9))
        assert why(audit, "mis:G8", Channel.SMS).reason == "mobile number does not normalise"

    def test_a_change_to_another_number_is_not_a_later_change_to_this_one(self) -> None:
        """Only the landline changes on Wednesday: the SMS's answer names no later change."""

        def g9(home: str):
            record = guardian("G9", "P9", mobile="07700 900101")
            data = record.data
            phones = (*data.phones, Phone(home, PhoneType.HOME))
            return attrs.evolve(record, data=attrs.evolve(data, phones=phones))

        book = sync(Book(), POLICY, 24, school(g9("01632 960001")))
        message = Message("l", "Hi", "Hi", channels=(Channel.SMS,), contacts=("mis:G9",))
        audit, _ = send_now(book, message, london(24, 15))
        book = sync(book, POLICY, 25, school(g9("01632 960002")))
        assert why(audit, "mis:G9", Channel.SMS, book=book, policy=POLICY).later is None
        book = sync(book, POLICY, 26, school(guardian("G9", "P9", mobile="07700 900999")))
        later = why(audit, "mis:G9", Channel.SMS, book=book, policy=POLICY).later
        assert later is not None
        assert later.applied_at == london(26, 2)

    def test_an_override_is_not_a_later_change_at_the_source(self) -> None:
        """An edited email, then a sync that changes only the mobile: no later email change."""
        book = parent_governor_edits_email(POLICY)
        message = Message("o", "Minutes", "x", contacts=("mis:GOV",))
        audit, _ = send_now(book, message, london(26, 19))
        friday = school(guardian("GOV", "P9b", mobile="07700 900555", email="pg.old@parent.test"))
        book = sync(book, POLICY, 27, friday)
        answer = why(audit, "mis:GOV", Channel.EMAIL, book=book, policy=POLICY)
        assert answer.overridden
        assert answer.later is None

    def test_a_book_needs_its_policy(self) -> None:
        """why() with a book but no policy is a usage error, not a silent 'no change'."""
        audit, _ = send_now(
            monday_and_tuesday(POLICY),
            Message("b", "s", "b", contacts=("mis:G9",)),
            london(24, 9),
        )
        with pytest.raises(UsageError):
            why(audit, "mis:G9", Channel.EMAIL, book=monday_and_tuesday(POLICY))

    def test_scenario_4_friday_minutes_go_to_the_old_address(self) -> None:
        """After Friday's sync ends the override as lost, the minutes use the MIS address."""
        book = sync(parent_governor_edits_email(POLICY), POLICY, 27, school())
        message = Message("minutes", "Minutes", "Attached", contacts=("mis:GOV",))
        audit, boxes = send_now(book, message, london(27, 9))
        assert [e.address for e in boxes[Channel.EMAIL].sent.values()] == ["pg.old@parent.test"]
        answer = why(audit, "mis:GOV", Channel.EMAIL, book=book, policy=POLICY)
        assert not answer.overridden
        assert [e.ended.outcome for e in answer.overrides if e.ended] == [OverrideOutcome.LOST]

    def test_a_torn_log_line_swallows_nothing(self, tmp_path: Path) -> None:
        """A crash mid-line, then more lines: each later line is still read."""
        log = FileDeliveryLog(tmp_path / "log.jsonl")
        log.handing_over(["k1"])
        with log.path.open("a", encoding="utf-8") as out:
            out.write('{"event": "answered", "res')  # the crash
        log.handing_over(["k3"])
        log.answered([DeliveryResult.accepted("k3")])
        assert log.handed_over() == {"k1", "k3"}
        assert set(log.results()) == {"k3"}

    def test_a_transport_that_returns_nonsense_fails_its_batch_only(self) -> None:
        """A transport returning None: its deliveries fail, retryable; the send goes on."""

        class Broken:
            channel = Channel.SMS

            def send(self, batch):
                return None

        book = sync(Book(), POLICY, 23, school())
        message = Message(
            "n",
            "Hi",
            "Hi",
            channels=(Channel.SMS, Channel.EMAIL),
            mode=SendMode.EACH,
            contacts=("mis:G9",),
        )
        planned = plan(book, message, policy=POLICY, at=london(23, 9))
        transports = {Channel.SMS: Broken(), Channel.EMAIL: OutboxTransport(Channel.EMAIL)}
        audit = send(
            planned,
            transports,
            log=MemoryDeliveryLog(),
            sent_at=london(23, 9),
            sleep=lambda _: None,
        )
        by_channel = {o.delivery.channel: o.result for o in audit.outcomes}
        assert by_channel[Channel.SMS].status is DeliveryStatus.FAILED
        assert by_channel[Channel.EMAIL].status is DeliveryStatus.ACCEPTED

    def test_a_transport_under_the_wrong_channel_is_refused(self) -> None:
        """An email transport given for SMS is a usage error before anything is sent."""
        book = sync(Book(), POLICY, 23, school())
        planned = plan(
            book,
            Message("w", "s", "b", channels=(Channel.SMS,), contacts=("mis:G9",)),
            policy=POLICY,
            at=london(23, 9),
        )
        with pytest.raises(UsageError):
            send(
                planned,
                {Channel.SMS: OutboxTransport(Channel.EMAIL)},
                log=MemoryDeliveryLog(),
                sent_at=london(23, 9),
            )


# --------------------------------------------------------------------------
# The file delivery log: who may read it, and forgetting keys (rule 13)


class TestFileDeliveryLogForget:
    """An erasure takes a person's delivery keys out of the log: with the message id, a key
    confirms a guessed address."""

    def filled(self, tmp_path: Path) -> FileDeliveryLog:
        log = FileDeliveryLog(tmp_path / "deliveries.jsonl")
        log.handing_over(["theirs-1", "ours-1"])
        log.answered([DeliveryResult.accepted("theirs-1"), DeliveryResult.accepted("ours-1")])
        log.handing_over(["theirs-2"])
        log.answered([DeliveryResult.failed("theirs-2", "timeout", retryable=True)])
        return log

    def test_every_line_about_the_keys_goes_and_the_rest_stays(self, tmp_path: Path) -> None:
        """forget() drops every line about the keys and counts them; the rest stay, in order."""
        log = self.filled(tmp_path)
        before = log.path.read_text(encoding="utf-8").splitlines()
        assert log.forget(["theirs-1", "theirs-2", "never-there"]) == 4
        after = log.path.read_text(encoding="utf-8")
        assert "theirs" not in after
        assert after.splitlines() == [line for line in before if "theirs" not in line]
        assert log.handed_over() == {"ours-1"}
        assert set(log.results()) == {"ours-1"}

    def test_the_file_is_replaced_whole(self, tmp_path: Path) -> None:
        """forget() renames a new file over the log and leaves no temporary file beside it."""
        log = self.filled(tmp_path)
        inode = log.path.stat().st_ino
        log.forget(["theirs-1"])
        assert log.path.stat().st_ino != inode  # a new file renamed into place
        assert [p.name for p in tmp_path.iterdir()] == ["deliveries.jsonl"]

    def test_forgetting_what_is_not_there_leaves_the_file_alone(self, tmp_path: Path) -> None:
        """Forgetting no key, an absent key or from a missing log returns 0 and writes nothing."""
        log = self.filled(tmp_path)
        inode, data = log.path.stat().st_ino, log.path.read_bytes()
        assert log.forget(["never-there"]) == 0
        assert log.forget([]) == 0
        assert (log.path.stat().st_ino, log.path.read_bytes()) == (inode, data)
        assert FileDeliveryLog(tmp_path / "none.jsonl").forget(["k"]) == 0
        assert not (tmp_path / "none.jsonl").exists()

    def test_a_torn_line_is_dropped_and_the_log_still_reads(self, tmp_path: Path) -> None:
        """forget() drops a line torn by a crash too; the log ends in a newline and takes more."""
        log = self.filled(tmp_path)
        with log.path.open("ab") as out:
            out.write(b'{"event": "handing-over", "key": "theirs-3')  # a crash mid-line
        assert log.forget(["theirs-1"]) == 3
        text = log.path.read_text(encoding="utf-8")
        assert "theirs-3" not in text
        assert text.endswith("\n")
        log.handing_over(["ours-2"])
        assert log.handed_over() == {"ours-1", "theirs-2", "ours-2"}

    def test_a_send_after_forgetting_appends_to_the_new_file(self, tmp_path: Path) -> None:
        """A log object made before forget() appends to the rewritten file, not the old one."""
        log = self.filled(tmp_path)
        other = FileDeliveryLog(log.path)  # as a send running alongside holds its own
        log.forget(["theirs-1", "theirs-2"])
        other.answered([DeliveryResult.accepted("ours-3")])
        assert set(log.results()) == {"ours-1", "ours-3"}

    def test_the_log_is_its_owners_only(self, tmp_path: Path) -> None:
        """The log is mode 0600 under umask 022, when first written and after forget()."""
        old = os.umask(0o022)
        try:
            log = self.filled(tmp_path)
            assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
            log.forget(["theirs-1"])
            assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
        finally:
            os.umask(old)
