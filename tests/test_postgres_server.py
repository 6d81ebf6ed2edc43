"""The PostgreSQL server the store tests use: a role without superuser powers, fresh databases."""

from __future__ import annotations

import psycopg
import pytest
from tests import postgres_server as plugin
from tests.postgres_server import NO_SERVER, PostgresServer

NEEDS_SERVER = """
def test_one(postgres_server):
    '''Needs the server.'''

def test_two(postgres_server):
    '''Needs it too.'''
"""

NEEDS_NOTHING = """
def test_plain():
    '''Needs nothing.'''
"""


@pytest.fixture
def inner_session(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory whose sessions load the server plugin."""
    pytester.makeconftest(f"pytest_plugins = [{plugin.__name__!r}]")
    return pytester


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """No server named in the environment and no server programs to start one."""
    for name in (plugin.URL_VARIABLE, plugin.ADMIN_URL_VARIABLE, plugin.DATA_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(plugin.REQUIRE_VARIABLE, raising=False)
    monkeypatch.setattr(plugin, "server_programs_installed", lambda: False)


class TestTheRole:
    """The tests connect as a role a school's database would give a store, not a superuser."""

    def test_the_role_is_no_superuser_and_cannot_bypass_row_security(
        self, postgres_server: PostgresServer
    ) -> None:
        """pg_roles says the fixture's role has neither superuser nor BYPASSRLS."""
        with psycopg.connect(postgres_server.url) as connection:
            row = connection.execute(
                "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        assert row == (False, False)

    def test_the_admin_url_is_a_superuser(self, postgres_server: PostgresServer) -> None:
        """The admin URL is the superuser the fixture creates and drops databases with."""
        with psycopg.connect(postgres_server.admin_url) as connection:
            row = connection.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        assert row == (True,)

    def test_the_role_may_checkpoint_and_switch_wal(self, postgres_server: PostgresServer) -> None:
        """CHECKPOINT and pg_switch_wal(), which the erasure tests need, work for the role."""
        url = postgres_server.new_database("wal")
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE t (x text)")
            connection.execute("INSERT INTO t VALUES ('a')")
            connection.execute("SELECT pg_switch_wal()")
            connection.execute("CHECKPOINT")

    def test_old_wal_is_deleted_after_a_switch_and_a_checkpoint(
        self, postgres_server: PostgresServer
    ) -> None:
        """With wal_recycle off, the segment written before a switch is gone after a CHECKPOINT."""
        if postgres_server.data_directory is None:
            pytest.skip("the server's data directory is not known here")
        url = postgres_server.new_database("walgone")
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE t (x text)")
            connection.execute("INSERT INTO t VALUES ('a')")
            row = connection.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
            assert row is not None
            connection.execute("SELECT pg_switch_wal()")
            connection.execute("CHECKPOINT")
        assert not (postgres_server.data_directory / "pg_wal" / row[0]).exists()


class TestNewDatabase:
    """new_database gives each test a database of its own."""

    def test_a_new_database_is_empty_and_the_role_can_write_it(
        self, postgres_server: PostgresServer
    ) -> None:
        """No tables of its own, and the role creates, writes and reads one."""
        with psycopg.connect(postgres_server.new_database("empty")) as connection:
            count = connection.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            ).fetchone()
            assert count == (0,)
            connection.execute("CREATE TABLE t (x text)")
            connection.execute("INSERT INTO t VALUES ('written')")
            assert connection.execute("SELECT x FROM t").fetchall() == [("written",)]

    def test_two_calls_give_two_databases(self, postgres_server: PostgresServer) -> None:
        """Two calls with one prefix connect to two different databases."""
        names = set()
        for _ in range(2):
            with psycopg.connect(postgres_server.new_database("twice")) as connection:
                row = connection.execute("SELECT current_database()").fetchone()
                assert row is not None
                names.add(row[0])
        assert len(names) == 2

    def test_a_long_prefix_still_gives_distinct_names(
        self, postgres_server: PostgresServer
    ) -> None:
        """A prefix past PostgreSQL's 63-byte names is shortened, keeping the unique tail."""
        names = []
        for _ in range(2):
            with psycopg.connect(postgres_server.new_database("x" * 80)) as connection:
                row = connection.execute("SELECT current_database()").fetchone()
                assert row is not None
                names.append(row[0])
        assert names[0] != names[1]
        assert all(name.startswith("xxx") and len(name) <= plugin.MAX_NAME for name in names)

    def test_a_session_drops_the_databases_it_made(
        self,
        postgres_server: PostgresServer,
        inner_session: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A session on a server named by the environment leaves no database of its behind."""
        monkeypatch.setenv(plugin.URL_VARIABLE, postgres_server.url)
        monkeypatch.setenv(plugin.ADMIN_URL_VARIABLE, postgres_server.admin_url)
        made = inner_session.path / "made.txt"
        inner_session.makepyfile(
            f"""
            import psycopg

            def test_make(postgres_server):
                '''Makes a database and notes its name.'''
                url = postgres_server.new_database("dropme")
                with psycopg.connect(url) as connection:
                    name = connection.execute("SELECT current_database()").fetchone()[0]
                open({str(made)!r}, "w").write(name)
            """
        )
        inner_session.runpytest().assert_outcomes(passed=1)
        name = made.read_text()
        with psycopg.connect(postgres_server.admin_url) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        assert row == (0,)


@pytest.mark.usefixtures("no_server")
class TestWithoutAServer:
    """Without a server, the tests that need one are skipped, or fail when CI requires it."""

    def test_they_are_skipped_with_one_line(self, inner_session: pytest.Pytester) -> None:
        """Two tests needing the server: both skipped, and the report says why in one line."""
        inner_session.makepyfile(NEEDS_SERVER)
        result = inner_session.runpytest()
        result.assert_outcomes(skipped=2)
        assert [line for line in result.outlines if NO_SERVER in line] == [
            f"{NO_SERVER} (2 tests skipped)"
        ]

    def test_they_fail_when_the_server_is_required(
        self, inner_session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With SOURCETRUTH_REQUIRE_POSTGRES=1 the same tests error, naming the missing server."""
        monkeypatch.setenv(plugin.REQUIRE_VARIABLE, "1")
        inner_session.makepyfile(NEEDS_SERVER)
        result = inner_session.runpytest()
        result.assert_outcomes(errors=2)
        assert any(NO_SERVER in line for line in result.outlines)
        assert result.ret != 0

    def test_the_marker_leaves_them_out(
        self, inner_session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """-m "not postgres" deselects the tests that need the server, so nothing fails."""
        monkeypatch.setenv(plugin.REQUIRE_VARIABLE, "1")
        inner_session.makepyfile(test_needs=NEEDS_SERVER, test_plain=NEEDS_NOTHING)
        result = inner_session.runpytest("-m", "not postgres")
        result.assert_outcomes(passed=1, deselected=2)
