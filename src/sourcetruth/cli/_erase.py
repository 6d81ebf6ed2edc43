"""``erase``: a person taken out of the book, its history and journal for good (rule 13)."""

from __future__ import annotations

from sourcetruth.cli._context import Context, after_change, forward
from sourcetruth.cli._errors import OK
from sourcetruth.cli._names import require_contacts
from sourcetruth.cli._options import CONTACT, Subcommands, add_command
from sourcetruth.exceptions import UsageError

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``erase``."""
    sub = add_command(commands, "erase", _erase, "erase a person for good (rule 13)")
    sub.add_argument("contact", help=CONTACT)
    sub.add_argument("--yes", action="store_true", help="yes, erase them")
    sub.add_argument(
        "--no-suppress",
        action="store_true",
        help="let a later sync bring them back (no suppression entry)",
    )


def _erase(ctx: Context) -> int:
    if not ctx.args.yes:
        msg = (
            f"erasing {ctx.args.contact} cannot be undone: add --yes to erase the person, "
            "their history and their journal entries"
        )
        raise UsageError(msg)
    require_contacts(ctx, ctx.book.load(), [ctx.args.contact])
    at = ctx.change_at
    with forward(ctx):
        result, rewritten = ctx.book.erase(
            ctx.args.contact, at=at, by=ctx.by, suppress=not ctx.args.no_suppress
        )
    after_change(ctx, result.report, f"Erased {ctx.args.contact}.")
    if rewritten and not ctx.args.json:
        ctx.say(
            f"  taken out of the audit of {len(rewritten)} sent message(s), the outbox "
            "and the delivery log"
        )
    # An audit record that could not be read may still hold them: say so, never silently.
    for file in getattr(ctx.book, "unreadable_audits", ()):
        ctx.note(
            f"notice: {file}: the audit record cannot be read, so it may still hold "
            f"{ctx.args.contact}: repair it and erase again, or delete it"
        )
    return OK
