"""Looking at contacts: ``contacts``, ``show`` and ``explain``, now and in the past."""

from __future__ import annotations

import sqlite3

from cli_helpers import USER, Cli, guardian, iso, on_both, one_error_line, school, when


class TestLooking:
    @on_both
    def test_contacts(self, book: Cli) -> None:
        """contacts lists everyone; --search finds id, name, number in any format, email; --role."""
        out = book.ok("contacts", "--at", when(24, 9)).out
        assert out.endswith("13 contact(s).\n")
        assert "mis:G1" in out
        found = book.ok("contacts", "--search", "OKAFOR", "--at", when(24, 9), "--json").json()
        assert sorted(c["id"] for c in found) == ["mis:G1", "mis:P1"]
        staff = book.ok("contacts", "--role", "staff", "--at", when(24, 9), "--json").json()
        assert [c["id"] for c in staff] == ["mis:S1"]
        by_id = book.ok("contacts", "--search", "mis:P", "--at", when(24, 9), "--json").json()
        assert len(by_id) == 6
        for needle in ("gita okafor", "900101", "07700 900101", "GITA@parent.test"):
            found = book.ok("contacts", "--search", needle, "--at", when(24, 9), "--json").json()
            assert [c["id"] for c in found] == ["mis:G1"], needle

    def test_contacts_json_has_a_stable_shape_and_provenance(self, book: Cli) -> None:
        """contacts --json has every key, defaults included, and each field's full provenance."""
        found = book.ok("contacts", "--at", when(24, 9), "--json").json()
        pupil = next(c for c in found if c["id"] == "mis:P1")
        # Every key is there, even when it holds its default.
        assert set(pupil) == {
            "id",
            "home",
            "data",
            "provenance",
            "departed",
            "departed_at",
            "overrides",
        }
        assert set(pupil["data"]) == {
            "given_name",
            "family_name",
            "role",
            "phones",
            "emails",
            "relationships",
            "year_group",
            "registration_group",
        }
        assert pupil["data"]["phones"] == []
        assert pupil["departed_at"] is None
        provenance = pupil["provenance"]["year_group"]
        assert provenance == {
            "kind": "source",
            "source": "mis",
            "record_key": "P1",
            "since": iso(24, 2),
            "read_at": iso(24, 1, 30),
            "applied_at": iso(24, 2),
            "sync": 1,
            "by": USER,
        }

    def test_departed(self, book: Cli) -> None:
        """A departed contact leaves the list, shows with --departed, and show says when."""
        book.sync(book.export("wed", school(G6=None)), 25)
        assert "mis:G6" not in book.ok("contacts", "--at", when(25, 9)).out
        listed = book.ok("contacts", "--departed", "--at", when(25, 9)).out
        assert "mis:G6" in listed
        assert "(departed)" in listed
        shown = book.show("mis:G6", when(25, 9))
        assert shown["departed"] is True
        assert shown["departed_at"] == iso(25, 2)
        assert (
            "DEPARTED Wed 25 Nov 2026 02:00" in book.ok("show", "mis:G6", "--at", when(25, 9)).out
        )

    @on_both
    def test_show_and_explain_travel_in_time(self, book: Cli) -> None:
        """show and explain at a past time give that time's value and name the later change."""
        changed = school(G1=guardian("G1", "Gita", "Okafor", "900901", "P1"))
        book.sync(book.export("wed", changed), 25)

        past = book.ok("show", "mis:G1", "--at", when(24, 15, 30)).out
        assert "  phones              07700 900101 (mobile)" in past
        assert (
            "from mis:G1, sync 1 (read Tue 24 Nov 2026 01:30, applied Tue 24 Nov 2026 02:00)"
            in (past)
        )
        now = book.ok("show", "mis:G1", "--at", when(25, 9)).out
        assert "  phones              07700 900901 (mobile)" in now

        told = book.ok("explain", "mis:G1", "phones", "--at", when(24, 15, 30)).out
        assert told.startswith("mis:G1 phones at Tue 24 Nov 2026 15:30: 07700 900101 (mobile)")
        assert "changed later at the source: applied Wed 25 Nov 2026 02:00 (sync 2)" in told

        data = book.ok("explain", "mis:G1", "phones", "--at", when(24, 15, 30), "--json").json()
        assert data["value"] == [{"number": "07700 900101", "type": "mobile"}]
        assert data["provenance"]["sync"] == 1
        assert data["provenance"]["applied_at"] == iso(24, 2)
        assert data["later"]["sync"] == 2
        assert data["later_value"] == [{"number": "07700 900901", "type": "mobile"}]
        assert data["overrides"] == []

    def test_explain_an_override(self, book: Cli) -> None:
        """explain of an overridden field names the override, who set it, that it is in force."""
        book.ok("override", "set", "mis:G1", "family_name", "Okafor-Shah", "--at", when(24, 9))
        told = book.ok("explain", "mis:G1", "family_name", "--at", when(24, 10)).out
        assert "mis:G1 family_name at Tue 24 Nov 2026 10:00: Okafor-Shah" in told
        assert "from override by office at Tue 24 Nov 2026 09:00, over mis:G1" in told
        assert "; in force" in told

    def test_unknown(self, book: Cli) -> None:
        """show of no such contact, or before it existed, exits 2; so does an unknown field."""
        assert "'mis:NOBODY'" in one_error_line(book.fails(2, "show", "mis:NOBODY"))
        assert "'mis:G1'" in one_error_line(book.fails(2, "show", "mis:G1", "--at", when(23, 9)))
        ran = book.fails(2, "explain", "mis:G1", "mobile")
        assert "invalid choice: 'mobile'" in one_error_line(ran)

    def test_a_value_no_source_holds(self, book: Cli) -> None:
        """A field no source holds shows as (empty), from nowhere."""
        shown = book.ok("show", "mis:G1", "--at", when(24, 9)).out
        assert "  registration_group  (empty)\n" in shown
        assert "from nowhere: no source holds a value for it\n" in shown
        assert "from no source" not in shown


class TestReadingWhileASyncCommits:
    def test_read_commands_answer_while_a_writer_holds_the_book(self, book: Cli) -> None:
        """F10: with a write under way in another connection, reads answer the last commit."""
        before = book.ok("contacts").out
        writer = sqlite3.connect(book.folder / "book.sqlite", isolation_level=None, timeout=0)
        try:
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute("DELETE FROM contacts")
            assert book.ok("contacts").out == before
            book.ok("show", "mis:G1")
            book.ok("explain", "mis:G1", "emails")
            book.ok("recipients", "--year", "9", "--guardians")
            book.ok("journal")
            book.ok("report", "update-at-source")
        finally:
            writer.execute("ROLLBACK")
            writer.close()
