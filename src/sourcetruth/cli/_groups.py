"""Who belongs together: groups (``group set|remove``, ``groups``), and ``link``/``unlink``.

A group spans homes (rule 11): members by id, and/or a rule over effective
data. A link says two records are one person (rule 12: never by itself).
"""

from __future__ import annotations

from sourcetruth.changes import Link, RemoveGroup, SetGroup, Unlink
from sourcetruth.cli._audience import add_rule_options, rule
from sourcetruth.cli._context import Context, after_change, apply
from sourcetruth.cli._names import require_contacts, require_group, require_record
from sourcetruth.cli._options import Subcommands, add_actions, add_command
from sourcetruth.exceptions import UsageError
from sourcetruth.model import GroupDefinition

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``group set|remove``, ``groups``, ``link`` and ``unlink``."""
    actions = add_actions(commands, "group", "create, replace or remove a group")
    sub = add_command(actions, "set", _group_set, "create or replace a group")
    sub.add_argument("name", help="the group's name (no ':')")
    sub.add_argument("--member", action="append", help="a contact id (repeatable)")
    add_rule_options(sub)
    sub = add_command(actions, "remove", _group_remove, "remove a group")
    sub.add_argument("name", help="the group's name")
    add_command(commands, "groups", _groups, "list the groups")

    sub = add_command(commands, "link", _link, "say two records are one person")
    sub.add_argument("record", help="a record id: SOURCE:KEY, like mis:G1 (case matters)")
    sub.add_argument("other", help="the other record's id")
    sub = add_command(
        commands, "unlink", _unlink, "take a record out of the contact it was linked into"
    )
    sub.add_argument("record", help="the record's id: SOURCE:KEY (case matters)")


def _group_set(ctx: Context) -> int:
    name = ctx.args.name
    if not name.strip():
        msg = "a group needs a name"
        raise UsageError(msg)
    if ":" in name:
        # An audience word with ':' is a contact id: such a group could never be named.
        msg = f"a group's name holds no ':' ({name!r}); 'mis:G1' would be read as a contact id"
        raise UsageError(msg)
    group = GroupDefinition(name, frozenset(ctx.args.member or ()), rule(ctx.args))
    if not (group.members or group.rule):
        msg_0 = "a group needs --member ids and/or a rule (--year, --role, ...)"
        raise UsageError(msg_0)
    require_contacts(ctx, ctx.book.load(), sorted(group.members))
    result = apply(ctx, SetGroup(group))
    return after_change(ctx, result.report, f"Group {name} saved.")


def _group_remove(ctx: Context) -> int:
    require_group(ctx, ctx.book.load(), [ctx.args.name])
    result = apply(ctx, RemoveGroup(ctx.args.name))
    return after_change(ctx, result.report, f"Group {ctx.args.name} removed.")


def _groups(ctx: Context) -> int:
    at = ctx.at
    found = []
    for _, versions in sorted(ctx.book.load().groups.items()):
        current = [v for v in versions if v.since <= at]
        if current and current[-1].group is not None:
            found.append(current[-1].group)
    return ctx.listing(found, ctx.render.group, f"{len(found)} group(s).")


def _link(ctx: Context) -> int:
    book = ctx.book.load()
    require_record(ctx, book, ctx.args.record)
    require_record(ctx, book, ctx.args.other)
    result = apply(ctx, Link(ctx.args.record, ctx.args.other))
    return after_change(ctx, result.report, f"Linked {ctx.args.record} and {ctx.args.other}.")


def _unlink(ctx: Context) -> int:
    require_record(ctx, ctx.book.load(), ctx.args.record)
    result = apply(ctx, Unlink(ctx.args.record))
    return after_change(ctx, result.report, f"Unlinked {ctx.args.record}.")
