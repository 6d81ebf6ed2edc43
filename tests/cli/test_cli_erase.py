"""``erase``: a person gone for good from the book, its history, audits and outbox (rule 13)."""

from __future__ import annotations

from cli_helpers import Cli, guardian, on_both, one_error_line, school, when

PERSONAL = (b"Zebedee", b"Quill", b"900106", b"zebedee@parent.test", b"447700900106")


class TestErase:
    def test_refused_without_yes(self, book: Cli) -> None:
        """erase without --yes exits 2 and erases nothing."""
        ran = book.fails(2, "erase", "mis:G6", "--at", when(24, 9))
        assert "add --yes" in one_error_line(ran)
        assert book.show("mis:G6", when(24, 9))["data"]["given_name"] == "Zebedee"

    @on_both
    def test_erased_from_the_bytes_and_kept_out(self, book: Cli) -> None:
        """An erased person's values leave every file, and a later sync does not bring them back."""
        # Some history first: an override and a change of number.
        book.ok("override", "set", "mis:G6", "emails", "zebedee@parent.test", "--at", when(24, 9))
        moved = school(G6=guardian("G6", "Zebedee", "Quill", "900106", "P6", mobile="07700 900106"))
        book.sync(book.export("wed", moved), 25)
        assert any(PERSONAL[0] in data for data in book.stored().values())

        ran = book.ok("erase", "mis:G6", "--yes", "--at", when(25, 9))
        assert ran.out.startswith("Erased mis:G6.")
        assert ran.err == ""
        book.fails(2, "show", "mis:G6", "--at", when(25, 10))
        for name, data in book.stored().items():
            for value in PERSONAL:
                assert value not in data, (name, value)

        later = book.sync(book.export("thu", moved), 26)
        assert "skipped 1 erased record(s) (suppressed)" in later.out
        assert "mis:G6" not in later.out
        ids = [c["id"] for c in book.ok("contacts", "--departed", "--json").json()]
        assert "mis:G6" not in ids
        for data in book.stored().values():
            assert PERSONAL[0] not in data

    @on_both
    def test_without_suppression_a_sync_brings_them_back(self, book: Cli) -> None:
        """Erased with --no-suppress, a person comes back with the next sync."""
        book.ok("erase", "mis:G6", "--yes", "--no-suppress", "--at", when(24, 9))
        book.sync(book.export("wed"), 25)
        assert book.show("mis:G6", when(25, 9))["data"]["given_name"] == "Zebedee"

    @on_both
    def test_sent_messages_forget_them_and_keep_the_others(self, book: Cli) -> None:
        """Audit records and the outbox lose the erased person; the others' sends stay."""
        book.ok(
            "send", "mis:G6", "mis:G1", "--id", "m1", "--body", "x", "--channel", "sms",
            "--channel", "email", "--each", "--deliver", "--at", when(24, 9),
        )  # fmt: skip
        book.ok("send", "mis:G6", "--id", "m2", "--body", "y", "--deliver", "--at", when(24, 9))
        assert any(PERSONAL[2] in data for data in book.stored().values())
        ran = book.ok("erase", "mis:G6", "--yes", "--at", when(24, 10))
        assert (
            "taken out of the audit of 2 sent message(s), the outbox and the delivery log"
            in ran.out
        )
        for name, data in book.stored().items():
            for value in PERSONAL:
                assert value not in data, (name, value)
        why = book.ok("why", "m1", "mis:G1", "--channel", "sms").out
        assert why.startswith("sms: +447700900101 (accepted)")
        book.fails(2, "why", "m2", "mis:G6")
        assert len(book.outbox()) == 2  # G1's text and email; G6's three messages are gone

    def test_an_audit_record_it_cannot_read_is_named(self, book: Cli) -> None:
        """An audit file erase cannot read is named in a notice: it may still hold the person."""
        book.ok("send", "mis:G6", "--id", "m1", "--body", "x", "--deliver", "--at", when(24, 9))
        (book.folder / "audit" / "broken.json").write_text("{not json", encoding="utf-8")
        ran = book.ok("erase", "mis:G6", "--yes", "--at", when(24, 10))
        (line,) = ran.err_lines
        assert line.startswith("notice: ")
        assert "broken.json" in line
        assert "may still hold mis:G6" in line
