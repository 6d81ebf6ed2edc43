"""The OneRoster adapter: real bundles from the corpus, hand-made bundles, and write_bundle.

Hand-made fixtures use only Ofcom drama numbers (07700 900xxx, 01632 960xxx)
and `.test` / `example.org` addresses.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from school import CORPUS, emails_typed_other, london, mis_policy
from sourcetruth import (
    AdapterError,
    Book,
    Channel,
    ContactData,
    DepartureGuard,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Rule,
    Snapshot,
    SnapshotKind,
    SourceDataError,
    SourceKind,
    Status,
    UsageError,
    contact_at,
    contacts_at,
    merge,
    recipients,
)
from sourcetruth.adapters import Reading, SourceAdapter
from sourcetruth.adapters.sources.oneroster import COVERS, OneRosterAdapter, write_bundle
from sourcetruth.exceptions import EncodingError, RejectedFileError, format_errors
from sourcetruth.testing.conformance import SourceAdapterContract, sample_school

ONEROSTER_CORPUS = CORPUS / "moodle-enrol_oneroster"
AT = datetime(2026, 11, 23, 1, 55, tzinfo=UTC)

USERS_11 = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
]
USERS_12 = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
]
ROLES_12 = [
    "sourcedId",
    "status",
    "dateLastModified",
    "userSourcedId",
    "roleType",
    "role",
    "beginDate",
    "endDate",
    "orgSourcedId",
    "userProfileSourcedId",
]
ORGS = ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"]


def corpus(name: str) -> Path:
    """A corpus bundle's folder; skips the test when the corpus is not checked out."""
    path = ONEROSTER_CORPUS / name
    if not path.is_dir():
        pytest.skip(f"the OneRoster corpus is not available at {path}")
    return path


def read(path: Path, **kwargs: object) -> Reading:
    """Read the bundle at *path* at the test's extraction time."""
    return OneRosterAdapter(path, **kwargs).read(extracted_at=AT)  # type: ignore[arg-type]


def table(header: list[str], *rows: dict[str, str]) -> str:
    """A CSV file's text: *header*, then each row's cells by column name."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        unknown = set(row) - set(header)
        assert not unknown, unknown
        writer.writerow([row.get(column, "") for column in header])
    return out.getvalue()


def manifest(version: str = "1.1", users: str = "bulk", **files: str) -> str:
    """A manifest.csv; *files* gives other file.* modes (orgs is bulk unless told)."""
    modes = {"orgs": "bulk", **files, "users": users}
    lines = ["propertyName,value", "manifest.version,1.0", f"oneroster.version,{version}"]
    lines += [f"file.{name},{mode}" for name, mode in sorted(modes.items())]
    return "\r\n".join(lines) + "\r\n"


def user(
    key: str, role: str, given: str = "Alex", family: str = "Able", **cells: str
) -> dict[str, str]:
    """A 1.1 users.csv row."""
    return {
        "sourcedId": key,
        "role": role,
        "givenName": given,
        "familyName": family,
        "orgSourcedIds": "org-a",
        **cells,
    }


def orgs(*ids: str) -> str:
    """An orgs.csv holding *ids*."""
    return table(ORGS, *({"sourcedId": i, "name": i, "type": "school"} for i in ids))


def bundle(where: Path, files: dict[str, str | bytes], name: str = "bundle") -> Path:
    """Write a bundle's files into a new folder *name* under *where*."""
    path = where / name
    path.mkdir()
    for file, text in files.items():
        (path / file).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def family_11(where: Path, *rows: dict[str, str], users: str = "bulk") -> Path:
    """A 1.1 bundle with one org and the given users."""
    return bundle(
        where,
        {
            "manifest.csv": manifest("1.1", users),
            "users.csv": table(USERS_11, *rows),
            "orgs.csv": orgs("org-a", "org-b"),
        },
    )


def by_key(reading: Reading) -> dict[str, ContactData]:
    """The records of a reading by key."""
    return {r.key: r.data for r in reading.snapshot.records}


def codes(reading: Reading, code: str) -> list[tuple[str | None, int | None, str | None]]:
    """(file, line, field) of every notice with *code*, in the reading's order.

    Notices name rows by line, never by key (a key may be a value once columns shift).
    """
    assert all(n.key is None for n in reading.notices)
    return [(n.file, n.line, n.field) for n in reading.notices if n.code == code]


# -- the real corpus -----------------------------------------------------------------------


class TestCorpusOneRoster11:
    """Test_full_data_set and Test_minimal_data_set: OneRoster 1.1, role in users.csv."""

    def test_roles_and_the_one_valid_guardian_link(self) -> None:
        """Thomas (parent) lists Mary (student): the only link that is a guardian's child."""
        reading = read(corpus("Test_full_data_set"))
        records = by_key(reading)
        assert reading.snapshot.kind is SnapshotKind.FULL
        assert [r.key for r in reading.snapshot.records] == sorted(records)
        assert {k: d.role for k, d in records.items()} == {
            "usr-222-123456": Role.STAFF,
            "usr-222-66778899": Role.PUPIL,
            "usr-222-1234561": Role.GUARDIAN,
            "usr-222-987654": Role.STAFF,
            "usr-222-1234561232": Role.PUPIL,
            "usr-222-567891": Role.PUPIL,
        }
        assert records["usr-222-1234561"].relationships == (Relationship("usr-222-66778899"),)
        assert all(not d.relationships for k, d in records.items() if k != "usr-222-1234561")

    def test_students_and_teachers_naming_teachers_as_agents_are_skipped(self) -> None:
        """Three students and one teacher name a teacher as agent: four agent-role notices."""
        reading = read(corpus("Test_full_data_set"))
        assert codes(reading, "agent-role") == [
            ("users.csv", 3, "agentSourcedIds"),
            ("users.csv", 5, "agentSourcedIds"),
            ("users.csv", 6, "agentSourcedIds"),
            ("users.csv", 7, "agentSourcedIds"),
        ]
        assert [n.code for n in reading.notices] == ["agent-role"] * 4
        assert reading.rejected == 0

    def test_phones_emails_and_grades(self) -> None:
        """Same digits in sms and phone give one mobile; every email is OTHER; pupils get grades."""
        records = by_key(read(corpus("Test_full_data_set")))
        mary, mmichel = records["usr-222-66778899"], records["usr-222-1234561232"]
        assert mary.phones == (Phone("6031234567", PhoneType.MOBILE),)
        # The malformed 9- and 11-digit numbers are kept as given, for the merge to report.
        assert mmichel.phones == (
            Phone("603121567", PhoneType.MOBILE),
            Phone("60312323567", PhoneType.HOME),
        )
        # The one email column does not say whose address it is: its type is not guessed.
        assert records["usr-222-123456"].emails == (
            Email("john.doe@myschool.com", EmailType.OTHER),
        )
        assert mary.emails == (Email("mary.jones@myschool.com", EmailType.OTHER),)
        assert (mary.year_group, records["usr-222-567891"].year_group) == ("12", "11")
        # A teacher's and a parent's grades are not a year group.
        assert records["usr-222-123456"].year_group == ""
        assert records["usr-222-1234561"].year_group == ""

    def test_minimal_bundle_reads_without_notices(self) -> None:
        """Empty statuses, dates and contact cells: six people, nothing to report."""
        reading = read(corpus("Test_minimal_data_set"))
        assert reading.notices == ()
        assert len(reading.snapshot.records) == 6
        assert all(not d.phones and not d.emails for d in by_key(reading).values())
        assert by_key(reading)["usr-222-1234561"].role is Role.GUARDIAN


class TestCorpusOneRoster12:
    """oneroster_test_data (a 1.2 delta) and v1p2_full_dataset (1.2, messy headers)."""

    def test_delta_bundle_takes_its_role_from_roles_csv(self) -> None:
        """users.csv has no role column: USER_0's student role comes from roles.csv."""
        path = corpus("oneroster_test_data")
        header = (path / "users.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
        assert "role" not in header
        reading = read(path)
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert reading.snapshot.removed == ()
        assert [(r.key, r.data.role) for r in reading.snapshot.records] == [("USER_0", Role.PUPIL)]
        assert reading.notices == ()

    def test_misspelt_headers_are_header_drift(self) -> None:
        """prefferedGivenName & co in users.csv, dataLastModified in roles.csv: named as read."""
        reading = read(corpus("v1p2_full_dataset"))
        assert codes(reading, "header-drift") == [
            ("users.csv", 1, "preferredGivenName"),
            ("users.csv", 1, "preferredMiddleName"),
            ("users.csv", 1, "preferredFamilyName"),
            ("roles.csv", 1, "dateLastModified"),
        ]
        assert all("misspelling" in n.message for n in reading.notices if n.code == "header-drift")

    def test_day_first_dates_are_date_format_notices(self) -> None:
        """1/05/2023 and 15/06/2023 are reported, never parsed; Mary's empty date is not."""
        reading = read(corpus("v1p2_full_dataset"))
        assert codes(reading, "date-format") == [
            ("users.csv", 2, "dateLastModified"),
            ("users.csv", 4, "dateLastModified"),
            ("users.csv", 5, "dateLastModified"),
            ("users.csv", 6, "dateLastModified"),
            ("users.csv", 7, "dateLastModified"),
        ]
        assert all("2023" not in n.message for n in reading.notices)

    def test_roles_come_from_roles_csv(self) -> None:
        """Thomas is a parent in 1.1 but only a siteAdministrator in 1.2's roles.csv."""
        reading = read(corpus("v1p2_full_dataset"))
        records = by_key(reading)
        assert records["usr-222-1234561"].role is Role.STAFF
        assert records["usr-222-1234561"].emails[0].type is EmailType.OTHER
        assert records["usr-222-66778899"].role is Role.PUPIL
        # Thomas has only a secondary role: it is used, and said so.
        assert codes(reading, "role-primary") == [
            ("roles.csv", 4, "roleType"),
        ]

    def test_teacher_with_a_secondary_guardian_role_gets_the_pupils_links(self) -> None:
        """John is a teacher with a guardian role: Mary's and mmichel's links land on him."""
        reading = read(corpus("v1p2_full_dataset"))
        john = by_key(reading)["usr-222-123456"]
        assert john.role is Role.STAFF
        assert codes(reading, "role-secondary-guardian") == [("roles.csv", 8, "role")]
        assert john.relationships == (
            Relationship("usr-222-1234561232"),
            Relationship("usr-222-66778899"),
        )
        # Thomas (staff) naming Mary, Jim (teacher) naming John, Anna naming Jim (teacher).
        assert codes(reading, "agent-role") == [
            ("users.csv", 4, "agentSourcedIds"),
            ("users.csv", 5, "agentSourcedIds"),
            ("users.csv", 7, "agentSourcedIds"),
        ]

    def test_trailing_empty_header_columns_are_tolerated(self) -> None:
        """roles.csv's header ends in ',,' and its rows are shorter: every row is read."""
        path = corpus("v1p2_full_dataset")
        first = (path / "roles.csv").read_bytes().split(b"\r\n")[0]
        assert first.endswith(b"orgSourcedId,,")
        reading = read(path)
        assert reading.rejected == 0
        assert not codes(reading, "header-unknown")
        assert len(reading.snapshot.records) == 6

    def test_notices_are_in_file_and_line_order(self) -> None:
        """users.csv notices by line, then roles.csv's, and never a personal value."""
        reading = read(corpus("v1p2_full_dataset"))
        files = [n.file for n in reading.notices]
        assert files == sorted(files, key=lambda f: f != "users.csv")
        users_lines = [n.line or 0 for n in reading.notices if n.file == "users.csv"]
        assert users_lines == sorted(users_lines)
        text = " ".join(str(n) for n in reading.notices)
        for value in ("John", "Jones", "6031234567", "@myschool.com", "Password1"):
            assert value not in text


class TestCorpusBundles:
    """What holds for every corpus bundle: zips, org filter, determinism."""

    @pytest.mark.parametrize(
        "name",
        ["Test_full_data_set", "Test_minimal_data_set", "oneroster_test_data", "v1p2_full_dataset"],
    )
    def test_a_zip_reads_like_its_folder(self, name: str, tmp_path: Path) -> None:
        """The same bundle zipped (inside a folder, as exports do) gives an equal reading."""
        folder = corpus(name)
        archive = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as out:
            for file in sorted(folder.iterdir()):
                out.write(file, f"{name}/{file.name}")
        assert read(archive) == read(folder)

    @pytest.mark.parametrize(
        "name",
        ["Test_full_data_set", "Test_minimal_data_set", "oneroster_test_data", "v1p2_full_dataset"],
    )
    def test_reading_twice_gives_equal_readings(self, name: str) -> None:
        """Same bundle, same extraction time: equal snapshots and notices."""
        assert read(corpus(name)) == read(corpus(name))

    def test_org_filter_keeps_the_department(self) -> None:
        """Everyone is in org-sch-222-456, so filtering by it keeps all six."""
        path = corpus("Test_full_data_set")
        assert read(path, org="org-sch-222-456").snapshot == read(path).snapshot

    def test_org_filter_with_an_unknown_org_is_an_error(self) -> None:
        """An org that orgs.csv does not hold is a SourceDataError naming orgs.csv."""
        with pytest.raises(SourceDataError) as info:
            read(corpus("v1p2_full_dataset"), org="org-sch-999")
        assert info.value.file == "orgs.csv"
        assert info.value.field == "sourcedId"


# -- hand-made bundles ----------------------------------------------------------------------


class TestAdapter:
    """The adapter's own surface."""

    def test_keeps_the_source_protocol(self, tmp_path: Path) -> None:
        """It is a SourceAdapter: an MIS that covers seven fields and has deltas."""
        adapter = OneRosterAdapter(tmp_path, source="arbor")
        assert isinstance(adapter, SourceAdapter)
        assert adapter.source == "arbor"
        assert adapter.kind is SourceKind.MIS
        assert adapter.supports_delta is True
        # The spec's reading of agentSourcedIds unless told otherwise.
        assert adapter.guardian_agents_complete is True
        assert not OneRosterAdapter(
            tmp_path, guardian_agents_complete=False
        ).guardian_agents_complete
        assert adapter.covers == frozenset(
            {"given_name", "family_name", "role", "phones", "emails", "relationships", "year_group"}
        )

    def test_repr_shows_path_and_source_only(self, tmp_path: Path) -> None:
        """The repr names where and which source, nothing read from the bundle."""
        path = family_11(tmp_path, user("P1", "student", "Zebedee", sms="07700 900001"))
        adapter = OneRosterAdapter(path, source="mis")
        adapter.read(extracted_at=AT)
        text = repr(adapter)
        assert str(path) in text
        assert "'mis'" in text
        assert "Zebedee" not in text
        assert "900001" not in text

    def test_bad_arguments_are_usage_errors(self, tmp_path: Path) -> None:
        """A source name with ':' and a reject fraction above 1 are refused at once."""
        with pytest.raises(UsageError):
            OneRosterAdapter(tmp_path, source="mis:x")
        with pytest.raises(UsageError):
            OneRosterAdapter(tmp_path, max_reject_fraction=1.5)

    def test_naive_extraction_time_is_a_usage_error(self, tmp_path: Path) -> None:
        """extracted_at must be timezone-aware."""
        path = family_11(tmp_path, user("P1", "student"))
        with pytest.raises(UsageError):
            OneRosterAdapter(path).read(extracted_at=datetime(2026, 11, 23, 1, 55))


class TestStatus:
    """tobedeleted and inactive in full and delta bundles."""

    def test_tobedeleted_in_a_delta_is_removed(self, tmp_path: Path) -> None:
        """A delta lists changed users as records and tobedeleted ones in removed."""
        path = family_11(
            tmp_path,
            user("P1", "student", status="active", dateLastModified="2026-11-22T18:00:00.000Z"),
            user("P2", "student", status="tobedeleted", dateLastModified="2026-11-22"),
            users="delta",
        )
        reading = read(path)
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert [r.key for r in reading.snapshot.records] == ["P1"]
        assert reading.snapshot.removed == ("P2",)
        assert reading.notices == ()

    def test_inactive_reads_as_tobedeleted(self, tmp_path: Path) -> None:
        """1.0's inactive is removed too, with a status-inactive notice."""
        path = family_11(
            tmp_path, user("P1", "student"), user("P2", "student", status="inactive"), users="delta"
        )
        reading = read(path)
        assert reading.snapshot.removed == ("P2",)
        assert codes(reading, "status-inactive") == [("users.csv", 3, "status")]

    def test_tobedeleted_in_a_full_bundle_departs(self, tmp_path: Path) -> None:
        """In a bulk bundle the user is simply left out of the full snapshot."""
        path = family_11(
            tmp_path, user("P1", "student"), user("P2", "student", status="tobedeleted")
        )
        snapshot = read(path).snapshot
        assert snapshot.kind is SnapshotKind.FULL
        assert [r.key for r in snapshot.records] == ["P1"]
        assert snapshot.removed == ()

    def test_a_full_bundle_without_users_passes_with_a_notice(self, tmp_path: Path) -> None:
        """Zero users: an empty full snapshot (the merge refuses it) and a notice."""
        reading = read(family_11(tmp_path))
        assert reading.snapshot.kind is SnapshotKind.FULL
        assert reading.snapshot.records == ()
        assert codes(reading, "empty-snapshot") == [("users.csv", None, None)]


class TestLinks:
    """agentSourcedIds in either direction, and the links that are not used."""

    def test_a_link_from_both_sides_is_one_relationship(self, tmp_path: Path) -> None:
        """Pupil names guardian and guardian names pupil: one Relationship on the guardian."""
        path = family_11(
            tmp_path,
            user("G1", "guardian", agentSourcedIds="P1"),
            user("P1", "student", agentSourcedIds="G1", grades="9,10"),
            user("P2", "student", agentSourcedIds="G1"),
        )
        reading = read(path)
        records = by_key(reading)
        assert records["G1"].relationships == (Relationship("P1"), Relationship("P2"))
        assert records["P1"].relationships == ()
        assert records["P1"].year_group == "9"
        # P2's link is on its own row only: kept, and said, since a delta may not see it.
        assert [n.code for n in reading.notices] == ["agent-one-sided"]
        assert codes(reading, "agent-one-sided") == [("users.csv", 4, "agentSourcedIds")]

    def test_wrong_roles_and_missing_agents_are_skipped(self, tmp_path: Path) -> None:
        """Pupil->pupil, parent->teacher and an unknown id are notices, not links."""
        path = family_11(
            tmp_path,
            user("G1", "parent", agentSourcedIds="T1"),
            user("P1", "student", agentSourcedIds="P2"),
            user("P2", "student", agentSourcedIds="nobody"),
            user("T1", "teacher"),
        )
        reading = read(path)
        assert all(not d.relationships for d in by_key(reading).values())
        assert codes(reading, "agent-role") == [
            ("users.csv", 2, "agentSourcedIds"),
            ("users.csv", 3, "agentSourcedIds"),
        ]
        assert codes(reading, "agent-missing") == [("users.csv", 4, "agentSourcedIds")]

    def test_a_guardians_link_to_a_pupil_outside_a_delta_is_kept(self, tmp_path: Path) -> None:
        """In a delta an agent may be unchanged and absent: the guardian keeps its link."""
        path = family_11(
            tmp_path,
            user("G1", "guardian", agentSourcedIds="P9"),
            user("P1", "student", agentSourcedIds="G9"),
            users="delta",
        )
        reading = read(path)
        records = by_key(reading)
        assert records["G1"].relationships == (Relationship("P9"),)
        assert records["P1"].relationships == ()
        assert codes(reading, "agent-unverified") == [
            ("users.csv", 2, "agentSourcedIds"),
            ("users.csv", 3, "agentSourcedIds"),
        ]

    def test_a_link_to_a_leaving_user_is_skipped(self, tmp_path: Path) -> None:
        """A pupil marked tobedeleted is no guardian's child any more."""
        path = family_11(
            tmp_path,
            user("G1", "guardian", agentSourcedIds="P1"),
            user("P1", "student", status="tobedeleted"),
        )
        reading = read(path)
        assert by_key(reading)["G1"].relationships == ()
        assert codes(reading, "agent-removed") == [("users.csv", 2, "agentSourcedIds")]

    def test_unknown_role_is_other(self, tmp_path: Path) -> None:
        """A role outside OneRoster's list is OTHER with a role-unknown notice."""
        path = family_11(tmp_path, user("X1", "ext:caretaker"))
        reading = read(path)
        assert by_key(reading)["X1"].role is Role.OTHER
        assert codes(reading, "role-unknown") == [("users.csv", 2, "role")]


class TestRoles12:
    """Where a 1.2 bundle's roles come from."""

    def test_users_role_is_the_fallback_and_stray_roles_are_reported(self, tmp_path: Path) -> None:
        """A user without a roles.csv row uses users.role; a role for nobody is a notice."""
        files: dict[str, str | bytes] = {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": table(
                [*USERS_12, "role"],
                {"sourcedId": "P1", "givenName": "A", "familyName": "B", "role": "teacher"},
                {"sourcedId": "G1", "givenName": "C", "familyName": "D", "role": "student"},
            ),
            "roles.csv": table(
                ROLES_12,
                {"sourcedId": "r1", "userSourcedId": "G1", "roleType": "primary", "role": "parent"},
                {"sourcedId": "r2", "userSourcedId": "X9", "roleType": "primary", "role": "aide"},
            ),
        }
        reading = read(bundle(tmp_path, files))
        # roles.csv wins over users.role for G1; P1 has no row there and falls back.
        assert {k: d.role for k, d in by_key(reading).items()} == {
            "G1": Role.GUARDIAN,
            "P1": Role.STAFF,
        }
        assert codes(reading, "role-user-missing") == [("roles.csv", 3, "userSourcedId")]


class TestOrgFilter:
    """org=...: the org's users and the guardians of its pupils."""

    def test_oneroster_11_keeps_the_org_and_its_pupils_guardians(self, tmp_path: Path) -> None:
        """A guardian in org-b linked to a pupil of org-a is kept; org-b's own are not."""
        path = family_11(
            tmp_path,
            user("PA", "student"),
            user("PB", "student", orgSourcedIds="org-b"),
            user("GA", "guardian", orgSourcedIds="org-b", agentSourcedIds="PA,PB"),
            user("GB", "guardian", orgSourcedIds="org-b", agentSourcedIds="PB"),
            user("TB", "teacher", orgSourcedIds="org-b"),
            user("TA", "teacher", orgSourcedIds="org-b,org-a"),
        )
        records = by_key(read(path, org="org-a"))
        assert sorted(records) == ["GA", "PA", "TA"]
        # PB is not in the snapshot, so it is not GA's relationship either.
        assert records["GA"].relationships == (Relationship("PA"),)

    def test_oneroster_12_uses_roles_and_primary_org(self, tmp_path: Path) -> None:
        """1.2: a role row's orgSourcedId or users' primaryOrgSourcedId puts a user in the org."""
        files: dict[str, str | bytes] = {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": table(
                USERS_12,
                {"sourcedId": "PA", "givenName": "A", "familyName": "A"},
                {"sourcedId": "PB", "givenName": "B", "familyName": "B"},
                {
                    "sourcedId": "T1",
                    "givenName": "T",
                    "familyName": "T",
                    "primaryOrgSourcedId": "org-a",
                },
                {"sourcedId": "G1", "givenName": "G", "familyName": "G", "agentSourcedIds": "PA"},
            ),
            "roles.csv": table(
                ROLES_12,
                {
                    "sourcedId": "r1",
                    "userSourcedId": "PA",
                    "roleType": "primary",
                    "role": "student",
                    "orgSourcedId": "org-a",
                },
                {
                    "sourcedId": "r2",
                    "userSourcedId": "PB",
                    "roleType": "primary",
                    "role": "student",
                    "orgSourcedId": "org-b",
                },
                {
                    "sourcedId": "r3",
                    "userSourcedId": "T1",
                    "roleType": "primary",
                    "role": "teacher",
                    "orgSourcedId": "org-b",
                },
                {
                    "sourcedId": "r4",
                    "userSourcedId": "G1",
                    "roleType": "primary",
                    "role": "parent",
                    "orgSourcedId": "org-b",
                },
            ),
            "orgs.csv": orgs("org-a", "org-b"),
        }
        records = by_key(read(bundle(tmp_path, files), org="org-a"))
        assert sorted(records) == ["G1", "PA", "T1"]
        assert records["G1"].relationships == (Relationship("PA"),)

    def test_an_org_not_in_orgs_csv_is_an_error(self, tmp_path: Path) -> None:
        """The filter never silently keeps nobody."""
        path = family_11(tmp_path, user("PA", "student"))
        with pytest.raises(SourceDataError) as info:
            read(path, org="org-z")
        assert (info.value.file, info.value.field) == ("orgs.csv", "sourcedId")


class TestHeaders:
    """Header drift: case, unknown columns, missing required columns."""

    def test_header_case_is_drift_not_an_error(self, tmp_path: Path) -> None:
        """SOURCEDID and GIVENNAME are read, each with a header-drift notice naming the column."""
        header = [h.upper() if h in ("sourcedId", "givenName") else h for h in USERS_11]
        text = table(
            header, {"SOURCEDID": "P1", "role": "student", "GIVENNAME": "Zoe", "familyName": "Z"}
        )
        path = bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": text})
        reading = read(path)
        assert by_key(reading)["P1"].given_name == "Zoe"
        assert codes(reading, "header-drift") == [
            ("users.csv", 1, "sourcedId"),
            ("users.csv", 1, "givenName"),
        ]

    def test_unknown_columns_are_reported(self, tmp_path: Path) -> None:
        """An extra column is ignored with a notice naming its position; metadata.* are silent."""
        header = [*USERS_11, "favouriteColour", "metadata.house"]
        text = table(
            header, user("P1", "student", favouriteColour="teal", **{"metadata.house": "Red"})
        )
        path = bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": text})
        reading = read(path)
        assert codes(reading, "header-unknown") == [("users.csv", 1, "column 19")]
        assert len(reading.snapshot.records) == 1

    def test_a_missing_required_column_names_file_and_column(self, tmp_path: Path) -> None:
        """No givenName and no role in a 1.1 users.csv: both are in one RejectedFileError."""
        header = [h for h in USERS_11 if h not in ("givenName", "role")]
        text = table(header, {"sourcedId": "P1", "familyName": "Quill"})
        path = bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": text})
        with pytest.raises(RejectedFileError) as info:
            read(path)
        found = {(e.file, e.field) for e in info.value.exceptions if isinstance(e, SourceDataError)}
        assert found == {("users.csv", "givenName"), ("users.csv", "role")}
        assert "Quill" not in format_errors(info.value)


class TestManifest:
    """What the manifest must say."""

    def test_unknown_version_names_the_manifest(self, tmp_path: Path) -> None:
        """oneroster.version 2.0 is a SourceDataError naming manifest.csv."""
        path = family_11(tmp_path, user("P1", "student"))
        (path / "manifest.csv").write_text(manifest("2.0"), encoding="utf-8")
        with pytest.raises(SourceDataError) as info:
            read(path)
        assert (info.value.file, info.value.line) == ("manifest.csv", 3)

    def test_users_absent_is_an_error(self, tmp_path: Path) -> None:
        """file.users,absent gives no snapshot kind: an error naming file.users."""
        path = family_11(tmp_path, user("P1", "student"))
        (path / "manifest.csv").write_text(manifest(users="absent"), encoding="utf-8")
        with pytest.raises(SourceDataError) as info:
            read(path)
        assert (info.value.file, info.value.field) == ("manifest.csv", "file.users")

    def test_no_manifest_is_an_error(self, tmp_path: Path) -> None:
        """A folder of CSV files without manifest.csv is not a bundle."""
        path = bundle(tmp_path, {"users.csv": table(USERS_11, user("P1", "student"))})
        with pytest.raises(SourceDataError) as info:
            read(path)
        assert info.value.file == "manifest.csv"

    def test_roles_listed_but_missing(self, tmp_path: Path) -> None:
        """A 1.2 manifest listing roles.csv that is not there rejects the bundle."""
        files: dict[str, str | bytes] = {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": table(USERS_12, {"sourcedId": "P1", "givenName": "A", "familyName": "B"}),
        }
        with pytest.raises(RejectedFileError) as info:
            read(bundle(tmp_path, files))
        assert any("roles.csv" in str(e) for e in info.value.exceptions)


class TestErrors:
    """Typed errors naming file, line and field, never the value."""

    def test_a_missing_path_is_an_adapter_error(self, tmp_path: Path) -> None:
        """Nothing at the path: AdapterError (the outside world), not a data error."""
        with pytest.raises(AdapterError):
            read(tmp_path / "nowhere")

    def test_a_file_that_is_not_a_zip_is_an_adapter_error(self, tmp_path: Path) -> None:
        """A text file where a zip was expected cannot be opened."""
        path = tmp_path / "bundle.zip"
        path.write_bytes(b"sourcedId,givenName\r\n")
        with pytest.raises(AdapterError):
            read(path)

    def test_undeclared_cp1252_is_an_encoding_error(self, tmp_path: Path) -> None:
        """cp1252 bytes fail as UTF-8 with the byte offset; allow_cp1252 reads them."""
        text = table(USERS_11, user("P1", "student", "Zoë", "Ærø"))
        path = family_11(tmp_path)
        (path / "users.csv").write_bytes(text.encode("cp1252"))
        with pytest.raises(RejectedFileError) as info:
            read(path)
        (error,) = info.value.exceptions
        assert isinstance(error, EncodingError)
        assert error.file == "users.csv"
        assert error.offset == text.encode("utf-8").index("ë".encode())
        assert by_key(read(path, allow_cp1252=True))["P1"].given_name == "Zoë"

    def test_errors_do_not_show_personal_values(self, tmp_path: Path) -> None:
        """A bad status rejects the row; the error names line and field, not the person."""
        path = family_11(
            tmp_path,
            user(
                "P1",
                "student",
                "Zebedee",
                "Quartermaine",
                status="gone",
                sms="07700 900123",
                email="zq@example.org",
            ),
        )
        with pytest.raises(RejectedFileError) as info:
            read(path)
        (error,) = info.value.exceptions
        assert isinstance(error, SourceDataError)
        assert (error.file, error.line, error.field, error.key) == ("users.csv", 2, "status", None)
        text = format_errors(info.value) + str(error) + "".join(info.value.__notes__)
        for value in ("Zebedee", "Quartermaine", "900123", "zq@example.org", "gone", "P1"):
            assert value not in text

    def test_a_duplicated_key_rejects_both_rows(self, tmp_path: Path) -> None:
        """Two rows for P1: neither is trusted, both are named."""
        path = family_11(
            tmp_path,
            user("P1", "student", "Ann"),
            user("P1", "student", "Bea"),
            user("P2", "student"),
        )
        with pytest.raises(RejectedFileError) as info:
            read(path)
        lines = sorted(e.line or 0 for e in info.value.exceptions if isinstance(e, SourceDataError))
        assert lines == [2, 3]
        assert {e.field for e in info.value.exceptions if isinstance(e, SourceDataError)} == {
            "sourcedId"
        }


class TestRejects:
    """Rejected rows under and over max_reject_fraction."""

    def people(self, where: Path) -> Path:
        """Ten pupils, the fifth with a row that has too few cells."""
        path = family_11(
            where, *(user(f"P{i}", "student", sms=f"07700 90010{i}") for i in range(10))
        )
        lines = (path / "users.csv").read_bytes().split(b"\r\n")
        lines[5] = b"P4,,,true,org-a,student"
        (path / "users.csv").write_bytes(b"\r\n".join(lines))
        return path

    def test_under_the_limit_the_rest_is_a_delta(self, tmp_path: Path) -> None:
        """One bad row of ten with 20% allowed: nine records, as a delta, P4 not removed."""
        reading = read(self.people(tmp_path), max_reject_fraction=0.2)
        assert reading.rejected == 1
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert [r.key for r in reading.snapshot.records] == [f"P{i}" for i in range(10) if i != 4]
        assert reading.snapshot.removed == ()
        assert codes(reading, "row-rejected") == [("users.csv", 6, "username")]
        assert len(codes(reading, "rows-rejected")) == 1

    def test_over_the_limit_the_bundle_is_rejected(self, tmp_path: Path) -> None:
        """With no rejects allowed the same bundle raises, naming the row."""
        with pytest.raises(RejectedFileError) as info:
            read(self.people(tmp_path))
        assert [
            (e.file, e.line) for e in info.value.exceptions if isinstance(e, SourceDataError)
        ] == [("users.csv", 6)]

    def test_leavers_stay_removed_in_a_downgraded_full_bundle(self, tmp_path: Path) -> None:
        """A full bundle read as a delta lists its tobedeleted users in removed."""
        path = family_11(
            tmp_path,
            user("P1", "student"),
            user("P2", "student", status="tobedeleted"),
            user("P3", "student", status="???"),
            *(user(f"Q{i}", "student") for i in range(7)),
        )
        reading = read(path, max_reject_fraction=0.2)
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert reading.snapshot.removed == ("P2",)
        assert "P3" not in by_key(reading)


def family_12(
    where: Path,
    users: list[dict[str, str]],
    roles: list[dict[str, str]],
    *,
    mode: str = "bulk",
    roles_mode: str | None = None,
    name: str = "bundle",
) -> Path:
    """A 1.2 bundle: users.csv, roles.csv (unless *roles_mode* is "absent") and orgs.csv."""
    roles_mode = roles_mode or mode
    files: dict[str, str | bytes] = {
        "manifest.csv": manifest("1.2", mode, roles=roles_mode),
        "users.csv": table(USERS_12, *users),
        "orgs.csv": orgs("org-a", "org-b"),
    }
    if roles_mode != "absent":
        files["roles.csv"] = table(ROLES_12, *roles)
    return bundle(where, files, name)


def user12(key: str, given: str = "Alex", **cells: str) -> dict[str, str]:
    """A 1.2 users.csv row."""
    return {"sourcedId": key, "givenName": given, "familyName": "Able", **cells}


def role12(key: str, role: str, kind: str = "primary", **cells: str) -> dict[str, str]:
    """A 1.2 roles.csv row of user *key*."""
    return {
        "sourcedId": f"r-{key}-{role}",
        "userSourcedId": key,
        "roleType": kind,
        "role": role,
        "orgSourcedId": "org-a",
        **cells,
    }


def merged(*paths: Path, **options: bool) -> dict[str, ContactData]:
    """The effective data of each contact after merging the bundles at *paths* in order."""
    policy = mis_policy()
    book = Book()
    for day, path in enumerate(paths, start=23):
        adapter = OneRosterAdapter(path, **options)  # type: ignore[arg-type]
        snapshot = adapter.read(extracted_at=london(day, 1)).snapshot
        book = merge(book, snapshot, policy=policy, at=london(day, 2), by="nightly").book
    at = london(len(paths) + 23, 9)
    keys = sorted(k for k in book.records.get("mis", {}))
    return {k: contact_at(book, f"mis:{k}", policy=policy, at=at).data for k in keys}


WHOLE_BUT_LINKS = COVERS - {"relationships"}


INCOMPLETE = {"guardian_agents_complete": False}


class TestDeltaLinks:
    """A delta may hold a guardian's row without the pupil rows that carry its links."""

    def full(self, where: Path) -> Path:
        """A full 1.1 bundle whose links are written on the pupils' rows only."""
        return bundle(
            where,
            {
                "manifest.csv": manifest(),
                "users.csv": table(
                    USERS_11,
                    user("P1", "student", agentSourcedIds="G1", grades="9"),
                    user("P2", "student", agentSourcedIds="G1", grades="7"),
                    user("G1", "parent", sms="07700 900101"),
                ),
                "orgs.csv": orgs("org-a"),
            },
            "full",
        )

    def phone_change(self, where: Path) -> Path:
        """A delta holding only G1's row: a new phone, no pupil listed."""
        return bundle(
            where,
            {
                "manifest.csv": manifest(users="delta"),
                "users.csv": table(USERS_11, user("G1", "parent", sms="07700 900199")),
            },
            "delta",
        )

    def test_a_one_sided_full_bundle_names_the_option_its_deltas_need(self, tmp_path: Path) -> None:
        """Each link on a pupil's row only is agent-one-sided, naming the option to set."""
        path = self.full(tmp_path)
        reading = read(path)
        assert codes(reading, "agent-one-sided") == [
            ("users.csv", 2, "agentSourcedIds"),
            ("users.csv", 3, "agentSourcedIds"),
        ]
        notices = [n for n in reading.notices if n.code == "agent-one-sided"]
        assert all("guardian_agents_complete=False" in n.message for n in notices)
        # Once the option is set, the one-sidedness is expected: no notice.
        assert not codes(read(path, **INCOMPLETE), "agent-one-sided")

    def test_incomplete_agents_keep_the_books_links_for_a_silent_guardian(
        self, tmp_path: Path
    ) -> None:
        """G1's phone changes in a delta without P1 or P2: its links stay as the book has them."""
        delta = self.phone_change(tmp_path)
        reading = read(delta, **INCOMPLETE)
        (record,) = reading.snapshot.records
        assert record.fields == WHOLE_BUT_LINKS
        assert record.data.phones == (Phone("07700 900199"),)
        assert codes(reading, "agent-not-in-delta") == [("users.csv", 2, "agentSourcedIds")]
        after = merged(self.full(tmp_path), delta, **INCOMPLETE)
        assert after["G1"].relationships == (Relationship("P1"), Relationship("P2"))
        assert after["G1"].phones == (Phone("07700 900199"),)

    def test_by_default_a_guardian_row_is_all_its_links(self, tmp_path: Path) -> None:
        """The spec's reading of the same delta: G1 lists no pupil, so it is unlinked.

        That is why a one-sided export needs guardian_agents_complete=False.
        """
        delta = self.phone_change(tmp_path)
        reading = read(delta)
        (record,) = reading.snapshot.records
        assert record.fields is None
        assert record.data.relationships == ()
        assert codes(reading, "agent-list-empty") == [("users.csv", 2, "agentSourcedIds")]
        assert "guardian_agents_complete=False" in reading.notices[0].message
        after = merged(self.full(tmp_path), delta)
        assert after["G1"].relationships == ()

    @pytest.mark.parametrize("pupil_row", [True, False], ids=["both-rows", "guardian-row"])
    def test_a_guardian_who_lost_their_last_child_is_unlinked(
        self, pupil_row: bool, tmp_path: Path
    ) -> None:
        """G1's own list is complete: listing no pupil, it is linked to none after the delta."""
        full = family_11(
            tmp_path,
            user("P1", "student", agentSourcedIds="G1", grades="9"),
            user("G1", "parent", agentSourcedIds="P1"),
        )
        rows = [user("G1", "parent")]
        if pupil_row:
            rows.append(user("P1", "student", grades="9"))
        delta = bundle(
            tmp_path,
            {"manifest.csv": manifest(users="delta"), "users.csv": table(USERS_11, *rows)},
            "delta",
        )
        reading = read(delta)
        assert {r.key: r.fields for r in reading.snapshot.records}["G1"] is None
        assert codes(reading, "agent-list-empty") == [("users.csv", 2, "agentSourcedIds")]
        after = merged(full, delta)
        assert after["G1"].relationships == ()
        assert after["G1"].role is Role.GUARDIAN

    def test_pupil_rows_in_the_delta_reach_only_a_new_silent_guardian(self, tmp_path: Path) -> None:
        """Incomplete agents: P1 names G1, P2 is absent, so G1 is partial but its data holds P1."""
        path = family_11(
            tmp_path,
            user("G1", "parent"),
            user("P1", "student", agentSourcedIds="G1"),
            users="delta",
        )
        reading = read(path, **INCOMPLETE)
        records = {r.key: r for r in reading.snapshot.records}
        assert {k: r.fields for k, r in records.items()} == {"G1": WHOLE_BUT_LINKS, "P1": None}
        assert records["G1"].data.relationships == (Relationship("P1"),)
        (notice,) = [n for n in reading.notices if n.code == "agent-not-in-delta"]
        assert "new to the book" in notice.message
        # By default G1's empty list is complete: the union with P1's row is its whole record,
        # and the link on P1's row alone is reported.
        reading = read(path)
        records = {r.key: r for r in reading.snapshot.records}
        assert records["G1"].fields is None
        assert records["G1"].data.relationships == (Relationship("P1"),)
        assert codes(reading, "agent-one-sided") == [("users.csv", 3, "agentSourcedIds")]
        assert not codes(reading, "agent-list-empty")

    def test_a_new_guardian_gets_the_links_on_pupil_rows(self, tmp_path: Path) -> None:
        """Incomplete agents: G9 joins in a delta, named on P1's row: G9 is linked to P1."""
        delta = family_11(
            tmp_path,
            user("P1", "student", agentSourcedIds="G1,G9", grades="9"),
            user("G9", "parent", sms="07700 900109"),
            users="delta",
        )
        after = merged(self.full(tmp_path), delta, **INCOMPLETE)
        assert after["G9"].relationships == (Relationship("P1"),)
        assert after["G1"].relationships == (Relationship("P1"), Relationship("P2"))

    def test_incomplete_agents_cannot_see_a_link_removed_on_a_pupil_row(
        self, tmp_path: Path
    ) -> None:
        """P2 stops naming G1, whose row is not in the delta: the link stays, with a notice."""
        delta = family_11(tmp_path, user("P2", "student", grades="7"), users="delta")
        reading = read(delta, **INCOMPLETE)
        assert codes(reading, "agent-removal-unseen") == [("users.csv", 2, "agentSourcedIds")]
        assert "full bundle" in reading.notices[0].message
        # The documented limitation: nothing is guessed, the next full bundle removes it.
        after = merged(self.full(tmp_path), delta, **INCOMPLETE)
        assert after["G1"].relationships == (Relationship("P1"), Relationship("P2"))
        # With the default the pupil rows are not where removals are read: no notice.
        assert not codes(read(delta), "agent-removal-unseen")

    @pytest.mark.parametrize("complete", [True, False])
    def test_a_guardian_row_listing_pupils_is_its_whole_record(
        self, complete: bool, tmp_path: Path
    ) -> None:
        """The guardian's own list is authoritative: with P2's row it is the union, whole."""
        path = family_11(
            tmp_path,
            user("G1", "parent", agentSourcedIds="P1"),
            user("P2", "student", agentSourcedIds="G1"),
            users="delta",
        )
        reading = read(path, guardian_agents_complete=complete)
        records = {r.key: r for r in reading.snapshot.records}
        assert records["G1"].fields is None
        assert records["G1"].data.relationships == (Relationship("P1"), Relationship("P2"))
        assert not codes(reading, "agent-not-in-delta")

    def test_a_full_bundle_says_which_links_are_on_the_pupils_row_only(
        self, tmp_path: Path
    ) -> None:
        """P1's link is on both rows, P2's only on P2's: one agent-one-sided notice."""
        path = family_11(
            tmp_path,
            user("G1", "parent", agentSourcedIds="P1"),
            user("P1", "student", agentSourcedIds="G1"),
            user("P2", "student", agentSourcedIds="G1"),
        )
        reading = read(path)
        assert by_key(reading)["G1"].relationships == (Relationship("P1"), Relationship("P2"))
        assert codes(reading, "agent-one-sided") == [("users.csv", 4, "agentSourcedIds")]


class TestDeltaRoles12:
    """OneRoster 1.2 deltas carry a user's row and its role rows separately."""

    def full(self, where: Path) -> Path:
        return family_12(
            where,
            [
                user12("G1", sms="07700 900101", email="g1@parent.test", agentSourcedIds="P1"),
                user12("P1", email="p1@pupils.example.org", grades="9"),
            ],
            [role12("G1", "parent"), role12("P1", "student")],
            name="full",
        )

    def test_a_user_row_without_role_rows_is_a_partial_record(self, tmp_path: Path) -> None:
        """Name, phones and email are applied; role, grades and relationships are kept."""
        delta = family_12(
            tmp_path,
            [
                user12("G1", "Gail", sms="07700 900199", email="new@parent.test"),
                user12("P1", email="p1@pupils.example.org", grades="10"),
            ],
            [],
            mode="delta",
            name="delta",
        )
        reading = read(delta)
        records = {r.key: r for r in reading.snapshot.records}
        # An email reads the same whatever the role, so it is sent; filled grades are not.
        assert records["G1"].fields == {
            "given_name",
            "family_name",
            "phones",
            "emails",
            "year_group",
        }
        assert records["P1"].fields == {"given_name", "family_name", "phones", "emails"}
        assert codes(reading, "role-not-in-delta") == [
            ("users.csv", 2, "role"),
            ("users.csv", 3, "role"),
        ]
        assert all("year group" in n.message for n in reading.notices)
        assert reading.rejected == 0
        after = merged(self.full(tmp_path), delta)
        assert after["G1"].role is Role.GUARDIAN
        assert after["G1"].given_name == "Gail"
        assert after["G1"].phones == (Phone("07700 900199"),)
        assert after["G1"].emails == (Email("new@parent.test", EmailType.OTHER),)
        assert after["G1"].relationships == (Relationship("P1"),)
        # The year-group change waits for a full bundle or P1's role rows.
        assert after["P1"].year_group == "9"

    def test_empty_cells_are_applied_whatever_the_role(self, tmp_path: Path) -> None:
        """An empty email and empty grades read the same for every role, so they are sent."""
        path = family_12(tmp_path, [user12("P1")], [], mode="delta", roles_mode="absent")
        (record,) = read(path).snapshot.records
        assert record.fields == {"given_name", "family_name", "phones", "emails", "year_group"}
        assert (record.data.emails, record.data.year_group) == ((), "")

    def test_a_secondary_role_alone_is_not_the_users_role(self, tmp_path: Path) -> None:
        """In a delta the unchanged primary role may be elsewhere: a secondary row is not it."""
        path = family_12(
            tmp_path, [user12("T1")], [role12("T1", "guardian", "secondary")], mode="delta"
        )
        reading = read(path)
        (record,) = reading.snapshot.records
        assert record.fields is not None
        assert "role" not in record.fields
        assert not codes(reading, "role-primary")

    def test_a_role_change_without_the_users_row_is_applied(self, tmp_path: Path) -> None:
        """A roles.csv row alone changes the role, and what the role alone settles."""
        delta = family_12(tmp_path, [], [role12("G1", "teacher")], mode="delta", name="delta")
        reading = read(delta)
        (record,) = reading.snapshot.records
        assert (record.key, record.data.role) == ("G1", Role.STAFF)
        assert record.fields == {"role", "year_group"}
        assert codes(reading, "role-only") == [("roles.csv", 2, "role")]
        assert not codes(reading, "role-user-missing")
        after = merged(self.full(tmp_path), delta)
        assert after["G1"].role is Role.STAFF
        assert after["G1"].phones == (Phone("07700 900101"),)

    def test_a_full_bundle_still_rejects_a_user_without_a_role(self, tmp_path: Path) -> None:
        """Only a delta may leave a role out: in a full bundle it is a rejected row."""
        path = family_12(tmp_path, [user12("P1"), user12("G1")], [role12("P1", "student")])
        with pytest.raises(RejectedFileError) as info:
            read(path)
        (error,) = info.value.exceptions
        assert isinstance(error, SourceDataError)
        assert (error.file, error.line, error.field, error.key) == ("users.csv", 3, "role", None)

    def test_every_role_being_deleted_rejects_an_active_user(self, tmp_path: Path) -> None:
        """Full: the user has no role left but is not leaving; a delta keeps the old role."""
        rows = [user12("P1"), user12("G1")]
        ended = role12("G1", "parent", status="tobedeleted")
        with pytest.raises(RejectedFileError) as info:
            read(family_12(tmp_path, rows, [role12("P1", "student"), ended]))
        (error,) = info.value.exceptions
        assert isinstance(error, SourceDataError)
        assert (error.line, error.field, error.key) == (3, "status", None)
        assert "mark the user tobedeleted too" in error.reason
        reading = read(family_12(tmp_path, [user12("G1")], [ended], mode="delta", name="d"))
        (record,) = reading.snapshot.records
        assert record.fields is not None
        assert "role" not in record.fields


class TestRoleRejects:
    """A rejected roles.csv row holds its user back rather than change its role."""

    def path(self, where: Path) -> Path:
        return family_12(
            where,
            [user12("P1", agentSourcedIds="G1"), user12("G1"), user12("T1")],
            [
                role12("P1", "student"),
                role12("G1", "guardian"),
                role12("T1", "teacher", status="bogus"),
                role12("T1", "guardian", "secondary"),
            ],
        )

    def test_the_user_is_held_back(self, tmp_path: Path) -> None:
        """T1's teacher row is rejected: T1 is not read as a guardian from the row left."""
        reading = read(self.path(tmp_path), max_reject_fraction=0.5)
        assert sorted(by_key(reading)) == ["G1", "P1"]
        assert reading.rejected == 2
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert codes(reading, "row-rejected") == [
            ("users.csv", 4, "role"),
            ("roles.csv", 4, "status"),
        ]

    def test_the_held_user_counts_towards_the_limit(self, tmp_path: Path) -> None:
        """With no rejects allowed both rows are named."""
        with pytest.raises(RejectedFileError) as info:
            read(self.path(tmp_path))
        found = [(e.file, e.line) for e in info.value.exceptions if isinstance(e, SourceDataError)]
        assert sorted(found) == [("roles.csv", 4), ("users.csv", 4)]


class TestOrgFilterDelta:
    """org=... on a delta: who leaves the org, and who cannot be placed."""

    def test_a_user_moved_to_another_org_leaves_it(self, tmp_path: Path) -> None:
        """P2 is in the delta with org-b only: for org-a it is removed, not dropped."""
        path = family_11(
            tmp_path,
            user("P1", "student"),
            user("P2", "student", orgSourcedIds="org-b"),
            users="delta",
        )
        reading = read(path, org="org-a")
        assert [r.key for r in reading.snapshot.records] == ["P1"]
        assert reading.snapshot.removed == ("P2",)

    def test_a_leaver_of_another_org_is_removed(self, tmp_path: Path) -> None:
        """G1 (org-b) may be in org-a's book through a pupil; tobedeleted, it leaves it."""
        path = family_11(
            tmp_path,
            user("G1", "parent", orgSourcedIds="org-b", status="tobedeleted"),
            users="delta",
        )
        assert read(path, org="org-a").snapshot.removed == ("G1",)

    def test_a_user_with_no_org_is_a_notice(self, tmp_path: Path) -> None:
        """No orgSourcedIds at all: left out, with org-unknown (full and delta alike)."""
        path = family_11(tmp_path, user("P1", "student"), user("P2", "student", orgSourcedIds=""))
        reading = read(path, org="org-a")
        assert sorted(by_key(reading)) == ["P1"]
        assert codes(reading, "org-unknown") == [("users.csv", 3, None)]

    def test_a_guardian_outside_the_org_with_unseen_links_stays(self, tmp_path: Path) -> None:
        """Incomplete agents: G1 (org-b) lists no pupil, yet may guard org-a's: not removed."""
        path = family_11(tmp_path, user("G1", "parent", orgSourcedIds="org-b"), users="delta")
        reading = read(path, org="org-a", **INCOMPLETE)
        assert reading.snapshot.records == ()
        assert reading.snapshot.removed == ()
        assert codes(reading, "org-link-unknown") == [("users.csv", 2, None)]

    def test_a_guardian_outside_the_org_listing_no_pupil_leaves_it(self, tmp_path: Path) -> None:
        """By default G1's empty list is complete: it guards no pupil of org-a, so it leaves."""
        path = family_11(tmp_path, user("G1", "parent", orgSourcedIds="org-b"), users="delta")
        reading = read(path, org="org-a")
        assert reading.snapshot.records == ()
        assert reading.snapshot.removed == ("G1",)
        assert not codes(reading, "org-link-unknown")

    def test_a_guardian_outside_the_org_naming_an_unseen_pupil_stays(self, tmp_path: Path) -> None:
        """G1 (org-b) names P1, which the delta does not hold: P1's org is unknown, G1 stays."""
        path = family_11(
            tmp_path,
            user("G1", "parent", orgSourcedIds="org-b", agentSourcedIds="P1"),
            users="delta",
        )
        reading = read(path, org="org-a")
        assert reading.snapshot.removed == ()
        assert codes(reading, "org-link-unknown") == [("users.csv", 2, None)]

    def test_a_12_user_without_role_rows_is_placed_only_by_its_primary_org(
        self, tmp_path: Path
    ) -> None:
        """Its role rows hold the rest of its orgs: another primary org is unknown, not gone."""
        path = family_12(
            tmp_path,
            [user12("A1", primaryOrgSourcedId="org-a"), user12("B1", primaryOrgSourcedId="org-b")],
            [],
            mode="delta",
        )
        reading = read(path, org="org-a")
        assert [r.key for r in reading.snapshot.records] == ["A1"]
        assert reading.snapshot.removed == ()
        assert codes(reading, "org-unknown") == [("users.csv", 3, None)]


# -- writing ------------------------------------------------------------------------------------


def sample(kind: SnapshotKind = SnapshotKind.FULL, *, staff_parent: bool = True) -> Snapshot:
    """A school the format can carry, with a staff member who is also a parent (1.2 only)."""
    records = [
        Record("P9", ContactData("Nina", "Shah, Jr", Role.PUPIL, year_group="9")),
        Record(
            "P8",
            ContactData(
                "Omar", 'O"Brien', Role.PUPIL, phones=(Phone("07700 900301"),), year_group="08"
            ),
        ),
        Record(
            "G9",
            ContactData(
                "Gita",
                "Shah",
                Role.GUARDIAN,
                phones=(Phone("07700 900101"), Phone("01632 960101", PhoneType.HOME)),
                emails=(Email("gita@parent.test", EmailType.OTHER),),
                relationships=(Relationship("P8"), Relationship("P9")),
            ),
        ),
        Record(
            "S1",
            ContactData(
                "Steve",
                "Staff",
                Role.STAFF,
                phones=(Phone("01632 960201", PhoneType.HOME),),
                emails=(Email("s1@school.example.org", EmailType.OTHER),),
                relationships=(Relationship("P8"),) if staff_parent else (),
            ),
        ),
    ]
    removed = ("P7", "G7") if kind is SnapshotKind.DELTA else ()
    return Snapshot("mis", AT, sorted(records, key=lambda r: r.key), kind, removed)


class TestWriteBundle:
    """write_bundle, and reading back what it wrote."""

    @pytest.mark.parametrize("kind", [SnapshotKind.FULL, SnapshotKind.DELTA])
    def test_round_trip_12(self, kind: SnapshotKind, tmp_path: Path) -> None:
        """1.2: every covered field comes back, removed keys too, without a notice."""
        snapshot = sample(kind)
        write_bundle(snapshot, tmp_path / "out")
        reading = read(tmp_path / "out")
        assert reading.snapshot == Snapshot(
            "mis", AT, snapshot.records, kind, tuple(sorted(snapshot.removed))
        )
        # The staff parent is the one notice: it holds links while it stays staff.
        (notice,) = reading.notices
        assert (notice.code, notice.file) == ("role-secondary-guardian", "roles.csv")
        roles = (tmp_path / "out" / "roles.csv").read_text(encoding="utf-8").splitlines()
        assert ",S1," in roles[(notice.line or 0) - 1]  # named by line: S1's guardian role

    @pytest.mark.parametrize("kind", [SnapshotKind.FULL, SnapshotKind.DELTA])
    def test_round_trip_11(self, kind: SnapshotKind, tmp_path: Path) -> None:
        """1.1 has one role per user, so the sample without the staff parent comes back."""
        snapshot = sample(kind, staff_parent=False)
        write_bundle(snapshot, tmp_path / "out", version="1.1")
        assert read(tmp_path / "out").snapshot.records == snapshot.records
        assert read(tmp_path / "out").snapshot.kind is kind

    def test_bytes_are_deterministic(self, tmp_path: Path) -> None:
        """The same snapshot, in any record order, writes the same bytes with CRLF lines."""
        snapshot = sample(SnapshotKind.DELTA)
        shuffled = Snapshot(
            "mis", AT, tuple(reversed(snapshot.records)), SnapshotKind.DELTA, ("G7", "P7")
        )
        write_bundle(snapshot, tmp_path / "a")
        write_bundle(shuffled, tmp_path / "b")
        names = sorted(p.name for p in (tmp_path / "a").iterdir())
        assert names == ["manifest.csv", "orgs.csv", "roles.csv", "users.csv"]
        for name in names:
            data = (tmp_path / "a" / name).read_bytes()
            assert data == (tmp_path / "b" / name).read_bytes()
            assert data.count(b"\n") == data.count(b"\r\n")

    def test_delta_writes_tobedeleted_rows(self, tmp_path: Path) -> None:
        """Removed keys are users.csv rows with status tobedeleted; the manifest says delta."""
        write_bundle(sample(SnapshotKind.DELTA), tmp_path)
        rows = list(csv.DictReader(io.StringIO((tmp_path / "users.csv").read_text("utf-8"))))
        assert {r["sourcedId"]: r["status"] for r in rows if r["status"] == "tobedeleted"} == {
            "G7": "tobedeleted",
            "P7": "tobedeleted",
        }
        assert "file.users,delta" in (tmp_path / "manifest.csv").read_text("utf-8")

    def test_a_zip_of_a_written_bundle_reads_back(self, tmp_path: Path) -> None:
        """The files zipped at the archive's top level read as the snapshot written."""
        snapshot = sample()
        write_bundle(snapshot, tmp_path / "out")
        archive = tmp_path / "bundle.zip"
        with zipfile.ZipFile(archive, "w") as out:
            for file in sorted((tmp_path / "out").iterdir()):
                out.write(file, file.name)
        assert read(archive).snapshot == snapshot

    def test_unknown_version_is_a_usage_error(self, tmp_path: Path) -> None:
        """Only 1.1 and 1.2 are written."""
        with pytest.raises(UsageError):
            write_bundle(sample(), tmp_path, version="1.0")


class TestMerge:
    """A bundle read and merged into an empty book, end to end."""

    def test_a_read_bundle_merges_into_an_empty_book(self, tmp_path: Path) -> None:
        """Every user becomes a contact; a guardian's relationship names its pupil's contact."""
        path = family_11(
            tmp_path,
            user("P9", "student", "Nina", grades="9", agentSourcedIds="G9"),
            user("P8", "student", "Omar", grades="8"),
            user("G9", "parent", "Gita", sms="07700 900101", email="gita@parent.test"),
            user("G8", "parent", "Hal", sms="07700 900102", agentSourcedIds="P8"),
            user("T1", "teacher", "Steve", sms="07700 900201", email="steve@school.test"),
        )
        reading = read(path)
        policy = mis_policy()
        result = merge(Book(), reading.snapshot, policy=policy, at=london(23, 2), by="nightly")
        assert result.report.status is Status.APPLIED
        assert result.report.created == ("mis:G8", "mis:G9", "mis:P8", "mis:P9", "mis:T1")
        at = london(23, 9)
        gita = contact_at(result.book, "mis:G9", policy=policy, at=at)
        (link,) = gita.data.relationships
        child = contact_at(result.book, f"mis:{link.pupil}", policy=policy, at=at)
        assert (child.data.given_name, child.data.year_group) == ("Nina", "9")
        year9 = Rule(year_groups=frozenset({"9"}), guardians_of=True)
        parents = recipients(result.book, year9, Channel.SMS, policy=policy, at=at)
        assert parents.addresses == ("+447700900101",)
        sms = recipients(result.book, ("mis:G9", "mis:G8"), Channel.SMS, policy=policy, at=at)
        assert sms.addresses == ("+447700900102", "+447700900101")
        teacher = contact_at(result.book, "mis:T1", policy=policy, at=at)
        assert teacher.data.emails == (Email("steve@school.test", EmailType.OTHER),)

    def test_written_delta_applies_after_a_full_bundle(self, tmp_path: Path) -> None:
        """write_bundle's full then delta bundles merge in order; removed keys depart."""
        policy = mis_policy()
        full_snapshot = sample()
        write_bundle(full_snapshot, tmp_path / "full")
        book = merge(
            Book(), read(tmp_path / "full").snapshot, policy=policy, at=london(23, 2), by="nightly"
        ).book
        change = Snapshot(
            "mis",
            london(24, 1, 55),
            [Record("P9", ContactData("Nina", "Shah", Role.PUPIL, year_group="10"))],
            SnapshotKind.DELTA,
            ("P8",),
        )
        write_bundle(change, tmp_path / "delta")
        delta = OneRosterAdapter(tmp_path / "delta").read(extracted_at=london(24, 1, 55))
        assert delta.snapshot == change
        result = merge(book, delta.snapshot, policy=policy, at=london(24, 2), by="nightly")
        assert result.report.departed == ("mis:P8",)
        nina = contact_at(result.book, "mis:P9", policy=policy, at=london(24, 9))
        assert (nina.data.family_name, nina.data.year_group) == ("Shah", "10")


class TestOneRosterContract(SourceAdapterContract):
    """The conformance kit over write_bundle and the adapter (OneRoster 1.2)."""

    version = "1.2"

    @pytest.fixture
    def sample(self, source_name: str) -> Snapshot:
        """The kit's school with every email retyped OTHER: the format has no email type."""
        return emails_typed_other(sample_school(source_name))

    @pytest.fixture
    def make_adapter(self) -> Callable[[Snapshot, Path], OneRosterAdapter]:
        """Write the kit's snapshot as a bundle of this version, then read it."""

        def make(snapshot: Snapshot, directory: Path) -> OneRosterAdapter:
            write_bundle(snapshot, directory, version=self.version)
            return OneRosterAdapter(directory, source=snapshot.source)

        return make

    @pytest.fixture
    def make_lenient_adapter(self) -> Callable[[Snapshot, Path], OneRosterAdapter]:
        """The same, with a reject limit of 50%."""

        def make(snapshot: Snapshot, directory: Path) -> OneRosterAdapter:
            write_bundle(snapshot, directory, version=self.version)
            return OneRosterAdapter(directory, source=snapshot.source, max_reject_fraction=0.5)

        return make

    @pytest.fixture
    def not_applicable(self) -> dict[str, str]:
        """write_bundle writes in key order, so the kit cannot reorder what it writes."""
        sorted_by_key = "write_bundle writes users and their links by key: bytes of the data alone"
        return {
            "test_the_order_of_written_records_does_not_matter": sorted_by_key,
            "test_the_order_of_links_does_not_matter": sorted_by_key,
        }


class TestOneRoster11Contract(TestOneRosterContract):
    """The conformance kit again, through OneRoster 1.1 bundles."""

    version = "1.1"


# -- night after night ---------------------------------------------------------------------------


def _pupil(key: str, year: str) -> Record:
    return Record(key, ContactData("Pat", "Pupil", Role.PUPIL, year_group=year))


def _guardian(key: str, *pupils: str, mobile: str = "07700 900101") -> Record:
    return Record(
        key,
        ContactData(
            "Gus",
            "Guard",
            Role.GUARDIAN,
            phones=(Phone(mobile),),
            emails=(Email(f"{key.lower()}@parent.test", EmailType.OTHER),),
            relationships=tuple(Relationship(p) for p in pupils),
        ),
    )


def _nights() -> list[dict[str, Record]]:
    """A school night by night: each night one change a delta must carry."""
    staff = Record(
        "T1",
        ContactData("Tom", "Teach", Role.STAFF, emails=(Email("t1@school.test", EmailType.OTHER),)),
    )
    first = [
        _pupil("P1", "9"),
        _pupil("P2", "8"),
        _pupil("P3", "7"),
        _guardian("G1", "P1"),
        _guardian("G2", "P2", "P3"),
        _guardian("G3", "P3"),
        staff,
    ]
    nights = [{r.key: r for r in first}]

    def then(*changed: Record, gone: tuple[str, ...] = ()) -> None:
        night = {**nights[-1], **{r.key: r for r in changed}}
        for key in gone:
            del night[key]
        nights.append(night)

    then(_guardian("G1", "P1", mobile="07700 900199"))  # a phone change
    then(_pupil("P2", "9"))  # a pupil moves up a year (1.2: with its role rows)
    then(_guardian("G1", "P1", "P3", mobile="07700 900199"))  # a guardian gains a child
    then(_guardian("G3"))  # a guardian loses its last child
    then(_guardian("G2", "P3"), gone=("P2",))  # a pupil leaves
    then(_guardian("G4", "P1", mobile="07700 900104"))  # a new guardian joins
    then(gone=("T1",))  # a member of staff leaves
    return nights


def _effective(book: Book, at: datetime) -> dict[str, tuple[ContactData, bool]]:
    policy = mis_policy(guard=DepartureGuard(enabled=False))
    return {c.id: (c.data, c.departed) for c in contacts_at(book, policy=policy, at=at)}


class TestNightAfterNight:
    """Full bundles and deltas over several nights give the same book."""

    policy = mis_policy(guard=DepartureGuard(enabled=False))

    def merge_read(
        self, book: Book, path: Path, night: int, **options: bool
    ) -> tuple[Book, Reading]:
        adapter = OneRosterAdapter(path, **options)  # type: ignore[arg-type]
        reading = adapter.read(extracted_at=london(10 + night, 1))
        result = merge(book, reading.snapshot, policy=self.policy, at=london(10 + night, 2), by="n")
        return result.book, reading

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_written_deltas_give_the_full_bundles_book(self, version: str, tmp_path: Path) -> None:
        """write_bundle's deltas, read with complete guardian lists (the default)."""
        nights = _nights()
        by_full = by_delta = Book()
        for night, records in enumerate(nights):
            at = london(10 + night, 1)
            full = Snapshot("mis", at, sorted(records.values(), key=lambda r: r.key))
            write_bundle(full, tmp_path / f"full{night}", version=version)
            by_full, _ = self.merge_read(by_full, tmp_path / f"full{night}", night)
            if night == 0:
                by_delta = by_full
                continue
            before = nights[night - 1]
            changed = [r for k, r in sorted(records.items()) if before.get(k) != r]
            gone = tuple(sorted(set(before) - set(records)))
            delta = Snapshot("mis", at, changed, SnapshotKind.DELTA, gone)
            write_bundle(delta, tmp_path / f"delta{night}", version=version)
            by_delta, reading = self.merge_read(by_delta, tmp_path / f"delta{night}", night)
            assert not codes(reading, "agent-one-sided")
            assert _effective(by_delta, london(10 + night, 9)) == _effective(
                by_full, london(10 + night, 9)
            ), f"night {night}"
        last = _effective(by_delta, london(10 + len(nights), 9))
        assert last["mis:G3"][0].relationships == ()
        assert last["mis:G4"][0].relationships == (Relationship("P1"),)
        assert last["mis:G1"][0].relationships == (Relationship("P1"), Relationship("P3"))
        assert last["mis:P2"][1]
        assert last["mis:T1"][1]

    def test_one_sided_deltas_with_incomplete_guardian_lists(self, tmp_path: Path) -> None:
        """Links on pupil rows only, read with guardian_agents_complete=False.

        A new guardian is linked from the pupil row that names it. The documented
        limitation: a link removed on a pupil's row alone stays until the next full
        bundle, with an agent-removal-unseen notice.
        """
        first = {
            "P1": user("P1", "student", agentSourcedIds="G1", grades="9"),
            "P2": user("P2", "student", agentSourcedIds="G1", grades="8"),
            "P3": user("P3", "student", agentSourcedIds="G2", grades="7"),
            "G1": user("G1", "parent", sms="07700 900101"),
            "G2": user("G2", "parent", sms="07700 900102"),
        }
        nights = [first]
        nights.append({**first, "G1": user("G1", "parent", sms="07700 900199")})
        nights.append(
            {
                **nights[-1],
                "P3": user("P3", "student", agentSourcedIds="G2,G9", grades="7"),
                "G9": user("G9", "parent", sms="07700 900109"),
            }
        )
        nights.append({**nights[-1], "P2": user("P2", "student", grades="8")})
        by_full = by_delta = Book()
        for night, rows in enumerate(nights):
            full = bundle(
                tmp_path,
                {
                    "manifest.csv": manifest(),
                    "users.csv": table(USERS_11, *rows.values()),
                    "orgs.csv": orgs("org-a"),
                },
                f"full{night}",
            )
            by_full, _ = self.merge_read(by_full, full, night, **INCOMPLETE)
            if night == 0:
                by_delta = by_full
                continue
            changed = [r for k, r in rows.items() if nights[night - 1].get(k) != r]
            delta = bundle(
                tmp_path,
                {"manifest.csv": manifest(users="delta"), "users.csv": table(USERS_11, *changed)},
                f"delta{night}",
            )
            by_delta, reading = self.merge_read(by_delta, delta, night, **INCOMPLETE)
            seen = _effective(by_delta, london(10 + night, 9))
            expected = _effective(by_full, london(10 + night, 9))
            if night < 3:
                assert seen == expected, f"night {night}"
                continue
            # P2's row no longer names G1: the delta cannot unlink G1, and says so.
            assert codes(reading, "agent-removal-unseen") == [("users.csv", 2, "agentSourcedIds")]
            assert expected["mis:G1"][0].relationships == (Relationship("P1"),)
            assert seen["mis:G1"][0].relationships == (Relationship("P1"), Relationship("P2"))
            assert {k: v for k, v in seen.items() if k != "mis:G1"} == {
                k: v for k, v in expected.items() if k != "mis:G1"
            }
        assert _effective(by_delta, london(12, 9))["mis:G9"][0].relationships == (
            Relationship("P3"),
        )
        # The next full bundle puts it right.
        by_delta, _ = self.merge_read(by_delta, tmp_path / "full3", 4, **INCOMPLETE)
        assert _effective(by_delta, london(14, 9)) == _effective(by_full, london(14, 9))
