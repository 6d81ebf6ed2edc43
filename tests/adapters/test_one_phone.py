"""One number, one phone: the same number under two types in a record is one phone (issue 14)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from test_sds import AT, USERS_HEADER, write_school

from sourcetruth import Phone, PhoneType
from sourcetruth.adapters._util import one_phone_per_number
from sourcetruth.adapters.sources.sds import SdsAdapter
from sourcetruth.adapters.sources.tabular import CsvMapping, PhoneColumn, read_csv
from sourcetruth.adapters.sources.vcard import parse_vcards

SAME = "07700 900321"


def test_sds_guardian_with_one_number_in_phone_and_sms_has_one_phone(tmp_path: Path) -> None:
    """A guardian whose `phone` and `sms` hold one number gets it once, as a mobile."""
    users = USERS_HEADER + (
        "P9,nina@oak.test,Nina,Okafor,,,,,\n"
        "P8,omar@oak.test,Omar,Nowak,,,,,\n"
        "E5,ivy@elm.test,Ivy,Singh,,,,,\n"
        f"G9,g9@parent.test,Gita,Okafor,,,g9@parent.test,{SAME},{SAME.replace(' ', '')}\n"
        "G8,g8@parent.test,Hal,Nowak,,,g8@parent.test,01632 960102,07700 900102\n"
        "G5,g5@parent.test,Paula,Singh,,,g5@parent.test,,07700 900103\n"
        "S1,s1@oak.test,Steve,Byrne,,,s1@school.test,,07700 900201\n"
    )
    reading = SdsAdapter(write_school(tmp_path, users=users)).read(extracted_at=AT)
    data = {r.key: r.data for r in reading.snapshot.records}
    assert data["G9"].phones == (Phone(SAME.replace(" ", ""), PhoneType.MOBILE),)
    assert data["G8"].phones == (
        Phone("07700 900102", PhoneType.MOBILE),
        Phone("01632 960102", PhoneType.HOME),
    )


def test_csv_row_with_one_number_in_two_columns_has_one_phone() -> None:
    """A CSV row with the number under Home and Mobile has one phone, a mobile."""
    mapping = CsvMapping(
        key="Id",
        given_name="First name",
        phones=(PhoneColumn("Home", PhoneType.HOME), PhoneColumn("Mobile")),
    )
    text = f"Id,First name,Home,Mobile\nC1,Ann,{SAME},{SAME}\n"
    reading = read_csv(text, mapping, file="c.csv", source="import", extracted_at=AT)
    assert reading.snapshot.records[0].data.phones == (Phone(SAME, PhoneType.MOBILE),)


def test_vcard_with_one_number_under_two_types_has_one_phone() -> None:
    """Two TEL lines of one number (home, then cell) are one mobile phone."""
    text = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ann Lee\r\nN:Lee;Ann;;;\r\n"
        f"TEL;TYPE=HOME:{SAME}\r\nTEL;TYPE=CELL:+44 7700 900321\r\nEND:VCARD\r\n"
    )
    reading = parse_vcards(text.encode(), file="a.vcf")
    # The digits differ (+44 against 0): they compare as written, like OneRoster's.
    assert len(reading.entries[0].data.phones) == 2
    again = text.replace("+44 7700 900321", SAME)
    reading = parse_vcards(again.encode(), file="a.vcf")
    assert reading.entries[0].data.phones == (Phone(SAME, PhoneType.MOBILE),)


numbers = st.sampled_from(["07700 900001", "07700900001", "01632 960002", "", " ", "n/a"])


@given(st.lists(st.builds(Phone, numbers, st.sampled_from(PhoneType)), max_size=6))
def test_each_number_once_and_a_mobile_stays_a_mobile(phones: list[Phone]) -> None:
    """Property: no two kept phones share digits; every number given is kept; a number given
    as mobile anywhere is kept as a mobile, in the place of its first appearance."""
    kept = one_phone_per_number(phones)

    def key(p: Phone) -> str:
        return "".join(c for c in p.number if c.isdigit()) or p.number.strip()

    assert len({key(p) for p in kept}) == len(kept)
    assert {key(p) for p in kept} == {key(p) for p in phones}
    firsts = list(dict.fromkeys(key(p) for p in phones))
    assert [key(p) for p in kept] == firsts
    for phone in kept:
        same = [p for p in phones if key(p) == key(phone)]
        assert phone.number == same[0].number
        mobile = any(p.type is PhoneType.MOBILE for p in same)
        assert phone.type is (PhoneType.MOBILE if mobile else same[0].type)
