"""The current view in a database: one row per contact, indexed by what rules select on.

A loaded book's view (:class:`ViewTable`) reads the ``current`` table of the
book's snapshot lazily, like the other maps, and decodes each row by hand
(:func:`decode`) rather than through the converter: planning a message to
every guardian of a large school decodes hundreds of thousands of entries.
A row is a JSON list (:func:`encode`); a field's origin keeps the stamp of
its record version (when it was applied and read, by which merge and whom),
which is all a provenance needs, and not the version's data.

The table has the columns rules select on (``role``, ``year_group`` and
``registration_group``, stripped as the view holds them, each indexed), and
``current_links`` names, per relationship of a guardian, the pupil's source
and key: "parents of year 9" reads the year 9 pupils by index, then the
guardians whose links name them. :meth:`ViewTable.select` and
:meth:`ViewTable.naming` give candidate ids; the reader checks each entry as
it would in a scan, so both ways give the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from json.scanner import make_scanner
from typing import Any, Final, cast

from sourcetruth._build import contact_data
from sourcetruth._history import SourceOrigin
from sourcetruth._overlay import changed_keys, root_of
from sourcetruth.adapters.stores._rows import SQLITE, Dialect, Snapshot, Table
from sourcetruth.exceptions import ConflictError, SourceDataError
from sourcetruth.model import (
    Book,
    Email,
    EmailType,
    Override,
    Phone,
    PhoneType,
    RecordVersion,
    Relationship,
    Role,
)
from sourcetruth.serialise import converter
from sourcetruth.view import CurrentContact

__all__ = [
    "EXPIRING_SQL",
    "RECORDS_AT",
    "VIEW_SCHEMA",
    "ViewTable",
    "decode",
    "encode",
    "naming_sql",
    "records_sql",
    "selection_sql",
    "write_view",
]

VIEW_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS current (
    contact_id TEXT PRIMARY KEY,
    departed INTEGER NOT NULL,
    role TEXT NOT NULL,
    year_group TEXT NOT NULL,
    registration_group TEXT NOT NULL,
    expires INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS current_by_role ON current (role);
CREATE INDEX IF NOT EXISTS current_by_year_group ON current (year_group);
CREATE INDEX IF NOT EXISTS current_by_registration_group ON current (registration_group);
CREATE INDEX IF NOT EXISTS current_expiring ON current (expires) WHERE expires;
CREATE TABLE IF NOT EXISTS current_links (
    source TEXT NOT NULL, pupil TEXT NOT NULL, contact_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS current_links_by_pupil ON current_links (source, pupil);
CREATE INDEX IF NOT EXISTS current_links_by_contact ON current_links (contact_id);
"""

_ROLES: Final = {r.value: r for r in Role}
_PHONE_TYPES: Final = {t.value: t for t in PhoneType}
_EMAIL_TYPES: Final = {t.value: t for t in EmailType}
_new = object.__new__
_set = object.__setattr__


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _origins(entry: CurrentContact) -> tuple[list[Any], list[int]]:
    """The distinct origins of *entry* (a source's stamp, or an override by index), per field."""
    distinct: list[Any] = []
    seen: dict[int, int] = {}
    fields: list[int] = []
    for origin in entry.origins:
        if origin is None:
            fields.append(-1)
            continue
        found = seen.get(id(origin))
        if found is None:
            if isinstance(origin, SourceOrigin):
                v = origin.version
                made: Any = [
                    origin.source,
                    origin.key,
                    v.applied_at.isoformat(),
                    v.extracted_at.isoformat(),
                    v.sync,
                    v.by,
                    origin.before,
                ]
            else:
                made = entry.overrides.index(origin)
            found = seen[id(origin)] = len(distinct)
            distinct.append(made)
        fields.append(found)
    return distinct, fields


def encode(entry: CurrentContact) -> str:
    """*entry* as the ``data`` of its row: a JSON list (see :func:`decode`)."""
    data = entry.data
    distinct, fields = _origins(entry)
    row = [
        entry.home,
        data.given_name,
        data.family_name,
        data.role.value,
        [[p.number, p.type.value] for p in data.phones],
        [[e.address, e.type.value] for e in data.emails],
        [
            [r.pupil, r.priority, r.parental_responsibility, r.receives_messages]
            for r in data.relationships
        ],
        data.year_group,
        data.registration_group,
        list(entry.phones),
        list(entry.emails),
        entry.relationships_source,
        list(entry.records),
        converter.unstructure(entry.overrides) if entry.overrides else 0,
        distinct,
        fields,
        _time(entry.departed_at),
        _time(entry.valid_until),
    ]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def _phone(number: str, kind: str) -> Phone:
    made: Phone = _new(Phone)
    _set(made, "number", number)
    _set(made, "type", _PHONE_TYPES[kind])
    return made


def _email(address: str, kind: str) -> Email:
    made: Email = _new(Email)
    _set(made, "address", address)
    _set(made, "type", _EMAIL_TYPES[kind])
    return made


def _relationship(pupil: str, priority: int, responsible: bool, receives: bool) -> Relationship:
    made: Relationship = _new(Relationship)
    _set(made, "pupil", pupil)
    _set(made, "priority", priority)
    _set(made, "parental_responsibility", responsible)
    _set(made, "receives_messages", receives)
    return made


#: Stamps already made, by their values (see :func:`decode`).
Stamps = dict[tuple[str, str, int, str], RecordVersion]


def _stamp(stamps: Stamps, applied: str, extracted: str, sync: int, by: str) -> RecordVersion:
    """A record version's stamp: what a provenance names, without the version's data."""
    key = (applied, extracted, sync, by)
    found = stamps.get(key)
    if found is not None:
        return found
    made: RecordVersion = _new(RecordVersion)
    _set(made, "data", None)
    _set(made, "applied_at", datetime.fromisoformat(applied))
    _set(made, "extracted_at", datetime.fromisoformat(extracted))
    _set(made, "sync", sync)
    _set(made, "by", by)
    stamps[key] = made
    return made


_fromiso = datetime.fromisoformat

#: The JSON scanner under ``json.loads``, called without its wrappers: a plan of every
#: guardian decodes a row per person, and they are a third of ``json.loads``' time.
_scan_json = make_scanner(cast(Any, json.JSONDecoder()))


def _parsed(text: str) -> Any:
    """``json.loads(text)`` of a row this module wrote (no surrounding whitespace)."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        msg = "not JSON"
        raise ValueError(msg) from None
    if end != len(text):
        msg = "more than one JSON value"
        raise ValueError(msg)
    return value


def decode(contact_id: str, text: str, stamps: Stamps | None = None) -> CurrentContact:
    """The entry *text* encodes (the validators ran when its values were first made).

    *stamps* holds the stamps decoded before, to share: the entries one sync
    made all name its one stamp, and a frozen value may be shared, so a read
    of many entries parses each distinct stamp's times once.
    """
    if stamps is None:
        stamps = {}
    (
        home,
        given,
        family,
        role,
        phones,
        emails,
        relationships,
        year_group,
        registration_group,
        normal_phones,
        normal_emails,
        relationships_source,
        records,
        overrides_raw,
        distinct,
        fields,
        departed_at,
        valid_until,
    ) = _parsed(text)
    data = contact_data(
        given,
        family,
        _ROLES[role],
        tuple([_phone(*p) for p in phones]) if phones else (),
        tuple([_email(*e) for e in emails]) if emails else (),
        tuple([_relationship(*r) for r in relationships]),
        year_group,
        registration_group,
    )
    overrides: tuple[Override, ...] = (
        converter.structure(overrides_raw, tuple[Override, ...]) if overrides_raw else ()
    )
    made = [
        overrides[o]
        if isinstance(o, int)
        else _source_origin((o[0], o[1], _stamp(stamps, o[2], o[3], o[4], o[5]), o[6]))
        for o in distinct
    ]
    entry: CurrentContact = _new(CurrentContact)
    _entry_id(entry, contact_id)
    _entry_home(entry, home)
    _entry_data(entry, data)
    _entry_origins(entry, tuple([None if i < 0 else made[i] for i in fields]))
    _entry_phones(entry, tuple(normal_phones))
    _entry_emails(entry, tuple(normal_emails))
    _entry_year(entry, year_group.strip())
    _entry_registration(entry, registration_group.strip())
    _entry_source(entry, relationships_source)
    _entry_records(entry, tuple(records))
    _entry_overrides(entry, overrides)
    _entry_departed(entry, None if departed_at is None else _fromiso(departed_at))
    _entry_until(entry, None if valid_until is None else _fromiso(valid_until))
    return entry


def _setter(name: str) -> Any:
    # The slot's own descriptor: no attribute lookup by name, no frozen check.
    return CurrentContact.__dict__[name].__set__


_entry_id: Final = _setter("id")
_entry_home: Final = _setter("home")
_entry_data: Final = _setter("data")
_entry_origins: Final = _setter("origins")
_entry_phones: Final = _setter("phones")
_entry_emails: Final = _setter("emails")
_entry_year: Final = _setter("year_group")
_entry_registration: Final = _setter("registration_group")
_entry_source: Final = _setter("relationships_source")
_entry_records: Final = _setter("records")
_entry_overrides: Final = _setter("overrides")
_entry_departed: Final = _setter("departed_at")
_entry_until: Final = _setter("valid_until")
#: A SourceOrigin from its four values, without its class's Python-level __new__.
_source_origin: Final = partial(tuple.__new__, SourceOrigin)


#: The columns a selection reads by their indexes.
_SELECTABLE: Final = ("role", "year_group", "registration_group")

#: Pupils looked up per query when finding the guardians who name them.
_CHUNK: Final = 400

#: The rows whose entry holds only until an override's ``until`` (SQLite's query).
EXPIRING_SQL: Final = SQLITE.expiring


def selection_sql(
    roles: Iterable[Role], year_groups: Iterable[str], registration_groups: Iterable[str]
) -> tuple[str, tuple[str, ...]]:
    """The query of :meth:`ViewTable.select`, and its arguments."""
    where, args = _selecting(roles, year_groups, registration_groups)
    return f"SELECT contact_id, data FROM current WHERE {where}", args


#: Where :func:`encode` puts an entry's records in its row.
RECORDS_AT: Final = 12


def records_sql(
    roles: Iterable[Role],
    year_groups: Iterable[str],
    registration_groups: Iterable[str],
    dialect: Dialect = SQLITE,
) -> tuple[str, tuple[str, ...]]:
    """The query of :meth:`ViewTable.selected_records`, and its arguments.

    The database reads each row's records out of its JSON: no entry is
    decoded in Python. Rows that expire are left to the reader.
    """
    where, args = _selecting(roles, year_groups, registration_groups)
    return dialect.records_of.format(at=RECORDS_AT, where=where), args


def _selecting(
    roles: Iterable[Role], year_groups: Iterable[str], registration_groups: Iterable[str]
) -> tuple[str, tuple[str, ...]]:
    """The condition of a selection, and its arguments."""
    where = ["departed=0"]
    args: list[str] = []
    for column, values in (
        ("role", sorted({r.value for r in roles})),
        ("year_group", sorted(set(year_groups))),
        ("registration_group", sorted(set(registration_groups))),
    ):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    return " AND ".join(where), tuple(args)


def naming_sql(pupils: int) -> str:
    """The query of :meth:`ViewTable.naming` for one source and *pupils* keys in it.

    One source a query: SQLite searches ``current_links_by_pupil`` for
    ``source=? AND pupil IN (...)``, where a row value ``IN (VALUES ...)`` scans.
    """
    keys = ",".join("?" * pupils)
    return (
        "SELECT contact_id, data FROM current WHERE contact_id IN ("
        f"SELECT contact_id FROM current_links WHERE source=? AND pupil IN ({keys}))"
    )


class ViewTable(Table[CurrentContact]):
    """The ``current`` table of a snapshot: the book's view, read and decoded a row at a time."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot, "current", "contact_id", CurrentContact)
        self._stale = False
        self._stamps: Stamps = {}

    def rewritten(self, keys: Iterable[str]) -> None:
        """A commit rewrote the table (now holding *keys*): this one must not read the new rows.

        An empty table stays empty (the new keys are hidden from it); any
        other reads only what it kept, and raises on anything else.
        """
        if len(self) == 0:
            self.moved(list(keys), [])
        else:
            self._stale = True

    def _check(self) -> None:
        if self._stale:
            msg = (
                f"this book's view was loaded from {self.snapshot.name} before a later "
                "change rebuilt it: load it again"
            )
            raise ConflictError(msg)

    def __getitem__(self, key: str) -> CurrentContact:
        found: CurrentContact | None = self._cache.get(key)
        if found is not None:
            return found
        self._check()
        return super().__getitem__(key)

    def __len__(self) -> int:
        if self._length is None:
            self._check()
        return super().__len__()

    def __bool__(self) -> bool:
        self._check()
        return super().__bool__()

    def __iter__(self) -> Iterator[str]:
        self._check()
        return super().__iter__()

    def iter_items(self) -> Iterator[tuple[str, CurrentContact]]:
        self._check()
        return super().iter_items()

    def _structured(self, key: str, text: str) -> CurrentContact:
        try:
            value = decode(key, text, self._stamps)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            name = self.snapshot.name
            msg = f"the book in {name} cannot be read: {type(error).__name__}"
            raise SourceDataError(msg, file=name) from None
        kept: CurrentContact = self._cache.setdefault(key, value)
        return kept

    def _decoded(self, rows: Iterable[tuple[str, str]]) -> dict[str, CurrentContact]:
        found = {}
        for key, text in rows:
            if key in self._hidden:
                continue
            kept = self._cache.get(key)
            found[key] = kept if kept is not None else self._structured(key, text)
        return found

    def select(
        self,
        roles: Iterable[Role],
        year_groups: Iterable[str],
        registration_groups: Iterable[str],
    ) -> dict[str, CurrentContact]:
        """The present entries whose role, year and registration group are among those given.

        An empty collection matches anything; read by the columns' indexes,
        not a scan. With every entry whose time runs out (which a reader must
        check again): the caller tests each as a scan would.
        """
        self._check()
        sql, args = selection_sql(roles, year_groups, registration_groups)
        found = self._decoded(self.snapshot.rows(sql, args))
        return found | self._expiring() | self._extras()

    def held_values(self, column: str) -> list[str]:
        """The values of *column* (``role``, ``year_group``, ``registration_group``) held now.

        Each distinct value found by a seek in the column's index (a loose
        index scan), then kept if a present entry holds it: a few reads per
        value, whatever the number of rows. An empty value is no value.
        """
        if column not in _SELECTABLE:
            msg = f"not a column of the view's selections: {column!r}"
            raise ValueError(msg)
        self._check()
        distinct = self.snapshot.rows(
            f"WITH RECURSIVE v(x) AS (SELECT min({column}) FROM current UNION ALL "
            f"SELECT (SELECT min({column}) FROM current WHERE {column} > v.x) FROM v "
            "WHERE v.x IS NOT NULL) SELECT x FROM v WHERE x IS NOT NULL AND x != ''"
        )
        present = f"SELECT 1 FROM current WHERE {column}=? AND departed=0 LIMIT 1"
        return [x for (x,) in distinct if self.snapshot.one(present, (x,)) is not None]

    def selected_records(
        self,
        roles: Iterable[Role],
        year_groups: Iterable[str],
        registration_groups: Iterable[str],
    ) -> tuple[dict[str, list[str]], dict[str, CurrentContact]]:
        """The records of the entries :meth:`select` gives, by contact id, without decoding them.

        Only of entries that hold for ever; those whose time runs out come
        second, as entries, for the reader to check as a scan would.
        """
        self._check()
        if self._moved:
            # A later commit's rows are not this book's: the entries it kept are.
            return {}, self.select(roles, year_groups, registration_groups)
        sql, args = records_sql(roles, year_groups, registration_groups, self.snapshot.dialect)
        records: dict[str, list[str]] = {}
        for key, record in self.snapshot.rows(sql, args):
            found = records.get(key)
            if found is None:
                records[key] = [record]
            else:
                found.append(record)
        return records, self._expiring()

    def naming(self, pupils: Iterable[tuple[str, str]]) -> dict[str, CurrentContact]:
        """The entries whose relationships name one of *pupils* (source, key), and the expiring."""
        self._check()
        by_source: dict[str, set[str]] = {}
        for source, key in pupils:
            by_source.setdefault(source, set()).add(key)
        found: dict[str, CurrentContact] = {}
        for source, keys in sorted(by_source.items()):
            ordered = sorted(keys)
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                sql = naming_sql(len(chunk))
                found |= self._decoded(self.snapshot.rows(sql, (source, *chunk)))
        return found | self._expiring() | self._extras()

    def _expiring(self) -> dict[str, CurrentContact]:
        # By the partial index on expires: a handful of rows, whatever the book's size.
        return self._decoded(self.snapshot.rows(self.snapshot.dialect.expiring))

    def _extras(self) -> dict[str, CurrentContact]:
        # After a commit moved the snapshot on, rows it added are not this book's:
        # nothing to add back, as the table keeps every value it answered already.
        return {key: self[key] for key in sorted(self._extra)}


def _row(cid: str, entry: CurrentContact) -> tuple[Any, ...]:
    return (
        cid,
        int(entry.departed_at is not None),
        entry.data.role.value,
        entry.year_group,
        entry.registration_group,
        int(entry.valid_until is not None),
        encode(entry),
    )


def _links(cid: str, entry: CurrentContact) -> list[tuple[str, str, str]]:
    source = entry.relationships_source
    if source is None:
        return []
    return sorted({(source, r.pupil, cid) for r in entry.data.relationships})


Execute = Callable[[str, tuple[Any, ...]], Any]

#: The columns of ``current``, in the order :func:`_row` gives them.
_CURRENT: Final = (
    "contact_id",
    "departed",
    "role",
    "year_group",
    "registration_group",
    "expires",
    "data",
)
_INSERT_CURRENT: Final = (
    f"INSERT INTO current ({', '.join(_CURRENT)}) VALUES ({', '.join('?' * len(_CURRENT))})"
)
_INSERT_LINK: Final = "INSERT INTO current_links (source, pupil, contact_id) VALUES (?, ?, ?)"


def write_view(
    execute: Execute, before: Book, after: Book, dialect: Dialect = SQLITE
) -> tuple[list[str], list[str]] | None:
    """Write *after*'s view over *before*'s; the keys written and deleted, or None if rewritten.

    The rows of the entries that changed, when the view was kept (the same
    basis, made from *before*'s by overlays); else the whole table again,
    or nothing when *after* has no view.
    """
    old, new = before.view, after.view
    if (
        before.view_basis
        and before.view_basis == after.view_basis
        and root_of(old) is root_of(new)
        and isinstance(root_of(new), ViewTable)
    ):
        write, gone = changed_keys(old, new)
        for cid in gone:
            execute("DELETE FROM current WHERE contact_id=?", (cid,))
            execute("DELETE FROM current_links WHERE contact_id=?", (cid,))
        upsert = dialect.upsert("current", _CURRENT, ("contact_id",))
        for cid in write:
            entry = new[cid]
            execute(upsert, _row(cid, entry))
            execute("DELETE FROM current_links WHERE contact_id=?", (cid,))
            for link in _links(cid, entry):
                execute(_INSERT_LINK, link)
        return write, gone
    if before.view_basis:
        execute("DELETE FROM current", ())
        execute("DELETE FROM current_links", ())
    basis = after.view_basis
    if basis:
        for cid, entry in _sorted_items(new):
            execute(_INSERT_CURRENT, _row(cid, entry))
            for link in _links(cid, entry):
                execute(_INSERT_LINK, link)
    execute(dialect.upsert("meta", ("name", "value"), ("name",)), ("view_basis", basis))
    return None


def _sorted_items(view: Mapping[str, CurrentContact]) -> list[tuple[str, CurrentContact]]:
    iter_items = getattr(view, "iter_items", None)
    items = list(iter_items() if iter_items is not None else view.items())
    items.sort(key=lambda item: item[0])
    return items
