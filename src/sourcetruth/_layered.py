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

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Final, Generic, TypeVar

__all__ = ["Layered", "plain", "updated"]

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

    def items(self) -> ItemsView[str, _V]:
        if not self._changes:
            return self._base.items()  # the common case between merges: the dict's own
        return super().items()

    def values(self) -> ValuesView[_V]:
        if not self._changes:
            return self._base.values()
        return super().values()

    def flat(self) -> dict[str, _V]:
        """A plain dict of the same items: the base itself when there are no changes."""
        if not self._changes:
            return self._base
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


def plain(mapping: Mapping[str, _V]) -> Mapping[str, _V]:
    """*mapping* as a dict to read many keys of, at C speed: copied only if it has changes."""
    return mapping.flat() if isinstance(mapping, Layered) else mapping
