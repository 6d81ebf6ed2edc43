"""A reference adapter for the conformance kit's own tests: three XML files, no tables.

A made-up MIS, "Greenfield", exports its people in three UTF-8 XML files:

- ``people.xml``: ``<person id=".." role="pupil|guardian|staff">`` holding
  ``<given>``, ``<family>``, ``<year>`` and ``<form>``;
- ``contacts.xml``: ``<contact person="..">`` holding repeated
  ``<phone type="mobile|home|work">`` and ``<email type="home|work">``;
- ``links.xml``: ``<guardian id="..">`` holding repeated
  ``<pupil id=".." priority="1"/>``.

It is small and correct, and passes the kit; ``tests/test_kit_catches_planted_bugs.py``
plants one bug at a time in a subclass and checks that the kit fails it.
Each step an integrator gets wrong is one method here, so that a planted
bug overrides one method.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from attrs import define, field

from sourcetruth import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Snapshot,
    SnapshotKind,
    SourceKind,
)
from sourcetruth.adapters import Notice, Reading
from sourcetruth.exceptions import RejectedFileError, SourceDataError

PEOPLE, CONTACTS, LINKS = "people.xml", "contacts.xml", "links.xml"
ROLES = {"pupil": Role.PUPIL, "guardian": Role.GUARDIAN, "staff": Role.STAFF}
PHONE_TYPES = {t.value: t for t in (PhoneType.MOBILE, PhoneType.HOME, PhoneType.WORK)}
EMAIL_TYPES = {t.value: t for t in (EmailType.HOME, EmailType.WORK)}


@define
class Element:
    """One XML element, with the line it starts on."""

    tag: str
    attrs: dict[str, str]
    line: int
    text: str = ""
    children: list[Element] = field(factory=list)

    def child_text(self, tag: str) -> str:
        return next((c.text for c in self.children if c.tag == tag), "")


def parse(data: bytes, *, encoding: str | None = None) -> Element:
    """The root element of *data*, by expat: strict, and UTF-8 unless the file says otherwise."""
    parser = expat.ParserCreate(encoding)
    root = Element("", {}, 0)
    stack = [root]

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = Element(tag, attrs, parser.CurrentLineNumber)
        stack[-1].children.append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def text(value: str) -> None:
        stack[-1].text += value

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(data, True)
    return root.children[0]


@define
class _Read:
    """What one read found: people, their contact points and links, and the problems."""

    people: dict[str, tuple[Element, ContactData]] = field(factory=dict)
    phones: dict[str, list[Phone]] = field(factory=lambda: defaultdict(list))
    emails: dict[str, list[Email]] = field(factory=lambda: defaultdict(list))
    links: dict[str, list[Relationship]] = field(factory=lambda: defaultdict(list))
    problems: list[SourceDataError] = field(factory=list)
    rejected: set[str] = field(factory=set)
    unkeyed: int = 0
    notices: list[Notice] = field(factory=list)

    def problem(self, message: str, file: str, line: int, field: str, key: str | None) -> None:
        self.problems.append(SourceDataError(message, file=file, line=line, field=field))
        if key:
            self.rejected.add(key)
        else:
            self.unkeyed += 1


class GreenfieldAdapter:
    """Reads a Greenfield export: three XML files in one folder."""

    kind = SourceKind.MIS
    covers = frozenset(
        {
            "given_name",
            "family_name",
            "role",
            "phones",
            "emails",
            "relationships",
            "year_group",
            "registration_group",
        }
    )
    supports_delta = False

    def __init__(
        self, folder: Path, *, source: str = "mis", max_reject_fraction: float = 0.0
    ) -> None:
        self.folder = Path(folder)
        self._source = source
        self.max_reject_fraction = max_reject_fraction

    @property
    def source(self) -> str:
        return self._source

    def __repr__(self) -> str:
        return f"GreenfieldAdapter(source={self.source!r})"

    # -- reading --------------------------------------------------------------------

    def read(self, *, extracted_at: datetime) -> Reading:
        found = _Read()
        people = self.root(PEOPLE)
        contacts = self.root(CONTACTS)
        links = self.root(LINKS)
        self.read_people(people, found)
        self.read_contacts(contacts, found)
        self.read_links(links, found)
        self.reject_if_needed(found)
        records = [
            Record(key, self.data(key, data, found))
            for key, (_, data) in sorted(found.people.items())
            if key not in found.rejected
        ]
        notices = found.notices + self.rejection_notices(found)
        partial = bool(found.problems)
        snapshot = Snapshot(
            self.source,
            self.extracted_at(extracted_at),
            records,
            SnapshotKind.DELTA if partial else SnapshotKind.FULL,
        )
        rejected = len(found.rejected) + found.unkeyed
        return Reading(snapshot, notices, rejected)

    def root(self, name: str) -> Element:
        """The root element of file *name*; a typed error naming it when it is not XML."""
        try:
            data = (self.folder / name).read_bytes()
        except OSError as error:
            msg = f"cannot read the file: {error.strerror}"
            raise SourceDataError(msg, file=name) from None
        try:
            return self.parse(data)
        except expat.ExpatError as error:
            raise self.not_xml(name, data, error) from None

    def parse(self, data: bytes) -> Element:
        return parse(data)

    def not_xml(self, name: str, data: bytes, error: expat.ExpatError) -> SourceDataError:
        reason = f"not well-formed UTF-8 XML: {expat.errors.messages[error.code]}"
        return SourceDataError(reason, file=name, line=error.lineno)

    def read_people(self, root: Element, found: _Read) -> None:
        lines: dict[str, list[int]] = defaultdict(list)
        for person in root.children:
            key = person.attrs.get("id", "").strip()
            if not key:
                found.problem("a person with no id", PEOPLE, person.line, "id", None)
                continue
            lines[key].append(person.line)
            role = ROLES.get(person.attrs.get("role", ""))
            if role is None:
                found.problem("a role Greenfield does not have", PEOPLE, person.line, "role", key)
                continue
            data = self.person(person, role)
            if data is not None:
                found.people.setdefault(key, (person, data))
        self.refuse_duplicates(lines, found)

    def person(self, person: Element, role: Role) -> ContactData | None:
        """The person's own fields; None to leave the person out (the reference never does)."""
        return ContactData(
            person.child_text("given"),
            person.child_text("family"),
            role,
            year_group=person.child_text("year"),
            registration_group=person.child_text("form"),
        )

    def refuse_duplicates(self, lines: dict[str, list[int]], found: _Read) -> None:
        for key, at in lines.items():
            if len(at) > 1:
                listed = ", ".join(map(str, at))
                for line in at:
                    msg = f"this id is on several people (lines {listed}); none of them is used"
                    found.problem(msg, PEOPLE, line, "id", key)

    def read_contacts(self, root: Element, found: _Read) -> None:
        for contact in root.children:
            key = contact.attrs.get("person", "").strip()
            if key not in found.people:
                self.unknown(found, CONTACTS, contact, "person", key)
                continue
            for point in contact.children:
                kind = point.attrs.get("type", "")
                if point.tag == "phone" and kind in PHONE_TYPES:
                    found.phones[key].append(Phone(point.text, PHONE_TYPES[kind]))
                elif point.tag == "email" and kind in EMAIL_TYPES:
                    found.emails[key].append(Email(point.text, EMAIL_TYPES[kind]))
                else:
                    msg = "a contact point Greenfield does not have"
                    found.problem(msg, CONTACTS, point.line, point.tag, key)

    def read_links(self, root: Element, found: _Read) -> None:
        for guardian in root.children:
            key = guardian.attrs.get("id", "").strip()
            if key not in found.people:
                self.unknown(found, LINKS, guardian, "id", key)
                continue
            for pupil in guardian.children:
                pupil_key = pupil.attrs.get("id", "").strip()
                priority = self.priority(pupil, key, found)
                if priority is None:
                    continue
                if pupil_key not in found.people:
                    self.unknown_pupil(found, pupil)
                    continue
                found.links[key].append(Relationship(pupil_key, priority))

    def priority(self, pupil: Element, key: str, found: _Read) -> int | None:
        text = pupil.attrs.get("priority", "1")
        if text.isascii() and text.isdigit():
            return int(text)
        found.problem("a priority that is not a whole number", LINKS, pupil.line, "priority", key)
        return None

    def unknown(self, found: _Read, file: str, element: Element, attr: str, key: str) -> None:
        if key in found.rejected or not key:
            return  # its person was rejected, and that is reported already
        msg = f"a {element.tag} for a person {PEOPLE} does not hold; skipped"
        found.notices.append(Notice("unknown-person", msg, file, element.line, attr))

    def unknown_pupil(self, found: _Read, pupil: Element) -> None:
        msg = f"a link to a pupil {PEOPLE} does not hold; skipped"
        found.notices.append(Notice("unknown-pupil", msg, LINKS, pupil.line, "id"))

    def reject_if_needed(self, found: _Read) -> None:
        bad = len(found.rejected) + found.unkeyed
        total = len(set(found.people) | found.rejected) + found.unkeyed
        if bad and (bad >= total or bad > self.max_reject_fraction * total):
            file = found.problems[0].file
            msg = f"{bad} of {total} people rejected; nothing from this export was applied"
            raise RejectedFileError(msg, found.problems, file=file)

    def rejection_notices(self, found: _Read) -> list[Notice]:
        """Each problem of a partial read, as a notice: rejected is never silent."""
        return [Notice("rejected", p.reason, p.file, p.line, p.field) for p in found.problems]

    def data(self, key: str, data: ContactData, found: _Read) -> ContactData:
        return ContactData(
            data.given_name,
            data.family_name,
            data.role,
            phones=found.phones.get(key, ()),
            emails=found.emails.get(key, ()),
            relationships=self.in_order(found.links.get(key, [])),
            year_group=data.year_group,
            registration_group=data.registration_group,
        )

    def in_order(self, links: list[Relationship]) -> tuple[Relationship, ...]:
        """A guardian's links by pupil key: their order in the file means nothing."""
        return tuple(sorted(links, key=lambda r: r.pupil))

    def extracted_at(self, given: datetime) -> datetime:
        return given


# -- the format's writer, for the kit ------------------------------------------------------


def _elements(tag: str, items: Iterator[str]) -> str:
    body = "".join(items)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag}>\n{body}</{tag}>\n'


def write_export(snapshot: Snapshot, folder: Path) -> None:
    """Write *snapshot* as a Greenfield export, in the snapshot's order, every record written.

    The order of records and of each person's phones, emails and links is
    the snapshot's, so that the kit can check the reader ignores what the
    format leaves unordered.
    """
    names = {role: name for name, role in ROLES.items()}

    def person(r: Record) -> str:
        d = r.data
        role = quoteattr(names.get(d.role, "other"))
        fields = [("given", d.given_name), ("family", d.family_name)]
        fields += [("year", d.year_group), ("form", d.registration_group)]
        inner = "".join(f"    <{t}>{escape(v)}</{t}>\n" for t, v in fields if v)
        return f"  <person id={quoteattr(r.key)} role={role}>\n{inner}  </person>\n"

    def contact(r: Record) -> str:
        points = [
            f"    <phone type={quoteattr(p.type.value)}>{escape(p.number)}</phone>\n"
            for p in r.data.phones
        ] + [
            f"    <email type={quoteattr(e.type.value)}>{escape(e.address)}</email>\n"
            for e in r.data.emails
        ]
        return f"  <contact person={quoteattr(r.key)}>\n{''.join(points)}  </contact>\n"

    def links(r: Record) -> str:
        pupils = "".join(
            f'    <pupil id={quoteattr(rel.pupil)} priority="{rel.priority}"/>\n'
            for rel in r.data.relationships
        )
        return f"  <guardian id={quoteattr(r.key)}>\n{pupils}  </guardian>\n"

    records = list(snapshot.records)
    files = {
        PEOPLE: _elements("people", (person(r) for r in records)),
        CONTACTS: _elements(
            "contacts", (contact(r) for r in records if r.data.phones or r.data.emails)
        ),
        LINKS: _elements("links", (links(r) for r in records if r.data.relationships)),
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
