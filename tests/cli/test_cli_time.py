"""The time of a command: ``--at`` and other time options, the clock read once, changes forward."""

from __future__ import annotations

import os

import pytest
from cli_helpers import Cli, moment, one_error_line, when

from sourcetruth.cli import _context as cli_context


class TestTimeOfAChange:
    def test_a_change_far_after_the_clock_is_refused(
        self, book: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A mistyped year would lock the book: every later change would come before it."""
        monkeypatch.setattr(cli_context, "_now", lambda: moment(24, 12))
        wed = book.export("wed")
        for args in (
            ("address-book", "add", "--key", "k", "--given", "Kit"),
            ("override", "set", "mis:G2", "given_name", "Hughie"),
            ("group", "set", "G", "--member", "mis:G1"),
            ("link", "mis:G1", "mis:G2"),
            ("erase", "mis:G6", "--yes"),
            ("sync", "mis", wed, "--extracted-at", when(25, 1)),
            ("sync", "mis", wed, "--extracted-at", when(25, 1), "--dry-run"),
        ):
            line = one_error_line(book.fails(2, *args, "--at", "2062-11-24T12:00"))
            assert line.startswith("sourcetruth: --at: Fri 24 Nov 2062 12:00 is more than 7 days")
        assert len(book.journal()) == 1
        # Reading the book at any time is no change; a week ahead is still taken.
        book.ok("contacts", "--at", "2062-11-24T12:00")
        book.ok("address-book", "add", "--key", "k", "--given", "Kit", "--at", "2026-12-01T11:59")

    def test_a_change_before_the_book_s_latest_says_when_that_was(self, book: Cli) -> None:
        """A change before the book's latest names that time and asks for a later --at."""
        ran = book.fails(
            2, "override", "set", "mis:G2", "given_name", "Hughie", "--at", when(23, 9)
        )
        line = one_error_line(ran)
        assert "latest change was made Tue 24 Nov 2026 02:00" in line
        assert "give --at a time from then on" in line

    def test_the_clock_is_read_once(self, book: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """A command reads the clock once: its default --at is that one reading."""
        ticks = iter(moment(25, hour) for hour in range(9, 24))
        monkeypatch.setattr(cli_context, "_now", lambda: next(ticks))
        out = book.exports / "book.csv"
        ran = book.ok("export", os.fspath(out))
        assert ran.out == f"Wrote the book at Wed 25 Nov 2026 09:00 to {out}.\n"
        assert next(ticks) == moment(25, 10)

    @pytest.mark.parametrize(
        ("args", "option"),
        [
            (("sync", "mis", "EXPORT", "--extracted-at", "soon"), "--extracted-at"),
            (("override", "set", "mis:G1", "given_name", "X", "--until", "soon"), "--until"),
            (("report", "update-at-source", "--since", "soon"), "--since"),
            (("when", "mis", "--changed-at", "soon"), "--changed-at"),
            (("contacts", "--at", "soon"), "--at"),
            (("contacts", "--at", "0001-01-01T00:00+14:00"), "--at"),
        ],
    )
    def test_a_time_that_is_not_one_names_its_option(
        self, book: Cli, args: tuple[str, ...], option: str
    ) -> None:
        """A time option that is not a time, or out of range, is named in the error."""
        args = tuple(book.export("wed") if a == "EXPORT" else a for a in args)
        assert one_error_line(book.fails(2, *args)).startswith(f"sourcetruth: {option}: ")
