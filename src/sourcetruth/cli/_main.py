"""The ``sourcetruth`` program: its parser, made of the command groups, and :func:`main`.

Each command group is a module that registers its own commands and their
options (``register``); :data:`GROUPS` lists them in the order ``--help``
shows their commands. :func:`main` parses, runs the command, and turns what
went wrong into one line on stderr and an exit status (see ``_errors``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, TextIO

from sourcetruth.cli import _book, _demo, _edit, _erase, _groups, _look, _review, _send, _sync
from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import (
    EXIT_CODES,
    INTERRUPTED,
    OK,
    PIPE_CLOSED,
    Exit,
    code_of,
    complaint,
)
from sourcetruth.cli._options import Parser, Subcommands, add_global_options, version
from sourcetruth.cli._render import printable

__all__ = ["GROUPS", "main"]

#: The command groups, each registering its commands: in the order ``--help`` lists them.
GROUPS: Final[tuple[Callable[[Subcommands], None], ...]] = (
    _book.register,  # init, policy, journal
    _sync.register,  # sync, when
    _edit.register,  # address-book ..., override ...
    _look.register,  # contacts, show, explain
    _groups.register,  # group ..., groups, link, unlink
    _send.register,  # recipients, send, why
    _review.register,  # report ..., export
    _erase.register,  # erase
    _demo.register,  # demo
)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sourcetruth",
        description="Keep a school's contact book: sync sources, edit, explain, send, report.",
        epilog="Exit codes: "
        + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version()}",
        help="print the program's version and exit",
    )
    add_global_options(parser)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="the command, one of:"
    )
    for register in GROUPS:
        register(commands)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one command; return its exit status (see :data:`EXIT_CODES`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parse(argv, out, err)
    if isinstance(args, int):
        return args
    environ = os.environ if environ is None else environ
    args.book_given = args.book is not None  # on the command line, not from the environment
    args.book = args.book or environ.get("SOURCETRUTH_BOOK") or "."
    args.by = args.by or environ.get("SOURCETRUTH_USER") or _user()
    ctx = Context(args, out, err, environ)
    try:
        return _run(ctx)
    finally:
        ctx.close()


def _parse(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> argparse.Namespace | int:
    """The command's arguments; or the exit status, when parsing was all (``--help``, a mistake)."""
    try:
        try:
            with contextlib.redirect_stdout(out):  # where --help prints
                return _parser().parse_args(argv)
        except SystemExit as done:  # --help
            out.flush()
            return done.code if isinstance(done.code, int) else OK
    except Exit as wrong:
        _complain(err, printable(wrong.message))
        return wrong.code
    except BrokenPipeError:  # `sourcetruth --help | head -1`
        _silence(out)
        return PIPE_CLOSED


def _run(ctx: Context) -> int:
    """Run the command; what goes wrong is one line on stderr (``--debug``: a traceback)."""
    debug: bool = ctx.args.debug
    try:
        with _logging_to(ctx.err, debug=debug):
            code: int = ctx.args.run(ctx)
            ctx.out.flush()  # a reader gone away shows here, not after main returns
        return code
    except BrokenPipeError:
        # The reader stopped reading ('| head -1'): nothing to say, and nowhere to say it.
        _silence(ctx.out)
        return PIPE_CLOSED
    except Exit as done:
        if done.message:
            _complain(ctx.err, printable(done.message))
        return done.code
    except KeyboardInterrupt:
        if debug:
            raise
        _complain(ctx.err, "interrupted")
        return INTERRUPTED
    except Exception as error:
        if debug:
            raise
        _complain(ctx.err, complaint(error))
        return code_of(error)


def _complain(err: TextIO, said: str) -> None:
    """``sourcetruth: ...`` on stderr; *said* holds no control character but its line breaks."""
    err.write(f"sourcetruth: {said}\n")


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "sourcetruth"


class _LogLine(logging.Formatter):
    """``sourcetruth: warning: ...``: a log record as one line, like every other message."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        return f"sourcetruth: {record.levelname.lower()}: {text}"


@contextlib.contextmanager
def _logging_to(err: TextIO, *, debug: bool) -> Iterator[None]:
    """The library's log lines: with --debug, as ``sourcetruth:`` lines; else none.

    What a command reports (a delivery that failed, a plugin that did not load)
    it says itself; the log's own lines would say it twice.
    """
    logger = logging.getLogger("sourcetruth")
    handler: logging.Handler = logging.NullHandler()
    if debug:
        handler = logging.StreamHandler(err)
        handler.setFormatter(_LogLine())
    level = logger.level
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _silence(stream: TextIO) -> None:
    """Point a closed pipe's descriptor at the null device, so the exit flush stays quiet."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file: nothing will flush it at exit
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)
