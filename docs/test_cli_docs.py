"""The command-line examples of the tutorial, cli.md and the how-to guides run as shown.

In those pages a ```console block is a terminal session. A line starting with
``$ `` is a command; the lines after it, up to the next command or the end of
the block, are what it prints (stdout and stderr together, as a terminal shows
them). A last line ``# exit N`` says the command ends with status N; without
one it must end with 0. The only commands are ``sourcetruth ...`` and
``export NAME=VALUE`` (which sets NAME for the commands after it). Each page's
sessions run in order, in one fresh copy of docs/tutorial/, so a page is one
story. Examples that cannot run here (a real SMTP server, a path on a school's
server) are written in ```sh blocks instead, which are not run.

The only normalisation: the temporary folder's path, should it be printed, is
shown as ``<folder>``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sourcetruth.cli import EXIT_CODES, main

DOCS = Path(__file__).parent
FILES = DOCS / "tutorial"
FENCE = re.compile(r"^```(\S*)\s*$")
EXIT = re.compile(r"^# exit (\d+)$")
EXPORT = re.compile(r"^export ([A-Z_][A-Z0-9_]*)=(\S*)$")


@dataclass
class Command:
    """One ``$ ...`` line of a console block, and what the page says it prints."""

    page: str
    line: int
    text: str
    printed: list[str] = field(default_factory=list)
    status: int = 0

    def where(self) -> str:
        return f"{self.page}:{self.line}: $ {self.text}"


def blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """Each fenced block of a page: its language, the line after its fence, its lines."""
    found: list[tuple[str, int, list[str]]] = []
    language: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if language is None and fence:
            language, start, body = fence.group(1), number + 1, []
        elif language is not None and line.rstrip() == "```":
            found.append((language, start, body))
            language = None
        elif language is not None:
            body.append(line)
    assert language is None, f"{path.name}: a block opened at line {start - 1} is not closed"
    return found


def commands(path: Path) -> list[Command]:
    """The commands of a page's console blocks, in order."""
    found: list[Command] = []
    for language, start, body in blocks(path):
        if language != "console":
            continue
        current: Command | None = None
        for offset, line in enumerate(body):
            if line.startswith("$ "):
                current = Command(path.name, start + offset, line[2:])
                found.append(current)
            elif current is None:
                pytest.fail(f"{path.name}:{start + offset}: output before any command")
            else:
                current.printed.append(line)
    for command in found:
        status = EXIT.match(command.printed[-1]) if command.printed else None
        if status:
            command.status = int(status.group(1))
            command.printed.pop()
    return found


def run_page(path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run every command of *path* in a fresh copy of docs/tutorial/; return how many ran."""
    shutil.copytree(FILES, folder)
    monkeypatch.chdir(folder)
    environ: dict[str, str] = {}
    ran = 0
    for command in commands(path):
        export = EXPORT.match(command.text)
        if export:
            environ[export.group(1)] = export.group(2)
            continue
        argv = shlex.split(command.text)
        assert argv[0] == "sourcetruth", f"{command.where()}: only sourcetruth commands run here"
        stream = io.StringIO()
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            try:
                status = main(argv[1:], out=stream, err=stream, environ=environ)
            except SystemExit as done:  # argparse refusing the command line
                status = done.code if isinstance(done.code, int) else 1
        printed = stream.getvalue().replace(str(folder), "<folder>").splitlines()
        assert printed == command.printed, f"{command.where()} printed something else"
        assert status == command.status, f"{command.where()} ended with status {status}"
        ran += 1
    return ran


def test_the_tutorial_runs_as_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of tutorial.md, 40 or more, prints and exits exactly as the page shows."""
    assert run_page(DOCS / "tutorial.md", tmp_path / "school", monkeypatch) >= 40


def test_the_runnable_examples_of_the_reference_run_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every console example of cli.md, 5 or more, prints and exits exactly as shown."""
    assert run_page(DOCS / "cli.md", tmp_path / "school", monkeypatch) >= 5


HOWTOS = sorted((DOCS / "howto").glob("*.md"))


#: The guides whose books are in PostgreSQL: run against a database of their own.
ON_A_SERVER = {"postgres"}


@pytest.mark.parametrize("page", HOWTOS, ids=[p.stem for p in HOWTOS])
def test_each_how_to_guide_runs_as_shown(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Every console example of a how-to guide prints and exits exactly as shown."""
    if page.stem in ON_A_SERVER:
        _server_from_libpq_variables(request, monkeypatch)
    run_page(page, tmp_path / "school", monkeypatch)


def _server_from_libpq_variables(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point libpq's PGHOST, PGPORT, PGUSER and PGDATABASE at a new database of the test server.

    A guide's URL then names only its school, ``postgresql:///?book=SCHOOL``,
    and prints the same wherever the server is.
    """
    from psycopg.conninfo import conninfo_to_dict

    url = request.getfixturevalue("postgres_server").new_database("howto")
    params = conninfo_to_dict(url)
    for variable, key in (("PGHOST", "host"), ("PGPORT", "port"), ("PGUSER", "user")):
        if params.get(key):
            monkeypatch.setenv(variable, str(params[key]))
        else:
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PGDATABASE", str(params["dbname"]))


@pytest.mark.parametrize(
    "page", [DOCS / "tutorial.md", *HOWTOS], ids=["tutorial", *[p.stem for p in HOWTOS]]
)
def test_every_command_of_a_page_is_in_a_console_block(page: Path) -> None:
    """A command written elsewhere would not be run, so nothing would catch it going stale."""
    for language, start, body in blocks(page):
        if language == "console":
            continue
        for offset, line in enumerate(body):
            assert not line.removeprefix("$ ").startswith("sourcetruth"), (
                f"{page.name}:{start + offset}: put commands in a console block, so they run"
            )


def test_the_exit_codes_table_is_the_programs() -> None:
    """The exit-code table of cli.md is the CLI's EXIT_CODES: each code once, with its meaning."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == dict(EXIT_CODES)
    assert len(rows) == len(EXIT_CODES)
