"""A read-only mapping that a merge updates in place of copying (package-private).

A book is a value, so a merge that changes one contact of the current view
must not change the view the old book holds, nor copy a million entries to
make the new one. :class:`Layered` keeps a large base dict that is never
changed once shared, and a small dict of changes over it; each update copies
only the changes, and folds them into a new base once they grow to about
the square root of the base, so that an update costs O(sqrt n) amortised
and a lookup at most two dict probes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, Generic, TypeVar

__all__ = ["Layered", "updated"]

_V = TypeVar("_V")

#: A key the changes removed from the base.
_GONE: Final = object()

#: Changes always kept apart from the base below this many.
_SMALL: Final = 256


class Layered(Mapping[str, _V], Generic[_V]):
    """A base dict and the changes over it; treat both as frozen."""

    __slots__ = ("_base", "_changes", "_len")

    def __init__(self, base: dict[str, _V], changes: dict[str, object], length: int) -> None:
        self._base = base
        self._changes = changes
        self._len = length

    def __getitem__(self, key: str) -> _V:
        found = self._changes.get(key, self)
        if found is self:
            return self._base[key]
        if found is _GONE:
            raise KeyError(key)
        return found  # type: ignore[return-value]

    def get(self, key: str, default: object = None) -> _V | None:  # type: ignore[override]
        found = self._changes.get(key, self)
        if found is self:
            return self._base.get(key, default)  # type: ignore[return-value]
        return default if found is _GONE else found  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        found = self._changes.get(key, self)  # type: ignore[call-overload]
        if found is self:
            return key in self._base
        return found is not _GONE

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        changes = self._changes
        for key in self._base:
            if changes.get(key, self) is not _GONE:
                yield key
        for key, value in changes.items():
            if value is not _GONE and key not in self._base:
                yield key

    def flat(self) -> dict[str, _V]:
        """A plain dict of the same items."""
        merged = dict(self._base)
        for key, value in self._changes.items():
            if value is _GONE:
                merged.pop(key, None)
            else:
                merged[key] = value  # type: ignore[assignment]
        return merged


def updated(old: Mapping[str, _V], changes: Mapping[str, _V | None]) -> Mapping[str, _V]:
    """*old* with each key of *changes* set to its value, or removed where it is None.

    *old* is left as it was; the result shares its storage.
    """
    if not changes:
        return old
    if isinstance(old, Layered):
        base, layer, length = old._base, dict(old._changes), len(old)
    else:
        base, layer, length = dict(old) if not isinstance(old, dict) else old, {}, len(old)
    for key, value in changes.items():
        was = key in old
        if value is None:
            if was:
                length -= 1
                layer[key] = _GONE
        else:
            length += not was
            layer[key] = value
    if len(layer) > _SMALL and len(layer) * len(layer) > len(base):
        return Layered(Layered(base, layer, length).flat(), {}, length)
    return Layered(base, layer, length)
