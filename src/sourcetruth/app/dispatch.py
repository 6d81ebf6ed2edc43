"""A message sent from a book with audit records: planned once, audited first, resumed as planned.

A message id names one message for ever. :func:`plan_send` plans it, or, if
it was sent before, gives back the plan it was first sent with (a reused id
with other text, channels or audience is refused with
:class:`~sourcetruth.exceptions.MessageIdReusedError`). :func:`send_planned`
saves the audit record before anything is handed over, sends through
:func:`~sourcetruth.app.sending.send` with the book's delivery log, and
saves the audit again when the send ends or stops. So an interrupted send,
sent again, resumes at its first planned time to the same addresses, whatever
the book says now, and sends only what has no final answer.
``send_message`` of a book folder
(:class:`~sourcetruth.app.bookfolder.BookFolder`) or a book in a database
(:class:`~sourcetruth.app.databasebook.DatabaseBook`) does both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

import attrs

from sourcetruth.app.sending import FINAL, send
from sourcetruth.audit import AuditRecord, Outcome
from sourcetruth.exceptions import MessageIdReusedError, UsageError
from sourcetruth.messages import DeliveryResult, Message, Plan
from sourcetruth.messages import plan as make_plan
from sourcetruth.model import Book, Channel
from sourcetruth.policy import Policy
from sourcetruth.protocols import DeliveryLog, Transport

__all__ = ["PlannedSend", "SendingFolder", "SentMessage", "plan_send", "send_planned"]


class SendingFolder(Protocol):
    """Where messages are sent from: audit records, a delivery log, a transport per channel.

    :class:`~sourcetruth.app.bookfolder.BookFolder` and
    :class:`~sourcetruth.app.databasebook.DatabaseBook` are. :meth:`audit`
    raises :class:`~sourcetruth.exceptions.UsageError` for a message never sent.
    """

    @property
    def delivery_log(self) -> DeliveryLog: ...

    def audit(self, message_id: str) -> AuditRecord: ...

    def save_audit(self, record: AuditRecord) -> Path | str: ...

    def transports(self, channels: Iterable[Channel]) -> Mapping[Channel, Transport]: ...


@attrs.frozen
class PlannedSend:
    """A message planned for :func:`send_planned`: as first planned, if it was sent before.

    ``previous`` is the audit record of the earlier send under the message's
    id (None for a first send). ``delivered_before`` is how many of the
    plan's deliveries already have their final answer in the delivery log:
    a send does not hand those over again.
    """

    plan: Plan
    previous: AuditRecord | None
    delivered_before: int


@attrs.frozen
class SentMessage:
    """What :func:`send_planned` did: the audit record, and where it is kept.

    ``audit_file`` is the record's file; for a book kept in a database, a
    description of where (the book, and the message id).
    """

    record: AuditRecord
    audit_file: Path | str


def plan_send(
    folder: SendingFolder,
    book: Book,
    message: Message,
    *,
    policy: Policy,
    now: datetime,
    at: datetime | None = None,
) -> PlannedSend:
    """Plan *message* from *book* to send from *folder*: a message sent before is resumed.

    A message first sent is planned at *at*, or *now*. One that *folder*
    holds an audit record of (an earlier send under the same id, finished or
    not) is planned at the time it was first planned, unless *at* says
    otherwise, so it goes to the addresses it went to then, whatever the book
    says now. A different message under that id is refused: raises
    :class:`MessageIdReusedError`, and nothing is written.
    """
    previous = _sent_before(folder, message.id)
    if previous is not None and previous.message != message:
        msg = (
            f"a message {message.id!r} was sent with other text, channels or audience: "
            "give this one a new id"
        )
        raise MessageIdReusedError(msg, message_id=message.id, sent_at=previous.sent_at)
    if at is None:
        at = now if previous is None else previous.planned_at
    planned = make_plan(book, message, policy=policy, at=at)
    known = folder.delivery_log.results()
    earlier = sum(
        (r := known.get(d.key)) is not None and r.status in FINAL for d in planned.deliveries
    )
    return PlannedSend(planned, previous, earlier)


def _sent_before(folder: SendingFolder, message_id: str) -> AuditRecord | None:
    try:
        return folder.audit(message_id)
    except UsageError:  # never sent
        return None


def send_planned(
    folder: SendingFolder,
    planned: PlannedSend,
    *,
    sent_at: datetime,
    attempts: int = 3,
    settled: Callable[[DeliveryResult], None] | None = None,
) -> SentMessage:
    """Send *planned* through *folder*'s transports and delivery log, audited at every step.

    The audit record is saved before anything is handed over: should the
    send stop half-way (Ctrl-C, a crash, the delivery log failing), the
    record is there to explain it, and :func:`plan_send` resumes from it.
    When the send stops with an error, what the log knows by then is saved
    before the error goes on. *attempts* and *settled* are as for
    :func:`send`. The final record replaces the first.
    """
    plan = planned.plan
    log = folder.delivery_log
    transports = folder.transports(dict.fromkeys(d.channel for d in plan.deliveries))
    folder.save_audit(_audit_so_far(plan, sent_at, log.results()))
    try:
        record = send(
            plan, transports, log=log, sent_at=sent_at, attempts=attempts, settled=settled
        )
    except BaseException:
        # Interrupted, or the delivery log failed: keep what is known, then stop.
        with contextlib.suppress(Exception):
            folder.save_audit(_audit_so_far(plan, sent_at, log.results(), log.handed_over()))
        raise
    return SentMessage(record, folder.save_audit(record))


def _audit_so_far(
    plan: Plan,
    sent_at: datetime,
    results: Mapping[str, DeliveryResult],
    handed_over: frozenset[str] = frozenset(),
) -> AuditRecord:
    """The audit of *plan* as far as it is known: *results*, by delivery key.

    A delivery handed over with no answer yet (the send stopped) is a failure
    to retry; one never handed over has no result.
    """
    outcomes = []
    for d in plan.deliveries:
        result = results.get(d.key)
        if result is None and d.key in handed_over:
            result = DeliveryResult.failed(
                d.key, "handed over, but the send stopped before an answer", retryable=True
            )
        outcomes.append(Outcome(d, result))
    return AuditRecord(plan.message, plan.at, sent_at, outcomes, plan.unreachable, plan.fallbacks)
