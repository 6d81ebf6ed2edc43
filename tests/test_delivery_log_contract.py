"""The delivery-log contract, passed by the built-in logs and failed by broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest

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
