"""A week at a small school: the eight scenarios of the design, told as they happen.

Run it with ``python -m sourcetruth`` (or ``sourcetruth demo``). All data is
synthetic: Ofcom drama numbers and ``.test`` / ``example.org`` addresses.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

from sourcetruth.merge import Report, contact_at, explain, merge, recipients
from sourcetruth.model import (
    AddressBookSave,
    Book,
    Channel,
    ContactData,
    Email,
    GroupDefinition,
    Link,
    Phone,
    Record,
    Relationship,
    Role,
    Rule,
    SetGroup,
    Snapshot,
    SourceKind,
)
from sourcetruth.policy import Policy, Schedule, Source
from sourcetruth.schedule import when_effective

__all__ = ["run"]

LONDON = ZoneInfo("Europe/London")
POLICY = Policy(
    sources=(
        Source(
            "mis",
            SourceKind.MIS,
            covers=frozenset(
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
            ),
            schedule=Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London"),
        ),
        Source(
            "import",
            SourceKind.IMPORT,
            covers=frozenset({"given_name", "family_name", "phones", "emails"}),
        ),
    )
)


def _t(day: int, hour: int, minute: int = 0) -> datetime:
    """Week of Monday 23 November 2026, Europe/London."""
    return datetime(2026, 11, day, hour, minute, tzinfo=LONDON)


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
    reg: str = "",
) -> ContactData:
    return ContactData(
        given,
        family,
        role,
        phones=(Phone(mobile),) if mobile else (),
        emails=(Email(email),) if email else (),
        relationships=tuple(Relationship(p) for p in pupils),
        year_group=year,
        registration_group=reg,
    )


def _mis(**changed: ContactData) -> list[Record]:
    people = {
        "P9": _person("Nina", "Shah", Role.PUPIL, year="9", reg="9B"),
        "P8": _person("Omar", "Reid", Role.PUPIL, year="8", reg="8A"),
        "P9b": _person("Ivy", "Long", Role.PUPIL, year="9", reg="9C"),
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
        people[f"X{i:02}"] = _person(f"Kid{i}", "Young", Role.PUPIL, year="7", reg="7A")
    people.update(changed)
    return [Record(key, data) for key, data in people.items()]


class _Story:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.book = Book()

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def apply(self, change: object, at: datetime, by: str) -> Report:
        result = merge(self.book, change, policy=POLICY, at=at, by=by)  # type: ignore[arg-type]
        self.book = result.book
        return result.report

    def sync(self, day: int, records: list[Record], source: str = "mis") -> Report:
        at = _t(day, 2)
        report = self.apply(
            Snapshot(source, at - timedelta(minutes=5), records), at, "nightly sync"
        )
        self.say(
            f"  {at:%a %H:%M} {source} sync: {report.status.value}, "
            f"{len(report.created)} new contact(s), {len(report.changes)} field change(s)"
        )
        for ended in report.overrides_ended:
            self.say(
                f"    override of {ended.override.field} on {ended.override.contact_id} "
                f"ended: {ended.outcome.value}"
            )
        return report

    def send(self, audience: object, channel: Channel, at: datetime, what: str) -> None:
        found = recipients(self.book, audience, channel, policy=POLICY, at=at)  # type: ignore[arg-type]
        self.say(f"  {at:%a %H:%M} {what} by {channel.value}:")
        for r in found.recipients:
            p = r.provenance[0]
            origin = f"{p.kind.value} {p.source}:{p.record_key}"
            when = f"applied {_local(p.applied_at)}"
            self.say(f"    -> {r.address}  ({', '.join(r.contact_ids)}; {origin}, {when})")
        for u in found.unreachable:
            self.say(f"    !! {u.contact_id}: {u.reason}")


def run(out: TextIO = sys.stdout) -> None:
    """Tell the week, scenario by scenario."""
    s = _Story(out)
    s.say("A week at a small school (Europe/London; the MIS syncs nightly at 02:00)")
    s.say()
    s.sync(23, _mis())
    s.sync(24, _mis())
    la = _person("Lars", "Berg", Role.GOVERNOR, mobile="07700 900301", email="lars.old@example.org")
    s.apply(AddressBookSave("address-book:la-governor", la), _t(24, 9), "office")

    s.say("\n1. A year 9 parent's mobile changes in the MIS on Tuesday 12:30.")
    year9 = Rule(year_groups=frozenset({"9"}), guardians_of=True)
    s.send(year9, Channel.SMS, _t(24, 15, 30), "Message to year 9 parents")
    s.say(f"   The MIS change shows at {_local(when_effective(POLICY, 'mis', _t(24, 12, 30)))}.")

    s.say("\n2. A year 8 parent's mobile changes at the same time; Wednesday's sync reads it.")
    # Both mobiles were changed in the MIS on Tuesday at lunchtime.
    after_tuesday = _mis(
        G9=_person(
            "Gita",
            "Shah",
            Role.GUARDIAN,
            mobile="07700 900901",
            email="gita@parent.test",
            pupils=("P9",),
        ),
        G8=_person(
            "Hal",
            "Reid",
            Role.GUARDIAN,
            mobile="07700 900902",
            email="hal@parent.test",
            pupils=("P8",),
        ),
    )
    s.sync(25, after_tuesday)
    s.send(
        Rule(year_groups=frozenset({"8"}), guardians_of=True),
        Channel.SMS,
        _t(25, 8, 30),
        "Message to year 8 parents",
    )
    why = explain(s.book, "mis:G9", "phones", policy=POLICY, at=_t(24, 15, 30))
    later = why.later.applied_at if why.later else None
    s.say(
        "   Why did Tuesday's year 9 message use the old number? It came from the MIS sync applied"
    )
    s.say(
        f"   {_local(why.provenance.applied_at)} (read {_local(why.provenance.read_at)}); "
        f"the new one arrived {_local(later)}."
    )
    s.sync(26, after_tuesday)

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
    report = s.apply(
        AddressBookSave(
            "mis:GOV", ContactData(emails=(Email("paula.new@parent.test"),)), frozenset({"emails"})
        ),
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
    s.send("Governors", Channel.EMAIL, _t(26, 19), "Thursday evening note to governors")
    thursday = s.book
    report = s.sync(27, after_tuesday)
    for ended in report.lost:
        s.say(
            f"   Action: update {ended.override.field} of {ended.override.contact_id} at source"
            f" (edited by {ended.override.set_by})."
        )
    s.send("Governors", Channel.EMAIL, _t(27, 9), "Friday's minutes")

    s.say("\n5. Had the school also updated the MIS on Thursday, Friday would look like this:")
    alt = _Story(out)
    alt.book = thursday  # books are values: the other Friday starts from the same Thursday
    paula = _person(
        "Paula",
        "Long",
        Role.GUARDIAN,
        mobile="07700 900103",
        email="paula.new@parent.test",
        pupils=("P9b",),
    )
    updated = [r if r.key != "GOV" else Record("GOV", paula) for r in after_tuesday]
    alt.sync(27, updated)
    alt.send("Governors", Channel.EMAIL, _t(27, 9), "Friday's minutes")

    s.say(
        "\n6. The Governors group reaches a staff governor, a parent governor"
        " and an external governor:"
    )
    s.send("Governors", Channel.SMS, _t(27, 10), "Text to governors")

    s.say("\n7. A CSV import carries Gita Shah too.")
    dup = _person("Gita", "Shah", Role.GUARDIAN, mobile="07700 900901", email="gita@parent.test")
    report = s.apply(Snapshot("import", _t(27, 11), [Record("row-17", dup)]), _t(27, 11), "upload")
    for d in report.duplicates:
        s.say(
            f"   Possible duplicate: {d.record} and {d.other} ({', '.join(d.reasons)});"
            " nothing merged."
        )
    s.send(("mis:G9", "import:row-17"), Channel.SMS, _t(27, 11, 30), "A text to both records")
    s.apply(Link("mis:G9", "import:row-17"), _t(27, 12), "data manager")
    linked = contact_at(s.book, "import:row-17", policy=POLICY, at=_t(27, 12))
    s.say(f"   Linked by the data manager: one person, {linked.id}, home {linked.home}.")

    s.say("\n8. Saturday's MIS export arrives truncated.")
    at = _t(28, 2)
    truncated = Snapshot("mis", at - timedelta(minutes=5), after_tuesday[:12])
    report = s.apply(truncated, at, "nightly sync")
    assert report.held is not None
    s.say(f"   Sync {report.status.value}: {report.held.reason}")
    s.say("   Nothing departed. A person who checks the export can confirm it with its token:")
    s.say(f"   ConfirmSync(snapshot, token={report.held.token[:12]}...)")


if __name__ == "__main__":
    run()
