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

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Final, TypeAlias

import attrs
from attrs import frozen

from sourcetruth._history import Origin, SyncsAt, origin_sync, provenance_of
from sourcetruth._overlay import GONE, folded
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
    SyncRecord,
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


#: Whom a message is for: a group's name, a group, a rule, or contact ids.
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
    if not rule.guardians_of:
        matching = _matching(rule, effective.held(index.select(*_selectors(rule))))
        return {cid for cid, _ in matching}
    # Of the pupils, only their records are needed: read as such, but for those to check.
    records, check = index.selected_records(*_selectors(rule))
    pupil_records = {rid for found in records.values() for rid in found}
    checked = _matching(rule, effective.held(check))
    pupil_records.update(rid for _, e in checked for rid in e.records)
    named_by = index.naming(split_record_id(rid) for rid in sorted(pupil_records))
    return _guardians(rule, pupil_records, effective.held(named_by))


def _selects(rule: Rule) -> bool:
    """Whether *rule* selects by something (else it names every present contact: a scan)."""
    return bool(rule.guardians_of or rule.roles or rule.year_groups or rule.registration_groups)


#: Of the view's items given, those a reader may keep: every entry with a ``valid_until``
#: (checked again at the time), and those that pass its selectors.
Loose = Callable[[Iterable[tuple[str, CurrentContact]]], dict[str, CurrentContact]]


def _loosely_matching(rule: Rule) -> tuple[Loose, Callable[[CurrentContact], bool]]:
    """:func:`_matching` of *rule* as one pass over the view's items, and as a test of one entry."""
    roles, years, groups = _selectors(rule)
    # A tuple of a role or two: an enum member compares by identity there, not by its hash.
    role_list = tuple(roles)

    def loose(rows: Iterable[tuple[str, CurrentContact]]) -> dict[str, CurrentContact]:
        if not years and not groups:
            return {
                cid: e
                for cid, e in rows
                if e.valid_until is not None
                or (e.departed_at is None and (not roles or e.data.role in role_list))
            }
        return {
            cid: e
            for cid, e in rows
            if e.valid_until is not None
            or (
                e.departed_at is None
                and (not roles or e.data.role in role_list)
                and (not years or e.year_group in years)
                and (not groups or e.registration_group in groups)
            )
        }

    def strict(e: CurrentContact) -> bool:
        return (
            e.departed_at is None
            and (not roles or e.data.role in role_list)
            and (not years or e.year_group in years)
            and (not groups or e.registration_group in groups)
        )

    return loose, strict


def _naming_anyone(rows: Iterable[tuple[str, CurrentContact]]) -> dict[str, CurrentContact]:
    """Of the view's items, those whose relationships may name a pupil (and the expiring)."""
    return {
        cid: e
        for cid, e in rows
        if e.valid_until is not None
        or (e.relationships_source is not None and e.departed_at is None and e.data.relationships)
    }


def _names_anyone(e: CurrentContact) -> bool:
    return e.relationships_source is not None and e.departed_at is None


def _select_scanned(rule: Rule, effective: EffectiveCache) -> set[str]:
    """:func:`_select` over the whole view, in a pass or two over its items."""
    loose, strict = _loosely_matching(rule)
    matching = effective.scan(loose, strict)
    if not rule.guardians_of:
        return set(matching)
    pupil_records = {rid for e in matching.values() for rid in e.records}
    return _guardians(rule, pupil_records, effective.scan(_naming_anyone, _names_anyone))


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
        #: Entries a scan found, as they are at the time: a later lookup is one probe.
        self._held: dict[str, CurrentContact] = {}
        self._everyone: Mapping[str, CurrentContact] | None = None
        self._one: dict[str, Contact | None] = {}
        self._all: dict[str, Contact] | None = None

    def entry(self, contact_id: str) -> CurrentContact | None:
        """The contact *contact_id* at the time, as a view entry; None if it did not exist then."""
        held = self._held.get(contact_id)
        if held is not None:
            return held
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

    @property
    def scannable(self) -> bool:
        """Whether :meth:`scan` may read the view: a current one, held in memory."""
        return self._current and type(folded(self._view)[0]) is dict

    def scan(
        self, loose: Loose, strict: Callable[[CurrentContact], bool]
    ) -> dict[str, CurrentContact]:
        """The entries at the time that *strict* keeps, read in one pass over the view.

        *loose* keeps what *strict* would, and every entry with a
        ``valid_until``: those are checked again here, as they stand at the
        time (answered from history past it). Only when :attr:`scannable`.
        The entries come roughly in the order of the view (by id, but for
        the latest merges' changes).
        """
        root, changes = folded(self._view)
        found = loose(root.items())
        if changes:
            for cid in changes:
                found.pop(cid, None)
            found.update(loose((cid, e) for cid, e in changes.items() if e is not GONE))
        at = self.at
        for cid in [cid for cid, e in found.items() if e.valid_until is not None]:
            entry: CurrentContact | None = found[cid]
            assert entry is not None
            assert entry.valid_until is not None
            if at >= entry.valid_until:
                entry = self.entry(cid)
            if entry is None or not strict(entry):
                del found[cid]
            else:
                found[cid] = entry
        self._held.update(found)
        return found

    def in_order(self, chosen: set[str]) -> list[tuple[str, CurrentContact]]:
        """The present contacts *chosen*, by id, with their entries.

        Cheap when a scan found them all: it found them nearly sorted.
        """
        held = self._held
        if len(held) >= len(chosen):
            ordered = [(cid, e) for cid, e in held.items() if cid in chosen]
            if len(ordered) == len(chosen):
                ordered.sort()
                return ordered
        found = []
        for cid in sorted(chosen):
            entry = self.entry(cid)
            assert entry is not None  # chosen among those present
            found.append((cid, entry))
        return found

    def held(self, candidates: Mapping[str, CurrentContact]) -> dict[str, CurrentContact]:
        """*candidates*, entries of the view, as they are at the time (as :meth:`entries` has them).

        An entry past its ``valid_until`` is answered from history, as a scan answers it.
        """
        found: dict[str, CurrentContact] = {}
        at = self.at
        for cid, entry in candidates.items():
            if entry.valid_until is not None and at >= entry.valid_until:
                held = self.entry(cid)
                if held is None:
                    continue
                entry = held
            found[cid] = entry
        self._held.update(found)
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
    if rule is not None and not chosen and index is None and effective.scannable:
        return _select_scanned(rule, effective), []
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


#: Everyone one address reaches: the address, their ids, where the address came from for each
#: (see :func:`provenances`), and the first of them.
Reached = tuple[str, tuple[str, ...], tuple[Origin, ...], CurrentContact]


def reached(
    chosen: set[str], channel: Channel, effective: EffectiveCache
) -> tuple[list[Reached], list[Unreachable]]:
    """Everyone of the present contacts *chosen* that *channel* reaches, by address; and the rest.

    Addresses come in the order of their first contact's id.
    """
    unreachable: list[Unreachable] = []
    by_address: dict[str, list[CurrentContact]] = {}
    email = channel is Channel.EMAIL
    for cid, entry in effective.in_order(chosen):
        emails = entry.emails
        if email and emails and emails[0] is not None:
            address: str | None = emails[0]  # the usual case, without a call
        else:
            address, reason = _entry_address(entry, channel)
        if address is None:
            unreachable.append(Unreachable(cid, reason))
            continue
        found_for = by_address.get(address)
        if found_for is None:
            by_address[address] = [entry]
        else:
            found_for.append(entry)
    # Where the address field of each contact reached came from: its provenance is
    # built by who asks for it (provenances).
    index = FIELDS.index(ADDRESS_FIELDS[channel])
    found: list[Reached] = []
    add = found.append
    for address, entries in by_address.items():
        first = entries[0]
        if len(entries) == 1:
            add((address, (first.id,), (first.origins[index],), first))
        else:
            ids = tuple([e.id for e in entries])
            add((address, ids, tuple([e.origins[index] for e in entries]), first))
    return found, unreachable


def provenances(
    syncs: Mapping[str, tuple[SyncRecord, ...]],
    origins: tuple[Origin, ...],
    at: datetime,
    syncs_at: SyncsAt,
) -> tuple[Provenance, ...]:
    """The provenance as of *at* of each value from *origins*, given the book's *syncs*.

    *syncs_at* keeps the syncs looked up, across the calls of one reader.
    """
    return tuple([provenance_of(o, origin_sync(syncs, o, at, syncs_at)) for o in origins])


def resolve(audience: Audience, channel: Channel, effective: EffectiveCache) -> Recipients:
    """:func:`recipients`, with the contacts taken from (and kept in) *effective*."""
    chosen, unreachable = named(audience, effective)
    found, more = reached(chosen, channel, effective)
    unreachable += more
    return Recipients(
        channel,
        effective.at,
        tuple(
            _recipient(
                channel,
                address,
                ids,
                provenances(effective.book.syncs, origins, effective.at, effective.syncs_at),
            )
            for address, ids, origins, _ in found
        ),
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
