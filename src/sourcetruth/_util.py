"""Small helpers that several modules of the package share (package-private).

Converters for attrs fields (an iterable in, an immutable collection out) and
the one search of a time-ordered history: what was in force at a time. They
know nothing of contacts, so every module, ``model`` included, may use them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

__all__ = ["at_or_before", "to_frozenset", "to_tuple"]

_V = TypeVar("_V")


def to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """*value* as a tuple: the converter of a field that holds a sequence."""
    return tuple(value)


def to_frozenset(value: Iterable[Any]) -> frozenset[Any]:
    """*value* as a frozenset: the converter of a field that holds a set."""
    return frozenset(value)


def at_or_before(items: tuple[_V, ...], at: datetime, when: Callable[[_V], datetime]) -> _V | None:
    """The last of *items* (sorted by *when*) whose time is at or before *at*."""
    if not items:
        return None
    if when(items[-1]) <= at:
        return items[-1]
    i = bisect_right(items, at, key=when)
    return items[i - 1] if i else None
