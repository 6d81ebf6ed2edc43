"""A file of the wrong kind for a source: refused before reading, saying what the source reads."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from cli_helpers import Cli, one_error_line, when
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth.cli._kinds import kind_of

SYNC = ("--at", when(25, 2), "--extracted-at", when(25, 1))
BUNDLE = "a OneRoster bundle: a .zip file or a folder of its CSV files"


def inputs(root: Path) -> dict[str, Path]:
    """One input of each kind, in *root*."""
    csv = root / "club.csv"
    csv.write_text("Id,First name,Surname,Mobile,Email\nC1,Hal,Reid,,\n", encoding="utf-8")
    card = root / "governor.vcf"
    card.write_text("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Lars Berg\r\nEND:VCARD\r\n", encoding="utf-8")
    folder = root / "folder"
    folder.mkdir()
    archive = root / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as made:
        made.writestr("users.csv", "sourcedId\n")
    workbook = root / "club.xlsx"
    workbook.write_bytes(archive.read_bytes())
    return {"csv": csv, "vcard": card, "folder": folder, "zip": archive, "xlsx": workbook}


class TestWrongKind:
    @pytest.mark.parametrize(
        ("source", "given", "said"),
        [
            ("mis", "csv", f"the source 'mis' reads {BUNDLE}; {{}} is a CSV file"),
            ("mis", "vcard", f"the source 'mis' reads {BUNDLE}; {{}} is a vCard file"),
            ("import", "folder", "the source 'import' reads a CSV file; {} is a folder"),
            ("import", "zip", "the source 'import' reads a CSV file; {} is a zip file"),
            ("import", "vcard", "the source 'import' reads a CSV file; {} is a vCard file"),
            (
                "import",
                "xlsx",
                "the source 'import' reads a CSV file; {} is an Excel workbook (save it as CSV)",
            ),
        ],
    )
    def test_sync(self, book: Cli, source: str, given: str, said: str) -> None:
        """sync: the wrong kind exits 2, saying what the source reads and what the path is."""
        book.enable_import()
        path = os.fspath(inputs(book.exports)[given])
        line = one_error_line(book.fails(2, "sync", source, path, *SYNC))
        assert line == f"sourcetruth: {said.format(path)}"

    @pytest.mark.parametrize("given", ["csv", "folder", "zip"])
    def test_address_book_import(self, book: Cli, given: str) -> None:
        """address-book import of anything but a vCard file says it reads one."""
        path = os.fspath(inputs(book.exports)[given])
        line = one_error_line(book.fails(2, "address-book", "import", path, *SYNC[:2]))
        assert line.startswith(
            f"sourcetruth: address-book import reads a vCard (.vcf) file; {path}"
        )

    def test_before_next_sync_snapshot(self, book: Cli) -> None:
        """report before-next-sync --snapshot is checked the same way."""
        path = os.fspath(inputs(book.exports)["csv"])
        line = one_error_line(
            book.fails(2, "report", "before-next-sync", "mis", "--snapshot", path)
        )
        assert line.endswith(f"; {path} is a CSV file")

    def test_no_path_for_a_source_that_reads_exports(self, book: Cli) -> None:
        """sync without a path is for a live source: one that reads exports asks for its path."""
        line = one_error_line(book.fails(2, "sync", "mis", *SYNC))
        assert line.endswith("reads an export: give its path")

    def test_the_right_kinds_still_read(self, book: Cli) -> None:
        """The kinds a source reads pass: a bundle folder for the MIS, a CSV file for imports."""
        book.enable_import()
        book.ok("sync", "import", os.fspath(inputs(book.exports)["csv"]), *SYNC)
        book.sync(book.export("wed"), 25, 3)


class TestKindOf:
    def test_kinds(self, tmp_path: Path) -> None:
        """Each kind is told from the path or its first bytes; UTF-16 text is text."""
        found = {name: kind_of(path) for name, path in inputs(tmp_path).items()}
        assert found == {"csv": "csv", "vcard": "vcard", "folder": "folder", "zip": "zip",
                         "xlsx": "xlsx"}  # fmt: skip
        utf16 = tmp_path / "cards.vcf"
        utf16.write_bytes("BEGIN:VCARD\r\nEND:VCARD\r\n".encode("utf-16-le"))
        assert kind_of(utf16) == "vcard"
        empty = tmp_path / "empty.csv"
        empty.write_bytes(b"")
        assert kind_of(empty) == "empty"
        broken = tmp_path / "broken.zip"
        broken.write_bytes(b"PK\x03\x04 cut short")
        assert kind_of(broken) == "zip"  # the reader reports a broken zip (exit 3)
        assert kind_of(tmp_path / "missing") is None

    @given(st.binary(max_size=300))
    def test_any_bytes_have_a_kind(self, data: bytes) -> None:
        """Whatever a file holds, kind_of names a kind and never raises."""
        descriptor, name = tempfile.mkstemp()
        os.close(descriptor)
        path = Path(name)
        path.write_bytes(data)
        try:
            assert kind_of(path) in {"zip", "xlsx", "empty", "binary", "vcard", "csv", "text"}
        finally:
            path.unlink()
