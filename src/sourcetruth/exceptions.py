"""The library's exceptions, split by whose fault it is.

- :class:`UsageError`: the caller asked for something the rules do not allow.
- :class:`SourceDataError`: the data a source delivered is unusable; it names
  where (file, line, field), never the personal value itself.
- :class:`AdapterError`: the outside world failed (a file, a server, a store).

Every one of them subclasses :class:`SourceTruthError`, so ``except
SourceTruthError`` catches everything the library raises on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "LISTED_PROBLEMS",
    "AdapterError",
    "ConfirmationMismatchError",
    "ConflictError",
    "EmptySnapshotError",
    "EncodingError",
    "MessageIdReusedError",
    "NotInBookError",
    "OutOfOrderError",
    "RejectedFileError",
    "SchemaVersionError",
    "SourceDataError",
    "SourceTruthError",
    "StaleSnapshotError",
    "UnknownAdapterError",
    "UnknownContactError",
    "UnknownGroupError",
    "UnknownRecordError",
    "UsageError",
    "format_errors",
    "listed",
]

#: How many of a rejected file's problems its text lists (its notes,
#: :func:`format_errors`, the command's message); one more line counts the rest.
#: A file of 100,000 bad rows says so in a screenful, not in 100,000 lines.
LISTED_PROBLEMS = 20


class SourceTruthError(Exception):
    """Root of every error the library raises on purpose.

    Every one pickles whole, attributes included (an error raised in a worker
    process reaches its caller as it was): it is rebuilt from its arguments
    without calling ``__init__``, which for many takes keyword-only values.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """An error of *cls* with *args*, its ``__init__`` not called (pickle sets the rest)."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class UsageError(SourceTruthError, ValueError):
    """The caller's mistake: a naive datetime, an unknown field, a rule broken."""


class NotInBookError(UsageError, LookupError):
    """A name the book does not hold: a contact, a group or a record (see the subclasses)."""


class UnknownContactError(NotInBookError):
    """A contact id that the book does not hold (at the time asked about)."""


class UnknownGroupError(NotInBookError):
    """A group name that the book does not hold (at the time asked about)."""


class UnknownRecordError(NotInBookError):
    """A record id (``SOURCE:KEY``) that no source of the book holds."""


class OutOfOrderError(UsageError):
    """A change made before the book's latest change: merges only go forward in time.

    ``latest`` is the time of the book's latest change.
    """

    def __init__(self, message: str, *, latest: datetime) -> None:
        self.latest = latest
        super().__init__(message)


class ConfirmationMismatchError(UsageError):
    """A held sync's confirmation token given for another snapshot or another book."""


class MessageIdReusedError(UsageError):
    """A message id already sent with other text, channels or audience.

    A message id names one message for ever: sending under it again resumes
    that message. ``message_id`` is the id; ``sent_at`` when the message it
    names was sent.
    """

    def __init__(self, message: str, *, message_id: str, sent_at: datetime) -> None:
        self.message_id = message_id
        self.sent_at = sent_at
        super().__init__(message)


class UnknownAdapterError(UsageError, LookupError):
    """No adapter of that kind is registered under that name."""


class SourceDataError(SourceTruthError, ValueError):
    """A source's data is unusable.

    ``file``, ``line`` and ``field`` say where; the message never contains the
    offending personal value. ``reason`` is the message without the place.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.file = file
        self.line = line
        self.field = field
        self.key = key
        where = [
            f"{label} {value}"
            for label, value in (
                ("source", source),
                ("file", file),
                ("line", line),
                ("field", field),
                ("record", key),
            )
            if value is not None
        ]
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class EncodingError(SourceDataError):
    """A file's bytes are not text in the encodings allowed for it.

    ``offset`` is the byte offset of the first byte that failed to decode.
    """

    def __init__(self, message: str, *, offset: int, file: str | None = None) -> None:
        self.offset = offset
        super().__init__(f"{message} at byte {offset}", file=file)


class EmptySnapshotError(SourceDataError):
    """A full snapshot with no records: never read as "everyone left"."""


class StaleSnapshotError(SourceDataError):
    """A snapshot read before the one the book already applied for that source."""


class SchemaVersionError(SourceDataError):
    """Serialised data written by a newer, unknown version of the format."""


class AdapterError(SourceTruthError, OSError):
    """Input/output failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)


class ConflictError(AdapterError):
    """The store's book changed since it was loaded: load again and merge again.

    Always ``retryable``: another run committed first, and a fresh load sees it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class RejectedFileError(ExceptionGroup[SourceDataError], SourceTruthError):
    """A whole file was rejected; ``exceptions`` holds every problem found in it.

    Raised when a file cannot be read at all, or when more of its rows were
    rejected than its reader allows: nothing from it is applied. Each problem
    is a :class:`SourceDataError` naming file, line and field. ``exceptions``
    (and :attr:`problems`) hold them all; the first :data:`LISTED_PROBLEMS`
    are also attached as notes, so a plain traceback lists them, and one more
    note counts the rest. :func:`format_errors` gives the same list as
    readable text.
    """

    file: str | None

    def __new__(
        cls, message: str, exceptions: Sequence[SourceDataError], *, file: str | None = None
    ) -> RejectedFileError:
        self = super().__new__(cls, message, exceptions)
        self.file = file
        return self

    def __init__(
        self, message: str, exceptions: Sequence[SourceDataError], *, file: str | None = None
    ) -> None:
        super().__init__(message, exceptions)
        for note in listed(exceptions):
            self.add_note(note)

    @property
    def problems(self) -> tuple[SourceDataError, ...]:
        """Every problem of the file, nested groups opened, in order."""
        found: list[SourceDataError] = []
        for problem in self.exceptions:
            if isinstance(problem, RejectedFileError):
                found.extend(problem.problems)
            elif isinstance(problem, SourceDataError):
                found.append(problem)
        return tuple(found)

    def derive(self, excs: Sequence[SourceDataError]) -> RejectedFileError:  # type: ignore[override]
        return RejectedFileError(self.message, excs, file=self.file)


def listed(
    problems: Sequence[BaseException], text: Callable[[BaseException], str] = str
) -> list[str]:
    """The *text* of the first :data:`LISTED_PROBLEMS` problems, then a line counting the rest."""
    lines = [text(problem) for problem in problems[:LISTED_PROBLEMS]]
    rest = len(problems) - LISTED_PROBLEMS
    if rest > 0:
        lines.append(f"... and {rest} more problem{'s' if rest != 1 else ''}")
    return lines


def format_errors(error: BaseException) -> str:
    """An error's message, then each problem of a group, indented, one per line.

    A group lists its first :data:`LISTED_PROBLEMS` problems and counts the
    rest on one more line; ``error.exceptions`` still holds them all.
    """
    if not isinstance(error, BaseExceptionGroup):
        return str(error)
    lines = [error.message]
    for index, line in enumerate(listed(error.exceptions)):
        lines.append(f"  - {line}" if index < LISTED_PROBLEMS else f"  {line}")
    return "\n".join(lines)
