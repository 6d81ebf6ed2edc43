"""Fixtures of the command's tests: a folder for a book, a book synced, a refusing gateway."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Cli, Gateway, RefusingHandler
from tests.postgres_server import PostgresServer

from sourcetruth.adapters.stores.postgres import book_url


@pytest.fixture(scope="session")
def cli_database(postgres_server: PostgresServer) -> str:
    """One database for the command's tests on PostgreSQL: each test a book of its own."""
    return postgres_server.new_database("cli")


_BOOK_IDS = itertools.count(1)


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """A book not made yet: a folder; or, parametrised ``postgres``, a new id in a database."""
    if getattr(request, "param", "folder") == "folder":
        return Cli(tmp_path)
    database = request.getfixturevalue("cli_database")
    return Cli(tmp_path, book=book_url(database, f"school-{next(_BOOK_IDS)}"))


@pytest.fixture
def book(cli: Cli) -> Cli:
    """A book with the MIS synced on Tuesday 24 November at 02:00 (read at 01:30)."""
    cli.ok("init")
    cli.sync(cli.export("tue"), 24)
    return cli


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway(("127.0.0.1", 0), RefusingHandler)
    server.seen = []
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
