"""``demo``: a week at a small school, on a new book, with every scenario of the rules."""

from __future__ import annotations

from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import OK
from sourcetruth.cli._options import Subcommands, add_command

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

    demo.run(ctx.out, ctx.args.folder, environ=ctx.environ)
    return OK
