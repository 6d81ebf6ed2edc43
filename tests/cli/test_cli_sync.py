"""``sync``: a source's export merged, held by the guard, confirmed, rejected; its times."""

from __future__ import annotations

import io
import os
import shlex
from pathlib import Path

from cli_helpers import (
    TRUNCATED,
    USER,
    Cli,
    Ran,
    files_of,
    guardian,
    iso,
    moment,
    on_both,
    one_error_line,
    school,
    when,
)

from sourcetruth.cli import main


class TestSync:
    def test_applied(self, cli: Cli) -> None:
        """A sync applies the export, lists the new contacts and keeps the run in the journal."""
        cli.ok("init")
        ran = cli.sync(cli.export("tue"), 24)
        assert ran.out.startswith("mis sync 1: applied; 13 new, ")
        assert "  new mis:G1: Gita Okafor (guardian)\n" in ran.out
        assert ran.err == ""
        runs = cli.journal()
        assert [(r["status"], r["at"], r["by"]) for r in runs] == [("applied", iso(24, 2), USER)]
        journal = cli.ok("journal").out
        assert "Tue 24 Nov 2026 02:00  applied   mis sync 1 by office: 13 new" in journal

    def test_by_and_book_from_the_environment(self, cli: Cli) -> None:
        """--by names who synced, and SOURCETRUTH_BOOK finds the book without --book."""
        cli.ok("init")
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [
                "sync",
                "mis",
                cli.export("tue"),
                "--at",
                when(24, 2),
                "--extracted-at",
                when(24, 1),
                "--by",
                "night job",
            ],
            out=out,
            err=err,
            environ={"SOURCETRUTH_BOOK": os.fspath(cli.folder)},
        )
        assert code == 0, err.getvalue()
        assert [r["by"] for r in cli.journal()] == ["night job"]

    def test_applying_the_same_export_again_changes_nothing(self, book: Cli) -> None:
        """The same export again is no-change; the same data read a night later changes nothing."""
        before = book.show("mis:G1", when(24, 9))
        again = book.sync(book.export("tue"), 24, 2)  # the same export, read at the same time
        assert again.out.startswith("mis sync: no-change; 0 new, 0 field change(s), 0 departed")
        later = book.sync(book.export("wed"), 25)  # the same data, read the next night
        assert later.out.startswith("mis sync 2: applied; 0 new, 0 field change(s), 0 departed")
        assert [r["status"] for r in book.journal()] == ["applied", "no-change", "applied"]
        assert book.show("mis:G1", when(24, 9)) == before

    def test_the_export_s_files_must_not_be_newer_than_the_sync(self, book: Cli) -> None:
        """Export files written after the sync's time are refused, asking for --extracted-at."""
        ran = book.fails(2, "sync", "mis", book.export("wed"), "--at", when(25, 2))
        line = one_error_line(ran)
        assert "after the sync's time (Wed 25 Nov 2026 02:00)" in line
        assert "--extracted-at" in line

    def test_dry_run_writes_nothing(self, book: Cli) -> None:
        """sync --dry-run shows the change it would make and writes no file, run or value."""
        changed = school(G1=guardian("G1", "Gita", "Okafor", "900901", "P1"))
        path = book.export("wed", changed)
        before = files_of(book.folder)
        ran = book.ok(
            "sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1), "--dry-run"
        )
        assert ran.out.startswith("mis sync 2: dry run, would apply; 0 new, 1 field change(s)")
        assert "changed mis:G1 phones: 07700 900101 (mobile) -> 07700 900901 (mobile)" in ran.out
        assert "Nothing was written (dry run)." in ran.out
        assert files_of(book.folder) == before
        assert len(book.journal()) == 1
        phones = book.show("mis:G1", when(25, 9))["data"]["phones"]
        assert [p["number"] for p in phones] == ["07700 900101"]

    def test_dry_run_json(self, book: Cli) -> None:
        """sync --dry-run --json gives each change's before, after and provenance; keeps no run."""
        changed = school(G1=guardian("G1", "Gita", "Okafor", "900901", "P1"))
        ran = book.ok(
            "sync",
            "mis",
            book.export("wed", changed),
            "--at",
            when(25, 2),
            "--extracted-at",
            when(25, 1),
            "--dry-run",
            "--json",
        )
        told = ran.json()
        assert told["dry_run"] is True
        assert told["confirm_command"] is None
        (change,) = told["report"]["changes"]
        assert change["contact_id"] == "mis:G1"
        assert change["before"] == [{"number": "07700 900101", "type": "mobile"}]
        assert change["after"] == [{"number": "07700 900901", "type": "mobile"}]
        assert change["after_provenance"]["read_at"] == iso(25, 1)
        assert len(book.journal()) == 1

    @on_both
    def test_a_truncated_export_is_held_then_confirmed_as_printed(self, book: Cli) -> None:
        """A truncated export is held (exit 4, nobody departs); the printed command applies it."""
        gone = tuple(TRUNCATED)
        path = book.export("wed-truncated", school(**TRUNCATED))
        ran = book.fails(
            4, "sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1, 30)
        )
        assert "HELD: 6 of 13 present records of mis would depart" in ran.out
        for key in gone:
            assert f"  would depart mis:{key}\n" in ran.out
        assert "by the departure guard: nothing was applied" in one_error_line(ran)
        contacts = book.ok("contacts", "--at", when(25, 9), "--json").json()
        assert not any(c["departed"] for c in contacts)
        assert [r["status"] for r in book.journal()] == ["applied", "held"]

        lines = ran.out.splitlines()
        command = lines[lines.index("  Check the export. If it is right, apply it with:") + 1]
        words = shlex.split(command)
        assert words[0] == "sourcetruth"
        out, err = io.StringIO(), io.StringIO()
        code = main(words[1:], out=out, err=err, environ=book.environ)
        assert code == 0, err.getvalue()
        assert "6 departed" in out.getvalue()
        departed = book.ok("contacts", "--departed", "--at", when(25, 9), "--json").json()
        assert sorted(c["id"] for c in departed if c["departed"]) == sorted(
            f"mis:{k}" for k in gone
        )

    def test_a_token_is_refused_once_the_book_changed(self, book: Cli) -> None:
        """F13: an address-book add after a hold refuses the printed token; a new sync gives one."""
        path = book.export("wed-truncated", school(**TRUNCATED))
        args = ("sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1, 30))
        command = confirm_command(book.fails(4, *args))
        book.ok("address-book", "add", "--given", "Robin", "--at", when(25, 2))
        line = one_error_line(run_printed(book, command, expect=2))
        assert "the book has changed since the sync was held" in line
        assert line.endswith("run the sync again without --confirm for a new token")
        departed = book.ok("contacts", "--departed", "--at", when(25, 9), "--json").json()
        assert not any(c["departed"] for c in departed)
        fresh = confirm_command(book.fails(4, *args[:3], "--at", when(25, 2, 10), *args[5:]))
        assert fresh != command
        assert "6 departed" in run_printed(book, fresh, expect=0).out

    def test_a_wrong_token_is_refused(self, book: Cli) -> None:
        """--confirm with a token of no held sync exits 2 and applies nothing."""
        path = book.export("wed-truncated", school(**TRUNCATED))
        args = ("sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1))
        book.fails(4, *args)
        ran = book.fails(2, *args, "--confirm", "0" * 64)
        assert "another snapshot" in one_error_line(ran)
        assert [r["status"] for r in book.journal()] == ["applied", "held"]

    def test_held_json_carries_the_command(self, book: Cli) -> None:
        """A held sync's --json has the departures, the token and the command that confirms it."""
        path = book.export("wed-truncated", school(**TRUNCATED))
        ran = book.fails(
            4,
            "sync",
            "mis",
            path,
            "--at",
            when(25, 2),
            "--extracted-at",
            when(25, 1),
            "--json",
        )
        told = ran.json()
        held = told["report"]["held"]
        assert told["report"]["status"] == "held"
        assert held["departures"] == 6
        assert held["token"] in told["confirm_command"]
        assert "mis:G5" in held["departing"]
        one_error_line(ran)

    def test_a_dry_run_that_would_be_held(self, book: Cli) -> None:
        """A dry run of a truncated export says it would be held (exit 4) and keeps no run."""
        path = book.export("wed-truncated", school(**TRUNCATED))
        ran = book.fails(
            4, "sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1), "--dry-run"
        )
        assert "would be held" in one_error_line(ran)
        assert [r["status"] for r in book.journal()] == ["applied"]

    def test_a_rejected_file_names_file_and_line_never_the_value(self, book: Cli) -> None:
        """A rejected CSV exits 3 naming file, line and field, never a value; nothing is written."""
        book.enable_import()
        path = book.csv(
            "parents.csv",
            "Id,First name,Surname,Mobile,Email\n"
            "C1,Xanthe,Okonkwo,4.47700900555E+11,xanthe@parent.test\n"
            "C2,Yusuf\n",
        )
        before = files_of(book.folder)
        ran = book.fails(
            3, "sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9)
        )
        first, *problems = ran.err_lines
        assert first.startswith("sourcetruth: parents.csv: 2 of 2 rows rejected")
        assert "nothing from this file was applied" in first
        assert len(problems) == 2
        assert "file parents.csv, line 2, field Mobile" in problems[0]
        assert "file parents.csv, line 3" in problems[1]
        for value in ("Xanthe", "Okonkwo", "900555", "4.477", "xanthe@", "Yusuf"):
            assert value not in ran.err
            assert value not in ran.out
        assert files_of(book.folder) == before

    def test_an_import_through_the_mapping(self, book: Cli) -> None:
        """An import is read through its mapping; a duplicate header is a notice on stderr."""
        book.enable_import()
        path = book.csv(
            "parents.csv",
            "Id,First name,Surname,Mobile,Email,Notes,Notes\n"
            "C1,Xanthe,Okonkwo,07700 900555,xanthe@parent.test,,\n",
        )
        ran = book.ok("sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9))
        assert "import sync 2: applied; 1 new" in ran.out
        # A tolerated oddity is a notice on stderr, never silent and never an error.
        (notice,) = ran.err_lines
        assert notice.startswith("notice: parents.csv:1 [column 6]: ")
        assert notice.endswith("(duplicate-header)")
        shown = book.show("import:C1", when(24, 11))
        assert shown["data"]["given_name"] == "Xanthe"
        assert shown["provenance"]["phones"]["source"] == "import"

    def test_csv_without_a_mapping(self, book: Cli) -> None:
        """Syncing a CSV source that has no mapping is a usage error asking for 'mapping'."""
        path = book.csv("parents.csv", "Id\nC1\n")
        ran = book.fails(
            2, "sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9)
        )
        assert "needs 'mapping'" in one_error_line(ran)

    def test_unknown_source(self, book: Cli) -> None:
        """A source the policy does not name is refused, listing the sources there are."""
        ran = book.fails(2, "sync", "nosuch", book.export("tue"), "--at", when(25, 2))
        line = one_error_line(ran)
        assert "no source named 'nosuch'" in line
        assert "mis, import" in line

    def test_the_address_book_is_not_synced(self, book: Cli) -> None:
        """sync address-book is refused, pointing to 'address-book import'."""
        ran = book.fails(2, "sync", "address-book", book.export("tue"))
        assert "address-book import" in one_error_line(ran)

    def test_a_missing_export(self, book: Cli) -> None:
        """An export path that does not exist is a usage error."""
        ran = book.fails(2, "sync", "mis", os.fspath(book.exports / "gone"), "--at", when(25, 2))
        assert "there is no file or folder" in one_error_line(ran)

    def test_an_unreadable_export_is_the_input_s_fault(self, book: Cli) -> None:
        """A broken zip is the input's fault: exit 3, naming the zip."""
        path = book.exports / "export.zip"
        path.write_bytes(b"PK\x03\x04 not really a zip")
        ran = book.fails(
            3, "sync", "mis", os.fspath(path), "--at", when(25, 2), "--extracted-at", when(25, 1)
        )
        assert "zip" in one_error_line(ran)

    def test_an_unknown_adapter(self, book: Cli) -> None:
        """--adapter naming no adapter is blamed on the option, listing the adapters there are."""
        ran = book.fails(2, "sync", "mis", book.export("tue"), "--adapter", "hartley")
        line = one_error_line(ran)
        assert line.startswith(
            "sourcetruth: --adapter: there is no source adapter called 'hartley'"
        )
        assert "oneroster" in line
        assert "policy.toml" not in line  # the option was wrong, not the policy

    def test_an_export_older_than_the_last_one(self, book: Cli) -> None:
        """An export read before the last one applied is refused with exit 3."""
        changed = school(G1=guardian("G1", "Gita", "Okafor", "900901", "P1"))
        ran = book.fails(
            3,
            "sync",
            "mis",
            book.export("old", changed),
            "--at",
            when(25, 2),
            "--extracted-at",
            when(23, 1),
        )
        assert "read before the last one" in one_error_line(ran)

    def test_a_time_before_the_book(self, book: Cli) -> None:
        """A sync at a time before the book's latest change is refused: time goes forward."""
        ran = book.fails(
            2, "sync", "mis", book.export("tue"), "--at", when(23, 2), "--extracted-at", when(23, 1)
        )
        assert "forward in time" in one_error_line(ran)

    def test_times_with_an_offset(self, cli: Cli) -> None:
        """--at and --extracted-at with an offset or Z are the instants they name."""
        cli.ok("init")
        cli.ok(
            "sync",
            "mis",
            cli.export("tue"),
            "--at",
            "2026-11-24T03:00+01:00",
            "--extracted-at",
            "2026-11-24T01:30:00Z",
        )
        (run,) = cli.journal()
        assert run["at"] == iso(24, 2)
        provenance = cli.show("mis:G1", when(24, 9))["provenance"]["phones"]
        assert provenance["read_at"] == iso(24, 1, 30)

    def test_the_extraction_time_defaults_to_the_files(self, cli: Cli) -> None:
        """Without --extracted-at, an export was read when its newest file was written."""
        cli.ok("init")
        path = Path(cli.export("tue"))
        stamp = moment(24, 1, 15).timestamp()
        for file in path.iterdir():
            os.utime(file, (stamp, stamp))
        cli.ok("sync", "mis", os.fspath(path), "--at", when(24, 2))
        provenance = cli.show("mis:G1", when(24, 9))["provenance"]["phones"]
        assert provenance["read_at"] == iso(24, 1, 15)

    def test_a_wrong_token_says_how_to_get_a_new_one(self, book: Cli) -> None:
        """A wrong --confirm token's error says: sync again without --confirm for a new token."""
        path = book.export("wed-truncated", school(**TRUNCATED))
        args = ("sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1))
        book.fails(4, *args)
        line = one_error_line(book.fails(2, *args, "--confirm", "0" * 64))
        assert line.endswith("run the sync again without --confirm for a new token")

    def test_a_held_run_says_how_many_would_depart(self, book: Cli) -> None:
        """A held sync's report and journal line say how many contacts would depart."""
        path = book.export("wed-truncated", school(**TRUNCATED))
        ran = book.fails(4, "sync", "mis", path, "--at", when(25, 2), "--extracted-at", when(25, 1))
        assert ran.out.startswith("mis sync: held; 0 new, 0 field change(s), 6 would depart, ")
        line = book.ok("journal", "--last", "1").out
        assert line.endswith("held      mis sync by office: 0 new, 0 field change(s), "
                             "6 would depart, 0 returned\n")  # fmt: skip


def confirm_command(ran: Ran) -> list[str]:
    """The words of the command a held sync printed to confirm it."""
    lines = ran.out.splitlines()
    return shlex.split(lines[lines.index("  Check the export. If it is right, apply it with:") + 1])


def run_printed(book: Cli, words: list[str], *, expect: int) -> Ran:
    """Run a printed ``sourcetruth ...`` command as it was printed; it ends with *expect*."""
    assert words[0] == "sourcetruth"
    out, err = io.StringIO(), io.StringIO()
    code = main(words[1:], out=out, err=err, environ=book.environ)
    ran = Ran(code, out.getvalue(), err.getvalue())
    assert code == expect, (code, ran.out, ran.err)
    return ran
