"""``demo``: a week at a small school, on a new book, with every scenario of the rules."""

from __future__ import annotations

from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import OK
from sourcetruth.cli._options import Subcommands, add_command
from sourcetruth.exceptions import UsageError

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``demo``."""
    sub = add_command(
        commands,
        "demo",
        _demo,
        "run a week at a small school, on a new book",
        json_option=False,
        at=False,
    )
    sub.add_argument("--folder", help="where to make the demo book (default: a new temp folder)")


def _demo(ctx: Context) -> int:
    from sourcetruth.app import demo

    if ctx.args.book_given:
        # --book names a school's book: the demo never makes its book there, nor
        # reads it. $SOURCETRUTH_BOOK, set for every command, is not a request.
        msg = (
            "demo makes a new book of its own and never uses --book's: "
            "to choose its folder, give --folder FOLDER (an empty or new folder)"
        )
        raise UsageError(msg)

    demo.run(ctx.out, ctx.args.folder, environ=ctx.environ)
    return OK
