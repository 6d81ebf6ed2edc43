"""The current view: every contact as it stands after the book's last merge.

A book is a history, and any question about any time can be answered from
it (:mod:`sourcetruth.effective`). Most questions are about the present,
though, and answering them from history rebuilds each contact from its
records and normalises its addresses again on every read. So
:func:`~sourcetruth.merge` keeps, beside the history, one
:class:`CurrentContact` per contact: its home, whether it departed, its
effective data with each phone number and email address already
normalised, the values planning and groups select on, and for each field
the record version or override its value came from. A merge recomputes only
the entries of the contacts it touched.

The view answers for a time at or after the book's last merge
(``book.updated_at``), while no override in force has reached its
``until`` (:attr:`CurrentContact.valid_until`), and only under a policy
that decides effective data and addresses the way the one it was computed
with did: :func:`view_basis` names that, with the normalisers' versions.
Anything else (a past time, another policy, a new ``phonenumbers`` or
``email-validator`` release) is answered from history, contact by contact,
with the same answer. A merge under another basis drops the view; the
change :class:`~sourcetruth.RefreshView` rebuilds it, once, explicitly.

Provenance is not stored: each field keeps its origin, and
:meth:`CurrentContact.provenance` builds the
:class:`~sourcetruth.Provenance` of one field on demand, naming the latest
sync of its source at the time asked about, exactly as history does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

import email_validator
import phonenumbers
from attrs import field, frozen

from sourcetruth._build import only_fields
from sourcetruth._history import (
    Origin,
    Resolved,
    SourceOrigin,
    SyncsAt,
    origin_provenance,
    resolve_history,
)
from sourcetruth._overlay import Overlay, root_of, touched_keys
from sourcetruth.model import (
    FIELDS,
    Book,
    Contact,
    ContactData,
    Override,
    Provenance,
    RecordState,
    RecordVersion,
    Role,
    data_from,
)
from sourcetruth.normalise import PHONE_RULES, Normalised, normalise_email, normalise_phone
from sourcetruth.policy import Policy

__all__ = [
    "CurrentContact",
    "ViewIndex",
    "build_view",
    "current_entry",
    "entry_holds",
    "view_basis",
    "view_index",
    "view_is_current",
]

#: The index of each field in :attr:`CurrentContact.origins`.
_INDEX: Final = {name: i for i, name in enumerate(FIELDS)}
_EMPTY_VALUES: Final = {name: getattr(ContactData(), name) for name in FIELDS}


@frozen
class CurrentContact:
    """One contact of the current view: what :func:`~sourcetruth.contact_at` would say now.

    ``data`` is the effective data; ``phones`` and ``emails`` hold each of
    ``data.phones`` and ``data.emails`` normalised (E.164, or the address
    with its domain case-folded), None where it does not normalise.
    ``year_group`` and ``registration_group`` are stripped, as rules compare
    them; ``relationships_source`` is the source the relationships came from
    (the pupils they name are keys in it); ``records`` are the ids of the
    records that make up the contact, in the order they joined it.
    ``origins`` holds, per field of :data:`~sourcetruth.FIELDS` in order,
    the record version or override its value came from. ``overrides`` are
    those in force; ``valid_until`` is the earliest ``until`` among them,
    from which this entry no longer holds.
    """

    id: str
    home: str
    data: ContactData = field(repr=False)
    origins: tuple[Origin, ...] = field(repr=False)
    phones: tuple[str | None, ...] = field(repr=False)
    emails: tuple[str | None, ...] = field(repr=False)
    year_group: str = field(repr=False)
    registration_group: str = field(repr=False)
    relationships_source: str | None = field(repr=False)
    records: tuple[str, ...] = field(repr=False)
    overrides: tuple[Override, ...] = field(repr=False)
    departed_at: datetime | None = None
    valid_until: datetime | None = None

    @property
    def departed(self) -> bool:
        return self.departed_at is not None

    @property
    def role(self) -> Role:
        return self.data.role

    def origin(self, field_name: str) -> Origin:
        """The record version or override the value of *field_name* came from (None: default)."""
        return self.origins[_INDEX[field_name]]

    def provenance(
        self, book: Book, field_name: str, at: datetime, syncs_at: SyncsAt | None = None
    ) -> Provenance:
        """Where the value of *field_name* came from, as of *at*, in *book* (which holds this).

        A reader asking about many contacts at one time passes one *syncs_at*
        dict to all its calls, which then look each source's syncs up once.
        """
        return origin_provenance(book, self.origins[_INDEX[field_name]], at, syncs_at)

    def contact(self, book: Book, at: datetime) -> Contact:
        """This entry as the :class:`~sourcetruth.Contact` at *at*, with every provenance."""
        made: dict[int, Provenance] = {}
        provenance = {}
        for name, origin in zip(FIELDS, self.origins, strict=True):
            found = made.get(id(origin))
            if found is None:
                found = made[id(origin)] = origin_provenance(book, origin, at)
            provenance[name] = found
        return Contact(
            id=self.id,
            home=self.home,
            data=self.data,
            provenance=provenance,
            departed=self.departed_at is not None,
            departed_at=self.departed_at,
            overrides=self.overrides,
        )


# -- selecting by index ----------------------------------------------------------------


@runtime_checkable
class ViewIndex(Protocol):
    """A view that finds the entries a rule may select without reading the others.

    A store's view offers it (the embedded store answers from its indexes);
    an in-memory view does not, and is scanned. Both methods may answer more
    than asked, never less: a reader checks every entry given exactly as a
    scan would, so the answer is the scan's. Each also gives every entry
    with a ``valid_until``, whose answer a reader takes from history.
    """

    def select(
        self,
        roles: Iterable[Role],
        year_groups: Iterable[str],
        registration_groups: Iterable[str],
    ) -> Mapping[str, CurrentContact]:
        """The present entries whose role, year and registration group are among those given.

        An empty collection matches anything.
        """

    def naming(self, pupils: Iterable[tuple[str, str]]) -> Mapping[str, CurrentContact]:
        """The entries whose relationships name one of *pupils* (source, key)."""

    def selected_records(
        self,
        roles: Iterable[Role],
        year_groups: Iterable[str],
        registration_groups: Iterable[str],
    ) -> tuple[Mapping[str, list[str]], Mapping[str, CurrentContact]]:
        """:meth:`select`'s answer as the records of each entry, by id, read without the entries.

        Of entries that hold for ever and match exactly; the rest (those
        with a ``valid_until``) come second, as entries, for the reader to check.
        """


class _OverlaidIndex:
    """The index of an overlaid view: its root's answers, less what the overlays deleted,
    with every entry they wrote (each checked by the reader like any other)."""

    def __init__(self, view: Overlay[str, CurrentContact], root: ViewIndex) -> None:
        self._view, self._root = view, root
        self._touched = touched_keys(view)

    def _over(self, found: Iterable[str]) -> dict[str, CurrentContact]:
        view = self._view
        keys = set(found) | self._touched
        return {key: view[key] for key in sorted(keys) if key in view}

    def select(
        self,
        roles: Iterable[Role],
        year_groups: Iterable[str],
        registration_groups: Iterable[str],
    ) -> Mapping[str, CurrentContact]:
        return self._over(self._root.select(roles, year_groups, registration_groups))

    def naming(self, pupils: Iterable[tuple[str, str]]) -> Mapping[str, CurrentContact]:
        return self._over(self._root.naming(pupils))

    def selected_records(
        self,
        roles: Iterable[Role],
        year_groups: Iterable[str],
        registration_groups: Iterable[str],
    ) -> tuple[Mapping[str, list[str]], Mapping[str, CurrentContact]]:
        records, entries = self._root.selected_records(roles, year_groups, registration_groups)
        touched = self._touched
        kept = {key: found for key, found in records.items() if key not in touched}
        return kept, self._over(key for key in entries if key not in touched)


def view_index(view: Mapping[str, CurrentContact]) -> ViewIndex | None:
    """*view* as a :class:`ViewIndex`, if it (or the view its overlays stand on) is one."""
    if isinstance(view, ViewIndex):
        return view
    root = root_of(view)
    if isinstance(view, Overlay) and isinstance(root, ViewIndex):
        return _OverlaidIndex(view, root)
    return None


# -- the basis -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def view_basis(policy: Policy) -> str:
    """What a view computed under *policy* depends on, as a short digest.

    The sources' order and what each covers (which value wins), the regions
    (how phone numbers normalise), the phone rules of this library and the
    versions of ``phonenumbers`` and ``email-validator``. Two policies with
    the same basis give the same view.
    """
    parts = [
        "view 1",
        policy.default_region,
        PHONE_RULES,
        phonenumbers.__version__,
        email_validator.__version__,
    ]
    parts += [
        f"{name}={','.join(sorted(policy.source(name).covers))}"
        + ("" if policy.source(name).region is None else f" region={policy.source(name).region}")
        for name in policy.order
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


#: Set by tests to answer every read from history, for comparing the two paths.
_HISTORY_ONLY: ContextVar[bool] = ContextVar("sourcetruth_history_only", default=False)


@contextmanager
def _history_only() -> Iterator[None]:
    """Within the block, readers ignore the view and answer from history (for tests)."""
    token = _HISTORY_ONLY.set(True)
    try:
        yield
    finally:
        _HISTORY_ONLY.reset(token)


def view_is_current(book: Book, policy: Policy, at: datetime) -> bool:
    """Whether *book*'s view answers for *at* under *policy* (each entry up to ``valid_until``)."""
    return (
        bool(book.view_basis)
        and book.updated_at is not None
        and at >= book.updated_at
        and book.view_basis == view_basis(policy)
        and not _HISTORY_ONLY.get()
    )


def entry_holds(entry: CurrentContact, at: datetime) -> bool:
    """Whether *entry*, from a view that is current, still holds at *at*."""
    return entry.valid_until is None or at < entry.valid_until


# -- building entries ------------------------------------------------------------------

#: Addresses normalised during one merge, by the id of the tuple of phones or
#: emails they belong to; each value keeps that tuple, so the id stays its own.
Checked = dict[int, tuple[tuple[Any, ...], tuple[str | None, ...]]]


def check_addresses(
    checked: Checked, data: ContactData, region: str
) -> tuple[tuple[Normalised, ...], tuple[Normalised, ...]]:
    """Normalise *data*'s phones and emails, noting the results in *checked* for the view."""
    # Once per record of an initial sync: no generator, and nothing noted for no values.
    phones: tuple[Normalised, ...] = ()
    emails: tuple[Normalised, ...] = ()
    if data.phones:
        phones = tuple([normalise_phone(p.number, region) for p in data.phones])
        checked[id(data.phones)] = (data.phones, tuple([n.value for n in phones]))
    if data.emails:
        emails = tuple([normalise_email(e.address) for e in data.emails])
        checked[id(data.emails)] = (data.emails, tuple([n.value for n in emails]))
    return phones, emails


def _normalised(
    values: tuple[Any, ...],
    previous: tuple[tuple[Any, ...], tuple[str | None, ...]] | None,
    checked: Checked | None,
    normalise: Any,
) -> tuple[str | None, ...]:
    if not values:
        return ()
    if previous is not None and (previous[0] is values or previous[0] == values):
        return previous[1]
    if checked is not None:
        noted = checked.get(id(values))
        if noted is not None and noted[0] is values:
            return noted[1]
    return tuple(normalise(v) for v in values)


@lru_cache(maxsize=16)
def _phone_value(region: str) -> Any:
    return lambda phone: normalise_phone(phone.number, region).value


def _phones_in(
    entry: CurrentContact, region: str, policy: Policy
) -> tuple[tuple[Any, ...], tuple[str | None, ...]] | None:
    """*entry*'s phones normalised, if in *region*: the same numbers from a feed of another
    country's source may read otherwise."""
    origin = entry.origin("phones")
    if policy.region_of(None if origin is None else origin.source) != region:
        return None
    return entry.data.phones, entry.phones


def _email_value(email: Any) -> str | None:
    return normalise_email(email.address).value


def _entry(
    book: Book,
    contact_id: str,
    resolved: Resolved,
    policy: Policy,
    at: datetime,
    checked: Checked | None,
    previous: CurrentContact | None,
) -> CurrentContact:
    home, home_version, parts, origins, sources, active = resolved
    whole = sources == 1 and len(parts) == len(FIELDS) and not active
    data = parts[FIELDS[0]] if whole else data_from(parts)
    departed = home_version.data is None
    phones_from = origins.get("phones")
    region = policy.region_of(None if phones_from is None else phones_from.source)
    rel = origins.get("relationships")
    until = [o.until for o in active if o.until is not None]
    return CurrentContact(
        id=contact_id,
        home=home.id,
        data=data,
        origins=tuple(origins.get(name) for name in FIELDS),
        phones=_normalised(
            data.phones,
            None if previous is None else _phones_in(previous, region, policy),
            checked,
            _phone_value(region),
        ),
        emails=_normalised(
            data.emails,
            None if previous is None else (previous.data.emails, previous.emails),
            checked,
            _email_value,
        ),
        year_group=data.year_group.strip(),
        registration_group=data.registration_group.strip(),
        relationships_source=None if rel is None else rel.source,
        records=_records(book, contact_id, at),
        overrides=tuple(active),
        departed_at=home_version.applied_at if departed else None,
        valid_until=min(until) if until else None,
    )


def _records(book: Book, contact_id: str, at: datetime) -> tuple[str, ...]:
    entry = book.contacts.get(contact_id)
    if entry is None:
        return ()
    return tuple(m.record for m in entry.members if m.active_at(at))


def current_entry(
    book: Book,
    contact_id: str,
    policy: Policy,
    at: datetime,
    *,
    checked: Checked | None = None,
    previous: CurrentContact | None = None,
) -> CurrentContact | None:
    """The entry of *contact_id* at *at*, read from history; None if it did not exist then.

    *checked* holds addresses a merge has just normalised, and *previous*
    the contact's entry before it, whose normalised addresses are kept for
    unchanged phones and emails.
    """
    resolved = resolve_history(book, contact_id, policy, at)
    if resolved is None:
        return None
    return _entry(book, contact_id, resolved, policy, at, checked, previous)


class Coverage(NamedTuple):
    """What a source covers: the fields, whether it covers each of FIELDS in order, the rest."""

    names: tuple[str, ...]
    covered: tuple[bool, ...]
    uncovered: tuple[str, ...]


def coverage(policy: Policy, source: str) -> Coverage:
    """What *source* covers under *policy*; a merge asks once per source, not per contact."""
    covers = policy.source(source).covers
    return Coverage(
        tuple(n for n in FIELDS if n in covers),
        tuple(n in covers for n in FIELDS),
        tuple(n for n in FIELDS if n not in covers),
    )


def fresh_entry(
    state: RecordState,
    version: RecordVersion,
    policy: Policy,
    checked: Checked | None,
    covers: Coverage | None = None,
    origin: SourceOrigin | None = None,
) -> CurrentContact:
    """The entry of a contact made of one new record with data, no link and no override.

    Every contact of an initial sync is one: its values are that record's.
    *covers* is :func:`coverage` of its source and *origin* the record
    version's, when the caller has them already.
    """
    data = version.data
    assert data is not None
    source = state.source
    _, covered, uncovered = coverage(policy, source) if covers is None else covers
    if origin is None:
        origin = SourceOrigin(source, state.key, version, None)
    for name in uncovered:
        if getattr(data, name) != _EMPTY_VALUES[name]:
            data = only_fields(data, covered)
            break
    # else the record's own data is the effective data: one object fewer per contact
    rid = state.id
    return CurrentContact(
        id=rid,
        home=rid,
        data=data,
        origins=tuple([origin if kept else None for kept in covered]),
        phones=_normalised(data.phones, None, checked, _phone_value(policy.region_of(source))),
        emails=_normalised(data.emails, None, checked, _email_value),
        year_group=data.year_group.strip(),
        registration_group=data.registration_group.strip(),
        relationships_source=source if covered[_INDEX["relationships"]] else None,
        records=(rid,),
        overrides=(),
        departed_at=None,
        valid_until=None,
    )


def build_view(book: Book, policy: Policy) -> Mapping[str, CurrentContact]:
    """The whole view of *book* as of its last merge, from history."""
    at = book.updated_at
    if at is None:
        return {}
    view = {}
    for cid in sorted(book.contacts):
        entry = current_entry(book, cid, policy, at)
        if entry is not None:
            view[cid] = entry
    return view
