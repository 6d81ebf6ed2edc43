"""Sources: ``sync`` merges a source's export into the book; ``when`` says when a change shows."""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path

from sourcetruth.adapters.sources.base import Reading
from sourcetruth.changes import ConfirmSync
from sourcetruth.cli._context import Context, forward
from sourcetruth.cli._errors import HELD, OK, Exit
from sourcetruth.cli._files import input_path
from sourcetruth.cli._names import unknown_source
from sourcetruth.cli._options import Subcommands, add_command
from sourcetruth.cli._sources import (
    extracted_at,
    notices,
    read,
    reads_a_service,
    synced_source,
)
from sourcetruth.exceptions import ConfirmationMismatchError, UsageError
from sourcetruth.model import Snapshot
from sourcetruth.report import MergeResult, Report
from sourcetruth.schedule import when_effective

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``sync`` and ``when``."""
    sub = add_command(commands, "sync", _sync, "read a source's export and merge it")
    sub.add_argument("source", help="the source's name in the policy (like mis)")
    sub.add_argument(
        "path",
        nargs="?",
        help="the export: a file, folder or zip (none for a live source, like oneroster-rest)",
    )
    sub.add_argument("--adapter", help="read it with this adapter (default: the policy's)")
    sub.add_argument(
        "--extracted-at", help="when the export was taken (default: its files' newest mtime)"
    )
    sub.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    sub.add_argument("--confirm", metavar="TOKEN", help="apply a held sync: the token it gave")

    sub = add_command(
        commands, "when", _when, "when a change made at a source shows in the book", at=False
    )
    sub.add_argument("source", help="the source's name in the policy (like mis)")
    sub.add_argument("--changed-at", help="when it was changed at the source (default now)")


def _sync(ctx: Context) -> int:
    args = ctx.args
    source = synced_source(ctx, args.source)
    at = ctx.change_at  # also for a dry run: it shows a change the book would make
    live = reads_a_service(ctx, source)
    if live and args.path is not None:
        msg = f"the source {source!r} is read from its service: give no path"
        raise UsageError(msg)
    if args.path is None:  # a live source: read now from its service (else the reader says)
        path = None
        taken = ctx.time(args.extracted_at, "--extracted-at") if args.extracted_at else at
    else:
        path = input_path(args.path)
        taken = _taken_at(ctx, path, at)
    with ctx.progress(f"reading {source if path is None else path.name}") as progress:
        reading = read(ctx, source, path, taken)
        progress.phase("merging")
        result = _merge(ctx, reading.snapshot, at)
    notices(ctx, reading.notices)
    command = _confirm_command(ctx, source, taken, at, result.report)
    _say_synced(ctx, reading, result.report, command)
    if command is not None:
        held = "would be held" if args.dry_run else "was held"
        raise Exit(HELD, f"the sync {held} by the departure guard: nothing was applied")
    return OK


def _taken_at(ctx: Context, path: Path, at: datetime) -> datetime:
    """When the export was taken; files written after the sync's time need --extracted-at."""
    taken = extracted_at(ctx, path)
    if not ctx.args.extracted_at and taken > at:
        msg = (
            f"the export's files were written {ctx.render.time(taken)}, after the sync's "
            f"time ({ctx.render.time(at)}): say when it was taken with --extracted-at"
        )
        raise UsageError(msg)
    return taken


def _merge(ctx: Context, snapshot: Snapshot, at: datetime) -> MergeResult:
    """The snapshot merged into the book (``--confirm``: as a held sync confirmed), or a dry run."""
    args = ctx.args
    change = snapshot if not args.confirm else ConfirmSync(snapshot, args.confirm)
    try:
        with forward(ctx):
            if args.dry_run:
                return ctx.book.dry_run(change, at=at, by=ctx.by)
            return ctx.book.apply(change, at=at, by=ctx.by)
    except ConfirmationMismatchError as error:
        msg = f"{error}: run the sync again without --confirm for a new token"
        raise UsageError(msg) from None


def _confirm_command(
    ctx: Context, source: str, taken: datetime, at: datetime, report: Report
) -> str | None:
    """For a held sync, the same command with the token: run as printed, it applies this export."""
    if report.held is None:
        return None
    args = ctx.args
    words = ["sourcetruth", "--book", ctx.book.where]
    if ctx.password_env:
        words += ["--password-env", ctx.password_env]
    words += ["sync", source]
    if args.path is not None:
        words.append(args.path)
    if args.adapter:
        words += ["--adapter", args.adapter]
    words += ["--extracted-at", taken.isoformat()]
    if args.at:
        words += ["--at", at.isoformat()]
    words += ["--confirm", report.held.token]
    return shlex.join(words)


def _say_synced(ctx: Context, reading: Reading, report: Report, command: str | None) -> None:
    args = ctx.args
    if args.json:
        ctx.json(
            {
                "dry_run": args.dry_run,
                "rejected_rows": reading.rejected,
                "notices": list(reading.notices),
                "report": report,
                "confirm_command": command,
            }
        )
        return
    ctx.lines(ctx.render.report(report, dry_run=args.dry_run))
    if reading.rejected:
        ctx.say(f"  {reading.rejected} row(s) rejected: read as a delta, so nobody departed")
    if command is not None:
        ctx.say("  Check the export. If it is right, apply it with:")
        ctx.say(f"  {command}")


def _when(ctx: Context) -> int:
    policy = ctx.book.settings.policy
    if ctx.args.source not in policy.order:
        raise UsageError(unknown_source(ctx.args.source, policy.order))
    changed = ctx.time(ctx.args.changed_at, "--changed-at")
    effective = when_effective(policy, ctx.args.source, changed)
    if ctx.args.json:
        ctx.json({"source": ctx.args.source, "changed_at": changed, "effective_at": effective})
        return OK
    ctx.say(
        f"A change made in {ctx.args.source} at {ctx.render.time(changed)} shows in the book "
        f"at {ctx.render.time(effective)}."
    )
    return OK
