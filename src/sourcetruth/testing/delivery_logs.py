"""The delivery-log contract: does a log keep the promises of :class:`~.protocols.DeliveryLog`?

:func:`~sourcetruth.app.sending.send` trusts its log to say, after a crash,
what was handed over and what came back. Subclass
:class:`DeliveryLogContract` and override ``open_log``::

    class TestPostgresDeliveryLog(DeliveryLogContract):
        @pytest.fixture
        def open_log(self, database):
            return lambda name: PostgresDeliveryLog(database.dsn, table=name)

``open_log(name)`` opens a new handle on the log *name*: empty the first
time, and holding what earlier handles wrote after (another process resuming
a send). The checks: a new log is empty; what was handed over and answered
reads back, every field of every result equal, through a new handle too;
the last answer for a key is the one kept; and what it returns is a copy,
not the log. The contract is not collected by itself: its name does not
start with ``Test``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sourcetruth.messages import DeliveryResult, DeliveryStatus
from sourcetruth.protocols import DeliveryLog

__all__ = ["DeliveryLogContract", "OpenLog"]

#: The contract's ``open_log`` fixture: a delivery log by name, the same log for the same name.
OpenLog = Callable[[str], DeliveryLog]

_FAILED = DeliveryResult.failed("key-a", "gateway timed out", retryable=True)
_ACCEPTED = DeliveryResult.accepted("key-a", reference="gw-1", segments=2)
_REJECTED = DeliveryResult.rejected("key-b", "recipient refused: 550 5.1.1")


class DeliveryLogContract:
    """The checks every delivery log must pass; subclass it and override ``open_log``."""

    @pytest.fixture
    def open_log(self) -> OpenLog:
        """Return ``open(name) -> DeliveryLog``: a new handle on the log *name*, empty at first."""
        msg = "override the open_log fixture to open your delivery log"
        raise NotImplementedError(msg)

    def test_a_new_log_is_empty(self, open_log: OpenLog) -> None:
        """A new log has handed nothing over and holds no answer."""
        log = open_log("new")
        assert log.handed_over() == frozenset()
        assert log.results() == {}

    def test_what_was_handed_over_and_answered_reads_back(self, open_log: OpenLog) -> None:
        """Keys handed over and results answered read back equal, through a new handle too."""
        log = open_log("send")
        log.handing_over(["key-a", "key-b", "key-c"])
        log.answered([_ACCEPTED, _REJECTED])
        for handle in (log, open_log("send")):
            assert handle.handed_over() == frozenset({"key-a", "key-b", "key-c"})
            assert handle.results() == {"key-a": _ACCEPTED, "key-b": _REJECTED}
        assert open_log("another").results() == {}, "two logs share what they hold"

    def test_the_last_answer_is_kept(self, open_log: OpenLog) -> None:
        """A delivery tried again keeps its last answer, through a new handle too."""
        log = open_log("send")
        log.handing_over(["key-a"])
        log.answered([_FAILED])
        log.handing_over(["key-a"])
        log.answered([_ACCEPTED])
        assert log.results() == {"key-a": _ACCEPTED}
        assert open_log("send").results()["key-a"].status is DeliveryStatus.ACCEPTED

    def test_what_it_returns_is_a_copy(self, open_log: OpenLog) -> None:
        """Changing what ``results`` returned changes nothing in the log."""
        log = open_log("send")
        log.handing_over(["key-a"])
        log.answered([_ACCEPTED])
        log.results().clear()
        assert log.results() == {"key-a": _ACCEPTED}
        assert isinstance(log.handed_over(), frozenset)
