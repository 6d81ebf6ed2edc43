"""A whole source adapter for a made-up MIS that exports one pipe-separated file."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

from sourcetruth import ContactData, Email, Phone, Record, Role, Snapshot, SnapshotKind, SourceKind
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

    def __init__(self, folder: Path, *, source: str = "mis", max_reject_fraction: float = 0.0):
        self.path, self.source = Path(folder) / "people.txt", source
        self.max_reject_fraction = max_reject_fraction

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
        cells = {row.line: dict(zip(table.header, row.cells, strict=False)) for row in table.rows}
        lines_of = defaultdict(list)
        for line, cell in cells.items():
            lines_of[cell["id"]].append(line)
        problems = list(table.problems)
        for key, lines in lines_of.items():  # no id, or one id on two rows: no row is used
            reason = "a row with no id" if not key else "an id on several rows"
            if not key or len(lines) > 1:
                problems += [SourceDataError(reason, file=table.file, line=n, field="id")
                             for n in lines]
        reject_if_needed(problems, rows=len(table.rows) + table.rejected,
                         file=table.file, max_fraction=self.max_reject_fraction)
        bad = {p.line for p in problems}
        # Rejected is never silent: each problem is a notice, and the snapshot a
        # delta, so that nobody departs because their row could not be read.
        notices = [Notice("row-rejected", p.reason, p.file, p.line, p.field) for p in problems]
        records = []
        for line, cell in cells.items():
            if line in bad:
                continue
            role = ROLES.get(cell["role"])
            if role is None:  # tolerated, but never silently
                notices.append(Notice("unknown-role", "read as other", table.file, line, "role"))
            records.append(Record(cell["id"], ContactData(
                cell["first"], cell["last"], role or Role.OTHER,
                phones=[Phone(cell["mobile"])] if cell["mobile"] else [],
                emails=[Email(cell["email"])] if cell["email"] else [],
            )))
        records.sort(key=lambda r: r.key)  # in key order, whatever the file's
        kind = SnapshotKind.DELTA if bad else SnapshotKind.FULL
        return Reading(Snapshot(self.source, extracted_at, records, kind), notices, len(bad))


def write_people(snapshot: Snapshot, folder: Path) -> None:
    """The format's writer, for the conformance kit: one line per record, in the snapshot's order.

    The kit writes the same people in other orders, and twice under one id:
    a writer that sorted or dropped them would hide what the reader does.
    """
    names = {role: name for name, role in ROLES.items()}
    lines = ["|".join(COLUMNS)]
    for record in snapshot.records:
        d = record.data
        mobile = d.phones[0].number if d.phones else ""
        email = d.emails[0].address if d.emails else ""
        lines.append("|".join((record.key, d.given_name, d.family_name,
                               names.get(d.role, "other"), mobile, email)))
    (folder / "people.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
