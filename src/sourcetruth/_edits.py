"""A person's edits, applied to a draft (package-private): saves, overrides, groups.

A save in the address book changes an address-book contact at once (rule
2). For a contact whose home is a feed, each field a feed supplies becomes a
temporary override of that feed's record (rule 3), and each field no feed
supplies a local value, kept in the contact's local record. Groups are
versioned definitions over contact ids and rules (rule 11).
"""

from __future__ import annotations

from typing import Any

import attrs

from sourcetruth._draft import Draft
from sourcetruth.changes import (
    AddressBookRemove,
    AddressBookSave,
    ClearOverride,
    RemoveGroup,
    SetGroup,
    SetOverride,
)
from sourcetruth.effective import comparable, effective_contact, last_data, resolve_id
from sourcetruth.exceptions import UnknownContactError, UnknownGroupError, UsageError
from sourcetruth.model import (
    ADDRESS_BOOK,
    FIELDS,
    Contact,
    ContactData,
    GroupDefinition,
    GroupVersion,
    Override,
    OverrideOutcome,
    ProvenanceKind,
    RecordState,
    check_fields,
    record_id,
    split_record_id,
)

__all__ = [
    "clear_override",
    "remove",
    "remove_group",
    "save",
    "set_group",
    "set_override",
]


def _home(draft: Draft, cid: str) -> Contact:
    """The contact *cid* as the draft stands."""
    contact = effective_contact(draft.book(), cid, draft.policy, draft.at)
    if contact is None:
        msg = f"the book holds no contact {cid!r}"
        raise UnknownContactError(msg)
    return contact


def _owner(draft: Draft, contact: Contact, field_name: str) -> RecordState | None:
    """The feed record whose value of *field_name* the contact shows, if a feed supplies it.

    An edit of that field is an override of that record, ended by that
    feed's next sync; a field no feed supplies is a local value.
    """
    prov = contact.provenance[field_name]
    if prov.kind is ProvenanceKind.DEFAULT or prov.source in (None, ADDRESS_BOOK):
        return None
    return draft.state(record_id(prov.source, prov.record_key or ""))


# -- saves -----------------------------------------------------------------------------


def save(draft: Draft, change: AddressBookSave) -> None:
    """A save in the address book: a new contact, an address-book contact, or overrides."""
    names = change.fields if change.fields is not None else frozenset(FIELDS)
    check_fields(names)
    cid = resolve_id(draft.old, change.contact_id)
    if cid not in draft.contacts:
        _save_new(draft, cid, change.data.only(tuple(names)))
        return
    contact = _home(draft, cid)
    if split_record_id(contact.home)[0] == ADDRESS_BOOK:
        _save_own(draft, contact, change.data, names)
        return
    if contact.departed:
        msg = "the contact has departed its source; it cannot be edited"
        raise UsageError(msg)
    _save_over_feed(draft, contact, change.data, names)


def _save_new(draft: Draft, cid: str, data: ContactData) -> None:
    """A new address-book contact, *cid* being ``address-book:KEY``."""
    source, key = split_record_id(cid)
    if source != ADDRESS_BOOK:
        msg = f"the book holds no contact {cid!r}; new contacts are '{ADDRESS_BOOK}:KEY'"
        raise UnknownContactError(msg)
    if ":" in key or not key:
        msg = "an address-book key must be non-empty and hold no ':'"
        raise UsageError(msg)
    if key in draft.records.get(ADDRESS_BOOK, {}):
        msg = f"the address-book key {key!r} is taken"
        raise UsageError(msg)
    state = draft.new_record(ADDRESS_BOOK, key, data, draft.at)
    draft.check_values(state.id, data)


def _save_own(draft: Draft, contact: Contact, data: ContactData, names: frozenset[str]) -> None:
    """A save of an address-book contact: its record changes at once (rule 2)."""
    state = draft.state(contact.home)
    held = last_data(state, state.current)
    base = held.data if held is not None and held.data is not None else ContactData()
    new = attrs.evolve(base, **{n: data.get(n) for n in names})
    if new != state.current.data:
        draft.put_version(state, new, draft.at)
        draft.check_values(state.id, new)


def _save_over_feed(
    draft: Draft, contact: Contact, data: ContactData, names: frozenset[str]
) -> None:
    """A save of a feed's contact: overrides of what feeds supply, local values for the rest."""
    cid = contact.id
    local: dict[str, Any] = {}
    for name in sorted(names):
        value = data.get(name)
        owner = _owner(draft, contact, name)
        if owner is None:
            local[name] = value
            continue
        region = draft.policy.region_of(owner.source)  # the feed's numbers, read as it reads them
        wanted = comparable(name, value, region)
        if wanted == comparable(name, contact.data.get(name), region):
            continue
        in_force = [o for o in draft.overrides.get(cid, ()) if o.field == name]
        source_data = owner.current.data or ContactData()
        if in_force and wanted == comparable(name, source_data.get(name), region):
            # Saving the source's own value back undoes the edit.
            for override in in_force:
                draft.end_override(override, OverrideOutcome.CLEARED)
            continue
        _override(draft, contact, SetOverride(cid, name, data.only((name,))))
    if local:
        _save_local(draft, contact, local)


def _save_local(draft: Draft, contact: Contact, local: dict[str, Any]) -> None:
    """Keep values for fields that no feed supplies, in the contact's local record."""
    key = contact.id
    state = draft.records.get(ADDRESS_BOOK, {}).get(key)
    if state is None:
        state = draft.new_record(ADDRESS_BOOK, key, ContactData(**local), draft.at, contact.id)
    else:
        new = attrs.evolve(state.current.data or ContactData(), **local)
        if new == state.current.data:
            return
        state = draft.put_version(state, new, draft.at)
    assert state.current.data is not None
    draft.check_values(state.id, state.current.data)


def remove(draft: Draft, change: AddressBookRemove) -> None:
    """An address-book contact departs (kept, restorable by a save)."""
    contact = _home(draft, resolve_id(draft.old, change.contact_id))
    if split_record_id(contact.home)[0] != ADDRESS_BOOK:
        msg = "this contact's home is a source: remove it there"
        raise UsageError(msg)
    if not contact.departed:
        draft.put_version(draft.state(contact.home), None, draft.at)


# -- overrides -------------------------------------------------------------------------


def set_override(draft: Draft, change: SetOverride) -> None:
    """Override one field a feed supplies, until its lifetime ends (rule 3)."""
    _override(draft, _home(draft, resolve_id(draft.old, change.contact_id)), change)


def _override(draft: Draft, contact: Contact, change: SetOverride) -> None:
    if split_record_id(contact.home)[0] == ADDRESS_BOOK:
        msg = "address-book contacts are edited directly, not overridden"
        raise UsageError(msg)
    owner = _owner(draft, contact, change.field)
    if owner is None:
        msg = f"no source supplies {change.field!r} for this contact: save it in the address book"
        raise UsageError(msg)
    if contact.departed:
        msg = "the contact has departed its source; it cannot be overridden"
        raise UsageError(msg)
    if change.until is not None and change.until <= draft.at:
        msg = "an override's 'until' must be after the time it is set"
        raise UsageError(msg)
    for existing in draft.overrides.get(contact.id, ()):
        if existing.field == change.field:
            draft.end_override(existing, OverrideOutcome.CLEARED)
    source_data = owner.current.data or ContactData()
    override = Override(
        contact_id=contact.id,
        field=change.field,
        value=change.value.only((change.field,)),
        base=source_data.only((change.field,)),
        record=owner.id,
        set_by=draft.by,
        set_at=draft.at,
        lifetime=change.lifetime,
        until=change.until,
    )
    draft.add_override(override)
    draft.check_values(owner.id, override.value)


def clear_override(draft: Draft, change: ClearOverride) -> None:
    """End the overrides of one field of a contact now, as ``cleared``."""
    cid = resolve_id(draft.old, change.contact_id)
    found = [o for o in draft.overrides.get(cid, ()) if o.field == change.field]
    if not found:
        msg = f"no override of {change.field!r} is in force for that contact"
        raise UsageError(msg)
    for override in found:
        draft.end_override(override, OverrideOutcome.CLEARED)


# -- groups ----------------------------------------------------------------------------


def set_group(draft: Draft, change: SetGroup) -> None:
    """Create or replace a group."""
    _version_group(draft, change.group, change.group.name)


def remove_group(draft: Draft, change: RemoveGroup) -> None:
    """Remove a group: a version that holds no definition."""
    _version_group(draft, None, change.name)


def _version_group(draft: Draft, group: GroupDefinition | None, name: str) -> None:
    if group is not None:
        missing = sorted(m for m in group.members if resolve_id(draft.old, m) not in draft.contacts)
        if missing:
            msg = f"group {name!r} names contacts the book does not hold: {missing}"
            raise UnknownContactError(msg)
    elif not draft.groups.get(name) or draft.groups[name][-1].group is None:
        msg = f"no group named {name!r}"
        raise UnknownGroupError(msg)
    versions = draft.groups.get(name, ())
    if group is not None and versions and versions[-1].group == group:
        return
    draft.groups[name] = (*draft.groups.get(name, ()), GroupVersion(name, draft.at, group))
