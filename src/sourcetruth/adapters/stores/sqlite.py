"""The book in SQLite (the standard library's ``sqlite3``): the embedded default store.

One row per record (with the digest of its current data and its name, so
a sync reads only the rows that changed), contact, list of
overrides, source's syncs and group, each holding that entity's JSON (the
book's own converter), and a journal of runs, each run's field changes in
rows of their own, one per contact (a contact the run created from one
record: a short entry that stands for them). A loaded book reads its rows
when asked for, all from one snapshot of the file (see
:mod:`~sourcetruth.adapters.stores._sqlite_rows`): showing one contact of a
million reads that contact's rows. A commit writes only the rows the merge
changed, found from the overlays the merge laid over the loaded book, in
one transaction. The file is in WAL mode with ``synchronous=FULL``: a
commit that returned is on disk, a crash at any point leaves the book
entirely old or entirely new, and a reader sees the last commit while a
writer works, neither waiting for the other. Opening a book of this schema
writes nothing and takes no lock another connection waits on. The schema
version is recorded; an older file is upgraded when opened, and a file
written by a newer version is refused, never half read.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import attrs

from sourcetruth._created import Created, compact, expand
from sourcetruth._digest import name_key, record_digest
from sourcetruth._overlay import changed_keys, root_of
from sourcetruth.adapters.stores._sqlite_rows import (
    OverrideTable,
    RecordTable,
    Snapshot,
    Table,
    structure_row,
)
from sourcetruth.adapters.stores._sqlite_view import VIEW_SCHEMA, ViewTable, write_view
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
#: 3: ``records.digest`` and ``records.name`` (indexed), and a created
#: contact's changes in ``run_changes`` as one short entry (a JSON object; a
#: list of changes is still read as it is); a file of schema 1 or 2 is
#: upgraded when opened.
#: 4: the current view (``current``, ``current_links``, ``meta.view_basis``);
#: an older file is upgraded with no view, which ``RefreshView`` builds.
SCHEMA_VERSION: Final = 4

_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    source TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, digest TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (source, key)
);
CREATE INDEX IF NOT EXISTS records_by_name ON records (source, name) WHERE name != '';
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
CREATE INDEX IF NOT EXISTS run_changes_by_contact ON run_changes (contact_id);
"""
    + VIEW_SCHEMA
)

#: What the records table keeps beside each row's data, for reads that need not
#: structure it: the digest of its current data, and its name as possible
#: duplicates compare it (:mod:`sourcetruth._digest`). Filled on open for a
#: file without them.
_RECORD_COLUMNS: Final = ("digest", "name")

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


class SqliteStore:
    """A book and its journal in one SQLite file.

    *statement_hook*, for tests, is called before each SQL statement of a
    commit with its number (from 1): a crash test makes it stop the process.
    """

    #: A loaded book has the current view the last commit left (see :mod:`._sqlite_view`).
    keeps_view: Final = True

    def __init__(
        self, path: str | os.PathLike[str], *, statement_hook: Callable[[int], None] | None = None
    ) -> None:
        self.path = Path(path)
        self._hook = statement_hook
        #: The snapshots of the books loaded from here and still held somewhere.
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()
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
            if (
                version != SCHEMA_VERSION
                or self._journal_mode() != "wal"
                or not self._has_record_columns()
            ):
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
            # Another process may have upgraded the file while this one waited for the lock.
            version = self._schema_version()
            if version is not None and not self._has_record_columns():
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
                for column in _RECORD_COLUMNS:
                    if column not in columns:
                        self._db.execute(
                            f"ALTER TABLE records ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"
                        )
                self._fill_digests()
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            if version is not None and version < SCHEMA_VERSION:
                # Old runs read as they are: their changes are lists, never short entries.
                self._db.execute(
                    "UPDATE meta SET value=? WHERE name='schema_version'",
                    (str(SCHEMA_VERSION),),
                )

    def _has_record_columns(self) -> bool:
        """Whether the records table has every column this version keeps beside a row's data."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        return not columns or all(column in columns for column in _RECORD_COLUMNS)

    def _fill_digests(self) -> None:
        """Give every record of an older file its digest and name (in the upgrade's transaction)."""
        last = ("", "")
        while True:
            rows = self._db.execute(
                "SELECT source, key, data FROM records WHERE (source, key) > (?, ?) "
                "ORDER BY source, key LIMIT 2048",
                last,
            ).fetchall()
            if not rows:
                return
            for source, key, data in rows:
                state = structure_row(data, RecordState)
                data = state.current.data
                self._db.execute(
                    "UPDATE records SET digest=?, name=? WHERE source=? AND key=?",
                    (record_digest(data), name_key(data), source, key),
                )
            last = (rows[-1][0], rows[-1][1])

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
        """Close the file. A book loaded from it stays readable: its snapshot closes with it."""
        self._db.close()

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def load(self) -> Book:
        """The book as the last commit left it (an empty book for a new file).

        Its records, contacts and overrides are read from the file when asked
        for, each row once, all as of this commit (one snapshot of the file,
        held until the book is dropped); the rest is read now.
        """
        try:
            snapshot = Snapshot(self.path)
        except sqlite3.DatabaseError as error:
            msg = f"cannot open the book {self.path.name}: {error}"
            raise AdapterError(msg) from None
        try:
            book = _load(snapshot)
        except (ValueError, TypeError) as error:
            snapshot.close()
            msg = f"the book in {self.path.name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=self.path.name) from None
        except BaseException:
            snapshot.close()
            raise
        self._snapshots.add(snapshot)
        return book

    def _execute(self, count: list[int], sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        count[0] += 1
        if self._hook is not None:
            self._hook(count[0])
        return self._db.execute(sql, args)

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        """Write ``result.book`` in place of *before*, and *run*, in one transaction.

        Afterwards *before*, ``result.book`` and every book made from *before*
        read the file as this commit left it: each row the merge changed was
        read (and kept) through *before* first, so they answer as they did.
        After an erasure, the other books loaded from this store are closed,
        so that no old snapshot still holds the person: reading one raises
        :class:`~sourcetruth.exceptions.ConflictError`.
        """
        after = result.book
        count = [0]
        mine = _snapshots_of(before)
        moves: list[Callable[[], None]] = []
        try:
            with self._transaction():
                stored = self._meta("seq")
                if (0 if stored is None else int(stored)) != before.seq:
                    msg = "the book was changed by another run since it was loaded"
                    raise ConflictError(msg)
                if after is not before:
                    moves = self._write(before, after, count)
                if result.report.erased:
                    gone = erased_by(before, after)
                    self._redact_journal(*gone, count)
                    run = redact(run, *gone)  # the erasing run names nobody either
                self._journal(run, count, after)
        except sqlite3.DatabaseError as error:
            msg = f"cannot write the book {self.path.name}: {error}"
            raise AdapterError(msg, retryable=True) from None
        with ExitStack() as moving:
            for snapshot in mine:
                moving.enter_context(snapshot.moved_to(after.seq))
            for move in moves:
                move()
            if result.report.erased:
                # A reader's snapshot keeps old pages in use: the others end here.
                for snapshot in list(self._snapshots):
                    if snapshot not in mine:
                        snapshot.close("stale")
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

    def _journal(self, run: Run, count: list[int], after: Book) -> None:
        """Add *run* to the journal: its field changes in rows of their own, a row per contact.

        A report's changes grow with the book (an initial sync of a million
        contacts holds about five million), past what one SQLite value may
        hold; a row per contact also lets an erasure delete the person's rows.
        A contact the run created from one record is one short entry
        (:class:`~sourcetruth._created.Created`) read back from *after*'s rows.
        """
        created = frozenset(run.report.created)
        bare = attrs.evolve(run, report=attrs.evolve(run.report, changes=()))
        cursor = self._execute(
            count,
            "INSERT INTO runs (id, input_hash, status, data) VALUES (?, ?, ?, ?)",
            (run.id, run.input_hash, run.status, _json(bare)),
        )
        n = cursor.lastrowid
        by_contact = groupby(run.report.changes, key=attrgetter("contact_id"))
        for i, (contact_id, group) in enumerate(by_contact):
            changes = tuple(group)
            short = compact(contact_id, changes, created, after) if created else None
            self._execute(
                count,
                "INSERT INTO run_changes VALUES (?, ?, ?, ?)",
                (n, i, contact_id, _json(changes if short is None else short)),
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

    def _write(self, before: Book, after: Book, count: list[int]) -> list[Callable[[], None]]:
        """Write the rows that differ; what tells each table *before* reads how its rows moved."""
        moves: list[Callable[[], None]] = []

        def moved(old: Mapping[str, Any], write: list[str], gone: list[str]) -> None:
            root = root_of(old)
            if isinstance(root, Table) and (write or gone):
                added = [k for k in write if k not in old]
                moves.append(lambda: root.moved(added, gone))

        for source in sorted(set(before.records) | set(after.records)):
            old = before.records.get(source, {})
            new = after.records.get(source, {})
            write, gone = changed_keys(old, new)
            moved(old, write, gone)
            for key in write:
                state = new[key]
                data = state.current.data
                self._execute(
                    count,
                    "INSERT OR REPLACE INTO records (source, key, data, digest, name) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (source, key, _json(state), record_digest(data), name_key(data)),
                )
            for key in gone:
                self._execute(count, "DELETE FROM records WHERE source=? AND key=?", (source, key))
        for attribute, table, column, _kind in _MAPS:
            old_map = getattr(before, attribute)
            new_map = getattr(after, attribute)
            write, gone = changed_keys(old_map, new_map)
            moved(old_map, write, gone)
            for key in write:
                self._execute(
                    count,
                    f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
                    (key, _json(new_map[key])),
                )
            for key in gone:
                self._execute(count, f"DELETE FROM {table} WHERE {column}=?", (key,))
        viewed = write_view(lambda sql, args: self._execute(count, sql, args), before, after)
        old_view = root_of(before.view)
        if viewed is not None:
            moved(before.view, *viewed)
        elif isinstance(old_view, ViewTable):
            keys = list(after.view)
            moves.append(lambda: old_view.rewritten(keys))
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
        return moves

    def journal(self) -> tuple[Run, ...]:
        """Every run committed, oldest first (read from one snapshot of the file)."""
        try:
            snapshot = Snapshot(self.path)
        except sqlite3.DatabaseError as error:
            msg = f"cannot open the book {self.path.name}: {error}"
            raise AdapterError(msg) from None
        try:
            return _journal_of(snapshot)
        except (ValueError, TypeError) as error:
            msg = f"the journal in {self.path.name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=self.path.name) from None
        finally:
            snapshot.close()


#: The sources that hold records, one index step each (not a scan of every record).
_SOURCES: Final = """
WITH RECURSIVE s(source) AS (
    SELECT min(source) FROM records
    UNION ALL
    SELECT (SELECT min(source) FROM records WHERE source > s.source) FROM s
    WHERE s.source IS NOT NULL
)
SELECT source FROM s WHERE source IS NOT NULL
"""


def _load(snapshot: Snapshot) -> Book:
    """The book *snapshot* holds: its big maps read lazily, the rest now."""
    meta = dict(snapshot.rows("SELECT name, value FROM meta"))
    records: dict[str, Mapping[str, RecordState]] = {
        source: RecordTable(snapshot, RecordState, source) for (source,) in snapshot.rows(_SOURCES)
    }
    small: dict[str, dict[str, Any]] = {}
    for attribute, table, column, kind in _MAPS[3:]:
        rows = snapshot.rows(f"SELECT {column}, data FROM {table} ORDER BY {column}")
        small[attribute] = {k: structure_row(d, kind) for k, d in rows}
    suppressed = frozenset(
        d for (d,) in snapshot.rows("SELECT digest FROM suppressed ORDER BY digest")
    )
    seq = meta.get("seq")
    updated = meta.get("updated_at")
    basis = meta.get("view_basis") or ""
    return Book(
        records=records,
        contacts=Table(snapshot, "contacts", "id", ContactEntry),
        overrides=OverrideTable(snapshot, tuple[Override, ...]),
        ended_overrides=Table(snapshot, "ended_overrides", "contact_id", tuple[EndedOverride, ...]),
        syncs=small["syncs"],
        groups=small["groups"],
        seq=0 if seq is None else int(seq),
        updated_at=datetime.fromisoformat(updated) if updated else None,
        suppressed=suppressed,
        suppression_check=meta.get("suppression_check") or "",
        view=ViewTable(snapshot) if basis else {},
        view_basis=basis,
    )


def _snapshots_of(book: Book) -> set[Snapshot]:
    """The snapshots *book*'s maps read from (one, for a book loaded from a store)."""
    maps: list[Mapping[str, Any]] = [
        *book.records.values(),
        book.contacts,
        book.overrides,
        book.ended_overrides,
        book.view,
    ]
    return {root.snapshot for root in map(root_of, maps) if isinstance(root, Table)}


def _journal_of(snapshot: Snapshot) -> tuple[Run, ...]:
    """Every run *snapshot* holds, a created contact's short entry read back as its changes."""
    book: Book | None = None
    changes: dict[int, list[FieldChange]] = {}
    for n, contact_id, data in snapshot.rows(
        "SELECT n, contact_id, data FROM run_changes ORDER BY n, i"
    ):
        if data.startswith("{"):
            book = book or _load(snapshot)
            found = expand(structure_row(data, Created), contact_id, book)
        else:
            found = structure_row(data, tuple[FieldChange, ...])
        changes.setdefault(n, []).extend(found)
    runs = []
    for n, data in snapshot.rows("SELECT n, data FROM runs ORDER BY n"):
        run = structure_row(data, Run)
        if n in changes:  # a run of schema 1 holds its changes inline, and has no rows
            report = attrs.evolve(run.report, changes=(*run.report.changes, *changes[n]))
            run = attrs.evolve(run, report=report)
        runs.append(run)
    return tuple(runs)
