"""Many schools' books in one PostgreSQL database (psycopg 3): a provider's store.

``pip install 'sourcetruth[postgres]'`` brings psycopg. Each school's book
is named by its *book* id (its school id) in one schema, ``sourcetruth``,
shared by every book of the database: the rows are those of the SQLite
store (:mod:`~sourcetruth.adapters.stores._rowstore`), each table with a
``book`` column that leads every key and index.

**One school never reaches another's rows.** Every table has row-level
security, forced on its owner too, with one policy: a row is seen, written
and made only where its ``book`` is the connection's ``sourcetruth.book``
setting, which the store sets once when it connects. No query of the store
names its book: a query that forgot a ``WHERE`` would still see one book
only, and a row written for another book is refused by the database. The
store refuses to connect as a role that bypasses row-level security (a
superuser, or a role with ``BYPASSRLS``), where the policy would not hold.

**Commits** are one transaction each, at ``READ COMMITTED``: it locks the
book's ``seq`` row, compares it with the seq of the book the merge began
from, and raises :class:`~sourcetruth.exceptions.ConflictError` when
another run committed meanwhile, so an update is never lost. A loaded book
reads from a ``REPEATABLE READ, READ ONLY`` transaction on a connection of
its own: it sees one commit whatever others commit after, and takes no lock
a writer waits on.

**Erasure** deletes the person's rows in the commit. PostgreSQL keeps a
deleted row's bytes in its table's pages until they are rewritten, and in
the write-ahead log until its segment is removed; after an erasure the
store therefore rewrites its tables (``VACUUM FULL``, which takes each
table's exclusive lock for the rewrite: every book of the database waits
for it, and it waits at most ``forget_lock_timeout`` for readers), then
asks the server to switch to a new WAL segment and checkpoint, where the
role may (``pg_checkpoint`` and ``pg_switch_wal``). What it could not do
is retried after the book's next commit, or by :meth:`PostgresStore.forget`.
docs/security.md says what the server must be set to (``wal_recycle=off``)
and what it keeps beyond the store's reach (WAL archives, backups, replicas).

**The schema** is made and upgraded by the store itself, under an advisory
lock (many workers may open their first book at once), and versioned like
SQLite's: a database of a newer schema is refused, never half read.

**Passwords** are never in the URL: psycopg reads ``PGPASSWORD`` or
``~/.pgpass`` as libpq does, or the store reads the variable *password_env*
names. A URL with a password is refused, so that it never lands in a job, a
log or a command line.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Final

from sourcetruth.adapters.stores._rows import POSTGRES, ConnectionSnapshot
from sourcetruth.adapters.stores._rowstore import RowStore
from sourcetruth.exceptions import AdapterError, SchemaVersionError, SourceDataError, UsageError

__all__ = [
    "BOOK_SETTING",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLES",
    "PostgresStore",
    "book_url",
    "is_book_url",
    "open_book_url",
    "split_url",
]

_log = logging.getLogger(__name__)

#: The schema every book of a database shares.
SCHEMA: Final = "sourcetruth"
#: Bumped whenever the tables change incompatibly (PostgreSQL's own count; SQLite's is 4).
SCHEMA_VERSION: Final = 1
#: The sessions of this database holding a snapshot older than a transaction id (as text),
#: and autovacuum's workers in a transaction (whose snapshot a look may miss between two
#: of the tables it analyses).
_OLDER_SNAPSHOTS: Final = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND (
    (backend_xmin IS NOT NULL AND age(backend_xmin) > age(%s::xid))
    OR (backend_type = 'autovacuum worker' AND xact_start IS NOT NULL)
)
"""
#: Seconds between two looks at the sessions while the rewrite waits for them.
_POLL: Final = 0.05
#: The setting that names a connection's book, which every table's policy reads.
BOOK_SETTING: Final = "sourcetruth.book"

#: A book id: a school id as a provider names it (no spaces, quotes or slashes).
_BOOK_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

#: Where a row's book comes from when a statement does not name it (none does).
_BOOK: Final = f"book TEXT COLLATE \"C\" NOT NULL DEFAULT current_setting('{BOOK_SETTING}')"
#: Every key is text compared byte by byte (UTF-8 order, which is Python's), as SQLite does.
_T: Final = 'TEXT COLLATE "C"'

_TABLES: Final = f"""
CREATE TABLE meta (name {_T} NOT NULL, value TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, name));
CREATE TABLE records (
    source {_T} NOT NULL, key {_T} NOT NULL, data TEXT NOT NULL, digest TEXT NOT NULL DEFAULT '',
    name {_T} NOT NULL DEFAULT '', {_BOOK},
    PRIMARY KEY (book, source, key)
);
CREATE INDEX records_by_name ON records (book, source, name) WHERE name != '';
CREATE TABLE contacts (id {_T} NOT NULL, data TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, id));
CREATE TABLE overrides (
    contact_id {_T} NOT NULL, data TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, contact_id)
);
CREATE TABLE ended_overrides (
    contact_id {_T} NOT NULL, data TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, contact_id)
);
CREATE TABLE syncs (source {_T} NOT NULL, data TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, source));
CREATE TABLE groups (name {_T} NOT NULL, data TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, name));
CREATE TABLE suppressed (digest {_T} NOT NULL, {_BOOK}, PRIMARY KEY (book, digest));
CREATE TABLE runs (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    {_BOOK}
);
CREATE INDEX runs_by_book ON runs (book, n);
CREATE TABLE run_changes (
    n BIGINT NOT NULL, i INTEGER NOT NULL, contact_id {_T} NOT NULL, data TEXT NOT NULL, {_BOOK},
    PRIMARY KEY (book, n, i)
);
CREATE INDEX run_changes_by_contact ON run_changes (book, contact_id);
CREATE TABLE current (
    contact_id {_T} NOT NULL,
    departed INTEGER NOT NULL,
    role {_T} NOT NULL,
    year_group {_T} NOT NULL,
    registration_group {_T} NOT NULL,
    expires INTEGER NOT NULL,
    data TEXT NOT NULL,
    {_BOOK},
    PRIMARY KEY (book, contact_id)
);
CREATE INDEX current_by_role ON current (book, role);
CREATE INDEX current_by_year_group ON current (book, year_group);
CREATE INDEX current_by_registration_group ON current (book, registration_group);
CREATE INDEX current_expiring ON current (book, expires) WHERE expires != 0;
CREATE TABLE current_links (
    source {_T} NOT NULL, pupil {_T} NOT NULL, contact_id {_T} NOT NULL, {_BOOK}
);
CREATE INDEX current_links_by_pupil ON current_links (book, source, pupil);
CREATE INDEX current_links_by_contact ON current_links (book, contact_id);
CREATE TABLE book_settings (
    name {_T} NOT NULL, value TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, name)
);
CREATE TABLE deliveries (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key {_T} NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '',
    {_BOOK}
);
CREATE INDEX deliveries_by_key ON deliveries (book, key);
CREATE TABLE audits (
    message_id {_T} NOT NULL, data TEXT NOT NULL, {_BOOK}, PRIMARY KEY (book, message_id)
);
CREATE TABLE outbox (
    channel {_T} NOT NULL, key {_T} NOT NULL, data TEXT NOT NULL, {_BOOK},
    PRIMARY KEY (book, channel, key)
);
"""

#: The tables that hold a book's rows, each under the one policy.
TABLES: Final = tuple(re.findall(r"CREATE TABLE (\w+)", _TABLES))

_POLICY: Final = f"book = current_setting('{BOOK_SETTING}')"

#: The columns whose values the planner may sample: none names a person. ANALYZE
#: copies sample values of every other column into pg_statistic, a catalog no
#: rewrite of ours reaches, so those gather no statistics (their keys are unique
#: or few per book, and the planner finds them by index all the same).
_SAMPLED: Final = frozenset(
    {"book", "role", "year_group", "registration_group", "departed", "expires", "n", "i"}
)

#: A lock key of the advisory lock that one store at a time makes or upgrades the schema under.
_SCHEMA_LOCK: Final = 0x736F7572_63650001


@lru_cache(maxsize=256)
def _marks(sql: str) -> str:
    """*sql* written with ``?`` marks, as psycopg takes it (``%s``; a ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def split_url(url: str) -> tuple[str, str]:
    """A book URL's connection and book id: ``postgresql://host/db?book=ID`` or ``...#ID``.

    The book id is a query parameter ``book`` or the fragment; the
    connection is the rest. Raises :class:`~sourcetruth.exceptions.UsageError`
    for a URL with no book.
    """
    base, _, fragment = url.partition("#")
    book = fragment
    if "book=" in base:
        head, _, query = base.partition("?")
        kept = []
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "book":
                book = value
            elif part:
                kept.append(part)
        base = head + ("?" + "&".join(kept) if kept else "")
    if not book:
        msg = "a PostgreSQL book names its school: postgresql://HOST/DATABASE?book=SCHOOL_ID"
        raise UsageError(msg)
    return base, book


def is_book_url(text: str) -> bool:
    """Whether *text* names a PostgreSQL book (``postgresql://`` or ``postgres://``)."""
    return text.startswith(("postgresql://", "postgres://"))


def open_book_url(url: str, *, password_env: str | None = None) -> PostgresStore:
    """The store of the book *url* names (see :func:`split_url`)."""
    connection, book = split_url(url)
    return PostgresStore(connection, book, password_env=password_env)


def book_url(url: str, book: str) -> str:
    """The URL naming *book* in the database at *url* (see :func:`split_url`)."""
    return f"{url}{'&' if '?' in url else '?'}book={book}"


class PostgresSnapshot(ConnectionSnapshot):
    """One ``REPEATABLE READ, READ ONLY`` transaction on a connection of its own."""

    dialect = POSTGRES

    def __init__(self, name: str, connect: Callable[[], Any]) -> None:
        import psycopg

        self.errors = (psycopg.Error,)
        db = connect()
        super().__init__(name, db, db.close)

    def _query(self, db: Any, sql: str, args: tuple[Any, ...]) -> Any:
        return db.execute(_marks(sql), args)

    def _begin(self, db: Any) -> None:
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # The snapshot is taken at the first query, not at BEGIN: take it now.
        db.execute("SELECT 1")

    def _end(self, db: Any) -> None:
        db.execute("ROLLBACK")

    def _read_error(self, error: Exception) -> Exception:
        import psycopg

        if isinstance(error, psycopg.OperationalError):  # the server, not the book
            msg = f"lost the connection to the book {self.name}: {_first_line(error)}"
            return AdapterError(msg, retryable=True)
        return super()._read_error(error)


class PostgresStore(RowStore):
    """One school's book, *book*, in the PostgreSQL database at *url*.

    *url* is a libpq connection string or URL with no password (see the
    module's text); *password_env* names an environment variable that holds
    it, read when connecting from *environ* (the process's environment by
    default). *forget_lock_timeout* bounds, in seconds, how
    long the rewrite after an erasure waits for readers of other books.
    *statement_hook*, for tests, is called before each statement of a
    commit with its number (from 1).
    """

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        book: str,
        *,
        password_env: str | None = None,
        environ: Mapping[str, str] | None = None,
        forget_lock_timeout: float = 1.0,
        statement_hook: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(statement_hook)
        try:
            import psycopg
            from psycopg import conninfo
        except ImportError:  # pragma: no cover - the extra is missing
            msg = "the PostgreSQL store needs psycopg: pip install 'sourcetruth[postgres]'"
            raise UsageError(msg) from None
        self._psycopg = psycopg
        self.database_errors = (psycopg.Error,)
        if not isinstance(book, str) or not _BOOK_ID.fullmatch(book):
            msg = (
                "a book id is 1 to 100 letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit"
            )
            raise UsageError(msg)
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            msg = "the PostgreSQL URL cannot be read: check its form (postgresql://HOST/DATABASE)"
            raise UsageError(msg) from None
        if params.get("password") or params.get("sslpassword"):
            msg = (
                "the PostgreSQL URL holds a password: put it in PGPASSWORD or ~/.pgpass, "
                "or name the variable that holds it"
            )
            raise UsageError(msg)
        self.book = book
        self._params = params
        self._password_env = password_env
        self._environ = os.environ if environ is None else environ
        self._lock_timeout = forget_lock_timeout
        #: Whether the book's meta records a forgetting that an erasure could not finish.
        self._pending = False
        where = params.get("dbname") or "the default database"
        self.name = f"{book} (PostgreSQL, {where})"
        self._db = self._connect()
        try:
            self._check_role()
            self._prepare()
        except psycopg.Error as error:
            self._db.close()
            msg = f"cannot open the book {self.name}: {_first_line(error)}"
            raise AdapterError(msg, retryable=isinstance(error, psycopg.OperationalError)) from None
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        host = self._params.get("host") or "local"
        dbname = self._params.get("dbname")
        return f"PostgresStore(book={self.book!r}, host={host!r}, dbname={dbname!r})"

    # -- connecting -----------------------------------------------------------------

    def _connect(self) -> Any:
        """A new connection to the book: autocommit, in the schema, its book set."""
        from psycopg.conninfo import make_conninfo

        params = dict(self._params)
        if self._password_env is not None:
            password = self._environ.get(self._password_env)
            if not password:
                msg = f"the variable {self._password_env} that holds the password is not set"
                raise UsageError(msg)
            params["password"] = password
        params.setdefault("application_name", "sourcetruth")
        try:
            db = self._psycopg.connect(make_conninfo("", **params), autocommit=True)
            db.execute(
                "SELECT set_config('search_path', %s, false), set_config(%s, %s, false)",
                (SCHEMA, BOOK_SETTING, self.book),
            )
        except self._psycopg.Error as error:
            msg = f"cannot connect to the book {self.name}: {_first_line(error)}"
            raise AdapterError(msg, retryable=True) from None
        return db

    def _check_role(self) -> None:
        row = self._db.execute(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if row is None or row[0]:
            msg = (
                "the PostgreSQL role bypasses row-level security (a superuser, or BYPASSRLS), "
                "so one school's book could reach another's: connect as a role that does not"
            )
            raise UsageError(msg)

    def _prepare(self) -> None:
        """Make or upgrade the schema if needed: a database of this schema is opened with no write.

        A book has no row until its first commit, so opening a mistyped book
        id leaves nothing behind.
        """
        version = self._schema_version()
        if version != SCHEMA_VERSION:
            # The lock is taken before the transaction begins: a transaction
            # that waited for it inside would look the schema up in catalog
            # caches of its start, not see the one another store made
            # meanwhile, and make it again (DuplicateTable).
            self._db.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                self._make_schema()
            finally:
                self._db.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))

    def _make_schema(self) -> None:
        """Make the schema unless another store made it meanwhile (under the schema's lock)."""
        with self._db.transaction():
            version = self._schema_version()  # another store may have made it meanwhile
            if version is None:
                self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                for statement in _TABLES.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                for table in TABLES:
                    self._db.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
                    self._db.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
                    self._db.execute(
                        f"CREATE POLICY one_book ON {table} USING ({_POLICY}) "
                        f"WITH CHECK ({_POLICY})"
                    )
                columns = self._db.execute(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
                    (SCHEMA,),
                ).fetchall()
                for table, column in columns:
                    if table in TABLES and column not in _SAMPLED:
                        self._db.execute(
                            f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0"
                        )
                self._db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                self._db.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))

    def _schema_version(self) -> int | None:
        """The schema's version, refusing a newer one; None for a database without it."""
        made = self._db.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)).fetchone()[
            0
        ]
        if made is None:
            return None
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if not isinstance(version, int):
            msg = "the database's sourcetruth schema records no version"
            raise SourceDataError(msg, file=self.name)
        if version > SCHEMA_VERSION:
            msg = (
                f"the database's sourcetruth schema was made by a newer sourcetruth "
                f"(schema {version}; this one reads up to {SCHEMA_VERSION}): upgrade sourcetruth"
            )
            raise SchemaVersionError(msg, file=self.name)
        return version

    def close(self) -> None:
        """Close the connection. A book loaded from it stays readable: its snapshot has its own."""
        self._db.close()

    # -- what RowStore asks of a database ---------------------------------------------

    def _snapshot(self) -> PostgresSnapshot:
        return PostgresSnapshot(self.name, self._connect)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._db.execute(_marks(sql), args)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # Pipeline mode: a statement is sent without waiting for the one before it to
        # answer, so a commit of a million rows is not a million round trips. A query
        # whose rows are read (the seq, the run's number) waits for what went before;
        # any error still ends the transaction, and rolls it all back.
        with self._db.transaction(), self._db.pipeline():
            yield

    def _stored_seq(self) -> int:
        # The row lock holds off every other writer of this book until the commit ends;
        # a writer that waited for it then reads the seq the winner left. A new book's
        # row is made first: two first commits meet at its key, and the second waits.
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES ('seq', '0') ON CONFLICT DO NOTHING"
        )
        rows = self._db.execute(
            "SELECT name, value FROM meta WHERE name IN ('seq', 'forget_pending') FOR UPDATE"
        ).fetchall()
        found = dict(rows)
        self._pending = "forget_pending" in found
        return int(found.get("seq", "0"))

    def _forget_pending(self) -> bool:
        return self._pending

    def _older_snapshots_ended(self, wait: float) -> bool:
        """Whether every transaction that could still see the erased rows has ended.

        Polled for at most *wait* seconds. Two kinds keep the rewrite from
        dropping them: a transaction anywhere on the server that began before
        now and holds a transaction id (the rewrite's own snapshot would reach
        back to it), and a session of this database holding a snapshot from
        before now. The store sees the sessions of its own role; with
        ``pg_read_all_stats`` it sees autovacuum's and every other role's too
        (docs/security.md).
        """
        db = self._db
        now = db.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())").fetchone()[0]
        # backend_xmin is a 32-bit id: compare ages with now's own 32 bits.
        now32 = str(int(str(now)) % 2**32)
        deadline = time.monotonic() + wait
        while True:
            clear = db.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= %s::text::xid8",
                (str(now),),
            ).fetchone()[0]
            if clear and db.execute(_OLDER_SNAPSHOTS, (now32,)).fetchone()[0] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def _forget(self) -> None:
        self.forget()

    def forget(self, *, lock_timeout: float | None = None) -> bool:
        """Rewrite every table and empty the WAL of what erasures left; whether it all happened.

        A rewrite keeps the rows a snapshot still open elsewhere in the
        database may see (another school's loaded book, autovacuum's
        ``ANALYZE``), so it waits first, at most *lock_timeout* seconds
        (``forget_lock_timeout`` by default), for every session it can see
        whose snapshot began before now to end. Then each table is rewritten
        (``VACUUM FULL``: no page keeps a deleted row), waiting as long for
        its lock; then the server switches to a new WAL segment and
        checkpoints, so that (with ``wal_recycle=off``) the segments that
        held the erased rows are deleted. What could not be done is logged,
        and the book remembers it: its next commit tries again.
        """
        wait = self._lock_timeout if lock_timeout is None else lock_timeout
        rewritten = self._rewrite(wait)
        switched = self._switch_wal()
        return self._remember(done=rewritten and switched)

    def _rewrite(self, wait: float) -> bool:
        """Rewrite every table once no older transaction can see the erased rows; whether done."""
        db = self._db
        try:
            if not self._older_snapshots_ended(wait):
                msg = "a snapshot older than the erasure is still open"
                raise _Postponed(msg)
            db.execute(f"SET lock_timeout = {max(1, int(wait * 1000))}")
            try:
                for table in TABLES:
                    db.execute(f"VACUUM (FULL) {table}")
            finally:
                db.execute("RESET lock_timeout")
        except (self._psycopg.Error, _Postponed) as error:
            _log.warning(
                "could not rewrite the tables of %s after an erasure (%s): "
                "the next commit tries again",
                self.name,
                type(error).__name__,
            )
            return False
        return True

    def _switch_wal(self) -> bool:
        """Leave the WAL segments that held erased rows for the server to delete; whether done.

        A role without the rights is warned, and counts as done:
        there is nothing a later commit could do better.
        """
        try:
            self._db.execute("SELECT pg_switch_wal()")
            self._db.execute("CHECKPOINT")
        except self._psycopg.errors.InsufficientPrivilege:
            _log.warning(
                "the role may not switch the WAL and checkpoint (grant it pg_checkpoint and "
                "EXECUTE on pg_switch_wal): %s's WAL keeps erased rows until it is recycled",
                self.name,
            )
        except self._psycopg.Error as error:
            _log.warning("could not empty the WAL of %s: %s", self.name, type(error).__name__)
            return False
        return True

    def _remember(self, *, done: bool) -> bool:
        """Record in the book whether forgetting is left to do; whether it is all done."""
        try:
            self._db.execute(
                "DELETE FROM meta WHERE name='forget_pending'"
                if done
                else "INSERT INTO meta (name, value) VALUES ('forget_pending', '1') "
                "ON CONFLICT DO NOTHING"
            )
        except self._psycopg.Error as error:
            # The erasure itself is committed: what is left is only the reminder.
            _log.warning(
                "could not record what is left to forget in %s: %s", self.name, type(error).__name__
            )
            return False
        return done


class _Postponed(Exception):
    """The rewrite after an erasure waits for a snapshot that may still see the erased rows."""


def _first_line(error: BaseException) -> str:
    """The first line of a driver's error, which names the server, never a password."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
