"""What the user may have meant: the nearest of some names to a word they typed.

Used by every "did you mean": a command or option mistyped, a contact id,
a group, a source or a book folder that does not exist. Only names and ids
are ever compared, never a contact's personal values.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import Final

__all__ = ["NEAR", "did_you_mean", "near_ids", "nearest"]

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


def near_ids(
    typed: str,
    sources: Iterable[str],
    held: Callable[[str, str], bool],
    around: Callable[[str, str], Iterable[str]],
    n: int = NEAR,
) -> list[str]:
    """The ids ``SOURCE:KEY`` nearest *typed*, an id not held, nearest first.

    *held(source, key)* says whether an id is held and *around(source, key)*
    gives a few keys of *source* held next to *key* in key order: both are
    lookups in an index, so a book of any size answers a miss in a bounded
    number of reads, none of a contact's personal values.

    First, the ids differing from *typed* only in case (``mis:g9``: ``mis:G9``),
    or in their source (``G9``, ``ims:G9``: ``mis:G9``); then the keys next to
    the typed key in its source, as alike as :func:`nearest` wants.
    """
    source, sep, key = typed.partition(":")
    if not sep:
        source, key = "", typed
    known = sorted(set(sources))
    likely = [s for s in known if s.casefold() == source.casefold()]
    if source and not likely:
        likely = nearest(source, known)
    others = [s for s in known if s not in likely]
    # An empty key is a key too (a store holds any text), so ``a:`` finds ``A:``.
    variants = list(dict.fromkeys((key, key.strip(), key.upper(), key.lower())))
    exact = [f"{s}:{k}" for s in (*likely, *others) for k in variants if held(s, k)]
    keys = [k for k in variants if k]
    beside: dict[str, list[str]] = {}
    for s in likely or known:
        for k in keys:
            for found in around(s, k):
                beside.setdefault(found, []).append(f"{s}:{found}")
    alike = [i for k in nearest(key, beside, n=n) for i in beside[k]]
    return [i for i in dict.fromkeys((*exact, *alike)) if i != typed][:n]
