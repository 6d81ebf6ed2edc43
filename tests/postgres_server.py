"""The PostgreSQL server the tests run against: a pytest plugin (registered in conftest.py).

A test that needs the server asks for the ``postgres_server`` fixture (a whole
module: ``pytestmark = pytest.mark.usefixtures("postgres_server")``); such tests
carry the ``postgres`` marker, so ``-m "not postgres"`` leaves them out.

The server comes from, in order:

1. ``SOURCETRUTH_TEST_POSTGRES`` and ``SOURCETRUTH_TEST_POSTGRES_ADMIN`` (libpq
   URLs of the test role and of a superuser; ``.ci/postgres start`` prints them,
   with ``SOURCETRUTH_TEST_POSTGRES_DATA``, the data directory, when local);
2. a throwaway cluster this process starts with ``.ci/postgres``, when
   PostgreSQL's server programs are installed (each xdist worker its own);
3. nowhere: the tests that need it are skipped with one line, or fail when
   ``SOURCETRUTH_REQUIRE_POSTGRES=1`` (CI), so a run cannot pass by skipping.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

# psycopg is imported where used: every session loads this plugin, and psycopg
# comes with the dev extra, not with the testing extra a plain run may have.

URL_VARIABLE = "SOURCETRUTH_TEST_POSTGRES"
ADMIN_URL_VARIABLE = "SOURCETRUTH_TEST_POSTGRES_ADMIN"
DATA_VARIABLE = "SOURCETRUTH_TEST_POSTGRES_DATA"
REQUIRE_VARIABLE = "SOURCETRUTH_REQUIRE_POSTGRES"
TEST_ROLE = "sourcetruth_test"
NO_SERVER = f"no PostgreSQL server: install PostgreSQL (initdb) or set {URL_VARIABLE}"
CLUSTER_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres"
MARKER = "postgres"
# PostgreSQL cuts identifiers at 63 bytes; a longer database name would be cut, not refused.
MAX_NAME = 63


@dataclass
class PostgresServer:
    """A reachable server: URLs for the test role and for a superuser."""

    url: str
    admin_url: str
    data_directory: Path | None
    drop_on_close: bool
    made: list[str] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=itertools.count)
    # A fresh token per session: a crashed run's leftovers on a shared server never collide.
    session_token: str = field(default_factory=lambda: secrets.token_hex(3))

    def new_database(self, prefix: str) -> str:
        """A fresh, empty database owned by the test role: the role's URL to it."""
        import psycopg
        from psycopg import sql

        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        suffix = f"_{worker}_{self.session_token}_{next(self.counter)}"
        stem = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[: MAX_NAME - len(suffix)]
        name = f"{stem}{suffix}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(TEST_ROLE)
                )
            )
        self.made.append(name)
        return url_for_database(self.url, name)

    def close(self) -> None:
        """Drop the databases this session made (a throwaway cluster just goes)."""
        if not self.drop_on_close or not self.made:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            for name in self.made:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self.made.clear()


def url_for_database(url: str, database: str) -> str:
    """*url* with its database replaced by *database* (a URL stays a URL)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(database)))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=database)


def server_programs_installed() -> bool:
    """Whether PostgreSQL's initdb is on PATH or in Debian's versioned directories."""
    return shutil.which("initdb") is not None or bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def server_from_environment() -> PostgresServer | None:
    """The server the environment names, or None when it names none."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        return None
    admin_url = os.environ.get(ADMIN_URL_VARIABLE)
    if not admin_url:
        pytest.fail(f"{URL_VARIABLE} is set but {ADMIN_URL_VARIABLE} is not", pytrace=False)
    data = os.environ.get(DATA_VARIABLE)
    return PostgresServer(url, admin_url, Path(data) if data else None, drop_on_close=True)


def parse_exports(text: str) -> dict[str, str]:
    """The NAME=value pairs of the ``export`` lines ``.ci/postgres start`` prints."""
    pairs = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            pairs[name] = value
    return pairs


def start_throwaway_cluster() -> tuple[PostgresServer, Path]:
    """A cluster of this process's own, in a short temporary directory."""
    # The socket's path must fit in ~107 bytes: /tmp where there is one, not a long TMPDIR.
    directory = Path(
        tempfile.mkdtemp(prefix="st-pg-", dir="/tmp" if Path("/tmp").is_dir() else None)
    )
    done = subprocess.run(
        [str(CLUSTER_SCRIPT), "start", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        log = directory / "postgres.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        stop_throwaway_cluster(directory)
        pytest.fail(f"could not start PostgreSQL: {done.stderr.strip()}\n{tail}", pytrace=False)
    exports = parse_exports(done.stdout)
    server = PostgresServer(
        exports[URL_VARIABLE],
        exports[ADMIN_URL_VARIABLE],
        Path(exports[DATA_VARIABLE]),
        drop_on_close=False,
    )
    return server, directory


def stop_throwaway_cluster(directory: Path) -> None:
    """Stop the cluster in *directory* and remove it."""
    subprocess.run([str(CLUSTER_SCRIPT), "stop", str(directory)], capture_output=True, check=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server for this session (see the module's docstring for where from)."""
    server = server_from_environment()
    directory = None
    if server is None:
        if not (server_programs_installed() and CLUSTER_SCRIPT.is_file()):
            if os.environ.get(REQUIRE_VARIABLE) == "1":
                pytest.fail(f"{NO_SERVER} ({REQUIRE_VARIABLE}=1)", pytrace=False)
            pytest.skip(NO_SERVER)
        server, directory = start_throwaway_cluster()
    try:
        yield server
    finally:
        try:
            server.close()
        finally:
            if directory is not None:
                stop_throwaway_cluster(directory)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker the server's tests carry."""
    config.addinivalue_line("markers", f"{MARKER}: the test needs the PostgreSQL server")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once, even without -rs, why the server's tests were skipped."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and NO_SERVER in report.longrepr[2]
    ]
    if skipped:
        terminalreporter.write_line(f"{NO_SERVER} ({len(skipped)} tests skipped)", yellow=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the server, so ``-m "not postgres"`` can leave them out."""
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)
