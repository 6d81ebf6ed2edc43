"""The book folder itself: ``init``, ``policy`` (and ``when``), and the suppression key."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from cli_helpers import Cli, files_of, iso, on_both, one_error_line, school, when


class TestInit:
    def test_sqlite_book(self, cli: Cli) -> None:
        """init makes an SQLite book: its policy, store and an owner-only key; stderr is empty."""
        ran = cli.ok("init")
        assert "(sqlite)" in ran.out
        assert sorted(p.name for p in cli.folder.iterdir()) == [
            "book.sqlite",
            "policy.toml",
            "suppression.key",
        ]
        assert (cli.folder / "suppression.key").stat().st_mode & 0o777 == 0o600
        assert ran.err == ""

    def test_json_store_works_like_sqlite(self, cli: Cli) -> None:
        """init --store json keeps the book in book.json, which syncs and lists like SQLite."""
        cli.ok("init", "--store", "json")
        assert (cli.folder / "book.json").is_file()
        assert not (cli.folder / "book.sqlite").exists()
        cli.sync(cli.export("tue"), 24)
        found = cli.ok("contacts", "--at", when(24, 9), "--json").json()
        assert len(found) == len(school())

    def test_refuses_a_folder_that_already_holds_a_book(self, cli: Cli) -> None:
        """init where a book already is exits 2 and leaves every file as it was."""
        cli.ok("init")
        policy = (cli.folder / "policy.toml").read_bytes()
        before = files_of(cli.folder)
        ran = cli.fails(2, "init", "--store", "json")
        assert "already holds a book" in one_error_line(ran)
        assert files_of(cli.folder) == before
        assert (cli.folder / "policy.toml").read_bytes() == policy

    def test_a_bad_policy_file_names_the_file_and_key(self, cli: Cli, tmp_path: Path) -> None:
        """A --policy file with a misspelt key exits 3 naming file and key; no folder is made."""
        mine = tmp_path / "our-policy.toml"
        mine.write_text(
            '[guard]\nmax_cout = 5\n\n[sources.mis]\nkind = "mis"\nadapter = "oneroster"\n',
            encoding="utf-8",
        )
        ran = cli.fails(3, "init", "--policy", os.fspath(mine))
        line = one_error_line(ran)
        assert "guard.max_cout" in line
        assert "our-policy.toml" in line
        assert not cli.folder.exists()

    def test_a_missing_policy_file(self, cli: Cli) -> None:
        """A --policy file that is not there is a usage error naming it."""
        ran = cli.fails(2, "init", "--policy", os.fspath(cli.root / "nowhere.toml"))
        assert "nowhere.toml" in one_error_line(ran)

    def test_a_policy_file_is_used(self, cli: Cli, tmp_path: Path) -> None:
        """init --policy starts the book from that file: its guard, sources and schedule."""
        mine = tmp_path / "policy.toml"
        mine.write_text(
            'timezone = "Europe/London"\nregion = "GB"\n[guard]\nmax_count = 3\n\n'
            '[sources.mis]\nkind = "mis"\nadapter = "oneroster"\n'
            'covers = ["given_name", "family_name", "role", "phones", "emails"]\n'
            'schedule = "FREQ=DAILY;BYHOUR=3;BYMINUTE=15"\n',
            encoding="utf-8",
        )
        cli.ok("init", "--policy", os.fspath(mine))
        shown = cli.ok("policy", "--at", when(24, 12), "--json").json()
        assert shown["guard"]["max_count"] == 3
        assert [s["name"] for s in shown["sources"]] == ["mis", "address-book"]
        assert shown["sources"][0]["next_sync"] == iso(25, 3, 15)

    def test_an_unknown_key_in_policy_toml_is_named(self, cli: Cli) -> None:
        """An unknown top-level key in policy.toml makes a command exit 3, naming the key."""
        cli.ok("init")
        policy = cli.folder / "policy.toml"
        policy.write_text(
            policy.read_text(encoding="utf-8").replace("[guard]", "colour = 1\n\n[guard]"),
            encoding="utf-8",
        )
        line = one_error_line(cli.fails(3, "policy"))
        assert "colour" in line
        assert "unknown key" in line

    def test_an_unknown_key_in_a_source_is_named(self, cli: Cli) -> None:
        """An unknown key in a source's table is named by its path: sources.mis.shedule."""
        cli.ok("init")
        policy = cli.folder / "policy.toml"
        text = policy.read_text(encoding="utf-8")
        policy.write_text(text.replace('kind = "mis"', 'kind = "mis"\nshedule = "x"'), "utf-8")
        assert "sources.mis.shedule" in one_error_line(cli.fails(3, "contacts"))

    def test_the_suppression_key_can_live_elsewhere(self, cli: Cli, tmp_path: Path) -> None:
        """The key lives where the variable says; without the variable a sync exits 6 naming it."""
        key = tmp_path / "keys" / "school.key"
        key.parent.mkdir()
        environ = {"SOURCETRUTH_SUPPRESSION_KEY_FILE": os.fspath(key)}
        cli.ok("init", environ=environ)
        assert key.is_file()
        assert not (cli.folder / "suppression.key").exists()
        args = (
            "sync",
            "mis",
            cli.export("tue"),
            "--at",
            when(24, 2),
            "--extracted-at",
            when(24, 1),
        )
        cli.ok(*args, environ=environ)
        # Without the variable the book cannot find its key, and says where to look.
        line = one_error_line(cli.fails(6, *args))
        assert "SOURCETRUTH_SUPPRESSION_KEY_FILE" in line


class TestPolicy:
    def test_text(self, cli: Cli) -> None:
        """policy prints timezone, each source's schedule and reader, the guard and transports."""
        cli.ok("init")
        out = cli.ok("policy").out
        assert "Timezone Europe/London, phone region GB." in out
        assert re.search(
            r"^  mis \(mis; syncs FREQ=DAILY;BYHOUR=2;BYMINUTE=0, next \w{3} \d\d \w{3} \d{4} "
            r"02:00; read with oneroster\)$",
            out,
            re.M,
        )
        assert "  import (import; no schedule; read with csv)" in out
        assert "  address-book (local: edits show at once; 'sourcetruth address-book')" in out
        assert "covers emails, family_name, given_name, phones\n" in out
        assert "more than 500, or more than 20% once at least 5" in out
        assert "Transports: email by outbox, sms by outbox" in out

    @on_both
    def test_json(self, cli: Cli) -> None:
        """policy --json gives timezone, precedence, guard, sources with next sync, transports."""
        cli.ok("init")
        shown = cli.ok("policy", "--at", when(24, 12, 30), "--json").json()
        assert shown["timezone"] == "Europe/London"
        assert shown["region"] == "GB"
        assert shown["precedence"] == ["mis", "import", "address-book"]
        assert shown["guard"] == {
            "max_count": 500,
            "max_fraction": 0.2,
            "min_count": 5,
            "enabled": True,
        }
        mis, imports, local = shown["sources"]
        assert mis["name"] == "mis"
        assert mis["adapter"] == "oneroster"
        assert mis["next_sync"] == iso(25, 2)
        assert imports["covers"] == ["emails", "family_name", "given_name", "phones"]
        assert imports["next_sync"] is None
        assert local["kind"] == "address-book"
        assert shown["transports"] == {"email": "outbox", "sms": "outbox"}
        assert mis["region"] is None  # the policy's region reads its numbers

    def test_a_source_region_is_shown(self, cli: Cli) -> None:
        """A source with a phone region of its own shows it, in text and JSON."""
        cli.ok("init")
        policy = cli.folder / "policy.toml"
        text = policy.read_text(encoding="utf-8")
        policy.write_text(
            text.replace("[sources.import]\n", '[sources.import]\nregion = "US"\n'),
            encoding="utf-8",
        )
        shown = cli.ok("policy", "--at", when(24, 12, 30), "--json").json()
        assert [s["region"] for s in shown["sources"]] == [None, "US", None]
        assert "; phone region US)" in cli.ok("policy", "--at", when(24, 12, 30)).out

    @on_both
    def test_when_a_change_shows(self, cli: Cli) -> None:
        """when: an MIS change shows at the next 02:00 sync, an address-book one at once."""
        cli.ok("init")
        ran = cli.ok("when", "mis", "--changed-at", when(24, 12, 30))
        assert "shows in the book at Wed 25 Nov 2026 02:00" in ran.out
        told = cli.ok("when", "address-book", "--changed-at", when(26, 18), "--json").json()
        assert told["effective_at"] == iso(26, 18)
        assert "its sources are mis, import" in one_error_line(cli.fails(2, "when", "mss"))


class TestTheSuppressionKey:
    def test_reading_the_book_needs_no_suppression_key(self, book: Cli) -> None:
        """Every read command works without the key; a change without it exits 6 naming it."""
        book.ok("send", "mis:G1", "--id", "m1", "--body", "x", "--deliver", "--at", when(24, 9))
        book.ok("override", "set", "mis:G2", "given_name", "Hughie", "--at", when(24, 9))
        book.ok("group", "set", "Nine", "--year", "9", "--guardians", "--at", when(24, 9))
        lost = {"SOURCETRUTH_SUPPRESSION_KEY_FILE": os.fspath(book.root / "nowhere.key")}
        for args in (
            ("contacts",),
            ("show", "mis:G1"),
            ("explain", "mis:G2", "given_name"),
            ("groups",),
            ("recipients", "Nine"),
            ("send", "Nine", "--id", "m2", "--body", "y"),
            ("why", "m1", "mis:G1"),
            ("report", "update-at-source"),
            ("report", "before-next-sync", "mis"),
            ("report", "two-feeds"),
            ("report", "data-quality"),
            ("export", os.fspath(book.exports / "book.csv")),
            ("address-book", "export", os.fspath(book.exports / "book.vcf")),
            ("journal",),
            ("policy",),
        ):
            book.ok(*args, environ=lost)
        ran = book.fails(
            6, "override", "set", "mis:G3", "given_name", "X", "--at", when(24, 10), environ=lost
        )
        assert "suppression key" in one_error_line(ran)

    def test_a_missing_folder_for_the_key_is_named(self, cli: Cli) -> None:
        """init with the key file in a missing folder names the folder and makes no book."""
        key = cli.root / "no-such-folder" / "school.key"
        ran = cli.fails(2, "init", environ={"SOURCETRUTH_SUPPRESSION_KEY_FILE": os.fspath(key)})
        line = one_error_line(ran)
        assert "the suppression key's folder" in line
        assert os.fspath(key.parent) in line
        assert not cli.folder.exists()


class TestRefreshView:
    def test_a_book_without_a_view_says_so_and_refresh_view_builds_it(self, cli: Cli) -> None:
        """A book whose view is gone lists the same contacts with one notice; refresh-view
        rebuilds the view (journalled), and the notice goes."""
        cli.ok("init")
        cli.sync(cli.export("tue"), 24)
        listed = cli.ok("contacts", "--at", when(24, 9), "--json")
        assert listed.err == ""
        db = sqlite3.connect(cli.folder / "book.sqlite")
        try:  # as a file upgraded from an older schema holds it: no view
            with db:
                db.execute("DELETE FROM current")
                db.execute("DELETE FROM current_links")
                db.execute("UPDATE meta SET value='' WHERE name='view_basis'")
        finally:
            db.close()
        slow = cli.ok("contacts", "--at", when(24, 9), "--json")
        assert slow.json() == listed.json()
        assert slow.err.count("sourcetruth book refresh-view") == 1
        done = cli.ok("book", "refresh-view", "--at", when(24, 10))
        assert "Rebuilt the book's current view" in done.out
        assert cli.journal()[-1]["status"] == "applied"
        again = cli.ok("contacts", "--at", when(24, 11), "--json")
        assert again.err == ""
        assert again.json() == listed.json()
