"""The command as a program: ``python -m sourcetruth``, the console script, closed pipes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from cli_helpers import USER, Cli, ClosedPipe, when

from sourcetruth.cli import _errors as cli_errors
from sourcetruth.cli import main


def run_program(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "SOURCETRUTH_USER": USER, **(env or {})}
    environ.pop("SOURCETRUTH_BOOK", None)
    environ.pop("SOURCETRUTH_SUPPRESSION_KEY_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "sourcetruth", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


class TestProgram:
    def test_python_m_help(self) -> None:
        """python -m sourcetruth --help prints the usage and the commands."""
        done = run_program("--help")
        assert done.returncode == 0, done.stderr
        assert "usage: sourcetruth" in done.stdout
        assert "address-book" in done.stdout

    def test_the_console_script(self) -> None:
        """The installed sourcetruth script prints its usage."""
        script = Path(sys.executable).parent / "sourcetruth"
        if not script.exists():
            pytest.skip("the console script is not installed (pip install -e .)")
        done = subprocess.run(
            [os.fspath(script), "--help"], capture_output=True, text=True, check=False, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "usage: sourcetruth" in done.stdout

    def test_sync_and_send_leave_stderr_empty(self, cli: Cli) -> None:
        """A sync and a send, run as a program, print nothing on stderr."""
        book = os.fspath(cli.folder)
        assert run_program("--book", book, "init").returncode == 0
        done = run_program(
            "--book",
            book,
            "sync",
            "mis",
            cli.export("tue"),
            "--at",
            when(24, 2),
            "--extracted-at",
            when(24, 1, 30),
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert "mis sync 1: applied" in done.stdout
        done = run_program(
            "--book",
            book,
            "send",
            "--year",
            "9",
            "--guardians",
            "--id",
            "m1",
            "--body",
            "x",
            "--deliver",
            "--at",
            when(24, 9),
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert "Sent m1: 3 accepted, 0 not" in done.stdout

    def test_debug_shows_the_traceback(self, tmp_path: Path) -> None:
        """An error is one line; with --debug, the traceback and the error's type."""
        plain = run_program("--book", os.fspath(tmp_path), "contacts")
        assert plain.returncode == 2
        assert "Traceback" not in plain.stderr
        assert plain.stderr.startswith("sourcetruth: ")
        debug = run_program("--debug", "--book", os.fspath(tmp_path), "contacts")
        assert debug.returncode != 0
        assert "Traceback" in debug.stderr
        assert "UsageError" in debug.stderr


class TestQuietEnds:
    def test_a_closed_pipe_ends_quietly(self, book: Cli) -> None:
        """Printing to a closed pipe ends with 141 and nothing on stderr."""
        err = io.StringIO()
        args = ["--book", os.fspath(book.folder), "contacts", "--at", when(24, 9)]
        code = main(args, out=ClosedPipe(), err=err, environ=book.environ)
        assert code == cli_errors.PIPE_CLOSED == 141
        assert err.getvalue() == ""

    def test_a_reader_that_stops_early(self, book: Cli) -> None:
        """A reader that closes stdout early, like head: exit 141 and stderr empty."""
        environ = {**os.environ, "SOURCETRUTH_USER": USER}
        environ.pop("SOURCETRUTH_SUPPRESSION_KEY_FILE", None)
        program = [sys.executable, "-m", "sourcetruth", "--book", os.fspath(book.folder)]
        with subprocess.Popen(
            [*program, "contacts", "--at", when(24, 9)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
        ) as running:
            assert running.stdout is not None
            assert running.stderr is not None
            running.stdout.close()  # like `| head -0`: nobody reads what it prints
            stderr = running.stderr.read()
            code = running.wait(timeout=120)
        assert stderr == b""
        assert code == 141
