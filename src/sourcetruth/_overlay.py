"""A copy-on-write mapping over another, and what changed between two of them (package-private).

A merge changes a handful of a book's entries and shares the rest: an
:class:`Overlay` records the writes and deletions over a base mapping
without copying it, so the cost of a merge is what it changes, whatever the
size of the book (a store's base may be read from a file row by row).
:func:`changed_keys` says which keys differ between an old mapping and a new
one made from it by overlays, looking at the keys the overlays touched only.

An overlay is writable until :meth:`Overlay.seal`; a book holds sealed ones
only, so a book stays a value.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any, Final, TypeVar

__all__ = [
    "GONE",
    "Overlay",
    "StreamedItems",
    "StreamedValues",
    "changed_keys",
    "folded",
    "root_of",
    "settled",
    "touched_keys",
]

K = TypeVar("K")
V = TypeVar("V")

#: Overlays stacked deeper than this are folded into one over their root when
#: sealed, so a read never walks a long chain (a book merged many times in memory).
MAX_DEPTH: Final = 16

#: A fold over a root that is a dict of n keys makes a new dict root once the
#: changes outnumber both this and the square root of n: a long run of merges
#: in memory then costs about sqrt(n) per merge, and a read stays two probes.
_SMALL: Final = 256

_MISSING: Final = object()


class Overlay(MutableMapping[K, V]):
    """*base* with the writes and deletions made here, *base* itself never changed.

    Reads look at the writes, then the deletions, then *base*. Iteration gives
    *base*'s keys in *base*'s order (less those deleted), then the keys new
    here in the order they were first written, as a copy of *base* in a dict
    would. Every key written or deleted is first looked up in *base*, so a
    base that reads lazily has read (and keeps) each key an overlay changed.
    """

    __slots__ = ("_added", "_base", "_deleted", "_depth", "_root", "_sealed", "_writes")

    def __init__(self, base: Mapping[K, V]) -> None:
        self._base = base
        self._writes: dict[K, V] = {}
        self._deleted: set[K] = set()  # keys of base deleted here; never also in _writes
        self._added: dict[K, None] = {}  # keys of _writes that base lacks, in order
        self._sealed = False
        if isinstance(base, Overlay):
            self._depth: int = base._depth + 1
            self._root: Mapping[K, V] = base._root
        else:
            self._depth = 1
            self._root = base

    def __repr__(self) -> str:
        return f"Overlay(+{len(self._writes)} -{len(self._deleted)}, depth {self._depth})"

    # reading

    def __getitem__(self, key: K) -> V:
        try:
            return self._writes[key]
        except KeyError:
            pass
        if key in self._deleted:
            raise KeyError(key)
        return self._base[key]

    def get(self, key: K, default: Any = None) -> Any:
        # A miss is the common case while a merge fills an empty book: answered
        # without raising and catching KeyError twice, as Mapping.get would.
        value = self._writes.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key in self._deleted:
            return default
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._writes or (key not in self._deleted and key in self._base)

    def __len__(self) -> int:
        return len(self._base) - len(self._deleted) + len(self._added)

    def __iter__(self) -> Iterator[K]:
        deleted = self._deleted
        for key in self._base:
            if key not in deleted:
                yield key
        yield from self._added

    def items(self) -> ItemsView[K, V]:
        return StreamedItems(self)

    def values(self) -> ValuesView[V]:
        return StreamedValues(self)

    def iter_items(self) -> Iterator[tuple[K, V]]:
        """The items in iteration order, *base*'s read as *base* reads them all (in one pass)."""
        writes, deleted = self._writes, self._deleted
        for key, value in _items(self._base):
            if key in deleted:
                continue
            yield key, writes.get(key, value)
        for key in self._added:
            yield key, writes[key]

    # writing, until sealed

    def __setitem__(self, key: K, value: V) -> None:
        if self._sealed:  # _check_open, inline: a first sync sets three keys a record
            self._check_open()
        if key not in self._writes:
            if key in self._deleted:
                self._deleted.discard(key)
            elif key not in self._base:
                self._added[key] = None
        self._writes[key] = value

    def __delitem__(self, key: K) -> None:
        self._check_open()
        if key in self._writes:
            del self._writes[key]
            if key in self._added:
                del self._added[key]
            else:
                self._deleted.add(key)
        elif key in self._deleted or key not in self._base:
            raise KeyError(key)
        else:
            self._deleted.add(key)

    def _check_open(self) -> None:
        if self._sealed:
            msg = "a book's maps are read-only: merge a change to make a new book"
            raise TypeError(msg)

    # sealing

    @property
    def touched(self) -> bool:
        """Whether anything was written or deleted here."""
        return bool(self._writes or self._deleted)

    def seal(self) -> Mapping[K, V]:
        """This overlay, read-only from now on (folded into one over its root if deep)."""
        self._sealed = True
        if self._depth <= MAX_DEPTH:
            return self
        folded: Overlay[K, V] = Overlay(self._root)
        for overlay in reversed(list(_chain(self))):
            for key in overlay._deleted:
                del folded[key]
            for key, value in overlay._writes.items():
                folded[key] = value
        folded._sealed = True
        root = self._root
        changes = len(folded._writes) + len(folded._deleted)
        if type(root) is dict and changes > _SMALL and changes * changes > len(root):
            # Only a dict root: a lazy one (a store's table) is never read whole.
            flat: Overlay[K, V] = Overlay(dict(folded.iter_items()))
            flat._sealed = True
            return flat
        return folded


def settled(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """*mapping* as a book may hold it: an overlay sealed, or its base if it changed nothing."""
    if not isinstance(mapping, Overlay):
        return mapping
    if not mapping.touched:
        return settled(mapping._base)
    return mapping.seal()


def _chain(mapping: Mapping[K, V]) -> Iterator[Overlay[K, V]]:
    """The overlays from *mapping* down to its root, top first."""
    while isinstance(mapping, Overlay):
        yield mapping
        mapping = mapping._base


def root_of(mapping: Mapping[K, V]) -> Mapping[K, V]:
    """The mapping under every overlay of *mapping* (*mapping* itself if it is none)."""
    return mapping._root if isinstance(mapping, Overlay) else mapping


#: What :func:`folded` gives for a key the overlays deleted.
GONE: Final = _MISSING


def folded(mapping: Mapping[K, V]) -> tuple[Mapping[K, V], dict[K, Any]]:
    """*mapping* as a bulk of items and, for every key changed over it, the value now (or GONE).

    The bulk is the root, or the first overlay's writes over an empty root.
    A reader that takes every item in no set order reads the bulk in one
    pass (a dict's own iteration) and the handful of changes apart, rather
    than item by item through each overlay.
    """
    overlays = list(_chain(mapping))
    bulk = root_of(mapping)
    if overlays and not bulk:
        # A first merge into an empty book wrote everything: its writes are the bulk.
        bulk = overlays.pop()._writes
    changes: dict[K, Any] = {}
    for overlay in reversed(overlays):
        for key in overlay._deleted:
            changes[key] = GONE
        changes.update(overlay._writes)
    return bulk, changes


def touched_keys(mapping: Mapping[K, V]) -> set[K]:
    """Every key the overlays of *mapping* wrote or deleted (none if it is no overlay)."""
    keys: set[K] = set()
    for overlay in _chain(mapping):
        keys.update(overlay._writes)
        keys.update(overlay._deleted)
    return keys


def _items(mapping: Mapping[K, V]) -> Iterator[tuple[K, V]]:
    """*mapping*'s items in one pass where it can give them so (a lazy table streams them)."""
    iter_items = getattr(mapping, "iter_items", None)
    if iter_items is not None:
        yield from iter_items()
    else:
        yield from mapping.items()


class StreamedItems(ItemsView[K, V]):
    """The items of a mapping that gives them in one pass (``iter_items``), not key by key."""

    _mapping: Any

    def __iter__(self) -> Iterator[tuple[K, V]]:
        items: Iterator[tuple[K, V]] = self._mapping.iter_items()
        return items


class StreamedValues(ValuesView[V]):
    """The values of a mapping that gives its items in one pass (``iter_items``)."""

    _mapping: Any

    def __iter__(self) -> Iterator[V]:
        for _, value in self._mapping.iter_items():
            yield value


def changed_keys(old: Mapping[str, V], new: Mapping[str, V]) -> tuple[list[str], list[str]]:
    """The keys to write (new, or holding another object) and to delete, from *old* to *new*.

    When both stand on one root (the new made from the old by overlays), only
    the keys the overlays touched are compared; else every key, by identity.
    A value counts as changed when it is another object: a merge shares every
    object it did not change.
    """
    if old is new:
        return [], []
    candidates: set[str] = set()
    reached = False
    for overlay in _chain(new):
        if overlay is old:
            reached = True
            break
        candidates.update(overlay._writes)
        candidates.update(overlay._deleted)
    if not reached and new is not old:
        if root_of(old) is not root_of(new):
            return _compared(old, new)
        for overlay in _chain(old):
            candidates.update(overlay._writes)
            candidates.update(overlay._deleted)
    write: list[str] = []
    gone: list[str] = []
    for key in sorted(candidates):
        was = old.get(key, _MISSING)
        now = new.get(key, _MISSING)
        if now is _MISSING:
            if was is not _MISSING:
                gone.append(key)
        elif now is not was:
            write.append(key)
    return write, gone


def _compared(old: Mapping[str, V], new: Mapping[str, V]) -> tuple[list[str], list[str]]:
    """:func:`changed_keys` for mappings that share no root: every key, by identity."""
    write = [k for k, v in _items(new) if old.get(k, _MISSING) is not v]
    gone = [k for k in old if k not in new]
    return sorted(write), sorted(gone)
