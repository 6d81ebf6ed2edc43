"""Write ``schema2.sqlite`` and ``schema2.json``: a book as sourcetruth 0.x wrote it (schema 2).

Run once, with the library as it was before schema 3 on the path (the
committed fixture was made so), from this folder::

    python make_schema2_book.py

``schema2.json`` holds what that library answered about the book: every
contact at three times, every field's explanation at the last, the whole
book serialised, and the journal. The upgrade test opens a copy of the file with
today's library and checks each answer is the same. Phone numbers are Ofcom
drama numbers; addresses are ``.test``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sourcetruth import (
    FIELDS,
    AddressBookSave,
    ContactData,
    Email,
    GroupDefinition,
    Link,
    Phone,
    Policy,
    Record,
    Relationship,
    Role,
    Rule,
    SetGroup,
    SetOverride,
    Snapshot,
    Source,
    SourceKind,
    contact_at,
    dumps,
    explain,
)
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.sqlite import SCHEMA_VERSION, SqliteStore

HERE = Path(__file__).resolve().parent
LONDON = ZoneInfo("Europe/London")
POLICY = Policy(
    sources=(
        Source("mis", SourceKind.MIS),
        Source("import", SourceKind.IMPORT, covers=frozenset({"given_name", "phones"})),
    )
)
#: The times the answers are recorded at: after the first sync, after the second, and last.
TIMES = (
    datetime(2026, 11, 23, 3, 0, tzinfo=LONDON),
    datetime(2026, 11, 24, 3, 0, tzinfo=LONDON),
    datetime(2026, 11, 25, 12, 0, tzinfo=LONDON),
)


def pupil(key: str, given: str, year: str) -> Record:
    data = ContactData(given, "Pupil", Role.PUPIL, year_group=year, registration_group=f"{year}A")
    return Record(key, data)


def guardian(key: str, child: str, given: str, mobile: str) -> Record:
    data = ContactData(
        given,
        "Parent",
        Role.GUARDIAN,
        phones=(Phone(mobile),),
        emails=(Email(f"{key.lower()}@parent.test"),),
        relationships=(Relationship(child),),
    )
    return Record(key, data)


def nightly(day: int, records: list[Record]) -> tuple[Snapshot, datetime]:
    at = datetime(2026, 11, day, 2, 0, tzinfo=LONDON)
    return Snapshot("mis", at - timedelta(minutes=5), records), at


def plain(value: object) -> object:
    """*value* as :func:`~sourcetruth.dumps` writes it, as JSON data rather than text."""
    return json.loads(dumps(value))


def main() -> None:
    assert SCHEMA_VERSION == 2, "run this with the library of schema 2"
    book_file = HERE / "schema2.sqlite"
    book_file.unlink(missing_ok=True)
    store = SqliteStore(book_file)
    monday = [
        pupil("P1", "Ada", "7"),
        pupil("P2", "Ben", "9"),
        guardian("G1", "P1", "Gita", "07700 900101"),
        guardian("G2", "P2", "Hal", "07700 900102"),
    ]
    snapshot, at = nightly(23, monday)
    apply(store, snapshot, policy=POLICY, at=at, by="nightly")
    edit = SetOverride("mis:G1", "phones", ContactData(phones=(Phone("07700 900111"),)))
    apply(store, edit, policy=POLICY, at=at + timedelta(hours=7), by="office")
    tuesday = [*monday[:3], guardian("G2", "P2", "Hal", "07700 900122"), pupil("P3", "Cy", "7")]
    snapshot, at = nightly(24, tuesday)
    apply(store, snapshot, policy=POLICY, at=at, by="nightly")
    row = Record("row-1", ContactData("Gita", "Parent", phones=(Phone("01632 960001"),)))
    imported = Snapshot("import", at + timedelta(hours=6), [row])
    apply(store, imported, policy=POLICY, at=at + timedelta(hours=6), by="office")
    link = Link("import:row-1", "mis:G1")
    apply(store, link, policy=POLICY, at=at + timedelta(hours=7), by="office")
    save = AddressBookSave("address-book:aunt", ContactData("Ann", "Aunt", Role.OTHER))
    apply(store, save, policy=POLICY, at=at + timedelta(hours=8), by="office")
    group = SetGroup(GroupDefinition("year 7", rule=Rule(year_groups=frozenset({"7"}))))
    apply(store, group, policy=POLICY, at=at + timedelta(hours=9), by="office")
    book = store.load()
    answers: dict[str, object] = {"book": plain(book), "contacts": {}, "explain": {}}
    for when in TIMES:
        for cid in sorted(book.contacts):
            name = f"{cid} {when.isoformat()}"
            try:
                answers["contacts"][name] = plain(contact_at(book, cid, policy=POLICY, at=when))  # type: ignore[index]
            except LookupError:
                answers["contacts"][name] = None  # type: ignore[index]
                continue
            for field in FIELDS if when == TIMES[-1] else ():
                told = explain(book, cid, field, policy=POLICY, at=when)
                answers["explain"][f"{name} {field}"] = plain(told)  # type: ignore[index]
    answers["journal"] = [plain(run) for run in store.journal()]
    store.close()
    text = json.dumps(answers, sort_keys=True, separators=(",", ":"))
    (HERE / "schema2.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
