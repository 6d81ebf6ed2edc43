"""Generic CSV/TXT imports: decoding, splitting, typed errors, rejects, and the kit."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import budget
from school import CORPUS, london, mis_policy
from sourcetruth import (
    Book,
    DigestedRecords,
    EmptySnapshotError,
    Role,
    SnapshotKind,
    contact_at,
    merge,
)
from sourcetruth._digest import record_digest
from sourcetruth.adapters.sources.tabular import (
    CsvFormat,
    CsvImportAdapter,
    CsvMapping,
    EmailColumn,
    PhoneColumn,
    read_csv,
    write_csv,
)
from sourcetruth.adapters.sources.text import read_table
from sourcetruth.exceptions import (
    EncodingError,
    RejectedFileError,
    SourceDataError,
    UsageError,
    format_errors,
)
from sourcetruth.model import EmailType, PhoneType, Snapshot
from sourcetruth.testing.conformance import SourceAdapterContract

AT = london(24, 2)

#: A mapping that covers every field, used by the kit and most tests below.
FULL = CsvMapping(
    key="Id",
    given_name="First name",
    family_name="Last name",
    role="Type",
    phones=(PhoneColumn("Mobile"), PhoneColumn("Home phone", PhoneType.HOME)),
    emails=(EmailColumn("Email"), EmailColumn("Work email", EmailType.WORK)),
    year_group="Year",
    registration_group="Form",
    guardian_of="Children",
)

HEADER = "Id,First name,Last name,Type,Mobile,Home phone,Email,Work email,Year,Form,Children"


def read(text: str | bytes, mapping: CsvMapping = FULL, *, file: str = "contacts.csv"):
    """Read *text* as a file called *file* of the source "import"."""
    return read_csv(text, mapping, file=file, source="import", extracted_at=AT)


def problems_of(error: pytest.ExceptionInfo[RejectedFileError]) -> list[SourceDataError]:
    return list(error.value.exceptions)


class TestConformance(SourceAdapterContract):
    """The generic import passes the adapter kit."""

    @pytest.fixture
    def source_name(self) -> str:
        return "import"

    @pytest.fixture
    def make_adapter(self):
        def make(snapshot: Snapshot, directory: Path) -> CsvImportAdapter:
            mapping = FULL
            path = directory / "contacts.csv"
            path.write_text(write_csv(snapshot, mapping), encoding="utf-8", newline="")
            return CsvImportAdapter(path, mapping, source=snapshot.source)

        return make

    @pytest.fixture
    def make_lenient_adapter(self):
        def make(snapshot: Snapshot, directory: Path) -> CsvImportAdapter:
            mapping = attrs.evolve(FULL, format=CsvFormat(max_reject_fraction=0.5))
            path = directory / "contacts.csv"
            path.write_text(write_csv(snapshot, mapping), encoding="utf-8", newline="")
            return CsvImportAdapter(path, mapping, source=snapshot.source)

        return make

    @pytest.fixture
    def not_applicable(self) -> dict[str, str]:
        return {
            "test_the_order_of_written_records_does_not_matter": (
                "write_csv writes rows in key order: its bytes depend on the data alone"
            ),
        }

    reject_limit = 0.0

    @pytest.fixture
    def partly_broken(self, sample: Snapshot, tmp_path: Path) -> tuple[CsvImportAdapter, str]:
        """The sample with G2001's row ragged (an extra cell)."""
        mapping = attrs.evolve(FULL, format=CsvFormat(max_reject_fraction=self.reject_limit))
        lines = write_csv(sample, mapping).split("\r\n")
        lines = [line + ",extra" if line.startswith("G2001,") else line for line in lines]
        path = tmp_path / "contacts.csv"
        path.write_text("\r\n".join(lines), encoding="utf-8", newline="")
        return CsvImportAdapter(path, mapping, source=sample.source), "G2001"


class TestConformanceWithRejects(TestConformance):
    """With a reject limit, one bad row makes a delta that leaves that person be."""

    reject_limit = 0.5


class TestDecoding:
    """Bytes become text by their BOM, as strict UTF-8, or as cp1252 only when allowed."""

    ROW = "K1,Zoë,Ødegård,guardian,07700 900101,,zoe@parent.test,,,,\r\n"

    @pytest.mark.parametrize(
        ("bom", "encoding"),
        [
            (b"", "utf-8"),
            (codecs.BOM_UTF8, "utf-8"),
            (codecs.BOM_UTF16_LE, "utf-16-le"),
            (codecs.BOM_UTF16_BE, "utf-16-be"),
        ],
    )
    def test_byte_order_marks_decide_the_encoding(self, bom: bytes, encoding: str) -> None:
        """UTF-8 with or without a BOM and UTF-16 of either byte order read the same."""
        data = bom + (HEADER + "\r\n" + self.ROW).encode(encoding)
        (record,) = read(data).snapshot.records
        assert (record.data.given_name, record.data.family_name) == ("Zoë", "Ødegård")

    def test_cp1252_is_refused_unless_allowed(self) -> None:
        """A Windows-1252 file is an encoding error naming the byte offset, not mojibake."""
        data = (HEADER + "\r\n" + self.ROW).encode("cp1252")
        offset = data.index("ë".encode("cp1252"))
        with pytest.raises(RejectedFileError) as caught:
            read(data)
        (problem,) = problems_of(caught)
        assert isinstance(problem, EncodingError)
        assert problem.offset == offset
        assert problem.file == "contacts.csv"
        allowed = attrs.evolve(FULL, format=CsvFormat(allow_cp1252=True))
        (record,) = read(data, allowed).snapshot.records
        assert record.data.given_name == "Zoë"

    def test_valid_utf8_is_never_read_as_cp1252(self) -> None:
        """With cp1252 allowed, UTF-8 still wins, so "Zoë" does not become "ZoÃ«"."""
        allowed = attrs.evolve(FULL, format=CsvFormat(allow_cp1252=True))
        (record,) = read((HEADER + "\n" + self.ROW).encode(), allowed).snapshot.records
        assert record.data.given_name == "Zoë"

    def test_bytes_that_are_not_even_cp1252_are_refused(self) -> None:
        """0x81 is undefined in cp1252: an error, never a latin-1 guess."""
        allowed = attrs.evolve(FULL, format=CsvFormat(allow_cp1252=True))
        data = (HEADER + "\nK1,A").encode() + b"\x81" + b",B,,,,,,,,\n"
        with pytest.raises(RejectedFileError) as caught:
            read(data, allowed)
        (problem,) = problems_of(caught)
        assert isinstance(problem, EncodingError)
        assert problem.offset == data.index(b"\x81")

    def test_broken_utf16_after_its_bom_is_refused(self) -> None:
        """A UTF-16 BOM followed by an odd number of bytes is an encoding error."""
        with pytest.raises(RejectedFileError) as caught:
            read(codecs.BOM_UTF16_LE + HEADER.encode("utf-16-le") + b"\x00")
        assert isinstance(problems_of(caught)[0], EncodingError)


class TestSplitting:
    """Delimiters and quoting are as configured; cells stay text."""

    @pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"])
    def test_each_configured_delimiter(self, delimiter: str) -> None:
        """Comma, tab, semicolon and pipe files read the same through their format."""
        mapping = attrs.evolve(FULL, format=CsvFormat(delimiter=delimiter))
        text = HEADER.replace(",", delimiter) + "\n"
        text += delimiter.join(
            ["K1", '"Ann; Marie"', "Lee", "pupil", "", "", "", "", "9", "9B", ""]
        )
        (record,) = read(text, mapping).snapshot.records
        assert record.data.given_name == "Ann; Marie"
        assert record.data.year_group == "9"

    def test_a_delimiter_is_never_sniffed(self) -> None:
        """A semicolon file read as comma-separated is refused, not silently re-split."""
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER.replace(",", ";") + "\nK1;Ann;Lee;pupil;;;;;;;\n")
        fields = {p.field for p in problems_of(caught)}
        assert {"Id", "First name", "Mobile"} <= fields

    def test_cells_stay_text(self) -> None:
        """NA, None and Null are names; a leading 0 and a leading + are kept."""
        text = HEADER + "\nK1,None,NA,guardian,07700 900101,+441632960101,,,Null,007,\n"
        (record,) = read(text).snapshot.records
        data = record.data
        assert (data.given_name, data.family_name, data.year_group) == ("None", "NA", "Null")
        assert data.registration_group == "007"
        assert [p.number for p in data.phones] == ["07700 900101", "+441632960101"]

    def test_quoted_cells_keep_delimiters_quotes_and_newlines(self) -> None:
        """A quoted cell may hold the delimiter, doubled quotes and line breaks."""
        text = HEADER + '\nK1,"Zoë ""Zo""","Smith,\nJones",pupil,,,,,9,9B,\nK2,B,C,pupil,,,,,,,\n'
        reading = read(text)
        first, second = reading.snapshot.records
        assert first.data.given_name == 'Zoë "Zo"'
        assert first.data.family_name == "Smith,\nJones"
        assert second.key == "K2"

    def test_line_numbers_count_physical_lines(self) -> None:
        """An error after a quoted line break names the line the row starts on."""
        text = HEADER + '\nK1,"two\nlines",X,pupil,,,,,,,\nK2,A,B,pupil,4.47700900123E+11,,,,,,\n'
        with pytest.raises(RejectedFileError) as caught:
            read(text)
        (problem,) = problems_of(caught)
        assert (problem.line, problem.field) == (4, "Mobile")

    def test_broken_quoting_rejects_the_file_with_its_line(self) -> None:
        """A stray quote in strict mode is an error naming the line, not a guess."""
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER + '\nK1,"Ann"x,Lee,pupil,,,,,,,\n')
        (problem,) = problems_of(caught)
        assert problem.line == 2

    @pytest.mark.skipif(not (CORPUS / "csv-spectrum").is_dir(), reason="corpus absent")
    @pytest.mark.parametrize(
        "name",
        [
            pytest.param(
                p.stem,
                marks=pytest.mark.xfail(
                    strict=True, reason="upstream's JSON gives another phone number than its CSV"
                ),
            )
            if p.stem == "location_coordinates"
            else p.stem
            for p in sorted((CORPUS / "csv-spectrum" / "csvs").glob("*.csv"))
        ],
    )
    def test_csv_spectrum(self, name: str) -> None:
        """Every file of csv-spectrum splits into the cells its published JSON gives."""
        data = (CORPUS / "csv-spectrum" / "csvs" / f"{name}.csv").read_bytes()
        expected = json.loads((CORPUS / "csv-spectrum" / "json" / f"{name}.json").read_text())
        if isinstance(expected, dict):  # upstream gives one file's single row bare
            expected = [expected]
        if b"\r" not in data:  # the stored copy has LF line ends; its JSON kept CRLF
            expected = [{k: v.replace("\r\n", "\n") for k, v in e.items()} for e in expected]
        table = read_table(data, file=f"{name}.csv")
        assert not table.problems
        assert [dict(zip(table.header, row.cells, strict=True)) for row in table.rows] == expected


class TestRowErrors:
    """Each bad row is a typed error naming file, line and column, never the value."""

    def test_every_problem_of_a_file_is_reported_together(self) -> None:
        """Ragged rows, NUL bytes, oversized cells, spreadsheet floats and missing keys."""
        secret = "07700900999"
        long = "x" * 5000
        lines = [
            HEADER,
            "K1,Ann,Lee,pupil,,,,,9,9B,",
            "K2,Ben,Lee,pupil",
            f"K3,Cy\x00,Lee,pupil,{secret},,,,,,",
            f"K4,{long},Lee,pupil,,,,,,,",
            "K5,Di,Lee,guardian,4.47700900999E+11,,,,,,",
            "K6,Ed,Lee,guardian,7700900999.0,,,,,,",
            ",Flo,Lee,pupil,,,,,,,",
            "K7,Gus,Lee,pupil,,,,,,,,extra",
        ]
        with pytest.raises(RejectedFileError) as caught:
            read("\n".join(lines) + "\n", file="upload.csv")
        found = {(p.line, p.field) for p in problems_of(caught)}
        assert found == {
            (3, "Mobile"),
            (4, "First name"),
            (5, "First name"),
            (6, "Mobile"),
            (7, "Mobile"),
            (8, "Id"),
            (9, "column 12"),
        }
        assert all(p.file == "upload.csv" for p in problems_of(caught))
        text = format_errors(caught.value) + "\n".join(caught.value.__notes__)
        assert secret not in text
        assert "4.47700900999E+11" not in text
        assert long not in text
        assert len(caught.value.__notes__) == len(problems_of(caught))
        assert len(format_errors(caught.value).splitlines()) == 1 + len(found)

    def test_duplicate_keys_reject_every_row_that_has_them(self) -> None:
        """Two rows with one key: neither can be trusted, and both lines are named."""
        mapping = attrs.evolve(FULL, format=CsvFormat(max_reject_fraction=0.9))
        text = HEADER + "\nK1,A,B,pupil,,,,,,,\nK2,C,D,pupil,,,,,,,\nK1,E,F,pupil,,,,,,,\n"
        reading = read(text, mapping)
        assert [r.key for r in reading.snapshot.records] == ["K2"]
        assert reading.rejected == 2
        assert {n.line for n in reading.notices if n.code == "row-rejected"} == {2, 4}

    def test_a_mapped_duplicate_header_rejects_the_file(self) -> None:
        """Which of two "Mobile" columns is meant cannot be known."""
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER + ",Mobile\nK1,A,B,pupil,,,,,,,,\n")
        (problem,) = problems_of(caught)
        assert (problem.line, problem.field) == (1, "Mobile")

    def test_an_unmapped_duplicate_header_is_a_notice(self) -> None:
        """A repeated column nobody reads does not stop the import, but is reported."""
        reading = read(HEADER + ",Notes,Notes\nK1,A,B,pupil,,,,,,,,x,y\n")
        assert [n.code for n in reading.notices] == ["duplicate-header"]
        assert reading.snapshot.kind is SnapshotKind.FULL

    def test_trailing_empty_cells_are_tolerated(self) -> None:
        """Spreadsheets add empty columns at the end of rows; they are not ragged."""
        reading = read(HEADER + ",,\nK1,A,B,pupil,,,,,,,,,\nK2,C,D,pupil,,,,,,,\n")
        assert [r.key for r in reading.snapshot.records] == ["K1", "K2"]

    def test_rows_of_empty_cells_are_blank_lines(self) -> None:
        """A row of nothing but delimiters is not a person and not an error."""
        reading = read(HEADER + "\nK1,A,B,pupil,,,,,,,\n,,,,,,,,,,\n")
        assert [r.key for r in reading.snapshot.records] == ["K1"]
        assert reading.rejected == 0

    def test_an_unknown_role_is_reported_and_read_as_other(self) -> None:
        """A role value the mapping does not name is never guessed."""
        reading = read(HEADER + "\nK1,A,B,dinner lady,,,,,,,\n")
        (record,) = reading.snapshot.records
        assert record.data.role is Role.OTHER
        (notice,) = reading.notices
        assert (notice.code, notice.line, notice.field) == ("unknown-role", 2, "Type")


class TestRejects:
    """A rejected row never departs anyone; too many rejects reject the file."""

    GOOD = HEADER + "\nK1,A,B,pupil,,,,,9,9B,\nK2,C,D,pupil,,,,,9,9B,\nK3,E,F,pupil,,,,,9,9B,\n"

    def book(self) -> Book:
        policy = mis_policy()
        return merge(Book(), read(self.GOOD).snapshot, policy=policy, at=AT, by="t").book

    def test_a_rejected_row_is_not_a_departure(self) -> None:
        """Under the reject limit, the good rows apply as an update; K3 stays."""
        mapping = attrs.evolve(FULL, format=CsvFormat(max_reject_fraction=0.5))
        text = HEADER + "\nK1,Al,B,pupil,,,,,,,\nK3,E,F,pupil,4.4E+11,,,,,,\n"
        reading = read(text, mapping)
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert reading.rejected == 1
        assert "rows-rejected" in {n.code for n in reading.notices}
        policy = mis_policy()
        at = london(25, 2)
        snapshot = Snapshot("import", at, reading.snapshot.records, kind=SnapshotKind.DELTA)
        book = merge(self.book(), snapshot, policy=policy, at=at, by="t").book
        assert contact_at(book, "import:K1", policy=policy, at=at).data.given_name == "Al"
        for key in ("K2", "K3"):
            assert not contact_at(book, f"import:{key}", policy=policy, at=at).departed

    def test_above_the_limit_nothing_is_applied(self) -> None:
        """One bad row of two, with a 10% limit: the whole file is rejected."""
        mapping = attrs.evolve(FULL, format=CsvFormat(max_reject_fraction=0.1))
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER + "\nK1,A,B,pupil,,,,,,,\nK2,C,D,pupil,1E+11,,,,,,\n", mapping)
        assert "1 of 2 rows rejected" in caught.value.message

    def test_by_default_one_bad_row_rejects_the_file(self) -> None:
        """The default limit is zero: a school's import is all or nothing."""
        with pytest.raises(RejectedFileError):
            read(HEADER + "\nK1,A,B,pupil,,,,,,,\nK2,C,D,pupil,1E+11,,,,,,\n")

    def test_a_file_of_only_a_header_is_refused_naming_the_file(self) -> None:
        """A header and no rows: its own one-line error with the file, never "everyone left"."""
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER + "\n")
        assert caught.value.message == "contacts.csv: no rows; nothing from this file was applied"
        (problem,) = problems_of(caught)
        assert (problem.file, problem.line) == ("contacts.csv", 1)
        assert "a header and no rows" in str(problem)
        # The merge still refuses an empty full snapshot from any other reader (rule 6).
        with pytest.raises(EmptySnapshotError):
            merge(self.book(), Snapshot("mis", AT), policy=mis_policy(), at=AT, by="t")

    @pytest.mark.parametrize("text", ["", "\n\n", "\r\n"])
    @pytest.mark.parametrize("has_header", [True, False])
    def test_an_empty_file_is_refused_as_empty(self, text: str, has_header: bool) -> None:
        """An empty file is said to be empty, not "the header does not fit the mapping"."""
        mapping = attrs.evolve(FULL, format=CsvFormat(has_header=has_header))
        if not has_header:
            mapping = attrs.evolve(
                mapping,
                key="1",
                given_name="2",
                family_name=None,
                role=None,
                phones=(),
                emails=(),
                year_group=None,
                registration_group=None,
                guardian_of=None,
            )
        with pytest.raises(RejectedFileError) as caught:
            read(text, mapping)
        assert caught.value.message == "contacts.csv: empty; nothing from this file was applied"
        (problem,) = problems_of(caught)
        assert "the file is empty" in str(problem)


class TestBrokenRows:
    """A line break typed into a cell without quotes rejects the row whole, at the break's line."""

    WIDE = attrs.evolve(FULL, format=CsvFormat(max_reject_fraction=0.9))

    def test_a_break_in_the_last_cell_does_not_leave_half_a_row(self) -> None:
        """The first half looks whole ("7 and" as a year group): it is rejected with the rest."""
        text = HEADER + "\nK1,A,B,pupil,,,,,7 and\n8,9A,\nK2,C,D,pupil,,,,,9,9B,\n"
        reading = read(text, self.WIDE)
        assert [r.key for r in reading.snapshot.records] == ["K2"]
        assert reading.rejected == 1
        (problem,) = [n for n in reading.notices if n.code == "row-rejected"]
        assert problem.line == 2
        assert problem.field == "Year"
        assert "line break inside a cell" in problem.message
        assert "line 3" in problem.message

    def test_a_break_in_a_middle_cell_is_one_problem(self) -> None:
        """Both halves are short: one rejected row, named at the line the break is on."""
        text = HEADER + "\nK1,Ann\nLee,B,pupil,,,,,9,9A,\nK2,C,D,pupil,,,,,9,9B,\n"
        reading = read(text, self.WIDE)
        assert [r.key for r in reading.snapshot.records] == ["K2"]
        rejected = [n for n in reading.notices if n.code == "row-rejected"]
        assert [(n.line, n.field) for n in rejected] == [(2, "First name")]

    def test_with_no_rejections_allowed_the_file_is_refused(self) -> None:
        """By default nothing of the file is applied, and the error says where the break is."""
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER + "\nK1,A,B,pupil,,,,,7 and\n8,9A,\n")
        (problem,) = problems_of(caught)
        assert problem.line == 2
        assert "goes on at line 3" in str(problem)

    def test_a_short_row_that_is_no_continuation_rejects_only_itself(self) -> None:
        """A row too short to be the rest of the one before it is rejected alone."""
        text = HEADER + "\nK1,A,B,pupil,,,,,9,9A,\nK2,C\n"
        reading = read(text, self.WIDE)
        assert [r.key for r in reading.snapshot.records] == ["K1"]


class TestUnmappedColumns:
    """A cell of a column the mapping does not read is never a reason to refuse a row."""

    MAPPING = CsvMapping(key="Id", given_name="First name")

    def test_a_long_cell_in_an_unread_column(self) -> None:
        """Notes pasted into a column nobody maps: the row reads."""
        text = "Id,First name,Notes\nK1,Ann," + "x" * 5000 + "\n"
        (record,) = read(text, self.MAPPING).snapshot.records
        assert record.data.given_name == "Ann"

    def test_a_long_cell_in_a_read_column_names_its_column(self) -> None:
        """The same cell where the mapping reads is refused, by the column's mapped name."""
        text = "Id,First name,Notes\nK1," + "x" * 5000 + ",n\n"
        with pytest.raises(RejectedFileError) as caught:
            read(text, self.MAPPING)
        (problem,) = problems_of(caught)
        assert (problem.line, problem.field) == (2, "First name")
        assert "longer than 4096" in str(problem)

    def test_a_cell_over_the_csv_modules_limit_in_an_unread_column(self) -> None:
        """200,000 characters of notes where nobody reads: the file is read, every row."""
        text = "Id,First name,Notes\nK1,Ann," + "x" * 200_000 + "\nK2,Bo,n\n"
        assert [r.key for r in read(text, self.MAPPING).snapshot.records] == ["K1", "K2"]

    def test_a_cell_over_the_csv_modules_limit_where_the_mapping_reads(self) -> None:
        """The same cell in a mapped column rejects its row, naming the column, not the file."""
        text = "Id,First name,Notes\nK1," + "x" * 200_000 + ",n\nK2,Bo,n\n"
        with pytest.raises(RejectedFileError) as caught:
            read(text, self.MAPPING)
        assert [(p.line, p.field) for p in problems_of(caught)] == [(2, "First name")]

    def test_a_quoted_cell_over_the_limit_refuses_the_file_at_its_line(self) -> None:
        """Inside quotes the split cannot be redone by hand: the file, with the line."""
        text = 'Id,First name,Notes\nK1,Ann,"' + "x" * 200_000 + '"\nK2,Bo,n\n'
        with pytest.raises(RejectedFileError) as caught:
            read(text, self.MAPPING)
        (problem,) = problems_of(caught)
        assert problem.line == 2
        assert "longer than any field could be" in str(problem)

    def test_nul_in_an_unread_column(self) -> None:
        """A NUL where nobody reads is no problem; where the mapping reads, it is."""
        (record,) = read("Id,First name,Notes\nK1,Ann,a\x00b\n", self.MAPPING).snapshot.records
        assert record.key == "K1"
        with pytest.raises(RejectedFileError):
            read("Id,First name,Notes\nK1,A\x00n,b\n", self.MAPPING)


class TestDelimiterNames:
    """A mapping file may name its delimiter: "tab" is a tab, as the error always listed."""

    @pytest.mark.parametrize(
        ("name", "character"),
        [("tab", "\t"), ("TAB", "\t"), ("semicolon", ";"), ("pipe", "|"), ("comma", ",")],
    )
    def test_named_delimiters(self, name: str, character: str, tmp_path: Path) -> None:
        """Each name reads as its character, in code and in a mapping file."""
        assert CsvFormat(delimiter=name).delimiter == character
        path = tmp_path / "mapping.toml"
        path.write_text(f'key = "Id"\n[format]\ndelimiter = "{name}"\n', encoding="utf-8")
        assert CsvMapping.from_toml(path).format.delimiter == character

    def test_a_tab_separated_file_through_a_named_delimiter(self) -> None:
        """The TXT export a school's office makes, read with delimiter = "tab"."""
        mapping = CsvMapping(key="Id", given_name="First", format=CsvFormat(delimiter="tab"))
        (record,) = read("Id\tFirst\nK1\tAnn\n", mapping).snapshot.records
        assert record.data.given_name == "Ann"


class TestMappingFiles:
    """A mapping is data: built in code or read from TOML, checked either way."""

    def test_a_toml_mapping(self, tmp_path: Path) -> None:
        """Every part of a mapping can be written in TOML."""
        path = tmp_path / "mapping.toml"
        path.write_text(
            'key = "Id"\ngiven_name = "First name"\nrole = "Type"\n'
            'phones = [{ column = "Mobile" }, { column = "Home", type = "home" }]\n'
            'emails = [{ column = "Email", type = "work" }]\n'
            'default_role = "guardian"\n'
            '[role_values]\n"Parent/Carer" = "guardian"\n'
            '[format]\ndelimiter = "\\t"\nallow_cp1252 = true\nmax_reject_fraction = 0.02\n',
            encoding="utf-8",
        )
        mapping = CsvMapping.from_toml(path)
        assert mapping.phones == (PhoneColumn("Mobile"), PhoneColumn("Home", PhoneType.HOME))
        assert mapping.emails == (EmailColumn("Email", EmailType.WORK),)
        assert mapping.role_values == {"parent/carer": Role.GUARDIAN}
        assert mapping.default_role is Role.GUARDIAN
        assert mapping.format == CsvFormat("\t", allow_cp1252=True, max_reject_fraction=0.02)
        assert mapping.covers == {"given_name", "role", "phones", "emails"}

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ('key = "Id"\ngiven = "First"\n', "given"),
            ('given_name = "First"\n', "key"),
            ('key = "Id"\n[format]\ndelimiter = ";;"\n', "delimiter"),
            ('key = "Id"\nphones = [{ column = "M", type = "fax" }]\n', "phones"),
            ('key = "Id"\n[format]\nmax_reject_fraction = 2\n', "max_reject_fraction"),
            ('key = "Id"\nkey = "Again"\n', "TOML"),
        ],
    )
    def test_a_bad_mapping_is_a_usage_error_naming_the_file(
        self, tmp_path: Path, text: str, says: str
    ) -> None:
        """Typos and impossible settings are refused before any file is read."""
        path = tmp_path / "mapping.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UsageError) as caught:
            CsvMapping.from_toml(path)
        assert "mapping.toml" in str(caught.value)
        assert says in str(caught.value)

    def test_headerless_files_name_columns_by_position(self) -> None:
        """Without a header, "1" is the first column; a name is a usage error."""
        mapping = CsvMapping(
            key="4", given_name="2", family_name="3", format=CsvFormat(has_header=False)
        )
        reading = read("Ann Lee,Ann,Lee,ann@parent.test\n", mapping)
        (record,) = reading.snapshot.records
        assert (record.key, record.data.given_name) == ("ann@parent.test", "Ann")
        with pytest.raises(UsageError):
            read("a,b\n", CsvMapping(key="Id", format=CsvFormat(has_header=False)))


@pytest.mark.skipif(not (CORPUS / "thunderbird-addressbook-tests").is_dir(), reason="no corpus")
class TestThunderbirdFiles:
    """Thunderbird's own import fixtures, against its published expected result."""

    BASE = CORPUS / "thunderbird-addressbook-tests" / "import" / "test" / "unit" / "resources"
    MAPPING = CsvMapping(
        key="Primary Email",
        given_name="First Name",
        family_name="Last Name",
        emails=(EmailColumn("Primary Email"), EmailColumn("Secondary Email")),
        phones=(
            PhoneColumn("Mobile Number"),
            PhoneColumn("Home Phone", PhoneType.HOME),
            PhoneColumn("Work Phone", PhoneType.WORK),
        ),
    )

    def expected(self, name: str) -> list[tuple[str, str, str]]:
        data = json.loads((self.BASE / "addressbook.json").read_text(encoding="utf-8"))
        return [(c["FirstName"], c["LastName"], c["PrimaryEmail"]) for c in data[name]]

    def names(self, reading) -> list[tuple[str, str, str]]:
        return [
            (r.data.given_name, r.data.family_name, r.data.emails[0].address)
            for r in reading.snapshot.records
        ]

    def read_file(self, name: str, mapping: CsvMapping | None = None):
        path = self.BASE / name
        return read_csv(
            path.read_bytes(), mapping or self.MAPPING, file=name, source="import", extracted_at=AT
        )

    def test_utf16_with_a_bom(self) -> None:
        """The UTF-16 LE export reads as Thunderbird expects."""
        assert self.names(self.read_file("utf16_addressbook.csv")) == self.expected("utf16_csv")

    def test_basic_files(self) -> None:
        """The plain exports read as Thunderbird expects (its order aside)."""
        reading = self.read_file("basic_csv_addressbook.csv")
        assert sorted(self.names(reading)) == sorted(self.expected("csv_import"))
        (record,) = self.read_file("basic_addressbook.csv").snapshot.records
        assert [e.address for e in record.data.emails] == ["johndoe@host.invalid"]
        assert (record.data.given_name, record.data.family_name) == ("John", "Doe")

    def test_semicolons_when_configured(self) -> None:
        """The semicolon file reads when its format says so, and only then."""
        mapping = CsvMapping(
            key="Primary Email",
            given_name="First Name",
            family_name="Last Name",
            emails=(EmailColumn("Primary Email"),),
            format=CsvFormat(delimiter=";"),
        )
        reading = self.read_file("csv_semicolon.csv", mapping)
        assert sorted(self.names(reading)) == sorted(self.expected("csv_import"))

    def test_no_header_by_position(self) -> None:
        """The headerless file reads through a positional mapping."""
        mapping = CsvMapping(
            key="4",
            given_name="2",
            family_name="3",
            emails=(EmailColumn("4"),),
            format=CsvFormat(has_header=False),
        )
        reading = self.read_file("csv_no_header.csv", mapping)
        assert sorted(self.names(reading)) == sorted(self.expected("csv_import"))

    def test_shift_jis_is_refused(self) -> None:
        """Shift_JIS is not an encoding this import reads: an error, not mojibake."""
        with pytest.raises(RejectedFileError) as caught:
            self.read_file("shiftjis_addressbook.csv")
        assert isinstance(caught.value.exceptions[0], EncodingError)

    def test_mixed_delimiters_are_not_sniffed(self) -> None:
        """Tab rows in a comma file are ragged rows, each named, not a guessed split."""
        mapping = CsvMapping(key="5", given_name="3", format=CsvFormat(has_header=False))
        with pytest.raises(RejectedFileError) as caught:
            self.read_file("tab_comma_mixed.csv", mapping)
        assert {p.line for p in caught.value.exceptions} == {2, 3, 4}

    def test_tab_separated_export_with_mixed_line_ends(self) -> None:
        """export.txt: tabs, quoted cells holding tabs and line breaks, CR/LF/CRLF."""
        path = CORPUS / "thunderbird-addressbook-tests" / "addrbook" / "test" / "unit" / "data"
        data = (path / "export.txt").read_bytes()
        table = read_table(data, file="export.txt", delimiter="\t")
        assert not table.problems
        assert all(len(row.cells) == len(table.header) for row in table.rows)
        csv_table = read_table((path / "export.csv").read_bytes(), file="export.csv")
        assert not csv_table.problems
        assert [r.cells for r in table.rows] == [r.cells for r in csv_table.rows]


class TestReviewedEdges:
    """Edges found in review: each was a silent loss or a leak before."""

    def test_headerless_rows_must_all_be_as_wide_as_the_first(self) -> None:
        """Without a header, a short row is an error, not a phone number read as removed."""
        mapping = CsvMapping(
            key="1", given_name="2", phones=(PhoneColumn("3"),), format=CsvFormat(has_header=False)
        )
        with pytest.raises(RejectedFileError) as caught:
            read("1,Ann,07700 900101\n2,Bob\n3,Cy,07700 900103,extra\n", mapping)
        assert {(p.line, p.field) for p in problems_of(caught)} == {
            (2, "column 3"),
            (3, "column 4"),
        }

    def test_a_file_mixing_utf8_and_cp1252_is_refused(self) -> None:
        """One cp1252 row in a UTF-8 file: no reading is safe, so none is guessed."""
        allowed = attrs.evolve(FULL, format=CsvFormat(allow_cp1252=True))
        data = (
            HEADER + "\nK1,Zoë,Lee,pupil,,,,,,,\n"
        ).encode() + "K2,Zoë,Ng,pupil,,,,,,,\n".encode("cp1252")
        with pytest.raises(RejectedFileError) as caught:
            read(data, allowed)
        (problem,) = problems_of(caught)
        assert isinstance(problem, EncodingError)
        assert "mixes" in problem.reason

    def test_keys_are_not_named_in_errors_or_notices(self) -> None:
        """A file keyed by email address must not repeat the address in a report."""
        mapping = attrs.evolve(FULL, key="Email", format=CsvFormat(max_reject_fraction=0.6))
        text = HEADER + "\nK1,Ann,Lee,dinner lady,,,ann@parent.test,,,,\n"
        text += "K2,Bo,Ng,pupil,1E+11,,bo@parent.test,,,,\n"
        reading = read(text, mapping)
        said = "\n".join(str(n) for n in reading.notices)
        assert reading.rejected == 1
        assert "ann@parent.test" not in said
        assert "bo@parent.test" not in said

    @pytest.mark.parametrize("value", ["4,47700900123E+11", "7700900123,0", "4.477E11"])
    def test_spreadsheet_numbers_in_any_locale(self, value: str) -> None:
        """Decimal commas and a missing exponent sign are spreadsheet numbers too."""
        mapping = attrs.evolve(FULL, format=CsvFormat(delimiter=";"))
        text = HEADER.replace(",", ";") + f"\nK1;Ann;Lee;guardian;{value};;;;;;\n"
        with pytest.raises(RejectedFileError) as caught:
            read(text, mapping)
        assert problems_of(caught)[0].field == "Mobile"

    @pytest.mark.parametrize("delimiter", [":", "x", ";;"])
    def test_only_the_four_delimiters(self, delimiter: str) -> None:
        """Comma, tab, semicolon and pipe; anything else is a mistake in the mapping."""
        with pytest.raises(UsageError):
            CsvFormat(delimiter=delimiter)

    def test_a_byte_order_mark_inside_the_file(self) -> None:
        """Two files joined leave a BOM on a key; it would make a new person, so it is an error."""
        data = (HEADER + "\nK1,A,B,pupil,,,,,,,\n").encode("utf-8-sig") + (
            HEADER + "\nK2,C,D,pupil,,,,,,,\n"
        ).encode("utf-8-sig")
        with pytest.raises(RejectedFileError) as caught:
            read(data)
        assert (3, "Id") in {(p.line, p.field) for p in problems_of(caught)}

    @pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
    def test_utf16_without_a_bom_is_read(self, encoding: str) -> None:
        """UTF-16 without a BOM is recognised by its NUL bytes and read, accents and all."""
        data = (HEADER + "\nK1,Zoë,Ødegård,pupil,,,,,,,\n").encode(encoding)
        (record,) = read(data).snapshot.records
        assert (record.data.given_name, record.data.family_name) == ("Zoë", "Ødegård")

    def test_utf32_without_a_bom_is_one_clear_error(self) -> None:
        """UTF-32 without a BOM: one file-level error naming it, no NUL-filled column names."""
        with pytest.raises(RejectedFileError) as caught:
            read((HEADER + "\nK1,A,B,pupil,,,,,,,\n").encode("utf-32-le"))
        (problem,) = problems_of(caught)
        assert isinstance(problem, EncodingError)
        assert "UTF-32 without a byte-order mark" in str(problem)
        assert "\x00" not in str(caught.value)

    def test_a_quoted_cell_open_at_the_end_of_the_file(self) -> None:
        """A quote never closed swallows the rest of the file: refused, with the line."""
        with pytest.raises(RejectedFileError) as caught:
            read(HEADER + '\nK1,"Ann,Lee,pupil,,,,,,,\nK2,B,C,pupil,,,,,,,\n')
        assert problems_of(caught)[0].line is not None


class TestCp1252Files:
    """Genuine cp1252 files read when allowed, capitals and punctuation included."""

    @pytest.mark.parametrize(
        "name",
        ["Müller", "RENÉ\u00a0MARTIN", "JOSÉ\u2019S", "Weiß\u2013Schmidt", "Ñúñez", "Sørensen £5"],
    )
    def test_names_that_once_looked_like_utf8(self, name: str) -> None:
        """Byte pairs such as É + no-break space are cp1252 text, not a mixed file."""
        allowed = attrs.evolve(FULL, format=CsvFormat(allow_cp1252=True))
        data = (HEADER + f"\nK1,Zoë,{name},pupil,,,,,,,\n").encode("cp1252")
        (record,) = read(data, allowed).snapshot.records
        assert (record.data.given_name, record.data.family_name) == ("Zoë", name)


def test_text_with_a_leading_bom_reads_like_bytes_with_one() -> None:
    """A string that kept its BOM names its first column without it."""
    table = read_table("\ufeffId,Name\nK1,Ann\n", file="t.csv")
    assert table.header == ("Id", "Name")


#: Two columns of one type each, so that a row may hold one value twice.
TWINS = CsvMapping(
    key="Id",
    given_name="First",
    role="Type",
    phones=(PhoneColumn("Mobile"), PhoneColumn("Mobile 2"), PhoneColumn("Home", PhoneType.HOME)),
    emails=(EmailColumn("Email"), EmailColumn("Email 2")),
    registration_group="Form",
    guardian_of="Children",
    list_separator="|",
    format=CsvFormat(max_reject_fraction=1.0),
)
TWINS_HEADER = ["Id", "First", "Type", "Mobile", "Mobile 2", "Home", "Email", "Email 2", "Form"]

#: Cell text a school's file may hold: accents (composed or not), spaces, quotes, separators,
#: one number written two ways, and none.
cells = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "Zoë",
            "Zoe\u0308",  # the same name, decomposed (NFD)
            "07700 900001",
            " 07700 900001 ",
            "07700900001",
            "a@example.org",
            "P1|P2",
        ]
    ),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00\ufeff"), max_size=8),
)


class TestDigestsFirst:
    @settings(max_examples=budget.examples(150), deadline=None)
    @given(
        st.lists(
            st.tuples(*[cells] * (len(TWINS_HEADER) - 1), st.sampled_from(["", "P1|P1", "P2| P1"])),
            max_size=6,
        )
    )
    def test_each_rows_digest_is_that_of_its_record(self, rows: list[tuple[str, ...]]) -> None:
        """The digest made from a row's cells is the digest of the record built from them.

        So a sync that skips the records whose digest it already holds skips
        exactly those whose data it holds.
        """
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([*TWINS_HEADER, "Children"])
        writer.writerows([f"K{n}", *row] for n, row in enumerate(rows))
        try:
            reading = read(out.getvalue(), TWINS)
        except RejectedFileError:
            return  # every row rejected: nothing to digest
        records = reading.snapshot.records
        assert isinstance(records, DigestedRecords)
        assert len(records) + reading.rejected == len(rows)
        for index, record in enumerate(records):
            assert record.key == records.keys[index]
            assert record_digest(record.data) == records.digests[index]

    def test_a_value_in_two_columns_of_one_type_is_one(self) -> None:
        """One number in two mobile columns and a home column: one phone, a mobile, digested so."""
        row = "K1,Ann,pupil,07700 900001, 07700 900001,07700 900001,,,9A,"
        records = read(
            ",".join([*TWINS_HEADER, "Children"]) + "\n" + row + "\n", TWINS
        ).snapshot.records
        (record,) = records
        assert [p.type for p in record.data.phones] == [PhoneType.MOBILE]
        assert isinstance(records, DigestedRecords)
        assert records.digests[0] == record_digest(record.data)


class TestTitleRowsAboveTheHeader:
    """A council export or an Excel paste has title rows above its header: say where it is."""

    TITLED = (
        "Contacts export,,\nPrinted 01/09/2026 by Gita,,\n\nId,First name,Notes\nK1,Ann,\nK2,Bo,x\n"
    )

    def test_without_a_header_row_the_file_cannot_be_read(self) -> None:
        """The first row is taken as the header, and the mapping's columns are not in it."""
        with pytest.raises(RejectedFileError):
            read(self.TITLED, CsvMapping(key="Id", given_name="First name"))

    def test_header_row_names_the_line(self) -> None:
        """Rows above the header are skipped and reported by line number, never by content."""
        mapping = CsvMapping(key="Id", given_name="First name", format=CsvFormat(header_row=4))
        reading = read(self.TITLED, mapping)
        assert [r.data.given_name for r in reading.snapshot.records] == ["Ann", "Bo"]
        (notice,) = [n for n in reading.notices if n.code == "rows-skipped"]
        assert (notice.line, notice.message) == (
            1,
            "2 rows above the header skipped (lines 1 to 2)",
        )
        assert "Gita" not in str(reading.notices)

    def test_find_header_skips_to_the_row_of_the_mapped_columns(self) -> None:
        """With find_header, the first row holding every mapped column is the header."""
        mapping = CsvMapping(key="Id", given_name="First name", format=CsvFormat(find_header=True))
        reading = read(self.TITLED, mapping)
        assert [r.key for r in reading.snapshot.records] == ["K1", "K2"]

    def test_a_bad_row_is_named_by_its_own_line(self) -> None:
        """Lines keep counting from the top of the file, title rows included."""
        mapping = CsvMapping(key="Id", given_name="First name", format=CsvFormat(header_row=4))
        with pytest.raises(RejectedFileError) as caught:
            read(self.TITLED + ",Nameless,\n", mapping)
        assert [p.line for p in problems_of(caught)] == [7]

    def test_no_header_found_is_one_clear_error(self) -> None:
        """A file without the mapped header anywhere is refused as such, naming no cell."""
        mapping = CsvMapping(key="Id", given_name="Given", format=CsvFormat(find_header=True))
        with pytest.raises(RejectedFileError) as caught:
            read(self.TITLED, mapping)
        assert caught.value.message == "contacts.csv: no header; nothing from this file was applied"
        assert "Gita" not in format_errors(caught.value)

    def test_header_row_in_a_mapping_file(self, tmp_path: Path) -> None:
        """Both keys can be written in mapping.toml."""
        path = tmp_path / "mapping.toml"
        path.write_text(
            'key = "Id"\n[format]\nheader_row = 4\nfind_header = true\n', encoding="utf-8"
        )
        fmt = CsvMapping.from_toml(path).format
        assert (fmt.header_row, fmt.find_header) == (4, True)
