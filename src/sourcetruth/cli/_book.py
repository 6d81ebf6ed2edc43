"""The book folder itself: ``init`` makes one, ``policy`` shows its rules, ``journal`` its runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sourcetruth.adapters.stores.postgres import is_book_url
from sourcetruth.app._bookbase import BookBase
from sourcetruth.app.bookfolder import KEY_FILE_VARIABLE, BookFolder
from sourcetruth.app.databasebook import DatabaseBook
from sourcetruth.app.settings import STARTER, Settings, check_adapters, parse_settings
from sourcetruth.changes import RefreshView
from sourcetruth.cli._context import Context, after_change, apply
from sourcetruth.cli._errors import OK
from sourcetruth.cli._files import reason
from sourcetruth.cli._options import Subcommands, add_actions, add_command, count
from sourcetruth.exceptions import UsageError
from sourcetruth.model import Channel, SourceKind
from sourcetruth.schedule import next_sync

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``init``, ``policy``, ``journal`` and ``book refresh-view``."""
    sub = add_command(commands, "init", _init, "create a book folder", json_option=False, at=False)
    sub.add_argument("--policy", help="a policy.toml to start from (default: a starter policy)")
    sub.add_argument(
        "--store",
        choices=("sqlite", "json"),
        default="sqlite",
        help="how a book folder keeps its book: sqlite (default; any size) or json (small books)",
    )

    add_command(commands, "policy", _policy, "show the book's policy")
    sub = add_command(commands, "journal", _journal, "list the runs merged into the book", at=False)
    sub.add_argument("--last", type=count, metavar="N", help="only the last N runs")
    actions = add_actions(commands, "book", "look after the book itself")
    add_command(
        actions,
        "refresh-view",
        _refresh_view,
        "rebuild the book's current view from its history, under the policy",
    )


def _init(ctx: Context) -> int:
    where: str = ctx.args.book
    in_database = is_book_url(where)
    folder = None if in_database else Path(where)
    settings = _starting_settings(ctx, folder)
    named = ctx.environ.get(KEY_FILE_VARIABLE)
    if named and not Path(named).parent.is_dir():
        msg = (
            f"the suppression key's folder {Path(named).parent} does not exist "
            f"({KEY_FILE_VARIABLE} names {named}): make the folder, or name a file elsewhere"
        )
        raise UsageError(msg)
    book: BookBase[Any]
    if folder is None:
        if ctx.args.store != "sqlite":
            msg = "--store: a book in a database is kept in the database, not in a file"
            raise UsageError(msg)
        book = DatabaseBook.create(
            where, settings=settings, environ=ctx.environ, password_env=ctx.password_env
        )
        ctx.say(f"Created a book in {book.where} (PostgreSQL).")
        ctx.say("Its policy is kept in the database; 'sourcetruth policy' shows it.")
        key_place = named
    else:
        book = BookFolder.create(
            folder, settings=settings, store=ctx.args.store, environ=ctx.environ
        )
        ctx.say(f"Created a book in {book.where} ({ctx.args.store}).")
        ctx.say(f"Its policy is {folder / 'policy.toml'}; 'sourcetruth policy' shows it.")
        key_place = named or str(folder / "suppression.key")
    ctx.adopt(book)
    if book.reused_key:
        ctx.say(f"It uses the existing suppression key at {key_place}.")
    for key in book.settings.plaintext_secrets:
        ctx.note(
            f"notice: {key} holds a secret in the file; name an environment variable with "
            f"{key}_env instead"
        )
    for how in book.settings.sources.values():
        if how.mapping is not None and not how.mapping.is_file():
            ctx.say(
                f"Before syncing {how.name}, put its CSV mapping at {how.mapping} "
                "(see docs/adapters.md)."
            )
    return OK


def _starting_settings(ctx: Context, folder: Path | None) -> str:
    """The text of the new book's policy.toml: ``--policy``'s file, checked, or the starter."""
    if not ctx.args.policy:
        return STARTER
    try:
        settings = Path(ctx.args.policy).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        msg = f"cannot read the policy file {ctx.args.policy}: {reason(error)}"
        raise UsageError(msg) from None
    # Checked here first, so that a mistake names the file the user gave.
    check_adapters(
        parse_settings(settings, file=ctx.args.policy, base=folder), file=ctx.args.policy
    )
    return settings


def _policy(ctx: Context) -> int:
    settings = ctx.book.settings
    sources = _sources(ctx, settings)
    transports = {c.value: t.adapter for c, t in sorted(settings.transports.items(), key=str)}
    for channel in Channel:
        transports.setdefault(channel.value, "outbox")
    if ctx.args.json:
        _policy_json(ctx, settings, sources, transports)
    else:
        _policy_text(ctx, settings, sources, transports)
    return OK


def _sources(ctx: Context, settings: Settings) -> list[dict[str, Any]]:
    """Each source of the policy, strongest first: what it covers, when and how it is read."""
    policy = ctx.policy
    sources: list[dict[str, Any]] = []
    for name in policy.order:
        source = policy.source(name)
        how = settings.sources.get(name)
        schedule = source.schedule
        sources.append(
            {
                "name": name,
                "kind": source.kind.value,
                "covers": sorted(source.covers),
                "schedule": None if schedule is None else schedule.rule,
                "adapter": how.adapter if how else None,
                "region": source.region,
                "next_sync": None if schedule is None else next_sync(schedule, ctx.at).isoformat(),
            }
        )
    return sources


def _policy_json(
    ctx: Context, settings: Settings, sources: list[dict[str, Any]], transports: dict[str, str]
) -> None:
    policy = ctx.policy
    guard = policy.guard
    ctx.json(
        {
            "timezone": str(settings.timezone),
            "region": policy.default_region,
            "precedence": list(policy.order),
            "guard": {
                "max_count": guard.max_count,
                "max_fraction": guard.max_fraction,
                "min_count": guard.min_count,
                "enabled": guard.enabled,
            },
            "sources": sources,
            "transports": transports,
        }
    )


def _policy_text(
    ctx: Context, settings: Settings, sources: list[dict[str, Any]], transports: dict[str, str]
) -> None:
    policy = ctx.policy
    ctx.say(f"Timezone {settings.timezone}, phone region {policy.default_region}.")
    ctx.say("Sources, strongest first:")
    for s in sources:
        if s["kind"] == SourceKind.ADDRESS_BOOK.value:
            ctx.say(f"  {s['name']} (local: edits show at once; 'sourcetruth address-book')")
            ctx.say(f"    covers {', '.join(s['covers'])}")
            continue
        when = "no schedule"
        if s["schedule"] is not None:
            upcoming = ctx.render.time(datetime.fromisoformat(s["next_sync"]))
            when = f"syncs {s['schedule']}, next {upcoming}"
        reader = f"read with {s['adapter']}" if s["adapter"] else "no adapter set"
        region = f"; phone region {s['region']}" if s["region"] else ""
        ctx.say(f"  {s['name']} ({s['kind']}; {when}; {reader}{region})")
        ctx.say(f"    covers {', '.join(s['covers'])}")
    guard = policy.guard
    ctx.say(
        f"Departure guard: hold a sync that departs more than {guard.max_count}, or more than "
        f"{guard.max_fraction:.0%} once at least {guard.min_count}"
        + ("" if guard.enabled else " (disabled)")
    )
    ctx.say("Transports: " + ", ".join(f"{c} by {t}" for c, t in sorted(transports.items())))


def _journal(ctx: Context) -> int:
    runs = ctx.book.journal()[-ctx.args.last :] if ctx.args.last else ctx.book.journal()
    if ctx.args.json:
        ctx.json(list(runs))
        return OK
    for run in runs:
        r = run.report
        ctx.say(
            f"{ctx.render.time(run.at)}  {run.status:<9} {ctx.render.what(r)} by {run.by}: "
            f"{ctx.render.counts(r)}"
        )
    return OK


def _refresh_view(ctx: Context) -> int:
    # A change like any other: journalled, at --at, refused before the book's latest.
    result = apply(ctx, RefreshView())
    return after_change(ctx, result.report, "Rebuilt the book's current view from its history.")
