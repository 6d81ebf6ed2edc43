"""Building a file's records without the cyclic collector's pauses (package-private).

A reader builds millions of small objects (records, their data, phones and
tuples) that hold no reference cycles. Each allocation counts towards the
collector's next pass, and every pass walks the objects still young, and
from time to time all of them: about a third of a large read's time, to find
nothing. Reference counting still frees everything as usual while the
collector is paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, if it was running.

    It runs again after the block, however the block ends; a block inside
    another (or in another thread while one runs) leaves it to the outer one.
    """
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()
