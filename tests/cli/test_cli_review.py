"""What the book tells a data manager: ``report`` worklists, and ``export`` with its targets."""

from __future__ import annotations

import csv
import os
import stat

import pytest
from cli_helpers import (
    Cli,
    files_of,
    guardian,
    iso,
    on_both,
    one_error_line,
    outbox_files,
    person,
    school,
    when,
)

from sourcetruth import Role


class TestReports:
    @on_both
    def test_before_next_sync(self, book: Cli) -> None:
        """report before-next-sync lists the edits the next sync ends, and when it runs."""
        book.ok("override", "set", "mis:G2", "given_name", "Hughie", "--at", when(24, 9))
        ran = book.ok("report", "before-next-sync", "mis", "--at", when(24, 10))
        assert ran.out.splitlines() == [
            "The next mis sync (Wed 25 Nov 2026 02:00) ends 1 edit(s)",
            "  mis:G2 given_name = Hughie (was Hugh), set by office Tue 24 Nov 2026 09:00, "
            "until the next mis sync",
        ]
        told = book.ok("report", "before-next-sync", "mis", "--at", when(24, 10), "--json").json()
        assert told["at"] == iso(25, 2)
        assert [o["field"] for o in told["ending"]] == ["given_name"]

    def test_before_next_sync_with_the_export(self, book: Cli) -> None:
        """Given the export, before-next-sync says how each edit ends, and writes nothing."""
        book.ok("override", "set", "mis:G2", "given_name", "Hughie", "--at", when(24, 9))
        renamed = school(G2=person("G2", "Hughie", "Byrne", Role.GUARDIAN, pupils=("P2",)))
        ran = book.ok(
            "report",
            "before-next-sync",
            "mis",
            "--snapshot",
            book.export("wed", renamed),
            "--extracted-at",
            when(25, 1),
            "--at",
            when(24, 10),
        )
        assert ran.out.rstrip().endswith("until the next mis sync: confirmed")
        assert len(book.journal()) == 2  # the sync and the override; the report wrote nothing
        assert "--extracted-at goes with --snapshot" in one_error_line(
            book.fails(2, "report", "before-next-sync", "mis", "--extracted-at", when(25, 1))
        )

    def test_data_quality(self, cli: Cli) -> None:
        """report data-quality lists a number kept raw, and stderr never shows its value."""
        cli.ok("init")
        odd = school(G5=guardian("G5", "Mina", "Patel", "", "P5", mobile="0770 09", email=""))
        cli.sync(cli.export("tue", odd), 24)
        ran = cli.ok("report", "data-quality", "--at", when(24, 9))
        assert "  mis:G5 phones: unnormalised: " in ran.out
        problems = cli.ok("report", "data-quality", "--at", when(24, 9), "--json").json()
        kinds = {(p["contact_id"], p["kind"]) for p in problems}
        assert ("mis:G5", "unnormalised") in kinds
        assert "0770 09" not in ran.err

    def test_data_quality_counts_invalid_numbers_by_source(self, cli: Cli) -> None:
        """A number possible in length but not valid is counted under its source."""
        cli.ok("init")
        odd = school(G5=guardian("G5", "Mina", "Patel", "", "P5", mobile="0306 999012", email=""))
        cli.sync(cli.export("tue", odd), 24)
        ran = cli.ok("report", "data-quality", "--at", when(24, 9))
        assert "  mis:G5 phones: unnormalised: phone 1: not a valid number in region GB" in ran.out
        assert ran.out.rstrip().endswith("Phone numbers that are not valid, by source: mis 1.")
        assert "999012" not in ran.out + ran.err

    def test_a_clean_book_has_no_problems(self, book: Cli) -> None:
        """A clean book's data-quality report is 0 problem(s)."""
        assert book.ok("report", "data-quality", "--at", when(24, 9)).out == "0 problem(s).\n"

    def test_a_source_without_a_schedule(self, book: Cli) -> None:
        """before-next-sync of a source with no schedule says so, and lists its edits."""
        book.enable_import()
        path = book.csv("club.csv", "Id,First name,Surname,Mobile,Email\nC1,Xan,Reid,,\n")
        book.ok("sync", "import", path, "--at", when(24, 9), "--extracted-at", when(24, 8))
        book.ok("override", "set", "import:C1", "given_name", "Xander", "--at", when(24, 10))
        ran = book.ok("report", "before-next-sync", "import", "--at", when(24, 11))
        assert ran.out.splitlines() == [
            "import has no schedule; its next sync ends 1 edit(s)",
            "  import:C1 given_name = Xander (was Xan), set by office Tue 24 Nov 2026 10:00, "
            "until the next import sync",
        ]


class TestExport:
    @on_both
    def test_csv(self, book: Cli) -> None:
        """export writes CSV with formulas neutralised; departed contacts only with --departed."""
        book.ok(
            "address-book",
            "add",
            "--key",
            "sneaky",
            "--given",
            '=HYPERLINK("x")',
            "--family",
            "Evans",
            "--at",
            when(24, 9),
        )
        book.sync(book.export("wed", school(G6=None)), 25)
        out = book.exports / "book.csv"
        ran = book.ok("export", os.fspath(out), "--at", when(25, 9))
        assert ran.out == f"Wrote the book at Wed 25 Nov 2026 09:00 to {out}.\n"
        with out.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        by_id = {r["contact_id"]: r for r in rows}
        assert by_id["address-book:sneaky"]["given_name"] == '\'=HYPERLINK("x")'
        assert by_id["mis:G1"]["mobile_phones"] == "+447700900101"
        assert by_id["mis:G1"]["guardian_of"] == "mis:P1"
        assert "mis:G6" not in by_id
        book.ok("export", os.fspath(out), "--at", when(25, 9), "--departed", "--force")
        with out.open(encoding="utf-8-sig", newline="") as f:
            assert "mis:G6" in {r["contact_id"] for r in csv.DictReader(f)}

    def test_cannot_write(self, book: Cli) -> None:
        """An export into a folder that does not exist exits 6: it cannot write."""
        ran = book.fails(6, "export", os.fspath(book.root / "no-such-folder" / "book.csv"))
        assert "cannot write" in one_error_line(ran)


class TestExportTargets:
    """An export never replaces the book folder's own files, nor any file unless --force."""

    EXPORTS = (("export",), ("address-book", "export"))

    @pytest.mark.parametrize("command", EXPORTS)
    def test_the_book_s_own_files_are_refused(self, book: Cli, command: tuple[str, ...]) -> None:
        """An export onto any file of the book folder, by any path or link, is refused."""
        book.ok("send", "mis:G1", "--id", "m1", "--body", "x", "--deliver", "--at", when(24, 9))
        (sent,) = outbox_files(book)
        link = book.exports / "innocent.csv"
        link.symlink_to(book.folder / "policy.toml")
        before = files_of(book.folder)
        targets = [
            *(book.folder / name for name in ("policy.toml", "book.sqlite", "suppression.key")),
            book.folder / "deliveries.jsonl",
            book.folder / "audit" / "m1.json",
            book.folder / "audit" / "new.csv",
            sent,
            book.exports / ".." / "book" / "book.sqlite",
            link,
        ]
        for target in targets:
            for force in ((), ("--force",)):
                ran = book.fails(2, *command, os.fspath(target), *force)
                assert "the book folder's own files" in one_error_line(ran), target
        assert files_of(book.folder) == before
        assert link.is_symlink()

    @pytest.mark.parametrize("command", EXPORTS)
    def test_a_key_kept_elsewhere_and_a_json_store_are_the_book_s(
        self, cli: Cli, command: tuple[str, ...]
    ) -> None:
        """A key kept outside the folder, and book.json, are the book's own: never replaced."""
        key = cli.root / "school.key"
        cli.environ["SOURCETRUTH_SUPPRESSION_KEY_FILE"] = os.fspath(key)
        cli.ok("init", "--store", "json")
        before = key.read_bytes(), (cli.folder / "book.json").read_bytes()
        for target in (key, cli.folder / "book.json"):
            one_error_line(cli.fails(2, *command, os.fspath(target), "--force"))
        assert (key.read_bytes(), (cli.folder / "book.json").read_bytes()) == before

    @pytest.mark.parametrize("command", EXPORTS)
    def test_an_existing_file_is_replaced_only_with_force(
        self, book: Cli, command: tuple[str, ...]
    ) -> None:
        """An existing file is replaced only with --force, and a folder never."""
        out = book.exports / "mine.txt"
        out.write_text("my own notes\n", encoding="utf-8")
        ran = book.fails(2, *command, os.fspath(out))
        assert "already exists: add --force" in one_error_line(ran)
        assert out.read_text(encoding="utf-8") == "my own notes\n"
        book.ok(*command, os.fspath(out), "--force")
        assert out.read_text(encoding="utf-8-sig") != "my own notes\n"
        assert "is a folder" in one_error_line(book.fails(2, *command, os.fspath(book.exports)))

    @pytest.mark.parametrize("command", EXPORTS)
    @pytest.mark.parametrize("victim", ["book.sqlite", "policy.toml"])
    def test_a_link_planted_at_a_temporary_name_is_never_followed(
        self, book: Cli, command: tuple[str, ...], victim: str
    ) -> None:
        """F1: links at any name beside the export (the old fixed ``.partial`` among them) stay."""
        out = book.exports / "week.csv"
        planted = [
            book.exports / f"{out.name}{suffix}" for suffix in (".partial", ".tmp", ".new", "~")
        ]
        for link in planted:
            link.symlink_to(book.folder / victim)
        before = files_of(book.folder)
        book.ok(*command, os.fspath(out))
        assert files_of(book.folder) == before
        assert all(link.is_symlink() for link in planted)
        assert out.is_file()
        assert not out.is_symlink()
        book.ok("contacts")

    @pytest.mark.parametrize("command", EXPORTS)
    def test_an_export_is_readable_by_its_owner_only(
        self, book: Cli, command: tuple[str, ...]
    ) -> None:
        """F7: an export holds the book's personal data, whatever the umask says."""
        out = book.exports / "everyone.csv"
        old = os.umask(0o022)
        try:
            book.ok(*command, os.fspath(out))
        finally:
            os.umask(old)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
