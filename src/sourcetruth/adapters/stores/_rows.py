"""A loaded book's rows, read when asked for, all from one snapshot of its store.

A :class:`Snapshot` is one read transaction on its own connection (the
SQLite and PostgreSQL stores each have theirs): it keeps seeing the book as
of one commit, whatever another connection or process commits meanwhile,
and takes no lock a writer waits on. :class:`Table` is a read-only
mapping over one table (or one source's records) of that snapshot: a key
looked up reads and structures that row only, and keeps it; iterating
reads the keys (or the rows, for the items) a page at a time, in key
order; ``len`` counts.

A snapshot's connection is closed when nothing holds the book any more (a
weak finalizer: a book outlives the store it was loaded from, as a value
should), or when an erasure must make the store forget; a read after that
raises a typed error, never the database driver's.
"""

from __future__ import annotations

import heapq
import json
import threading
import weakref
from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import Any, Final, Protocol, TypeVar

from attrs import frozen

from sourcetruth._digest import name_key, record_digest
from sourcetruth._overlay import StreamedItems, StreamedValues
from sourcetruth.exceptions import AdapterError, ConflictError, SourceDataError
from sourcetruth.serialise import converter

__all__ = [
    "PAGE",
    "POSTGRES",
    "SQLITE",
    "ConnectionSnapshot",
    "Dialect",
    "OverrideTable",
    "RecordTable",
    "Snapshot",
    "Table",
    "structure_row",
]

V = TypeVar("V")

#: Rows read per query while iterating: a page, so no cursor stays open between reads.
PAGE: Final = 2048

_ABSENT: Final = object()


def structure_row(text: str, kind: Any) -> Any:
    """One stored row's JSON as the model object *kind* (every lazy read comes through here)."""
    return converter.structure(json.loads(text), kind)


class Snapshot(Protocol):
    """One read transaction on a store: the book as of one commit.

    The SQLite store's is a read transaction on its own connection to the
    file; PostgreSQL's a ``REPEATABLE READ`` transaction on its own
    connection. Queries are written with ``?`` marks; :attr:`dialect` says
    how the store's SQL differs where the two databases do.
    """

    @property
    def name(self) -> str:
        """What errors call the book: a file's name, or a database book's school id."""
        ...

    @property
    def dialect(self) -> Dialect: ...

    @property
    def closed(self) -> bool: ...

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]: ...

    def pairs(self, sql: str, args: tuple[Any, ...] = ()) -> dict[Any, Any]: ...

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Any: ...

    def close(self, why: str = "closed") -> None: ...

    def moved_to(self, seq: int) -> AbstractContextManager[None]: ...


@frozen
class Dialect:
    """Where a store's SQL differs between SQLite and PostgreSQL.

    ``with_until`` is the query of the contacts holding an override with an
    ``until``; ``records_of`` the query of a selection's records, with
    ``{at}`` for where a view row holds them and ``{where}`` for the
    selection; :meth:`upsert` the statement that writes one row by its key.
    ``expiring`` the query of the view's rows that hold only until an
    override's ``until`` (by a partial index on ``expires``).
    ``book_key`` names the columns every key starts with (PostgreSQL's
    ``book``; none for SQLite's one book a file).
    """

    name: str
    with_until: str
    records_of: str
    expiring: str
    book_key: tuple[str, ...] = ()

    def upsert(self, table: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
        """The statement writing one row of *table* (*columns*, keyed by *keys*), new or not."""
        marks = ", ".join("?" * len(columns))
        listed = ", ".join(columns)
        if not self.book_key:
            verb = "INSERT OR IGNORE" if set(columns) == set(keys) else "INSERT OR REPLACE"
            return f"{verb} INTO {table} ({listed}) VALUES ({marks})"
        conflict = ", ".join((*self.book_key, *keys))
        rest = [c for c in columns if c not in keys]
        action = (
            "DO UPDATE SET " + ", ".join(f"{c}=EXCLUDED.{c}" for c in rest)
            if rest
            else "DO NOTHING"
        )
        return f"INSERT INTO {table} ({listed}) VALUES ({marks}) ON CONFLICT ({conflict}) {action}"


class ConnectionSnapshot:
    """A :class:`Snapshot` on a connection of its own, which it closes when dropped.

    A subclass sets :attr:`dialect` and :attr:`errors` (the driver's
    exceptions) and says how to run a query, begin the read transaction and
    end it; it is begun here, so the snapshot is taken as it is made.
    """

    dialect: Dialect
    errors: tuple[type[Exception], ...]

    def __init__(self, name: str, db: Any, close_db: Callable[[], None]) -> None:
        self.name = name
        self._db: Any = db
        # A book outlives the store it was loaded from, as a value should: its
        # connection closes when nothing holds the book any more.
        self._finalizer = weakref.finalize(self, close_db)
        self._lock = threading.RLock()
        self._why_closed = ""
        self._begin(db)

    def _query(self, db: Any, sql: str, args: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    def _begin(self, db: Any) -> None:
        raise NotImplementedError

    def _end(self, db: Any) -> None:
        raise NotImplementedError

    def _read_error(self, error: Exception) -> Exception:
        """The typed error for the driver's *error* while reading (a book that cannot be read)."""
        msg = f"the book in {self.name} cannot be read: {type(error).__name__}"
        return SourceDataError(msg, file=self.name)

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of one query, read in this snapshot."""
        with self._lock:
            db = self._open()
            try:
                return self._query(db, sql, args).fetchall()  # type: ignore[no-any-return]
            except self.errors as error:
                raise self._read_error(error) from None

    def pairs(self, sql: str, args: tuple[Any, ...] = ()) -> dict[Any, Any]:
        """The rows of a query of two columns as a dict, read straight from the cursor.

        No list of the rows is made first: a million keys and digests are
        held once, in the dict.
        """
        with self._lock:
            db = self._open()
            try:
                return dict(self._query(db, sql, args))
            except self.errors as error:
                raise self._read_error(error) from None

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        found = self.rows(sql, args)
        return found[0] if found else None

    def _open(self) -> Any:
        if self._db is None:
            if self._why_closed == "stale":
                msg = (
                    f"this book was loaded from {self.name} before a later change that "
                    "it cannot see (an erasure, or another run): load it again"
                )
                raise ConflictError(msg)
            msg = f"the store of this book ({self.name}) was closed: open it and load again"
            raise AdapterError(msg)
        return self._db

    @property
    def closed(self) -> bool:
        return self._db is None

    def close(self, why: str = "closed") -> None:
        """End the snapshot; a read after it raises (``why``: "closed" or "stale")."""
        with self._lock:
            if self._db is not None:
                self._finalizer()
                self._db = None
                self._why_closed = why

    @contextmanager
    def moved_to(self, seq: int) -> Iterator[None]:
        """Let go of the book while the body runs, then read it again as of merge *seq*.

        For the store's own commit: the caller's book asked nothing of the
        store that the merge changed without keeping it, so the same book
        reads the same values from the new commit. If another run has
        committed meanwhile, the snapshot is closed as stale.
        """
        with self._lock:
            db = self._db
            if db is None:
                yield
                return
            self._end(db)
            try:
                yield
            finally:
                try:
                    self._begin(db)
                    seq_sql = "SELECT value FROM meta WHERE name='seq'"
                    found = self._query(db, seq_sql, ()).fetchall()
                    now = int(found[0][0]) if found else 0
                except self.errors:
                    now = -1
                except ValueError:
                    now = -1
                if now != seq:
                    self.close("stale")


class Table(Mapping[str, V]):
    """One table of a :class:`Snapshot` (or one source's records), read a row at a time.

    *where* selects the rows (``source=?`` for records, with *args*);
    *column* is the key column; each row's ``data`` is structured as *kind*.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        table: str,
        column: str,
        kind: Any,
        where: str = "TRUE",
        args: tuple[Any, ...] = (),
    ) -> None:
        self.snapshot = snapshot
        self._kind = kind
        self._args = args
        self._one = f"SELECT data FROM {table} WHERE {where} AND {column}=?"
        self._first_keys = f"SELECT {column} FROM {table} WHERE {where} ORDER BY {column} LIMIT ?"
        self._next_keys = (
            f"SELECT {column} FROM {table} WHERE {where} AND {column}>? ORDER BY {column} LIMIT ?"
        )
        self._first_items = (
            f"SELECT {column}, data FROM {table} WHERE {where} ORDER BY {column} LIMIT ?"
        )
        self._next_items = (
            f"SELECT {column}, data FROM {table} WHERE {where} AND {column}>? "
            f"ORDER BY {column} LIMIT ?"
        )
        self._before = (
            f"SELECT {column} FROM {table} WHERE {where} AND {column}<? "
            f"ORDER BY {column} DESC LIMIT ?"
        )
        self._from = (
            f"SELECT {column} FROM {table} WHERE {where} AND {column}>=? ORDER BY {column} LIMIT ?"
        )
        self._count = f"SELECT count(*) FROM {table} WHERE {where}"
        self._any = f"SELECT 1 FROM {table} WHERE {where} LIMIT 1"
        self._cache: dict[str, Any] = {}
        self._length: int | None = None
        # Once the snapshot has moved on to a later commit (see Snapshot.moved_to):
        # the keys it holds that this table did not, and those this table held that it lost.
        self._hidden: set[str] = set()
        self._extra: set[str] = set()
        self._moved = False

    def __repr__(self) -> str:
        return f"<rows of {self.snapshot.name}: {len(self._cache)} read>"

    def __reduce__(self) -> Any:
        msg = "a book loaded from a database reads it: copy it with dict() or dumps() to send it"
        raise TypeError(msg)

    def _structured(self, key: str, text: str) -> V:
        try:
            value = structure_row(text, self._kind)
        except (ValueError, TypeError) as error:
            name = self.snapshot.name
            msg = f"the book in {name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=name) from None
        kept: V = self._cache.setdefault(key, value)  # two threads: the first read wins
        return kept

    def moved(self, added: list[str], removed: list[str]) -> None:
        """The snapshot moves on past a commit that *added* and *removed* these keys.

        The table still answers as loaded: its values of the keys the commit
        changed are kept already, and its keys are the snapshot's corrected by these.
        """
        self._moved = True
        for key in added:
            if key in self._extra:
                self._extra.discard(key)
            else:
                self._hidden.add(key)
        for key in removed:
            if key in self._hidden:
                self._hidden.discard(key)
            else:
                self._extra.add(key)

    def __getitem__(self, key: str) -> V:
        found = self._cache.get(key, _ABSENT)
        if found is _ABSENT:
            if not isinstance(key, str) or key in self._hidden:
                raise KeyError(key)
            row = self.snapshot.one(self._one, (*self._args, key))
            if row is None:
                self._cache.setdefault(key, None)
                raise KeyError(key)
            return self._structured(key, row[0])
        if found is None:  # known absent: no stored row is null
            raise KeyError(key)
        value: V = found
        return value

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        if self._length is None:
            stored = int(self.snapshot.one(self._count, self._args)[0])
            self._length = stored - len(self._hidden) + len(self._extra)
        return self._length

    def __bool__(self) -> bool:
        # Mapping's truth would count every row: one row answers, at any size.
        if self._length is not None or self._hidden:
            return len(self) > 0
        return bool(self._extra) or self.snapshot.one(self._any, self._args) is not None

    def around(self, key: str, n: int) -> list[str]:
        """Up to *n* keys either side of *key* in key order (*key* too, if held), in order.

        Two reads of the key's index, whatever the table's size: what a
        "did you mean" looks at for a key that is not held.
        """
        before = [k for (k,) in self.snapshot.rows(self._before, (*self._args, key, n))]
        after = [k for (k,) in self.snapshot.rows(self._from, (*self._args, key, n))]
        near = [*reversed(before), *after, *(k for k in self._extra if k >= key)]
        return sorted(k for k in dict.fromkeys(near) if k not in self._hidden)

    def _pages(self, first: str, following: str) -> Iterator[Any]:
        rows = self.snapshot.rows(first, (*self._args, PAGE))
        while rows:
            yield from rows
            if len(rows) < PAGE:
                return
            rows = self.snapshot.rows(following, (*self._args, rows[-1][0], PAGE))

    def __iter__(self) -> Iterator[str]:
        stored = (key for (key,) in self._pages(self._first_keys, self._next_keys))
        for key in heapq.merge(stored, sorted(self._extra)):
            if key not in self._hidden:
                yield key

    def iter_items(self) -> Iterator[tuple[str, V]]:
        """Every row, in key order, each structured once (kept ones are not read again)."""
        stored = self._pages(self._first_items, self._next_items)
        extra = ((key, None) for key in sorted(self._extra))
        for key, text in heapq.merge(stored, extra, key=itemgetter(0)):
            if key in self._hidden:
                continue
            found = self._cache.get(key, _ABSENT)
            if found is _ABSENT or found is None:
                yield key, self._structured(key, text)
            else:
                yield key, found

    def items(self) -> ItemsView[str, V]:
        return StreamedItems(self)

    def values(self) -> ValuesView[V]:
        return StreamedValues(self)


class OverrideTable(Table[Any]):
    """The overrides, which also say which contacts hold one with an ``until``, unread.

    Every merge ends the overrides whose ``until`` has passed; most
    overrides have none ("until the next sync"), so reading only the
    contacts that hold one keeps an edit's cost flat in the number of edits.
    """

    def __init__(self, snapshot: Snapshot, kind: Any) -> None:
        super().__init__(snapshot, "overrides", "contact_id", kind)

    def with_until(self) -> set[str]:
        """The contacts holding an override with an ``until``, and maybe others (never fewer)."""
        found = {key for (key,) in self.snapshot.rows(self.snapshot.dialect.with_until)}
        if self._moved:
            # The snapshot moved on past a commit: the table answers as loaded,
            # so what it kept may hold one, and what it lost is not its own.
            found.update(key for key, value in self._cache.items() if value is not None)
            found.update(self._extra)
            found -= self._hidden
        return found


#: Names asked for per query (well under either database's limit on a statement's parameters).
_NAMES_PER_QUERY: Final = 500


class RecordTable(Table[Any]):
    """One source's records, which also answer from their indexed columns without reading rows.

    The store keeps beside each row the digest of its current data and its
    name key (:mod:`~sourcetruth._digest`): :meth:`digests` and
    :meth:`keys_named` read those columns, and a sync reads the rows of the
    records whose digest differs only. After the snapshot has moved on past
    a commit, both answer for the table as loaded (from the rows it kept).
    """

    def __init__(self, snapshot: Snapshot, kind: Any, source: str) -> None:
        super().__init__(snapshot, "records", "key", kind, "source=?", (source,))

    def digests(self) -> dict[str, str]:
        """Every record's key, and the digest of its current data (departed ones included)."""
        found: dict[str, str] = self.snapshot.pairs(
            "SELECT key, digest FROM records WHERE source=?", self._args
        )
        if self._moved:
            self._as_loaded(found, lambda value: record_digest(value.current.data))
        return found

    def keys_named(self, names: set[str]) -> set[str]:
        """The keys of the records whose current name key is one of *names*, and maybe others.

        A caller reads the records and checks their names: after the snapshot
        has moved on, every key the table kept is among these.
        """
        wanted = sorted(names)
        keys: set[str] = set()
        for start in range(0, len(wanted), _NAMES_PER_QUERY):
            chunk = wanted[start : start + _NAMES_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            rows = self.snapshot.rows(
                f"SELECT key FROM records WHERE source=? AND name!='' AND name IN ({marks})",
                (*self._args, *chunk),
            )
            keys.update(key for (key,) in rows)
        if self._moved:
            found = dict.fromkeys(keys, "")
            self._as_loaded(found, lambda value: name_key(value.current.data))
            keys = set(found)
        return keys

    def _as_loaded(self, found: dict[str, str], value_of: Callable[[Any], str]) -> None:
        """Correct *found*, read from the moved snapshot, to the table as loaded."""
        for key in self._hidden:
            found.pop(key, None)
        for key, value in list(self._cache.items()):
            if value is None:
                found.pop(key, None)
            else:
                found[key] = value_of(value)


#: SQLite's: the overrides' ``until`` and a view row's records found inside the rows' JSON
#: by SQLite itself (no row becomes an object), and one book a file.
SQLITE: Final = Dialect(
    name="sqlite",
    with_until="""
SELECT contact_id FROM overrides WHERE EXISTS (
    SELECT 1 FROM json_each(overrides.data) AS o WHERE json_extract(o.value, '$.until') IS NOT NULL
) ORDER BY contact_id
""",
    records_of=(
        "SELECT current.contact_id, r.value FROM current, json_each(current.data, '$[{at}]') AS r "
        "WHERE {where} AND expires=0"
    ),
    expiring="SELECT contact_id, data FROM current WHERE expires",
)

#: PostgreSQL's: the same reads by its JSON functions, and every key led by the row's book.
POSTGRES: Final = Dialect(
    name="postgresql",
    with_until="""
SELECT contact_id FROM overrides WHERE EXISTS (
    SELECT 1 FROM jsonb_array_elements(overrides.data::jsonb) AS o
    WHERE o.value->>'until' IS NOT NULL
) ORDER BY contact_id
""",
    records_of=(
        "SELECT current.contact_id, r.value FROM current, "
        "jsonb_array_elements_text(current.data::jsonb -> {at}) AS r WHERE {where} AND expires=0"
    ),
    expiring="SELECT contact_id, data FROM current WHERE expires != 0",
    book_key=("book",),
)
