"""The book in SQLite (the standard library's ``sqlite3``): the embedded default store.

One row per record, contact, list of overrides, source's syncs and group, each
holding that entity's JSON (the book's own converter), and a journal of runs,
each run's field changes in rows of their own, one per contact; a commit writes only
the rows the merge changed, found by identity (the merge shares every object
it did not change), in one transaction. The file is in WAL mode with
``synchronous=FULL``: a commit that returned is on disk, a crash at any point
leaves the book entirely old or entirely new, and a reader sees the last
commit while a writer works, neither waiting for the other. Opening a book
of this schema writes nothing and takes no lock another connection waits on.
The schema version is recorded; a file written by a newer version is
refused, never half read.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import attrs

from sourcetruth.exceptions import AdapterError, ConflictError, SchemaVersionError, SourceDataError
from sourcetruth.journal import Run, erased_by, redact
from sourcetruth.model import (
    Book,
    ContactEntry,
    EndedOverride,
    GroupVersion,
    Override,
    RecordState,
    SyncRecord,
)
from sourcetruth.report import FieldChange, MergeResult
from sourcetruth.serialise import converter

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

_log = logging.getLogger(__name__)

#: Bumped whenever the tables change incompatibly. 2: a run's field changes
#: moved to ``run_changes``, a row per contact; a file of schema 1 is upgraded
#: when opened (its runs keep their changes inline, and read the same).
SCHEMA_VERSION: Final = 2

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    source TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS contacts (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS overrides (contact_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ended_overrides (contact_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS syncs (source TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS suppressed (digest TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS runs (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_changes (
    n INTEGER NOT NULL, i INTEGER NOT NULL, contact_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (n, i)
);
"""

# The book's flat maps: attribute, table, key column, and the type of one value.
_MAPS: Final[tuple[tuple[str, str, str, Any], ...]] = (
    ("contacts", "contacts", "id", ContactEntry),
    ("overrides", "overrides", "contact_id", tuple[Override, ...]),
    ("ended_overrides", "ended_overrides", "contact_id", tuple[EndedOverride, ...]),
    ("syncs", "syncs", "source", tuple[SyncRecord, ...]),
    ("groups", "groups", "name", tuple[GroupVersion, ...]),
)


def _json(value: object) -> str:
    return json.dumps(
        converter.unstructure(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Keys to write (new or replaced) and keys to delete, by object identity."""
    if old is new:
        return [], []
    write = [k for k, v in new.items() if old.get(k) is not v]
    gone = [k for k in old if k not in new]
    return write, gone


class SqliteStore:
    """A book and its journal in one SQLite file.

    *statement_hook*, for tests, is called before each SQL statement of a
    commit with its number (from 1): a crash test makes it stop the process.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, statement_hook: Callable[[int], None] | None = None
    ) -> None:
        self.path = Path(path)
        self._hook = statement_hook
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            # Read the version before changing anything: a newer book is
            # refused untouched.
            version = self._schema_version()
        except sqlite3.DatabaseError as error:
            msg = f"cannot open the book {self.path.name}: {error}"
            raise AdapterError(msg) from None
        if version is not None and version > SCHEMA_VERSION:
            self._db.close()
            msg = (
                f"{self.path.name} was written by a newer sourcetruth (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION}): upgrade sourcetruth"
            )
            raise SchemaVersionError(msg, file=self.path.name)
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            # Freed pages are overwritten with zeros, so an erased value does
            # not linger in the file's free space (rule 13).
            self._db.execute("PRAGMA secure_delete=ON")
            if version != SCHEMA_VERSION or self._journal_mode() != "wal":
                self._prepare(version)
        except sqlite3.DatabaseError as error:
            self._db.close()
            msg = f"cannot open the book {self.path.name}: {error}"
            raise AdapterError(msg) from None

    def __repr__(self) -> str:
        return f"SqliteStore({os.fspath(self.path)!r})"

    def _journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def _prepare(self, version: int | None) -> None:
        """Make a new file a book, upgrade an older one, and put either in WAL mode.

        The only writes an open ever makes, and only when needed: a book of
        this schema already in WAL mode is opened with no lock that a writer
        or another reader would wait on.
        """
        # WAL: readers see the last commit while a writer works, and never wait
        # for it (a read command during a long sync). The mode stays with the file.
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            if version is not None and version < SCHEMA_VERSION:
                # The tables above are all an upgrade needs: old runs read as they are.
                self._db.execute(
                    "UPDATE meta SET value=? WHERE name='schema_version'",
                    (str(SCHEMA_VERSION),),
                )

    def _schema_version(self) -> int | None:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not exists:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        if row is None:
            return None
        try:
            return int(row[0])
        except ValueError:
            msg = f"{self.path.name} records a schema version that is not a number"
            raise SourceDataError(msg, file=self.path.name) from None

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[None]:
        self._db.execute(f"BEGIN {mode}")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT too: never leave the connection inside a transaction.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def load(self) -> Book:
        """The book as the last commit left it (an empty book for a new file)."""
        try:
            with self._transaction("DEFERRED"):  # one snapshot of the file: never a torn book
                return self._load()
        except (sqlite3.DatabaseError, ValueError, TypeError) as error:
            msg = f"the book in {self.path.name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=self.path.name) from None

    def _load(self) -> Book:
        records: dict[str, dict[str, RecordState]] = {}
        for source, key, data in self._db.execute(
            "SELECT source, key, data FROM records ORDER BY source, key"
        ):
            state = converter.structure(json.loads(data), RecordState)
            records.setdefault(source, {})[key] = state
        maps: dict[str, dict[str, Any]] = {}
        for attribute, table, column, kind in _MAPS:
            rows = self._db.execute(f"SELECT {column}, data FROM {table} ORDER BY {column}")
            maps[attribute] = {k: converter.structure(json.loads(d), kind) for k, d in rows}
        suppressed = frozenset(
            d for (d,) in self._db.execute("SELECT digest FROM suppressed ORDER BY digest")
        )
        seq = self._meta("seq")
        updated = self._meta("updated_at")
        return Book(
            records=records,
            contacts=maps["contacts"],
            overrides=maps["overrides"],
            ended_overrides=maps["ended_overrides"],
            syncs=maps["syncs"],
            groups=maps["groups"],
            seq=0 if seq is None else int(seq),
            updated_at=datetime.fromisoformat(updated) if updated else None,
            suppressed=suppressed,
            suppression_check=self._meta("suppression_check") or "",
        )

    def _execute(self, count: list[int], sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        count[0] += 1
        if self._hook is not None:
            self._hook(count[0])
        return self._db.execute(sql, args)

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        """Write ``result.book`` in place of *before*, and *run*, in one transaction."""
        after = result.book
        count = [0]
        try:
            with self._transaction():
                stored = self._meta("seq")
                if (0 if stored is None else int(stored)) != before.seq:
                    msg = "the book was changed by another run since it was loaded"
                    raise ConflictError(msg)
                if after is not before:
                    self._write(before, after, count)
                if result.report.erased:
                    gone = erased_by(before, after)
                    self._redact_journal(*gone, count)
                    run = redact(run, *gone)  # the erasing run names nobody either
                self._journal(run, count)
        except sqlite3.DatabaseError as error:
            msg = f"cannot write the book {self.path.name}: {error}"
            raise AdapterError(msg, retryable=True) from None
        if result.report.erased:
            self._forget()

    def _forget(self) -> None:
        """After an erasure, leave no page of the file or its WAL holding what was erased.

        The erasure is committed already (and secure_delete has zeroed the
        freed pages), so a busy file only postpones this: the old pages are
        copied back from the WAL into the file and the WAL emptied, the file
        rebuilt, and the WAL emptied again.
        """
        try:
            self._checkpoint()
            self._db.execute("VACUUM")
            self._checkpoint()
        except sqlite3.DatabaseError as error:
            _log.warning("could not rebuild %s after an erasure: %s", self.path.name, error)

    def _checkpoint(self) -> None:
        busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # a reader still holds an old snapshot: the WAL empties at a later commit
            _log.warning("a reader kept %s's WAL from being emptied", self.path.name)

    def _journal(self, run: Run, count: list[int]) -> None:
        """Add *run* to the journal: its field changes in rows of their own, a row per contact.

        A report's changes grow with the book (an initial sync of a million
        contacts holds about five million), past what one SQLite value may
        hold; a row per contact also lets an erasure delete the person's rows.
        """
        bare = attrs.evolve(run, report=attrs.evolve(run.report, changes=()))
        cursor = self._execute(
            count,
            "INSERT INTO runs (id, input_hash, status, data) VALUES (?, ?, ?, ?)",
            (run.id, run.input_hash, run.status, _json(bare)),
        )
        n = cursor.lastrowid
        by_contact = groupby(run.report.changes, key=attrgetter("contact_id"))
        for i, (contact_id, changes) in enumerate(by_contact):
            self._execute(
                count,
                "INSERT INTO run_changes VALUES (?, ?, ?, ?)",
                (n, i, contact_id, _json(tuple(changes))),
            )

    def _redact_journal(
        self, contacts: frozenset[str], records: frozenset[str], count: list[int]
    ) -> None:
        for contact_id in sorted(contacts):
            self._execute(count, "DELETE FROM run_changes WHERE contact_id=?", (contact_id,))
        rows = self._db.execute("SELECT n, data FROM runs ORDER BY n").fetchall()
        for n, data in rows:
            run = converter.structure(json.loads(data), Run)
            kept = redact(run, contacts, records)
            if kept is not run:
                self._execute(count, "UPDATE runs SET data=? WHERE n=?", (_json(kept), n))

    def _write(self, before: Book, after: Book, count: list[int]) -> None:
        for source in sorted(set(before.records) | set(after.records)):
            old = before.records.get(source, {})
            new = after.records.get(source, {})
            write, gone = _changed(old, new)
            for key in write:
                self._execute(
                    count,
                    "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                    (source, key, _json(new[key])),
                )
            for key in gone:
                self._execute(count, "DELETE FROM records WHERE source=? AND key=?", (source, key))
        for attribute, table, column, _kind in _MAPS:
            old_map = getattr(before, attribute)
            new_map = getattr(after, attribute)
            write, gone = _changed(old_map, new_map)
            for key in write:
                self._execute(
                    count,
                    f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
                    (key, _json(new_map[key])),
                )
            for key in gone:
                self._execute(count, f"DELETE FROM {table} WHERE {column}=?", (key,))
        if after.suppressed is not before.suppressed:
            for digest in sorted(after.suppressed - before.suppressed):
                self._execute(count, "INSERT OR IGNORE INTO suppressed VALUES (?)", (digest,))
            for digest in sorted(before.suppressed - after.suppressed):
                self._execute(count, "DELETE FROM suppressed WHERE digest=?", (digest,))
        updated = "" if after.updated_at is None else after.updated_at.isoformat()
        meta = (
            ("seq", str(after.seq)),
            ("updated_at", updated),
            ("suppression_check", after.suppression_check),
        )
        for name, value in meta:
            self._execute(count, "INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def journal(self) -> tuple[Run, ...]:
        """Every run committed, oldest first."""
        changes: dict[int, list[FieldChange]] = {}
        for n, data in self._db.execute("SELECT n, data FROM run_changes ORDER BY n, i"):
            changes.setdefault(n, []).extend(
                converter.structure(json.loads(data), tuple[FieldChange, ...])
            )
        runs = []
        for n, data in self._db.execute("SELECT n, data FROM runs ORDER BY n"):
            run = converter.structure(json.loads(data), Run)
            if n in changes:  # a run of schema 1 holds its changes inline, and has no rows
                report = attrs.evolve(run.report, changes=(*run.report.changes, *changes[n]))
                run = attrs.evolve(run, report=report)
            runs.append(run)
        return tuple(runs)
