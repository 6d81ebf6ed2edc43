"""The parser's parts: one-line mistakes, the options every command takes, and counts.

Each command group registers its commands with :func:`add_command` (a
command that runs) and :func:`add_actions` (a command of several actions,
like ``address-book add``).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from sourcetruth.cli._errors import USAGE, Exit

if TYPE_CHECKING:
    from sourcetruth.cli._context import Context

__all__ = [
    "Parser",
    "Run",
    "Subcommands",
    "add_actions",
    "add_command",
    "add_global_options",
    "count",
]

#: The subcommands of a parser, to add commands to.
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"
#: What a command does, given its context; it returns the exit status.
Run: TypeAlias = "Callable[[Context], int]"

_BOOK = "the book folder (default: $SOURCETRUTH_BOOK, else the current folder)"
_BY = "who is making changes, for the record (default: $SOURCETRUTH_USER or your login)"
_DEBUG = "show tracebacks"


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line and exit 2, also in-process."""

    def error(self, message: str) -> NoReturn:
        raise Exit(USAGE, f"{message} (see '{self.prog} --help')")


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """``--book``, ``--by`` and ``--debug``: before the command, or after it.

    Given after the command (``sourcetruth sync mis x --book b``), they win over
    the ones before it: there they have no default, so they are set only if given.
    """
    unset: Any = argparse.SUPPRESS if after_command else None
    parser.add_argument("--book", default=unset, help=_BOOK)
    parser.add_argument("--by", default=unset, help=_BY)
    debug: Any = argparse.SUPPRESS if after_command else False
    parser.add_argument("--debug", action="store_true", default=debug, help=_DEBUG)


@functools.cache
def _after_command() -> Parser:
    """The global options again, for every command to take after its name."""
    parser = Parser(add_help=False)
    add_global_options(parser, after_command=True)
    return parser


def add_command(
    commands: Subcommands,
    name: str,
    run: Run,
    help: str,
    *,
    json_option: bool = True,
    at: bool = True,
) -> argparse.ArgumentParser:
    """Add a command that *run* runs: with ``--json`` and ``--at`` unless told otherwise."""
    sub = commands.add_parser(name, help=help, description=help, parents=[_after_command()])
    sub.set_defaults(run=run, json=False)
    if json_option:
        sub.add_argument("--json", action="store_true", help="print JSON")
    if at:
        sub.add_argument(
            "--at", help="the time (ISO 8601; default now; no offset: the book's timezone)"
        )
    return sub


def add_actions(
    commands: Subcommands, name: str, help: str, *, dest: str = "action", metavar: str = "ACTION"
) -> Subcommands:
    """Add a command of several actions (``override set``, ``override clear``): add them to it."""
    parent = commands.add_parser(name, help=help)
    return parent.add_subparsers(dest=dest, metavar=metavar, required=True)


def count(text: str) -> int:
    """An option's count: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"{text!r} is not a count: give a whole number from 1"
        raise argparse.ArgumentTypeError(msg)
    return value
