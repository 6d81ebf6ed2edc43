"""What every command gets: its arguments, its output, the book, and the time it runs at.

Also the one way a command changes the book (:func:`apply`, at ``--at``,
checked) and says what the change did (:func:`after_change`).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final, TextIO, TypeVar

from sourcetruth.adapters.stores.postgres import is_book_url
from sourcetruth.app._bookbase import BookBase
from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.app.databasebook import DatabaseBook
from sourcetruth.cli._errors import OK
from sourcetruth.cli._progress import Progress
from sourcetruth.cli._render import Renderer, as_json, printable
from sourcetruth.exceptions import OutOfOrderError, UsageError
from sourcetruth.merge import Change
from sourcetruth.model import Book
from sourcetruth.policy import Policy
from sourcetruth.report import MergeResult, Report, Status
from sourcetruth.view import view_basis

__all__ = ["AHEAD", "NO_VIEW", "Context", "after_change", "apply", "forward"]

T = TypeVar("T")

#: Said once by a command that reads the present of a book whose store keeps no usable view.
NO_VIEW: Final = (
    "notice: the book's current view is missing or was made under another policy or "
    "normaliser version: answers come from history and are slower; run "
    "`sourcetruth book refresh-view`"
)

#: How far after the clock a change may be made: a mistyped year (2062 for 2026)
#: would otherwise lock the book, which refuses a change made before its latest.
AHEAD: Final = timedelta(days=7)


def _now() -> datetime:
    """The clock: read once per command (see ``Context.now``)."""
    return datetime.now(UTC)


class Context:
    """What every command gets: its arguments, output streams and the book."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]
    ) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.environ = environ
        self._book: BookBase[Any] | None = None
        #: The time the command runs at: one reading of the clock for all of it.
        self.now = _now()
        self._at: datetime | None = None

    @property
    def book(self) -> BookBase[Any]:
        """The book ``--book`` names: a folder, or a ``postgresql://`` URL."""
        if self._book is None:
            where: str = self.args.book
            self._book = (
                DatabaseBook.open(where, environ=self.environ, password_env=self.password_env)
                if is_book_url(where)
                else BookFolder.open(where, environ=self.environ)
            )
        return self._book

    @property
    def password_env(self) -> str | None:
        """``--password-env``: the variable that holds a database book's password."""
        named: str | None = getattr(self.args, "password_env", None)
        return named

    def adopt(self, book: BookBase[Any]) -> None:
        """Use *book*, just made, as the command's book: it is closed with the command."""
        self._book = book

    def viewed(self) -> Book:
        """The book, for a command that reads its present from the current view.

        When the store keeps a view and this book's is missing or of another
        basis (a file upgraded from an older schema, a policy changed since),
        the answers come from history, the same but slower: say so, once.
        """
        book = self.book.load()
        if (
            self.book.keeps_view
            and book.updated_at is not None
            and self.at >= book.updated_at
            and book.view_basis != view_basis(self.policy)
            and book.contacts
        ):
            self.note(NO_VIEW)
        return book

    @property
    def zone(self) -> tzinfo:
        zone: tzinfo = self.book.timezone
        return zone

    @property
    def render(self) -> Renderer:
        return Renderer(self.zone)

    @property
    def policy(self) -> Policy:
        """The policy for reading the book: no suppression key needed (only merges use it)."""
        policy: Policy = self.book.settings.policy
        return policy

    def close(self) -> None:
        if self._book is not None:
            self._book.close()

    def say(self, line: str = "") -> None:
        """A line of text output, control characters escaped (see ``printable``)."""
        self.out.write(printable(line) + "\n")

    def note(self, line: str) -> None:
        """A line on stderr (a notice about an input), control characters escaped."""
        self.err.write(printable(line) + "\n")

    def lines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.say(line)

    def json(self, value: object) -> None:
        """*value* as one JSON document: its line breaks are its own (see ``as_json``)."""
        self.out.write(as_json(value) + "\n")

    def listing(self, found: Sequence[T], line: Callable[[T], str], total: str) -> int:
        """A list found: as JSON with ``--json``; else a line for each, then *total*."""
        if self.args.json:
            self.json(found)
            return OK
        for item in found:
            self.say(line(item))
        self.say(total)
        return OK

    def time(self, text: str | None, option: str = "--at") -> datetime:
        """A time *option*: ISO 8601, read in the book's timezone when it has no offset."""
        if text is None or text == "now":
            return self.now
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            msg = f"{option}: {text!r} is not a time; write it like 2026-11-24T15:30 (ISO 8601)"
            raise UsageError(msg) from None
        if not 1900 <= value.year < 9000:
            # Far from any school's data, and near the calendar's ends, where time
            # arithmetic (the next sync, a timezone) overflows.
            msg = f"{option}: {text!r} is out of range: give a time from 1900 to 8999"
            raise UsageError(msg)
        return value if value.tzinfo is not None else value.replace(tzinfo=self.zone)

    @property
    def at(self) -> datetime:
        """``--at``, or now: the same value however often a command asks."""
        if self._at is None:
            self._at = self.time(getattr(self.args, "at", None))
        return self._at

    @property
    def change_at(self) -> datetime:
        """The time of a change to the book: ``--at``, refused far after the clock."""
        at = self.at
        if at - self.now > AHEAD:
            msg = (
                f"--at: {self.render.time(at)} is more than {AHEAD.days} days after now "
                f"({self.render.time(self.now)}); the book would then refuse every change "
                "made before it. Check the date"
            )
            raise UsageError(msg)
        return at

    @property
    def by(self) -> str:
        by: str = self.args.by
        return by

    def progress(self, label: str, total: int | None = None) -> Progress:
        return Progress(self.err, printable(label), total=total)


@contextlib.contextmanager
def forward(ctx: Context) -> Iterator[None]:
    """A change before the book's latest is refused: say when that was, and what to do."""
    try:
        yield
    except OutOfOrderError as error:
        msg = (
            f"the book's latest change was made {ctx.render.time(error.latest)}, after this "
            f"change's time ({ctx.render.time(ctx.at)}); changes go forward in time: "
            "give --at a time from then on"
        )
        raise UsageError(msg) from None


def apply(ctx: Context, change: Change | Sequence[Change]) -> MergeResult:
    """Merge *change* into the book at ``--at`` (checked), and commit it."""
    at = ctx.change_at
    with forward(ctx):
        return ctx.book.apply(change, at=at, by=ctx.by)


def after_change(ctx: Context, report: Report, done: str) -> int:
    """Say what a change did: *done*, or that nothing changed; then the report's lines."""
    if ctx.args.json:
        ctx.json(report)
    else:
        ctx.say(
            done
            if report.status is Status.APPLIED
            else "Nothing changed: the book already says so."
        )
        ctx.lines(ctx.render.report(report)[1:])
    return OK
