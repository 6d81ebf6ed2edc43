"""The School Data Sync (SDS) v2.1 CSV adapter: reading, tolerance, errors, writing back.

There is no public SDS corpus with guardians, so each test writes a small
school's files into ``tmp_path``, shaped like Microsoft's v2.1 samples (the
student is ``userSourcedId`` in ``relationships.csv``; contacts have no
``roles.csv`` row). Every number is an Ofcom drama number and every address
is at a ``.test`` or ``example.org`` domain.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budget
from school import london, mis_policy
from sourcetruth import (
    AdapterError,
    Book,
    Channel,
    ContactData,
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
    merge,
    recipients,
)
from sourcetruth.adapters import SourceAdapter
from sourcetruth.adapters.sources.sds import COVERS, SdsAdapter, write_files
from sourcetruth.exceptions import EncodingError, RejectedFileError, format_errors
from sourcetruth.testing import strategies as sts
from sourcetruth.testing.conformance import SourceAdapterContract

AT = london(23, 1, 55)

ORGS = """\
sourcedId,name,type,parentSourcedId
trust,Example Trust,academicTrust,
oak,Oak Academy,school,trust
elm,Elm Primary,school,trust
"""

USERS_HEADER = (
    "sourcedId,username,givenName,familyName,password,activeDirectoryMatchId,email,phone,sms\n"
)
USERS = USERS_HEADER + (
    "P9,nina@oak.test,Nina,Okafor,,,,,\n"
    "P8,omar@oak.test,Omar,Nowak,,,,,\n"
    "E5,ivy@elm.test,Ivy,Singh,,,,,\n"
    "G9,g9@parent.test,Gita,Okafor,,,g9@parent.test,01632 960101,07700 900101\n"
    "G8,g8@parent.test,Hal,Nowak,,,g8@parent.test,,07700 900102\n"
    "G5,g5@parent.test,Paula,Singh,,,g5@parent.test,,+44 7700 900103\n"
    "S1,s1@oak.test,Steve,Byrne,,,s1@school.test,,07700 900201\n"
)

ROLES_HEADER = (
    "userSourcedId,orgSourcedId,role,sessionSourcedId,grade,isPrimary,roleStartDate,roleEndDate\n"
)
ROLES = ROLES_HEADER + (
    "P9,oak,student,SY2026,9,TRUE,2026-09-01,2027-07-20\n"
    "P8,oak,student,SY2026,8,TRUE,2026-09-01,2027-07-20\n"
    "E5,elm,student,SY2026,5,TRUE,2026-09-01,2027-07-20\n"
    "S1,oak,teacher,SY2026,,TRUE,2026-09-01,2027-07-20\n"
)

RELATIONSHIPS_HEADER = "userSourcedId,relationshipUserSourcedId,relationshipRole\n"
RELATIONSHIPS = RELATIONSHIPS_HEADER + ("P9,G9,parent\nP8,G8,guardian\nE5,G5,relative\n")


def write_school(
    folder: Path,
    *,
    orgs: str = ORGS,
    users: str = USERS,
    roles: str = ROLES,
    relationships: str | None = RELATIONSHIPS,
) -> Path:
    """Write the four files (text as UTF-8) into *folder* and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orgs.csv").write_text(orgs, encoding="utf-8")
    (folder / "users.csv").write_text(users, encoding="utf-8")
    (folder / "roles.csv").write_text(roles, encoding="utf-8")
    if relationships is not None:
        (folder / "relationships.csv").write_text(relationships, encoding="utf-8")
    return folder


def read(folder: Path, **kwargs: object) -> tuple[Snapshot, list[str], int]:
    """Read *folder*; return the snapshot, the notice codes and the rejected count."""
    reading = SdsAdapter(folder, **kwargs).read(extracted_at=AT)  # type: ignore[arg-type]
    return reading.snapshot, [n.code for n in reading.notices], reading.rejected


def by_key(snapshot: Snapshot) -> dict[str, ContactData]:
    """The snapshot's records as key to data."""
    return {r.key: r.data for r in snapshot.records}


def problems(error: RejectedFileError) -> list[SourceDataError]:
    """The problems of *error*, each a SourceDataError."""
    found = [p for p in error.exceptions if isinstance(p, SourceDataError)]
    assert len(found) == len(error.exceptions)
    return found


def everything_said(error: RejectedFileError) -> str:
    """All the text an error shows a person: message, problems and notes."""
    return "\n".join([format_errors(error), str(error), *getattr(error, "__notes__", [])])


class TestReadingASchool:
    def test_pupils_guardians_and_staff(self, tmp_path: Path) -> None:
        """A small school reads as pupils with year groups, linked guardians and staff."""
        snapshot, codes, rejected = read(write_school(tmp_path))
        assert snapshot.kind is SnapshotKind.FULL
        assert snapshot.source == "mis"
        assert rejected == 0
        assert codes == []
        assert [r.key for r in snapshot.records] == ["E5", "G5", "G8", "G9", "P8", "P9", "S1"]
        data = by_key(snapshot)
        assert data["P9"] == ContactData("Nina", "Okafor", Role.PUPIL, year_group="9")
        assert data["G9"] == ContactData(
            "Gita",
            "Okafor",
            Role.GUARDIAN,
            phones=(
                Phone("07700 900101", PhoneType.MOBILE),
                Phone("01632 960101", PhoneType.HOME),
            ),
            emails=(Email("g9@parent.test", EmailType.HOME),),
            relationships=(Relationship("P9"),),
        )
        assert data["G5"].relationships == (Relationship("E5"),)
        assert data["S1"].role is Role.STAFF
        assert data["S1"].emails == (Email("s1@school.test", EmailType.WORK),)
        assert data["S1"].year_group == ""

    def test_values_kept_as_written(self, tmp_path: Path) -> None:
        """Phone numbers are not normalised by the adapter: the merge does that."""
        data = by_key(read(write_school(tmp_path))[0])
        assert data["G5"].phones == (Phone("+44 7700 900103", PhoneType.MOBILE),)

    def test_the_adapter_describes_itself(self, tmp_path: Path) -> None:
        """The adapter keeps the SourceAdapter protocol and says what it covers."""
        adapter = SdsAdapter(tmp_path, source="sds", org="oak")
        assert isinstance(adapter, SourceAdapter)
        assert adapter.source == "sds"
        assert adapter.kind is SourceKind.MIS
        assert adapter.covers == COVERS
        assert "registration_group" not in adapter.covers
        assert adapter.supports_delta is False
        assert repr(adapter) == f"SdsAdapter(path={str(tmp_path)!r}, source='sds')"

    def test_reading_twice_gives_equal_readings(self, tmp_path: Path) -> None:
        """The same files and time give the same reading (no clock, no randomness)."""
        adapter = SdsAdapter(write_school(tmp_path))
        assert adapter.read(extracted_at=AT) == adapter.read(extracted_at=AT)

    def test_source_name_is_checked(self, tmp_path: Path) -> None:
        """A source name with ':' cannot make record ids, so it is refused at once."""
        with pytest.raises(UsageError):
            SdsAdapter(tmp_path, source="mis:sds")

    def test_guardian_role_in_roles_file(self, tmp_path: Path) -> None:
        """A contact listed in roles.csv as 'parent' (as other exports do) is a guardian."""
        roles = ROLES + "G8,oak,parent,,,TRUE,,\n"
        data = by_key(read(write_school(tmp_path, roles=roles))[0])
        assert data["G8"].role is Role.GUARDIAN
        assert data["G8"].relationships == (Relationship("P8"),)

    def test_unknown_and_alumni_roles_are_other(self, tmp_path: Path) -> None:
        """An unknown role is 'other' with a notice; alumni are not read as staff."""
        users = USERS + "X1,x1@oak.test,Sam,Moreau,,,,,\nX2,x2@oak.test,Kwame,Lindqvist,,,,,\n"
        roles = ROLES + "X1,oak,janitor,,,TRUE,,\nX2,oak,alumni,,,TRUE,,\n"
        snapshot, codes, _ = read(write_school(tmp_path, users=users, roles=roles))
        data = by_key(snapshot)
        assert data["X1"].role is Role.OTHER
        assert data["X2"].role is Role.OTHER
        assert codes == ["unknown-role"]

    def test_conflicting_roles_follow_is_primary(self, tmp_path: Path) -> None:
        """A user with a student and a staff row takes the role of its isPrimary row."""
        roles = ROLES + "S1,elm,student,,7,FALSE,,\n"
        snapshot, codes, _ = read(write_school(tmp_path, roles=roles))
        assert by_key(snapshot)["S1"].role is Role.STAFF
        assert "role-conflict" in codes

    def test_user_with_no_role_and_no_link(self, tmp_path: Path) -> None:
        """A user with neither a role nor a link is 'other', and the reading says so."""
        users = USERS + "Z1,z1@example.org,Zofia,Nowak,,,z1@example.org,,\n"
        snapshot, codes, _ = read(write_school(tmp_path, users=users))
        assert by_key(snapshot)["Z1"].role is Role.OTHER
        assert codes == ["no-role"]


class TestHeaders:
    def test_case_drift_is_read_with_notices(self, tmp_path: Path) -> None:
        """Headers differing only in case are read, each with a header-case notice."""
        users = USERS.replace("sourcedId,username,givenName", "SourcedID,UserName,givenname", 1)
        reading = SdsAdapter(write_school(tmp_path, users=users)).read(extracted_at=AT)
        drift = [n for n in reading.notices if n.code == "header-case"]
        assert [(n.file, n.field) for n in drift] == [
            ("users.csv", "sourcedId"),
            ("users.csv", "username"),
            ("users.csv", "givenName"),
        ]
        assert by_key(reading.snapshot)["G9"].given_name == "Gita"

    def test_unknown_column_is_named_by_position(self, tmp_path: Path) -> None:
        """An unknown column is ignored with a notice that does not repeat its header."""
        lines = USERS.splitlines()
        users = "\n".join([lines[0] + ",nickname", *(line + ",Nin" for line in lines[1:])]) + "\n"
        reading = SdsAdapter(write_school(tmp_path, users=users)).read(extracted_at=AT)
        unknown = [n for n in reading.notices if n.code == "unknown-column"]
        assert len(unknown) == 1
        assert (unknown[0].file, unknown[0].field) == ("users.csv", "column 10")
        assert "nickname" not in str(unknown[0])

    def test_missing_required_column(self, tmp_path: Path) -> None:
        """A file without a required column is refused, naming the file and the column."""
        users = "\n".join(line.rsplit(",", 1)[0] for line in USERS.splitlines()) + "\n"
        assert users.startswith(USERS_HEADER.replace(",sms", ""))
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, users=users))
        found = [(p.file, p.field) for p in problems(caught.value)]
        assert found == [("users.csv", "sms")]

    def test_problems_of_several_files_come_together(self, tmp_path: Path) -> None:
        """Missing columns in two files are reported in one error, both named."""
        users = "".join(
            ",".join(cells[:2] + cells[3:]) + "\n"
            for cells in (line.split(",") for line in USERS.splitlines())
        )
        assert users.startswith("sourcedId,username,familyName,")
        roles = ROLES.replace("grade,", "gradeLevel,", 1)
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, users=users, roles=roles))
        found = {(p.file, p.field) for p in problems(caught.value)}
        assert found == {("users.csv", "givenName"), ("roles.csv", "grade")}

    def test_same_column_twice(self, tmp_path: Path) -> None:
        """Two headers that differ only in case are ambiguous, so the file is refused."""
        relationships = (
            "userSourcedId,relationshipUserSourcedId,relationshipRole,RelationshipRole\n"
            "P9,G9,parent,parent\n"
        )
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, relationships=relationships))
        found = [(p.file, p.line, p.field) for p in problems(caught.value)]
        assert found == [("relationships.csv", 1, "relationshipRole")]


class TestFiles:
    def test_missing_folder(self, tmp_path: Path) -> None:
        """A folder that does not exist is an AdapterError, not a data error."""
        with pytest.raises(AdapterError):
            SdsAdapter(tmp_path / "nowhere").read(extracted_at=AT)

    @pytest.mark.parametrize("name", ["orgs.csv", "users.csv", "roles.csv", "relationships.csv"])
    def test_missing_file(self, tmp_path: Path, name: str) -> None:
        """Each of the four files is needed; a missing one is a data problem naming it.

        The export is incomplete, which trying again does not mend, so it is a
        SourceDataError in the RejectedFileError, not an AdapterError.
        """
        write_school(tmp_path)
        (tmp_path / name).unlink()
        with pytest.raises(RejectedFileError) as caught:
            SdsAdapter(tmp_path).read(extracted_at=AT)
        found = problems(caught.value)
        assert [(type(p), p.file, p.line) for p in found] == [(SourceDataError, name, None)]
        assert "missing" in str(found[0])
        assert caught.value.file == name
        assert not isinstance(caught.value, AdapterError)

    def test_missing_file_is_reported_with_the_other_problems(self, tmp_path: Path) -> None:
        """A missing file does not hide the problems of the files that are there."""
        roles = ROLES.replace("grade,", "gradeLevel,", 1)
        write_school(tmp_path, roles=roles, relationships=None)
        with pytest.raises(RejectedFileError) as caught:
            SdsAdapter(tmp_path).read(extracted_at=AT)
        found = {(p.file, p.field) for p in problems(caught.value)}
        assert found == {("relationships.csv", None), ("roles.csv", "grade")}

    def test_two_files_that_could_be_one(self, tmp_path: Path) -> None:
        """'Users.csv' beside 'USERS.CSV' (no exact name): ambiguous, a data problem."""
        write_school(tmp_path)
        (tmp_path / "users.csv").rename(tmp_path / "Users.csv")
        (tmp_path / "USERS.CSV").write_text(USERS, encoding="utf-8")
        if len(list(tmp_path.iterdir())) < 5:
            pytest.skip("the file system does not tell names apart by case")
        with pytest.raises(RejectedFileError) as caught:
            SdsAdapter(tmp_path).read(extracted_at=AT)
        assert [p.file for p in problems(caught.value)] == ["users.csv"]

    def test_unreadable_file_is_an_adapter_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file that is there but cannot be read is an input/output failure, not data."""
        write_school(tmp_path)
        real = Path.read_bytes

        def failing(path: Path) -> bytes:
            if path.name == "roles.csv":
                raise PermissionError(13, "Permission denied")
            return real(path)

        monkeypatch.setattr(Path, "read_bytes", failing)
        with pytest.raises(AdapterError, match=r"roles\.csv"):
            SdsAdapter(tmp_path).read(extracted_at=AT)

    def test_file_name_case(self, tmp_path: Path) -> None:
        """'Users.csv' is read as users.csv, with a notice (SDS names files exactly)."""
        write_school(tmp_path)
        (tmp_path / "users.csv").rename(tmp_path / "Users.csv")
        snapshot, codes, _ = read(tmp_path)
        assert codes == ["file-name-case"]
        assert len(snapshot.records) == 7


class TestRelationships:
    def reading(self, folder: Path, rows: str) -> tuple[dict[str, ContactData], list[object]]:
        """Read the school with *rows* as its relationships."""
        result = SdsAdapter(write_school(folder, relationships=RELATIONSHIPS_HEADER + rows)).read(
            extracted_at=AT
        )
        return by_key(result.snapshot), list(result.notices)

    def test_wrong_way_is_skipped_not_turned_round(self, tmp_path: Path) -> None:
        """A link with the pupil as the contact makes no link, with a notice naming where."""
        data, notices = self.reading(tmp_path, "G9,P9,parent\nP8,G8,guardian\n")
        assert data["G9"].relationships == ()
        assert data["P9"].relationships == ()
        assert data["G8"].relationships == (Relationship("P8"),)
        direction = [n for n in notices if getattr(n, "code", "") == "relationship-direction"]
        assert len(direction) == 1
        notice = direction[0]
        assert (notice.file, notice.line, notice.field, notice.key) == (  # type: ignore[attr-defined]
            "relationships.csv",
            2,
            "relationshipUserSourcedId",
            None,  # rows are named by line, never by an id
        )

    def test_missing_end(self, tmp_path: Path) -> None:
        """A link to a user who is not in users.csv is skipped with a notice."""
        data, notices = self.reading(tmp_path, "P9,G9,parent\nP404,G8,parent\n")
        assert data["G8"].relationships == ()
        assert data["G8"].role is Role.OTHER
        missing = [n for n in notices if getattr(n, "code", "") == "relationship-missing-user"]
        assert [(n.line, n.field, n.key) for n in missing] == [  # type: ignore[attr-defined]
            (3, "userSourcedId", None)
        ]

    def test_two_pupils(self, tmp_path: Path) -> None:
        """A link between two pupils gives neither of them a relationship."""
        data, notices = self.reading(tmp_path, "P9,P8,relative\n")
        assert data["P8"].relationships == ()
        assert [getattr(n, "code", "") for n in notices if "two" in getattr(n, "code", "")] == [
            "relationship-two-pupils"
        ]

    def test_contact_side_must_be_a_pupil_on_the_left(self, tmp_path: Path) -> None:
        """A link from a staff member to a guardian names no pupil, so it is skipped."""
        data, notices = self.reading(tmp_path, "S1,G9,parent\n")
        assert data["G9"].relationships == ()
        assert "relationship-not-pupil" in [getattr(n, "code", "") for n in notices]

    def test_doctor_is_not_a_guardian(self, tmp_path: Path) -> None:
        """An SDS 'doctor' contact gets no guardian link and no guardian role."""
        data, notices = self.reading(tmp_path, "P9,G9,doctor\n")
        assert data["G9"].relationships == ()
        assert data["G9"].role is Role.OTHER
        assert "relationship-not-guardian" in [getattr(n, "code", "") for n in notices]

    def test_duplicate_link_is_read_once(self, tmp_path: Path) -> None:
        """The same link twice is one relationship, with a notice."""
        data, notices = self.reading(tmp_path, "P9,G9,parent\nP9,G9,guardian\n")
        assert data["G9"].relationships == (Relationship("P9"),)
        assert "duplicate-relationship" in [getattr(n, "code", "") for n in notices]

    def test_links_are_in_key_order(self, tmp_path: Path) -> None:
        """A guardian of two pupils holds both links by key: the file's order is no change."""
        data, _ = self.reading(tmp_path, "P9,G9,parent\nE5,G9,parent\n")
        assert data["G9"].relationships == (Relationship("E5"), Relationship("P9"))
        again, _ = self.reading(tmp_path / "again", "E5,G9,parent\nP9,G9,parent\n")
        assert again["G9"].relationships == data["G9"].relationships

    def test_staff_member_who_is_a_parent(self, tmp_path: Path) -> None:
        """A teacher linked to a pupil stays staff and holds the link."""
        data, _ = self.reading(tmp_path, "P8,S1,parent\n")
        assert data["S1"].role is Role.STAFF
        assert data["S1"].relationships == (Relationship("P8"),)


class TestLineBreaks:
    def test_a_cell_with_a_line_break_is_kept_with_a_notice(self, tmp_path: Path) -> None:
        """SDS forbids line breaks in cells: the value is kept, with a notice naming where.

        The line is the one the row starts on, counted in physical lines.
        """
        users = USERS.replace("Gita,Okafor", '"Gi\r\nta",Okafor').replace(
            "Steve,Byrne", 'Steve,"By\nrne"'
        )
        folder = write_school(tmp_path, users=users)
        reading = SdsAdapter(folder).read(extracted_at=AT)
        data = by_key(reading.snapshot)
        assert data["G9"].given_name == "Gi\r\nta"
        assert data["S1"].family_name == "By\nrne"
        breaks = [n for n in reading.notices if n.code == "line-break"]
        assert [(n.file, n.line, n.field, n.key) for n in breaks] == [
            ("users.csv", 5, "givenName", None),
            ("users.csv", 9, "familyName", None),
        ]
        assert all("Gi" not in str(n) and "By" not in str(n) for n in breaks)
        assert reading.snapshot.kind is SnapshotKind.FULL

    def test_a_line_break_in_an_unknown_column_is_not_reported(self, tmp_path: Path) -> None:
        """A column that SDS does not define is ignored, line breaks and all."""
        relationships = (
            "userSourcedId,relationshipUserSourcedId,relationshipRole,comment\n"
            'P9,G9,parent,"two\nlines"\nP8,G8,guardian,\nE5,G5,relative,\n'
        )
        _, codes, _ = read(write_school(tmp_path, relationships=relationships))
        assert codes == ["unknown-column"]


class TestBadRows:
    SECRET_NAME = "Aoife"
    SECRET_PHONE = "07700 900999"
    SECRET_EMAIL = "aoife.secret@example.org"

    def bad_users(self, row: str) -> str:
        """users.csv of the school with *row* added."""
        return USERS + row

    def test_row_without_sourced_id(self, tmp_path: Path) -> None:
        """A row with no sourcedId is an error naming file, line and field, not the values."""
        row = f",u@oak.test,{self.SECRET_NAME},Byrne,,,{self.SECRET_EMAIL},,{self.SECRET_PHONE}\n"
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, users=self.bad_users(row)))
        found = problems(caught.value)
        assert [(p.file, p.line, p.field) for p in found] == [("users.csv", 9, "sourcedId")]
        said = everything_said(caught.value)
        for secret in (self.SECRET_NAME, self.SECRET_PHONE, self.SECRET_EMAIL):
            assert secret not in said

    def test_row_with_too_few_cells(self, tmp_path: Path) -> None:
        """A row cut short is rejected without its values appearing in the error."""
        row = f"X9,x9@oak.test,{self.SECRET_NAME},{self.SECRET_PHONE}\n"
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, users=self.bad_users(row)))
        assert [(p.file, p.line) for p in problems(caught.value)] == [("users.csv", 9)]
        said = everything_said(caught.value)
        assert self.SECRET_NAME not in said
        assert self.SECRET_PHONE not in said

    def test_duplicate_sourced_id(self, tmp_path: Path) -> None:
        """Two rows with one sourcedId are both rejected: which is the person is unknown."""
        row = f"G8,g8b@parent.test,{self.SECRET_NAME},Nowak,,,{self.SECRET_EMAIL},,\n"
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, users=self.bad_users(row)))
        found = problems(caught.value)
        assert [(p.line, p.field, p.key) for p in found] == [
            (6, "sourcedId", None),
            (9, "sourcedId", None),
        ]
        assert self.SECRET_EMAIL not in everything_said(caught.value)

    def test_bad_role_row(self, tmp_path: Path) -> None:
        """A roles.csv row without a role is rejected with its line and field."""
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path, roles=ROLES + "G9,oak,,,,,,\n"))
        found = problems(caught.value)
        assert [(p.file, p.line, p.field) for p in found] == [("roles.csv", 6, "role")]
        assert all(isinstance(p, SourceDataError) for p in found)


class TestRejectFraction:
    def test_under_the_limit_gives_a_delta(self, tmp_path: Path) -> None:
        """Rejects within max_reject_fraction give the good rows as a delta, with notices."""
        users = USERS + "X9,x9@oak.test,Aoife\n"  # one bad row in eight
        snapshot, codes, rejected = read(
            write_school(tmp_path, users=users), max_reject_fraction=0.2
        )
        assert snapshot.kind is SnapshotKind.DELTA
        assert snapshot.removed == ()
        assert rejected == 1
        assert "rejected-row" in codes
        assert "partial-read" in codes
        assert "X9" not in by_key(snapshot)
        assert by_key(snapshot)["G9"].relationships == (Relationship("P9"),)

    def test_over_the_limit_is_refused(self, tmp_path: Path) -> None:
        """Rejects above max_reject_fraction refuse the read."""
        users = USERS + "X9,x9@oak.test,Aoife\nX8,x8@oak.test,Omar\n"  # two in nine
        with pytest.raises(RejectedFileError):
            read(write_school(tmp_path, users=users), max_reject_fraction=0.2)

    def test_a_rejected_pupil_does_not_unlink_its_guardian(self, tmp_path: Path) -> None:
        """The guardian of a pupil whose row was rejected is held back, not read unlinked."""
        users = USERS.replace("P9,nina@oak.test,Nina,Okafor,,,,,\n", "P9,nina@oak.test\n")
        snapshot, codes, rejected = read(
            write_school(tmp_path, users=users), max_reject_fraction=0.2
        )
        assert rejected == 1
        data = by_key(snapshot)
        assert "P9" not in data
        assert "G9" not in data
        assert data["G8"].relationships == (Relationship("P8"),)
        assert "held-back" in codes

    def test_a_rejected_role_row_holds_back_contacts(self, tmp_path: Path) -> None:
        """With a roles.csv row lost, users whose role would be inferred are held back."""
        roles = ROLES + "G9,oak,parent,,,TRUE,,,extra\n"
        snapshot, _, rejected = read(write_school(tmp_path, roles=roles), max_reject_fraction=0.5)
        assert rejected == 1
        assert snapshot.kind is SnapshotKind.DELTA
        assert sorted(by_key(snapshot)) == ["E5", "P8", "P9", "S1"]

    def test_every_row_rejected_is_refused(self, tmp_path: Path) -> None:
        """A file whose rows were all rejected is refused whatever the fraction."""
        relationships = RELATIONSHIPS_HEADER + "P9,G9\n"
        with pytest.raises(RejectedFileError):
            read(write_school(tmp_path, relationships=relationships), max_reject_fraction=1.0)


class TestEncoding:
    def test_utf8_bom_is_accepted(self, tmp_path: Path) -> None:
        """A UTF-8 file with a byte-order mark (as Excel saves) reads like one without."""
        users = USERS.replace("Nina,Okafor", "Zoë,Moreau")
        write_school(tmp_path, users=users)
        (tmp_path / "users.csv").write_bytes(codecs.BOM_UTF8 + users.encode("utf-8"))
        snapshot, codes, _ = read(tmp_path)
        assert codes == []
        assert by_key(snapshot)["P9"].given_name == "Zoë"

    def test_cp1252_is_refused_unless_allowed(self, tmp_path: Path) -> None:
        """A cp1252 file is an encoding error by default, and read correctly when allowed."""
        users = USERS.replace("Nina,Okafor", "Zoë,Moreau")
        write_school(tmp_path, users=users)
        (tmp_path / "users.csv").write_bytes(users.encode("cp1252"))
        with pytest.raises(RejectedFileError) as caught:
            read(tmp_path)
        assert [type(p) for p in problems(caught.value)] == [EncodingError]
        assert problems(caught.value)[0].file == "users.csv"
        snapshot, codes, _ = read(tmp_path, allow_cp1252=True)
        assert by_key(snapshot)["P9"].given_name == "Zoë"
        assert codes == ["cp1252"]


class TestOrgFilter:
    def test_one_school(self, tmp_path: Path) -> None:
        """org keeps that school's users and its pupils' guardians, nobody else."""
        snapshot, _, _ = read(write_school(tmp_path), org="oak")
        assert sorted(by_key(snapshot)) == ["G8", "G9", "P8", "P9", "S1"]

    def test_an_org_and_the_orgs_below_it(self, tmp_path: Path) -> None:
        """A trust's id keeps the users of every school whose parent is the trust."""
        snapshot, _, _ = read(write_school(tmp_path), org="trust")
        assert len(snapshot.records) == 7

    def test_links_into_another_school_are_dropped(self, tmp_path: Path) -> None:
        """A guardian of pupils in two schools keeps only the link into the school read."""
        relationships = RELATIONSHIPS + "E5,G9,parent\n"
        snapshot, codes, _ = read(write_school(tmp_path, relationships=relationships), org="oak")
        assert by_key(snapshot)["G9"].relationships == (Relationship("P9"),)
        assert "relationship-outside-org" in codes

    def test_unknown_org(self, tmp_path: Path) -> None:
        """An org that orgs.csv does not list is an error, not an empty read."""
        with pytest.raises(RejectedFileError) as caught:
            read(write_school(tmp_path), org="ash")
        assert [(p.file, p.field) for p in problems(caught.value)] == [("orgs.csv", "sourcedId")]


def carryable() -> Snapshot:
    """A full snapshot of values SDS v2.1 can carry, roles of every kind it has."""
    return Snapshot(
        "mis",
        AT,
        (
            Record("P1", ContactData("Nina", "Okafor", Role.PUPIL, year_group="9")),
            Record("P2", ContactData("Omar", "Nowak", Role.PUPIL, year_group="")),
            Record(
                "G1",
                ContactData(
                    "Gita",
                    "Okafor",
                    Role.GUARDIAN,
                    phones=(
                        Phone(" 07700 900101 ", PhoneType.MOBILE),
                        Phone("(01632) 960 101", PhoneType.HOME),
                    ),
                    emails=(Email(" g1@Parent.TEST", EmailType.HOME),),
                    relationships=(Relationship("P2"), Relationship("P1")),
                ),
            ),
            Record("G2", ContactData("Hal", "O'Neill, Jr", Role.GUARDIAN)),
            Record(
                "S1",
                ContactData(
                    "Steve",
                    'Byrne "Coach"',
                    Role.STAFF,
                    phones=(Phone("+44 7700 900201", PhoneType.MOBILE),),
                    emails=(Email("s1@school.test", EmailType.WORK),),
                    relationships=(Relationship("P1"),),
                ),
            ),
            Record("X1", ContactData("Zoë", "Lindqvist", Role.OTHER)),
        ),
    )


def fit(snapshot: Snapshot) -> Snapshot:
    """*snapshot* with every value SDS v2.1 cannot carry taken out."""
    pupils = {r.key for r in snapshot.records if r.data.role is Role.PUPIL}
    records = []
    for record in snapshot.records:
        data = record.data
        role = Role.OTHER if data.role is Role.GOVERNOR else data.role
        mobile = [p for p in data.phones if p.type is PhoneType.MOBILE and p.number.strip()]
        home = [p for p in data.phones if p.type is PhoneType.HOME and p.number.strip()]
        kind = EmailType.WORK if role is Role.STAFF else EmailType.HOME
        emails = [Email(e.address, kind) for e in data.emails if e.address.strip()][:1]
        links = [] if role is Role.PUPIL else [Relationship(r.pupil) for r in data.relationships]
        links = [r for i, r in enumerate(links) if r.pupil in pupils and r not in links[:i]]
        links.sort(key=lambda r: r.pupil)
        records.append(
            Record(
                record.key,
                ContactData(
                    data.given_name,
                    data.family_name,
                    role,
                    phones=mobile[:1] + home[:1],
                    emails=emails,
                    relationships=links,
                    year_group=data.year_group if role is Role.PUPIL else "",
                ),
            )
        )
    return Snapshot(snapshot.source, snapshot.extracted_at, sorted(records, key=lambda r: r.key))


class TestWriteFiles:
    def test_round_trip(self, tmp_path: Path) -> None:
        """Reading what write_files wrote gives the snapshot back, without notices."""
        snapshot = carryable()
        write_files(snapshot, tmp_path)
        reading = SdsAdapter(tmp_path).read(extracted_at=AT)
        assert reading.notices == ()
        assert reading.snapshot == fit(snapshot)
        assert reading.snapshot.records == tuple(sorted(fit(snapshot).records, key=lambda r: r.key))

    def test_round_trip_of_a_read_school(self, tmp_path: Path) -> None:
        """A school read from SDS files, written and read again, is the same snapshot."""
        first = SdsAdapter(write_school(tmp_path / "in")).read(extracted_at=AT).snapshot
        write_files(first, tmp_path / "out")
        assert SdsAdapter(tmp_path / "out").read(extracted_at=AT).snapshot == first

    def test_files_are_plain_sds(self, tmp_path: Path) -> None:
        """The files have SDS's names and headers, and linked guardians have no role row."""
        write_files(carryable(), tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "orgs.csv",
            "relationships.csv",
            "roles.csv",
            "users.csv",
        ]
        roles = (tmp_path / "roles.csv").read_text(encoding="utf-8").splitlines()
        assert roles[0] == "userSourcedId,orgSourcedId,role,grade,isPrimary"
        assert not any(line.startswith("G1,") for line in roles)
        assert "G2,school,guardian,,TRUE" in roles
        links = (tmp_path / "relationships.csv").read_text(encoding="utf-8").splitlines()
        assert links[1:] == ["P2,G1,guardian", "P1,G1,guardian", "P1,S1,guardian"]

    def test_bytes_are_deterministic(self, tmp_path: Path) -> None:
        """The bytes depend on the snapshot alone, not on the order of its records."""
        snapshot = carryable()
        shuffled = Snapshot("mis", AT, tuple(reversed(snapshot.records)))
        write_files(snapshot, tmp_path / "a")
        write_files(shuffled, tmp_path / "b")
        for name in ("orgs.csv", "users.csv", "roles.csv", "relationships.csv"):
            first = (tmp_path / "a" / name).read_bytes()
            assert first == (tmp_path / "b" / name).read_bytes()
            assert not first.startswith(codecs.BOM_UTF8)

    @pytest.mark.parametrize(
        ("data", "why"),
        [
            (ContactData(role=Role.GOVERNOR), "no role for governor"),
            (ContactData(phones=(Phone("07700 900301", PhoneType.WORK),)), "only a mobile"),
            (
                ContactData(emails=(Email("a@example.org"), Email("b@example.org"))),
                "one email",
            ),
            (ContactData(relationships=(Relationship("P1", priority=2),)), "no priority"),
            (ContactData(Role.STAFF.value, role=Role.STAFF, emails=(Email("s@x.test"),)), "work"),
        ],
    )
    def test_values_it_cannot_carry(self, tmp_path: Path, data: ContactData, why: str) -> None:
        """A covered value SDS cannot hold is a UsageError naming the record, never a loss."""
        pupil = Record("P1", ContactData(role=Role.PUPIL))
        snapshot = Snapshot("mis", AT, (pupil, Record("K1", data)))
        with pytest.raises(UsageError, match=why) as caught:
            write_files(snapshot, tmp_path)
        assert "'K1'" in str(caught.value)
        assert "07700" not in str(caught.value)
        assert not (tmp_path / "users.csv").exists()

    def test_a_delta_is_refused(self, tmp_path: Path) -> None:
        """SDS files are the whole data set, so a delta cannot be written as them."""
        with pytest.raises(UsageError):
            write_files(Snapshot("mis", AT, (), SnapshotKind.DELTA, ("K1",)), tmp_path)

    @settings(
        max_examples=budget.examples(40),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(snapshot=sts.snapshots(), name=st.uuids())
    def test_round_trip_of_generated_snapshots(
        self, tmp_path_factory: pytest.TempPathFactory, snapshot: Snapshot, name: object
    ) -> None:
        """Any snapshot, cut to what SDS can carry, comes back equal from its files."""
        folder = tmp_path_factory.mktemp(f"sds-{name}")
        fitted = fit(snapshot)
        write_files(fitted, folder)
        read_back = SdsAdapter(folder).read(extracted_at=snapshot.extracted_at).snapshot
        assert read_back == fitted


class TestMergeEndToEnd:
    def test_into_an_empty_book(self, tmp_path: Path) -> None:
        """An SDS reading merges into an empty book, and 'parents of year 9' finds Gita."""
        policy = mis_policy()
        reading = SdsAdapter(write_school(tmp_path)).read(extracted_at=AT)
        result = merge(Book(), reading.snapshot, policy=policy, at=london(23, 2), by="nightly")
        assert result.report.status is Status.APPLIED
        assert sorted(result.report.created) == [
            f"mis:{key}" for key in ("E5", "G5", "G8", "G9", "P8", "P9", "S1")
        ]
        parents_of_year_9 = Rule(year_groups=frozenset({"9"}), guardians_of=True)
        sms = recipients(
            result.book, parents_of_year_9, Channel.SMS, policy=policy, at=london(23, 15, 30)
        )
        assert sms.addresses == ("+447700900101",)
        assert sms.recipients[0].contact_ids == ("mis:G9",)


class TestSdsContract(SourceAdapterContract):
    """SDS passes the adapter kit with the kit's own sample school, unchanged."""

    @pytest.fixture
    def make_adapter(self):
        def make(snapshot: Snapshot, directory: Path) -> SdsAdapter:
            write_files(snapshot, directory)
            return SdsAdapter(directory, source=snapshot.source)

        return make

    @pytest.fixture
    def make_lenient_adapter(self):
        def make(snapshot: Snapshot, directory: Path) -> SdsAdapter:
            write_files(snapshot, directory)
            return SdsAdapter(directory, source=snapshot.source, max_reject_fraction=0.5)

        return make

    @pytest.fixture
    def not_applicable(self) -> dict[str, str]:
        return {
            "test_the_order_of_written_records_does_not_matter": (
                "write_files writes users in key order, its bytes depend on the data alone"
            ),
        }
