"""CSV export of the effective book, with spreadsheet formula neutralisation.

The book is built with `merge` from MIS snapshots of a small school (see
school.py); the MIS reads at 01:55 and applies at 02:00.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from school import full, guardian, london, mis_policy, pupil, school, staff
from sourcetruth import (
    AdapterError,
    Book,
    ContactData,
    Email,
    Phone,
    PhoneType,
    Policy,
    Record,
    Role,
    Status,
    contact_at,
    contacts_at,
    merge,
)
from sourcetruth.adapters.sources.export import COLUMNS, export_csv, neutralise, write_export

READ_AHEAD = timedelta(minutes=5)
BOM = b"\xef\xbb\xbf"
HYPERLINK = '=HYPERLINK("http://example.org","x")'
DDE = "+447700900123+cmd|' /C calc'!A0"


def sync(book: Book, policy: Policy, day: int, records: list[Record]) -> Book:
    """The 02:00 MIS sync of *day* (November 2026), which read the MIS at 01:55."""
    at = london(day, 2)
    result = merge(book, full(at - READ_AHEAD, records), policy=policy, at=at, by="nightly")
    assert result.report.status is Status.APPLIED
    return result.book


def the_school() -> list[Record]:
    """The test school, with values that exercise the export's cells."""
    return school(
        # A guardian whose mobile the MIS gives in national form, with a mixed-case domain.
        guardian(
            "G9",
            "P9",
            mobile="07700 900123",
            email="Gita.Guardian@Parent.TEST",
            given="Gita",
        ),
        # A pupil whose given name was typed as a spreadsheet formula.
        pupil("P8", "8", "8A", given=HYPERLINK),
        # A guardian of two pupils, with a comma and a line break in the name.
        guardian(
            "G8",
            "P8",
            "P9b",
            mobile="07700 900102",
            email="hal@example.org",
            given="Hal, Jr.",
            family="Parent\nSmith",
        ),
        # Staff with two mobiles (one given twice), a landline and two emails.
        Record(
            "S1",
            ContactData(
                "Steve",
                "Staff",
                Role.STAFF,
                phones=(
                    Phone("07700 900201", PhoneType.MOBILE),
                    Phone("01632 960001", PhoneType.HOME),
                    Phone("+44 7700 900202", PhoneType.MOBILE),
                    Phone("+447700900201", PhoneType.MOBILE),
                ),
                emails=(Email("s1@School.Test"), Email("steve@example.org")),
            ),
        ),
        # Staff whose "phone number" is no number at all: kept raw by the book.
        staff("S2", mobile="+44cmd|' /C calc'!A0", given="Sue"),
    )


def monday(policy: Policy) -> Book:
    return sync(Book(), policy, 23, the_school())


def tuesday(policy: Policy) -> Book:
    """Monday's book after Tuesday's sync, in which pupil P9 has left the MIS."""
    return sync(monday(policy), policy, 24, [r for r in the_school() if r.key != "P9"])


def rows(text: str) -> list[dict[str, str]]:
    """The export parsed back with the csv module, one dict per row."""
    return list(csv.DictReader(io.StringIO(text, newline="")))


def by_id(text: str) -> dict[str, dict[str, str]]:
    return {row["contact_id"]: row for row in rows(text)}


class TestNeutralise:
    @pytest.mark.parametrize(
        "cell",
        [
            "=1+2",
            HYPERLINK,
            "+1",
            "-1",
            "@SUM(A1)",
            "\t=1+2",
            "\r=1+2",
            "=",
        ],
    )
    def test_cell_starting_with_a_trigger_gets_an_apostrophe(self, cell: str) -> None:
        """A cell starting with =, +, -, @, tab or CR is written after a leading apostrophe."""
        assert neutralise(cell) == "'" + cell
        assert neutralise(cell, column="given_name") == "'" + cell

    @pytest.mark.parametrize(
        "cell",
        ["", "Gita", "O'Neill", "Smith-Jones", "a=b", "07700 900123", "'=1+2"],
    )
    def test_ordinary_cell_is_unchanged(self, cell: str) -> None:
        """A cell that does not start with a trigger character is returned as it is."""
        assert neutralise(cell) == cell
        assert neutralise(cell, column="mobile_phones") == cell

    @pytest.mark.parametrize("column", ["mobile_phones", "other_phones"])
    @pytest.mark.parametrize(
        "cell",
        ["+447700900123", "+447700900123; +441632960001", "+441632960001; +447700900123"],
    )
    def test_e164_only_phone_cell_is_unchanged(self, cell: str, column: str) -> None:
        """In a phone column, a cell holding only E.164 numbers stays usable as numbers."""
        assert neutralise(cell, column=column) == cell

    @pytest.mark.parametrize("column", ["mobile_phones", "other_phones"])
    @pytest.mark.parametrize(
        "cell",
        [
            DDE,
            "=1+2",
            "+447700900123; =1+2",
            "+447700900123;+441632960001",
            "+447700900123; ",
            "+0447700900123",
            "+44 7700 900123",
            "-447700900123",
            "+4477009001234567",
        ],
    )
    def test_phone_cell_that_is_not_only_e164_is_neutralised(self, cell: str, column: str) -> None:
        """In a phone column, anything but a clean list of E.164 numbers is neutralised."""
        assert neutralise(cell, column=column) == "'" + cell

    @pytest.mark.parametrize("column", ["given_name", "family_name", "emails", "contact_id", ""])
    def test_e164_text_outside_the_phone_columns_is_neutralised(self, column: str) -> None:
        """The E.164 exception belongs to the phone columns only."""
        assert neutralise("+447700900123", column=column) == "'+447700900123"
        assert neutralise("+447700900123; +441632960001", column=column) == (
            "'+447700900123; +441632960001"
        )


class TestExportCsv:
    def test_header_is_the_columns(self) -> None:
        """The first line is COLUMNS, in order."""
        policy = mis_policy()
        text = export_csv(monday(policy), policy=policy, at=london(23, 3))
        assert next(csv.reader(io.StringIO(text, newline=""))) == list(COLUMNS)
        assert text.startswith(",".join(COLUMNS) + "\r\n")

    def test_empty_book_is_just_the_header(self) -> None:
        """A book with no contacts exports the header line only."""
        text = export_csv(Book(), policy=mis_policy(), at=london(23, 3))
        assert text == ",".join(COLUMNS) + "\r\n"

    def test_one_row_per_contact_sorted_by_id(self) -> None:
        """Every present contact is one row, in contact-id order."""
        policy = mis_policy()
        book = monday(policy)
        ids = [r["contact_id"] for r in rows(export_csv(book, policy=policy, at=london(23, 3)))]
        expected = sorted(f"mis:{r.key}" for r in the_school())
        assert ids == expected
        assert ids == [c.id for c in contacts_at(book, policy=policy, at=london(23, 3))]

    def test_row_holds_the_effective_values(self) -> None:
        """A row carries the contact's home, role, names and groups."""
        policy = mis_policy()
        row = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))["mis:P9b"]
        assert row == {
            "contact_id": "mis:P9b",
            "home": "mis:P9b",
            "role": "pupil",
            "given_name": "Ivy",
            "family_name": "Pupil",
            "year_group": "9",
            "registration_group": "9C",
            "mobile_phones": "",
            "other_phones": "",
            "emails": "",
            "guardian_of": "",
            "departed_at": "",
        }

    def test_phones_are_e164_and_not_neutralised(self) -> None:
        """A number the MIS gave as `07700 900123` comes out as `+447700900123`, unprefixed."""
        policy = mis_policy()
        row = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))["mis:G9"]
        assert row["mobile_phones"] == "+447700900123"
        assert row["other_phones"] == ""

    def test_phones_split_by_type_in_order_without_repeats(self) -> None:
        """Mobiles and other numbers go to their own columns, joined by "; ", each number once."""
        policy = mis_policy()
        row = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))["mis:S1"]
        assert row["mobile_phones"] == "+447700900201; +447700900202"
        assert row["other_phones"] == "+441632960001"

    def test_a_phone_that_does_not_normalise_is_raw_and_neutralised(self) -> None:
        """A phone value that is not a number is exported raw, behind an apostrophe."""
        policy = mis_policy()
        row = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))["mis:S2"]
        assert row["mobile_phones"] == "'+44cmd|' /C calc'!A0"

    def test_emails_have_their_domain_lower_cased(self) -> None:
        """Email addresses keep their local part and lower-case their domain."""
        policy = mis_policy()
        found = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))
        assert found["mis:G9"]["emails"] == "Gita.Guardian@parent.test"
        assert found["mis:S1"]["emails"] == "s1@school.test; steve@example.org"

    def test_guardian_of_lists_pupil_contact_ids(self) -> None:
        """A guardian's `guardian_of` names its pupils by contact id, as contact_id does."""
        policy = mis_policy()
        found = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))
        assert found["mis:G9"]["guardian_of"] == "mis:P9"
        assert found["mis:G8"]["guardian_of"] == "mis:P8; mis:P9b"
        for pupil_id in found["mis:G8"]["guardian_of"].split("; "):
            assert found[pupil_id]["role"] == "pupil"

    def test_only_guardians_have_guardian_of(self) -> None:
        """Pupils and staff have an empty `guardian_of`; each guardian names one entry per pupil."""
        policy = mis_policy()
        found = by_id(export_csv(monday(policy), policy=policy, at=london(23, 3)))
        for cid, row in found.items():
            if row["role"] == "guardian":
                assert row["guardian_of"], cid
            else:
                assert row["guardian_of"] == "", cid
        assert len(found["mis:G8"]["guardian_of"].split("; ")) == 2

    def test_formula_name_is_neutralised_but_kept_raw_in_the_book(self) -> None:
        """A name typed as `=HYPERLINK(...)` is exported behind an apostrophe; the book keeps it."""
        policy = mis_policy()
        book = monday(policy)
        row = by_id(export_csv(book, policy=policy, at=london(23, 3)))["mis:P8"]
        assert row["given_name"] == "'" + HYPERLINK
        assert contact_at(book, "mis:P8", policy=policy, at=london(23, 3)).data.given_name == (
            HYPERLINK
        )
        stored = {c.id: c for c in contacts_at(book, policy=policy, at=london(23, 3))}
        assert stored["mis:P8"].data.given_name == HYPERLINK

    def test_commas_and_line_breaks_in_names_survive(self) -> None:
        """Quoted cells keep commas and line breaks: parsing the export gives the names back."""
        policy = mis_policy()
        text = export_csv(monday(policy), policy=policy, at=london(23, 3))
        row = by_id(text)["mis:G8"]
        assert row["given_name"] == "Hal, Jr."
        assert row["family_name"] == "Parent\nSmith"
        # Every parsed row has exactly the header's cells.
        parsed = list(csv.reader(io.StringIO(text, newline="")))
        assert {len(r) for r in parsed} == {len(COLUMNS)}
        assert len(parsed) == 1 + len(the_school())

    def test_lines_end_with_crlf(self) -> None:
        """Records end with CRLF; a bare line feed appears only inside a quoted cell."""
        policy = mis_policy()
        text = export_csv(monday(policy), policy=policy, at=london(23, 3))
        assert text.endswith("\r\n")
        assert text.count("\r\n") == 1 + len(the_school())
        assert text.replace("\r\n", "").count("\n") == 1  # the one in "Parent\nSmith"

    def test_departed_contact_is_left_out(self) -> None:
        """A contact whose home source dropped it is not exported by default."""
        policy = mis_policy()
        book = tuesday(policy)
        ids = [r["contact_id"] for r in rows(export_csv(book, policy=policy, at=london(24, 3)))]
        assert "mis:P9" not in ids
        assert "mis:P8" in ids
        assert len(ids) == len(the_school()) - 1

    def test_include_departed_adds_them_with_departed_at(self) -> None:
        """With include_departed, a departed contact is a row whose departed_at is the sync time."""
        policy = mis_policy()
        book = tuesday(policy)
        found = by_id(export_csv(book, policy=policy, at=london(24, 3), include_departed=True))
        assert len(found) == len(the_school())
        departed_at = datetime.fromisoformat(found["mis:P9"]["departed_at"])
        assert departed_at == london(24, 2)
        assert departed_at.tzinfo is not None
        assert found["mis:P9"]["given_name"] == "Nina"
        assert all(row["departed_at"] == "" for cid, row in found.items() if cid != "mis:P9")

    def test_export_is_of_the_time_asked(self) -> None:
        """An export at a time before the departure still holds the contact, undeparted."""
        policy = mis_policy()
        book = tuesday(policy)
        found = by_id(export_csv(book, policy=policy, at=london(23, 12)))
        assert found["mis:P9"]["departed_at"] == ""
        assert export_csv(book, policy=policy, at=london(23, 12)) == export_csv(
            monday(policy), policy=policy, at=london(23, 12)
        )

    def test_export_before_the_first_sync_is_empty(self) -> None:
        """At a time before any contact existed, the export has no rows."""
        policy = mis_policy()
        assert rows(export_csv(monday(policy), policy=policy, at=london(22, 12))) == []

    def test_same_book_gives_the_same_text(self) -> None:
        """Exporting the same book twice gives the same string."""
        policy = mis_policy()
        book = monday(policy)
        first = export_csv(book, policy=policy, at=london(23, 3))
        assert export_csv(book, policy=policy, at=london(23, 3)) == first

    def test_record_order_in_the_snapshot_does_not_matter(self) -> None:
        """The same records in another order give the same export."""
        policy = mis_policy()
        forwards = export_csv(monday(policy), policy=policy, at=london(23, 3))
        backwards = sync(Book(), policy, 23, list(reversed(the_school())))
        assert export_csv(backwards, policy=policy, at=london(23, 3)) == forwards

    def test_time_zone_of_at_does_not_matter(self) -> None:
        """The same instant given in UTC or in London time gives the same export."""
        policy = mis_policy()
        book = tuesday(policy)
        london_text = export_csv(book, policy=policy, at=london(24, 3), include_departed=True)
        utc_text = export_csv(
            book, policy=policy, at=london(24, 3).astimezone(UTC), include_departed=True
        )
        assert utc_text == london_text


class TestWriteExport:
    def test_writes_utf8_with_a_bom(self, tmp_path: Path) -> None:
        """The file is the BOM followed by export_csv's text in UTF-8."""
        policy = mis_policy()
        book = monday(policy)
        target = tmp_path / "export.csv"
        write_export(target, book, policy=policy, at=london(23, 3))
        data = target.read_bytes()
        assert data.startswith(BOM)
        assert not data[len(BOM) :].startswith(BOM)
        assert data[len(BOM) :].decode("utf-8") == export_csv(book, policy=policy, at=london(23, 3))

    def test_non_ascii_names_are_utf8(self, tmp_path: Path) -> None:
        """A name outside ASCII is written as UTF-8, readable back with `utf-8-sig`."""
        policy = mis_policy()
        book = sync(Book(), policy, 23, school(pupil("P9", "9", "9B", given="Zoë Łucja")))
        target = tmp_path / "export.csv"
        write_export(target, book, policy=policy, at=london(23, 3))
        assert "Zoë Łucja".encode() in target.read_bytes()
        text = target.read_text(encoding="utf-8-sig")
        assert by_id(text)["mis:P9"]["given_name"] == "Zoë Łucja"

    def test_include_departed_is_passed_on(self, tmp_path: Path) -> None:
        """`include_departed` has the same effect as in export_csv."""
        policy = mis_policy()
        book = tuesday(policy)
        target = tmp_path / "export.csv"
        write_export(target, book, policy=policy, at=london(24, 3), include_departed=True)
        expected = export_csv(book, policy=policy, at=london(24, 3), include_departed=True)
        assert target.read_bytes() == BOM + expected.encode("utf-8")

    def test_leaves_no_partial_file_behind(self, tmp_path: Path) -> None:
        """After writing, the folder holds the export and nothing else."""
        policy = mis_policy()
        write_export(tmp_path / "export.csv", monday(policy), policy=policy, at=london(23, 3))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]

    def test_replaces_an_existing_export(self, tmp_path: Path) -> None:
        """Writing over an earlier export replaces it whole."""
        policy = mis_policy()
        target = tmp_path / "export.csv"
        target.write_bytes(b"old contents that are longer than nothing\r\n" * 100)
        write_export(target, Book(), policy=policy, at=london(23, 3))
        assert target.read_bytes() == BOM + (",".join(COLUMNS) + "\r\n").encode()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]

    def test_accepts_a_str_path(self, tmp_path: Path) -> None:
        """The path may be given as a string."""
        policy = mis_policy()
        target = tmp_path / "export.csv"
        write_export(str(target), Book(), policy=policy, at=london(23, 3))
        assert target.read_bytes().startswith(BOM)

    def test_missing_folder_is_an_adapter_error(self, tmp_path: Path) -> None:
        """Writing into a folder that does not exist raises AdapterError and creates nothing."""
        policy = mis_policy()
        target = tmp_path / "no-such-folder" / "export.csv"
        with pytest.raises(AdapterError, match="cannot write the export"):
            write_export(target, monday(policy), policy=policy, at=london(23, 3))
        assert list(tmp_path.iterdir()) == []

    def test_failed_move_cleans_up_the_partial_file(self, tmp_path: Path) -> None:
        """When the final move fails (the target is a folder), the partial file is removed."""
        policy = mis_policy()
        target = tmp_path / "export.csv"
        target.mkdir()
        (target / "keep.txt").write_text("mine")
        with pytest.raises(AdapterError):
            write_export(target, monday(policy), policy=policy, at=london(23, 3))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]
        assert (target / "keep.txt").read_text() == "mine"

    def test_error_message_holds_no_personal_data(self, tmp_path: Path) -> None:
        """The AdapterError names the path, not values from the book."""
        policy = mis_policy()
        target = tmp_path / "no-such-folder" / "export.csv"
        with pytest.raises(AdapterError) as caught:
            write_export(target, monday(policy), policy=policy, at=london(23, 3))
        message = str(caught.value)
        assert "export.csv" in message
        for value in ("Gita", "07700", "+447700", "parent.test", "HYPERLINK"):
            assert value not in message


class TestNeutraliseHiddenStarts:
    """A formula hidden behind what some spreadsheet trims is still neutralised."""

    @pytest.mark.parametrize(
        "cell",
        [
            " =1+2",
            "\u00a0=cmd",
            "\ufeff=x",
            "\u200b=x",
            "\n=x",
            "\x00=1",
            "\uff1dcmd",
            "\uff0b1",
            "\uff20x",
        ],
    )
    def test_hidden_or_full_width_starts(self, cell: str) -> None:
        """Leading spaces, invisible marks, line breaks and full-width signs are looked past."""
        assert neutralise(cell) == "'" + cell

    @pytest.mark.parametrize("cell", ["  Ann", "\u00a0Ann", "Zo\u00eb"])
    def test_spacing_before_text_is_left_alone(self, cell: str) -> None:
        """Only a formula start is neutralised; spacing before ordinary text is kept."""
        assert neutralise(cell) == cell
