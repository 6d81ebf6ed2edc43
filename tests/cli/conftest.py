"""Fixtures of the command's tests: a folder for a book, a book synced, a refusing gateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Cli, Gateway, RefusingHandler


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A folder for a book, not made yet."""
    return Cli(tmp_path)


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
