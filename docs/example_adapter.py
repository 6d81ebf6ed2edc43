"""A whole source adapter for a made-up MIS that exports one pipe-separated file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sourcetruth import ContactData, Email, Phone, Record, Role, Snapshot, SourceKind
from sourcetruth.adapters import Notice, Reading
from sourcetruth.adapters.sources.text import read_table, reject_if_needed
from sourcetruth.exceptions import AdapterError, RejectedFileError, SourceDataError

COLUMNS = ("id", "first", "last", "role", "mobile", "email")
ROLES = {"pupil": Role.PUPIL, "parent": Role.GUARDIAN, "staff": Role.STAFF}


class HartleyAdapter:
    """Reads ``people.txt``: ``id|first|last|role|mobile|email``, UTF-8, one header line."""

    kind = SourceKind.MIS
    covers = frozenset({"given_name", "family_name", "role", "phones", "emails"})
    supports_delta = False

    def __init__(self, folder: Path, *, source: str = "mis") -> None:
        self.path, self.source = Path(folder) / "people.txt", source

    def read(self, *, extracted_at: datetime) -> Reading:
        try:
            data = self.path.read_bytes()
        except OSError as error:
            raise AdapterError(f"cannot read {self.path.name}: {error.strerror}") from None
        table = read_table(data, file=self.path.name, delimiter="|")
        missing = [c for c in COLUMNS if c not in table.header]
        if missing:  # a wrong header is the whole file's problem, not a row's
            problems = [SourceDataError("missing column", file=table.file, line=1, field=c)
                        for c in missing]
            raise RejectedFileError(f"{table.file}: wrong header", problems, file=table.file)
        reject_if_needed(table.problems, rows=len(table.rows) + table.rejected,
                         file=table.file, max_fraction=0.0)
        records, notices = [], []
        for row in table.rows:
            cell = dict(zip(table.header, row.cells, strict=False))
            role = ROLES.get(cell["role"])
            if role is None:  # tolerated, but never silently
                notices.append(Notice("unknown-role", "read as other", table.file, row.line,
                                      "role", cell["id"]))
            records.append(Record(cell["id"], ContactData(
                cell["first"], cell["last"], role or Role.OTHER,
                phones=[Phone(cell["mobile"])] if cell["mobile"] else [],
                emails=[Email(cell["email"])] if cell["email"] else [],
            )))
        return Reading(Snapshot(self.source, extracted_at, records), notices)


def write_people(snapshot: Snapshot, folder: Path) -> None:
    """The format's writer, for the conformance kit: one line per record."""
    names = {role: name for name, role in ROLES.items()}
    lines = ["|".join(COLUMNS)]
    for record in sorted(snapshot.records, key=lambda r: r.key):
        d = record.data
        mobile = d.phones[0].number if d.phones else ""
        email = d.emails[0].address if d.emails else ""
        lines.append("|".join((record.key, d.given_name, d.family_name,
                               names.get(d.role, "other"), mobile, email)))
    (folder / "people.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
