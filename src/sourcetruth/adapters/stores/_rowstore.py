"""What the SQLite and PostgreSQL stores share: a book in rows, a commit of those that changed.

A store of this kind keeps one row per record (with the digest of its
current data and its name, so a sync reads only the rows that changed),
contact, list of overrides, source's syncs and group, each holding that
entity's JSON (the book's own converter); the current view (see
:mod:`~sourcetruth.adapters.stores._view`); and a journal of runs, each
run's field changes in rows of their own, one per contact (a contact the
run created from one record: a short entry that stands for them). A loaded
book reads its rows when asked for, all from one :class:`~._rows.Snapshot`;
a commit writes only the rows the merge changed, found from the overlays
the merge laid over the loaded book, in one transaction.

:class:`RowStore` is that logic over a database connection; a subclass
says how to open a snapshot, run a statement, hold a transaction, lock
the book against a second writer, and make the database forget after an
erasure.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from typing import Any, Final

import attrs

from sourcetruth._created import Created, compact, expand
from sourcetruth._digest import name_key, record_digest
from sourcetruth._overlay import changed_keys, root_of
from sourcetruth.adapters.stores._rows import (
    Dialect,
    OverrideTable,
    RecordTable,
    Snapshot,
    Table,
    structure_row,
)
from sourcetruth.adapters.stores._view import ViewTable, write_view
from sourcetruth.exceptions import AdapterError, ConflictError, SourceDataError
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

__all__ = ["MAPS", "RowStore", "dump_json", "load_book"]

_log = logging.getLogger(__name__)

#: The book's flat maps: attribute, table, key column, and the type of one value.
MAPS: Final[tuple[tuple[str, str, str, Any], ...]] = (
    ("contacts", "contacts", "id", ContactEntry),
    ("overrides", "overrides", "contact_id", tuple[Override, ...]),
    ("ended_overrides", "ended_overrides", "contact_id", tuple[EndedOverride, ...]),
    ("syncs", "syncs", "source", tuple[SyncRecord, ...]),
    ("groups", "groups", "name", tuple[GroupVersion, ...]),
)

_RECORD_COLUMNS: Final = ("source", "key", "data", "digest", "name")


def dump_json(value: object) -> str:
    """*value* as a row's JSON: the converter's form, keys sorted, nothing needlessly escaped."""
    return json.dumps(
        converter.unstructure(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


class RowStore:
    """A book and its journal in a database's rows (see the module's text).

    A subclass sets :attr:`name` (what errors call the book), :attr:`dialect`
    and :attr:`database_errors`, and implements :meth:`_snapshot`,
    :meth:`_run`, :meth:`_transaction`, :meth:`_stored_seq` and
    :meth:`_forget` (and :meth:`_forget_pending`, if forgetting can be put
    off). *statement_hook*, for tests, is called before each statement of a
    commit with its number (from 1): a crash test makes it stop.
    """

    #: A loaded book has the current view the last commit left (see :mod:`._view`).
    keeps_view: Final = True
    dialect: Dialect
    database_errors: tuple[type[Exception], ...]
    name: str

    def __init__(self, statement_hook: Callable[[int], None] | None) -> None:
        self._hook = statement_hook
        #: The snapshots of the books loaded from here and still held somewhere.
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()

    # -- what a subclass provides ---------------------------------------------------

    def _snapshot(self) -> Snapshot:
        """A new read transaction on the book (raising the database's own error)."""
        raise NotImplementedError

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """Run one statement on the writing connection; its cursor."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        """One write transaction on the writing connection, rolled back on any error."""
        raise NotImplementedError

    def _stored_seq(self) -> int:
        """The seq of the committed book, read in the transaction, holding off any other writer."""
        raise NotImplementedError

    def _forget(self) -> None:
        """After an erasure is committed, make the database keep no copy of what it erased.

        Also called after a commit that finds an earlier erasure's forgetting
        unfinished (see :meth:`_forget_pending`).
        """
        raise NotImplementedError

    def _forget_pending(self) -> bool:
        """Whether an earlier erasure left forgetting to do, found by the last commit's lock."""
        return False

    # -- reading --------------------------------------------------------------------

    def load(self) -> Book:
        """The book as the last commit left it (an empty book for a new store).

        Its records, contacts and overrides are read when asked for, each row
        once, all as of this commit (one snapshot, held until the book is
        dropped); the rest is read now.
        """
        try:
            snapshot = self._snapshot()
        except self.database_errors as error:
            msg = f"cannot open the book {self.name}: {error}"
            raise AdapterError(msg) from None
        try:
            book = load_book(snapshot)
        except (ValueError, TypeError) as error:
            snapshot.close()
            msg = f"the book in {self.name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=self.name) from None
        except BaseException:
            snapshot.close()
            raise
        self._snapshots.add(snapshot)
        return book

    def journal(self) -> tuple[Run, ...]:
        """Every run committed, oldest first (read from one snapshot)."""
        try:
            snapshot = self._snapshot()
        except self.database_errors as error:
            msg = f"cannot open the book {self.name}: {error}"
            raise AdapterError(msg) from None
        try:
            return _journal_of(snapshot)
        except (ValueError, TypeError) as error:
            msg = f"the journal in {self.name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=self.name) from None
        finally:
            snapshot.close()

    # -- writing --------------------------------------------------------------------

    def _execute(self, count: list[int], sql: str, args: tuple[Any, ...]) -> Any:
        count[0] += 1
        if self._hook is not None:
            self._hook(count[0])
        return self._run(sql, args)

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        """Write ``result.book`` in place of *before*, and *run*, in one transaction.

        Afterwards *before*, ``result.book`` and every book made from *before*
        read the store as this commit left it: each row the merge changed was
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
                if self._stored_seq() != before.seq:
                    msg = "the book was changed by another run since it was loaded"
                    raise ConflictError(msg)
                if after is not before:
                    moves = self._write(before, after, count)
                if result.report.erased:
                    gone = erased_by(before, after)
                    self._redact_journal(*gone, count)
                    run = redact(run, *gone)  # the erasing run names nobody either
                self._journal(run, count, after)
        except self.database_errors as error:
            msg = f"cannot write the book {self.name}: {error}"
            raise AdapterError(msg, retryable=True) from None
        with ExitStack() as moving:
            for snapshot in mine:
                moving.enter_context(snapshot.moved_to(after.seq))
            for move in moves:
                move()
            if result.report.erased:
                # A reader's snapshot keeps old rows in use: the others end here.
                for snapshot in list(self._snapshots):
                    if snapshot not in mine:
                        snapshot.close("stale")
            # While this book's own snapshots have let go of the store.
            if result.report.erased or self._forget_pending():
                self._forget()

    def _journal(self, run: Run, count: list[int], after: Book) -> None:
        """Add *run* to the journal: its field changes in rows of their own, a row per contact.

        A report's changes grow with the book (an initial sync of a million
        contacts holds about five million), past what one value may hold; a
        row per contact also lets an erasure delete the person's rows. A
        contact the run created from one record is one short entry
        (:class:`~sourcetruth._created.Created`) read back from *after*'s rows.
        """
        created = frozenset(run.report.created)
        bare = attrs.evolve(run, report=attrs.evolve(run.report, changes=()))
        cursor = self._execute(
            count,
            "INSERT INTO runs (id, input_hash, status, data) VALUES (?, ?, ?, ?) RETURNING n",
            (run.id, run.input_hash, run.status, dump_json(bare)),
        )
        n = cursor.fetchone()[0]
        by_contact = groupby(run.report.changes, key=attrgetter("contact_id"))
        for i, (contact_id, group) in enumerate(by_contact):
            changes = tuple(group)
            short = compact(contact_id, changes, created, after) if created else None
            self._execute(
                count,
                "INSERT INTO run_changes (n, i, contact_id, data) VALUES (?, ?, ?, ?)",
                (n, i, contact_id, dump_json(changes if short is None else short)),
            )

    def _redact_journal(
        self, contacts: frozenset[str], records: frozenset[str], count: list[int]
    ) -> None:
        for contact_id in sorted(contacts):
            self._execute(count, "DELETE FROM run_changes WHERE contact_id=?", (contact_id,))
        rows = self._run("SELECT n, data FROM runs ORDER BY n").fetchall()
        for n, data in rows:
            run = converter.structure(json.loads(data), Run)
            kept = redact(run, contacts, records)
            if kept is not run:
                self._execute(count, "UPDATE runs SET data=? WHERE n=?", (dump_json(kept), n))

    def _write(self, before: Book, after: Book, count: list[int]) -> list[Callable[[], None]]:
        """Write the rows that differ; what tells each table *before* reads how its rows moved."""
        moves: list[Callable[[], None]] = []
        self._write_records(before, after, count, moves)
        self._write_maps(before, after, count, moves)
        self._write_view(before, after, count, moves)
        self._write_suppressed_and_meta(before, after, count)
        return moves

    def _write_records(
        self, before: Book, after: Book, count: list[int], moves: list[Callable[[], None]]
    ) -> None:
        """Each source's records that changed, with their digest and name key beside them."""
        write_record = self.dialect.upsert("records", _RECORD_COLUMNS, ("source", "key"))
        for source in sorted(set(before.records) | set(after.records)):
            old = before.records.get(source, {})
            new = after.records.get(source, {})
            write, gone = changed_keys(old, new)
            _moved(moves, old, write, gone)
            for key in write:
                state = new[key]
                data = state.current.data
                self._execute(
                    count,
                    write_record,
                    (source, key, dump_json(state), record_digest(data), name_key(data)),
                )
            for key in gone:
                self._execute(count, "DELETE FROM records WHERE source=? AND key=?", (source, key))

    def _write_maps(
        self, before: Book, after: Book, count: list[int], moves: list[Callable[[], None]]
    ) -> None:
        """The rows of the book's flat maps (:data:`MAPS`) that changed."""
        for attribute, table, column, _kind in MAPS:
            old_map = getattr(before, attribute)
            new_map = getattr(after, attribute)
            write, gone = changed_keys(old_map, new_map)
            _moved(moves, old_map, write, gone)
            write_row = self.dialect.upsert(table, (column, "data"), (column,))
            for key in write:
                self._execute(count, write_row, (key, dump_json(new_map[key])))
            for key in gone:
                self._execute(count, f"DELETE FROM {table} WHERE {column}=?", (key,))

    def _write_view(
        self, before: Book, after: Book, count: list[int], moves: list[Callable[[], None]]
    ) -> None:
        """The current view's rows that changed, or the whole view when it was rebuilt."""
        viewed = write_view(
            lambda sql, args: self._execute(count, sql, args), before, after, self.dialect
        )
        old_view = root_of(before.view)
        if viewed is not None:
            _moved(moves, before.view, *viewed)
        elif isinstance(old_view, ViewTable):
            keys = list(after.view)
            moves.append(lambda: old_view.rewritten(keys))

    def _write_suppressed_and_meta(self, before: Book, after: Book, count: list[int]) -> None:
        """The erased records' digests that changed, and the book's seq, time and check."""
        upsert = self.dialect.upsert
        if after.suppressed is not before.suppressed:
            add = upsert("suppressed", ("digest",), ("digest",))
            for digest in sorted(after.suppressed - before.suppressed):
                self._execute(count, add, (digest,))
            for digest in sorted(before.suppressed - after.suppressed):
                self._execute(count, "DELETE FROM suppressed WHERE digest=?", (digest,))
        updated = "" if after.updated_at is None else after.updated_at.isoformat()
        meta = (
            ("seq", str(after.seq)),
            ("updated_at", updated),
            ("suppression_check", after.suppression_check),
        )
        write_meta = upsert("meta", ("name", "value"), ("name",))
        for name, value in meta:
            self._execute(count, write_meta, (name, value))


def _moved(
    moves: list[Callable[[], None]], old: Mapping[str, Any], write: list[str], gone: list[str]
) -> None:
    """Add to *moves* what tells *old*'s table, if it reads a snapshot, how its keys moved."""
    root = root_of(old)
    if isinstance(root, Table) and (write or gone):
        added = [k for k in write if k not in old]
        moves.append(lambda: root.moved(added, gone))


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


def load_book(snapshot: Snapshot) -> Book:
    """The book *snapshot* holds: its big maps read lazily, the rest now."""
    meta = dict(snapshot.rows("SELECT name, value FROM meta"))
    records: dict[str, Mapping[str, RecordState]] = {
        source: RecordTable(snapshot, RecordState, source) for (source,) in snapshot.rows(_SOURCES)
    }
    small: dict[str, dict[str, Any]] = {}
    for attribute, table, column, kind in MAPS[3:]:
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
            book = book or load_book(snapshot)
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
