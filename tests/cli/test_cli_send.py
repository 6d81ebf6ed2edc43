"""Messages: ``recipients``, ``send`` (dry run, delivery, resumption) and ``why``.

Scenarios 1 and 2 are here, and transports that refuse or cannot be made.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence

import pytest
from cli_helpers import (
    SMS_TOKEN,
    Cli,
    Gateway,
    files_of,
    guardian,
    iso,
    moment,
    on_both,
    one_error_line,
    outbox_files,
    school,
    use_gateway,
    when,
)

from sourcetruth.adapters import registry
from sourcetruth.app import sending
from sourcetruth.audit import AuditRecord
from sourcetruth.cli import _context as cli_context
from sourcetruth.cli._progress import Progress
from sourcetruth.messages import DeliveryResult, DeliveryStatus, Envelope
from sourcetruth.model import Channel
from sourcetruth.serialise import loads


def read_audit(cli: Cli, message_id: str) -> AuditRecord:
    text = (cli.folder / "audit" / f"{message_id}.json").read_text(encoding="utf-8")
    return loads(text, AuditRecord)


@contextlib.contextmanager
def sms_transport(
    cli: Cli, name: str, deliver: Callable[[Sequence[Envelope]], list[DeliveryResult]]
) -> Iterator[None]:
    """An SMS transport registered as *name* and named in the book's policy.toml."""

    class Gateway:
        channel = Channel.SMS

        def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
            return deliver(batch)

    registry.register("transport", name, Gateway)
    with (cli.folder / "policy.toml").open("a", encoding="utf-8") as policy:
        policy.write(f'\n[transports.sms]\nadapter = "{name}"\n')
    try:
        yield
    finally:
        registry.unregister("transport", name)


YEAR_9_SMS = ("send", "--year", "9", "--guardians", "--channel", "sms")


class TestSend:
    def test_a_dry_run_by_default(self, book: Cli) -> None:
        """send without --deliver plans and writes nothing: no audit, outbox or delivery log."""
        ran = book.ok(
            "send",
            "--year",
            "9",
            "--guardians",
            "--id",
            "m1",
            "--body",
            "Hello",
            "--at",
            when(24, 9),
        )
        assert ran.out.endswith(
            "Dry run: 3 delivery(ies) planned, nothing sent. Add --deliver to send.\n"
        )
        assert not (book.folder / "audit").exists()
        assert not (book.folder / "outbox").exists()
        assert not (book.folder / "deliveries.jsonl").exists()

    def test_deliver_once_only(self, book: Cli) -> None:
        """send --deliver sends each once; again after a sync, nothing goes twice or elsewhere."""
        args = ("send", "--year", "9", "--guardians", "--channel", "sms", "--id", "trip-9")
        ran = book.ok(*args, "--body", "Trip on Friday", "--deliver", "--at", when(24, 9))
        audit = book.folder / "audit" / "trip-9.json"
        assert ran.out.endswith(f"Sent trip-9: 3 accepted, 0 not; the audit is in {audit}.\n")
        assert "  sms   +447700900101  accepted\n" in ran.out
        outcomes = json.loads(audit.read_text(encoding="utf-8"))["data"]["outcomes"]
        assert len(outcomes) == 3
        assert all(o["result"]["status"] == "accepted" for o in outcomes)
        sent = outbox_files(book)
        assert len(sent) == 3
        assert json.loads(sent[0].read_text(encoding="utf-8"))["body"] == "Trip on Friday"
        log = (book.folder / "deliveries.jsonl").read_text(encoding="utf-8")

        # Again, after the MIS changed a number: the message resumes as it was planned,
        # so nothing goes twice, and nobody gets it at a second number.
        moved = school(G1=guardian("G1", "Gita", "Okafor", "900901", "P1"))
        book.sync(book.export("wed", moved), 25)
        again = book.ok(*args, "--body", "Trip on Friday", "--deliver")
        assert "3 accepted (3 of them before this run, not sent again), 0 not" in again.out
        assert outbox_files(book) == sent
        assert (book.folder / "deliveries.jsonl").read_text(encoding="utf-8") == log

    def test_an_id_that_is_not_text_is_sent_once(self, book: Cli) -> None:
        """An id from a command line that was not UTF-8 is sent once, and again is not resent."""
        odd = "trip-\udcff"
        args = ("send", "--year", "9", "--guardians", "--channel", "sms", "--id", odd)
        book.ok(*args, "--body", "Trip", "--deliver", "--at", when(24, 9))
        again = book.ok(*args, "--body", "Trip", "--deliver")
        assert "3 accepted (3 of them before this run, not sent again), 0 not" in again.out
        assert len(outbox_files(book)) == 3

    def test_the_same_id_with_other_text_is_refused(self, book: Cli) -> None:
        """A sent id with other text is refused, asking for a new --id; no file changes."""
        args = ("send", "mis:G1", "--id", "m1", "--at", when(24, 9))
        book.ok(*args, "--body", "First", "--deliver")
        before = files_of(book.folder)
        ran = book.fails(2, *args, "--body", "Second", "--deliver")
        assert "new --id" in one_error_line(ran)
        assert files_of(book.folder) == before

    @on_both
    def test_scenarios_1_and_2_why_that_number(self, book: Cli) -> None:
        """A mobile changed at the MIS on Tuesday 12:30 shows after Wednesday's 02:00 sync."""
        changed = school(
            G1=guardian("G1", "Gita", "Okafor", "900901", "P1"),
            G4=guardian("G4", "Raj", "Shah", "900904", "P4"),
        )
        book.ok(
            "send",
            "--year",
            "9",
            "--guardians",
            "--channel",
            "sms",
            "--id",
            "year9",
            "--body",
            "Year 9 trip",
            "--at",
            when(24, 15, 30),
            "--deliver",
        )
        book.sync(book.export("wed", changed), 25)
        book.ok(
            "send",
            "--year",
            "8",
            "--guardians",
            "--channel",
            "sms",
            "--id",
            "year8",
            "--body",
            "Year 8 trip",
            "--at",
            when(25, 8, 30),
            "--deliver",
        )
        told = book.ok("why", "year9", "mis:G1").out
        assert told.splitlines() == [
            "sms: +447700900101 (accepted)",
            "  from mis:G1, sync 1 (read Tue 24 Nov 2026 01:30, applied Tue 24 Nov 2026 02:00)",
            "  the source changed it later: applied Wed 25 Nov 2026 02:00 (sync 2), after this "
            "message was planned",
        ]
        data = book.ok("why", "year9", "mis:G1", "--json").json()
        (answer,) = data
        assert answer["address"] == "+447700900101"
        assert answer["provenance"]["sync"] == 1
        assert answer["provenance"]["read_at"] == iso(24, 1, 30)
        assert answer["later"]["sync"] == 2
        assert answer["later_value"] == [{"number": "07700 900901", "type": "mobile"}]
        year8 = book.ok("why", "year8", "mis:G4", "--channel", "sms").out
        assert year8.startswith("sms: +447700900904 (accepted)\n  from mis:G4, sync 2 ")
        assert "changed it later" not in year8

    def test_why_with_two_channels(self, book: Cli) -> None:
        """why says where a two-channel message went; asked of the unused channel, it exits 2."""
        book.ok(
            "send",
            "mis:G2",
            "--channel",
            "email",
            "--channel",
            "sms",
            "--id",
            "two",
            "--body",
            "x",
            "--deliver",
            "--at",
            when(24, 9),
        )
        # Reached by email, G2 was never tried by SMS: why says where it went.
        told = book.ok("why", "two", "mis:G2").out
        assert told.startswith("email: hugh@parent.test (accepted)\n")
        assert "sms" not in told
        ran = book.fails(2, "why", "two", "mis:G2", "--channel", "sms")
        assert "did not include this contact on that channel" in one_error_line(ran)

    def test_why_mistakes(self, book: Cli) -> None:
        """why of an unknown message, or of a contact the message did not include, exits 2."""
        assert "no message 'nope'" in one_error_line(book.fails(2, "why", "nope", "mis:G1"))
        book.ok("send", "mis:G1", "--id", "m1", "--body", "x", "--deliver", "--at", when(24, 9))
        assert "did not include this contact" in one_error_line(
            book.fails(2, "why", "m1", "mis:G2")
        )

    def test_json(self, book: Cli) -> None:
        """send --json gives the plan on a dry run, and the audit and its file once delivered."""
        planned = book.ok(
            "send", "mis:G1", "mis:G2", "--id", "m2", "--body", "x", "--at", when(24, 9), "--json"
        ).json()
        assert planned["dry_run"] is True
        assert [d["address"] for d in planned["plan"]["deliveries"]] == [
            "gita@parent.test",
            "hugh@parent.test",
        ]
        sent = book.ok(
            "send",
            "mis:G1",
            "mis:G2",
            "--id",
            "m2",
            "--body",
            "x",
            "--at",
            when(24, 9),
            "--deliver",
            "--json",
        ).json()
        assert sent["dry_run"] is False
        assert sent["audit_file"] == os.fspath(book.folder / "audit" / "m2.json")
        for outcome in sent["audit"]["outcomes"]:
            assert outcome["result"]["status"] == "accepted"
            assert outcome["delivery"]["provenance"][0]["source"] == "mis"

    def test_body_file_and_mistakes(self, book: Cli) -> None:
        """--body-file sends the file's text; no text, audience, --id or readable file exits 2."""
        body = book.exports / "letter.txt"
        body.write_text("Dear parents,\nsee you Friday.\n", encoding="utf-8")
        book.ok(
            "send",
            "mis:G1",
            "--id",
            "letter",
            "--body-file",
            os.fspath(body),
            "--deliver",
            "--at",
            when(24, 9),
        )
        (sent,) = outbox_files(book)
        assert (
            json.loads(sent.read_text(encoding="utf-8"))["body"]
            == "Dear parents,\nsee you Friday.\n"
        )
        assert "give the message text" in one_error_line(
            book.fails(2, "send", "mis:G1", "--id", "x")
        )
        assert "name an audience" in one_error_line(
            book.fails(2, "send", "--id", "x", "--body", "y")
        )
        assert "--id" in one_error_line(book.fails(2, "send", "mis:G1", "--body", "y"))
        ran = book.fails(
            2, "send", "mis:G1", "--id", "x", "--body-file", os.fspath(book.exports / "none")
        )
        assert "cannot read the body file" in one_error_line(ran)


class TestTransports:
    def test_a_gateway_that_refuses_gives_exit_5(self, book: Cli, gateway: Gateway) -> None:
        """A gateway refusing every text: exit 5, rejections audited, nothing asked again."""
        use_gateway(book, gateway)
        assert "sms by sms-http" in book.ok("policy").out
        environ = {"SCHOOL_SMS_TOKEN": SMS_TOKEN}
        args = ("send", "mis:G1", "mis:G2", "--channel", "sms", "--id", "m1", "--body", "Hi")
        ran = book.fails(5, *args, "--deliver", "--at", when(24, 9), environ=environ)
        assert "  sms   +447700900101  rejected (the gateway refused the message (HTTP 400): " in (
            ran.out
        )
        line = one_error_line(ran)
        assert line.startswith("sourcetruth: m1: 2 rejected")
        assert len(gateway.seen) == 2
        assert gateway.seen[0]["headers"]["Authorization"] == f"Bearer {SMS_TOKEN}"
        assert SMS_TOKEN not in ran.out + ran.err
        audit = json.loads((book.folder / "audit" / "m1.json").read_text(encoding="utf-8"))
        assert [o["result"]["status"] for o in audit["data"]["outcomes"]] == ["rejected"] * 2
        # A rejection is final: sending again asks the gateway nothing.
        again = book.fails(5, *args, "--deliver", environ=environ)
        assert len(gateway.seen) == 2
        assert "2 rejected" in one_error_line(again)

    def test_a_missing_secret_is_named_by_its_key(self, book: Cli, gateway: Gateway) -> None:
        """A missing transport secret exits 3 naming its key, never the secret; nothing is sent."""
        use_gateway(book, gateway)
        ran = book.fails(
            3,
            "send",
            "mis:G1",
            "--channel",
            "sms",
            "--id",
            "m1",
            "--body",
            "Hi",
            "--deliver",
            "--at",
            when(24, 9),
            environ={"OTHER_TOKEN": SMS_TOKEN},
        )
        line = one_error_line(ran)
        assert "transports.sms.token_env" in line
        assert SMS_TOKEN not in line
        assert gateway.seen == []
        assert not (book.folder / "audit").exists()

    def test_a_dry_run_needs_no_transport(self, book: Cli, gateway: Gateway) -> None:
        """A dry run asks the gateway nothing."""
        use_gateway(book, gateway)
        book.ok(
            "send", "mis:G1", "--channel", "sms", "--id", "m1", "--body", "Hi", "--at", when(24, 9)
        )
        assert gateway.seen == []

    def test_an_unknown_transport(self, book: Cli) -> None:
        """A policy naming a transport there is none of is rejected with exit 3, naming it."""
        with (book.folder / "policy.toml").open("a", encoding="utf-8") as policy:
            policy.write('\n[transports.email]\nadapter = "pigeon"\n')
        # policy.toml names an adapter there is none of: the settings file is rejected.
        ran = book.fails(
            3, "send", "mis:G1", "--id", "m1", "--body", "Hi", "--deliver", "--at", when(24, 9)
        )
        assert "'pigeon'" in one_error_line(ran)


class TestAudience:
    def test_an_id_the_book_never_held_is_refused(self, book: Cli) -> None:
        """recipients and send refuse a contact id the book never held; no audit is written."""
        for command in (("recipients",), ("send", "--id", "m", "--body", "x", "--deliver")):
            ran = book.fails(2, *command, "mis:G1", "mis:G99", "--at", when(24, 9))
            line = one_error_line(ran)
            assert "the book holds no contact 'mis:G99' (an id is SOURCE:KEY" in line
            assert line.endswith("'sourcetruth contacts --search NAME' finds people")
        assert not (book.folder / "audit").exists()

    def test_a_departed_or_linked_contact_is_still_named(self, book: Cli) -> None:
        """A departed id is unreachable, a linked one reached where it lives: neither is refused."""
        book.sync(book.export("wed", school(G6=None)), 25)
        book.enable_import()
        path = book.csv("club.csv", "Id,First name,Surname,Mobile,Email\nC1,Gita,Okafor,,\n")
        book.ok("sync", "import", path, "--at", when(25, 9), "--extracted-at", when(25, 8))
        book.ok("link", "mis:G1", "import:C1", "--at", when(25, 10))
        ran = book.ok("recipients", "mis:G6", "import:C1", "--at", when(25, 11))
        assert "  unreachable on email: mis:G6: departed\n" in ran.out
        assert "  email gita@parent.test  (mis:G1)\n" in ran.out


class TestSendingAndStopping:
    def test_an_interrupted_send_keeps_its_audit_and_resumes_as_planned(self, book: Cli) -> None:
        """Ctrl-C mid-send keeps the audit; sending again resumes the plan's time and addresses."""
        delivered: dict[str, str] = {}
        interrupt = [True]

        def deliver(batch: Sequence[Envelope]) -> list[DeliveryResult]:
            results = []
            for envelope in batch:
                if interrupt[0] and results:
                    interrupt[0] = False
                    raise KeyboardInterrupt  # Ctrl-C, after the first envelope went
                delivered[envelope.key] = envelope.address
                results.append(DeliveryResult.accepted(envelope.key))
            return results

        with sms_transport(book, "test-interrupted-sms", deliver):
            args = (*YEAR_9_SMS, "--id", "trip", "--body", "Trip on Friday", "--deliver")
            ran = book.fails(130, *args, "--at", when(24, 9))
            assert one_error_line(ran) == "sourcetruth: interrupted"
            stopped = read_audit(book, "trip")
            assert stopped.planned_at == moment(24, 9)
            assert len(stopped.outcomes) == 3
            assert stopped.count(DeliveryStatus.ACCEPTED) == 0  # no answer came back
            assert book.ok("why", "trip", "mis:G1").out.startswith("sms: +447700900101 (failed)")

            # Meanwhile the MIS changes a number; sending again resumes the plan of 09:00.
            moved = school(G1=guardian("G1", "Gita", "Okafor", "900901", "P1"))
            book.sync(book.export("wed", moved), 25)
            again = book.ok(*args)
        assert "+447700900901" not in again.out
        assert sorted(delivered.values()) == ["+447700900101", "+447700900102", "+447700900103"]
        done = read_audit(book, "trip")
        assert done.planned_at == moment(24, 9)
        assert done.count(DeliveryStatus.ACCEPTED) == 3

    def test_the_audit_is_kept_before_anything_is_handed_over(self, book: Cli) -> None:
        """The audit is on disk, with no results, when the first delivery is handed over."""
        seen: list[AuditRecord] = []

        def deliver(batch: Sequence[Envelope]) -> list[DeliveryResult]:
            seen.append(read_audit(book, "trip"))
            return [DeliveryResult.accepted(e.key) for e in batch]

        with sms_transport(book, "test-watching-sms", deliver):
            book.ok(*YEAR_9_SMS, "--id", "trip", "--body", "x", "--deliver", "--at", when(24, 9))
        (early,) = seen
        assert early.planned_at == moment(24, 9)
        assert [o.result for o in early.outcomes] == [None, None, None]
        assert read_audit(book, "trip").count(DeliveryStatus.ACCEPTED) == 3

    def test_progress_counts_each_delivery_once(
        self, book: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A retried delivery is one step of the bar, as is one given up after its attempts."""
        advanced: list[int] = []

        class Counted(Progress):
            def advance(self, count: int = 1) -> None:
                advanced.append(count)
                super().advance(count)

        monkeypatch.setattr(cli_context, "Progress", Counted)
        monkeypatch.setattr(sending, "send", functools.partial(sending.send, sleep=lambda _: None))
        tries: dict[str, int] = {}

        def deliver(batch: Sequence[Envelope]) -> list[DeliveryResult]:
            results = []
            for e in batch:
                tries[e.key] = tries.get(e.key, 0) + 1
                if e.address.endswith("101") or tries[e.key] == 1:
                    results.append(DeliveryResult.failed(e.key, "busy", retryable=True))
                else:
                    results.append(DeliveryResult.accepted(e.key))
            return results

        with sms_transport(book, "test-busy-sms", deliver):
            args = (*YEAR_9_SMS, "--id", "trip", "--body", "x", "--deliver", "--at", when(24, 9))
            ran = book.fails(5, *args)
        assert "2 accepted, 1 not" in ran.out
        assert sorted(tries.values()) == [2, 2, 3]  # the last given up after 3 attempts
        assert sum(advanced) == 3
