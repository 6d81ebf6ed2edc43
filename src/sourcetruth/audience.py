"""Who an audience reaches at one time, and at which address (rule 11).

An audience is a group name, a group, a rule or a collection of contact ids.
It is resolved against effective data at a time: groups and links as they
were then, rules over the effective values, departed contacts left out. Each
address is reached once, with everyone it reaches and the provenance of the
address for each; everyone the audience names but cannot reach is listed
with why.

:func:`recipients` answers one question; the message planner asks many about
one time, so it shares an :class:`EffectiveCache` across :func:`named` and
:func:`resolve`. Both read the book's current view for a time it answers
for, with addresses already normalised, and build the provenance of the
address of each contact reached, and of nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, TypeAlias

import attrs
from attrs import frozen

from sourcetruth._history import SyncsAt, origin_provenance
from sourcetruth._util import at_or_before
from sourcetruth.effective import resolve_id
from sourcetruth.exceptions import UnknownGroupError
from sourcetruth.model import (
    ADDRESS_FIELDS,
    FIELDS,
    Book,
    Channel,
    Contact,
    ContactData,
    GroupDefinition,
    PhoneType,
    Provenance,
    Role,
    Rule,
    record_id,
    split_record_id,
    utc,
)
from sourcetruth.normalise import normalise_email, normalise_phone
from sourcetruth.policy import Policy
from sourcetruth.view import (
    CurrentContact,
    ViewIndex,
    current_entry,
    view_index,
    view_is_current,
)

__all__ = [
    "Audience",
    "EffectiveCache",
    "Recipient",
    "Recipients",
    "Unreachable",
    "named",
    "reached",
    "recipients",
    "resolve",
    "usable_address",
]


@frozen
class Recipient:
    """One address on one channel, and everyone it reaches, with provenance."""

    channel: Channel
    address: str = attrs.field(repr=False)
    contact_ids: tuple[str, ...]
    provenance: tuple[Provenance, ...] = attrs.field(repr=False)


@frozen
class Unreachable:
    """Someone the audience names whom the channel cannot reach at the time, and why."""

    contact_id: str
    reason: str


@frozen
class Recipients:
    """Who a message on one channel reaches at one time, and who it cannot."""

    channel: Channel
    at: datetime = attrs.field(converter=utc)
    recipients: tuple[Recipient, ...]
    unreachable: tuple[Unreachable, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients)


Audience: TypeAlias = str | GroupDefinition | Rule | frozenset[str] | set[str] | tuple[str, ...]


# -- the address of a channel ------------------------------------------------------------


def _mobile_number(data: ContactData, region: str) -> tuple[str | None, str]:
    mobiles = [p for p in data.phones if p.type is PhoneType.MOBILE]
    if not mobiles:
        return None, "no mobile number"
    for phone in mobiles:
        checked = normalise_phone(phone.number, region)
        if checked.value is not None:
            return checked.value, ""
    return None, "mobile number does not normalise"


def _email_address(data: ContactData, _region: str) -> tuple[str | None, str]:
    if not data.emails:
        return None, "no email address"
    for email in data.emails:
        checked = normalise_email(email.address)
        if checked.value is not None:
            return checked.value, ""
    return None, "email address does not normalise"


#: How each channel finds a person's address in their data.
_ADDRESS_OF: Final[Mapping[Channel, Callable[[ContactData, str], tuple[str | None, str]]]] = {
    Channel.EMAIL: _email_address,
    Channel.SMS: _mobile_number,
}


def usable_address(data: ContactData, channel: Channel, region: str) -> tuple[str | None, str]:
    """The address a message on *channel* would use for *data*, or None and why not.

    SMS goes to the first mobile number that normalises; email to the first
    address that does.
    """
    return _ADDRESS_OF[channel](data, region)


# -- groups and rules ------------------------------------------------------------------


def _group_at(book: Book, name: str, at: datetime) -> GroupDefinition:
    version = at_or_before(book.groups.get(name, ()), at, lambda g: g.since)
    if version is None or version.group is None:
        msg = f"no group named {name!r} at that time"
        raise UnknownGroupError(msg)
    return version.group


def _selectors(rule: Rule) -> tuple[frozenset[Role], frozenset[str], frozenset[str]]:
    """The roles, year groups and registration groups of the contacts *rule* starts from."""
    roles = frozenset({Role.PUPIL}) if rule.guardians_of else rule.roles
    return roles, rule.year_groups, rule.registration_groups


def _matching(
    rule: Rule, entries: Mapping[str, CurrentContact]
) -> list[tuple[str, CurrentContact]]:
    """The present *entries* that *rule*'s selectors match (the pupils, for "guardians of")."""
    # The hot loop of planning: one pass, no call per contact.
    roles, years, groups = _selectors(rule)
    return [
        (cid, e)
        for cid, e in entries.items()
        if e.departed_at is None
        and (not roles or e.data.role in roles)
        and (not years or e.year_group in years)
        and (not groups or e.registration_group in groups)
    ]


def _guardians(
    rule: Rule, pupil_records: set[str], entries: Mapping[str, CurrentContact]
) -> set[str]:
    """The present *entries* whose relationships name one of *pupil_records*, as *rule* allows."""
    # A guardian names a pupil by its key in the source the relationships came
    # from; match it against the records each chosen pupil had at that time.
    chosen = set()
    for cid, entry in entries.items():
        source = entry.relationships_source
        if source is None or entry.departed_at is not None:
            continue
        for rel in entry.data.relationships:
            if not rel.receives_messages:
                continue
            if rule.max_priority is not None and rel.priority > rule.max_priority:
                continue
            if record_id(source, rel.pupil) in pupil_records:
                chosen.add(cid)
                break
    return chosen


def _select(rule: Rule, everyone: Mapping[str, CurrentContact]) -> set[str]:
    """Who *rule* selects among *everyone*, read whole."""
    matching = _matching(rule, everyone)
    if not rule.guardians_of:
        return {cid for cid, _ in matching}
    return _guardians(rule, {rid for _, e in matching for rid in e.records}, everyone)


def _select_by_index(rule: Rule, effective: EffectiveCache, index: ViewIndex) -> set[str]:
    """:func:`_select`, reading only the entries *index* gives, each checked as a scan would."""
    matching = _matching(rule, effective.held(index.select(*_selectors(rule))))
    if not rule.guardians_of:
        return {cid for cid, _ in matching}
    pupil_records = {rid for _, e in matching for rid in e.records}
    named_by = index.naming(split_record_id(rid) for rid in sorted(pupil_records))
    return _guardians(rule, pupil_records, effective.held(named_by))


def _selects(rule: Rule) -> bool:
    """Whether *rule* selects by something (else it names every present contact: a scan)."""
    return bool(rule.guardians_of or rule.roles or rule.year_groups or rule.registration_groups)


# -- resolving -------------------------------------------------------------------------


class EffectiveCache:
    """Contacts of one book at one time, each computed once however often asked for.

    For a time the book's current view answers (:mod:`sourcetruth.view`),
    its entries are read as they are; for any other, each contact asked for
    is read from history, once.
    """

    def __init__(self, book: Book, policy: Policy, at: datetime) -> None:
        self.book, self.policy, self.at = book, policy, at
        self._current = view_is_current(book, policy, at)
        self._view: Mapping[str, CurrentContact] = book.view if self._current else {}
        #: Where the view can find what a rule selects without a scan (a store's indexes).
        self.index: ViewIndex | None = view_index(self._view) if self._current else None
        #: The latest sync of each source at the time, as provenance names it.
        self.syncs_at: SyncsAt = {}
        self._entries: dict[str, CurrentContact | None] = {}
        self._everyone: Mapping[str, CurrentContact] | None = None
        self._one: dict[str, Contact | None] = {}
        self._all: dict[str, Contact] | None = None

    def entry(self, contact_id: str) -> CurrentContact | None:
        """The contact *contact_id* at the time, as a view entry; None if it did not exist then."""
        if self._current:
            found = self._view.get(contact_id)
            if found is None or found.valid_until is None or self.at < found.valid_until:
                return found
        if contact_id not in self._entries:
            self._entries[contact_id] = current_entry(self.book, contact_id, self.policy, self.at)
        return self._entries[contact_id]

    def entries(self) -> Mapping[str, CurrentContact]:
        """Every contact that existed at the time, as view entries, by id (in no set order)."""
        if self._everyone is None:
            if self._current:
                view = self._view
                at = self.at
                expired = [
                    cid
                    for cid, e in view.items()
                    if e.valid_until is not None and at >= e.valid_until
                ]
                if expired:
                    everyone = dict(view)
                    for cid in expired:
                        entry = self.entry(cid)
                        if entry is None:
                            del everyone[cid]
                        else:
                            everyone[cid] = entry
                    view = everyone
                self._everyone = view
            else:
                found = ((cid, self.entry(cid)) for cid in sorted(self.book.contacts))
                self._everyone = {cid: e for cid, e in found if e is not None}
        return self._everyone

    def held(self, candidates: Mapping[str, CurrentContact]) -> dict[str, CurrentContact]:
        """*candidates*, entries of the view, as they are at the time (as :meth:`entries` has them).

        An entry past its ``valid_until`` is answered from history, as a scan answers it.
        """
        found = {}
        for cid in candidates:
            entry = self.entry(cid)
            if entry is not None:
                found[cid] = entry
        return found

    def provenance(self, entry: CurrentContact, field_name: str) -> Provenance:
        """Where *entry*'s value of *field_name* came from, as of the time."""
        return entry.provenance(self.book, field_name, self.at, self.syncs_at)

    def one(self, contact_id: str) -> Contact | None:
        """The contact *contact_id* at the time, None if it did not exist then."""
        if contact_id not in self._one:
            entry = self.entry(contact_id)
            self._one[contact_id] = None if entry is None else entry.contact(self.book, self.at)
        return self._one[contact_id]

    def all(self) -> dict[str, Contact]:
        """Every contact that existed at the time, by id."""
        if self._all is None:
            self._all = {}
            for contact_id in sorted(self.book.contacts):
                contact = self.one(contact_id)
                if contact is not None:
                    self._all[contact_id] = contact
        return self._all


def _group(book: Book, audience: Audience, at: datetime) -> GroupDefinition:
    """*audience* as a group."""
    if isinstance(audience, str):
        return _group_at(book, audience, at)
    if isinstance(audience, GroupDefinition):
        return audience
    if isinstance(audience, Rule):
        return GroupDefinition("(rule)", rule=audience)
    return GroupDefinition("(contacts)", members=frozenset(audience))


def named(audience: Audience, effective: EffectiveCache) -> tuple[set[str], list[Unreachable]]:
    """Who *audience* names and is present at the time, and who it names but is not.

    A rule reads the view's index where it has one and the rule selects by
    something; else every contact.
    """
    book, at = effective.book, effective.at
    group = _group(book, audience, at)
    chosen = {resolve_id(book, cid, at) for cid in group.members}
    rule = group.rule
    index = effective.index
    if rule is not None and (index is None or not _selects(rule)):
        index = None
        everyone: Mapping[str, CurrentContact] = effective.entries()
    else:  # static members only, or a rule the index answers: no need to look at anyone else
        found_members = ((cid, effective.entry(cid)) for cid in chosen)
        everyone = {cid: e for cid, e in found_members if e is not None}
    unreachable = [
        Unreachable(cid, "not in the book at that time") for cid in chosen if cid not in everyone
    ]
    chosen &= everyone.keys()
    unreachable += [Unreachable(cid, "departed") for cid in chosen if everyone[cid].departed]
    chosen = {cid for cid in chosen if not everyone[cid].departed}
    if rule is not None:
        if index is None:
            chosen |= _select(rule, everyone)
        else:
            chosen |= _select_by_index(rule, effective, index)
    return chosen, unreachable


def _entry_address(entry: CurrentContact, channel: Channel) -> tuple[str | None, str]:
    """:func:`usable_address` of an entry, from the addresses it holds normalised."""
    if channel is Channel.EMAIL:
        if not entry.emails:
            return None, "no email address"
        for value in entry.emails:
            if value is not None:
                return value, ""
        return None, "email address does not normalise"
    mobiles = [
        value
        for phone, value in zip(entry.data.phones, entry.phones, strict=True)
        if phone.type is PhoneType.MOBILE
    ]
    if not mobiles:
        return None, "no mobile number"
    for value in mobiles:
        if value is not None:
            return value, ""
    return None, "mobile number does not normalise"


_new = object.__new__
_set = object.__setattr__


def _recipient(
    channel: Channel, address: str, ids: tuple[str, ...], provenance: tuple[Provenance, ...]
) -> Recipient:
    """A Recipient of values already checked: a plan makes one per address."""
    made: Recipient = _new(Recipient)
    _set(made, "channel", channel)
    _set(made, "address", address)
    _set(made, "contact_ids", ids)
    _set(made, "provenance", provenance)
    return made


#: Everyone one address reaches: the address, their ids, the provenance of the address for each,
#: and the first of them.
Reached = tuple[str, tuple[str, ...], tuple[Provenance, ...], CurrentContact]


def reached(
    chosen: set[str], channel: Channel, effective: EffectiveCache
) -> tuple[list[Reached], list[Unreachable]]:
    """Everyone of the present contacts *chosen* that *channel* reaches, by address; and the rest.

    Addresses come in the order of their first contact's id.
    """
    book, at = effective.book, effective.at
    unreachable: list[Unreachable] = []
    by_address: dict[str, list[CurrentContact]] = {}
    entry_of = effective.entry
    for cid in sorted(chosen):
        entry = entry_of(cid)
        assert entry is not None  # chosen among those present
        address, reason = _entry_address(entry, channel)
        if address is None:
            unreachable.append(Unreachable(cid, reason))
            continue
        found_for = by_address.get(address)
        if found_for is None:
            by_address[address] = [entry]
        else:
            found_for.append(entry)
    # Provenance only for what is returned: the address field of each contact reached.
    index = FIELDS.index(ADDRESS_FIELDS[channel])
    syncs = effective.syncs_at
    found = [
        (
            address,
            tuple(e.id for e in entries),
            tuple(origin_provenance(book, e.origins[index], at, syncs) for e in entries),
            entries[0],
        )
        for address, entries in by_address.items()
    ]
    return found, unreachable


def resolve(audience: Audience, channel: Channel, effective: EffectiveCache) -> Recipients:
    """:func:`recipients`, with the contacts taken from (and kept in) *effective*."""
    chosen, unreachable = named(audience, effective)
    found, more = reached(chosen, channel, effective)
    unreachable += more
    return Recipients(
        channel,
        effective.at,
        tuple(_recipient(channel, address, ids, prov) for address, ids, prov, _ in found),
        tuple(sorted(unreachable, key=lambda u: (u.contact_id, u.reason))),
    )


def recipients(
    book: Book, audience: Audience, channel: Channel, *, policy: Policy, at: datetime
) -> Recipients:
    """Resolve *audience* on *channel* at *at* against effective data (rule 11).

    *audience* is a group name, a group, a rule, or a collection of contact
    ids. Departed contacts are never recipients; each address appears once,
    with every contact it reaches; a person is reached once per channel, at
    the first usable address of that channel (a mobile for SMS).
    """
    at = utc(at)
    return resolve(audience, channel, EffectiveCache(book, policy, at))
