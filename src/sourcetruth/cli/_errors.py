"""How the command ends: each exit status, what it means, and which error gives which."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sourcetruth.cli._render import printable
from sourcetruth.exceptions import (
    LISTED_PROBLEMS,
    AdapterError,
    SchemaVersionError,
    SourceDataError,
    SourceTruthError,
    UsageError,
    listed,
)

__all__ = [
    "DATA",
    "ERROR_CODES",
    "EXIT_CODES",
    "FAILED",
    "HELD",
    "INTERRUPTED",
    "OK",
    "PIPE_CLOSED",
    "STORE",
    "UNDELIVERED",
    "USAGE",
    "Exit",
    "code_of",
    "complaint",
]

OK: Final = 0
#: Something the program did not expect: a bug; ``--debug`` shows where.
FAILED: Final = 1
USAGE: Final = 2
DATA: Final = 3
HELD: Final = 4
UNDELIVERED: Final = 5
STORE: Final = 6
INTERRUPTED: Final = 130
#: The reader of the output stopped reading (``sourcetruth contacts | head -1``): the
#: status a shell gives a program that SIGPIPE ended, 128 + 13.
PIPE_CLOSED: Final = 141

#: Each exit status and what it means.
EXIT_CODES: Final[Mapping[int, str]] = {
    OK: "done",
    FAILED: "an unexpected error (a bug): run again with --debug and report it",
    USAGE: "the command was wrong: an unknown option, contact, group or field",
    DATA: "an input file was rejected: fix the file (nothing was applied)",
    HELD: "a sync was held by the departure guard: check the export, then confirm it",
    UNDELIVERED: "a send left deliveries rejected or failed (resume by sending again)",
    STORE: "the book could not be read or written: a newer version, a conflict, or I/O",
    INTERRUPTED: "interrupted (Ctrl-C); a send can be resumed by running it again",
    PIPE_CLOSED: "the output's reader stopped reading (like 'head'); the rest was not printed",
}

#: The exit status for each kind of error, most specific first: the first type an
#: error is an instance of decides (a SchemaVersionError is a SourceDataError, but
#: it says the book's file is newer than the program, so STORE).
ERROR_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (SchemaVersionError, STORE),
    (AdapterError, STORE),
    (SourceDataError, DATA),
    (BaseExceptionGroup, DATA),
    (UsageError, USAGE),
    (OSError, STORE),
)


class Exit(Exception):
    """Leave with *code* after printing *message* (when given) on stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def code_of(error: BaseException) -> int:
    """The exit status for an error; FAILED for one the program did not expect."""
    return next((code for kind, code in ERROR_CODES if isinstance(error, kind)), FAILED)


def complaint(error: BaseException) -> str:
    """What the program says of an error on stderr, after ``sourcetruth: ``.

    One line; for a rejected file, a line for each problem. A bug is one line
    that names only its type: its message may hold anything, personal data
    included (``--debug`` shows it all). No line holds a control character
    (see :func:`~sourcetruth.cli._render.printable`).
    """
    if code_of(error) == FAILED and not isinstance(error, SourceTruthError):
        return f"unexpected {error.__class__.__name__}; run again with --debug to see where"
    return "\n".join(printable(line) for line in _lines(error))


def _lines(error: BaseException) -> list[str]:
    """The error's message on one line; a rejected file's problems after it, one per line.

    A long list stops after :data:`~sourcetruth.exceptions.LISTED_PROBLEMS`
    problems with a line counting the rest.
    """
    if isinstance(error, BaseExceptionGroup):
        problems = listed(error.exceptions, lambda problem: _one_line(_text(problem)))
        return [_one_line(error.message)] + [
            f"  - {line}" if n < LISTED_PROBLEMS else f"  {line}" for n, line in enumerate(problems)
        ]
    return [_one_line(_text(error))]


def _text(error: BaseException) -> str:
    """What an error says; of a source's data, where, but never a record's key."""
    if isinstance(error, SourceDataError):
        return _placed(error)
    text = str(error) or error.__class__.__name__
    if isinstance(error, OSError) and not isinstance(error, SourceTruthError):
        # A bare OSError reads "[Errno 2] No such file or directory: 'x'".
        where = error.filename if error.filename is not None else ""
        text = f"{error.strerror or text}{f': {where}' if where else ''}"
    return text


def _placed(error: SourceDataError) -> str:
    """A data error's reason and place (source, file, line, field), without its record's key.

    The key is an id read from a file, which may be personal data (an import
    keyed by email address; rule 13): file and line find the row, and with
    neither, ``--debug`` shows the key.
    """
    where = SourceDataError(
        error.reason, source=error.source, file=error.file, line=error.line, field=error.field
    )
    hint = "; --debug names the record" if error.key is not None and error.line is None else ""
    return f"{where}{hint}"


def _one_line(text: str) -> str:
    """*text* on one line: every run of white space, line breaks included, one space."""
    return " ".join(text.split())
