"""Names typed that the book does not hold: one wording for every command, and what was meant.

A contact or record id, a group or a source the book does not hold is
refused with :func:`unheld`'s message: what such a name looks like, and
the nearest the book holds (``did you mean mis:G9?``). The nearest ids are
found by lookups in the store's indexes (:func:`~sourcetruth._near.near_ids`),
never by loading the book: a miss on a book of a million contacts reads a
few dozen keys.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sourcetruth._near import did_you_mean, near_ids, nearest
from sourcetruth.cli._context import Context
from sourcetruth.exceptions import UnknownContactError, UnknownGroupError, UnknownRecordError
from sourcetruth.model import ADDRESS_BOOK, Book

__all__ = [
    "id_shape",
    "is_held",
    "near_contacts",
    "require_contacts",
    "require_group",
    "require_record",
    "unheld",
    "unknown_source",
]

#: Where to look when no id held is near the one typed.
_SEARCH: Final = "; 'sourcetruth contacts --search NAME' finds people"
#: How many keys either side of a typed key are looked at.
_BESIDE: Final = 3


def unheld(
    what: str, typed: Sequence[str], near: Sequence[str], *, shape: str, otherwise: str
) -> str:
    """The one message for names not held: the first typed, what such a name is, the nearest.

    ``the book holds no contact 'G9' (an id is SOURCE:KEY, ...); did you mean mis:G9?``;
    with nothing near, *otherwise* (where to look). Further names typed are listed after.
    """
    shaped = f" ({shape})" if shape else ""
    more = f"; nor {', '.join(map(repr, typed[1:]))}" if len(typed) > 1 else ""
    return f"the book holds no {what} {typed[0]!r}{shaped}{did_you_mean(near) or otherwise}{more}"


def _beside(keys: Mapping[str, Any], key: str) -> list[str]:
    """A few keys next to *key* in key order: from a store's index, or a book held in memory."""
    around = getattr(keys, "around", None)
    if around is not None:
        found: list[str] = around(key, _BESIDE)
        return found
    ordered = sorted(keys)  # a book held in memory: a small one (the JSON store)
    at = bisect.bisect_left(ordered, key)
    return ordered[max(0, at - _BESIDE) : at + _BESIDE]


def _sources(ctx: Context, book: Book) -> list[str]:
    return list(dict.fromkeys([*ctx.policy.order, *sorted(book.records), ADDRESS_BOOK]))


def id_shape(ctx: Context) -> str:
    """What a contact or record id looks like, said when one is not held."""
    return f"an id is SOURCE:KEY, SOURCE one of {', '.join(ctx.policy.order)}; case matters"


def is_held(book: Book, contact_id: str) -> bool:
    """Whether *contact_id* is a contact of the book, or a record it holds (linked into one)."""
    if contact_id in book.contacts:
        return True
    source, sep, key = contact_id.partition(":")
    return bool(sep) and key in book.records.get(source, {})


def near_contacts(ctx: Context, book: Book, typed: str) -> list[str]:
    """The contact ids nearest *typed*, found by indexed lookups (see the module)."""

    def held(source: str, key: str) -> bool:
        return f"{source}:{key}" in book.contacts

    def around(source: str, key: str) -> Iterable[str]:
        prefix = f"{source}:"
        return [
            i[len(prefix) :] for i in _beside(book.contacts, prefix + key) if i.startswith(prefix)
        ]

    return near_ids(typed, _sources(ctx, book), held, around)


def require_contacts(ctx: Context, book: Book, ids: Sequence[str]) -> None:
    """Refuse contact ids the book never held, with the nearest it holds.

    A departed contact, or a record linked into another contact, is held.
    """
    missing = [i for i in ids if not is_held(book, i)]
    if missing:
        near = near_contacts(ctx, book, missing[0])
        msg = unheld("contact", missing, near, shape=id_shape(ctx), otherwise=_SEARCH)
        raise UnknownContactError(msg)


def require_record(ctx: Context, book: Book, record_id: str) -> None:
    """Refuse a record id (``link``, ``unlink``) that no source of the book holds."""
    source, sep, key = record_id.partition(":")
    if sep and key in book.records.get(source, {}):
        return

    def held(source: str, key: str) -> bool:
        return key in book.records.get(source, {})

    def around(source: str, key: str) -> Iterable[str]:
        return _beside(book.records.get(source, {}), key)

    near = near_ids(record_id, _sources(ctx, book), held, around)
    msg = unheld("record", [record_id], near, shape=id_shape(ctx), otherwise=_SEARCH)
    raise UnknownRecordError(msg)


def require_group(
    ctx: Context, book: Book, names: Sequence[str], *, in_audience: bool = False
) -> None:
    """Refuse group names the book does not hold now (or at ``--at``), naming those it does.

    In an audience, a word without ``:`` is a group: one that was meant as a
    contact id (``G1`` for ``mis:G1``) is offered the ids near it.
    """
    groups = [
        name
        for name, versions in book.groups.items()
        if (held := [v for v in versions if v.since <= ctx.at]) and held[-1].group is not None
    ]
    missing = [n for n in names if n not in groups]
    if missing:
        listed = f"; its groups are {', '.join(sorted(groups))}" if groups else "; it has no groups"
        near = nearest(missing[0], groups)
        shape = ""
        if in_audience and not near:
            near = near_contacts(ctx, book, missing[0])
            shape = f"a word without ':' names a group; {id_shape(ctx)}" if near else ""
        msg = unheld("group", missing, near, shape=shape, otherwise=listed)
        raise UnknownGroupError(msg)


def unknown_source(name: str, sources: Sequence[str]) -> str:
    """The message for a source the policy does not name: its sources, and the nearest."""
    return (
        f"the policy has no source named {name!r}; its sources are "
        f"{', '.join(sources)}{did_you_mean(nearest(name, sources))}"
    )
