"""A rejected file on the command line: its problems are listed up to a cap, then counted."""

from __future__ import annotations

from cli_helpers import Cli, files_of, when

from sourcetruth.exceptions import LISTED_PROBLEMS

ROWS = 100_000


class TestManyBadRows:
    def test_a_csv_of_many_bad_rows_prints_a_screenful(self, book: Cli) -> None:
        """F14: 100,000 bad rows print the first LISTED_PROBLEMS problems and count the rest."""
        book.enable_import()
        bad = "".join(f"C{n},Xanthe\n" for n in range(ROWS))  # each row is short
        path = book.csv("parents.csv", "Id,First name,Surname,Mobile,Email\n" + bad)
        before = files_of(book.folder)
        ran = book.fails(
            3, "sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9)
        )
        first, *problems, rest = ran.err_lines
        assert first.startswith(f"sourcetruth: parents.csv: {ROWS} of {ROWS} rows rejected")
        assert len(problems) == LISTED_PROBLEMS
        assert problems[0] == (
            "  - the row has 2 cells where the file has 5 columns "
            "(file parents.csv, line 2, field Surname)"
        )
        assert rest == f"  ... and {ROWS - LISTED_PROBLEMS} more problems"
        assert "Xanthe" not in ran.err
        assert files_of(book.folder) == before
