"""What a hostile feed cannot do through the command: drive the terminal, or reach an error line.

A name or an id read from an export may hold terminal escape sequences, a
carriage return, a Unicode bidi override or a line break: printed raw, they
would clear the screen, retitle the terminal, or forge a line of output. The
text output shows each such character as an escape; ``--json`` stays JSON.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import unicodedata
from pathlib import Path

import pytest
from cli_helpers import Cli, Ran, guardian, one_error_line, school, when

import sourcetruth.cli as cli_package
from sourcetruth.adapters.sources.base import Notice
from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import complaint
from sourcetruth.cli._sources import notices
from sourcetruth.exceptions import RejectedFileError, SourceDataError

#: A given name that clears the screen, retitles the terminal, returns the cursor,
#: reverses the text after it, then forges a line of ``contacts`` output.
EVIL_GIVEN = (
    "Eve\x1b[2J\x1b[H\x1b]0;pwned\x07\rmis:G2  Hugh\u202eevil\nmis:FAKE  Forged Line\x9b31m\x7f"
)
EVIL_FAMILY = "Okafor\u2066x\u2069\u2028\t"
#: A record key (so a contact id) that turns the rest of the terminal red.
EVIL_KEY = "G\x1b[31mX"
EVIL_ID = f"mis:{EVIL_KEY}"
#: The Unicode bidi embeddings, overrides and isolates, and the line and paragraph separators.
BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)}


def unsafe(text: str) -> list[str]:
    """The characters of *text* a terminal would act on, other than the line breaks."""
    return [c for c in text if c != "\n" and (unicodedata.category(c) == "Cc" or c in BIDI)]


def assert_safe(ran: Ran) -> None:
    assert unsafe(ran.out) == [], ran.out
    assert unsafe(ran.err) == [], ran.err


def hostile_export(cli: Cli) -> str:
    """An MIS export naming a guardian and a record key with control characters."""
    evil = guardian("G1", EVIL_GIVEN, EVIL_FAMILY, "900101", "P1", email="eve@parent.test")
    twin = guardian(EVIL_KEY, "Kay", "Esc", "900109", "P2", email="kay@parent.test")
    return cli.export("tue", [*school(G1=evil), twin])


@pytest.fixture
def hostile(cli: Cli) -> Cli:
    """A book whose MIS sync read the hostile export."""
    cli.ok("init")
    cli.sync(hostile_export(cli), 24)
    return cli


class TestTerminalOutput:
    def test_the_sync_that_reads_it_prints_one_line_per_new_contact(self, cli: Cli) -> None:
        """F11: the sync of the hostile export prints its headline and one line per new contact."""
        cli.ok("init")
        ran = cli.sync(hostile_export(cli), 24)
        assert_safe(ran)
        assert len(ran.out.splitlines()) == 1 + 14
        assert "  new mis:G\\x1b[31mX: Kay Esc (guardian)\n" in ran.out

    def test_a_sync_report_escapes_names_and_ids(self, hostile: Cli) -> None:
        """F11: a sync report shows a name's ESC, CR, bidi and newline as escapes, on one line."""
        ran = hostile.ok("sync", "mis", hostile.export("wed"), "--at", when(25, 2), "--dry-run",
                         "--extracted-at", when(25, 1))  # fmt: skip
        assert_safe(ran)
        assert (
            "changed mis:G1 given_name: Eve\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x0dmis:G2" in ran.out
        )
        assert "\\u202eevil\\x0amis:FAKE  Forged Line\\x9b31m\\x7f -> Gita" in ran.out
        assert "departed mis:G\\x1b[31mX" in ran.out

    def test_contacts_has_one_line_per_contact(self, hostile: Cli) -> None:
        """F11: `contacts` prints one line per contact and the total: no forged line."""
        ran = hostile.ok("contacts", "--at", when(24, 9))
        assert_safe(ran)
        lines = ran.out.splitlines()
        assert len(lines) == 14 + 1
        assert not any(line.startswith("mis:FAKE") for line in lines)
        assert "mis:G\\x1b[31mX" in ran.out
        assert "Okafor\\u2066x\\u2069" in ran.out

    @pytest.mark.parametrize(
        "command",
        [("show", "{}"), ("explain", "{}", "given_name"), ("explain", "{}", "family_name")],
    )
    def test_show_and_explain_print_as_many_lines_as_for_a_plain_name(
        self, hostile: Cli, command: tuple[str, ...]
    ) -> None:
        """F11: `show` and `explain` of a hostile contact print as many lines as of a plain one."""
        for hostile_id in ("mis:G1", EVIL_ID):
            ran = hostile.ok(*(w.format(hostile_id) for w in command), "--at", when(24, 9))
            plain = hostile.ok(*(w.format("mis:G2") for w in command), "--at", when(24, 9))
            assert_safe(ran)
            assert len(ran.out.splitlines()) == len(plain.out.splitlines())

    def test_recipients_journal_and_reports_are_safe(self, hostile: Cli) -> None:
        """F11: the other listings that print ids or names hold no raw control character."""
        for command in (
            ("recipients", "--year", "9", "--guardians", "--channel", "sms"),
            ("recipients", EVIL_ID, "mis:G1"),
            ("journal",),
            ("report", "data-quality"),
            ("report", "update-at-source"),
        ):
            ran = hostile.ok(*command, *(() if command == ("journal",) else ("--at", when(24, 9))))
            assert_safe(ran)
        ran = hostile.ok("recipients", EVIL_ID, "--at", when(24, 9))
        assert "(mis:G\\x1b[31mX)" in ran.out
        assert len(ran.out.splitlines()) == 3

    def test_an_override_of_a_hostile_value_is_safe(self, hostile: Cli) -> None:
        """F11: an override report quotes the hostile value it replaced as escapes."""
        ran = hostile.ok("override", "set", EVIL_ID, "given_name", "Kay", "--at", when(24, 10))
        assert_safe(ran)
        ran = hostile.ok("override", "set", "mis:G1", "given_name", "Eve", "--at", when(24, 10))
        assert_safe(ran)
        assert "(was Eve\\x1b[2J" in ran.out
        assert len(ran.out.splitlines()) == 3

    def test_an_error_line_escapes_what_it_echoes(self, hostile: Cli) -> None:
        """F11: an error that echoes a typed id with ESC and a newline stays one escaped line."""
        ran = hostile.fails(2, "recipients", "mis:\x1b]0;x\x07\nsourcetruth: forged")
        assert_safe(ran)
        assert "'mis:\\x1b]0;x\\x07\\nsourcetruth: forged'" in one_error_line(ran)


class TestJson:
    def test_json_keeps_the_values_and_escapes_the_controls(self, hostile: Cli) -> None:
        """F11: --json gives the exact values back, every control and bidi character escaped."""
        ran = hostile.ok("contacts", "--at", when(24, 9), "--json")
        assert_safe(ran)
        assert "\\u202e" in ran.out
        assert "\\u001b" in ran.out
        by_id = {c["id"]: c for c in json.loads(ran.out)}
        assert by_id["mis:G1"]["data"]["given_name"] == EVIL_GIVEN
        assert by_id["mis:G1"]["data"]["family_name"] == EVIL_FAMILY
        assert EVIL_ID in by_id

    def test_json_keeps_letters_as_they_are(self, book: Cli) -> None:
        """--json writes accented and non-Latin letters as themselves, not as escapes."""
        book.ok("address-book", "add", "--key", "zoe", "--given", "Zoë", "--family", "Ωmega",
                "--at", when(24, 10))  # fmt: skip
        ran = book.ok("show", "address-book:zoe", "--at", when(24, 11), "--json")
        assert '"given_name": "Zoë"' in ran.out
        assert '"family_name": "Ωmega"' in ran.out


class TestEveryLine:
    def test_a_notice_escapes_what_the_file_said(self) -> None:
        """F11: a notice's field and message from a file reach stderr escaped, on one line."""
        out, err = io.StringIO(), io.StringIO()
        ctx = Context(argparse.Namespace(), out, err, {})
        said = Notice("header-drift", "header '\u202eevil' read as 'x'\nforged", "users.csv", 1,
                      "\x1b]0;pwned\x07")  # fmt: skip
        notices(ctx, [said])
        assert err.getvalue() == (
            "notice: users.csv:1 [\\x1b]0;pwned\\x07]: header '\\u202eevil' read as 'x'\\x0aforged "
            "(header-drift)\n"
        )
        assert ctx.progress("reading \x1b[2Jx.zip").line().startswith("reading \\x1b[2Jx.zip ")

    def test_only_the_escaping_writers_write(self) -> None:
        """F11: the command writes only through say, note, json and the error line (and progress).

        So no line of text output can skip :func:`printable`.
        """
        writers = set()
        for path in sorted(Path(cli_package.__file__).parent.glob("*.py")):
            for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(function, ast.FunctionDef):
                    continue
                for node in ast.walk(function):
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr in {"write", "writelines", "print"}
                    ) or (isinstance(node, ast.Name) and node.id == "print"):
                        writers.add((path.stem, function.name))
        assert writers == {
            ("_context", "say"),
            ("_context", "note"),
            ("_context", "json"),
            ("_main", "_complain"),
            ("_progress", "__exit__"),
            ("_progress", "_run"),
        }


#: A record key that is someone's email address: an id read from a file is personal data.
SECRET_KEY = "jane.doe@home.test"


class TestErrorLines:
    def test_a_rejected_row_names_file_line_and_field_never_its_id(self, cli: Cli) -> None:
        """F12: a bundle rejected for a row's status names file, line and field, not its id."""
        cli.ok("init")
        keyed = guardian(SECRET_KEY, "Jane", "Doe", "900111", "P1", email="jd@parent.test")
        bundle = Path(cli.export("tue", [*school(), keyed]))
        users = bundle / "users.csv"
        text = users.read_text(encoding="utf-8")
        users.write_text(text.replace(f"{SECRET_KEY},,", f"{SECRET_KEY},bogus,"), encoding="utf-8")
        ran = cli.fails(3, "sync", "mis", os.fspath(bundle), "--at", when(24, 2),
                        "--extracted-at", when(24, 1))  # fmt: skip
        assert "(file users.csv, line 15, field status)" in ran.err
        assert SECRET_KEY not in ran.err + ran.out
        assert_safe(ran)

    def test_a_snapshot_the_merge_refuses_names_no_record_key(self) -> None:
        """F12: an error naming a record key read from a file prints its source, not the key."""
        said = complaint(SourceDataError("two records share one key", source="mis", key=SECRET_KEY))
        assert said == "two records share one key (source mis); --debug names the record"
        group = RejectedFileError(
            "users.csv: rows rejected",
            [
                SourceDataError(
                    "bad status", file="users.csv", line=3, field="status", key=SECRET_KEY
                )
            ],
        )
        assert complaint(group).splitlines() == [
            "users.csv: rows rejected",
            "  - bad status (file users.csv, line 3, field status)",
        ]
