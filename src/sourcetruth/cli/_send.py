"""Messages: ``recipients`` (who an audience reaches), ``send``, and ``why`` it went there.

``send`` is a dry run unless told ``--deliver``. Sending itself, with its
audit record kept before anything is handed over and its resumption after an
interruption, is the library's: :func:`~sourcetruth.app.dispatch.plan_send`
and :func:`~sourcetruth.app.dispatch.send_planned`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from sourcetruth._near import did_you_mean, nearest
from sourcetruth.app.dispatch import PlannedSend, SentMessage, plan_send, send_planned
from sourcetruth.audit import AuditRecord, Why, why
from sourcetruth.cli._audience import (
    add_audience_options,
    check_audience,
    message,
    note_nobody,
    plan_lines,
    require_audience,
)
from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import OK, UNDELIVERED, Exit
from sourcetruth.cli._files import reason
from sourcetruth.cli._names import require_contacts
from sourcetruth.cli._options import CONTACT, Subcommands, add_command
from sourcetruth.exceptions import MessageIdReusedError, UnknownContactError, UsageError
from sourcetruth.messages import DeliveryStatus, Message, plan
from sourcetruth.model import Channel

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``recipients``, ``send`` and ``why``."""
    sub = add_command(
        commands, "recipients", _recipients, "who an audience reaches, at which address, and why"
    )
    add_audience_options(sub)
    sub = add_command(commands, "send", _send, "plan a message; with --deliver, send it")
    add_audience_options(sub)
    sub.add_argument("--id", required=True, help="the message's id, for ever")
    sub.add_argument("--subject", default="", help="the message's subject (for email)")
    text = sub.add_mutually_exclusive_group()
    text.add_argument("--body", help="the message's text")
    text.add_argument("--body-file", help="a UTF-8 file holding the message's text")
    sub.add_argument(
        "--deliver",
        action="store_true",
        help="really send (default: a dry run that shows the plan)",
    )

    sub = add_command(commands, "why", _why, "why a sent message went to that address", at=False)
    sub.add_argument("message", help="the message's id")
    sub.add_argument("contact", help=CONTACT)
    sub.add_argument(
        "--channel",
        choices=[c.value for c in Channel],
        help="only this channel (default: each the message used)",
    )


def _recipients(ctx: Context) -> int:
    require_audience(ctx.args)
    told = message(ctx, message_id="recipients", subject="", body="")
    book = ctx.viewed()
    check_audience(ctx, book, told)
    planned = plan(book, told, policy=ctx.policy, at=ctx.at)
    note_nobody(ctx, planned)
    if ctx.args.json:
        ctx.json(planned)
        return OK
    ctx.lines(plan_lines(ctx, planned))
    ctx.say(
        f"{len(planned.deliveries)} address(es) reach {len(planned.reached)} contact(s); "
        f"{len({u.contact_id for _, u in planned.unreachable})} unreachable."
    )
    return OK


def _send(ctx: Context) -> int:
    outgoing = _outgoing(ctx)
    folder = ctx.book
    book = ctx.viewed()
    check_audience(ctx, book, outgoing)
    # Sending again resumes the message as it was planned, unless told another time.
    at = None if ctx.args.at is None else ctx.at
    try:
        planned = plan_send(folder, book, outgoing, policy=ctx.policy, now=ctx.now, at=at)
    except MessageIdReusedError as error:
        msg = (
            f"a message {error.message_id!r} was sent {ctx.render.time(error.sent_at)} with "
            "other text, channels or audience: give this one a new --id"
        )
        raise UsageError(msg) from None
    note_nobody(ctx, planned.plan)
    if not ctx.args.deliver:
        return _dry_run(ctx, planned)
    todo = len(planned.plan.deliveries) - planned.delivered_before
    with ctx.progress("sending", total=todo) as progress:
        sent = send_planned(folder, planned, sent_at=ctx.at, settled=lambda _: progress.advance())
    _say_sent(ctx, sent, planned.delivered_before)
    _refuse_undelivered(ctx.args.id, sent.record)
    return OK


def _outgoing(ctx: Context) -> Message:
    """The message the options give: an id, an audience, and text that is not empty."""
    args = ctx.args
    if not args.id.strip():
        msg = "--id: give the message an id, like trip-2026-11-24"
        raise UsageError(msg)
    require_audience(args)
    body = args.body
    if args.body_file:
        try:
            body = Path(args.body_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the body file {args.body_file}: {reason(error)}"
            raise UsageError(msg) from None
    if body is None:
        msg_0 = "give the message text: --body TEXT or --body-file FILE"
        raise UsageError(msg_0)
    if not body.strip():
        msg_0 = "the message's text is empty: give it with --body or --body-file"
        raise UsageError(msg_0)
    return message(ctx, message_id=args.id, subject=args.subject, body=body)


def _dry_run(ctx: Context, planned: PlannedSend) -> int:
    """Show the plan, and what an earlier send already delivered; send nothing."""
    earlier = planned.delivered_before
    if ctx.args.json:
        ctx.json({"dry_run": True, "plan": planned.plan, "delivered_before": earlier})
        return OK
    ctx.lines(plan_lines(ctx, planned.plan))
    if planned.previous is not None:
        ctx.say(
            f"{ctx.args.id} was sent {ctx.render.time(planned.previous.sent_at)}, as planned "
            f"{ctx.render.time(planned.plan.at)}; {earlier} delivery(ies) have their answer and "
            "would not be sent again."
        )
    ctx.say(
        f"Dry run: {len(planned.plan.deliveries)} delivery(ies) planned, nothing sent. "
        "Add --deliver to send."
    )
    return OK


def _say_sent(ctx: Context, sent: SentMessage, earlier: int) -> None:
    """Each delivery's outcome, who was not reached, and where the audit is."""
    record = sent.record
    if ctx.args.json:
        ctx.json(
            {
                "dry_run": False,
                "audit": record,
                "audit_file": os.fspath(sent.audit_file),
                "delivered_before": earlier,
            }
        )
        return
    for outcome in record.outcomes:
        d, result = outcome.delivery, outcome.result
        status = "not handed over" if result is None else result.status.value
        why_not = f" ({result.reason})" if result is not None and result.reason else ""
        ctx.say(f"  {d.channel.value:<5} {d.address}  {status}{why_not}")
    for channel, u in (*record.fallbacks, *record.unreachable):
        verb = "fell back from" if (channel, u) in record.fallbacks else "unreachable on"
        ctx.say(f"  {verb} {channel.value}: {u.contact_id}: {u.reason}")
    accepted = record.count(DeliveryStatus.ACCEPTED)
    again = f" ({earlier} of them before this run, not sent again)" if earlier else ""
    ctx.say(
        f"Sent {ctx.args.id}: {accepted} accepted{again}, {len(record.outcomes) - accepted} not; "
        f"the audit is in {sent.audit_file}."
    )


def _refuse_undelivered(message_id: str, record: AuditRecord) -> None:
    """Exit 5 if any delivery is not accepted: how many are final, how many to send again."""
    bad = len(record.outcomes) - record.count(DeliveryStatus.ACCEPTED)
    if not bad:
        return
    rejected = record.count(DeliveryStatus.REJECTED)
    parts = []
    if rejected:
        parts.append(f"{rejected} rejected (final: the audit says why)")
    if bad - rejected:
        parts.append(
            f"{bad - rejected} failed or not handed over (send again with the same --id "
            "to retry them)"
        )
    raise Exit(UNDELIVERED, f"{message_id}: " + "; ".join(parts))


def _why(ctx: Context) -> int:
    try:
        record = ctx.book.audit(ctx.args.message)
    except UsageError as error:
        near = nearest(ctx.args.message, _sent_ids(ctx))
        msg = f"{error}{did_you_mean(near)}"
        raise UsageError(msg) from None
    answers = _answers(ctx, record)
    if ctx.args.json:
        ctx.json(answers)
        return OK
    r = ctx.render
    for a in answers:
        if a.address is None:
            ctx.say(f"{a.channel.value}: not sent to {a.contact_id}: {a.reason}")
            continue
        result = "not handed over" if a.result is None else a.result.status.value
        ctx.say(f"{a.channel.value}: {a.address} ({result})")
        if a.provenance is not None:
            ctx.say(f"  from {r.provenance(a.provenance)}")
        for event in a.overrides:
            ctx.say(f"  override: {r.override(event.override)}")
        if a.later is not None:
            ctx.say(
                f"  the source changed it later: applied {r.time(a.later.applied_at)} "
                f"(sync {a.later.sync}), after this message was planned"
            )
    return OK


#: How many sent messages' ids a "did you mean" for a message id looks at.
_AUDITS_LOOKED_AT: Final = 10_000


def _sent_ids(ctx: Context) -> list[str]:
    """Ids of messages sent from the book, for a "did you mean" (a bounded number of them)."""
    return ctx.book.sent_ids(_AUDITS_LOOKED_AT)


def _answers(ctx: Context, record: AuditRecord) -> list[Why]:
    """Why the message went where it did for the contact: on ``--channel``, or each it used."""
    channels = (
        [Channel(ctx.args.channel)]
        if ctx.args.channel
        else list(dict.fromkeys(record.message.channels))
    )
    book = ctx.book.load()
    require_contacts(ctx, book, [ctx.args.contact])
    answers: list[Why] = []
    for channel in channels:
        try:
            answers.append(why(record, ctx.args.contact, channel, book=book, policy=ctx.policy))
        except UnknownContactError:
            # Sent on its first channel, a person was never tried on the others.
            if ctx.args.channel or (channel is channels[-1] and not answers):
                raise
    return answers
