"""The words of the rules as immutable values.

Everything here is a frozen attrs class (or an enum) with no I/O, no clock and
no randomness. Personal values (names, numbers, addresses) never appear in a
``repr``: read the attribute when you mean to.

Times are timezone-aware everywhere; they are stored in UTC so that the
serialised book is the same bytes whatever zone the caller worked in.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
from attrs import field, frozen
from attrs.validators import deep_iterable, instance_of

from sourcetruth._moved import moved_names
from sourcetruth._util import to_frozenset, to_tuple
from sourcetruth.digested import DigestedRecords
from sourcetruth.exceptions import UsageError

__all__ = [
    "ADDRESS_BOOK",
    "ADDRESS_FIELDS",
    "EXPIRY",
    "FIELDS",
    "KEPT_AT_SYNC",
    "Book",
    "Channel",
    "Contact",
    "ContactData",
    "ContactEntry",
    "Email",
    "EmailType",
    "EndedOverride",
    "GroupDefinition",
    "GroupVersion",
    "Membership",
    "Override",
    "OverrideLifetime",
    "OverrideOutcome",
    "Phone",
    "PhoneType",
    "Provenance",
    "ProvenanceKind",
    "Record",
    "RecordState",
    "RecordVersion",
    "Redirect",
    "Relationship",
    "Role",
    "Rule",
    "Snapshot",
    "SnapshotKind",
    "SourceKind",
    "SyncRecord",
    "check_field_name",
    "check_fields",
    "check_source_name",
    "data_from",
    "record_id",
    "split_record_id",
    "suppression_check",
    "suppression_digest",
    "unknown_fields",
    "utc",
    "utc_or_none",
]

#: The name of the local address book, a source that every policy has.
ADDRESS_BOOK: Final = "address-book"

#: The fields of a contact that a source can cover and an override can touch.
FIELDS: Final = (
    "given_name",
    "family_name",
    "role",
    "phones",
    "emails",
    "relationships",
    "year_group",
    "registration_group",
)
_FIELD_SET: Final = frozenset(FIELDS)


def unknown_fields(names: Iterable[str]) -> list[str]:
    """Those of *names* that are not contact fields (see :data:`FIELDS`), sorted."""
    return sorted(set(names) - _FIELD_SET)


def check_fields(names: Collection[str]) -> None:
    """Raise :class:`~sourcetruth.UsageError` unless every one of *names* is a contact field."""
    if not _FIELD_SET.issuperset(names):  # the common case: one set operation
        msg = f"unknown fields {unknown_fields(names)}; fields are {', '.join(FIELDS)}"
        raise UsageError(msg)


def check_source_name(name: str) -> None:
    """Raise :class:`~sourcetruth.UsageError` unless *name* can name a source in record ids."""
    if not name or ":" in name:
        msg = f"a source name must be non-empty and contain no ':' (got {name!r})"
        raise UsageError(msg)


def utc(value: datetime) -> datetime:
    """Return *value* in UTC; a naive datetime is the caller's mistake."""
    if not isinstance(value, datetime):
        msg = f"expected a timezone-aware datetime, got {type(value).__name__}"
        raise UsageError(msg)
    if value.tzinfo is UTC:
        return value  # the common case, in every model object: nothing to convert
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "naive datetime: pass a timezone-aware time (for example with zoneinfo)"
        raise UsageError(msg)
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    """:func:`utc` for an optional time (an attrs converter)."""
    return None if value is None else utc(value)


def _each(cls: type) -> Any:
    return deep_iterable(instance_of(cls))


def _redact(value: object) -> str:
    return "<redacted>" if value else repr(value)


def check_field_name(_inst: object, _attr: object, value: str) -> None:
    """An attrs validator: *value* names a field of :class:`ContactData`."""
    check_fields((value,))


def _check_source_name(_inst: object, _attr: object, value: str) -> None:
    check_source_name(value)


def record_id(source: str, key: str) -> str:
    """The book-wide id of a source's record: ``"source:key"``."""
    return f"{source}:{key}"


def split_record_id(value: str) -> tuple[str, str]:
    """Split a record id into (source, key); the key may itself hold ':'."""
    source, sep, key = value.partition(":")
    if not sep or not source:
        msg = f"not a record id (expected 'source:key'): {value!r}"
        raise UsageError(msg)
    return source, key


class Role(enum.Enum):
    """What a person is to the school."""

    PUPIL = "pupil"
    GUARDIAN = "guardian"
    STAFF = "staff"
    GOVERNOR = "governor"
    OTHER = "other"


class PhoneType(enum.Enum):
    MOBILE = "mobile"
    HOME = "home"
    WORK = "work"
    OTHER = "other"


class EmailType(enum.Enum):
    HOME = "home"
    WORK = "work"
    OTHER = "other"


class Channel(enum.Enum):
    """How a message reaches a person."""

    EMAIL = "email"
    SMS = "sms"


#: The contact field that holds each channel's addresses.
ADDRESS_FIELDS: Final[Mapping[Channel, str]] = {Channel.EMAIL: "emails", Channel.SMS: "phones"}


class SourceKind(enum.Enum):
    MIS = "mis"
    IMPORT = "import"
    ADDRESS_BOOK = "address-book"


class SnapshotKind(enum.Enum):
    FULL = "full"
    DELTA = "delta"


class OverrideLifetime(enum.Enum):
    """When a temporary override ends (rule 3).

    ``NEXT_SYNC``: at the first sync of the owning source read after the edit
    (the default). ``UNTIL``: at ``until`` or that sync, whichever comes first.
    ``SOURCE_CHANGE``: kept across syncs while the source still holds the value
    it had when the edit was made; each such sync reports it as still in force.
    """

    NEXT_SYNC = "next-sync"
    UNTIL = "until"
    SOURCE_CHANGE = "source-change"


class OverrideOutcome(enum.Enum):
    """How an override ended.

    The first three come from comparing the source's value with the edit:
    ``CONFIRMED`` (the source now holds the edited value), ``SUPERSEDED`` (it
    holds some third value), ``LOST`` (it still holds the old value: update it
    at source). ``CLEARED``: a person removed it. ``DEPARTED``: the contact left
    the source, so there is nothing left to update.
    """

    CONFIRMED = "confirmed"
    SUPERSEDED = "superseded"
    LOST = "lost"
    CLEARED = "cleared"
    DEPARTED = "departed"


#: What a sync of the owning source, read after the edit, does to an override
#: of each lifetime (rule 3): the outcomes with which the override stays in
#: force, reported as kept; with any other outcome the sync ends it. An empty
#: set: that sync ends it, whatever the source holds.
KEPT_AT_SYNC: Final[Mapping[OverrideLifetime, frozenset[OverrideOutcome]]] = {
    OverrideLifetime.NEXT_SYNC: frozenset(),
    OverrideLifetime.UNTIL: frozenset(),
    OverrideLifetime.SOURCE_CHANGE: frozenset({OverrideOutcome.LOST}),
}


class ProvenanceKind(enum.Enum):
    SOURCE = "source"
    OVERRIDE = "override"
    DEFAULT = "default"


@frozen
class Phone:
    """A phone number as the source gave it; compared in E.164."""

    number: str = field(repr=_redact, validator=instance_of(str))
    type: PhoneType = field(default=PhoneType.MOBILE, validator=instance_of(PhoneType))


@frozen
class Email:
    """An email address as the source gave it; compared with its domain case-folded."""

    address: str = field(repr=_redact, validator=instance_of(str))
    type: EmailType = field(default=EmailType.HOME, validator=instance_of(EmailType))


@frozen
class Relationship:
    """A guardian's link to a pupil, by the pupil's key in the same source."""

    pupil: str
    priority: int = 1
    parental_responsibility: bool = True
    receives_messages: bool = True


@frozen
class ContactData:
    """What is known of a person: every field of :data:`FIELDS`.

    An empty string or empty tuple means "empty". For a field that a source
    covers, empty is a value like any other: the source removed it.
    """

    given_name: str = field(default="", repr=_redact)
    family_name: str = field(default="", repr=_redact)
    role: Role = Role.OTHER
    phones: tuple[Phone, ...] = field(default=(), converter=to_tuple, validator=_each(Phone))
    emails: tuple[Email, ...] = field(default=(), converter=to_tuple, validator=_each(Email))
    relationships: tuple[Relationship, ...] = field(
        default=(), converter=to_tuple, validator=_each(Relationship)
    )
    year_group: str = ""
    registration_group: str = ""

    def get(self, name: str) -> Any:
        """The value of field *name*."""
        return getattr(self, name)

    def only(self, names: frozenset[str] | tuple[str, ...]) -> ContactData:
        """A copy that keeps *names* and empties every other field."""
        check_fields(names)
        if len(names) >= len(FIELDS) and all(name in names for name in FIELDS):
            return self  # immutable: keeping every field is this very value
        return data_from(dict.fromkeys(names, self))


_EMPTY_VALUES: Final = {name: getattr(ContactData(), name) for name in FIELDS}
_set = object.__setattr__


def data_from(parts: Mapping[str, ContactData]) -> ContactData:
    """Contact data that takes each field named in *parts* from the data given for it.

    The fields *parts* does not name are empty. Each value passed the
    validators when its ContactData was made, and is immutable, so checking it
    again would only cost time: the merge and the planner build a ContactData
    per contact and per changed field.
    """
    data: ContactData = object.__new__(ContactData)
    for name in FIELDS:
        part = parts.get(name)
        _set(data, name, _EMPTY_VALUES[name] if part is None else getattr(part, name))
    return data


def _fields_or_none(value: Iterable[str] | None) -> frozenset[str] | None:
    if isinstance(value, str):
        msg = "fields is a collection of field names, not one string"
        raise UsageError(msg)
    return None if value is None else frozenset(value)


def _check_fields(_inst: object, _attr: object, value: frozenset[str] | None) -> None:
    if value is None:
        return
    if not value:
        msg = "a partial record names at least one field (None means the whole record)"
        raise UsageError(msg)
    check_fields(value)


@frozen
class Record:
    """What one source says about one person, under the source's stable key.

    ``fields`` is None for a whole record. In a delta it may name only the
    fields the source vouches for (a OneRoster delta row that changes a
    guardian's phone but cannot see the links written on the pupils' rows):
    for a person the book holds as present, the record changes those fields
    and keeps the others as the book has them; for anyone else, ``data`` is
    the source's best knowledge and stands whole.
    """

    key: str = field(validator=instance_of(str))
    data: ContactData = field(default=ContactData(), validator=instance_of(ContactData))
    fields: frozenset[str] | None = field(
        default=None, converter=_fields_or_none, validator=_check_fields
    )


def _records(value: Iterable[Record]) -> Sequence[Record]:
    """A snapshot's records as a tuple, digested records as they are (built when asked for)."""
    return value if isinstance(value, DigestedRecords) else tuple(value)


@frozen
class Snapshot:
    """A source's extraction at one moment.

    A ``FULL`` snapshot holds every record: a record missing from it departs.
    A ``DELTA`` holds only what changed: ``records`` added or changed, and the
    keys in ``removed`` that left. ``records`` is a tuple, or
    :class:`~sourcetruth.DigestedRecords` from a reader that hands the merge
    digests first (whole records, built when asked for).
    """

    source: str = field(validator=_check_source_name)
    extracted_at: datetime = field(converter=utc)
    records: Sequence[Record] = field(default=(), converter=_records, repr=False)
    kind: SnapshotKind = SnapshotKind.FULL
    removed: tuple[str, ...] = field(default=(), converter=to_tuple, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.kind is SnapshotKind.FULL and self.removed:
            msg = "a full snapshot lists every record; 'removed' is for deltas"
            raise UsageError(msg)
        if isinstance(self.records, DigestedRecords):
            return  # whole by their reader's promise, checked as each is built
        if self.kind is SnapshotKind.FULL and any(r.fields is not None for r in self.records):
            msg = "a full snapshot holds whole records; partial records are for deltas"
            raise UsageError(msg)


@frozen
class Rule:
    """A rule over effective data, evaluated at send time (rule 11).

    Without ``guardians_of`` it selects contacts whose role, year group and
    registration group match (an empty set matches anything). With
    ``guardians_of`` it selects the pupils that match and returns their
    guardians who receive messages, those with a priority up to
    ``max_priority`` when it is set: "parents of year 9" is
    ``Rule(year_groups=frozenset({"9"}), guardians_of=True)``.
    """

    roles: frozenset[Role] = field(default=frozenset(), converter=to_frozenset)
    year_groups: frozenset[str] = field(default=frozenset(), converter=to_frozenset)
    registration_groups: frozenset[str] = field(default=frozenset(), converter=to_frozenset)
    guardians_of: bool = False
    max_priority: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.guardians_of and self.roles:
            msg = "with guardians_of the rule selects pupils: leave roles empty"
            raise UsageError(msg)


@frozen
class GroupDefinition:
    """A named set of recipients across homes: static members and/or a rule."""

    name: str
    members: frozenset[str] = field(default=frozenset(), converter=to_frozenset)
    rule: Rule | None = None


@frozen
class Override:
    """A local edit to a field that a source covers; temporary by nature.

    ``value`` and ``base`` hold only ``field``: the edited value, and the
    source's value when the edit was made (to tell ``lost`` from
    ``superseded`` later). ``record`` is the id of the home record it
    overrides; its source is the one whose next sync ends it.
    """

    contact_id: str
    field: str = attrs.field(validator=check_field_name)
    value: ContactData
    base: ContactData
    record: str
    set_by: str
    set_at: datetime = attrs.field(converter=utc)
    lifetime: OverrideLifetime = OverrideLifetime.NEXT_SYNC
    until: datetime | None = attrs.field(default=None, converter=utc_or_none)

    @property
    def source(self) -> str:
        return split_record_id(self.record)[0]

    def active_at(self, at: datetime) -> bool:
        """Whether the edit is in force at *at* by its own times (an ended one stops sooner)."""
        return self.set_at <= at and (self.until is None or at < self.until)

    @property
    def edited_value(self) -> Any:
        return self.value.get(self.field)

    @property
    def base_value(self) -> Any:
        return self.base.get(self.field)


@frozen
class EndedOverride:
    """An override that ended, how, and in which merge."""

    override: Override
    ended_at: datetime = field(converter=utc)
    outcome: OverrideOutcome
    ended_by: str
    sync: int | None = None


#: ``ended_by`` of an override that ended because its ``until`` passed.
EXPIRY: Final = "(expired)"


@frozen
class RecordVersion:
    """One applied state of a record; ``data`` is None while it is departed."""

    data: ContactData | None
    applied_at: datetime = field(converter=utc)
    extracted_at: datetime = field(converter=utc)
    sync: int
    by: str


@frozen
class RecordState:
    """A record and its history: one version per change, oldest first."""

    source: str
    key: str
    contact_id: str
    versions: tuple[RecordVersion, ...] = field(converter=to_tuple, repr=False)

    @property
    def current(self) -> RecordVersion:
        return self.versions[-1]

    @property
    def id(self) -> str:
        return record_id(self.source, self.key)


@frozen
class Membership:
    """A record belonging to a contact from ``since`` until ``until``."""

    record: str
    since: datetime = field(converter=utc)
    until: datetime | None = field(default=None, converter=utc_or_none)

    def active_at(self, at: datetime) -> bool:
        return self.since <= at and (self.until is None or at < self.until)


@frozen
class Redirect:
    """From ``since`` until ``until``, this contact id answers as contact ``into`` (a link)."""

    into: str
    since: datetime = field(converter=utc)
    until: datetime | None = field(default=None, converter=utc_or_none)

    def active_at(self, at: datetime | None) -> bool:
        if at is None:
            return self.until is None
        return self.since <= at and (self.until is None or at < self.until)


@frozen
class ContactEntry:
    """A person in the book: the records that make them up, and links, over time."""

    id: str
    members: tuple[Membership, ...] = field(converter=to_tuple)
    redirects: tuple[Redirect, ...] = field(default=(), converter=to_tuple)

    def close_redirects(self, at: datetime) -> ContactEntry:
        """This entry with any redirect still open ended at *at*."""
        if all(r.until is not None for r in self.redirects):
            return self
        closed = tuple(attrs.evolve(r, until=at) if r.until is None else r for r in self.redirects)
        return attrs.evolve(self, redirects=closed)


@frozen
class SyncRecord:
    """One applied merge of a source's snapshot.

    ``records``: how many the snapshot held; ``present``: how many of the
    source's records were present (not departed) after it.
    """

    seq: int
    source: str
    kind: SnapshotKind
    extracted_at: datetime = field(converter=utc)
    applied_at: datetime = field(converter=utc)
    by: str
    records: int
    present: int


@frozen
class GroupVersion:
    """A group's definition from ``since``; ``group`` None means removed."""

    name: str
    since: datetime = field(converter=utc)
    group: GroupDefinition | None


@frozen
class Book:
    """The whole reconciled state, with its history.

    Treat it as a value: :func:`sourcetruth.merge` returns a new book and
    never changes the one it was given. ``records`` maps source name to record
    key to :class:`RecordState`; ``contacts`` maps contact id to
    :class:`ContactEntry`; ``overrides`` maps contact id to the overrides in
    force; ``ended_overrides`` maps contact id to those that ended; ``syncs``
    maps source name to its applied syncs, oldest first; ``groups`` maps a
    group name to its versions. ``seq`` counts the merges applied and
    ``updated_at`` is the time of the last: merges go forward in time.

    ``view`` maps contact id to :class:`~sourcetruth.CurrentContact`: the
    current view that :func:`~sourcetruth.merge` keeps, computed under the
    policy and normalisers that ``view_basis`` names (empty: no view). It is
    derived from the rest, so it takes no part in comparing books.
    """

    records: Mapping[str, Mapping[str, RecordState]] = field(factory=dict, repr=False)
    contacts: Mapping[str, ContactEntry] = field(factory=dict, repr=False)
    overrides: Mapping[str, tuple[Override, ...]] = field(factory=dict, repr=False)
    ended_overrides: Mapping[str, tuple[EndedOverride, ...]] = field(factory=dict, repr=False)
    syncs: Mapping[str, tuple[SyncRecord, ...]] = field(factory=dict, repr=False)
    groups: Mapping[str, tuple[GroupVersion, ...]] = field(factory=dict, repr=False)
    seq: int = 0
    updated_at: datetime | None = field(default=None, converter=utc_or_none)
    suppressed: frozenset[str] = field(default=frozenset(), converter=to_frozenset, repr=False)
    suppression_check: str = field(default="", repr=False)
    view: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)
    view_basis: str = field(default="", repr=False, eq=False)


@frozen
class Provenance:
    """Where an effective value came from (rule 8).

    For a source value: the source, the record key, ``since`` (when the record
    version holding it was applied), and the latest sync of that source at the
    time asked about (``read_at``: when it read the data; ``applied_at``: when
    it was applied; ``sync``: its number). For an override: the owning source
    and record, ``since``/``applied_at`` = when the edit was made, ``by`` who.
    """

    kind: ProvenanceKind
    source: str | None = None
    record_key: str | None = None
    since: datetime | None = field(default=None, converter=utc_or_none)
    read_at: datetime | None = field(default=None, converter=utc_or_none)
    applied_at: datetime | None = field(default=None, converter=utc_or_none)
    sync: int | None = None
    by: str | None = None


@frozen
class Contact:
    """A contact's effective state at one time, with provenance per field."""

    id: str
    home: str
    data: ContactData
    provenance: Mapping[str, Provenance] = field(repr=False)
    departed: bool = False
    departed_at: datetime | None = field(default=None, converter=utc_or_none)
    overrides: tuple[Override, ...] = field(default=(), converter=to_tuple, repr=False)


def suppression_check(secret: str) -> str:
    """A keyed hash that tells whether a secret is the one a book's erasures used."""
    return hmac.new(secret.encode(), b"sourcetruth suppression", hashlib.sha256).hexdigest()


def suppression_digest(secret: str, source: str, key: str) -> str:
    """The keyed hash (HMAC-SHA256) that stands for an erased record: not the key itself."""
    message = f"{source}\x00{key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


#: Names that moved to :mod:`sourcetruth.changes`; still importable from here
#: for one release, with a warning.
__getattr__ = moved_names(
    __name__,
    dict.fromkeys(
        (
            "AddressBookRemove",
            "AddressBookSave",
            "ClearOverride",
            "ConfirmSync",
            "Erase",
            "Link",
            "RemoveGroup",
            "SetGroup",
            "SetOverride",
            "Unlink",
        ),
        "sourcetruth.changes",
    ),
)
