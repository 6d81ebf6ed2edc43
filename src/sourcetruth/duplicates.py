"""Two feeds, one person: records that look like the same person (rule 12).

When a school has an MIS feed and imports at once, one parent can arrive
from both. A record of one feed kind (MIS or import) and a record of the
other, in contacts not already linked, are a possible duplicate when their
names match and they share a phone number or email address (compared as
:func:`~sourcetruth.comparable` compares them). Nothing here merges anyone:
a sync reports what it finds, and only a :class:`~sourcetruth.Link` says two
records are one person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from sourcetruth._digest import name_key
from sourcetruth._overlay import changed_keys, root_of
from sourcetruth.effective import comparable, resolve_id
from sourcetruth.model import Book, ContactData, RecordState, SourceKind
from sourcetruth.policy import Policy
from sourcetruth.report import PossibleDuplicate

__all__ = ["duplicates_among", "possible_duplicates"]

#: Why two records are reported as one person.
_REASONS: Final = ("same name", "shared phone or email")


def _identity(data: ContactData, region: str) -> set[str]:
    """The phone numbers and email addresses of *data*, as they compare."""
    values = {v for _, v in comparable("phones", data.phones, region)}
    values |= {v for _, v in comparable("emails", data.emails, region)}
    values.discard("")
    return values


def _feeds(policy: Policy) -> dict[str, SourceKind]:
    return {s.name: s.kind for s in policy.sources if s.kind in (SourceKind.MIS, SourceKind.IMPORT)}


def _by_name(
    book: Book, feeds: dict[str, SourceKind], candidates: list[RecordState]
) -> dict[str, list[RecordState]]:
    """The present records of each feed named as a candidate of another kind is, by name.

    Names first: they cost nothing, while phones and emails must be
    normalised; only records whose name meets one in another feed need that.
    """
    index: dict[str, list[RecordState]] = {}
    for source, kind in feeds.items():
        wanted = {name_key(c.current.data) for c in candidates if feeds[c.source] is not kind}
        wanted.discard("")
        if not wanted:
            continue
        for state in _named(book.records.get(source, {}), wanted):
            name = name_key(state.current.data)
            if name in wanted:
                index.setdefault(name, []).append(state)
    return index


def _named(states: Mapping[str, RecordState], names: set[str]) -> Iterable[RecordState]:
    """The records of *states* that may bear one of *names* (and maybe others).

    A store's table of records may offer ``keys_named(names)`` from an
    index, so that a night's few candidates read a few rows, not the feed;
    the records the merge has written over it since it was loaded are added.
    A book in memory gives every record.
    """
    root = root_of(states)
    lookup: Callable[[set[str]], set[str]] | None = getattr(root, "keys_named", None)
    if lookup is None:
        return states.values()
    keys = lookup(names)
    if states is not root:
        write, gone = changed_keys(root, states)
        keys.update(write)
        keys.difference_update(gone)
    return [states[key] for key in sorted(keys)]


def duplicates_among(
    book: Book, policy: Policy, records: Iterable[RecordState]
) -> list[PossibleDuplicate]:
    """Records among *records* that match a record of a feed of another kind."""
    feeds = _feeds(policy)
    candidates = [s for s in records if s.source in feeds and s.current.data is not None]
    if not candidates:
        return []
    index = _by_name(book, feeds, candidates)
    found = []
    for cand in candidates:
        assert cand.current.data is not None
        name = name_key(cand.current.data)
        if name not in index:
            continue
        values = _identity(cand.current.data, policy.region_of(cand.source))
        for other in index[name]:
            if feeds[other.source] == feeds[cand.source]:
                continue
            if resolve_id(book, other.contact_id) == resolve_id(book, cand.contact_id):
                continue
            assert other.current.data is not None
            if values & _identity(other.current.data, policy.region_of(other.source)):
                a, b = sorted((cand.id, other.id))
                found.append(PossibleDuplicate(a, b, _REASONS))
    return sorted(set(found), key=lambda d: (d.record, d.other))


def possible_duplicates(book: Book, *, policy: Policy) -> tuple[PossibleDuplicate, ...]:
    """People present, unlinked, in an MIS feed and an import at once (rule 12)."""
    feeds = _feeds(policy)
    states = [s for name in sorted(feeds) for s in book.records.get(name, {}).values()]
    return tuple(duplicates_among(book, policy, states))
