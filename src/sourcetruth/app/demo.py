"""A week at a small school: the eight scenarios of the design, told as they happen.

The week runs on a real book folder, as a school's would: each night's MIS
export is written as a OneRoster bundle and read back through the OneRoster
adapter, the CSV import is a file read through its mapping, the office's
edits are saved into the book, and every message is planned, handed to the
folder's outbox and leaves an audit record. The folder is kept afterwards,
so the ``sourcetruth`` command can explore it; :func:`run` says where it is.

Run it with ``python -m sourcetruth.app.demo`` (or ``sourcetruth demo``). All data
is synthetic: Ofcom drama numbers and ``.test`` / ``example.org`` addresses.
Every time is an explicit Europe/London time of the week of Monday 23
November 2026: the demo never reads the clock.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO
from zoneinfo import ZoneInfo

from sourcetruth.adapters._files import private_folder, write_atomic
from sourcetruth.adapters.sources.oneroster import write_bundle
from sourcetruth.app.bookfolder import KEY_FILE_VARIABLE, BookFolder
from sourcetruth.app.sending import send
from sourcetruth.app.settings import STARTER
from sourcetruth.audit import AuditRecord, why
from sourcetruth.changes import AddressBookSave, Link, SetGroup
from sourcetruth.effective import contact_at
from sourcetruth.exceptions import UsageError
from sourcetruth.merge import Change, merge
from sourcetruth.messages import Message, Plan, plan
from sourcetruth.model import (
    Book,
    Channel,
    ContactData,
    Email,
    GroupDefinition,
    Phone,
    Record,
    Relationship,
    Role,
    Rule,
    Snapshot,
)
from sourcetruth.report import Report
from sourcetruth.schedule import when_effective

__all__ = ["run"]

LONDON: Final = ZoneInfo("Europe/London")

#: The book's policy.toml: the starter policy (an MIS synced nightly from
#: OneRoster bundles, and CSV imports), its import given the office's mapping.
SETTINGS: Final = STARTER.replace('# mapping = "mapping.toml"', 'mapping = "import-mapping.toml"')

#: How the office's CSV import is laid out (see sourcetruth.adapters.sources.tabular).
MAPPING: Final = """\
key = "Id"
given_name = "First name"
family_name = "Last name"
default_role = "guardian"
phones = [{ column = "Mobile", type = "mobile" }]
emails = [{ column = "Email" }]
"""

#: Friday's CSV import: a parent the MIS already holds, typed in by hand.
IMPORT_CSV: Final = (
    "Id,First name,Last name,Mobile,Email\r\nrow-17,Gita,Shah,07700 900901,gita@parent.test\r\n"
)


def _t(day: int, hour: int, minute: int = 0) -> datetime:
    """Week of Monday 23 November 2026, Europe/London."""
    return datetime(2026, 11, day, hour, minute, tzinfo=LONDON)


def _changed(report: Report) -> int:
    """Field changes to contacts the book already held: a new contact's fields are not."""
    created = set(report.created)
    return sum(1 for c in report.changes if c.contact_id not in created)


def _local(at: datetime | None) -> str:
    return "?" if at is None else f"{at.astimezone(LONDON):%a %H:%M}"


def _person(
    given: str,
    family: str,
    role: Role,
    *,
    mobile: str = "",
    email: str = "",
    pupils: tuple[str, ...] = (),
    year: str = "",
) -> ContactData:
    return ContactData(
        given,
        family,
        role,
        phones=(Phone(mobile),) if mobile else (),
        emails=(Email(email),) if email else (),
        relationships=tuple(Relationship(p) for p in pupils),
        year_group=year,
    )


def _mis(**changed: ContactData) -> list[Record]:
    """The school as its MIS holds it, with *changed* people replaced."""
    people = {
        "P9": _person("Nina", "Shah", Role.PUPIL, year="9"),
        "P8": _person("Omar", "Reid", Role.PUPIL, year="8"),
        "P9b": _person("Ivy", "Long", Role.PUPIL, year="9"),
        "G9": _person(
            "Gita",
            "Shah",
            Role.GUARDIAN,
            mobile="07700 900101",
            email="gita@parent.test",
            pupils=("P9",),
        ),
        "G8": _person(
            "Hal",
            "Reid",
            Role.GUARDIAN,
            mobile="07700 900102",
            email="hal@parent.test",
            pupils=("P8",),
        ),
        "GOV": _person(
            "Paula",
            "Long",
            Role.GUARDIAN,
            mobile="07700 900103",
            email="paula.old@parent.test",
            pupils=("P9b",),
        ),
        "S1": _person(
            "Steve", "Ward", Role.STAFF, mobile="07700 900201", email="s.ward@school.test"
        ),
    }
    for i in range(13):
        people[f"X{i:02}"] = _person(f"Kid{i}", "Young", Role.PUPIL, year="7")
    people.update(changed)
    return [Record(key, data) for key, data in people.items()]


def _message(
    message_id: str,
    channel: Channel,
    text: str,
    *,
    groups: tuple[str, ...] = (),
    rules: tuple[Rule, ...] = (),
    contacts: tuple[str, ...] = (),
) -> Message:
    return Message(
        message_id,
        text,
        text,
        channels=(channel,),
        groups=groups,
        rules=rules,
        contacts=contacts,
    )


def _written_at(file: Path, at: datetime) -> None:
    """Date *file* to when the school wrote it, as a real export's file would be.

    ``sourcetruth sync`` takes an export's time from its files' newest mtime
    when not told, and a held sync's token binds that time: the command that
    confirms Saturday's export must read it as taken on Saturday at 01:55.
    """
    stamp = at.timestamp()
    os.utime(file, (stamp, stamp))


def _empty_folder(folder: str | os.PathLike[str] | None) -> Path:
    if folder is None:
        # Kept on purpose: the user explores the book with the command afterwards.
        return Path(tempfile.mkdtemp(prefix="sourcetruth-demo-"))
    # Absolute, so the commands printed at the end work from any directory.
    path = Path(folder).absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        msg = f"the demo makes a new book, so {path} must be an empty folder or not exist yet"
        raise UsageError(msg)
    return path


class _Story:
    def __init__(self, out: TextIO, book: BookFolder) -> None:
        self.out = out
        self.book = book
        self.exports = book.path / "exports"

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def apply(self, change: Change, at: datetime, by: str) -> Report:
        return self.book.apply(change, at=at, by=by).report

    def export(self, day: int, records: list[Record], name: str = "") -> Path:
        """Write the MIS's 01:55 export of *day* as a OneRoster bundle, as the MIS would."""
        bundle = self.exports / (name or f"mis-2026-11-{day:02}")
        write_bundle(Snapshot("mis", _t(day, 1, 55), records), bundle)
        for file in bundle.iterdir():
            _written_at(file, _t(day, 1, 55))
        return bundle

    def read(self, day: int, bundle: Path) -> Snapshot:
        reading = self.book.read_source("mis", bundle, extracted_at=_t(day, 1, 55))
        for notice in reading.notices:
            self.say(f"    notice: {notice}")
        return reading.snapshot

    def sync(self, day: int, records: list[Record]) -> Report:
        at = _t(day, 2)
        snapshot = self.read(day, self.export(day, records))
        report = self.apply(snapshot, at, "nightly sync")
        self.told(at, report)
        return report

    def told(self, at: datetime, report: Report, *, dry_run: bool = False) -> None:
        status = report.status.value
        head = f"mis sync, dry run: would be {status}" if dry_run else f"mis sync: {status}"
        self.say(
            f"  {at:%a %H:%M} {head}, "
            f"{len(report.created)} new contact(s), {_changed(report)} field change(s)"
        )
        ended = "would end" if dry_run else "ended"
        for end in report.overrides_ended:
            self.say(
                f"    override of {end.override.field} on {end.override.contact_id} "
                f"{ended}: {end.outcome.value}"
            )

    def deliveries(self, planned: Plan, what: str) -> None:
        channel = planned.message.channels[0]
        self.say(f"  {_local(planned.at)} {what} by {channel.value}:")
        for d in planned.deliveries:
            p = d.provenance[0]
            origin = f"{p.kind.value} {p.source}:{p.record_key}"
            when = f"applied {_local(p.applied_at)}"
            self.say(f"    -> {d.address}  ({', '.join(d.contact_ids)}; {origin}, {when})")
        for _, u in planned.unreachable:
            self.say(f"    !! {u.contact_id}: {u.reason}")

    def send(self, message: Message, at: datetime, what: str) -> AuditRecord:
        book = self.book
        planned = plan(book.load(), message, policy=book.policy, at=at)
        self.deliveries(planned, what)
        record = send(
            planned,
            book.transports(message.channels),
            log=book.delivery_log,
            sent_at=at,
            sleep=lambda _: None,
        )
        book.save_audit(record)
        return record


def run(
    out: TextIO = sys.stdout,
    folder: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Tell the week, scenario by scenario, on a new book in *folder*; return the folder.

    *folder* must be empty or not exist yet; without one the book goes into a
    new temporary folder, which is kept. *environ* is what the book reads
    its settings' environment from (``os.environ`` by default), except the
    place of the suppression key: the demo's key is always its own, in the
    folder, so that it never makes or reuses a school's.
    """
    path = _empty_folder(folder)
    private_folder(path / "exports")
    write_atomic(path / "import-mapping.toml", MAPPING.encode("utf-8"))
    own = dict(os.environ if environ is None else environ)
    own.pop(KEY_FILE_VARIABLE, None)
    made = BookFolder.create(path, settings=SETTINGS, environ=own)
    with made as book:
        _week(_Story(out, book))
    return path


def _week(s: _Story) -> None:
    s.say("A week at a small school (Europe/London; the MIS syncs nightly at 02:00)")
    s.say()
    s.sync(23, _mis())
    s.sync(24, _mis())
    la = _person("Lars", "Berg", Role.GOVERNOR, mobile="07700 900301", email="lars.old@example.org")
    s.apply(AddressBookSave("address-book:la-governor", la), _t(24, 9), "office")
    tuesday = _scenario_1(s)
    _scenario_2(s, tuesday)
    thursday, minutes = _scenarios_3_and_4(s)
    _scenario_5(s, thursday, minutes)
    _scenario_6(s)
    _scenario_7(s)
    _scenario_8(s)


#: Both mobiles changed in the MIS on Tuesday at lunchtime (scenarios 1 and 2).
_GITA: Final = _person(
    "Gita", "Shah", Role.GUARDIAN, mobile="07700 900901", email="gita@parent.test", pupils=("P9",)
)
_HAL: Final = _person(
    "Hal", "Reid", Role.GUARDIAN, mobile="07700 900902", email="hal@parent.test", pupils=("P8",)
)


def _after_tuesday(**changed: ContactData) -> list[Record]:
    """The MIS from Tuesday lunchtime on, with *changed* people replaced too."""
    return _mis(G9=_GITA, G8=_HAL, **changed)


def _scenario_1(s: _Story) -> AuditRecord:
    """A message sent before the MIS change shows: Tuesday's audit record."""
    s.say("\n1. A year 9 parent's mobile changes in the MIS on Tuesday 12:30.")
    year9 = Rule(year_groups=frozenset({"9"}), guardians_of=True)
    tuesday = s.send(
        _message("tue-year9-sms", Channel.SMS, "Year 9 trip: back at 16:30.", rules=(year9,)),
        _t(24, 15, 30),
        "Message to year 9 parents",
    )
    shows = when_effective(s.book.policy, "mis", _t(24, 12, 30))
    s.say(f"   The MIS change shows at {_local(shows)}.")
    return tuesday


def _scenario_2(s: _Story, tuesday: AuditRecord) -> None:
    book = s.book
    s.say("\n2. A year 8 parent's mobile changes at the same time; Wednesday's sync reads it.")
    s.sync(25, _after_tuesday())
    year8 = Rule(year_groups=frozenset({"8"}), guardians_of=True)
    s.send(
        _message("wed-year8-sms", Channel.SMS, "Year 8 photos today.", rules=(year8,)),
        _t(25, 8, 30),
        "Message to year 8 parents",
    )
    # Asked of the audit record the send left, against the book as it is now.
    saved = book.audit(tuesday.message.id)
    told = why(saved, "mis:G9", Channel.SMS, book=book.load(), policy=book.policy)
    assert told.provenance is not None
    later = told.later.applied_at if told.later else None
    s.say("   Why did Tuesday's year 9 message use the old number? Its audit record")
    s.say(
        f"   (audit/{saved.message.id}.json) says it came from the MIS sync applied"
        f" {_local(told.provenance.applied_at)}"
    )
    s.say(f"   (read {_local(told.provenance.read_at)}); the new one arrived {_local(later)}.")
    s.sync(26, _after_tuesday())


def _scenarios_3_and_4(s: _Story) -> tuple[Book, Message]:
    """Both governors' new addresses; the book as it was on Thursday night, and the minutes."""
    book = s.book
    s.say(
        "\n3 and 4. Thursday 18:00: both governors give new email addresses;"
        " both are saved in the address book."
    )
    s.apply(
        AddressBookSave(
            "address-book:la-governor",
            ContactData(emails=(Email("lars.new@example.org"),)),
            frozenset({"emails"}),
        ),
        _t(26, 18),
        "office",
    )
    # The edit keeps the address's type, as an edit form would: the merge
    # compares types too, so a new type would make the MIS's matching address
    # end the override as superseded rather than confirmed.
    paula = contact_at(book.load(), "mis:GOV", policy=book.policy, at=_t(26, 18))
    edited = Email("paula.new@parent.test", paula.data.emails[0].type)
    report = s.apply(
        AddressBookSave("mis:GOV", ContactData(emails=(edited,)), frozenset({"emails"})),
        _t(26, 18),
        "office",
    )
    s.say(
        "   The parent governor lives in the MIS, so her edit is a temporary override"
        f" ({len(report.overrides_set)} set)."
    )
    governors = GroupDefinition(
        "Governors", members=frozenset({"mis:S1", "mis:GOV", "address-book:la-governor"})
    )
    s.apply(SetGroup(governors), _t(26, 18, 5), "office")
    s.send(
        _message("thu-governors-email", Channel.EMAIL, "Agenda for Friday.", groups=("Governors",)),
        _t(26, 19),
        "Thursday evening note to governors",
    )
    # Scenario 5 starts from the book as it stands on Thursday night.
    thursday = book.load()
    report = s.sync(27, _after_tuesday())
    for end in report.lost:
        s.say(
            f"   Action: update {end.override.field} of {end.override.contact_id} at source"
            f" (edited by {end.override.set_by})."
        )
    minutes = _message(
        "fri-minutes-email", Channel.EMAIL, "Minutes of the meeting.", groups=("Governors",)
    )
    s.send(minutes, _t(27, 9), "Friday's minutes")
    return thursday, minutes


def _scenario_5(s: _Story, thursday: Book, minutes: Message) -> None:
    book = s.book
    s.say("\n5. Had the school also updated the MIS on Thursday, Friday would look like this")
    s.say("   (a dry run on Thursday's book: nothing of it is applied or sent):")
    paula_new = _person(
        "Paula",
        "Long",
        Role.GUARDIAN,
        mobile="07700 900103",
        email="paula.new@parent.test",
        pupils=("P9b",),
    )
    updated = _after_tuesday(GOV=paula_new)
    what_if = s.read(27, s.export(27, updated, "what-if-mis-2026-11-27"))
    # Books are values: merging into Thursday's copy leaves the store untouched.
    other = merge(thursday, what_if, policy=book.policy, at=_t(27, 2), by="nightly sync")
    s.told(_t(27, 2), other.report, dry_run=True)
    s.deliveries(
        plan(other.book, minutes, policy=book.policy, at=_t(27, 9)), "Friday's minutes would go"
    )


def _scenario_6(s: _Story) -> None:
    s.say(
        "\n6. The Governors group reaches a staff governor, a parent governor"
        " and an external governor:"
    )
    s.send(
        _message("fri-governors-sms", Channel.SMS, "Minutes sent by email.", groups=("Governors",)),
        _t(27, 10),
        "Text to governors",
    )


def _scenario_7(s: _Story) -> None:
    book = s.book
    s.say("\n7. A CSV import carries Gita Shah too.")
    upload = s.exports / "import-2026-11-27.csv"
    write_atomic(upload, IMPORT_CSV.encode("utf-8"))
    _written_at(upload, _t(27, 11))
    reading = book.read_source("import", upload, extracted_at=_t(27, 11))
    report = s.apply(reading.snapshot, _t(27, 11), "upload")
    for d in report.duplicates:
        s.say(
            f"   Possible duplicate: {d.record} and {d.other} ({', '.join(d.reasons)});"
            " nothing merged."
        )
    s.send(
        _message(
            "fri-both-records-sms",
            Channel.SMS,
            "Parents' evening: book a slot.",
            contacts=("mis:G9", "import:row-17"),
        ),
        _t(27, 11, 30),
        "A text to both records",
    )
    s.apply(Link("mis:G9", "import:row-17"), _t(27, 12), "data manager")
    linked = contact_at(book.load(), "import:row-17", policy=book.policy, at=_t(27, 12))
    s.say(f"   Linked by the data manager: one person, {linked.id}, home {linked.home}.")


def _scenario_8(s: _Story) -> None:
    """A truncated export is held; the demo ends with the commands that explore the book."""
    book = s.book
    s.say("\n8. Saturday's MIS export arrives truncated.")
    bundle = s.export(28, _after_tuesday()[:12])
    report = s.apply(s.read(28, bundle), _t(28, 2), "nightly sync")
    assert report.held is not None
    s.say(f"   Sync {report.status.value}: {report.held.reason}")
    s.say("   Nothing departed. A person who checks the export can confirm it with its token")
    s.say("   (the times say when the export was taken and when the person confirms):")
    folder = shlex.quote(os.fspath(book.path))
    s.say(
        f"   sourcetruth --book {folder} sync mis {shlex.quote(os.fspath(bundle))}"
        f" --extracted-at 2026-11-28T01:55 --at {SATURDAY_MORNING} --confirm {report.held.token}"
    )

    s.say(f"\nThe book is in {book.path}. Explore it:")
    for command in EXPLORE:
        s.say(f"  sourcetruth --book {folder} {command}")


#: When the demo's closing commands look at the book: Saturday morning.
SATURDAY_MORNING: Final = "2026-11-28T09:00"

#: The commands the demo suggests at the end, after ``sourcetruth --book FOLDER``.
EXPLORE: Final = (
    f"show mis:G9 --at {SATURDAY_MORNING}",
    "explain mis:GOV emails --at 2026-11-26T19:00",
    f"report update-at-source --at {SATURDAY_MORNING}",
    "why tue-year9-sms mis:G9",
)


if __name__ == "__main__":
    run()
