"""Values typed on the command line are checked as imported ones are, and refused, unechoed."""

from __future__ import annotations

import pytest
from cli_helpers import Cli, one_error_line, when
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth.cli._typed import check_typed
from sourcetruth.exceptions import UsageError
from sourcetruth.normalise import normalise_email, normalise_phone

AT = ("--at", when(24, 9))


class TestRefused:
    @pytest.mark.parametrize(
        ("args", "said"),
        [
            (
                ("address-book", "edit", "mis:G1", "--email", "not-an-email"),
                "--email: not a valid email address; nothing was changed",
            ),
            (
                ("address-book", "add", "--given", "Ann", "--mobile", "12345"),
                "--mobile: impossible length for its country (numbers are read in region GB); "
                "nothing was changed",
            ),
            (
                ("address-book", "add", "--given", "Ann", "--work-email", "ann@"),
                "--work-email: not a valid email address; nothing was changed",
            ),
            (
                ("override", "set", "mis:G1", "phones", "07700 900123", "0770090"),
                "phones, second value: ",
            ),
            (
                ("override", "set", "mis:G1", "emails", "a@parent.test", "b@", "c@parent.test"),
                "emails, second value: not a valid email address; nothing was changed",
            ),
        ],
    )
    def test_an_unusable_value_is_refused(
        self, book: Cli, args: tuple[str, ...], said: str
    ) -> None:
        """A value the book could not use: exit 2, the option named, the value not echoed."""
        runs = len(book.journal())
        line = one_error_line(book.fails(2, *args, *AT))
        assert line.startswith(f"sourcetruth: {said}")
        for typed in ("not-an-email", "12345", "0770090", "ann@", "b@"):
            assert typed not in line
        assert len(book.journal()) == runs

    def test_usable_values_are_saved(self, book: Cli) -> None:
        """Numbers and addresses that normalise are saved as before."""
        book.ok("address-book", "edit", "mis:G1", "--email", "g1@parent.test",
                "--mobile", "07700 900111", *AT)  # fmt: skip
        book.ok("override", "set", "mis:G2", "phones", "+44 7700 900112", *AT)

    def test_numbers_are_read_in_their_source_region(self, book: Cli) -> None:
        """A national number is read in the region of the contact's source, as a sync reads it."""
        policy = book.folder / "policy.toml"
        text = policy.read_text(encoding="utf-8")
        policy.write_text(
            text.replace("[sources.mis]\n", '[sources.mis]\nregion = "FR"\n'), encoding="utf-8"
        )
        line = one_error_line(
            book.fails(2, "override", "set", "mis:G1", "phones", "07700 900123", *AT)
        )
        assert "(numbers are read in region FR)" in line
        book.ok("override", "set", "mis:G1", "phones", "+44 7700 900123", *AT)
        book.ok("address-book", "add", "--given", "Ann", "--mobile", "07700 900124", *AT)


@given(st.text(max_size=30), st.sampled_from(["phones", "emails"]))
def test_check_typed_refuses_what_normalise_refuses(value: str, field: str) -> None:
    """check_typed refuses a value exactly when normalising refuses it, never quoting it."""
    found = normalise_phone(value, "GB") if field == "phones" else normalise_email(value)
    if found.ok:
        check_typed("--x", field, [value], "GB")
        return
    with pytest.raises(UsageError) as refused:
        check_typed("--x", field, [value], "GB")
    # Made of the option and normalise's fixed reason only: no room for the value.
    read = " (numbers are read in region GB)" if field == "phones" else ""
    assert str(refused.value) == f"--x: {found.problem}{read}; nothing was changed"
