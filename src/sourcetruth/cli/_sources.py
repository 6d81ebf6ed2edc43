"""Reading a source's export, for a sync or a report: which source, when taken, what it said."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from sourcetruth.adapters import registry
from sourcetruth.adapters.sources.base import Notice, Reading
from sourcetruth.app.settings import is_live
from sourcetruth.cli._context import Context
from sourcetruth.cli._files import newest_mtime
from sourcetruth.cli._kinds import check_kind
from sourcetruth.cli._names import unknown_source
from sourcetruth.exceptions import LISTED_PROBLEMS, AdapterError, SourceDataError, UsageError
from sourcetruth.model import ADDRESS_BOOK, SourceKind

__all__ = ["extracted_at", "notices", "read", "reading_input", "synced_source"]


def synced_source(ctx: Context, name: str) -> str:
    """*name*, checked to be a source a sync can read, read with an adapter that exists."""
    policy = ctx.book.settings.policy
    adapter = getattr(ctx.args, "adapter", None)
    if adapter is not None and adapter not in registry.available("source"):
        known = ", ".join(registry.available("source"))
        msg = f"--adapter: there is no source adapter called {adapter!r}; there are {known}"
        raise UsageError(msg)
    syncable = [s for s in policy.order if policy.source(s).kind is not SourceKind.ADDRESS_BOOK]
    if name == ADDRESS_BOOK:
        msg = "the address book is not synced: use 'sourcetruth address-book import FILE'"
        raise UsageError(msg)
    if name not in syncable:
        raise UsageError(unknown_source(name, syncable))
    return name


def extracted_at(ctx: Context, path: Path) -> datetime:
    """When the export at *path* was taken: ``--extracted-at``, else its files' newest mtime."""
    if ctx.args.extracted_at:
        return ctx.time(ctx.args.extracted_at, "--extracted-at")
    return newest_mtime(path)


@contextlib.contextmanager
def reading_input() -> Iterator[None]:
    """An input that cannot be read (a broken zip, a file gone) is the input's fault: exit 3."""
    try:
        yield
    except AdapterError as error:
        raise SourceDataError(str(error)) from error


def reads_a_service(ctx: Context, source: str) -> bool:
    """Whether *source* (or ``--adapter``) is read live from a service, not from an export."""
    how = ctx.book.settings.sources.get(source)
    name = getattr(ctx.args, "adapter", None) or (how.adapter if how else None)
    if name is None:
        return False
    try:
        return is_live(registry.get("source", name))
    except (KeyError, LookupError, UsageError):
        return False  # an unknown adapter is the reader's to refuse, with its own message


def read(ctx: Context, source: str, path: Path | None, extracted_at: datetime) -> Reading:
    """The export at *path*, read with the source's adapter (or ``--adapter``).

    No *path*: the source is live (it reads a service its policy names).
    """
    how = ctx.book.settings.sources.get(source)
    adapter = getattr(ctx.args, "adapter", None) or (how.adapter if how else None)
    if adapter is not None and path is not None:
        check_kind(f"the source {source!r}", adapter, path, os.fspath(path))
    with reading_input():
        reading = ctx.book.read_source(
            source, path, extracted_at=extracted_at, adapter=getattr(ctx.args, "adapter", None)
        )
    return reading


def notices(ctx: Context, notices: Sequence[Notice]) -> None:
    """A reading's notices, a line each on stderr (where, which field, what, its code).

    A long list stops after :data:`~sourcetruth.exceptions.LISTED_PROBLEMS`
    notices with a line counting the rest, as a rejected file's problems do.
    """
    for n in notices[:LISTED_PROBLEMS]:
        where = ":".join(str(p) for p in (n.file, n.line) if p is not None)
        field = f" [{n.field}]" if n.field else ""
        ctx.note(f"notice: {where}{field}: {n.message} ({n.code})")
    rest = len(notices) - LISTED_PROBLEMS
    if rest > 0:
        ctx.note(f"notice: ... and {rest} more notice{'s' if rest != 1 else ''}")
