"""How much the suite does: a contributor's run, or the full one.

The default is what `.ci/run` and the README's test command run, on two
cores in under two minutes. ``SOURCETRUTH_TESTS=full`` runs the memory tests
on 20 MB inputs instead of 5 MB (3 MB of vCards), every property test
without its own example count on 250 examples instead of 20 (the root
conftest.py), and
those with their own count on five times it instead of a fifth
(:func:`examples`). The bounds the tests assert are the same either way.
"""

from __future__ import annotations

import os
from typing import Final

#: Whether this run is the full one.
FULL: Final = os.environ.get("SOURCETRUTH_TESTS", "") == "full"

#: The size of a "large" input in the memory tests, in bytes.
LARGE: Final = 20_000_000 if FULL else 5_000_000
#: The same for vCards: a card is a record per 41 bytes, and tracing the memory of each
#: took a contributor's run half a minute at 6 MB.
LARGE_CARDS: Final = 20_000_000 if FULL else 3_000_000


def examples(calibrated: int) -> int:
    """How many examples a property test with its own count tries in this run.

    *calibrated* is the count the test was written with: a contributor's run
    tries a fifth of it (at least 10, or all of a smaller count), the full run
    five times it.
    """
    if FULL:
        return calibrated * 5
    return max(calibrated // 5, min(calibrated, 10))
