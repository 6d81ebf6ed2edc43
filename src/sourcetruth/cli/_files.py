"""The files a command names: one it reads must be there; one it writes is never the book's own."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sourcetruth.app.bookfolder import KEY_FILE_VARIABLE, BookFolder
from sourcetruth.cli._context import Context
from sourcetruth.exceptions import UsageError

__all__ = ["input_path", "newest_mtime", "output_path", "reason"]

#: The book folder's own files, which no export may replace.
_OWN_FILES: Final = (
    "policy.toml",
    "book.sqlite",
    "book.sqlite-journal",
    "book.sqlite-wal",
    "book.sqlite-shm",
    "book.json",
    "suppression.key",
    "deliveries.jsonl",
)
#: The book folder's own folders: nothing in them is an export's to write.
_OWN_FOLDERS: Final = ("audit", "outbox")


def reason(error: BaseException) -> str:
    """What went wrong reading or writing a file, without the file's content."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.start})"
    return error.__class__.__name__


def input_path(text: str) -> Path:
    """A file or folder the command reads: it must be there."""
    path = Path(text)
    if not path.exists():
        msg = f"there is no file or folder {text}"
        raise UsageError(msg)
    return path


def newest_mtime(path: Path) -> datetime:
    """When *path* was last written: a folder, when the newest file in it was."""
    try:
        if path.is_dir():
            times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
            stamp = max(times) if times else path.stat().st_mtime
        else:
            stamp = path.stat().st_mtime
    except OSError as error:
        msg = f"cannot read {path}: {reason(error)}"
        raise UsageError(msg) from None
    return datetime.fromtimestamp(stamp, UTC)


def output_path(ctx: Context, text: str) -> Path:
    """The file an export writes: never the book folder's own, nor an existing one unless --force.

    The book's files are compared as resolved paths (a symlink or ``..`` does
    not hide them), and as the same file on disk where they exist.
    """
    if not text.strip():
        msg = "give the export a file name"
        raise UsageError(msg)
    path = Path(text)
    if _is_the_books(ctx, path):
        msg = f"{text} is one of the book folder's own files: write the export somewhere else"
        raise UsageError(msg)
    if path.is_dir():
        msg = f"{text} is a folder: give the export a file name"
        raise UsageError(msg)
    if (path.exists() or path.is_symlink()) and not ctx.args.force:
        msg = f"{text} already exists: add --force to replace it, or choose another name"
        raise UsageError(msg)
    return path


def _is_the_books(ctx: Context, path: Path) -> bool:
    """Whether *path* is one of the book folder's files, or in one of its folders."""
    target = path.resolve()
    if not isinstance(ctx.book, BookFolder):  # a book in a database: its key file, its mappings
        named = ctx.environ.get(KEY_FILE_VARIABLE)
        files = [Path(named)] if named else []
        files += [how.mapping for how in ctx.book.settings.sources.values() if how.mapping]
        return any(target == f.resolve() or _same_file(target, f) for f in files)
    folder = ctx.book.path.resolve()
    own = [folder / name for name in _OWN_FILES]
    own.append(Path(ctx.environ.get(KEY_FILE_VARIABLE) or folder / "suppression.key").resolve())
    own += [how.mapping.resolve() for how in ctx.book.settings.sources.values() if how.mapping]
    folders = [folder / name for name in _OWN_FOLDERS] + _outbox_folders(ctx, folder)
    mine = target in own or any(target == f or f in target.parents for f in folders)
    if not mine and target.exists():
        mine = any(_same_file(target, f) for f in own)
    return mine


def _outbox_folders(ctx: Context, folder: Path) -> list[Path]:
    """The folders the policy's outbox transports write to, resolved."""
    folders = []
    for transport in ctx.book.settings.transports.values():
        if transport.adapter != "outbox":
            continue
        where = transport.options.get("folder")
        variable = transport.options.get("folder_env")
        if where is None and isinstance(variable, str):
            where = ctx.environ.get(variable)
        if isinstance(where, str) and where:
            folders.append((folder / where).resolve())
    return folders


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False
