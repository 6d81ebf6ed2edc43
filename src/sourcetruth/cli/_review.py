"""What the book tells a data manager: the ``report`` worklists, and ``export`` as CSV."""

from __future__ import annotations

from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import OK
from sourcetruth.cli._files import input_path, output_path
from sourcetruth.cli._options import Subcommands, add_actions, add_command
from sourcetruth.cli._sources import extracted_at, notices, read, synced_source
from sourcetruth.exceptions import UsageError
from sourcetruth.model import Snapshot
from sourcetruth.worklists import (
    before_next_sync,
    count_by_source,
    data_quality,
    two_feeds,
    update_at_source,
)

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``report update-at-source|before-next-sync|two-feeds|data-quality`` and ``export``."""
    reports = add_actions(commands, "report", "the reports", dest="report", metavar="REPORT")
    sub = add_command(
        reports, "update-at-source", _update_at_source, "edits lost at a sync, and edits in force"
    )
    sub.add_argument("--since", help="only edits lost since this time")
    sub = add_command(
        reports,
        "before-next-sync",
        _before_next_sync,
        "which local edits the next sync would end",
    )
    sub.add_argument("source", help="the source's name in the policy (like mis)")
    sub.add_argument("--snapshot", help="the export the sync will read, for a dry run")
    sub.add_argument("--extracted-at", help="with --snapshot: when the export was taken")
    add_command(
        reports,
        "two-feeds",
        _two_feeds,
        "people in an MIS feed and an import, not linked",
        at=False,  # the book as it is now: links have no past here
    )
    add_command(
        reports, "data-quality", _data_quality, "raw values, dangling links, unreachable guardians"
    )

    sub = add_command(commands, "export", _export, "export the book as CSV", json_option=False)
    sub.add_argument("file", help="the CSV file to write")
    sub.add_argument("--departed", action="store_true", help="include departed contacts")
    sub.add_argument("--force", action="store_true", help="replace the file if it exists")


def _update_at_source(ctx: Context) -> int:
    book, policy, at = ctx.viewed(), ctx.policy, ctx.at
    since = ctx.time(ctx.args.since, "--since") if ctx.args.since else None
    found = update_at_source(book, policy=policy, at=at, since=since)
    if ctx.args.json:
        ctx.json(found)
        return OK
    r = ctx.render
    ctx.say(f"Lost at a sync ({len(found.lost)}): update these at the source")
    for e in found.lost:
        ctx.say(f"  {r.override(e.override)}; lost {r.time(e.ended_at)}")
    ctx.say(f"In force ({len(found.in_force)})")
    for f in found.in_force:
        ctx.say(f"  {r.override(f.override)}; ends {r.time(f.ends_at)}")
    return OK


def _before_next_sync(ctx: Context) -> int:
    book, policy, at = ctx.viewed(), ctx.policy, ctx.at
    source = synced_source(ctx, ctx.args.source)
    snapshot = _snapshot(ctx, source)
    if snapshot is not None:
        # A dry run of the sync: erased people stay out of it, which takes the key.
        policy = ctx.book.policy
    ends = before_next_sync(book, source, policy=policy, at=at, snapshot=snapshot)
    if ctx.args.json:
        ctx.json(ends)
        return OK
    r = ctx.render
    if ends.at is None:
        ctx.say(f"{ends.source} has no schedule; its next sync ends {len(ends.ending)} edit(s)")
    else:
        ctx.say(f"The next {ends.source} sync ({r.time(ends.at)}) ends {len(ends.ending)} edit(s)")
    outcomes = {id(e.override): e.outcome.value for e in ends.outcomes}
    for o in ends.ending:
        ctx.say(f"  {r.override(o)}" + (f": {outcomes[id(o)]}" if id(o) in outcomes else ""))
    return OK


def _snapshot(ctx: Context, source: str) -> Snapshot | None:
    """The export ``--snapshot`` names, read as the sync will read it; None without one."""
    if not ctx.args.snapshot:
        if ctx.args.extracted_at:
            msg = "--extracted-at goes with --snapshot"
            raise UsageError(msg)
        return None
    path = input_path(ctx.args.snapshot)
    reading = read(ctx, source, path, extracted_at(ctx, path))
    notices(ctx, reading.notices)
    return reading.snapshot


def _two_feeds(ctx: Context) -> int:
    found = two_feeds(ctx.book.load(), policy=ctx.policy)
    return ctx.listing(
        found,
        lambda d: f"  {d.record} and {d.other}: {', '.join(d.reasons)}",
        f"{len(found)} possible duplicate(s); link them with 'sourcetruth link'.",
    )


def _data_quality(ctx: Context) -> int:
    problems = data_quality(ctx.viewed(), policy=ctx.policy, at=ctx.at)
    invalid = count_by_source(problems)
    total = f"{len(problems)} problem(s)."
    if invalid:
        by_source = ", ".join(f"{source} {count}" for source, count in invalid.items())
        total += f" Phone numbers that are not valid, by source: {by_source}."
    return ctx.listing(
        problems, lambda p: f"  {p.contact_id} {p.field}: {p.kind}: {p.detail}", total
    )


def _export(ctx: Context) -> int:
    from sourcetruth.adapters.sources.export import write_export

    target = output_path(ctx, ctx.args.file)
    at = ctx.at
    write_export(
        target, ctx.book.load(), policy=ctx.policy, at=at, include_departed=ctx.args.departed
    )
    ctx.say(f"Wrote the book at {ctx.render.time(at)} to {ctx.args.file}.")
    return OK
