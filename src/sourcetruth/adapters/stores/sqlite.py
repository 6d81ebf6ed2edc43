"""The book in SQLite (the standard library's ``sqlite3``): the embedded default store.

The book's rows are those of :mod:`~sourcetruth.adapters.stores._rowstore`,
which the PostgreSQL store shares: a loaded book reads its rows when asked
for, all from one snapshot of the file (see
:mod:`~sourcetruth.adapters.stores._rows`), so showing one contact of a
million reads that contact's rows, and a commit writes only the rows the
merge changed, in one transaction. The file is in WAL mode with ``synchronous=FULL``: a
commit that returned is on disk, a crash at any point leaves the book
entirely old or entirely new, and a reader sees the last commit while a
writer works, neither waiting for the other. Opening a book of this schema
writes nothing and takes no lock another connection waits on. The schema
version is recorded; an older file is upgraded when opened, and a file
written by a newer version is refused, never half read.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sourcetruth._digest import name_key, record_digest
from sourcetruth.adapters.stores._rows import SQLITE, ConnectionSnapshot, structure_row
from sourcetruth.adapters.stores._rowstore import RowStore
from sourcetruth.adapters.stores._view import VIEW_SCHEMA
from sourcetruth.exceptions import AdapterError, SchemaVersionError, SourceDataError
from sourcetruth.model import RecordState

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


class SqliteSnapshot(ConnectionSnapshot):
    """One read transaction on the file at *path*: the book as of one commit.

    Its own connection, in WAL mode: it keeps seeing the book as of one
    commit, whatever another connection or process commits meanwhile, and
    never takes the write lock.
    """

    dialect = SQLITE
    errors = (sqlite3.DatabaseError,)

    def __init__(self, path: Path) -> None:
        # check_same_thread off: a book may be read from any thread; the lock serialises.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Never a write through here. Not opened read-only (mode=ro): a book may
        # outlive its store, and the last connection to close empties the WAL.
        db.execute("PRAGMA query_only=ON")
        super().__init__(path.name, db, db.close)

    def _query(self, db: Any, sql: str, args: tuple[Any, ...]) -> Any:
        return db.execute(sql, args)

    def _begin(self, db: Any) -> None:
        db.execute("BEGIN")

    def _end(self, db: Any) -> None:
        db.execute("ROLLBACK")


class SqliteStore(RowStore):
    """A book and its journal in one SQLite file.

    *statement_hook*, for tests, is called before each SQL statement of a
    commit with its number (from 1): a crash test makes it stop the process.
    """

    dialect = SQLITE
    database_errors = (sqlite3.DatabaseError,)

    def __init__(
        self, path: str | os.PathLike[str], *, statement_hook: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(statement_hook)
        self.path = Path(path)
        self.name = self.path.name
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

    def _snapshot(self) -> SqliteSnapshot:
        return SqliteSnapshot(self.path)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    def _stored_seq(self) -> int:
        # BEGIN IMMEDIATE took the file's write lock: no other writer until COMMIT.
        row = self._db.execute("SELECT value FROM meta WHERE name='seq'").fetchone()
        return 0 if row is None else int(row[0])

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
