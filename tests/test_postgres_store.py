"""The PostgreSQL store: the store contract on a real server, and one school never reaching another.

Each test has a database of its own (``postgres_server.new_database``), so
the raw bytes a check reads are its own stores' only: every file of the
database's directory on the server's disk, after a checkpoint has written
out what the server held in memory.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from tests.postgres_server import PostgresServer, url_for_database
from tests.stores import database_bytes

from sourcetruth.adapters.stores.postgres import PostgresStore, book_url, split_url
from sourcetruth.exceptions import UsageError
from sourcetruth.testing.stores import InterruptedStore, OpenStore, StoreContract


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A database of the test's own."""
    return postgres_server.new_database("store")


class TestPostgresStore(StoreContract):
    """The PostgreSQL store keeps the store contract, interrupted before each statement."""

    @pytest.fixture
    def open_store(self, database_url: str) -> OpenStore:
        """Each name a book of its own in the test's database."""
        return lambda name: PostgresStore(database_url, name)

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

            return PostgresStore(database_url, name, statement_hook=hook)

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
