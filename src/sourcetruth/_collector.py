"""The cyclic garbage collector paused while a large snapshot is merged (package-private).

An initial sync of a school makes about twenty objects for each record it
reads (the record's version and state, the contact and its membership, the
view's entry, the report's changes), all of them kept and none of them
garbage. CPython's collector walks every tracked object of the process each
time what survived its young collections has grown by a quarter, so while a
merge builds a book of n contacts it walks the whole process about six
times: a third of the merge's time at 100,000 contacts, and as much again
at a million. None of those walks can free anything the merge made: it
makes no reference cycles.

So :func:`merge_paused` pauses the collector for a snapshot of at least
:data:`LARGE` records, and turns it back on when the merge returns or
raises, in a ``finally``. A merge then changes nothing a caller sees after
it; objects made during it are looked at by the collector's next ordinary
young collection, once. Merges running in several threads share the one
pause (counted under a lock): the last to finish turns the collector back
on. A collector that was off already (the caller's choice) is left off and
never turned on. What no library can know: a ``gc.disable()`` made by
another thread while a large merge runs is undone when the merge ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["LARGE", "merge_paused"]

#: The fewest records of a snapshot whose merge pauses the collector: below
#: it the collector's walks cost little, and a pause would not be worth it.
LARGE: Final = 10_000

_lock = threading.Lock()
_pausing = 0  # the merges running under the pause


@contextmanager
def merge_paused(records: int) -> Iterator[None]:
    """Within the block, the collector is paused if *records* is large and it was on."""
    global _pausing  # one pause for the whole process, shared by its threads
    if records < LARGE:
        yield
        return
    with _lock:
        mine = _pausing > 0 or gc.isenabled()
        if mine:
            _pausing += 1
            gc.disable()
    try:
        yield
    finally:
        if mine:
            with _lock:
                _pausing -= 1
                if _pausing == 0:
                    gc.enable()
