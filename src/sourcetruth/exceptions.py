"""The library's exceptions, split by whose fault it is.

- :class:`UsageError`: the caller asked for something the rules do not allow.
- :class:`SourceDataError`: the data a source delivered is unusable; it names
  where (file, line, field), never the personal value itself.
- :class:`AdapterError`: the outside world failed (a file, a server, a store).

Every one of them subclasses :class:`SourceTruthError`, so ``except
SourceTruthError`` catches everything the library raises on purpose.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "EmptySnapshotError",
    "SchemaVersionError",
    "SourceDataError",
    "SourceTruthError",
    "StaleSnapshotError",
    "UnknownContactError",
    "UsageError",
]


class SourceTruthError(Exception):
    """Root of every error the library raises on purpose."""


class UsageError(SourceTruthError, ValueError):
    """The caller's mistake: a naive datetime, an unknown field, a rule broken."""


class UnknownContactError(UsageError, LookupError):
    """A contact id, record or group that the book does not hold."""


class SourceDataError(SourceTruthError, ValueError):
    """A source's data is unusable.

    ``file``, ``line`` and ``field`` say where; the message never contains the
    offending personal value.
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
