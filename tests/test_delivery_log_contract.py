"""The delivery-log contract, passed by the built-in logs and failed by broken ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.postgres_server import PostgresServer

from sourcetruth.adapters.stores.postgres import book_url
from sourcetruth.app.databasebook import DatabaseBook, DatabaseDeliveryLog
from sourcetruth.app.sending import FileDeliveryLog, MemoryDeliveryLog
from sourcetruth.testing.delivery_logs import DeliveryLogContract, OpenLog


class TestFileDeliveryLog(DeliveryLogContract):
    """The JSON-lines log, each handle a new FileDeliveryLog on the same file."""

    log_class: type[FileDeliveryLog] = FileDeliveryLog

    @pytest.fixture
    def open_log(self, tmp_path: Path) -> OpenLog:
        """Each name a file of its own."""
        return lambda name: self.log_class(tmp_path / f"{name}.jsonl")


class TestMemoryDeliveryLog(DeliveryLogContract):
    """The log in memory: every handle on a name is the same log."""

    @pytest.fixture
    def open_log(self) -> OpenLog:
        """One MemoryDeliveryLog per name, for the test."""
        logs: dict[str, MemoryDeliveryLog] = {}
        return lambda name: logs.setdefault(name, MemoryDeliveryLog())


class TestDatabaseDeliveryLog(DeliveryLogContract):
    """The log in PostgreSQL: each name a book of its own in one database, each handle new."""

    @pytest.fixture
    def open_log(self, postgres_server: PostgresServer) -> Iterator[OpenLog]:
        """A new DatabaseBook (its own connection) per handle; each name a book id."""
        database = postgres_server.new_database("log")
        opened: list[DatabaseBook] = []

        def open_(name: str) -> DatabaseDeliveryLog:
            book = DatabaseBook(book_url(database, name), {})
            opened.append(book)
            return book.delivery_log

        yield open_
        for book in opened:
            book.close()


BROKEN = """
import test_delivery_log_contract as base
from sourcetruth.app.sending import FileDeliveryLog
from sourcetruth.messages import DeliveryResult
from sourcetruth.serialise import converter


class KeepsTheFirstAnswer(FileDeliveryLog):
    def results(self):
        found = {}
        for line in self._lines():
            if line.get("event") == "answered":
                result = converter.structure(line["result"], DeliveryResult)
                found.setdefault(result.key, result)
        return found


class ForgetsWhatWasHandedOver(FileDeliveryLog):
    def handed_over(self):
        return frozenset()


class TestKeepsTheFirstAnswer(base.TestFileDeliveryLog):
    log_class = KeepsTheFirstAnswer


class TestForgetsWhatWasHandedOver(base.TestFileDeliveryLog):
    log_class = ForgetsWhatWasHandedOver
"""


def test_the_contract_fails_exactly_the_broken_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log keeping the first answer, and one forgetting hand-overs, fail where they should."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-rf")
    failed = sorted(
        line.split(" ")[1].split("::", 1)[1]
        for line in result.outlines
        if line.startswith("FAILED")
    )
    assert failed == [
        "TestForgetsWhatWasHandedOver::test_what_was_handed_over_and_answered_reads_back",
        "TestKeepsTheFirstAnswer::test_the_last_answer_is_kept",
    ], "\n".join(result.outlines[-30:])
    assert result.parseoutcomes().get("passed", 0) == 6
