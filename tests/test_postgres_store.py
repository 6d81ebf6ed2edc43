"""The PostgreSQL store: the store contract on a real server, and one school never reaching another.

Each test has a database of its own (``postgres_server.new_database``), so
the raw bytes a check reads are its own stores' only: every file of the
database's directory on the server's disk, after a checkpoint has written
out what the server held in memory.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import psycopg
import pytest
from tests.postgres_server import PostgresServer, url_for_database
from tests.stores import database_bytes

from sourcetruth import Erase, Policy, dumps
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.postgres import TABLES, PostgresStore, book_url, split_url
from sourcetruth.exceptions import AdapterError, UsageError
from sourcetruth.testing.conformance import sample_school
from sourcetruth.testing.stores import InterruptedStore, OpenStore, StoreContract

#: How long a test's erasure may wait for the other tests' transactions on the server to end
#: before it rewrites (transactions older than the erasure would keep the rows it deletes).
FORGET_WAIT = 60.0

MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TUESDAY = MONDAY + timedelta(days=1)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A database of the test's own."""
    return postgres_server.new_database("store")


class TestPostgresStore(StoreContract):
    """The PostgreSQL store keeps the store contract, interrupted before each statement."""

    @pytest.fixture
    def open_store(self, database_url: str) -> OpenStore:
        """Each name a book of its own in the test's database."""
        return lambda name: PostgresStore(database_url, name, forget_lock_timeout=FORGET_WAIT)

    @pytest.fixture
    def raw_bytes(self, postgres_server: PostgresServer, database_url: str) -> Callable[[], bytes]:
        """The database's files on the server's disk: its tables, indexes and their TOAST."""
        return lambda: database_bytes(postgres_server, database_url)

    @pytest.fixture
    def interrupted_store(self, database_url: str) -> InterruptedStore:
        """The store's statement hook raises before the commit's step-th statement."""

        def open_(name: str, step: int) -> PostgresStore:
            def hook(n: int) -> None:
                if n == step:
                    msg = f"interrupted before statement {n}"
                    raise RuntimeError(msg)

            return PostgresStore(
                database_url, name, statement_hook=hook, forget_lock_timeout=FORGET_WAIT
            )

        return open_


class TestOpening:
    """What the store refuses before it reads or writes anything."""

    def test_a_url_with_a_password_is_refused(self, database_url: str) -> None:
        """A password in the URL would land in jobs, logs and command lines: refused, unsaid."""
        with pytest.raises(UsageError, match="PGPASSWORD") as raised:
            PostgresStore(
                database_url.replace("sourcetruth_test@", "sourcetruth_test:s3cr3t@"), "a"
            )
        assert "s3cr3t" not in str(raised.value)
        with pytest.raises(UsageError, match="PGPASSWORD") as raised:
            PostgresStore(f"{database_url}&sslpassword=s3cr3t", "a")  # a client key's
        assert "s3cr3t" not in str(raised.value)

    def test_a_superuser_is_refused(
        self, postgres_server: PostgresServer, database_url: str
    ) -> None:
        """Row-level security does not hold for a superuser: the store will not connect as one."""
        name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        admin = url_for_database(postgres_server.admin_url, str(name))
        with pytest.raises(UsageError, match="bypasses row-level security"):
            PostgresStore(admin, "a")

    @pytest.mark.parametrize("book", ["", "a b", "a'b", "a/b", "-a", "é", "x" * 101])
    def test_a_book_id_that_is_not_plain_is_refused(self, database_url: str, book: str) -> None:
        """A book id is plain text: no quote, space, slash or leading dash reaches SQL or a URL."""
        with pytest.raises(UsageError, match="book id"):
            PostgresStore(database_url, book)

    def test_a_book_url_names_its_book(self) -> None:
        """A book URL carries its book as ``book=`` or a fragment; the rest is the connection."""
        url = "postgresql://school@db.example.org/books?sslmode=require"
        assert split_url(book_url(url, "s-1")) == (url, "s-1")
        assert split_url("postgresql://h/d#s-2") == ("postgresql://h/d", "s-2")
        with pytest.raises(UsageError, match="names its school"):
            split_url("postgresql://h/d")

    def test_a_newer_schema_is_refused_untouched(
        self, postgres_server: PostgresServer, database_url: str
    ) -> None:
        """A database whose schema a newer sourcetruth made is refused, never half read."""
        PostgresStore(database_url, "a").close()
        with psycopg.connect(database_url, autocommit=True) as db:
            db.execute("UPDATE sourcetruth.schema_version SET version = version + 1")
        with pytest.raises(Exception, match="newer sourcetruth"):
            PostgresStore(database_url, "a")

    def test_many_stores_opening_a_new_database_at_once_make_one_schema(
        self, database_url: str
    ) -> None:
        """Workers opening their first books together: one makes the schema, the rest use it."""
        failures: list[str] = []

        def open_book(n: int) -> None:
            try:
                PostgresStore(database_url, f"school-{n}").close()
            except Exception as error:  # every failure is the finding
                failures.append(type(error).__name__)

        threads = [threading.Thread(target=open_book, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []


def _two_schools(url: str, policy: Policy) -> tuple[PostgresStore, PostgresStore, str]:
    """Schools a and b, each synced once, in one database; b's book as it was."""
    a, b = PostgresStore(url, "school-a"), PostgresStore(url, "school-b")
    for store in (a, b):
        apply(store, sample_school(at=MONDAY), policy=policy, at=MONDAY, by="t")
    return a, b, dumps(b.load())


class TestTheServerGoes:
    """A server that goes away is a retryable AdapterError, never the driver's own error."""

    def test_a_loaded_book_whose_connection_is_cut(
        self, postgres_server: PostgresServer, database_url: str, policy: Policy
    ) -> None:
        """Reading a held book after its connection was ended says so, and may be retried."""
        store = PostgresStore(database_url, "school-a")
        apply(store, sample_school(at=MONDAY), policy=policy, at=MONDAY, by="t")
        book = store.load()
        name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        with psycopg.connect(
            url_for_database(postgres_server.admin_url, str(name)), autocommit=True
        ) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'idle in transaction'"
            )
        with pytest.raises(AdapterError, match="lost the connection") as raised:
            book.contacts["mis:G2001"]
        assert raised.value.retryable

    def test_a_role_that_may_not_make_the_schema(
        self, postgres_server: PostgresServer, database_url: str
    ) -> None:
        """A first store whose role may not create in the database gets a typed error."""
        name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        with psycopg.connect(
            url_for_database(postgres_server.admin_url, str(name)), autocommit=True
        ) as admin:
            admin.execute(f'REVOKE CREATE ON DATABASE "{name}" FROM sourcetruth_test')
            admin.execute(f'ALTER DATABASE "{name}" OWNER TO postgres')
        with pytest.raises(AdapterError, match="cannot open the book"):
            PostgresStore(database_url, "school-a")


class TestOneSchoolNeverReachesAnother:
    """Row-level security keeps each school's commands to its own book, whatever they run.

    Each test runs SQL of its own on school a's connection, as a query
    that forgot its book would, and shows that school b's book is untouched.
    """

    def test_a_query_with_no_where_sees_its_own_book_only(
        self, database_url: str, policy: Policy
    ) -> None:
        """Every table read whole through a's connection holds a's rows only."""
        a, _, _ = _two_schools(database_url, policy)
        for table in TABLES:
            books = a._db.execute(f"SELECT DISTINCT book FROM {table}").fetchall()
            assert books in ([], [("school-a",)]), table
        mine = a._db.execute("SELECT count(*) FROM contacts").fetchone()[0]
        assert mine == len(a.load().contacts) > 0

    def test_changing_every_row_changes_only_its_own(
        self, database_url: str, policy: Policy
    ) -> None:
        """An UPDATE and a DELETE with no WHERE reach a's rows only: b loads as it was."""
        a, b, before = _two_schools(database_url, policy)
        updated = a._db.execute("UPDATE contacts SET data = data").rowcount
        deleted = a._db.execute("DELETE FROM records").rowcount
        assert updated == len(a.load().contacts)
        assert deleted > 0
        assert dumps(b.load()) == before
        assert not a.load().records

    def test_an_erasure_in_one_school_leaves_the_same_id_in_another(
        self, database_url: str, policy: Policy
    ) -> None:
        """Both schools hold ``mis:G2001``: a's erasure, and its rewrite of the tables, keep b's."""
        a, b, before = _two_schools(database_url, policy)
        apply(a, Erase("mis:G2001"), policy=policy, at=TUESDAY, by="dpo")
        assert "mis:G2001" not in a.load().contacts
        assert dumps(b.load()) == before

    def test_a_row_for_another_book_is_refused(self, database_url: str, policy: Policy) -> None:
        """Writing a row into b's book, or moving a row there, is refused by the database."""
        a, b, before = _two_schools(database_url, policy)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a._db.execute("INSERT INTO meta (name, value, book) VALUES ('x', 'y', 'school-b')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a._db.execute("UPDATE meta SET book = 'school-b'")
        assert dumps(b.load()) == before

    def test_a_connection_that_names_no_book_reads_nothing(
        self, database_url: str, policy: Policy
    ) -> None:
        """A connection of the same role that set no book is refused, not shown every book."""
        _two_schools(database_url, policy)
        with (
            psycopg.connect(database_url, autocommit=True) as plain,
            pytest.raises(psycopg.errors.UndefinedObject),
        ):
            plain.execute("SELECT count(*) FROM sourcetruth.contacts")

    def test_a_loaded_book_takes_no_lock_a_writer_waits_on(
        self, database_url: str, policy: Policy
    ) -> None:
        """A held book of a, mid-read, never stalls a commit to a or to b (a lock wait fails)."""
        a, b, _ = _two_schools(database_url, policy)
        held = a.load()
        next(iter(held.contacts.values()))
        for store in (a, b):
            store._db.execute("SET lock_timeout = '2s'")
            book = store.load()
            changed = apply(store, sample_school(at=TUESDAY), policy=policy, at=TUESDAY, by="t")
            assert changed.book.seq == book.seq + 1


class TestErasureForgets:
    """After an erasure the person is in no file of the database, nor in the WAL."""

    def test_the_wal_keeps_no_erased_value(
        self, postgres_server: PostgresServer, database_url: str, policy: Policy
    ) -> None:
        """A name only this test writes is gone from every WAL segment after the erasure.

        The server runs with ``wal_recycle=off`` (as docs/security.md asks), so the
        segments the store switches away from are deleted, not kept for reuse.
        """
        if postgres_server.data_directory is None:
            pytest.skip("the server's data directory is not on this machine")
        token = f"Zed{secrets.token_hex(6)}"
        school = sample_school(at=MONDAY)
        first = school.records[0]
        renamed = attrs.evolve(first, data=attrs.evolve(first.data, given_name=token))
        school = attrs.evolve(school, records=(renamed, *school.records[1:]))
        store = PostgresStore(database_url, "school-a", forget_lock_timeout=FORGET_WAIT)
        apply(store, school, policy=policy, at=MONDAY, by="t")
        wal = postgres_server.data_directory / "pg_wal"

        def in_wal() -> bool:
            return any(token.encode() in f.read_bytes() for f in wal.iterdir() if f.is_file())

        assert in_wal(), "the check cannot fail: the WAL never held the name"
        apply(store, Erase(f"mis:{first.key}"), policy=policy, at=TUESDAY, by="dpo")
        assert not in_wal()
        assert token.encode() not in database_bytes(postgres_server, database_url)

    def test_a_rewrite_kept_waiting_is_finished_by_the_next_commit(
        self, postgres_server: PostgresServer, database_url: str, policy: Policy
    ) -> None:
        """A reader holding a table past the lock timeout postpones the rewrite, not forgets it."""
        store = PostgresStore(database_url, "school-a", forget_lock_timeout=0.2)
        apply(store, sample_school(at=MONDAY), policy=policy, at=MONDAY, by="t")
        pending = "SELECT count(*) FROM meta WHERE name = 'forget_pending'"
        with psycopg.connect(database_url) as reader:
            reader.execute("LOCK TABLE sourcetruth.contacts IN ACCESS SHARE MODE")
            apply(store, Erase("mis:G2001"), policy=policy, at=TUESDAY, by="dpo")
            assert store._db.execute(pending).fetchone()[0] == 1
            assert b"Gita" in database_bytes(postgres_server, database_url)
        # The next commit, through a handle that waits as long as the server's other tests need.
        again = PostgresStore(database_url, "school-a", forget_lock_timeout=FORGET_WAIT)
        apply(again, sample_school(at=TUESDAY), policy=policy, at=TUESDAY, by="t")
        assert store._db.execute(pending).fetchone()[0] == 0
        assert b"Gita" not in database_bytes(postgres_server, database_url)

    def test_the_planners_statistics_keep_no_personal_value(
        self, postgres_server: PostgresServer, database_url: str, policy: Policy
    ) -> None:
        """ANALYZE samples columns into pg_statistic, which no VACUUM of ours rewrites.

        So the columns that hold people and their ids gather no statistics:
        after an ANALYZE (as autovacuum runs it at any time) and an erasure,
        no byte of the database names them.
        """
        store = PostgresStore(database_url, "school-a", forget_lock_timeout=FORGET_WAIT)
        apply(store, sample_school(at=MONDAY), policy=policy, at=MONDAY, by="t")
        name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        with psycopg.connect(
            url_for_database(postgres_server.admin_url, str(name)), autocommit=True
        ) as admin:
            admin.execute("ANALYZE")
        apply(store, Erase("mis:G2001"), policy=policy, at=TUESDAY, by="dpo")
        found = database_bytes(postgres_server, database_url)
        assert [v for v in (b"Gita", b"G2001", b"7700900101") if v in found] == []

    @pytest.mark.parametrize(
        ("where", "begin"),
        [
            ("this database", "SELECT 1"),  # a snapshot that read none of the tables
            ("another database", "SELECT pg_current_xact_id()"),  # a transaction id
        ],
    )
    def test_a_transaction_open_elsewhere_postpones_the_rewrite(
        self,
        postgres_server: PostgresServer,
        database_url: str,
        policy: Policy,
        where: str,
        begin: str,
    ) -> None:
        """A rewrite would copy rows an older transaction may see: it waits for it, then finishes.

        Neither transaction holds a lock the rewrite waits for: in this
        database, a snapshot from before the erasure may see the rows; in
        another, a transaction id from before it holds back the snapshot of
        the rewrite itself.
        """
        store = PostgresStore(database_url, "school-a", forget_lock_timeout=0.2)
        apply(store, sample_school(at=MONDAY), policy=policy, at=MONDAY, by="t")
        pending = "SELECT count(*) FROM meta WHERE name = 'forget_pending'"
        url = database_url if where == "this database" else postgres_server.url
        with psycopg.connect(url) as elsewhere:
            elsewhere.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            elsewhere.execute(begin)
            apply(store, Erase("mis:G2001"), policy=policy, at=TUESDAY, by="dpo")
            assert store._db.execute(pending).fetchone()[0] == 1
        # The next commit, through a handle that waits as long as the server's other tests need.
        again = PostgresStore(database_url, "school-a", forget_lock_timeout=FORGET_WAIT)
        apply(again, sample_school(at=TUESDAY), policy=policy, at=TUESDAY, by="t")
        assert store._db.execute(pending).fetchone()[0] == 0
        assert b"Gita" not in database_bytes(postgres_server, database_url)
