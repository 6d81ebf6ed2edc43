"""The command helps a newcomer: its version, help for every option, and "did you mean"."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from cli_helpers import Cli, one_error_line

from sourcetruth._near import did_you_mean, nearest
from sourcetruth.cli import _main, main


def parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the program, its commands' and their actions', with its prog."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from parsers(sub)


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err, environ={})
    return code, out.getvalue(), err.getvalue()


class TestHelp:
    def test_every_option_and_argument_has_help(self) -> None:
        """Each option and positional of each command says what it is for in --help."""
        found = [
            f"{prog}: {'/'.join(action.option_strings) or action.dest}"
            for prog, parser in parsers(_main._parser())
            for action in parser._actions
            if not action.help and action.help is not argparse.SUPPRESS
        ]
        assert len(list(parsers(_main._parser()))) > 30
        assert found == []

    def test_version(self) -> None:
        """--version prints the installed package's version and exits 0."""
        code, out, err = run("--version")
        assert code == 0, err
        assert out == f"sourcetruth {metadata.version('sourcetruth')}\n"

    def test_version_not_installed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A source tree never installed says its version is unknown, and still exits 0."""

        def missing(name: str) -> str:
            raise metadata.PackageNotFoundError(name)

        monkeypatch.setattr(metadata, "version", missing)
        code, out, _ = run("--version")
        assert (code, out) == (0, "sourcetruth unknown (not installed)\n")


class TestDidYouMean:
    @pytest.mark.parametrize(
        ("args", "meant"),
        [
            (("snyc",), "did you mean sync?"),
            (("contacts", "--serch", "x"), "did you mean --search?"),
            (("contacts", "--serch=x"), "did you mean --search?"),
            (("address-book", "edti", "mis:G1"), "did you mean edit?"),
            (("contacts", "--role", "gaurdian"), "did you mean guardian?"),
            (("recipients", "--yaer", "9"), "did you mean --year?"),
            (("contacts", "--bok", "x"), "did you mean --book?"),
        ],
    )
    def test_a_mistyped_command_option_or_choice(
        self, book: Cli, args: tuple[str, ...], meant: str
    ) -> None:
        """A command, long option or choice mistyped: one line, exit 2, the nearest named."""
        assert meant in one_error_line(book.fails(2, *args))

    def test_nothing_near(self, book: Cli) -> None:
        """A word like no command gets no guess, only the usual message."""
        line = one_error_line(book.fails(2, "zzzzqqq"))
        assert "invalid choice: 'zzzzqqq'" in line
        assert "did you mean" not in line

    def test_nearest(self) -> None:
        """A name differing only in case comes first; difflib's near names follow."""
        assert nearest("g9", ["G9", "G19", "P9", "S1"]) == ["G9", "G19"]
        assert nearest("mis:g9", ["mis:G9", "mis:G1"])[0] == "mis:G9"
        assert nearest("x", ["x"]) == []
        assert did_you_mean([]) == ""
        assert did_you_mean(["a", "b", "c"]) == "; did you mean a, b or c?"


class TestDemo:
    def test_demo_refuses_book(self, tmp_path: Path) -> None:
        """demo --book is refused, naming --folder; nothing is made at the book's path."""
        for args in (["demo", "--book", "b"], ["--book", "b", "demo"]):
            code, out, err = run(*[str(tmp_path / a) if a == "b" else a for a in args])
            assert code == 2
            assert out == ""
            assert "give --folder FOLDER" in err
        assert not (tmp_path / "b").exists()

    def test_demo_ignores_the_book_variable(self, tmp_path: Path) -> None:
        """$SOURCETRUTH_BOOK, set for every command, is no request: the demo runs in --folder."""
        out, err = io.StringIO(), io.StringIO()
        environ = {"SOURCETRUTH_BOOK": str(tmp_path / "school")}
        code = main(["demo", "--folder", str(tmp_path / "demo")], out=out, err=err, environ=environ)
        assert code == 0, err.getvalue()
        assert (tmp_path / "demo" / "policy.toml").exists()
        assert not (tmp_path / "school").exists()
