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

    def test_many_rows_rejected_within_the_limit_print_a_screenful_of_notices(
        self, book: Cli
    ) -> None:
        """F14: rows a mapping allows to reject are notices, listed up to the cap, then counted."""
        book.enable_import()
        mapping = book.folder / "mapping.toml"
        text = mapping.read_text(encoding="utf-8") + "[format]\nmax_reject_fraction = 1.0\n"
        mapping.write_text(text, encoding="utf-8")
        good = "G1,Gita,Shah,07700 900101,gita@parent.test\n"
        bad = "".join(f"C{n},Xanthe\n" for n in range(1_000))
        path = book.csv("parents.csv", "Id,First name,Surname,Mobile,Email\n" + good + bad)
        ran = book.ok("sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9))
        notices = [line for line in ran.err_lines if line.startswith("notice: ")]
        assert len(notices) == LISTED_PROBLEMS + 1
        assert notices[0].startswith("notice: parents.csv: 1000 rows rejected")
        # That summary, then one notice per rejected row.
        assert notices[-1] == f"notice: ... and {1_001 - LISTED_PROBLEMS} more notices"
        assert "Xanthe" not in ran.err
