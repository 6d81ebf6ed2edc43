"""Local edits: the address book (add, edit, remove, vCards) and temporary overrides.

The scenarios of local edits (3, 4 and 5) are here.
"""

from __future__ import annotations

import os

from cli_helpers import (
    USER,
    Cli,
    files_of,
    governor_card,
    guardian,
    iso,
    on_both,
    one_error_line,
    school,
    when,
)

from sourcetruth import Phone, Role
from sourcetruth.adapters.sources.vcard import parse_vcards


class TestAddressBook:
    @on_both
    def test_add_edit_remove(self, book: Cli) -> None:
        """An address-book contact is added, edited, removed (departed) and saved back."""
        ran = book.ok(
            "address-book",
            "add",
            "--key",
            "gov-la",
            "--given",
            "Aoife",
            "--family",
            "Lennon",
            "--role",
            "governor",
            "--mobile",
            "07700 900301",
            "--email",
            "aoife@example.org",
            "--at",
            when(24, 9),
        )
        assert (
            ran.out
            == "Saved address-book:gov-la.\n  new address-book:gov-la: Aoife Lennon (governor)\n"
        )
        text = book.ok("show", "address-book:gov-la", "--at", when(24, 9)).out
        assert "  phones              07700 900301 (mobile)\n" in text
        assert "from address-book:gov-la, saved by office Tue 24 Nov 2026 09:00\n" in text
        shown = book.show("address-book:gov-la", when(24, 9))
        assert shown["data"]["role"] == "governor"
        assert shown["data"]["phones"] == [{"number": "07700 900301", "type": "mobile"}]
        assert shown["provenance"]["emails"]["source"] == "address-book"
        assert shown["provenance"]["emails"]["by"] == USER

        ran = book.ok(
            "address-book",
            "edit",
            "address-book:gov-la",
            "--email",
            "aoife.lennon@example.org",
            "--clear",
            "phones",
            "--at",
            when(24, 10),
        )
        assert ran.out.startswith("Saved emails, phones of address-book:gov-la.")
        assert "override" not in ran.out  # the address book's own contact: no override
        data = book.show("address-book:gov-la", when(24, 11))["data"]
        assert data["emails"] == [{"address": "aoife.lennon@example.org", "type": "home"}]
        assert data["phones"] == []
        assert data["given_name"] == "Aoife"  # not named, so kept

        same = book.ok(
            "address-book", "edit", "address-book:gov-la", "--given", "Aoife", "--at", when(24, 11)
        )
        assert same.out == "Nothing changed: the book already says so.\n"

        ran = book.ok("address-book", "remove", "address-book:gov-la", "--at", when(24, 12))
        assert "departed address-book:gov-la" in ran.out
        listed = book.ok("contacts", "--search", "lennon", "--at", when(24, 13)).out
        assert listed == "0 contact(s).\n"
        listed = book.ok("contacts", "--search", "lennon", "--departed", "--at", when(24, 13)).out
        assert "address-book:gov-la" in listed
        assert "(departed)" in listed
        # A save brings a removed contact back.
        back = book.ok(
            "address-book", "edit", "address-book:gov-la", "--given", "Aoife", "--at", when(24, 14)
        )
        assert "  returned address-book:gov-la\n" in back.out
        assert book.show("address-book:gov-la", when(24, 15))["departed"] is False

    def test_mistakes(self, book: Cli) -> None:
        """No name, a taken key, nothing to change, a source's contact: each exits 2 saying so."""
        at = ("--at", when(24, 9))
        assert "needs a name" in one_error_line(
            book.fails(2, "address-book", "add", "--email", "x@example.org", *at)
        )
        book.ok("address-book", "add", "--key", "k1", "--given", "Kit", *at)
        assert "already exists" in one_error_line(
            book.fails(2, "address-book", "add", "--key", "k1", "--given", "Kit", *at)
        )
        assert "say what to change" in one_error_line(
            book.fails(2, "address-book", "edit", "address-book:k1", *at)
        )
        assert "contradict" in one_error_line(
            book.fails(
                2,
                "address-book",
                "edit",
                "address-book:k1",
                "--clear",
                "emails",
                "--email",
                "a@b.test",
            )
        )
        assert "remove it there" in one_error_line(
            book.fails(2, "address-book", "remove", "mis:G1", *at)
        )
        assert "'address-book:nobody'" in one_error_line(
            book.fails(2, "address-book", "edit", "address-book:nobody", "--given", "X", *at)
        )

    def test_import_and_export_round_trip(self, book: Cli) -> None:
        """A vCard file imports, and its export reads back as the same contact in another book."""
        cards = book.exports / "governors.vcf"
        cards.write_text(governor_card(), encoding="utf-8")
        ran = book.ok("address-book", "import", os.fspath(cards), "--at", when(24, 9))
        assert ran.out.startswith("Imported 1 card(s).")
        shown = book.show("address-book:gov-la", when(24, 9))
        assert shown["data"]["emails"][0]["address"] == "aoife@example.org"

        out = book.exports / "out.vcf"
        ran = book.ok("address-book", "export", os.fspath(out), "--at", when(24, 10))
        assert ran.out == f"Wrote 1 address-book contact(s) to {out}.\n"
        (entry,) = parse_vcards(out.read_bytes(), file="out.vcf").entries
        assert entry.key == "gov-la"
        assert entry.data.given_name == "Aoife"
        assert entry.data.role is Role.GOVERNOR
        assert entry.data.phones == (Phone("07700 900301"),)

        # The exported file brings the same contact into another book.
        other = Cli(book.root / "other")
        other.ok("init")
        other.ok("address-book", "import", os.fspath(out), "--at", when(24, 11))
        theirs = other.show("address-book:gov-la", when(24, 12))["data"]
        assert theirs == book.show("address-book:gov-la", when(24, 12))["data"]

    def test_export_as_vcard_3(self, book: Cli) -> None:
        """address-book export --version 3.0 writes vCard 3.0."""
        book.ok("address-book", "add", "--key", "k1", "--given", "Kit", "--at", when(24, 9))
        out = book.exports / "out.vcf"
        book.ok("address-book", "export", os.fspath(out), "--version", "3.0")
        assert "VERSION:3.0" in out.read_text(encoding="utf-8")

    def test_import_problems(self, book: Cli) -> None:
        """A missing vCard file exits 2; an empty one exits 3: it holds no vCards."""
        missing = book.fails(2, "address-book", "import", os.fspath(book.exports / "none.vcf"))
        assert "none.vcf" in one_error_line(missing)
        empty = book.exports / "empty.vcf"
        empty.write_text("", encoding="utf-8")
        ran = book.fails(3, "address-book", "import", os.fspath(empty), "--at", when(24, 9))
        assert "holds no vCards" in ran.err_lines[-1]
        assert all(line.startswith(("notice: ", "sourcetruth: ")) for line in ran.err_lines), (
            ran.err
        )

    def test_a_client_export_imports_with_notices(self, book: Cli) -> None:
        """A KDE-style export in UTF-16 without a mark, no VERSION, an empty TEL: imported."""
        cards = book.exports / "kontact.vcf"
        text = (
            "BEGIN:VCARD\r\nUID:gov-la\r\nN:Lennon;Aoife;;;\r\nTEL;CELL:\r\n"
            "X-messaging/xmpp-All:aoife@example.org\r\nTEL;CELL:07700 900301\r\nEND:VCARD\r\n"
        )
        cards.write_bytes(text.encode("utf-16-le"))
        ran = book.ok("address-book", "import", os.fspath(cards), "--at", when(24, 9))
        assert ran.out.startswith("Imported 1 card(s).")
        assert [line.rsplit("(", 1)[-1] for line in ran.err_lines] == [
            "no-version)",
            "empty-value)",
            "property-skipped)",
        ]
        assert "aoife@example.org" not in ran.err
        shown = book.show("address-book:gov-la", when(24, 9))
        assert [p["number"] for p in shown["data"]["phones"]] == ["07700 900301"]

    def test_a_rejected_vcard_file_changes_nothing(self, book: Cli) -> None:
        """A vCard file with a broken card exits 3 naming its line; not even a good card goes in."""
        cards = book.exports / "broken.vcf"
        cards.write_bytes(
            governor_card().encode()
            + b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:Wanda Xu\r\nTEL:07700 900444\r\n"
        )
        before = files_of(book.folder)
        ran = book.fails(3, "address-book", "import", os.fspath(cards), "--at", when(24, 9))
        assert ran.err_lines == [
            f"sourcetruth: {cards}: 1 problem(s) in the vCard file; nothing from it was applied",
            f"  - a card that starts here has no END:VCARD (file {cards}, line 10, field BEGIN)",
        ]
        assert files_of(book.folder) == before  # not even the good card

    def test_scenario_3_an_address_book_contact_is_local(self, book: Cli) -> None:
        """The LA governor changes email on Thursday 18:00; Friday's sync leaves it alone."""
        cards = book.exports / "governors.vcf"
        cards.write_text(governor_card(), encoding="utf-8")
        book.ok("address-book", "import", os.fspath(cards), "--at", when(24, 9))
        book.ok(
            "address-book",
            "edit",
            "address-book:gov-la",
            "--email",
            "aoife.new@example.org",
            "--at",
            when(26, 18),
        )
        book.sync(book.export("fri"), 27)
        for at in (when(26, 18, 1), when(27, 9)):
            emails = book.show("address-book:gov-la", at)["data"]["emails"]
            assert [e["address"] for e in emails] == ["aoife.new@example.org"]
        told = book.ok("report", "update-at-source", "--at", when(27, 9), "--json").json()
        assert told == {"lost": [], "in_force": []}

    def test_scenario_4_an_edit_at_the_wrong_place_is_lost(self, book: Cli) -> None:
        """The parent governor's email, edited locally on Thursday; the MIS keeps the old one."""
        ran = book.ok(
            "address-book",
            "edit",
            "mis:G3",
            "--email",
            "ines.new@parent.test",
            "--at",
            when(26, 18),
        )
        assert "override set: mis:G3 emails = ines.new@parent.test (home)" in ran.out
        assert "until the next mis sync" in ran.out
        shown = book.show("mis:G3", when(26, 19))
        assert [e["address"] for e in shown["data"]["emails"]] == ["ines.new@parent.test"]
        assert shown["provenance"]["emails"]["kind"] == "override"
        assert shown["provenance"]["emails"]["by"] == USER
        # A 19:00 message uses it.
        plan = book.ok(
            "recipients", "mis:G3", "--channel", "email", "--at", when(26, 19), "--json"
        ).json()
        assert [d["address"] for d in plan["deliveries"]] == ["ines.new@parent.test"]

        friday = book.export("fri")
        ahead = book.ok(
            "report",
            "before-next-sync",
            "mis",
            "--snapshot",
            friday,
            "--extracted-at",
            when(27, 1, 30),
            "--at",
            when(26, 20),
        )
        assert "The next mis sync (Fri 27 Nov 2026 02:00) ends 1 edit(s)" in ahead.out
        assert ahead.out.rstrip().endswith(": lost")

        ran = book.sync(friday, 27)
        assert "override of emails on mis:G3 ended: lost (update it at the source)" in ran.out
        report = book.ok("report", "update-at-source", "--at", when(27, 9))
        assert "Lost at a sync (1): update these at the source" in report.out
        assert "mis:G3 emails = ines.new@parent.test (home)" in report.out
        assert "lost Fri 27 Nov 2026 02:00" in report.out
        told = book.ok("report", "update-at-source", "--at", when(27, 9), "--json").json()
        (lost,) = told["lost"]
        assert lost["outcome"] == "lost"
        assert lost["override"]["value"] == [{"address": "ines.new@parent.test", "type": "home"}]
        assert lost["override"]["base"] == [{"address": "ines@parent.test", "type": "other"}]
        # Friday's minutes go to the old address; Thursday evening is still on record.
        after = book.show("mis:G3", when(27, 9))["data"]["emails"]
        assert [e["address"] for e in after] == ["ines@parent.test"]
        before = book.show("mis:G3", when(26, 19))["data"]["emails"]
        assert [e["address"] for e in before] == ["ines.new@parent.test"]
        since = book.ok("report", "update-at-source", "--since", when(27, 3), "--at", when(27, 9))
        assert "Lost at a sync (0)" in since.out

    def test_scenario_5_an_edit_the_school_also_made_at_source(self, book: Cli) -> None:
        """Scenario 5: an edit also made at the MIS ends confirmed at the sync; the value stays."""
        book.ok(
            "address-book",
            "edit",
            "mis:G3",
            "--email",
            "ines.new@parent.test",
            "--at",
            when(26, 18),
        )
        updated = school(
            G3=guardian("G3", "Ines", "Moreau", "900103", "P3", email="ines.new@parent.test")
        )
        ran = book.sync(book.export("fri", updated), 27)
        assert "override of emails on mis:G3 ended: confirmed" in ran.out
        assert "update it at the source" not in ran.out
        after = book.show("mis:G3", when(27, 9))
        assert [e["address"] for e in after["data"]["emails"]] == ["ines.new@parent.test"]
        assert after["provenance"]["emails"]["kind"] == "source"


class TestOverride:
    @on_both
    def test_until(self, book: Cli) -> None:
        """override set --until: the value shows until then, and the source's value after."""
        ran = book.ok(
            "override",
            "set",
            "mis:G2",
            "phones",
            "07700 900555",
            "--until",
            when(24, 12),
            "--at",
            when(24, 9),
            "--json",
        )
        (made,) = ran.json()["overrides_set"]
        assert made["lifetime"] == "until"
        assert made["until"] == iso(24, 12)
        assert made["value"] == [{"number": "07700 900555", "type": "mobile"}]
        report = book.ok("report", "update-at-source", "--at", when(24, 10)).out
        assert "until Tue 24 Nov 2026 12:00 or the next mis sync; ends Tue 24 Nov 2026 12:00" in (
            report
        )
        during = book.show("mis:G2", when(24, 11))["data"]["phones"]
        assert [p["number"] for p in during] == ["07700 900555"]
        after = book.show("mis:G2", when(24, 13))["data"]["phones"]
        assert [p["number"] for p in after] == ["07700 900102"]

    def test_while_the_source_is_unchanged(self, book: Cli) -> None:
        """--while-source-unchanged outlives a sync; a change at the source supersedes it."""
        ran = book.ok(
            "override",
            "set",
            "mis:G2",
            "emails",
            "hugh@example.org",
            "hugh.work@example.org",
            "--while-source-unchanged",
            "--at",
            when(24, 9),
        )
        assert "while mis keeps its value" in ran.out
        kept = book.sync(book.export("wed"), 25)
        assert "override kept: mis:G2 emails" in kept.out
        emails = book.show("mis:G2", when(25, 9))["data"]["emails"]
        assert [e["address"] for e in emails] == ["hugh@example.org", "hugh.work@example.org"]
        moved = school(G2=guardian("G2", "Hugh", "Byrne", "900102", "P2", email="h@parent.test"))
        ended = book.sync(book.export("thu", moved), 26)
        assert "override of emails on mis:G2 ended: superseded" in ended.out
        emails = book.show("mis:G2", when(26, 9))["data"]["emails"]
        assert [e["address"] for e in emails] == ["h@parent.test"]

    def test_clear(self, book: Cli) -> None:
        """override clear ends an override at once; clearing none is a usage error."""
        book.ok("override", "set", "mis:G2", "given_name", "Hughie", "--at", when(24, 9))
        ran = book.ok("override", "clear", "mis:G2", "given_name", "--at", when(24, 10))
        assert ran.out.startswith("Override cleared.")
        assert "ended: cleared" in ran.out
        assert book.show("mis:G2", when(24, 11))["data"]["given_name"] == "Hugh"
        ran = book.fails(2, "override", "clear", "mis:G2", "given_name", "--at", when(24, 11))
        assert "no override" in one_error_line(ran)

    def test_mistakes(self, book: Cli) -> None:
        """override set refuses two values, a bad role, links, a past --until, a local contact."""
        at = ("--at", when(24, 9))
        cases = {
            ("mis:G2", "given_name", "A", "B"): "given_name takes one value",
            ("mis:G2", "role", "boss"): "a role is one of",
            ("mis:G2", "relationships", "P1"): "changed at the source",
            ("mis:G2", "phones", "07700 900555", "--until", when(24, 8)): "after the time",
        }
        for args, message in cases.items():
            assert message in one_error_line(book.fails(2, "override", "set", *args, *at))
        book.ok("address-book", "add", "--key", "k1", "--given", "Kit", *at)
        ran = book.fails(2, "override", "set", "address-book:k1", "given_name", "Kat", *at)
        assert "edited directly" in one_error_line(ran)
        ran = book.fails(
            2,
            "override",
            "set",
            "mis:G2",
            "phones",
            "1",
            "--until",
            "x",
            "--while-source-unchanged",
        )
        assert "not allowed with" in one_error_line(ran)

    def test_relationships_are_changed_at_the_source(self, book: Cli) -> None:
        """A source's relationships are neither edited nor overridden; a local contact's are."""
        at = ("--at", when(24, 9))
        for args in (
            ("address-book", "edit", "mis:G1", "--clear", "relationships"),
            ("override", "set", "mis:G1", "relationships", "mis:P2"),
        ):
            assert "changed at the source" in one_error_line(book.fails(2, *args, *at))
        assert len(book.journal()) == 1
        book.ok("address-book", "add", "--key", "aunt", "--given", "Ada", *at)
        book.ok("address-book", "edit", "address-book:aunt", "--clear", "relationships", *at)
