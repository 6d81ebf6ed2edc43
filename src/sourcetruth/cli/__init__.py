"""The ``sourcetruth`` command: a book folder, day to day, for a school's data manager.

Every command works on one book folder (``--book``, or ``SOURCETRUTH_BOOK``,
or the current folder; see :mod:`sourcetruth.app.bookfolder`). Read commands take
``--json``. Errors are one line on stderr naming what to fix (``--debug``
shows the traceback), and the exit status says what kind of failure it was:
see :data:`EXIT_CODES` and ``docs/cli.md``.
"""

from __future__ import annotations

from typing import Final

from sourcetruth.cli import _errors
from sourcetruth.cli._main import main

__all__ = ["EXIT_CODES", "main"]

#: Each exit status of the command and what it means.
EXIT_CODES: Final = _errors.EXIT_CODES
