"""An audience on the command line: group names, contact ids and a rule, made a message.

``group set`` takes a rule; ``recipients`` and ``send`` take an audience
(groups, contact ids, a rule) and channels, and show the plan as lines.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Final

from sourcetruth._near import did_you_mean, nearest
from sourcetruth.cli._context import Context
from sourcetruth.cli._names import require_contacts, require_group
from sourcetruth.cli._options import count
from sourcetruth.effective import contacts_at
from sourcetruth.exceptions import UsageError
from sourcetruth.messages import Message, Plan, SendMode
from sourcetruth.model import Book, Channel, Role, Rule
from sourcetruth.view import view_is_current

__all__ = [
    "add_audience_options",
    "add_rule_options",
    "check_audience",
    "message",
    "names",
    "note_nobody",
    "plan_lines",
    "require_audience",
    "rule",
]


def add_rule_options(sub: argparse.ArgumentParser) -> None:
    """The options of a rule: role, year, registration group, guardians, priority."""
    sub.add_argument(
        "--role",
        dest="roles",
        action="append",
        choices=[r.value for r in Role],
        help="rule: this role (repeatable)",
    )
    sub.add_argument("--year", dest="years", action="append", help="rule: this year group")
    sub.add_argument("--reg", dest="regs", action="append", help="rule: registration group")
    sub.add_argument(
        "--guardians",
        action="store_true",
        help="rule: the guardians of the pupils the rule selects",
    )
    sub.add_argument(
        "--max-priority",
        type=count,
        metavar="N",
        help="with --guardians: only those of priority 1 to N",
    )


def add_audience_options(sub: argparse.ArgumentParser) -> None:
    """An audience's words and rule, the channels to try, and whether to use them all."""
    sub.add_argument("audience", nargs="*", help="group names and contact ids (ids hold a ':')")
    sub.add_argument(
        "--channel",
        action="append",
        default=[],
        choices=[c.value for c in Channel],
        help="a channel, in order of preference (default email)",
    )
    add_rule_options(sub)
    sub.add_argument(
        "--each",
        action="store_true",
        help="send on every channel (default: the first that reaches)",
    )


def rule(args: argparse.Namespace) -> Rule | None:
    """The rule the options give, or None when they give none."""
    if not (args.roles or args.years or args.regs or args.guardians):
        if args.max_priority is not None:
            msg = "--max-priority goes with --guardians"
            raise UsageError(msg)
        return None
    return Rule(
        roles=frozenset(Role(r) for r in args.roles or ()),
        year_groups=frozenset(args.years or ()),
        registration_groups=frozenset(args.regs or ()),
        guardians_of=args.guardians,
        max_priority=args.max_priority,
    )


def require_audience(args: argparse.Namespace) -> None:
    """Refuse a command that names nobody: no group, no contact id, no rule."""
    if not args.audience and rule(args) is None:
        msg = "name an audience: group names, contact ids, or a rule (--year 9 ...)"
        raise UsageError(msg)


def message(ctx: Context, *, message_id: str, subject: str, body: str) -> Message:
    """The message to the audience the options name, on the channels they give."""
    args = ctx.args
    groups = tuple(a for a in args.audience if ":" not in a)
    contacts = tuple(a for a in args.audience if ":" in a)
    found = rule(args)
    channels = tuple(Channel(c) for c in args.channel) or (Channel.EMAIL,)
    return Message(
        message_id,
        subject,
        body,
        channels=channels,
        mode=SendMode.EACH if getattr(args, "each", False) else SendMode.FIRST,
        groups=groups,
        rules=() if found is None else (found,),
        contacts=contacts,
    )


def check_audience(ctx: Context, book: Book, told: Message) -> None:
    """Refuse contact ids and groups the book does not hold: a typo would reach nobody.

    A departed contact, or a record linked into another contact, is held: the
    plan says it is unreachable, or reaches it where it now lives.
    """
    # Each id looked up where it would be, not every id the book holds gathered first.
    require_contacts(ctx, book, told.contacts)
    require_group(ctx, book, told.groups, in_audience=True)
    if told.rules and not (told.groups or told.contacts):
        _check_rule_selects(ctx, book, told.rules[0])


#: A rule's parts: the view's column, what a value of it is called, and its plural.
_PARTS: Final = (
    ("role", "no contact has role", "roles"),
    ("year_group", "no contact is in year group", "year groups"),
    ("registration_group", "no contact is in registration group", "registration groups"),
)
#: How many of a selector's values a message lists.
_LISTED: Final = 20


def _check_rule_selects(ctx: Context, book: Book, told: Rule) -> None:
    """Refuse a rule one of whose parts no present contact matches: it selects nobody.

    Says which part, and the values the book holds for it (``--year 13``: the
    year groups there are), found by the view's indexes, not a load of the book.
    """
    wanted = {
        "role": sorted(r.value for r in told.roles),
        "year_group": sorted(told.year_groups),
        "registration_group": sorted(told.registration_groups),
    }
    for column, said, plural in _PARTS:
        if not wanted[column]:
            continue
        held = sorted(present_values(ctx, book, column), key=_natural)
        if any(value in held for value in wanted[column]):
            continue
        typed = " or ".join(map(repr, wanted[column]))
        listed = ", ".join(held[:_LISTED]) + (
            f" and {len(held) - _LISTED} more" if len(held) > _LISTED else ""
        )
        there = f"{plural}: {listed}" if held else f"no contact has a {plural[:-1]}"
        first = wanted[column][0]
        # '14' is not a typo of '4': only a value with letters ('9a' for '9A') is guessed at.
        near = [] if first.isdigit() else nearest(first, held)
        msg = f"{said} {typed} ({there}){did_you_mean(near)}"
        raise UsageError(msg)


def note_nobody(ctx: Context, planned: Plan) -> None:
    """Say so when a rule whose every part matches someone selects nobody: no one matches all."""
    told = planned.message
    if planned.deliveries or planned.unreachable or told.groups or told.contacts:
        return
    if told.rules:
        ctx.note(
            "notice: the rule selects nobody: each of its parts matches someone, "
            "but no contact matches them all"
        )


def present_values(ctx: Context, book: Book, column: str) -> list[str]:
    """The values of a selector (``role``, ``year_group``, ...) that present contacts hold."""
    values = getattr(book.view, "held_values", None)
    if values is not None and view_is_current(book, ctx.policy, ctx.at):
        found: list[str] = values(column)
        return found
    # A book in memory, or one whose view does not answer (said once: see Context.viewed).
    held = set()
    for contact in contacts_at(book, policy=ctx.policy, at=ctx.at):
        if not contact.departed:
            value = contact.data.get(column)
            held.add(value.value if isinstance(value, Role) else str(value))
    return sorted(held - {""})


def _natural(value: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key putting 7 before 10 and 9A before 10A."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.findall(r"\d+|\D+", value))


def names(ids: Sequence[str]) -> str:
    """Contact ids for a message: plain, and an empty one visible."""
    return ", ".join(i if i.strip() else repr(i) for i in ids)


def plan_lines(ctx: Context, planned: Plan) -> list[str]:
    """A plan as lines: each delivery and where its address came from; who fell back, who not."""
    r = ctx.render
    lines = []
    for d in planned.deliveries:
        origin = "; ".join(r.provenance(p) for p in d.provenance)
        lines.append(f"  {d.channel.value:<5} {d.address}  ({', '.join(d.contact_ids)})")
        lines.append(f"        from {origin}")
    for channel, u in planned.fallbacks:
        lines.append(f"  fell back from {channel.value} for {u.contact_id}: {u.reason}")
    for channel, u in planned.unreachable:
        lines.append(f"  unreachable on {channel.value}: {u.contact_id}: {u.reason}")
    return lines
