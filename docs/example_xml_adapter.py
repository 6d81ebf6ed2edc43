"""A source adapter for a made-up MIS, "Wrenfield", that exports three XML files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

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
    SourceKind,
)
from sourcetruth.adapters import Notice, Reading
from sourcetruth.adapters.sources.markup import Element, Rejections, read_elements

ROLES = {r.value: r for r in (Role.GUARDIAN, Role.STAFF, Role.GOVERNOR, Role.OTHER)}
PHONES = {t.value: t for t in PhoneType}
EMAILS = {t.value: t for t in EmailType}
FLAGS = {"yes": True, "no": False}


class WrenfieldAdapter:
    """Reads ``pupils.xml``, ``contacts.xml`` and ``links.xml`` from one export folder."""

    kind = SourceKind.MIS
    covers = frozenset({"given_name", "family_name", "role", "phones", "emails",
                        "relationships", "year_group", "registration_group"})
    supports_delta = False

    def __init__(self, folder: Path, *, source: str = "mis",
                 max_reject_fraction: float = 0.0) -> None:
        self.folder, self.source = Path(folder), source
        self.max_reject_fraction = max_reject_fraction

    def read(self, *, extracted_at: datetime) -> Reading:
        counter = Rejections(max_fraction=self.max_reject_fraction)
        people = counter.one_each(  # an id on two elements, of one file or two, is neither's
            (element.get("id").strip(), element)
            for name, tag in (("pupils.xml", "pupil"), ("contacts.xml", "contact"))
            for element in counter.count(read_elements(self.folder / name, records={tag}))
        )
        pupils = {key for key, element in people.items() if element.name == "pupil"}
        links, held = self._links(counter, pupils, set(people) - pupils)
        records = []
        for key, element in people.items():
            data = self._person(element, counter, sorted(links.get(key, ()), key=_by_pupil))
            if data is not None and key not in held:
                records.append(Record(key, data))
        notices = []
        if held:  # never half a list of links: the merge would unlink the rest
            msg = f"{len(held)} contacts held back: a rejected link may have been theirs"
            notices.append(Notice("held-back", msg, "links.xml"))
        return counter.reading(self.source, extracted_at, records, notices)

    def _person(self, element: Element, counter: Rejections,
                relationships: list[Relationship]) -> ContactData | None:
        """A pupil's or a contact's data, or None (and the element rejected)."""
        if counter.rejected(element):
            return None
        name = element.first("name")
        role = Role.PUPIL if element.name == "pupil" else ROLES.get(element.get("role"))
        phones, emails = [], []
        for child in element.all("phone"):
            if child.get("type", "mobile") not in PHONES:
                counter.reject(element, "phone", "a phone type the format has not", at=child)
            phones.append(Phone(child.text.strip(), PHONES.get(child.get("type", "mobile"),
                                                               PhoneType.OTHER)))
        for child in element.all("email"):
            if child.get("type", "home") not in EMAILS:
                counter.reject(element, "email", "an email type the format has not", at=child)
            emails.append(Email(child.text.strip(), EMAILS.get(child.get("type", "home"),
                                                               EmailType.OTHER)))
        if name is None:
            counter.reject(element, "name", "no name element")
        if role is None:
            counter.reject(element, "role", "a role the format has not")
        if name is None or role is None or counter.rejected(element):
            return None
        return ContactData(name.get("given"), name.get("family"), role, phones=phones,
                           emails=emails, relationships=relationships,
                           year_group=element.get("year"), registration_group=element.get("form"))

    def _links(self, counter: Rejections, pupils: set[str],
               contacts: set[str]) -> tuple[dict[str, list[Relationship]], set[str]]:
        """Each contact's relationships, and the contacts a rejected link may belong to."""
        found: dict[str, list[Relationship]] = {}
        seen: set[tuple[str, str]] = set()
        held: set[str] = set()
        elements = counter.count(read_elements(self.folder / "links.xml", records={"link"}))
        for link in elements:
            contact, pupil = link.get("contact").strip(), link.get("pupil").strip()
            priority = link.get("priority", "1")
            flags = (link.get("responsible", "yes"), link.get("messages", "yes"))
            for field, bad, reason in (
                ("contact", contact not in contacts, "names no contact of contacts.xml"),
                ("pupil", pupil not in pupils, "names no pupil of pupils.xml"),
                ("priority", not (priority.isascii() and priority.isdigit() and int(priority)),
                 "a priority that is not a whole number from 1"),
                ("responsible", flags[0] not in FLAGS, "responsible is yes or no"),
                ("messages", flags[1] not in FLAGS, "messages is yes or no"),
                ("pupil", (contact, pupil) in seen, "a second link of this contact and pupil"),
            ):
                if bad:
                    counter.reject(link, field, reason)
            seen.add((contact, pupil))
            if counter.rejected(link):  # whose link it was is sure only if it names a contact
                held |= {contact} if contact in contacts else contacts
                continue
            found.setdefault(contact, []).append(Relationship(
                pupil, int(priority), FLAGS[flags[0]], FLAGS[flags[1]]))
        return found, held


def _by_pupil(relationship: Relationship) -> str:
    return relationship.pupil


def write_export(snapshot: Snapshot, folder: Path) -> None:
    """The format's writer, for the kit: everything in the snapshot's own order."""
    files: dict[str, list[str]] = {"pupils": [], "contacts": [], "links": []}
    yes = {True: "yes", False: "no"}
    for record in snapshot.records:
        d = record.data
        inner = [f"    <name given={quoteattr(d.given_name)} family={quoteattr(d.family_name)}/>"]
        inner += [f'    <phone type="{p.type.value}">{escape(p.number)}</phone>' for p in d.phones]
        inner += [f'    <email type="{e.type.value}">{escape(e.address)}</email>'
                  for e in d.emails]
        if d.role is Role.PUPIL:
            files["pupils"].append(f"  <pupil id={quoteattr(record.key)} year="
                                   f"{quoteattr(d.year_group)} form="
                                   f"{quoteattr(d.registration_group)}>")
            files["pupils"] += [*inner, "  </pupil>"]
        else:
            files["contacts"].append(f"  <contact id={quoteattr(record.key)} "
                                     f'role="{d.role.value}">')
            files["contacts"] += [*inner, "  </contact>"]
        files["links"] += [
            f"  <link contact={quoteattr(record.key)} pupil={quoteattr(r.pupil)} "
            f'priority="{r.priority}" responsible="{yes[r.parental_responsibility]}" '
            f'messages="{yes[r.receives_messages]}"/>'
            for r in d.relationships
        ]
    for name, lines in files.items():
        text = "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', f"<{name}>", *lines,
                          f"</{name}>", ""])
        (folder / f"{name}.xml").write_text(text, encoding="utf-8")
