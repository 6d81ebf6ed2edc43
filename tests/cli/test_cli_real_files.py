"""Real files through the command: title rows, a tab-separated TXT, empty and headers-only files."""

from __future__ import annotations

from cli_helpers import Cli, files_of, when

HEADER = "Id\tFirst name\tSurname\tMobile\tEmail\n"


def tab_mapping(book: Cli, extra: str = "") -> None:
    """The import's mapping, for a tab-separated TXT written as mapping.toml would say it."""
    book.enable_import()
    mapping = book.folder / "mapping.toml"
    text = mapping.read_text(encoding="utf-8") + '[format]\ndelimiter = "tab"\n' + extra
    mapping.write_text(text, encoding="utf-8")


class TestLayoutsPeopleMake:
    def test_a_tab_separated_txt_with_title_rows(self, book: Cli) -> None:
        """delimiter = "tab" and header_row in mapping.toml: read, the title rows by line only."""
        tab_mapping(book, "header_row = 3\n")
        text = "Parents export\t\t\t\t\nPrinted by Gita Shah\t\t\t\t\n" + HEADER
        text += "G1\tGita\tShah\t07700 900101\tgita@parent.test\n"
        path = book.csv("parents.txt", text)
        ran = book.ok("sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9))
        assert "2 rows above the header skipped (lines 1 to 2)" in ran.err
        assert "Printed" not in ran.err
        shown = book.show("import:G1", when(24, 11))
        assert shown["data"]["given_name"] == "Gita"

    def test_a_headers_only_file_is_one_line_naming_the_file(self, book: Cli) -> None:
        """Not the merge's "empty snapshot": the reader's error, with the file's name."""
        tab_mapping(book)
        path = book.csv("parents.txt", HEADER)
        before = files_of(book.folder)
        ran = book.fails(
            3, "sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9)
        )
        assert ran.err_lines[0] == (
            "sourcetruth: parents.txt: no rows; nothing from this file was applied"
        )
        assert files_of(book.folder) == before

    def test_an_empty_file_is_said_to_be_empty(self, book: Cli) -> None:
        """An empty file is not "the header does not fit the mapping"."""
        tab_mapping(book)
        path = book.csv("parents.txt", "")
        ran = book.fails(
            3, "sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9)
        )
        assert ran.err_lines[0] == (
            "sourcetruth: parents.txt: empty; nothing from this file was applied"
        )
        assert "header does not fit" not in ran.err

    def test_a_shift_jis_file_names_its_encoding(self, book: Cli) -> None:
        """Refused with the likely encoding, not mojibake and not "allow cp1252"."""
        tab_mapping(book, "allow_cp1252 = true\n")
        path = book.exports / "parents.txt"
        path.write_bytes((HEADER + "G1\tカタカナ\tテスト\t\t\n").encode("shift_jis"))
        ran = book.fails(
            3, "sync", "import", str(path), "--at", when(24, 10), "--extracted-at", when(24, 9)
        )
        assert "Shift_JIS" in ran.err
        assert "allow cp1252" not in ran.err
