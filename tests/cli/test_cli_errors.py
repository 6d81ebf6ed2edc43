"""How the command fails: one line on stderr, and an exit status for every kind of failure."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from cli_helpers import (
    SMS_TOKEN,
    Cli,
    ClosedPipe,
    Gateway,
    Ran,
    one_error_line,
    school,
    use_gateway,
    when,
)

import sourcetruth.cli as cli_package
from sourcetruth.cli import EXIT_CODES, main
from sourcetruth.cli import _look as cli_look
from sourcetruth.cli._errors import USAGE, code_of
from sourcetruth.exceptions import UnknownContactError, UnknownGroupError, UnknownRecordError


class TestErrors:
    def test_not_a_book_folder(self, cli: Cli) -> None:
        """A folder that is not a book exits 2, pointing to 'sourcetruth init'; a typo, not."""
        cli.folder.mkdir()
        line = one_error_line(cli.fails(2, "contacts"))
        assert "holds no book" in line
        assert "sourcetruth --book" in line
        assert " init'" in line
        cli.folder.rename(cli.root / "elsewhere")
        line = one_error_line(cli.fails(2, "contacts"))
        assert "does not exist" in line
        assert "init" not in line

    def test_a_newer_schema_version(self, book: Cli) -> None:
        """A book of a newer schema exits 6 naming the version, and no command writes to it."""
        file = book.folder / "book.sqlite"
        with sqlite3.connect(file) as db:
            db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
        db.close()
        before = file.read_bytes()
        line = one_error_line(book.fails(6, "contacts"))
        assert "newer" in line
        assert "99" in line
        book.fails(
            6, "sync", "mis", book.export("wed"), "--at", when(25, 2), "--extracted-at", when(25, 1)
        )
        assert file.read_bytes() == before

    def test_argument_mistakes_are_one_line_and_exit_2(self, book: Cli) -> None:
        """An unknown option, a missing command, a bad choice, count or time: one line, exit 2."""
        for args, message in (
            (("contacts", "--bogus"), "unrecognized arguments: --bogus"),
            ((), "required: COMMAND"),
            (("address-book",), "required: ACTION"),
            (("contacts", "--role", "headteacher"), "invalid choice: 'headteacher'"),
            (("journal", "--last", "0"), "'0' is not a count"),
            (("contacts", "--at", "yesterday"), "'yesterday' is not a time"),
        ):
            assert message in one_error_line(book.fails(2, *args))

    def test_help_in_process(self, cli: Cli) -> None:
        """--help prints on the stream given and exits 0, with the exit codes in its epilog."""
        out, err = io.StringIO(), io.StringIO()
        assert main(["--help"], out=out, err=err, environ={}) == 0
        assert "usage: sourcetruth" in out.getvalue()
        assert "Exit codes: 0 done;" in out.getvalue()
        out = io.StringIO()
        assert main(["sync", "--help"], out=out, err=err, environ={}) == 0
        assert "--extracted-at" in out.getvalue()
        assert err.getvalue() == ""

    def test_options_after_the_command(self, book: Cli) -> None:
        """--book and the other common options work after the command's name."""
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["contacts", "--book", os.fspath(book.folder), "--role", "staff", "--json"],
            out=out,
            err=err,
            environ={},
        )
        assert code == 0, err.getvalue()
        assert [c["id"] for c in json.loads(out.getvalue())] == ["mis:S1"]

    def test_a_bug_is_one_line_without_its_message(
        self, book: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unexpected error is one line naming its type, never its message."""

        def broken(*args: object, **kwargs: object) -> object:
            raise RuntimeError("Zebedee Quill 07700 900106")

        monkeypatch.setattr(cli_look, "contacts_at", broken)
        ran = book.fails(1, "contacts")
        line = one_error_line(ran)
        assert line == "sourcetruth: unexpected RuntimeError; run again with --debug to see where"

    def test_interrupted(self, book: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """Ctrl-C during a command is 'sourcetruth: interrupted' and exit 130."""

        def interrupted(*args: object, **kwargs: object) -> object:
            raise KeyboardInterrupt

        monkeypatch.setattr(cli_look, "contacts_at", interrupted)
        assert one_error_line(book.fails(130, "contacts")) == "sourcetruth: interrupted"

    def test_library_log_lines_show_with_debug(
        self, book: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The library's log lines show only with --debug, and no handler is left behind."""

        def warns(*args: object, **kwargs: object) -> list[object]:
            logging.getLogger("sourcetruth.adapters.registry").warning("plugin %s skipped", "x")
            return []

        monkeypatch.setattr(cli_look, "contacts_at", warns)
        # The command says what went wrong itself; the library's log shows with --debug.
        assert book.ok("contacts").err == ""
        ran = book.ok("contacts", "--debug")
        assert ran.err == "sourcetruth: warning: plugin x skipped\n"
        assert logging.getLogger("sourcetruth").handlers == []


def trigger(code: int, cli: Cli, gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Ran:
    """A command that ends with *code*."""
    cli.ok("init")
    if code == 0:
        return cli("policy")
    if code == 1:
        monkeypatch.setattr(cli_look, "contacts_at", lambda *a, **k: 1 / 0)
        return cli("contacts")
    if code == 2:
        return cli("show", "mis:NOBODY")
    if code == 3:
        cli.enable_import()
        bad = cli.csv("bad.csv", "Id,First name\nC1\n")
        return cli("sync", "import", bad, "--at", when(24, 9), "--extracted-at", when(24, 8))
    if code == 4:
        cli.sync(cli.export("tue"), 24)
        few = cli.export("few", school()[:2])
        return cli("sync", "mis", few, "--at", when(25, 2), "--extracted-at", when(25, 1))
    if code == 5:
        use_gateway(cli, gateway)
        cli.sync(cli.export("tue"), 24)
        args = ("send", "mis:G1", "--channel", "sms", "--id", "m", "--body", "x", "--deliver")
        return cli(*args, environ={"SCHOOL_SMS_TOKEN": SMS_TOKEN})
    if code == 6:
        (cli.folder / "book.sqlite").write_bytes(b"this is not a database at all" * 100)
        return cli("contacts")
    if code == 130:
        monkeypatch.setattr(cli_look, "contacts_at", _interrupt)
        return cli("contacts")
    if code == 141:  # `sourcetruth contacts | head -0`
        err = io.StringIO()
        args = ["--book", os.fspath(cli.folder), "contacts"]
        status = main(args, out=ClosedPipe(), err=err, environ=cli.environ)
        return Ran(status, "", err.getvalue())
    raise AssertionError(code)


def _interrupt(*args: object, **kwargs: object) -> object:
    raise KeyboardInterrupt


@pytest.mark.parametrize("code", sorted(EXIT_CODES))
def test_every_exit_code_is_produced(
    code: int, cli: Cli, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each status of EXIT_CODES, from a command that really ends with it."""
    ran = trigger(code, cli, gateway, monkeypatch)
    assert ran.code == code, (ran.out, ran.err)
    assert "Traceback" not in ran.err
    if code in (0, 141):
        assert ran.err == ""
    elif code == 3:
        assert ran.err_lines[0].startswith("sourcetruth: ")
    else:
        one_error_line(ran)


class TestCommandLineMistakes:
    def test_two_feeds_takes_no_time(self, book: Cli) -> None:
        """report two-feeds takes no --at: the book's links have no past."""
        ran = book.fails(2, "report", "two-feeds", "--at", when(24, 9))
        assert "unrecognized arguments: --at" in one_error_line(ran)

    @pytest.mark.parametrize(("name", "says"), [("", "needs a name"), ("Year:9", "no ':'")])
    def test_a_group_name_that_could_never_be_named(self, book: Cli, name: str, says: str) -> None:
        """A group name that is empty or holds ':' is refused, and no group is made."""
        ran = book.fails(2, "group", "set", name, "--member", "mis:G1", "--at", when(24, 9))
        assert says in one_error_line(ran)
        assert book.ok("groups", "--json").json() == []

    def test_a_group_of_unknown_members_names_them_plainly(self, book: Cli) -> None:
        """A group's unknown members are named as typed, in order, the first with its nearest."""
        ran = book.fails(
            2, "group", "set", "X", "--member", "NOPE", "--member", "mis:G99", "--at", when(24, 9)
        )
        line = one_error_line(ran)
        assert line.startswith("sourcetruth: the book holds no contact 'NOPE' (an id is SOURCE:KEY")
        assert line.endswith("; nor 'mis:G99'")

    def test_max_priority_is_from_1(self, book: Cli) -> None:
        """--max-priority 0 is refused: a count starts at 1."""
        ran = book.fails(2, "recipients", "--year", "9", "--guardians", "--max-priority", "0")
        assert "'0' is not a count" in one_error_line(ran)

    def test_an_empty_message_id(self, book: Cli) -> None:
        """An empty --id is refused, naming the option."""
        ran = book.fails(2, "send", "mis:G1", "--id", "", "--body", "x", "--at", when(24, 9))
        assert one_error_line(ran).startswith("sourcetruth: --id: ")

    def test_body_and_body_file_are_one_or_the_other(self, book: Cli) -> None:
        """--body and --body-file together are refused."""
        letter = book.exports / "letter.txt"
        letter.write_text("From the file", encoding="utf-8")
        ran = book.fails(
            2, "send", "mis:G1", "--id", "m", "--body", "x", "--body-file", os.fspath(letter)
        )
        assert "not allowed with argument --body" in one_error_line(ran)

    @pytest.mark.parametrize(
        "args",
        [
            ("send", "mis:G1", "--id", " ", "--body", "x"),
            ("send", "mis:G1", "--id", "m", "--body", " "),
            ("send", "mis:G1", "--id", "m", "--body", "x", "--channel", "sms", "--channel", "sms"),
            ("recipients", "mis:"),
            ("recipients", ":x"),
            ("recipients", ""),
            ("contacts", "--at", "0001-01-01"),
            ("contacts", "--at", "9999-12-31T23:59"),
            ("group", "set", "X", "--role", "staff", "--guardians"),
            ("group", "set", "X", "--member", ""),
            ("address-book", "add", "--key", "", "--given", "X"),
            ("address-book", "add", "--key", "a:b", "--given", "X"),
            ("address-book", "add", "--given", "X", "--mobile", ""),
            ("address-book", "edit", "mis:G1", "--email", " "),
            ("override", "set", "mis:G1", "emails", ""),
            ("override", "set", "mis:G1", "role", "boss"),
            ("link", "", "mis:G1"),
            ("unlink", "nope"),
            ("show", ""),
            ("explain", "", "emails"),
            ("why", "", "mis:G1"),
            ("erase", "nobody:x", "--yes"),
            ("when", "nope"),
            ("export", ""),
        ],
    )
    def test_no_input_is_a_bug(self, book: Cli, args: tuple[str, ...]) -> None:
        """Whatever is typed, a mistake is a one-line usage error, never 'unexpected'."""
        timed = args[0] not in ("why", "when") and "--at" not in args
        ran = book.fails(2, *args, *(("--at", when(24, 9)) if timed else ()))
        assert "unexpected" not in one_error_line(ran)


class TestTypedErrors:
    @pytest.mark.parametrize("kind", [UnknownContactError, UnknownGroupError, UnknownRecordError])
    def test_a_name_the_book_lacks_is_a_usage_error_by_its_type(self, kind: type) -> None:
        """A not-found error is status 2 by its type, whatever its text says."""
        assert code_of(kind("anything at all")) == USAGE
        assert code_of(kind("")) == USAGE

    def test_no_handler_reads_an_error_s_text(self) -> None:
        """No `except ... as e` in cli/ compares or searches the text of what it caught.

        The command tells errors apart by type and attributes (ERROR_CODES), never
        by message: a message may change, or be another library's.
        """
        found = []
        for path in sorted(Path(cli_package.__file__).parent.glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for handler in ast.walk(tree):
                if not isinstance(handler, ast.ExceptHandler) or handler.name is None:
                    continue
                found += [
                    f"{path.name}:{node.lineno}"
                    for statement in handler.body
                    for node in ast.walk(statement)
                    if _reads_text_of(node, handler.name)
                ]
        assert found == []


#: The string methods that look into a text.
_SEARCHES = {"startswith", "endswith", "find", "index", "count", "search", "match", "fullmatch"}
#: An error's attributes that are text, not a typed answer.
_TEXTS = {"args", "message", "reason", "strerror"}


def _reads_text_of(node: ast.AST, name: str) -> bool:
    """Whether *node* compares or searches text made of the caught error *name*.

    A typed attribute (``error.latest``, ``error.code``) may be compared; the
    error itself, ``str(error)`` and its text attributes may not.
    """
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr not in _SEARCHES:
            return False
        operands = [node.func.value, *node.args]
    else:
        return False
    return any(_text_of(operand, name) for operand in operands)


def _text_of(node: ast.AST, name: str) -> bool:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id == name and node.attr in _TEXTS
    if isinstance(node, ast.Name):
        return node.id == name
    return any(_text_of(child, name) for child in ast.iter_child_nodes(node))


def test_the_text_check_finds_what_it_looks_for() -> None:
    """The check above flags text read off a caught error, and lets typed attributes be."""
    flagged = (
        "str(e).startswith('the book holds no')",
        "'no contact' in str(e)",
        "e.args[0] == 'x'",
        "re.search('no', e.message)",
    )
    for text in flagged:
        assert any(_reads_text_of(n, "e") for n in ast.walk(ast.parse(text))), text
    for text in ("e.code == 2", "e.latest > at", "isinstance(e, OSError)"):
        assert not any(_reads_text_of(n, "e") for n in ast.walk(ast.parse(text))), text
