"""The library's own files: written whole, private, never through a link, and no leftovers.

:func:`write_atomic` is the one way the library replaces a file. A temporary
file is created exclusively in the target's own folder under a name nobody
else can have chosen (so a link planted at a predictable name is never
followed, and two writers never share one), it is private before its first
byte, it is flushed to disk, then renamed over the target (a link at the
target is replaced, never written through) and the folder flushed, so the
rename survives a power cut.

A process killed between the temporary's first byte and the rename leaves
the temporary behind, a whole copy of what it was writing (a book, an audit
record). Its name says it is one (``.NAME.XXXXXXXX.tmp``), and
:func:`sweep_temporaries` removes such leftovers. Every write holds a shared
lock on its folder while its temporary exists, and a sweep removes nothing
unless it holds that lock exclusively: it never takes a live writer's file.

:func:`open_in_place` opens a file the library keeps where it is (a lock
file, the delivery log): never through a link, and owner-only;
:func:`read_in_place` reads one of its files, never through a link.
:func:`private_folder` makes a folder, and any missing above it, owner-only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from sourcetruth.exceptions import AdapterError

__all__ = [
    "fsync_folder",
    "open_in_place",
    "private_folder",
    "read_in_place",
    "refuse_links",
    "sweep_temporaries",
    "write_atomic",
]

#: The name of :func:`write_atomic`'s temporary for the file NAME: ``.NAME.`` then
#: :func:`tempfile.mkstemp`'s eight random characters, then ``.tmp``.
TEMPORARY: Final = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")

_POSIX: Final = sys.platform != "win32"
#: Flags POSIX has and Windows lacks (where the library cannot refuse a link this way).
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)


def fsync_folder(folder: Path) -> None:
    """Make a rename or removal in *folder* survive a power cut (POSIX; elsewhere nothing)."""
    if not _POSIX:
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _folder_lock(folder: Path, *, exclusive: bool, wait: bool) -> Iterator[int | None]:
    """*folder* open and locked (``flock``): its descriptor, or None if it could not be locked.

    Shared for a writer, exclusive for a sweep. Not POSIX, or a folder or
    filesystem that cannot be locked: None, and the caller decides.
    """
    if not _POSIX:
        yield None
        return
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY | _DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield None
        return
    try:
        operation = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, operation if wait else operation | fcntl.LOCK_NB)
        except OSError:  # held by another (not waiting), or not lockable here
            yield None
            return
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace *path* with *data*: readers see the old file or the new one, never half.

    The new file has *mode* (owner-only by default: most of what the library
    writes is personal data). A link at *path* is replaced, and what it
    points at is left as it was. A failure removes the temporary file and
    raises the :class:`OSError`; the target is then as it was.
    """
    folder = path.parent
    with _folder_lock(folder, exclusive=False, wait=True) as locked:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            if mode != 0o600:  # mkstemp creates the file 0600 before anything is written
                os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        if locked is not None:
            os.fsync(locked)
            return
    fsync_folder(folder)


def sweep_temporaries(folder: Path, *, of: str | None = None, wait: bool = False) -> int:
    """Remove what killed writes left in *folder*: :func:`write_atomic`'s temporaries.

    Only those of the file *of*, if given (else any); only regular files
    (a link or a folder of that name is someone else's). Nothing is removed
    unless the folder's lock is held exclusively, so no live writer's
    temporary goes: without *wait*, a folder being written to is left for
    next time. Returns how many were removed; a folder that is not there, or
    cannot be read or locked, holds none that can be.
    """
    try:
        names = [n for n in os.listdir(folder) if _is_temporary(n, of)]
    except OSError:
        return 0
    if not names:
        return 0
    removed = 0
    with _folder_lock(folder, exclusive=True, wait=wait) as locked:
        if locked is None:
            return 0
        for name in names:
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(folder / name).st_mode):
                    os.unlink(folder / name)
                    removed += 1
        if removed:
            os.fsync(locked)
    return removed


def _is_temporary(name: str, of: str | None) -> bool:
    found = TEMPORARY.fullmatch(name)
    return found is not None and (of is None or found.group("target") == of)


def open_in_place(path: Path, flags: int) -> int:
    """Open the library's own file *path* where it is, with *flags*: never through a link.

    Made if need be, owner-only (``0600``) whatever the umask; one an
    earlier version left readable by others is made owner-only. A link at
    *path* is an :class:`AdapterError` naming the file (the library never
    writes through a link it did not make), and so is a thing there that is
    not a file. Other failures raise the :class:`OSError`.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | _NOFOLLOW, 0o600)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(path):
            raise _linked(path) from None
        raise
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            msg = f"{path.name} is not a file: remove what is there"
            raise AdapterError(msg)
        if stat.S_IMODE(found.st_mode) != 0o600 and found.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_in_place(path: Path) -> bytes:
    """The bytes of the library's own file *path*, never read through a link.

    A file that is not there raises :class:`FileNotFoundError`; a link there,
    an :class:`AdapterError` naming it; other failures the :class:`OSError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK):
            raise _linked(path) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def refuse_links(path: Path, *, up_to: Path | None = None) -> None:
    """An :class:`AdapterError` if *path* is a link, or a folder above it up to *up_to* is."""
    for part in (path, *path.parents):
        if part == up_to or (up_to is None and part != path):
            return
        if part.is_symlink():
            raise _linked(part)


def _linked(path: Path) -> AdapterError:
    msg = (
        f"{path.name} is a symbolic link: the library keeps its own files and folders where "
        "they are and never reads or writes through a link; remove it"
    )
    return AdapterError(msg)


def private_folder(path: Path) -> Path:
    """Make the folder *path*, and each missing folder above it, owner-only (``0700``).

    An existing folder is kept as it is; a link at *path* is an
    :class:`AdapterError` naming it (nothing the library writes there would
    stay where it belongs), and so is a file there. Returns *path*.
    """
    missing: list[Path] = []
    above = path
    while not os.path.lexists(above) and above != above.parent:
        missing.append(above)
        above = above.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:  # made meanwhile, by another run
            continue
        _owner_only(folder)
    refuse_links(path)
    if not path.is_dir():
        msg = f"{path.name} is not a folder: remove what is there"
        raise AdapterError(msg)
    return path


def _owner_only(folder: Path) -> None:
    """Make the folder just made at *folder* 0700, whatever the umask took from it.

    Through a descriptor opened without following a link: a link put in its
    place meanwhile is not followed.
    """
    if not _POSIX:
        return
    fd = os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
