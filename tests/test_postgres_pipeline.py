"""The PostgreSQL store's commit is pipelined: one round trip per query read, not per statement.

An error the server reports late (after the statements sent behind it) still
rolls the whole commit back.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg import pq
from tests.postgres_server import PostgresServer

from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.postgres import PostgresStore
from sourcetruth.exceptions import AdapterError
from sourcetruth.testing.synthetic import policy, school

pytestmark = pytest.mark.usefixtures("postgres_server")

NIGHT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A database of the test's own."""
    return postgres_server.new_database("pipeline")


def test_every_statement_of_a_commit_is_sent_in_pipeline_mode(database_url: str) -> None:
    """A statement waits for no answer before the next is sent (none is a round trip of its own)."""
    modes: list[pq.PipelineStatus] = []
    store = PostgresStore(
        database_url, "a", statement_hook=lambda _n: modes.append(store._db.pgconn.pipeline_status)
    )
    apply(store, school(12, seed=1).snapshot(NIGHT), policy=policy(), at=NIGHT, by="nightly")
    store.close()
    assert len(modes) > 12
    assert set(modes) == {pq.PipelineStatus.ON}


def test_an_error_the_server_reports_late_rolls_the_whole_commit_back(database_url: str) -> None:
    """A failing statement queued mid-commit fails it as a whole: nothing is written."""
    snapshot = school(12, seed=1).snapshot(NIGHT)

    def fail_late(n: int) -> None:
        if n == 5:  # the server answers it only when the pipeline next waits
            store._db.execute("SELECT 1 / 0")

    store = PostgresStore(database_url, "a", statement_hook=fail_late)
    with pytest.raises(AdapterError, match="cannot write the book"):
        apply(store, snapshot, policy=policy(), at=NIGHT, by="nightly")
    store.close()
    again = PostgresStore(database_url, "a")
    try:
        book = again.load()
        assert (book.seq, len(book.contacts), again.journal()) == (0, 0, ())
        apply(again, snapshot, policy=policy(), at=NIGHT, by="nightly")
        assert len(again.load().contacts) == len(snapshot.records)
    finally:
        again.close()
