"""The stores the same test bodies run against: the ``store_kind`` parameter (tests/conftest.py).

A test module that merges in memory names ``merge`` from here instead of
from :mod:`sourcetruth` and uses the ``merges_through_store`` fixture: with
``store_kind`` ``"memory"`` it is the library's merge; with ``"sqlite"`` or
``"postgres"`` each merge is committed to a store and the book it returns
is the one loaded back from the store, so what the test checks is what came
back from the database. A test that keeps its own stores (erasure, the
stateful machines) opens them from a :class:`Place`.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.postgres_server import PostgresServer, url_for_database

import sourcetruth
from sourcetruth import Book, MergeResult, Policy, Status, dumps
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.journal import run_of
from sourcetruth.merge import Change
from sourcetruth.protocols import Store

#: Every kind, the store-less one first.
KINDS = ("memory", "sqlite", "json", "postgres")


def kinds(*names: str) -> list[Any]:
    """``store_kind`` parameters for *names*; PostgreSQL's carries the ``postgres`` marker."""
    return [
        pytest.param(name, marks=pytest.mark.postgres) if name == "postgres" else name
        for name in names
    ]


def database_bytes(server: PostgresServer, url: str, *, schema: str | None = None) -> bytes:
    """Every byte of the files of *url*'s database on the server's disk, after a checkpoint.

    With *schema*, only the files of its tables, their indexes and TOAST: the
    system catalogs hold compressed text in which any two letters can turn up.
    """
    import psycopg

    if server.data_directory is None:
        pytest.skip("the server's data directory is not on this machine")
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url_for_database(server.admin_url, str(name)), autocommit=True) as admin:
        admin.execute("CHECKPOINT")
        oid = admin.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
        folder = server.data_directory / "base" / str(oid.fetchone()[0])  # type: ignore[index]
        nodes = set()
        if schema:
            # The schema's relations, their TOAST tables, and the indexes of those.
            toast = "SELECT reltoastrelid FROM pg_class WHERE relnamespace = %s::regnamespace"
            found = admin.execute(
                "SELECT pg_relation_filenode(oid) FROM pg_class "
                f"WHERE relnamespace = %s::regnamespace OR oid IN ({toast}) "
                f"OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ({toast}))",
                (schema, schema, schema),
            )
            nodes = {str(node) for (node,) in found}
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if schema:
        files = [p for p in files if p.name.partition("_")[0].partition(".")[0] in nodes]
        assert files, f"no file of the schema {schema}"
    return b"".join(p.read_bytes() for p in files)


def place_for(request: pytest.FixtureRequest, kind: str, folder: Path, name: str) -> Place:
    """A new place for *kind*'s stores: *folder*, or a new database on the test server."""
    if kind != "postgres":
        return Place(kind, folder)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.new_database(name)
    from sourcetruth.adapters.stores.postgres import SCHEMA

    return Place(
        kind,
        folder,
        url,
        lambda: database_bytes(server, url),
        lambda: database_bytes(server, url, schema=SCHEMA),
    )


@attrs.define
class Place:
    """Where one kind's stores live: files in *folder*, or books in the database at *url*."""

    kind: str
    folder: Path
    url: str | None = None
    #: The server's disk, for :meth:`raw_bytes` and :meth:`store_bytes` (PostgreSQL only).
    database_bytes: Callable[[], bytes] | None = None
    schema_bytes: Callable[[], bytes] | None = None
    #: How long a PostgreSQL store's rewrite after an erasure waits for readers of other books.
    forget_lock_timeout: float = 60.0

    def open(self, name: str) -> Store:
        """The store named *name* here: a file, or a book of the database."""
        if self.kind == "sqlite":
            return SqliteStore(self.folder / f"{name}.sqlite")
        if self.kind == "json":
            return JsonStore(self.folder / f"{name}.json")
        if self.kind == "postgres":
            from sourcetruth.adapters.stores.postgres import PostgresStore

            assert self.url is not None
            return PostgresStore(self.url, name, forget_lock_timeout=self.forget_lock_timeout)
        msg = f"no store of kind {self.kind!r}"
        raise AssertionError(msg)

    def raw_bytes(self) -> bytes:
        """Every byte this place keeps: its files, or its database's files on the server."""
        if self.database_bytes is not None:
            return self.database_bytes()
        return b"".join(p.read_bytes() for p in sorted(self.folder.iterdir()) if p.is_file())

    def store_bytes(self) -> bytes:
        """What the stores themselves keep: :meth:`raw_bytes` less a database's own catalogs."""
        if self.schema_bytes is not None:
            return self.schema_bytes()
        return self.raw_bytes()

    def rows(self, name: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows *sql* (with ``?`` marks) finds in the book *name*, read past the store."""
        if self.kind == "sqlite":
            db = sqlite3.connect(self.folder / f"{name}.sqlite")
            try:
                return db.execute(sql, args).fetchall()
            finally:
                db.close()
        assert self.kind == "postgres"
        assert self.url is not None
        import psycopg

        from sourcetruth.adapters.stores.postgres import BOOK_SETTING, SCHEMA

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(
                "SELECT set_config('search_path', %s, false), set_config(%s, %s, false)",
                (SCHEMA, BOOK_SETTING, name),
            )
            return db.execute(sql.replace("?", "%s"), args).fetchall()  # type: ignore[arg-type]


@attrs.define(eq=False)
class _Line:
    """One store and the steps that made its book; *version* counts the commits that applied."""

    store: Store
    steps: tuple[tuple[Change, Policy, datetime, str], ...]
    head: Book
    version: int = 0


@attrs.define(eq=False)
class _Known:
    """A book this router returned: how it was made, and the line it is the head of."""

    book: weakref.ref[Book]
    steps: tuple[tuple[Change, Policy, datetime, str], ...]
    line: _Line
    version: int


class StoredMerge:
    """:func:`sourcetruth.merge` with each result committed to a store of *place*.

    The book a merge starts from must be an empty one (a new store is
    opened for it) or one this router returned. Merging from the head of
    a store commits there; merging from an older book (a test that
    branches) replays the steps that made it into a new store first, so
    every book returned came back from a store. At most *keep_open* stores
    stay open; a later merge from a closed one's book replays it.
    """

    def __init__(self, place: Place, *, keep_open: int = 4) -> None:
        self.place = place
        self._keep_open = keep_open
        self._known: dict[int, _Known] = {}
        self._lines: OrderedDict[int, _Line] = OrderedDict()
        self._names = count()
        #: Merges committed, and merges replayed to branch: a test can see that it routed.
        self.committed = 0
        self.replayed = 0

    def __call__(
        self, book: Book, change: Change, *, policy: Policy, at: datetime, by: str
    ) -> MergeResult:
        known = self._known.get(id(book))
        if known is not None and known.book() is not book:
            known = None  # another book took the id of one since dropped
        if known is None:
            if dumps(book) != _EMPTY:
                msg = "a stored merge starts from an empty book or one it returned"
                raise AssertionError(msg)
            steps: tuple[tuple[Change, Policy, datetime, str], ...] = ()
            line = self._open_line(steps)
        elif (
            known.line is not None
            and known.line.version == known.version
            and (id(known.line) in self._lines)
        ):
            line = known.line
            steps = line.steps  # past merges that applied nothing: the same book
        else:
            steps = known.steps
            line = self._open_line(steps)
        line_head = line.head
        result = sourcetruth.merge(line_head, change, policy=policy, at=at, by=by)
        run = run_of(line.head, (change,), result.report, at=at, by=by)
        line.store.commit(line.head, result, run)
        loaded = line.store.load()
        assert dumps(loaded) == dumps(result.book)
        self.committed += 1
        if result.report.status is Status.APPLIED:
            line.version += 1
        line.steps = (*steps, (change, policy, at, by))
        line.head = loaded
        self._remember(loaded, line)
        if result.report.status is not Status.APPLIED and result.book is line_head:
            # The very same book comes back from a merge that applied nothing (rules 5, 6).
            return result if book is line_head else attrs.evolve(result, book=book)
        return attrs.evolve(result, book=loaded)

    def _remember(self, book: Book, line: _Line) -> None:
        self._known[id(book)] = _Known(weakref.ref(book), line.steps, line, line.version)
        if len(self._known) > 4096:  # forget the books the tests have dropped
            self._known = {k: v for k, v in self._known.items() if v.book() is not None}

    def _open_line(self, steps: tuple[tuple[Change, Policy, datetime, str], ...]) -> _Line:
        """A new store holding the book *steps* make."""
        store = self.place.open(f"b{next(self._names)}")
        book = store.load()
        for change, policy, at, by in steps:
            result = sourcetruth.merge(book, change, policy=policy, at=at, by=by)
            store.commit(book, result, run_of(book, (change,), result.report, at=at, by=by))
            book = result.book
            self.replayed += 1
        line = _Line(store, steps, store.load() if steps else book)
        self._lines[id(line)] = line
        while len(self._lines) > self._keep_open:
            _, oldest = self._lines.popitem(last=False)
            oldest.store.close()
        return line

    def close(self) -> None:
        """Close every store still open."""
        while self._lines:
            _, line = self._lines.popitem()
            line.store.close()
        self._known.clear()


_EMPTY = dumps(Book())

#: Where this module's merges go: None for memory (see :func:`routed`).
_route: StoredMerge | None = None


def merge(book: Book, change: Change, *, policy: Policy, at: datetime, by: str) -> MergeResult:
    """:func:`sourcetruth.merge`, or through the store the module's ``store_kind`` names."""
    if _route is None:
        return sourcetruth.merge(book, change, policy=policy, at=at, by=by)
    return _route(book, change, policy=policy, at=at, by=by)


@contextmanager
def routed(place: Place | None) -> Iterator[StoredMerge | None]:
    """Send :func:`merge` through stores of *place* (None: in memory) while in the block."""
    global _route
    route = None if place is None else StoredMerge(place)
    _route = route
    try:
        yield route
    finally:
        _route = None
        if route is not None:
            route.close()
