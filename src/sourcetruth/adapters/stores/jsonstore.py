"""The book in one JSON file: for small books and for tests.

The whole book and its journal are one document in the book's own versioned
format (:func:`sourcetruth.dumps`). A commit writes a new file beside the old
one, flushes it to disk and moves it into place, so a reader or a crash sees
the old file or the new one, never half of either.

A commit killed before the move leaves its new file behind, a whole copy of
a book. The store removes such leftovers when it is opened and at each
commit, never while a live writer is writing one (see
:func:`~sourcetruth.adapters._files.sweep_temporaries`), so an erasure leaves
no copy of the person either.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from sourcetruth.adapters._files import open_in_place, sweep_temporaries, write_atomic
from sourcetruth.exceptions import AdapterError, ConflictError, SchemaVersionError, SourceDataError
from sourcetruth.journal import Run, erased_by, redact
from sourcetruth.model import Book
from sourcetruth.report import MergeResult
from sourcetruth.serialise import FORMAT_VERSION, converter, dumps, loads

__all__ = ["EMPTY", "JsonStore"]

#: What a new, empty book file holds.
EMPTY: Final = '{"book": null, "journal": []}'


class JsonStore:
    """A book and its journal in one JSON file, replaced atomically on each commit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # What a commit killed mid-write left: a whole copy of a book, maybe of an erased person.
        sweep_temporaries(self.path.parent, of=self.path.name)

    def __repr__(self) -> str:
        return f"JsonStore({os.fspath(self.path)!r})"

    def _read(self) -> tuple[Book, list[object]]:
        try:
            text = self.path.read_text(encoding="utf-8") if self.path.exists() else EMPTY
        except OSError as error:
            msg = f"cannot read the book {self.path.name}: {error.strerror}"
            raise AdapterError(msg) from None
        try:
            document = json.loads(text)
            journal = list(document["journal"])
            raw = document["book"]
            version = document.get("version", FORMAT_VERSION)
        except (ValueError, TypeError, KeyError, AttributeError):
            msg = f"{self.path.name} is not a sourcetruth book file"
            raise SourceDataError(msg, file=self.path.name) from None
        if type(version) is not int or version > FORMAT_VERSION:
            msg = (
                f"written by a newer sourcetruth (format {version!r}; this one reads up to "
                f"{FORMAT_VERSION}): upgrade sourcetruth"
            )
            raise SchemaVersionError(msg, file=self.path.name)
        try:
            book = Book() if raw is None else loads(raw, Book)
        except SchemaVersionError as error:
            raise SchemaVersionError(error.reason, file=self.path.name) from None
        return book, journal

    def load(self) -> Book:
        return self._read()[0]

    def journal(self) -> tuple[Run, ...]:
        return tuple(converter.structure(item, Run) for item in self._read()[1])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the book's lock file: one writer at a time, across read, check and replace."""
        # Owner-only, and never through a link planted at its predictable name.
        fd = open_in_place(self.path.with_name(self.path.name + ".lock"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        """Write ``result.book`` and *run* as a new file, then move it into place."""
        try:
            with self._locked():
                self._commit(before, result, run)
        except AdapterError:  # a conflict says so itself
            raise
        except OSError as error:
            msg = f"cannot write the book {self.path.name}: {error.strerror}"
            raise AdapterError(msg, retryable=True) from None

    def _commit(self, before: Book, result: MergeResult, run: Run) -> None:
        # Under the store's lock no other commit is writing: what is there was left by a kill.
        sweep_temporaries(self.path.parent, of=self.path.name, wait=True)
        stored, journal = self._read()
        if stored.seq != before.seq:
            msg = "the book was changed by another run since it was loaded"
            raise ConflictError(msg)
        if result.report.erased:
            contacts, records = erased_by(stored, result.book)
            journal = [
                converter.unstructure(redact(converter.structure(item, Run), contacts, records))
                for item in journal
            ]
            run = redact(run, contacts, records)  # the erasing run names nobody either
        journal.append(converter.unstructure(run))
        document = {
            "book": dumps(result.book),
            "journal": journal,
            "version": FORMAT_VERSION,
        }
        text = json.dumps(document, sort_keys=True, ensure_ascii=False)
        # Whole or not at all, durable once it returns (see adapters._files).
        write_atomic(self.path, text.encode("utf-8"))

    def close(self) -> None:
        """Nothing to release: every operation opens and closes the file."""
