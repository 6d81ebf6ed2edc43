"""The parser's parts: one-line mistakes, the options every command takes, and counts.

Each command group registers its commands with :func:`add_command` (a
command that runs) and :func:`add_actions` (a command of several actions,
like ``address-book add``).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

from sourcetruth._near import did_you_mean, nearest
from sourcetruth.cli._errors import USAGE, Exit

if TYPE_CHECKING:
    from sourcetruth.cli._context import Context

__all__ = [
    "CONTACT",
    "Parser",
    "Run",
    "Subcommands",
    "add_actions",
    "add_command",
    "add_global_options",
    "count",
    "version",
]

#: The subcommands of a parser, to add commands to.
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"
#: What a command does, given its context; it returns the exit status.
Run: TypeAlias = "Callable[[Context], int]"

_BOOK = (
    "the book: its folder, or postgresql://HOST/DATABASE?book=SCHOOL (default: "
    "$SOURCETRUTH_BOOK, else the current folder)"
)
_PASSWORD_ENV = (
    "for a book in PostgreSQL: the environment variable holding the password "
    "(default: PGPASSWORD, else ~/.pgpass)"
)
_BY = "who is making changes, for the record (default: $SOURCETRUTH_USER or your login)"
_DEBUG = "show tracebacks"
#: What a contact argument is, for its help.
CONTACT = "a contact id: SOURCE:KEY, like mis:G1 (case matters)"


#: Where a parser leaves, in the namespace, what its unknown options may have meant: a
#: command's parser parses into a namespace of its own, copied into the program's after.
_MEANT: Final = "_sourcetruth_meant"


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line and exit 2, also in-process.

    A mistyped command, choice or long option is answered with the nearest
    ones ("did you mean --search?"), as Python 3.14's ``suggest_on_error``.
    """

    def error(self, message: str) -> NoReturn:
        raise Exit(USAGE, f"{message} (see '{self.prog} --help')")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        meant: dict[str, list[str]] = vars(parsed).pop(_MEANT, {})
        if extras:
            near = list(dict.fromkeys(o for options in meant.values() for o in options))
            self.error(f"unrecognized arguments: {' '.join(extras)}{did_you_mean(near)}")
        return parsed

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        # Each word's guess is made by the innermost parser, which knows the command's options.
        meant: dict[str, list[str]] = vars(parsed).setdefault(_MEANT, {})
        options = [o for o in self._option_string_actions if o.startswith("--")]
        for word in extras:
            if word.startswith("--") and word not in meant:
                meant[word] = nearest(word.partition("=")[0], options, n=1)
        return parsed, extras

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as wrong:
            near = nearest(str(value), map(str, action.choices or ()))
            if not near:
                raise
            said, choices, rest = wrong.message.partition(" (choose from")
            # Before the list of choices, which for a command is long.
            message = f"{said}{did_you_mean(near)}{choices}{rest}"
            raise argparse.ArgumentError(action, message) from None


def version() -> str:
    """The installed package's version; a source tree that was never installed has none."""
    try:
        return metadata.version("sourcetruth")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """``--book``, ``--by``, ``--password-env`` and ``--debug``: before the command, or after it.

    Given after the command (``sourcetruth sync mis x --book b``), they win over
    the ones before it: there they have no default, so they are set only if given.
    """
    unset: Any = argparse.SUPPRESS if after_command else None
    parser.add_argument("--book", default=unset, help=_BOOK)
    parser.add_argument("--by", default=unset, help=_BY)
    parser.add_argument("--password-env", default=unset, metavar="NAME", help=_PASSWORD_ENV)
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
    parent = commands.add_parser(name, help=help, description=help)
    return parent.add_subparsers(
        dest=dest, metavar=metavar, required=True, help=f"the {metavar.lower()}, one of:"
    )


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
