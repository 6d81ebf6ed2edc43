"""Rule 10: normalise before comparing; a value that does not parse is kept and reported."""

from __future__ import annotations

import re

import pytest

from school import full, guardian, london, mis_policy, school
from sourcetruth import (
    Book,
    ContactData,
    Normalised,
    Phone,
    Policy,
    Record,
    Relationship,
    Report,
    Role,
    Source,
    SourceKind,
    Status,
    Unnormalised,
    contact_at,
    merge,
    normalise_email,
    normalise_phone,
)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


class TestPhoneNumbers:
    @pytest.mark.parametrize("raw", ["07700 900123", "+44 7700 900123", "(07700) 900 123"])
    def test_gb_formats_give_the_same_e164(self, raw: str) -> None:
        """National, international and bracketed forms of one number all give +447700900123."""
        result = normalise_phone(raw)
        assert result == Normalised("+447700900123")
        assert result.ok
        assert result.problem is None

    def test_surrounding_whitespace_is_ignored(self) -> None:
        """Leading and trailing spaces and tabs do not matter."""
        assert normalise_phone("\t 07700 900123  ").value == "+447700900123"

    def test_default_region_is_gb(self) -> None:
        """Without a region argument a national number is read as British."""
        assert normalise_phone("01632 960123").value == "+441632960123"

    def test_another_region_through_the_policy(self) -> None:
        """A policy whose default region is US reads a national number as American."""
        policy = Policy.simple(Source("mis", SourceKind.MIS), region="US")
        assert policy.default_region == "US"
        result = normalise_phone("(201) 555-0123", policy.default_region)
        assert result.value == "+12015550123"
        assert normalise_phone("(201) 555-0123").value != result.value

    def test_international_number_ignores_the_region(self) -> None:
        """A number written with its country code is the same whatever the default region."""
        assert normalise_phone("+44 7700 900123", "US").value == "+447700900123"

    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param("123", id="too-short-3-digits"),
            pytest.param("0770", id="too-short-4-digits"),
            pytest.param("07700 9001", id="too-short-mobile"),
            pytest.param("07700 900123 4567", id="too-long"),
            pytest.param("077009001234567890", id="much-too-long"),
            pytest.param("call me", id="letters"),
            pytest.param("n/a", id="letters-na"),
            pytest.param("07700 9OO123", id="letter-O-for-zero"),
            pytest.param("4.47700900123E+11", id="excel-float"),
            pytest.param("   ", id="blank"),
        ],
    )
    def test_malformed_number_is_a_problem_not_a_value(self, raw: str) -> None:
        """A malformed number gives value None and a problem, and `ok` is false."""
        result = normalise_phone(raw)
        assert result.value is None, f"accepted as {result.value}"
        assert result.problem
        assert not result.ok

    @pytest.mark.parametrize(
        "raw",
        [
            "07700 900123 4567",
            "+44 7700 900123 4567",
            "077009001234567890",
            "4.47700900123E+11",
            "07700-900-123 (mum)",
        ],
    )
    def test_problem_text_never_contains_the_digits(self, raw: str) -> None:
        """The problem names what is wrong, never the number (rule 13)."""
        problem = normalise_phone(raw).problem
        assert problem
        assert _digits(raw) not in _digits(problem)
        assert "7700" not in problem

    def test_accepted_values_are_e164(self) -> None:
        """Whatever is accepted has the E.164 shape: '+', no leading zero, at most 15 digits."""
        for raw in ["07700 900123", "01632 960123", "+44 7700 900123", "0044 7700 900123"]:
            value = normalise_phone(raw).value
            assert value is not None
            assert re.fullmatch(r"\+[1-9]\d{6,14}", value), value

    def test_comparable_keeps_raw_text_when_it_does_not_parse(self) -> None:
        """A value that does not normalise compares by its trimmed raw text."""
        assert normalise_phone(" call me ").comparable(" call me ") == "call me"


class TestEmailAddresses:
    def test_domain_is_case_folded_and_local_part_kept(self) -> None:
        """Only the domain is folded: the local part is the receiving server's business."""
        assert normalise_email("Mixed.Case@EXAMPLE.org").value == "Mixed.Case@example.org"

    def test_whitespace_is_trimmed(self) -> None:
        """Spaces, tabs and newlines around the address are dropped."""
        assert normalise_email("  g9@Parent.Test\n").value == "g9@parent.test"

    def test_reformatted_addresses_compare_equal(self) -> None:
        """Two spellings that differ only in domain case and spacing are one address."""
        assert normalise_email(" pg@School.TEST").value == normalise_email("pg@school.test").value

    def test_different_local_parts_stay_different(self) -> None:
        """'Alex@' and 'alex@' are kept apart: the local part is not folded."""
        assert (
            normalise_email("Alex@example.org").value != normalise_email("alex@example.org").value
        )

    @pytest.mark.parametrize(
        "raw",
        [
            "no-at-sign.example.org",
            "two@@example.org",
            "spaces in@example.org",
            "x@y",
            "@example.org",
        ],
    )
    def test_invalid_syntax_is_reported_without_the_value(self, raw: str) -> None:
        """Invalid syntax gives value None and a problem that does not quote the address."""
        result = normalise_email(raw)
        assert result.value is None
        assert result.problem
        assert not result.ok
        assert raw not in result.problem
        assert "example" not in result.problem

    def test_blank_is_a_problem(self) -> None:
        """An empty or blank address is not a value."""
        assert normalise_email("  ").value is None
        assert normalise_email("  ").problem


BAD_PHONE = "call me"


class TestMergeKeepsAndReportsUnnormalised:
    def _first_sync(self) -> tuple[Book, Report]:
        policy = mis_policy()
        record = guardian("G9", "P9", mobile=BAD_PHONE, email="not-an-address", given="Gita")
        at = london(23, 2)
        result = merge(Book(), full(at, school(record)), policy=policy, at=at, by="nightly")
        assert result.report.status is Status.APPLIED
        return result.book, result.report

    def test_raw_value_is_kept_in_the_book(self) -> None:
        """The unparseable phone is not dropped: contact_at shows the raw value."""
        book, _ = self._first_sync()
        contact = contact_at(book, "mis:G9", policy=mis_policy(), at=london(23, 9))
        assert contact.data.phones == (Phone(BAD_PHONE),)

    def test_report_names_record_field_and_index(self) -> None:
        """The report's `unnormalised` says which record, field and index, with a problem."""
        _, report = self._first_sync()
        found = {(u.record, u.field, u.index) for u in report.unnormalised}
        assert found == {("mis:G9", "phones", 0), ("mis:G9", "emails", 0)}
        for item in report.unnormalised:
            assert isinstance(item, Unnormalised)
            assert item.problem
            assert BAD_PHONE not in item.problem
            assert "not-an-address" not in item.problem

    def test_index_points_at_the_bad_phone_among_good_ones(self) -> None:
        """With a good phone first and a bad one second, the index is 1."""
        policy = mis_policy()
        record = Record(
            "G8",
            ContactData(
                "Hal",
                "Parent",
                Role.GUARDIAN,
                phones=(Phone("07700 900102"), Phone("4.47700900123E+11")),
                relationships=(Relationship("P8"),),
            ),
        )
        at = london(23, 2)
        result = merge(Book(), full(at, school(record)), policy=policy, at=at, by="nightly")
        assert [(u.record, u.field, u.index) for u in result.report.unnormalised] == [
            ("mis:G8", "phones", 1)
        ]

    def test_reformatted_phone_is_not_a_change(self) -> None:
        """The next snapshot writes the same numbers differently: no FieldChange is reported."""
        policy = mis_policy()
        first = guardian("G9", "P9", mobile="07700 900101", email="g9@parent.test", given="Gita")
        again = guardian("G9", "P9", mobile="+44 7700 900101", email="g9@Parent.TEST", given="Gita")
        book = merge(
            Book(), full(london(23, 2), school(first)), policy=policy, at=london(23, 2), by="n"
        ).book
        result = merge(
            book, full(london(24, 2), school(again)), policy=policy, at=london(24, 2), by="n"
        )
        assert result.report.status is Status.APPLIED
        assert [c for c in result.report.changes if c.contact_id == "mis:G9"] == []
        # The book keeps the source's new spelling.
        contact = contact_at(result.book, "mis:G9", policy=policy, at=london(24, 9))
        assert contact.data.phones == (Phone("+44 7700 900101"),)

    def test_real_phone_change_is_a_change(self) -> None:
        """For contrast: a different number is reported as a FieldChange of phones."""
        policy = mis_policy()
        book = merge(
            Book(), full(london(23, 2), school()), policy=policy, at=london(23, 2), by="n"
        ).book
        changed = guardian("G9", "P9", mobile="07700 900999", email="g9@parent.test", given="Gita")
        result = merge(
            book, full(london(24, 2), school(changed)), policy=policy, at=london(24, 2), by="n"
        )
        assert [(c.contact_id, c.field) for c in result.report.changes] == [("mis:G9", "phones")]
