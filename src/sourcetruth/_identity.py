"""Who is who, applied to a draft (package-private): link, unlink, erase.

Only a person says that two records are one person (rule 12): a link makes
their contacts one, at home in the best-ranked source, and the contact that
goes answers as the one that stays. An unlink takes a record back out. An
erasure takes a person out of the book and its history (rule 13), leaving
only keyed hashes that keep a later sync from bringing them back.
"""

from __future__ import annotations

import attrs

from sourcetruth._draft import Draft
from sourcetruth.changes import Erase, Link, Unlink
from sourcetruth.effective import resolve_id
from sourcetruth.exceptions import UnknownContactError, UsageError
from sourcetruth.model import (
    ADDRESS_BOOK,
    ContactEntry,
    Membership,
    OverrideOutcome,
    RecordState,
    Redirect,
    split_record_id,
    suppression_check,
    suppression_digest,
)

__all__ = ["erase", "link", "unlink"]


def _is_local(state: RecordState) -> bool:
    """A local record: address-book values kept for a contact whose home is a feed.

    Its key is that contact's id, so it holds a ':', which the key of an
    address-book contact of its own never does.
    """
    return state.source == ADDRESS_BOOK and ":" in state.key


def _move(draft: Draft, rid: str, source_cid: str, target_cid: str) -> None:
    """Move record *rid* from one contact to another, from now on."""
    at = draft.at
    old = draft.contacts[source_cid]
    draft.put_contact(
        attrs.evolve(
            old,
            members=tuple(
                attrs.evolve(m, until=at) if m.record == rid and m.until is None else m
                for m in old.members
            ),
        )
    )
    target = draft.contacts.get(target_cid)
    member = Membership(rid, at)
    if target is None:
        draft.put_contact(ContactEntry(target_cid, (member,)))
    else:
        draft.put_contact(
            attrs.evolve(target, members=(*target.members, member)).close_redirects(at)
        )
    state = draft.state(rid)
    draft.states(state.source)[state.key] = attrs.evolve(state, contact_id=target_cid)
    draft.affected.update((source_cid, target_cid))


def _clear_all(draft: Draft, cid: str) -> None:
    for override in draft.overrides.get(cid, ()):
        draft.end_override(override, OverrideOutcome.CLEARED)


def _linked(draft: Draft, cid: str) -> list[RecordState]:
    """The records that make up a contact now, its local record aside."""
    found = [draft.state(m.record) for m in draft.contacts[cid].members if m.until is None]
    return [state for state in found if not _is_local(state)]


def link(draft: Draft, change: Link) -> None:
    """Make the contacts of two records one person, at home in the stronger source."""
    a, b = draft.state(change.record), draft.state(change.other)
    if _is_local(a) or _is_local(b):
        msg = "a contact's local record is not a person of its own: link the contact's records"
        raise UsageError(msg)
    ca, cb = resolve_id(draft.old, a.contact_id), resolve_id(draft.old, b.contact_id)
    if ca == cb:
        msg = "these records are already one person"
        raise UsageError(msg)
    records_a, records_b = _linked(draft, ca), _linked(draft, cb)
    shared = sorted({s.source for s in records_a} & {s.source for s in records_b})
    if shared:
        msg = f"both people have a record in {shared[0]}: one source cannot hold one person twice"
        raise UsageError(msg)
    strongest = draft.policy.strongest
    rank = draft.policy.rank
    home_a = strongest(s.source for s in records_a)
    home_b = strongest(s.source for s in records_b)
    keep, gone = (ca, cb) if rank(home_a) <= rank(home_b) else (cb, ca)
    _clear_all(draft, keep)
    _clear_all(draft, gone)
    for member in draft.contacts[gone].members:
        if member.until is None:
            _move(draft, member.record, gone, keep)
    entry = draft.contacts[gone]
    draft.put_contact(attrs.evolve(entry, redirects=(*entry.redirects, Redirect(keep, draft.at))))


def unlink(draft: Draft, change: Unlink) -> None:
    """Take a record out of the contact it was linked into: a contact of its own again."""
    state = draft.state(change.record)
    if _is_local(state):
        msg = "a contact's local record is not linked: it belongs to the contact"
        raise UsageError(msg)
    cid = state.contact_id
    linked = [s.id for s in _linked(draft, cid)]
    if len(linked) < 2:
        msg = "this record is not linked to another"
        raise UsageError(msg)
    _clear_all(draft, cid)
    # The contact keeps its id, so the record it is named after stays in it.
    leaving = [r for r in linked if r != cid] if state.id == cid else [state.id]
    for rid in leaving:
        _move(draft, rid, cid, rid)


def erase(draft: Draft, change: Erase) -> None:
    """Take a person out of the book and its history (rule 13)."""
    cid = resolve_id(draft.old, change.contact_id)
    if cid not in draft.contacts:
        msg = "the book holds no such contact"
        raise UnknownContactError(msg)
    ids = {cid} | {c.id for c in draft.contacts.values() if resolve_id(draft.old, c.id) == cid}
    erased_records = _erase_records(draft, cid, ids)
    _forget_in_others(draft, ids)
    for source in sorted({source for source, _ in erased_records}):
        if not draft.states(source):
            del draft.records[source]  # as if it had never held a record
            draft.forget(source)
    if change.suppress:
        _suppress(draft, erased_records)
    draft.erased.append(cid)


def _erase_records(draft: Draft, cid: str, ids: set[str]) -> list[tuple[str, str]]:
    """Drop the contacts *ids* (all answering as *cid*), their records and overrides."""
    erased_records: list[tuple[str, str]] = []
    for each in sorted(ids):
        for member in draft.contacts[each].members:
            source, key = split_record_id(member.record)
            state = draft.states(source).get(key)
            if state is not None and resolve_id(draft.old, state.contact_id) == cid:
                del draft.states(source)[key]
                erased_records.append((source, key))
        draft.drop_contact(each)
        draft.overrides.pop(each, None)
        draft.ended.pop(each, None)
    return erased_records


def _record_exists(draft: Draft, rid: str) -> bool:
    source, key = split_record_id(rid)
    return key in draft.records.get(source, {})


def _forget_in_others(draft: Draft, ids: set[str]) -> None:
    """Take the erased contacts *ids* out of other contacts' history and of every group."""
    for other in list(draft.contacts.values()):
        kept = tuple(m for m in other.members if _record_exists(draft, m.record))
        redirects = tuple(r for r in other.redirects if r.into not in ids)
        if kept != other.members or redirects != other.redirects:
            draft.put_contact(attrs.evolve(other, members=kept, redirects=redirects))
    for name, versions in list(draft.groups.items()):
        draft.groups[name] = tuple(
            attrs.evolve(v, group=attrs.evolve(v.group, members=v.group.members - ids))
            if v.group is not None and v.group.members & ids
            else v
            for v in versions
        )


def _suppress(draft: Draft, erased_records: list[tuple[str, str]]) -> None:
    """Keep a keyed hash of each erased feed record, so no later sync brings it back."""
    secret = draft.policy.suppression_key
    if draft.suppressed and suppression_check(secret) != draft.suppression_check:
        msg = "the policy's suppression_key is not the one this book's erasures used"
        raise UsageError(msg)
    draft.suppression_check = suppression_check(secret)
    draft.suppressed = draft.suppressed | {
        suppression_digest(secret, source, key)
        for source, key in erased_records
        if source != ADDRESS_BOOK
    }
