"""What the user may have meant: the nearest of some names to a word they typed.

Used by every "did you mean": a command or option mistyped, a contact id,
a group, a source or a book folder that does not exist. Only names and ids
are ever compared, never a contact's personal values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["NEAR", "did_you_mean", "nearest"]

#: How many near names a message offers at most.
NEAR: Final = 3

#: How alike (difflib's ratio, 0 to 1) a name must be to a word to be offered for it.
_CUTOFF: Final = 0.6


def nearest(word: str, names: Iterable[str], n: int = NEAR) -> list[str]:
    """The names nearest *word*, nearest first: one that differs only in case comes first."""
    pool = sorted({name for name in names if name != word})
    folded = word.casefold()
    same = [name for name in pool if name.casefold() == folded]
    alike = difflib.get_close_matches(word, pool, n=n, cutoff=_CUTOFF)
    # Case is what difflib weighs most wrongly ('g9' and 'G9' share nothing): compare folded too.
    by_fold = {name.casefold(): name for name in pool}
    alike += [by_fold[f] for f in difflib.get_close_matches(folded, by_fold, n=n, cutoff=_CUTOFF)]
    return list(dict.fromkeys([*same, *alike]))[:n]


def did_you_mean(near: Sequence[str]) -> str:
    """``"; did you mean mis:G9 or mis:G19?"`` for the names given; nothing for none."""
    if not near:
        return ""
    if len(near) == 1:
        return f"; did you mean {near[0]}?"
    return f"; did you mean {', '.join(near[:-1])} or {near[-1]}?"
