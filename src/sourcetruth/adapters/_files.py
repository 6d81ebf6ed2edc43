"""Writing a file whole or not at all: the one way the library replaces a file.

A temporary file is created exclusively in the target's own folder under a
name nobody else can have chosen (so a link planted at a predictable name is
never followed, and two writers never share one), it is private before its
first byte, it is flushed to disk, then renamed over the target and the
folder flushed, so the rename survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["fsync_folder", "write_atomic"]


def fsync_folder(folder: Path) -> None:
    """Make a rename or removal in *folder* survive a power cut (POSIX; elsewhere nothing)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace *path* with *data*: readers see the old file or the new one, never half.

    The new file has *mode* (owner-only by default: most of what the library
    writes is personal data). A failure removes the temporary file and
    raises the :class:`OSError`; the target is then as it was.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    fsync_folder(path.parent)
