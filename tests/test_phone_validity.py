"""Phone numbers are checked for validity, not length (issue 14).

A number of a possible length that fits no range of its country is a problem,
never an E.164 value; Ofcom's drama ranges are valid by an explicit rule; a
national number that cannot be the region's is refused, not re-homed; a
source may read its numbers in a region of its own.
"""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from school import full, guardian, london, mis_policy, school
from sourcetruth import (
    AddressBookSave,
    Book,
    ContactData,
    OverrideLifetime,
    OverrideOutcome,
    Phone,
    Policy,
    SetOverride,
    Source,
    SourceKind,
    merge,
    normalise_phone,
)
from sourcetruth.adapters.sources.export import export_csv
from sourcetruth.app.settings import parse_settings
from sourcetruth.exceptions import SourceDataError, UsageError
from sourcetruth.normalise import DRAMA_RANGES, is_drama_number
from sourcetruth.view import view_basis
from sourcetruth.worklists import count_by_source, data_quality

SHORT_OF_A_DIGIT = ["0306 999012", "0117 496 012"]


class TestValidity:
    @pytest.mark.parametrize("raw", SHORT_OF_A_DIGIT)
    def test_possible_but_invalid_is_a_problem(self, raw: str) -> None:
        """A number short of its range's 10 national digits has a possible length, but no value."""
        assert phonenumbers.is_possible_number(phonenumbers.parse(raw, "GB"))
        result = normalise_phone(raw)
        assert result.value is None
        assert result.problem == "not a valid number in region GB"

    def test_an_invalid_international_number_says_so(self) -> None:
        """Written with +44, the same short number is invalid in its country's plan."""
        result = normalise_phone("+44 306 999012", "US")
        assert result.value is None
        assert result.problem == "not a valid number in its country's numbering plan"

    def test_a_us_number_is_not_re_homed_in_gb(self) -> None:
        """A US national number read in GB is refused; read in US it is American."""
        assert normalise_phone("6035550123", "GB").value is None
        assert normalise_phone("6035550123", "US").value == "+16035550123"
        assert normalise_phone("+1 603 555 0123", "GB").value == "+16035550123"

    def test_valid_numbers_still_normalise(self) -> None:
        """A real-looking valid number of another country keeps working with its code."""
        assert normalise_phone("+353 1 234 5678", "GB").value == "+35312345678"

    def test_problems_never_quote_the_number(self) -> None:
        """The problem says what is wrong, never the digits (rule 13)."""
        for raw in [*SHORT_OF_A_DIGIT, "6035550123"]:
            problem = normalise_phone(raw).problem
            assert problem
            assert re.sub(r"\D", "", raw)[:4] not in problem


class TestDramaNumbers:
    def test_the_metadata_calls_some_drama_ranges_invalid(self) -> None:
        """Without the rule, 07700 900xxx and 01632 960xxx would be lost: phonenumbers calls
        them invalid."""
        for raw in ["07700 900123", "01632 960123", "0115 496 0123"]:
            assert not phonenumbers.is_valid_number(phonenumbers.parse(raw, "GB"))

    @pytest.mark.parametrize("prefix", sorted(DRAMA_RANGES))
    def test_every_drama_range_is_valid_from_first_to_last(self, prefix: str) -> None:
        """The first and last number of each range, written nationally, normalise."""
        national = "0" + prefix.removeprefix("+44")
        for last in ("000", "999"):
            assert normalise_phone(national + last).value == prefix + last

    def test_a_neighbour_of_the_mobile_range_is_not_drama(self) -> None:
        """07700 901000 is outside the range, and the metadata does not call it valid."""
        assert not is_drama_number("+447700901000")
        assert normalise_phone("07700 901000").value is None

    @given(st.sampled_from(sorted(DRAMA_RANGES)), st.integers(0, 999))
    def test_any_drama_number_normalises_to_itself(self, prefix: str, last: int) -> None:
        """Property: every number of every drama range normalises, in national or + form."""
        e164 = f"{prefix}{last:03d}"
        assert normalise_phone(e164).value == e164
        assert normalise_phone("0" + e164.removeprefix("+44")).value == e164


@given(
    st.text(alphabet="0123456789", min_size=6, max_size=13),
    st.sampled_from(["", "+", "0", "00", "+44", "+1"]),
    st.sampled_from(["GB", "US", "IE"]),
)
def test_never_a_value_for_an_invalid_number_outside_the_drama_ranges(
    digits: str, lead: str, region: str
) -> None:
    """Property: what normalises is valid for its country, or a drama number; nothing else."""
    raw = lead + digits
    value = normalise_phone(raw, region).value
    if value is None:
        return
    number = phonenumbers.parse(value)
    assert phonenumbers.is_valid_number(number) or is_drama_number(value)


class TestSourceRegion:
    def _policy(self) -> Policy:
        return Policy.simple(
            Source("mis", SourceKind.MIS),
            Source("us-club", SourceKind.IMPORT, region="US"),
        )

    def test_a_source_region_reads_its_numbers(self) -> None:
        """The import's national numbers are read as American, the MIS's as British."""
        policy = self._policy()
        assert policy.region_of("us-club") == "US"
        assert policy.region_of("mis") == "GB"
        assert policy.region_of(None) == "GB"
        at = london(23, 2)
        club = full(at, [guardian("C1", mobile="6035550123")], source="us-club")
        book = merge(Book(), club, policy=policy, at=at, by="n").book
        mis = full(at, [guardian("G1", mobile="6035550123")])
        result = merge(book, mis, policy=policy, at=at, by="n")
        assert [(u.record, u.problem) for u in result.report.unnormalised] == [
            ("mis:G1", "not a valid number in region GB")
        ]
        assert result.book.view["us-club:C1"].phones == ("+16035550123",)
        assert result.book.view["mis:G1"].phones == (None,)

    def test_the_export_and_the_report_read_the_source_region(self) -> None:
        """The CSV export writes the import's number in E.164; reformatting it is no change."""
        policy = self._policy()
        at = london(23, 2)
        club = full(at, [guardian("C1", mobile="6035550123")], source="us-club")
        book = merge(Book(), club, policy=policy, at=at, by="n").book
        assert "+16035550123" in export_csv(book, policy=policy, at=london(23, 9))
        later = london(24, 2)
        again = full(later, [guardian("C1", mobile="(603) 555-0123")], source="us-club")
        result = merge(book, again, policy=policy, at=later, by="n")
        assert result.report.changes == ()

    @pytest.mark.parametrize("until", [False, True])
    def test_an_override_ends_judged_in_its_source_region(self, until: bool) -> None:
        """The club's next sync sends the edited number in another format: confirmed.

        Read in GB, "6035550199" and "(603) 555-0199" are two raw texts, and
        the outcome was "superseded"; the club's numbers are American. The
        same holds for an override ended by its ``until``, judged as of then.
        """
        policy = self._policy()
        at = london(23, 2)
        club = full(at, [guardian("C1", mobile="6035550123")], source="us-club")
        book = merge(Book(), club, policy=policy, at=at, by="n").book
        lifetime = OverrideLifetime.UNTIL if until else OverrideLifetime.NEXT_SYNC
        edit = SetOverride(
            "us-club:C1",
            "phones",
            ContactData(phones=(Phone("(603) 555-0199"),)),
            lifetime=lifetime,
            until=london(24, 1) if until else None,
        )
        book = merge(book, edit, policy=policy, at=london(23, 9), by="office").book
        later = london(24, 2)
        again = full(later, [guardian("C1", mobile="6035550199")], source="us-club")
        result = merge(book, again, policy=policy, at=later, by="n")
        (ended,) = result.report.overrides_ended
        assert ended.outcome is OverrideOutcome.CONFIRMED

    def test_an_edit_of_a_feed_compares_in_the_feeds_region(self) -> None:
        """Saving the club's number as it already is, in another format, changes nothing."""
        policy = self._policy()
        at = london(23, 2)
        club = full(at, [guardian("C1", mobile="6035550123")], source="us-club")
        book = merge(Book(), club, policy=policy, at=at, by="n").book
        same = ContactData(phones=(Phone("(603) 555-0123"),))
        save = AddressBookSave("us-club:C1", same, fields=frozenset({"phones"}))
        result = merge(book, save, policy=policy, at=london(23, 9), by="office")
        assert result.report.overrides_set == ()

    def test_a_region_that_is_not_one_is_refused(self) -> None:
        """A source or policy region must be a phone region code."""
        with pytest.raises(UsageError, match="region"):
            Source("x", SourceKind.IMPORT, region="UK")
        with pytest.raises(UsageError, match="region"):
            Policy.simple(Source("x", SourceKind.IMPORT), region="gb")

    def test_the_view_basis_names_each_source_region(self) -> None:
        """A view built with another source region is not current: its phones read otherwise."""
        gb = Policy.simple(Source("mis", SourceKind.MIS), Source("club", SourceKind.IMPORT))
        us = Policy.simple(
            Source("mis", SourceKind.MIS), Source("club", SourceKind.IMPORT, region="US")
        )
        assert view_basis(gb) != view_basis(us)

    def test_policy_toml_sets_a_source_region(self) -> None:
        """`region` in a source's table of policy.toml becomes the source's region."""
        text = '[sources.mis]\nkind = "mis"\n[sources.club]\nkind = "import"\nregion = "US"\n'
        policy = parse_settings(text, file="policy.toml").policy
        assert policy.region_of("club") == "US"
        assert policy.region_of("mis") == "GB"

    def test_policy_toml_refuses_a_bad_source_region(self) -> None:
        """A source region that is not one is refused at its key."""
        text = '[sources.mis]\nkind = "mis"\nregion = "UK"\n'
        with pytest.raises(SourceDataError) as caught:
            parse_settings(text, file="policy.toml")
        assert caught.value.field == "sources.mis.region"
        assert "region code" in str(caught.value)


class TestDataQuality:
    def test_invalid_numbers_are_counted_per_source(self) -> None:
        """The data-quality report counts the numbers that are not valid, by source."""
        policy = mis_policy()
        at = london(23, 2)
        mis = full(at, school(guardian("G9", "P9", mobile=SHORT_OF_A_DIGIT[0])))
        book = merge(Book(), mis, policy=policy, at=at, by="n").book
        imported = full(
            at,
            [guardian("C1", mobile=SHORT_OF_A_DIGIT[1]), guardian("C2", mobile="6035550123")],
            source="import",
        )
        book = merge(book, imported, policy=policy, at=at, by="n").book
        problems = data_quality(book, policy=policy, at=london(23, 9))
        assert count_by_source(problems) == {"import": 2, "mis": 1}
        unnormalised = [p for p in problems if p.kind == "unnormalised"]
        assert {(p.contact_id, p.source) for p in unnormalised} == {
            ("mis:G9", "mis"),
            ("import:C1", "import"),
            ("import:C2", "import"),
        }

    def test_a_drama_number_is_no_problem(self) -> None:
        """The test data's own numbers raise no data-quality problem."""
        policy = mis_policy()
        at = london(23, 2)
        book = merge(Book(), full(at, school()), policy=policy, at=at, by="n").book
        problems = data_quality(book, policy=policy, at=london(23, 9))
        assert count_by_source(problems) == {}
        assert Phone("07700 900101") in book.view["mis:G9"].data.phones
