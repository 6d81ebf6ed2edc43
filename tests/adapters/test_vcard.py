"""The vCard address book: reading real client exports, round trips, errors and the adapter."""

from __future__ import annotations

import codecs
import json
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budget
from school import CORPUS
from sourcetruth.adapters._util import one_phone_per_number
from sourcetruth.adapters.sources.base import AddressBookAdapter, AddressBookReading
from sourcetruth.adapters.sources.vcard import VCardAdapter, format_vcards, parse_vcards
from sourcetruth.exceptions import (
    AdapterError,
    EncodingError,
    RejectedFileError,
    SourceDataError,
    UsageError,
    format_errors,
)
from sourcetruth.model import (
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Snapshot,
)
from sourcetruth.testing import strategies as sts
from sourcetruth.testing.conformance import AddressBookAdapterContract

CORPUS_FOLDERS = ("ez-vcard", "vcard4android", "thunderbird-addressbook-tests")
CORPUS_FILES = sorted(
    path
    for folder in CORPUS_FOLDERS
    if (CORPUS / folder).is_dir()
    for path in (CORPUS / folder).rglob("*.vcf")
)
NOTICE_CODES = {
    "binary-value-skipped",
    "carriage-return",
    "derived-key",
    "empty-value",
    "foreign-related",
    "malformed-line",
    "name-from-fn",
    "no-cards",
    "no-version",
    "phone-skipped",
    "property-skipped",
    "quoted-printable",
    "repeated-property",
    "short-version",
    "unknown-role",
}
#: Notices about the file, not one card: they carry no key.
FILE_NOTICES = {"no-cards", "property-skipped", "malformed-line"}

SETTINGS = settings(
    max_examples=budget.examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def corpus_file(*parts: str) -> Path:
    """A corpus file, or a clean skip when the shared corpus is not checked out."""
    path = CORPUS.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"corpus file {'/'.join(parts)} is absent")
    return path


def read_corpus(*parts: str) -> AddressBookReading:
    path = corpus_file(*parts)
    return parse_vcards(path.read_bytes(), file=path.name)


def read_back(records: Sequence[Record]) -> tuple[Record, ...]:
    """What reading *records* written as vCards gives: by key, each number once."""
    return tuple(
        attrs.evolve(r, data=attrs.evolve(r.data, phones=one_phone_per_number(r.data.phones)))
        for r in sorted(records, key=lambda r: r.key)
    )


def card(version: str, *lines: str) -> str:
    """One card of *version* holding *lines*, with CRLF line ends."""
    return "".join(
        f"{line}\r\n" for line in ("BEGIN:VCARD", f"VERSION:{version}", *lines, "END:VCARD")
    )


def only(reading: AddressBookReading) -> Record:
    assert len(reading.entries) == 1
    return reading.entries[0]


def codes(reading: AddressBookReading) -> list[str]:
    return [notice.code for notice in reading.notices]


def problems_of(error: RejectedFileError) -> list[SourceDataError]:
    """The problems of a rejected file, each checked to be a plain SourceDataError (no nesting)."""
    problems = [p for p in error.exceptions if isinstance(p, SourceDataError)]
    assert len(problems) == len(error.exceptions)
    return problems


def rejected(text: str | bytes, **kwargs: bool) -> list[SourceDataError]:
    """The problems of a file that must be rejected, after checking they name file and line."""
    with pytest.raises(RejectedFileError) as caught:
        parse_vcards(text, file="book.vcf", **kwargs)
    problems = problems_of(caught.value)
    assert problems
    assert all(p.file == "book.vcf" and p.line is not None for p in problems)
    return problems


def assert_not_shown(text: str | bytes, secret: str, **kwargs: bool) -> None:
    """Neither the error, its problems, nor its notes repeat *secret*."""
    with pytest.raises(RejectedFileError) as caught:
        parse_vcards(text, file="book.vcf", **kwargs)
    shown = [format_errors(caught.value), str(caught.value), *caught.value.__notes__]
    shown += [str(p) for p in caught.value.exceptions]
    assert all(secret not in s for s in shown), shown


# -- real client exports -----------------------------------------------------------------


class TestCorpus:
    @pytest.mark.parametrize(
        "path",
        [pytest.param(p, id=str(p.relative_to(CORPUS))) for p in CORPUS_FILES]
        or [pytest.param(None, marks=pytest.mark.skip(reason="the shared corpus is absent"))],
    )
    def test_every_corpus_file_parses_and_survives_a_rewrite(self, path: Path) -> None:
        """Every client export reads (none is rejected), and what was read writes and reads back.

        No corpus file is rejected: the likeliest candidates were checked by
        hand (Android's ORG whose quoted-printable bytes end in an invalid
        UTF-8 byte is not a property we read; Thunderbird's stray CR inside
        X-CUSTOM3 stays inside its value; iPhone's CR CR LF is one line end).
        """
        reading = parse_vcards(path.read_bytes(), file=path.name)
        assert reading.entries
        assert all(record.key for record in reading.entries)
        assert {n.code for n in reading.notices} <= NOTICE_CODES
        assert all(n.file == path.name and n.line for n in reading.notices)
        assert all(bool(n.key) != (n.code in FILE_NOTICES) for n in reading.notices)
        for version in ("3.0", "4.0"):
            again = parse_vcards(format_vcards(reading.entries, version=version), file="again")
            assert again.entries == tuple(sorted(reading.entries, key=lambda r: r.key))

    def test_outlook_2003_three_numbers_and_a_skipped_fax(self) -> None:
        """Outlook 2003's TEL;WORK;VOICE, HOME;VOICE and CELL;VOICE map; its WORK;FAX is skipped."""
        reading = read_corpus("ez-vcard", "io", "text", "outlook-2003.vcf")
        data = only(reading).data
        assert (data.given_name, data.family_name) == ("John", "Doe")
        assert data.phones == (
            Phone("BusinessPhone", PhoneType.WORK),
            Phone("HomePhone", PhoneType.HOME),
            Phone("MobilePhone", PhoneType.MOBILE),
        )
        assert data.emails == (Email("jdoe@hotmail.com", EmailType.OTHER),)
        skipped = [n for n in reading.notices if n.code == "phone-skipped"]
        assert [(n.line, n.field) for n in skipped] == [(13, "TEL")]

    def test_ms_outlook_two_voice_numbers(self) -> None:
        """The MS Outlook export has two TELs (work and home voice) and a PREF;INTERNET email."""
        data = only(read_corpus("ez-vcard", "io", "text", "John_Doe_MS_OUTLOOK.vcf")).data
        assert data.phones == (
            Phone("(905) 555-1234", PhoneType.WORK),
            Phone("(905) 666-1234", PhoneType.HOME),
        )
        assert data.emails == (Email("john.doe@ibm.cm", EmailType.OTHER),)
        assert (data.given_name, data.family_name) == ("John", "Doe")

    def test_outlook_2007_cell_and_fax(self) -> None:
        """Outlook 2007: three voice numbers, the fax skipped, X-MS-TEL ignored."""
        reading = read_corpus("ez-vcard", "io", "text", "outlook-2007.vcf")
        data = only(reading).data
        assert data.phones == (
            Phone("(111) 555-1111", PhoneType.WORK),
            Phone("(111) 555-2222", PhoneType.HOME),
            Phone("(111) 555-4444", PhoneType.MOBILE),
        )
        assert (data.given_name, data.family_name) == ("Michael", "Angstadt")
        assert codes(reading).count("phone-skipped") == 1

    def test_android_quoted_printable_across_soft_line_breaks(self) -> None:
        """Android 2.1's UTF-8 quoted-printable names and email decode over '=' line ends."""
        reading = read_corpus("ez-vcard", "io", "text", "John_Doe_ANDROID.vcf")
        assert len(reading.entries) == 6
        fourth, fifth = reading.entries[3].data, reading.entries[4].data
        assert fourth.family_name == " ".join("Ñ" * 11)
        assert fourth.given_name == ""
        assert fourth.phones == (
            Phone("123456", PhoneType.MOBILE),
            Phone("234567", PhoneType.HOME),
            Phone("3456789", PhoneType.MOBILE),
            Phone("45678901", PhoneType.HOME),
        )
        assert (fifth.family_name, fifth.given_name) == ("Ñ Ñ ", "Ñ Ñ Ñ ")
        assert fifth.emails == (
            Email("bob@company.com", EmailType.WORK),
            Email("Ñ" * 14, EmailType.OTHER),
        )
        # One number under CELL and WORK is one phone, a mobile (one number, one phone).
        assert fifth.phones == (Phone("123456", PhoneType.MOBILE),)
        assert codes(reading).count("derived-key") == 6

    def test_evolution_folded_lines_are_joined(self) -> None:
        """Evolution folds TEL and EMAIL values mid-number; unfolding joins them."""
        record = only(read_corpus("ez-vcard", "io", "text", "John_Doe_EVOLUTION.vcf"))
        assert record.key == "477343c8e6bf375a9bac1f96a5000837"
        assert record.data.phones == (
            Phone("905-666-1234", PhoneType.MOBILE),
            Phone("905-555-1234", PhoneType.WORK),
        )
        assert record.data.emails == (Email("john.doe@ibm.com", EmailType.WORK),)

    def test_iphone_cr_cr_lf_lines_and_typed_numbers(self) -> None:
        """The iPhone export (CR CR LF line ends, repeated type=): four numbers, three skipped."""
        reading = read_corpus("ez-vcard", "io", "text", "John_Doe_IPHONE.vcf")
        data = only(reading).data
        assert data.phones == (
            Phone("905-555-1234", PhoneType.MOBILE),
            Phone("905-666-1234", PhoneType.HOME),
            Phone("905-777-1234", PhoneType.WORK),
            Phone("905-222-1234", PhoneType.OTHER),
        )
        assert data.emails == (Email("john.doe@ibm.com", EmailType.OTHER),)
        assert codes(reading).count("phone-skipped") == 3

    def test_rfc6350_tel_uris(self) -> None:
        """RFC 6350's example: tel: URIs lose only the scheme; work,cell is a mobile."""
        data = only(read_corpus("ez-vcard", "io", "text", "rfc6350-example.vcf")).data
        assert data.phones == (
            Phone("+1-418-656-9254;ext=102", PhoneType.WORK),
            Phone("+1-418-262-6501", PhoneType.MOBILE),
        )
        assert data.emails == (Email("simon.perreault@viagenie.ca", EmailType.WORK),)
        assert (data.given_name, data.family_name) == ("Simon", "Perreault")

    def test_rfc2426_cards_without_n_use_fn_whole(self) -> None:
        """RFC 2426's example has no N: FN becomes the given name, with a notice per card."""
        reading = read_corpus("ez-vcard", "io", "text", "rfc2426-example.vcf")
        first, second = (r.data for r in reading.entries)
        assert (first.given_name, first.family_name) == ("Frank Dawson", "")
        assert (second.given_name, second.family_name) == ("Tim Howes", "")
        assert first.phones == (Phone("+1-919-676-9515", PhoneType.WORK),)
        assert [e.address for e in first.emails] == [
            "Frank_Dawson@Lotus.com",
            "fdawson@earthlink.net",
        ]
        fn = [(n.line, n.field) for n in reading.notices if n.code == "name-from-fn"]
        assert fn == [(3, "FN"), (15, "FN")]

    def test_vcard4android_all_fields(self) -> None:
        """DAVx5's card: grouped TEL and EMAIL, a fax vanity number skipped, RELATED ignored."""
        reading = read_corpus("vcard4android", "allfields-vcard3.vcf")
        record = only(reading)
        assert record.key == "mostfields1@at.bitfire.vcard4android"
        assert (record.data.given_name, record.data.family_name) == ("Firstname", "Lastname")
        assert record.data.phones == (Phone("+49 1234 56788", PhoneType.HOME),)
        assert record.data.emails == (
            Email("private@example.com", EmailType.HOME),
            Email("work@example.com", EmailType.WORK),
        )
        assert record.data.relationships == ()
        found = [(n.code, n.line) for n in reading.notices]
        assert found == [
            ("phone-skipped", 11),
            ("foreign-related", 37),
            ("foreign-related", 38),
            ("property-skipped", 6),  # the file's X- properties, after the cards' notices
        ]

    def test_thunderbird_export_keeps_a_stray_cr_inside_a_value(self) -> None:
        """Thunderbird's export has a bare CR inside X-CUSTOM3: it is not a line end."""
        reading = read_corpus(
            "thunderbird-addressbook-tests", "addrbook", "test", "unit", "data", "export.vcf"
        )
        assert [r.key for r in reading.entries] == [
            "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        ]
        assert [(r.data.given_name, r.data.family_name) for r in reading.entries] == [
            ("contact", "one"),
            ("contact", "two"),
        ]
        assert reading.entries[1].data.emails == (Email("contact2@invalid", EmailType.OTHER),)
        assert [(n.code, n.line) for n in reading.notices] == [("property-skipped", 15)]

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("basic_vcard_addressbook.vcf", "vcard_import"),
            ("emptylines_vcard_addressbook.vcf", "vcard_import"),
            ("dos_vcard_addressbook.vcf", "dos_vcard_import"),
        ],
    )
    def test_thunderbird_import_matches_its_expected_result(self, name: str, expected: str) -> None:
        """Names and primary email agree with Thunderbird's expected parse (addressbook.json)."""
        resources = ("thunderbird-addressbook-tests", "import", "test", "unit", "resources")
        reading = read_corpus(*resources, name)
        wanted = json.loads(corpus_file(*resources, "addressbook.json").read_text("utf-8"))[
            expected
        ]
        got = [
            {
                "FirstName": r.data.given_name,
                "LastName": r.data.family_name,
                "PrimaryEmail": r.data.emails[0].address,
            }
            for r in reading.entries
        ]
        assert got == [{k: c[k] for k in ("FirstName", "LastName", "PrimaryEmail")} for c in wanted]

    def test_thunderbird_expected_vcard_lines(self) -> None:
        """The vCard lines Thunderbird expects for its basic address book read as it says."""
        resources = ("thunderbird-addressbook-tests", "import", "test", "unit", "resources")
        contact = json.loads(corpus_file(*resources, "addressbook.json").read_text("utf-8"))[
            "basic_addressbook"
        ][0]
        text = "\r\n".join(["BEGIN:VCARD", *contact["_vCard"], "END:VCARD", ""])
        reading = parse_vcards(text, file="addressbook.json")
        record = only(reading)
        assert record.key == "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
        assert (record.data.given_name, record.data.family_name) == (
            contact["FirstName"],
            contact["LastName"],
        )
        assert [e.address for e in record.data.emails] == [
            contact["PrimaryEmail"],
            contact["SecondEmail"],
        ]
        assert record.data.phones == (
            Phone("234-567-8901", PhoneType.HOME),
            Phone("123-456-7890", PhoneType.WORK),
            Phone("567-890-1234", PhoneType.MOBILE),
        )
        assert codes(reading) == ["phone-skipped", "phone-skipped", "property-skipped"]

    def test_derived_keys_are_stable_and_ignore_blank_lines(self) -> None:
        """Cards without UID get the same keys on every read; blank lines do not count."""
        resources = ("thunderbird-addressbook-tests", "import", "test", "unit", "resources")
        basic = read_corpus(*resources, "basic_vcard_addressbook.vcf")
        spaced = read_corpus(*resources, "emptylines_vcard_addressbook.vcf")
        assert [r.key for r in basic.entries] == [
            r.key for r in read_corpus(*resources, "basic_vcard_addressbook.vcf").entries
        ]
        assert [r.key for r in basic.entries] == [r.key for r in spaced.entries]
        assert all(r.key.startswith("derived-") for r in basic.entries)
        assert len({r.key for r in basic.entries}) == 2
        assert codes(basic) == ["derived-key", "derived-key"]


# -- reading our own fixtures ------------------------------------------------------------


class TestUnfolding:
    @pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
    def test_folded_lines_join_whatever_the_line_end(self, newline: str) -> None:
        """A line starting with a space or a tab continues the one before, less that character."""
        text = newline.join(
            [
                "BEGIN:VCARD",
                "VERSION:3.0",
                "N:Oka",
                " for;Ni",
                "\tna;;;",
                "TEL;TYPE=cell:07700 90",
                " 0123",
                "END:VCARD",
                "",
            ]
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert (data.family_name, data.given_name) == ("Okafor", "Nina")
        assert data.phones == (Phone("07700 900123", PhoneType.MOBILE),)

    @pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"])
    @pytest.mark.parametrize("indent", [b" ", b"\t"])
    def test_a_fold_may_split_a_utf8_sequence(self, newline: bytes, indent: bytes) -> None:
        """RFC 6350 3.2 folds at octets: the halves of a character are joined before decoding."""
        lines = [
            b"BEGIN:VCARD",
            b"VERSION:3.0",
            b"UID:a",
            indent + b"1",
            b"N:Mor\xc3",  # the two bytes of \xe9 on two lines
            indent + b"\xa9au;Zo\xc3",
            indent + b"\xab;;;",
            b"END:VCARD",
            b"",
        ]
        data = newline.join(lines)
        reading = parse_vcards(data, file="f.vcf")
        record = only(reading)
        assert record.key == "a1"
        assert (record.data.family_name, record.data.given_name) == ("Moréau", "Zoë")
        assert reading.notices == ()

    def test_a_split_sequence_after_a_utf8_bom(self) -> None:
        """A UTF-8 byte-order mark is dropped and the rest is unfolded as bytes too."""
        data = codecs.BOM_UTF8 + card("3.0", "UID:a1", "N:Moreau;Zo\xc3\r\n \xab").encode("latin-1")
        assert only(parse_vcards(data, file="f.vcf")).data.given_name == "Zoë"

    def test_quoted_printable_soft_break_inside_a_character(self) -> None:
        """A soft line break between the two escaped bytes of one character still joins them."""
        data = card(
            "2.1", "UID:a1", "N;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Moreau;Zo=C3=", "=AB;;"
        ).encode("ascii")
        assert only(parse_vcards(data, file="f.vcf")).data.given_name == "Zoë"

    def test_lines_after_a_fold_keep_their_physical_numbers(self) -> None:
        """Errors after folded lines name the physical line their property starts on."""
        data = (
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a1\r\n"
            b"N:Mor\xc3\r\n \xa9au;\r\n Zofia;;;\r\n"  # lines 4 to 6
            b"TEL;TYPE=cell:07700\r\n 900123\r\n"  # lines 7 and 8
            b"EMAIL:zofia.mor\xe9au@parent.test\r\n"  # line 9: not UTF-8
            b"END:VCARD\r\n"
        )
        problems = rejected(data)
        assert [(type(p), p.line, p.field) for p in problems] == [(EncodingError, 9, "EMAIL")]
        assert isinstance(problems[0], EncodingError)
        assert problems[0].offset == data.index(b"\xe9")
        assert_not_shown(data, "zofia")
        structural = data.replace(b"\xe9", b"e").replace(b"END:VCARD\r\n", b"")
        assert [(p.line, p.field) for p in rejected(structural)] == [(1, "BEGIN")]
        outside = data.replace(b"\xe9", b"e") + b"TEL:07700\r\n 900124\r\n"
        assert [(p.line, p.field) for p in rejected(outside)] == [(11, "TEL")]

    def test_bad_bytes_in_a_continuation_name_the_property_and_the_byte(self) -> None:
        """Undecodable bytes on a folded line: the property's first line, and the exact offset."""
        data = card("3.0", "UID:a1", "N:Okafor;Nina;;;", "EMAIL:nina.okafor\r\n @par\xe9nt.test")
        raw = data.encode("latin-1")
        problems = rejected(raw)
        assert [(p.line, p.field) for p in problems] == [(5, "EMAIL")]
        assert isinstance(problems[0], EncodingError)
        assert problems[0].offset == raw.index(b"\xe9")
        assert_not_shown(raw, "okafor")

    def test_a_bad_half_sequence_is_still_rejected(self) -> None:
        """Unfolding does not weaken decoding: a lead byte whose fold goes on with ASCII fails."""
        data = card("3.0", "UID:a1", "N:Mor\xc3\r\n eau;Zofia;;;").encode("latin-1")
        problems = rejected(data)
        assert [(type(p), p.line, p.field) for p in problems] == [(EncodingError, 4, "N")]

    def test_cp1252_fallback_still_applies_to_the_whole_file(self) -> None:
        """When allowed, a file that is not UTF-8 is read as cp1252, folds joined first."""
        data = card("3.0", "UID:a1", "N:Mor\xe9\r\n au;Zofia;;;", "NOTE:\x93quoted\x94").encode(
            "latin-1"
        )
        assert rejected(data)
        reading = parse_vcards(data, file="f.vcf", allow_cp1252=True)
        assert only(reading).data.family_name == "Moréau"
        undefined = data.replace(b"\x93", b"\x81")  # 0x81 is not in cp1252 either
        problems = rejected(undefined, allow_cp1252=True)
        assert [(p.line, p.field) for p in problems] == [(6, "NOTE")]
        assert "neither UTF-8 nor cp1252" in str(problems[0])

    def test_a_utf8_card_and_a_cp1252_card_are_refused_with_cp1252_allowed(self) -> None:
        """Two exports joined: reading both as cp1252 would give 'ZoÃ«', so neither is read."""
        utf8 = card("3.0", "UID:a1", "N:Müller;Zoë;;;").encode("utf-8")  # lines 1 to 5
        cp1252 = card("3.0", "UID:a2", "N:Sørensen;Åsa;;;").encode("cp1252")  # N on line 9
        data = utf8 + cp1252
        problems = rejected(data, allow_cp1252=True)
        assert [(type(p), p.line, p.field) for p in problems] == [(EncodingError, 9, "N")]
        assert isinstance(problems[0], EncodingError)
        assert problems[0].offset == data.index(b"\xf8")
        assert "mixes UTF-8 with another encoding" in str(problems[0])
        assert_not_shown(data, "rensen", allow_cp1252=True)
        # The other order names the first byte that is not UTF-8, in the first card.
        swapped = cp1252 + utf8
        problems = rejected(swapped, allow_cp1252=True)
        assert [(p.line, p.field) for p in problems] == [(4, "N")]
        assert isinstance(problems[0], EncodingError)
        assert problems[0].offset == swapped.index(b"\xf8")
        # A UTF-8 sequence split by a fold is UTF-8 all the same.
        folded = data.replace(b"M\xc3\xbcller", b"M\xc3\r\n \xbcller")
        assert [(p.line, p.field) for p in rejected(folded, allow_cp1252=True)] == [(10, "N")]

    def test_a_cp1252_file_with_accents_and_punctuation_is_read_when_allowed(self) -> None:
        """Genuine cp1252 letters and punctuation are not mistaken for UTF-8."""
        data = (
            card(
                "3.0",
                "UID:a1",
                "N:O\u2019Neill\u2013Müller;Zoë;;;",
                "EMAIL;TYPE=home:zoe.oneill@parent.test",
                "X-SOURCETRUTH-REGISTRATION-GROUP:7S \u2013 £2 fund",
            )
            + card("3.0", "UID:a2", "N:Sørensen;Åsa;;;", "TEL;TYPE=cell:07700 900456")
        ).encode("cp1252")
        assert rejected(data)
        reading = parse_vcards(data, file="f.vcf", allow_cp1252=True)
        first, second = reading.entries
        assert (first.data.family_name, first.data.given_name) == (
            "O\u2019Neill\u2013Müller",
            "Zoë",
        )
        assert first.data.registration_group == "7S \u2013 £2 fund"
        assert (second.data.family_name, second.data.given_name) == ("Sørensen", "Åsa")
        assert reading.notices == ()

    def test_a_value_in_its_own_charset_does_not_make_a_cp1252_file_mixed(self) -> None:
        """UTF-8 bytes under CHARSET=UTF-8 are read in it; the rest of the file is cp1252."""
        data = card("2.1", "UID:a1", "N;CHARSET=UTF-8:Müller;Zoë", "TEL;CELL:07700 900457").encode(
            "utf-8"
        ) + card("2.1", "UID:a2", "N:Sørensen;Åsa").encode("cp1252")
        reading = parse_vcards(data, file="f.vcf", allow_cp1252=True)
        assert [(r.data.family_name, r.data.given_name) for r in reading.entries] == [
            ("Müller", "Zoë"),
            ("Sørensen", "Åsa"),
        ]

    def test_quoted_printable_soft_line_break(self) -> None:
        """A 2.1 quoted-printable value ending in '=' continues on the next, unindented, line."""
        text = card(
            "2.1",
            "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Mor=C3=A9au;Zo=",
            "fia;;;",
            "EMAIL;INTERNET;QUOTED-PRINTABLE:zofia=40parent.test",
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert (data.family_name, data.given_name) == ("Moréau", "Zofia")
        assert data.emails == (Email("zofia@parent.test", EmailType.OTHER),)

    def test_quoted_printable_line_breaks_and_stray_carriage_returns(self) -> None:
        """QP's =0D=0A is a newline; a bare CR before a property ends the line, and one
        before other text in a value we read is kept and reported."""
        text = card(
            "2.1",
            "UID:a1",
            "N;ENCODING=QUOTED-PRINTABLE:Okafor;Nina=0D=0AAda",
            "X-SOURCETRUTH-YEAR-GROUP:9\rTEL:07700 900123",
            "X-SOURCETRUTH-REGISTRATION-GROUP:9\r9B",
        ).replace("\r\n", "\n")
        reading = parse_vcards(text, file="f.vcf")
        data = only(reading).data
        assert data.given_name == "Nina\nAda"
        assert data.year_group == "9"
        assert data.phones == (Phone("07700 900123", PhoneType.OTHER),)
        assert data.registration_group == "9\r9B"
        assert [(n.code, n.line, n.field) for n in reading.notices] == [
            ("carriage-return", 7, "X-SOURCETRUTH-REGISTRATION-GROUP")
        ]

    def test_malformed_quoted_printable_is_kept_with_a_notice(self) -> None:
        """An '=' that is not followed by two hex digits is kept as written, and said."""
        text = card(
            "2.1",
            "UID:a1",
            "N;ENCODING=QUOTED-PRINTABLE:Okafor=ZZ;Nina",
            "EMAIL;ENCODING=QUOTED-PRINTABLE:nina=40parent.test",
            "NOTE;ENCODING=QUOTED-PRINTABLE:=Z",
        )
        reading = parse_vcards(text, file="f.vcf")
        data = only(reading).data
        assert (data.family_name, data.given_name) == ("Okafor=ZZ", "Nina")
        assert data.emails == (Email("nina@parent.test", EmailType.OTHER),)
        assert [(n.code, n.file, n.line, n.field) for n in reading.notices] == [
            ("quoted-printable", "f.vcf", 4, "N")
        ]
        assert "Okafor" not in str(reading.notices[0])

    def test_quoted_printable_in_a_named_charset(self) -> None:
        """CHARSET=ISO-8859-1 quoted-printable bytes decode in that charset, not as UTF-8."""
        text = card("2.1", "N;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:Mor=E9au;Zofia")
        assert only(parse_vcards(text, file="f.vcf")).data.family_name == "Moréau"

    def test_empty_lines_between_cards_and_lowercase_names(self) -> None:
        """Blank lines between cards are skipped; property names and BEGIN values are case-blind."""
        text = (
            "\r\n\r\nbegin:vcard\r\nversion:3.0\r\nn:Okafor;Nina;;;\r\nemail;type=home:nina@parent.test\r\n"
            "end:vcard\r\n\r\n\r\n" + card("3.0", "N:Nowak;Omar;;;") + "\r\n"
        )
        reading = parse_vcards(text, file="f.vcf")
        assert [r.data.given_name for r in reading.entries] == ["Nina", "Omar"]
        assert reading.entries[0].data.emails == (Email("nina@parent.test", EmailType.HOME),)

    def test_escapes_in_structured_and_plain_values(self) -> None:
        """Escaped commas, semicolons, backslashes and newlines are read as those characters."""
        text = card(
            "3.0",
            r"N:Okafor\; Byrne;Nina\, Jr\\x\nSecond;;;",
            r"X-SOURCETRUTH-YEAR-GROUP:Year 9\, upper",
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert data.family_name == "Okafor; Byrne"
        assert data.given_name == "Nina, Jr\\x\nSecond"
        assert data.year_group == "Year 9, upper"

    def test_unescaped_commas_separate_values_in_a_name_part(self) -> None:
        """In 3.0 an unescaped comma in N separates values, which are joined by a space."""
        data = only(parse_vcards(card("3.0", "N:Okafor;Nina,Ada;;;"), file="f.vcf")).data
        assert data.given_name == "Nina Ada"

    def test_vcard_21_keeps_other_backslashes(self) -> None:
        """vCard 2.1 escapes only ';' (and in practice ',' and '\\'): '\\n' stays as written."""
        data = only(parse_vcards(card("2.1", r"N:Oka\;for;Nina\n;;;"), file="f.vcf")).data
        assert (data.family_name, data.given_name) == ("Oka;for", "Nina\\n")

    def test_base64_photo_is_not_read_and_does_not_break_the_card(self) -> None:
        """A folded base64 PHOTO, and a 2.1 one ending in a blank line, leave the data alone."""
        text = card(
            "2.1",
            "N:Okafor;Nina;;;",
            "PHOTO;ENCODING=BASE64;TYPE=JPEG:/9j/4AAQSkZJRgABAQ",
            " AAAQABAAD/2wBDAAIBAQEBAQIBAQE",
            "CAgICAgQDAgICAgUEBAMEBgUGBgYF==",
            "",
            "TEL;CELL:07700 900123",
        )
        reading = parse_vcards(text, file="f.vcf")
        assert only(reading).data.phones == (Phone("07700 900123", PhoneType.MOBILE),)
        assert codes(reading) == ["derived-key"]

    def test_base64_where_text_is_expected_is_skipped_with_a_notice(self) -> None:
        """An EMAIL sent as base64 is not decoded into the data; a notice says so."""
        text = card(
            "3.0", "UID:a1", "N:Okafor;Nina;;;", "EMAIL;ENCODING=b:bmluYUBwYXJlbnQudGVzdA=="
        )
        reading = parse_vcards(text, file="f.vcf")
        assert only(reading).data.emails == ()
        assert [(n.code, n.line, n.field) for n in reading.notices] == [
            ("binary-value-skipped", 5, "EMAIL")
        ]

    def test_agent_card_inside_a_21_card_is_skipped(self) -> None:
        """A 2.1 AGENT's embedded card is part of the AGENT property, not an entry of its own."""
        text = card(
            "2.1",
            "UID:a1",
            "N:Okafor;Nina",
            "AGENT:",
            "BEGIN:VCARD",
            "VERSION:2.1",
            "N:Nowak;Omar",
            "TEL:07700 900001",
            "END:VCARD",
            "TEL;CELL:07700 900002",
        )
        record = only(parse_vcards(text, file="f.vcf"))
        assert record.data.given_name == "Nina"
        assert record.data.phones == (Phone("07700 900002", PhoneType.MOBILE),)


class TestParameters:
    def test_parameter_styles(self) -> None:
        """Bare 2.1 types, comma lists, quoted lists, repeated TYPE and PREF all read alike."""
        text = card(
            "3.0",
            "UID:a1",
            "TEL;WORK;VOICE:01632 960001",
            "TEL;TYPE=home,pref:01632 960002",
            'TEL;TYPE="cell,voice":07700 900003',
            "TEL;type=WORK;type=CELL:07700 900004",
            "TEL;PREF=1:01632 960005",
            "item1.TEL;TYPE=x-custom:01632 960006",
            "item1.X-ABLabel:Grandparent",
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert data.phones == (
            Phone("01632 960001", PhoneType.WORK),
            Phone("01632 960002", PhoneType.HOME),
            Phone("07700 900003", PhoneType.MOBILE),
            Phone("07700 900004", PhoneType.MOBILE),
            Phone("01632 960005", PhoneType.OTHER),
            Phone("01632 960006", PhoneType.OTHER),
        )

    def test_tel_uri_in_4_0(self) -> None:
        """In 4.0 a tel: URI, with VALUE=uri or without VALUE, loses only its scheme."""
        text = card(
            "4.0",
            "UID:a1",
            'TEL;VALUE=uri;TYPE="home,voice":tel:+44-1632-960001',
            "TEL;TYPE=cell:tel:+447700900002",
            "TEL;VALUE=text;TYPE=work:tel:01632 960003",
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert data.phones == (
            Phone("+44-1632-960001", PhoneType.HOME),
            Phone("+447700900002", PhoneType.MOBILE),
            Phone("tel:01632 960003", PhoneType.WORK),
        )

    def test_values_are_kept_raw(self) -> None:
        """Numbers and addresses are not normalised here, and a vanity number stays text."""
        text = card(
            "3.0",
            "UID:a1",
            "TEL;TYPE=cell:  (07700) 900-123 ",
            "TEL;TYPE=voice:+44 7700 900-MYFAX",
            "EMAIL;TYPE=work:Nina.Okafor@SCHOOL.test ",
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert data.phones == (
            Phone("  (07700) 900-123 ", PhoneType.MOBILE),
            Phone("+44 7700 900-MYFAX", PhoneType.OTHER),
        )
        assert data.emails == (Email("Nina.Okafor@SCHOOL.test ", EmailType.WORK),)

    def test_fax_and_pager_only_numbers_are_skipped(self) -> None:
        """A TEL typed only fax or pager is skipped with a notice; fax,voice is kept."""
        text = card(
            "3.0",
            "UID:a1",
            "TEL;TYPE=fax:01632 960001",
            "TEL;TYPE=pager:07700 900002",
            "TEL;TYPE=work,fax:01632 960003",
            "TEL;TYPE=fax,voice:01632 960004",
        )
        reading = parse_vcards(text, file="f.vcf")
        assert only(reading).data.phones == (Phone("01632 960004", PhoneType.OTHER),)
        assert [(n.code, n.line, n.key) for n in reading.notices] == [
            ("phone-skipped", 4, "a1"),
            ("phone-skipped", 5, "a1"),
            ("phone-skipped", 6, "a1"),
        ]

    def test_email_types(self) -> None:
        """home, work and other map; internet and pref say nothing; untyped is other."""
        text = card(
            "3.0",
            "UID:a1",
            "EMAIL;TYPE=INTERNET;TYPE=HOME:nina@parent.test",
            "EMAIL;TYPE=work,pref:n.okafor@school.test",
            "EMAIL;TYPE=other:nina@example.org",
            "EMAIL;TYPE=internet,pref:okafor@example.org",
            "EMAIL:nina2@example.org",
        )
        data = only(parse_vcards(text, file="f.vcf")).data
        assert [e.type for e in data.emails] == [
            EmailType.HOME,
            EmailType.WORK,
            EmailType.OTHER,
            EmailType.OTHER,
            EmailType.OTHER,
        ]

    def test_unknown_and_x_properties_are_ignored(self) -> None:
        """ORG, NOTE, X-ABLabel, BDAY and an unknown property change no entry: the
        extension and the unknown property are one notice each."""
        plain = card("3.0", "UID:a1", "N:Okafor;Nina;;;")
        noisy = card(
            "3.0",
            "UID:a1",
            "ORG:Example School;Office",
            "N:Okafor;Nina;;;",
            "NOTE:Prefers email\\, not calls",
            "BDAY:2015-03-01",
            "item2.X-ABLabel:_$!<Other>!$_",
            "FUTURE-PROPERTY;NEW=1:anything at all",
        )
        read_noisy = parse_vcards(noisy, file="f.vcf")
        assert parse_vcards(plain, file="f.vcf").entries == read_noisy.entries
        assert [(n.code, n.line) for n in read_noisy.notices] == [
            ("property-skipped", 8),
            ("property-skipped", 9),
        ]


class TestMapping:
    def test_uid_is_the_key_without_urn_uuid(self) -> None:
        """A UID of urn:uuid:... gives the bare UUID as the key."""
        text = card("4.0", "UID:urn:uuid:0e7602cc-443e-4b82-b4b1-90f62f99a199", "FN:Nina Okafor")
        assert only(parse_vcards(text, file="f.vcf")).key == "0e7602cc-443e-4b82-b4b1-90f62f99a199"

    def test_card_without_uid_gets_a_derived_key_and_a_notice(self) -> None:
        """The key comes from the content; identical cards get -2; each is reported."""
        one = card("3.0", "N:Okafor;Nina;;;")
        reading = parse_vcards(one + one + card("3.0", "N:Nowak;Omar;;;"), file="f.vcf")
        keys = [r.key for r in reading.entries]
        assert keys[1] == keys[0] + "-2"
        assert keys[0] != keys[2]
        assert [(n.code, n.line, n.key) for n in reading.notices] == [
            ("derived-key", 1, keys[0]),
            ("derived-key", 5, keys[1]),
            ("derived-key", 9, keys[2]),
        ]
        again = parse_vcards(one.replace("\r\n", "\n"), file="other.vcf")
        assert only(again).key == keys[0]

    def test_fn_fills_a_missing_name_whole(self) -> None:
        """Without N the whole FN is the given name; with N, FN is not used."""
        reading = parse_vcards(card("4.0", "UID:a1", "FN:Nina van der Okafor"), file="f.vcf")
        data = only(reading).data
        assert (data.given_name, data.family_name) == ("Nina van der Okafor", "")
        assert [(n.code, n.line, n.field) for n in reading.notices] == [("name-from-fn", 4, "FN")]
        with_n = parse_vcards(
            card("4.0", "UID:a1", "FN:Dr Nina Okafor", "N:Okafor;Nina;;Dr;"), file="f.vcf"
        )
        assert (only(with_n).data.given_name, only(with_n).data.family_name) == ("Nina", "Okafor")
        assert with_n.notices == ()

    def test_role_and_groups(self) -> None:
        """X-SOURCETRUTH-ROLE and the group properties are read; no role means other."""
        text = card(
            "3.0",
            "UID:p1",
            "X-SOURCETRUTH-ROLE:pupil",
            "X-SOURCETRUTH-YEAR-GROUP:9",
            "X-SOURCETRUTH-REGISTRATION-GROUP:9B",
        ) + card("3.0", "UID:p2")
        first, second = parse_vcards(text, file="f.vcf").entries
        assert (first.data.role, first.data.year_group, first.data.registration_group) == (
            Role.PUPIL,
            "9",
            "9B",
        )
        assert second.data.role is Role.OTHER

    def test_unknown_role_is_other_with_a_notice(self) -> None:
        """A role value sourcetruth does not know reads as other and is reported."""
        reading = parse_vcards(
            card("3.0", "UID:a1", "X-SOURCETRUTH-ROLE:headteacher"), file="f.vcf"
        )
        assert only(reading).data.role is Role.OTHER
        assert [(n.code, n.line) for n in reading.notices] == [("unknown-role", 4)]

    def test_our_relationships_in_both_spellings(self) -> None:
        """RELATED;TYPE=child (4.0) and X-SOURCETRUTH-CHILD (3.0) carry every attribute."""
        params = (
            "X-SOURCETRUTH-PRIORITY=2;X-SOURCETRUTH-PARENTAL-RESPONSIBILITY=false;"
            "X-SOURCETRUTH-RECEIVES-MESSAGES=true"
        )
        four = card("4.0", "UID:g1", f"RELATED;TYPE=child;VALUE=text;{params}:P01")
        three = card("3.0", "UID:g1", f"X-SOURCETRUTH-CHILD;{params}:P01")
        expected = (
            Relationship("P01", priority=2, parental_responsibility=False, receives_messages=True),
        )
        assert only(parse_vcards(four, file="f.vcf")).data.relationships == expected
        assert only(parse_vcards(three, file="f.vcf")).data.relationships == expected

    def test_foreign_related_is_ignored_with_a_notice(self) -> None:
        """A client's RELATED;TYPE=parent (or a child that is not ours) is not a relationship."""
        text = card(
            "4.0",
            "UID:g1",
            "RELATED;TYPE=parent;VALUE=uri:mailto:nina@parent.test",
            "RELATED;TYPE=child;VALUE=text:Omar",
        )
        reading = parse_vcards(text, file="f.vcf")
        assert only(reading).data.relationships == ()
        assert [(n.code, n.line, n.field) for n in reading.notices] == [
            ("foreign-related", 4, "RELATED"),
            ("foreign-related", 5, "RELATED"),
        ]

    def test_repeated_single_property_keeps_the_first(self) -> None:
        """A second N is reported and ignored."""
        reading = parse_vcards(
            card("3.0", "UID:a1", "N:Okafor;Nina;;;", "N:Nowak;Omar;;;"), file="f.vcf"
        )
        assert only(reading).data.given_name == "Nina"
        assert [(n.code, n.line) for n in reading.notices] == [("repeated-property", 5)]

    def test_cp1252_only_when_allowed(self) -> None:
        """Windows-1252 bytes are rejected by default and read when the caller allows them."""
        data = card("3.0", "UID:a1", "N:Moréau;Zofia;;;").encode("cp1252")
        problems = rejected(data)
        assert isinstance(problems[0], EncodingError)
        reading = parse_vcards(data, file="f.vcf", allow_cp1252=True)
        assert only(reading).data.family_name == "Moréau"

    def test_utf16_with_bom(self) -> None:
        """A UTF-16 file with a byte-order mark is read by its mark."""
        data = "\ufeff".encode("utf-16-le") + card("3.0", "UID:a1", "N:Okafor;Nina;;;").encode(
            "utf-16-le"
        )
        assert only(parse_vcards(data, file="f.vcf")).data.given_name == "Nina"


class TestCharset:
    """vCard 2.1's CHARSET on a raw (not quoted-printable) 8-bit value: that value's bytes
    are read in the charset it names, the rest of the file stays strict UTF-8."""

    def test_a_latin1_value_in_a_utf8_file(self) -> None:
        """A 2.1 N with CHARSET=ISO-8859-1 reads as Latin-1 beside a UTF-8 FN, with no notice."""
        data = card(
            "2.1", "UID:a1", "N;CHARSET=ISO-8859-1:Mor\xe9au;Zofia", "FN:Zofia Mor\xc3\xa9au"
        ).encode("latin-1")
        reading = parse_vcards(data, file="f.vcf")
        record = only(reading)
        assert (record.data.family_name, record.data.given_name) == ("Moréau", "Zofia")
        assert reading.notices == ()

    @pytest.mark.parametrize("charset", ["windows-1252", '"iso-8859-15"', "cp1252,utf-8"])
    def test_charset_spellings(self, charset: str) -> None:
        """CHARSET may be an alias, in quotes, or a list whose first entry is used."""
        data = card("2.1", "UID:a1", f"N;CHARSET={charset};TYPE=x:Mor\xe9au;Zofia").encode(
            "latin-1"
        )
        assert only(parse_vcards(data, file="f.vcf")).data.family_name == "Moréau"

    def test_utf8_named_as_such_and_8bit_encoding(self) -> None:
        """CHARSET=UTF-8 (Android writes it in 3.0 too) and 2.1's bare 8BIT change nothing."""
        data = card("3.0", "UID:a1", "N;CHARSET=UTF-8;8BIT:Moréau;Zofia").encode("utf-8")
        assert only(parse_vcards(data, file="f.vcf")).data.family_name == "Moréau"

    def test_without_charset_the_bytes_must_still_be_utf8(self) -> None:
        """A value without CHARSET must be UTF-8: Latin-1 in FN is an EncodingError on its line."""
        data = card("2.1", "UID:a1", "N;CHARSET=ISO-8859-1:Mor\xe9au;Zofia", "FN:Zofia Mor\xe9au")
        problems = rejected(data.encode("latin-1"))
        assert [(type(p), p.line, p.field) for p in problems] == [(EncodingError, 5, "FN")]

    def test_a_folded_value_in_its_charset(self) -> None:
        """A folded value that names its CHARSET is unfolded, then read in that charset."""
        data = card("2.1", "UID:a1", "N;CHARSET=ISO-8859-1:Mor\r\n \xe9au;Zofia").encode("latin-1")
        assert only(parse_vcards(data, file="f.vcf")).data.family_name == "Moréau"

    @pytest.mark.parametrize(
        ("charset", "reason"),
        [
            ("X-NOT-A-CHARSET", "unknown charset"),
            ("base64", "no text charset"),
            ("UTF-16", "no text charset"),
            ("UTF-8", "not valid text in the charset"),
            ("ascii", "not valid text in the charset"),
        ],
    )
    def test_bytes_that_cannot_be_read_in_their_charset(self, charset: str, reason: str) -> None:
        """An error in the card, naming the line and property (never the charset), when the
        property is used."""
        data = card("2.1", "UID:a1", f"N;CHARSET={charset}:Mor\xe9au;Zofia").encode("latin-1")
        problems = rejected(data)
        assert [(type(p), p.line, p.field) for p in problems] == [(SourceDataError, 4, "N")]
        assert reason in str(problems[0])
        assert_not_shown(data, "Mor")
        assert_not_shown(data, charset)

    def test_an_unread_property_in_an_unknown_charset_is_ignored(self) -> None:
        """As with quoted-printable, only the properties we use are decoded."""
        data = card(
            "2.1", "UID:a1", "N:Okafor;Nina", "NOTE;CHARSET=X-NOT-A-CHARSET:caf\xe9"
        ).encode("latin-1")
        assert only(parse_vcards(data, file="f.vcf")).data.given_name == "Nina"

    def test_ascii_values_read_alike_in_any_charset(self) -> None:
        """An ASCII value reads as itself even when its CHARSET is one Python does not know."""
        data = card("2.1", "UID:a1", "N;CHARSET=X-NOT-A-CHARSET:Okafor;Nina").encode("ascii")
        assert only(parse_vcards(data, file="f.vcf")).data.family_name == "Okafor"

    def test_text_and_utf16_files_ignore_it(self) -> None:
        """Text given as str, or a UTF-16 file, is already decoded: CHARSET says nothing more."""
        text = card("2.1", "UID:a1", "N;CHARSET=ISO-8859-1:Moréau;Zofia")
        assert only(parse_vcards(text, file="f.vcf")).data.family_name == "Moréau"
        data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
        assert only(parse_vcards(data, file="f.vcf")).data.family_name == "Moréau"

    def test_quoted_printable_keeps_its_own_rules(self) -> None:
        """A quoted-printable value is decoded from its escapes, not from raw bytes."""
        data = card(
            "2.1", "UID:a1", "N;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:Mor=E9au;Zofia"
        ).encode("ascii")
        assert only(parse_vcards(data, file="f.vcf")).data.family_name == "Moréau"


class TestEmpty:
    @pytest.mark.parametrize("data", [b"", "", b"\r\n\r\n", b" \t\n", codecs.BOM_UTF8])
    def test_a_file_without_cards_says_so(self, data: bytes | str) -> None:
        """No cards is no entries, with a no-cards notice naming the file."""
        reading = parse_vcards(data, file="book.vcf")
        assert reading.entries == ()
        assert [(n.code, n.file) for n in reading.notices] == [("no-cards", "book.vcf")]

    def test_through_the_adapter(self, tmp_path: Path) -> None:
        """An empty file read through VCardAdapter gives a no-cards notice naming its path."""
        path = tmp_path / "book.vcf"
        path.write_bytes(b"")
        reading = VCardAdapter(path).read_entries()
        assert [(n.code, n.file) for n in reading.notices] == [("no-cards", str(path))]


# -- errors ------------------------------------------------------------------------------


class TestErrors:
    def test_card_without_end(self) -> None:
        """A card with no END names the line of its BEGIN; the next card is still checked."""
        text = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Okafor;Nina;;;\r\n" + card("3.0", "N:Nowak;Omar;;;")
        problems = rejected(text)
        assert [(p.line, p.field) for p in problems] == [(1, "BEGIN")]
        assert_not_shown(text, "Okafor")

    def test_card_cut_off_at_the_end_of_the_file(self) -> None:
        """A file that ends inside a card is rejected at that card's BEGIN line."""
        text = card("3.0", "UID:a1") + "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Okafor;Nina;;;\r\n"
        assert [(p.line, p.field) for p in rejected(text)] == [(5, "BEGIN")]

    def test_end_without_begin(self) -> None:
        """An END with no BEGIN before it names its own line."""
        text = card("3.0", "UID:a1") + "END:VCARD\r\n"
        assert [(p.line, p.field) for p in rejected(text)] == [(5, "END")]

    def test_property_outside_a_card(self) -> None:
        """A content line between cards is an error, not silently dropped."""
        text = card("3.0", "UID:a1") + "TEL:07700 900123\r\n"
        assert [(p.line, p.field) for p in rejected(text)] == [(5, "TEL")]
        assert_not_shown(text, "900123")

    @pytest.mark.parametrize(
        "line",
        ["Nina Okafor 07700 900123", "TEL CELL 07700 900123", " 07700 900123 continued"],
    )
    def test_line_that_is_not_a_content_line(self, line: str) -> None:
        """A line without name:value is an error on that line, and its text is not repeated."""
        text = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a1\r\n\r\n" + line + "\r\nEND:VCARD\r\n"
        problems = rejected(text)
        assert [(p.line, p.field) for p in problems] == [(5, None)]
        assert_not_shown(text, "900123")

    def test_bad_name_before_the_colon(self) -> None:
        """A 'name' with spaces before the colon is not a property."""
        text = card("3.0", "UID:a1", "Nina Okafor:07700 900123")
        assert [(p.line, p.field) for p in rejected(text)] == [(4, None)]
        assert_not_shown(text, "Okafor")

    @pytest.mark.parametrize("version", ["5.0", "1.0", "2", "3.1"])
    def test_unsupported_version(self, version: str) -> None:
        """VERSION other than 2.1, 3.0 and 4.0 rejects the card at the VERSION line."""
        text = (
            "BEGIN:VCARD\r\nUID:a1\r\nVERSION:" + version + "\r\nN:Okafor;Nina;;;\r\nEND:VCARD\r\n"
        )
        problems = rejected(text)
        assert [(p.line, p.field) for p in problems] == [(3, "VERSION")]
        assert "not supported" in str(problems[0])

    def test_missing_version(self) -> None:
        """A card without VERSION is read as 2.1 (as Android does), with a notice at its BEGIN."""
        text = "BEGIN:VCARD\r\nUID:a1\r\nN:Okafor\\;;Nina\\n;;;\r\nEND:VCARD\r\n"
        reading = parse_vcards(text, file="book.vcf")
        assert only(reading).data.family_name == "Okafor;"  # 2.1's escapes
        assert only(reading).data.given_name == "Nina\\n"
        assert [(n.code, n.line, n.field) for n in reading.notices] == [
            ("no-version", 1, "VERSION")
        ]

    def test_undecodable_bytes(self) -> None:
        """Bytes that are not UTF-8: an EncodingError with line, field and offset, not the value."""
        data = card(
            "3.0", "UID:a1", "N:Okafor;Nina;;;", "EMAIL:zofia.mor\xe9au@parent.test"
        ).encode("cp1252")
        problems = rejected(data)
        assert len(problems) == 1
        problem = problems[0]
        assert isinstance(problem, EncodingError)
        assert (problem.line, problem.field) == (5, "EMAIL")
        assert problem.offset == data.index(b"\xe9")
        assert "line 5" in str(problem)
        assert_not_shown(data, "zofia")

    def test_duplicate_uids(self) -> None:
        """A UID used twice in one file rejects the file at the second UID line."""
        text = card("3.0", "UID:g1", "N:Okafor;Nina;;;") + card("3.0", "N:Nowak;Omar;;;", "UID:g1")
        problems = rejected(text)
        assert [(p.line, p.field) for p in problems] == [(9, "UID")]
        assert "line 1" in str(problems[0])

    def test_unknown_charset(self) -> None:
        """A quoted-printable value in a charset Python does not know is an error in that card."""
        text = card(
            "2.1", "UID:a1", "N;CHARSET=X-NOT-A-CHARSET;ENCODING=QUOTED-PRINTABLE:Okafor=20;Nina"
        )
        problems = rejected(text)
        assert [(p.line, p.field) for p in problems] == [(4, "N")]
        assert "unknown charset" in str(problems[0])
        assert_not_shown(text, "Okafor")

    def test_quoted_printable_bytes_not_in_their_charset(self) -> None:
        """Quoted-printable bytes that are not valid UTF-8 are an error naming the property."""
        text = card("2.1", "UID:a1", "EMAIL;ENCODING=QUOTED-PRINTABLE:nina=E9@parent.test")
        assert [(p.line, p.field) for p in rejected(text)] == [(4, "EMAIL")]
        assert_not_shown(text, "nina")

    def test_broken_relationship_of_ours(self) -> None:
        """Our parameters with a bad or missing value, or not TYPE=child: errors, not guesses."""
        flags = "X-SOURCETRUTH-PARENTAL-RESPONSIBILITY=true;X-SOURCETRUTH-RECEIVES-MESSAGES=true"
        text = card(
            "4.0",
            "UID:g1",
            f"RELATED;TYPE=child;VALUE=text;X-SOURCETRUTH-PRIORITY=first;{flags}:P01",
            "X-SOURCETRUTH-CHILD:P02",
            f"RELATED;TYPE=parent;VALUE=text;X-SOURCETRUTH-PRIORITY=1;{flags}:P03",
            f"RELATED;TYPE=child;VALUE=uri;X-SOURCETRUTH-PRIORITY=1;{flags}:urn:uuid:P04",
        )
        problems = rejected(text)
        assert [(p.line, p.field) for p in problems] == [
            (4, "RELATED"),
            (5, "X-SOURCETRUTH-CHILD"),
            (5, "X-SOURCETRUTH-CHILD"),
            (5, "X-SOURCETRUTH-CHILD"),
            (6, "RELATED"),
            (7, "RELATED"),
        ]
        assert "TYPE=child" in str(problems[4])
        assert_not_shown(text, "P0")

    def test_every_problem_of_the_file_is_reported_together(self) -> None:
        """Problems in several cards come back in one RejectedFileError, in file order."""
        text = (
            card("3.0", "UID:a1", "N:Okafor;Nina;;;")
            + "END:VCARD\r\n"
            + card("9.9", "UID:a2")
            + card("3.0", "UID:a1")
        )
        with pytest.raises(RejectedFileError) as caught:
            parse_vcards(text, file="book.vcf")
        error = caught.value
        assert error.file == "book.vcf"
        assert [(p.line, p.field) for p in problems_of(error)] == [
            (6, "END"),
            (8, "VERSION"),
            (13, "UID"),
        ]
        assert len(error.__notes__) == 3


# -- writing -----------------------------------------------------------------------------


GUARDIAN = Record(
    "G01",
    ContactData(
        given_name="Nina",
        family_name="Okafor",
        role=Role.GUARDIAN,
        phones=(Phone("07700 900123", PhoneType.MOBILE), Phone("01632 960123", PhoneType.OTHER)),
        emails=(
            Email("nina@parent.test", EmailType.HOME),
            Email("n.okafor@example.org", EmailType.OTHER),
        ),
        relationships=(
            Relationship("P01", priority=1, parental_responsibility=True, receives_messages=False),
        ),
    ),
)


class TestWriting:
    def test_exact_4_0_output(self) -> None:
        """The 4.0 card is exactly this: fixed property order, CRLF, a long line folded."""
        assert format_vcards([GUARDIAN]) == (
            "BEGIN:VCARD\r\n"
            "VERSION:4.0\r\n"
            "UID;VALUE=text:G01\r\n"
            "FN:Nina Okafor\r\n"
            "N:Okafor;Nina;;;\r\n"
            "TEL;TYPE=cell:07700 900123\r\n"
            "TEL;TYPE=voice:01632 960123\r\n"
            "EMAIL;TYPE=home:nina@parent.test\r\n"
            "EMAIL:n.okafor@example.org\r\n"
            "RELATED;TYPE=child;VALUE=text;X-SOURCETRUTH-PRIORITY=1;X-SOURCETRUTH-PARENT\r\n"
            " AL-RESPONSIBILITY=true;X-SOURCETRUTH-RECEIVES-MESSAGES=false:P01\r\n"
            "X-SOURCETRUTH-ROLE:guardian\r\n"
            "END:VCARD\r\n"
        )

    def test_exact_3_0_output(self) -> None:
        """In 3.0 a relationship is X-SOURCETRUTH-CHILD and the UID is plain text."""
        text = format_vcards([GUARDIAN], version="3.0")
        assert text.splitlines()[:3] == ["BEGIN:VCARD", "VERSION:3.0", "UID:G01"]
        assert (
            "X-SOURCETRUTH-CHILD;X-SOURCETRUTH-PRIORITY=1;X-SOURCETRUTH-PARENTAL-RESPONS\r\n"
            " IBILITY=true;X-SOURCETRUTH-RECEIVES-MESSAGES=false:P01\r\n"
        ) in text
        assert "RELATED" not in text

    def test_uuid_keys_are_urns_in_4_0(self) -> None:
        """A key that is a UUID is written as urn:uuid: in 4.0 and read back bare."""
        key = "0e7602cc-443e-4b82-b4b1-90f62f99a199"
        text = format_vcards([Record(key, ContactData(given_name="Nina"))])
        assert f"\r\nUID:urn:uuid:{key}\r\n" in text
        assert only(parse_vcards(text, file="f.vcf")).key == key

    def test_output_is_deterministic_and_sorted_by_key(self) -> None:
        """The same records in any order give the same text, cards sorted by key."""
        other = Record("A07", ContactData(given_name="Omar", family_name="Nowak"))
        assert format_vcards([GUARDIAN, other]) == format_vcards([other, GUARDIAN])
        text = format_vcards([GUARDIAN, other])
        assert text.index("UID;VALUE=text:A07") < text.index("UID;VALUE=text:G01")

    def test_folding_never_splits_a_character(self) -> None:
        """Lines are at most 75 octets and each physical line is valid UTF-8 on its own."""
        name = "Zoë-名前-😀" * 12
        text = format_vcards([Record("K1", ContactData(given_name=name, family_name=name))])
        physical = text.encode("utf-8").split(b"\r\n")
        assert physical[-1] == b""
        assert max(len(line) for line in physical) == 75
        for line in physical:
            line.decode("utf-8")
        assert b"\r" not in text.encode("utf-8").replace(b"\r\n", b"")
        assert only(parse_vcards(text, file="f.vcf")).data.given_name == name

    def test_values_are_escaped(self) -> None:
        """Backslash, comma, semicolon and newline are escaped in written values."""
        record = Record("K1", ContactData(given_name="a\\b,c;d\ne", family_name="O;K"))
        text = format_vcards([record], version="3.0")
        assert "\r\nN:O\\;K;a\\\\b\\,c\\;d\\ne;;;\r\n" in text
        assert only(parse_vcards(text, file="f.vcf")) == record

    def test_carriage_returns_become_line_breaks(self) -> None:
        """vCard cannot escape CR: CRLF and CR in a value are written and read back as newlines."""
        record = Record("K1", ContactData(given_name="Nina\r\nAda\rB"))
        text = format_vcards([record])
        assert only(parse_vcards(text, file="f.vcf")).data.given_name == "Nina\nAda\nB"

    @pytest.mark.parametrize(
        ("records", "version"),
        [
            ([GUARDIAN], "2.1"),
            ([GUARDIAN], "5.0"),
            ([Record("", ContactData())], "4.0"),
            ([GUARDIAN, GUARDIAN], "4.0"),
            ([Record("K1", ContactData(given_name="\ud800"))], "4.0"),
            ([Record("K1", ContactData(relationships=(Relationship(""),)))], "4.0"),
        ],
        ids=["2.1", "5.0", "empty-key", "duplicate-key", "surrogate", "empty-pupil"],
    )
    def test_what_cannot_be_written(self, records: Sequence[Record], version: str) -> None:
        """Unwritable versions, empty or repeated keys, surrogates, empty pupil keys: UsageError."""
        with pytest.raises(UsageError):
            format_vcards(records, version=version)

    def test_no_records_no_text(self) -> None:
        """An empty book is an empty file, which reads back as no entries (and says so)."""
        assert format_vcards([]) == ""
        reading = parse_vcards("", file="f.vcf")
        assert reading.entries == ()
        assert [(n.code, n.file, n.line) for n in reading.notices] == [("no-cards", "f.vcf", None)]


# -- round trips -------------------------------------------------------------------------

ANY_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\r")
AWKWARD = st.sampled_from(
    [",", ";", "\\", "\n", ":", '"', "=", "^", " ", "\t", "é", "名", "😀", "\x85", "\u2028"]
)
AWKWARD_TEXT = st.text(st.one_of(ANY_TEXT, AWKWARD), max_size=40)


@st.composite
def awkward_records(draw: st.DrawFn) -> list[Record]:
    """Records whose names, keys, groups and pupil keys hold every character that needs care."""
    keys = draw(
        st.lists(
            st.text(st.one_of(ANY_TEXT, AWKWARD), min_size=1, max_size=12),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    records = []
    for key in keys:
        relationships = draw(
            st.lists(
                st.builds(
                    Relationship,
                    st.text(st.one_of(ANY_TEXT, AWKWARD), min_size=1, max_size=12),
                    priority=st.integers(-5, 10**6),
                    parental_responsibility=st.booleans(),
                    receives_messages=st.booleans(),
                ),
                max_size=2,
            )
        )
        data = draw(sts.contact_data())
        records.append(
            Record(
                key,
                ContactData(
                    given_name=draw(AWKWARD_TEXT),
                    family_name=draw(AWKWARD_TEXT),
                    role=data.role,
                    phones=data.phones,
                    emails=data.emails,
                    relationships=tuple(relationships),
                    year_group=draw(AWKWARD_TEXT),
                    registration_group=draw(AWKWARD_TEXT),
                ),
            )
        )
    return records


class TestRoundTrip:
    @SETTINGS
    @given(snapshot=sts.snapshots(max_size=8), version=st.sampled_from(["3.0", "4.0"]))
    def test_school_records_round_trip(self, snapshot: Snapshot, version: str) -> None:
        """format then parse gives every record back exactly, with no notices, in 3.0 and 4.0."""
        records = snapshot.records
        reading = parse_vcards(format_vcards(records, version=version), file="f.vcf")
        assert reading.entries == read_back(records)
        assert reading.notices == ()

    @SETTINGS
    @given(records=awkward_records(), version=st.sampled_from(["3.0", "4.0"]))
    def test_awkward_text_round_trips(self, records: list[Record], version: str) -> None:
        """Commas, semicolons, backslashes, newlines and non-ASCII round trip in every field."""
        reading = parse_vcards(format_vcards(records, version=version), file="f.vcf")
        assert reading.entries == read_back(records)

    @SETTINGS
    @given(records=awkward_records(), version=st.sampled_from(["3.0", "4.0"]))
    def test_written_lines_are_short_and_crlf(self, records: list[Record], version: str) -> None:
        """Every physical line is at most 75 octets, valid UTF-8, and ends with CRLF."""
        data = format_vcards(records, version=version).encode("utf-8")
        assert data.endswith(b"\r\n")
        lines = data.split(b"\r\n")[:-1]
        assert all(len(line) <= 75 for line in lines)
        assert all(b"\r" not in line and b"\n" not in line for line in lines)
        for line in lines:
            line.decode("utf-8")

    @SETTINGS
    @given(
        records=awkward_records(),
        version=st.sampled_from(["3.0", "4.0"]),
        width=st.integers(1, 20),
        indent=st.sampled_from([b" ", b"\t"]),
        newline=st.sampled_from([b"\r\n", b"\n"]),
    )
    def test_folding_at_any_octet_reads_back(
        self, records: list[Record], version: str, width: int, indent: bytes, newline: bytes
    ) -> None:
        """Folds anywhere, inside a UTF-8 sequence too, read back as the unfolded file."""
        data = format_vcards(records, version=version).encode("utf-8")
        folded = []
        for line in data.replace(b"\r\n ", b"").split(b"\r\n"):
            pieces = [line[i : i + width] for i in range(0, len(line), width)] or [b""]
            folded.append((newline + indent).join(pieces))
        reading = parse_vcards(newline.join(folded), file="f.vcf")
        assert reading.entries == read_back(records)

    @SETTINGS
    @given(
        st.lists(
            st.sampled_from(
                [
                    "BEGIN:VCARD",
                    "END:VCARD",
                    "VERSION:2.1",
                    "VERSION:4.0",
                    "UID:a1",
                    "N;ENCODING=QUOTED-PRINTABLE;CHARSET=latin-1:Mor=E9au=",
                    "TEL;TYPE=cell:07700 900123",
                    " continued",
                    "",
                    "AGENT:",
                    "RELATED;TYPE=child;X-SOURCETRUTH-PRIORITY=1:P1",
                ]
            )
            | st.text(max_size=12),
            max_size=14,
        ).map("\r\n".join)
    )
    def test_any_text_reads_or_is_rejected_with_located_problems(self, text: str) -> None:
        """Any input gives a reading or a RejectedFileError of located problems, the same
        whether it is given as text or as UTF-8 bytes."""
        outcomes: list[object] = []
        for data in (text, text.encode("utf-8", "surrogatepass")):
            try:
                outcomes.append(parse_vcards(data, file="f.vcf"))
            except RejectedFileError as error:
                problems = problems_of(error)
                assert all(p.line for p in problems)
                outcomes.append([(type(p), str(p)) for p in problems])
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            assert outcomes[0] == outcomes[1]


# -- the adapter -------------------------------------------------------------------------


class TestAdapter:
    def test_write_then_read(self, tmp_path: Path) -> None:
        """write_entries then read_entries gives the records back, in both versions."""
        pupil = Record(
            "P01",
            ContactData("Omar", "Okafor", Role.PUPIL, year_group="9", registration_group="9B"),
        )
        for version in ("3.0", "4.0"):
            adapter = VCardAdapter(tmp_path / f"book-{version}.vcf", version=version)
            adapter.write_entries([GUARDIAN, pupil])
            assert adapter.read_entries() == AddressBookReading((GUARDIAN, pupil))
            assert (
                (tmp_path / f"book-{version}.vcf")
                .read_bytes()
                .startswith(b"BEGIN:VCARD\r\nVERSION:" + version.encode())
            )

    def test_is_an_address_book_adapter(self, tmp_path: Path) -> None:
        """The adapter keeps the AddressBookAdapter protocol."""
        assert isinstance(VCardAdapter(tmp_path / "book.vcf"), AddressBookAdapter)

    def test_repr_shows_the_path_only(self, tmp_path: Path) -> None:
        """repr names the file and nothing read from it."""
        adapter = VCardAdapter(tmp_path / "book.vcf", version="3.0")
        adapter.write_entries([GUARDIAN])
        assert repr(adapter) == f"VCardAdapter({str(tmp_path / 'book.vcf')!r})"

    def test_missing_file_is_an_adapter_error(self, tmp_path: Path) -> None:
        """Reading a file that is not there is an AdapterError, not an empty book."""
        with pytest.raises(AdapterError, match="no such vCard file"):
            VCardAdapter(tmp_path / "absent.vcf").read_entries()

    def test_rejected_file_comes_through(self, tmp_path: Path) -> None:
        """A broken file read through the adapter is a RejectedFileError naming the path."""
        path = tmp_path / "book.vcf"
        path.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\n", encoding="utf-8")
        with pytest.raises(RejectedFileError) as caught:
            VCardAdapter(path).read_entries()
        assert problems_of(caught.value)[0].file == str(path)

    def test_write_replaces_the_file_and_leaves_no_temporary(self, tmp_path: Path) -> None:
        """A second write replaces the book, keeps the file's mode and leaves no temporary."""
        path = tmp_path / "book.vcf"
        adapter = VCardAdapter(path)
        adapter.write_entries([GUARDIAN])
        if os.name == "posix":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            path.chmod(0o640)
        adapter.write_entries([Record("A07", ContactData(given_name="Omar"))])
        assert [r.key for r in adapter.read_entries().entries] == ["A07"]
        assert [p.name for p in tmp_path.iterdir()] == ["book.vcf"]
        if os.name == "posix":
            assert stat.S_IMODE(path.stat().st_mode) == 0o640

    def test_a_write_that_cannot_be_formatted_leaves_the_file_alone(self, tmp_path: Path) -> None:
        """Duplicate keys fail before the file is touched."""
        path = tmp_path / "book.vcf"
        adapter = VCardAdapter(path)
        adapter.write_entries([GUARDIAN])
        before = path.read_bytes()
        with pytest.raises(UsageError):
            adapter.write_entries([GUARDIAN, GUARDIAN])
        assert path.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["book.vcf"]

    def test_write_into_a_missing_folder_is_an_adapter_error(self, tmp_path: Path) -> None:
        """A folder that does not exist is an outside failure."""
        with pytest.raises(AdapterError):
            VCardAdapter(tmp_path / "absent" / "book.vcf").write_entries([GUARDIAN])

    def test_unwritable_version_is_refused_at_construction(self, tmp_path: Path) -> None:
        """version='2.1' is for reading only."""
        with pytest.raises(UsageError):
            VCardAdapter(tmp_path / "book.vcf", version="2.1")

    def test_cp1252_through_the_adapter(self, tmp_path: Path) -> None:
        """allow_cp1252 reaches the decoder."""
        path = tmp_path / "book.vcf"
        path.write_bytes(card("3.0", "UID:a1", "N:Moréau;Zofia;;;").encode("cp1252"))
        with pytest.raises(RejectedFileError):
            VCardAdapter(path).read_entries()
        assert (
            VCardAdapter(path, allow_cp1252=True).read_entries().entries[0].data.family_name
            == "Moréau"
        )


class TestConformance40(AddressBookAdapterContract):
    """The library's address-book conformance kit, against a 4.0 file."""

    @pytest.fixture
    def make_adapter(self) -> Callable[[Path], AddressBookAdapter]:
        """A 4.0 vCard adapter over book.vcf in the kit's directory."""
        return lambda directory: VCardAdapter(directory / "book.vcf")


class TestConformance30(AddressBookAdapterContract):
    """The library's address-book conformance kit, against a 3.0 file."""

    @pytest.fixture
    def make_adapter(self) -> Callable[[Path], AddressBookAdapter]:
        """A 3.0 vCard adapter over book.vcf in the kit's directory."""
        return lambda directory: VCardAdapter(directory / "book.vcf", version="3.0")


# -- as real clients write them ----------------------------------------------------------


def notices_of(reading: AddressBookReading) -> list[tuple[str, int | None, str | None]]:
    """Each notice as (code, line, field)."""
    return [(n.code, n.line, n.field) for n in reading.notices]


class TestAsClientsWriteThem:
    """Client exports read, not refused: odd extensions, no VERSION, broken unused lines."""

    def test_kontact_extension_lines_are_skipped_with_one_notice(self) -> None:
        """KDE's X-messaging/xmpp-All is an extension property: skipped, one notice with a count."""
        text = card(
            "3.0",
            "UID:a1",
            "N:Moreau;Aoife;;;",
            "X-messaging/xmpp-All:aoife@example.org",
            "item1.X-messaging/aim-All:aoife",
            "X-KADDRESSBOOK-BlogFeed:https://example.org",
            "TEL;TYPE=cell:07700 900123",
        ) + card("3.0", "UID:a2", "N:Nowak;Omar;;;", "X-messaging/xmpp-All:omar@example.org")
        reading = parse_vcards(text, file="book.vcf")
        assert [r.key for r in reading.entries] == ["a1", "a2"]
        assert reading.entries[0].data.phones == (Phone("07700 900123", PhoneType.MOBILE),)
        assert notices_of(reading) == [("property-skipped", 5, None)]
        assert reading.notices[0].message.startswith("4 extension (X-) properties skipped")

    def test_non_standard_names_are_one_kind_and_standard_ones_are_silent(self) -> None:
        """A name no standard defines is skipped as its own kind; NOTE or ADR say nothing."""
        text = card("4.0", "UID:a1", "FN:Aoife", "NOTE:x", "ADR:;;1 High St", "Q/1:x", "FOO:y")
        reading = parse_vcards(text, file="book.vcf")
        skipped = [n for n in reading.notices if n.code == "property-skipped"]
        assert [(n.line, n.message) for n in skipped] == [(7, "2 non-standard properties skipped")]

    @pytest.mark.parametrize("previous", ["NOTE:call after 6", "X-ABLabel:Work", "PHOTO:abc"])
    def test_a_malformed_line_after_an_unused_property_is_a_notice(self, previous: str) -> None:
        """A line that is not name:value after a property we do not read is skipped, noticed."""
        text = card("3.0", "UID:a1", "N:Moreau;Aoife;;;", previous, "not a property", "=0D=0A")
        reading = parse_vcards(text, file="book.vcf")
        assert only(reading).data.family_name == "Moreau"
        malformed = [n for n in reading.notices if n.code == "malformed-line"]
        assert [(n.line, n.key) for n in malformed] == [(6, None)]
        assert malformed[0].message.startswith("2 lines that are not name[;parameters]:value")
        if previous.startswith("NOTE"):
            assert "after NOTE, a property sourcetruth does not read" in malformed[0].message

    @pytest.mark.parametrize("previous", ["TEL:07700 900123", "N:Moreau;Aoife;;;", "UID:a1"])
    def test_a_malformed_line_after_a_used_property_is_still_an_error(self, previous: str) -> None:
        """After a property we read, the line may be part of its value: the file is refused."""
        text = card("3.0", "FN:Aoife", previous, "900124 (evenings)")
        assert [(p.line, p.field) for p in rejected(text)] == [(5, None)]

    @pytest.mark.parametrize(("written", "escaped"), [("4", "Okafor"), ("3", "Okafor")])
    def test_a_version_without_its_minor_number(self, written: str, escaped: str) -> None:
        """VERSION:4 reads as 4.0 (VERSION:3 as 3.0), with a notice that shows no version."""
        reading = parse_vcards(card(written, "UID:a1", "N:Oka\\for;Nina;;;"), file="book.vcf")
        assert only(reading).data.family_name == escaped  # 3.0 and 4.0 unescape "\f"
        assert notices_of(reading) == [("short-version", 2, "VERSION")]

    def test_empty_values_are_dropped(self) -> None:
        """Empty TEL and EMAIL lines (blank fields of a client) give no phone and no address."""
        text = card(
            "3.0",
            "UID:a1",
            "N:Moreau;Aoife;;;",
            "TEL;TYPE=cell:",
            "TEL;TYPE=home: ",
            "TEL;VALUE=uri:tel:",
            "EMAIL;TYPE=home:",
            "X-SOURCETRUTH-YEAR-GROUP:",
            "TEL:07700 900123",
        )
        reading = parse_vcards(text, file="book.vcf")
        assert only(reading).data.phones == (Phone("07700 900123", PhoneType.OTHER),)
        assert only(reading).data.emails == ()
        assert [(c, line) for c, line, _ in notices_of(reading)] == [
            ("empty-value", line) for line in (5, 6, 7, 8, 9)
        ]

    @pytest.mark.parametrize("newline", ["\r\n", "\n"])
    def test_a_lone_cr_before_an_oddly_named_property_ends_the_line(self, newline: str) -> None:
        """UID:gov-1 CR X-messaging/xmpp-All:... is two properties, however odd the second."""
        text = card("3.0", "UID:gov-1\rX-messaging/xmpp-All:a@example.org", "N:Moreau;Aoife;;;")
        reading = parse_vcards(text.replace("\r\n", newline).encode(), file="book.vcf")
        assert only(reading).key == "gov-1"
        assert notices_of(reading) == [("property-skipped", 4, None)]

    def test_lone_cr_line_ends_with_a_stray_lf(self) -> None:
        """An old Mac file with an LF added at its end still ends its lines at each CR."""
        text = card("3.0", "X-messaging/xmpp-All:x", "UID:a1", "N:Mor", " eau;Aoife;;;")
        reading = parse_vcards(text.replace("\r\n", "\r").encode() + b"\n", file="book.vcf")
        assert only(reading).key == "a1"
        assert only(reading).data.family_name == "Moreau"

    def test_cr_cr_lf_line_ends_are_no_lone_crs(self) -> None:
        """An iPhone-style CR CR LF file keeps a CR typed into a value as text, as a CRLF one."""
        text = card("3.0", "UID:a1", "N:Okafor;Nina\rAda;;;", "NOTE:a\rb")
        reading = parse_vcards(text.replace("\r\n", "\r\r\n").encode(), file="book.vcf")
        assert only(reading).data.given_name == "Nina\rAda"

    def test_a_version_holding_a_cr_is_diagnosed_as_such(self) -> None:
        """A CR kept in VERSION (before text that starts no property) is named as a CR."""
        problems = rejected(card("3.0\r more", "UID:a1"))
        assert [(p.line, p.field) for p in problems] == [(2, "VERSION")]
        assert "carriage return" in str(problems[0])


class TestEncodingsAsTheOtherReaders:
    """The encoding rules of the tabular readers, applied to the vCard reader."""

    @pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
    def test_utf16_without_a_byte_order_mark_is_read(self, encoding: str) -> None:
        """UTF-16 without a mark is recognised by its NUL bytes, not called 'not UTF-8'."""
        data = card("3.0", "UID:a1", "N:Ødegård;Zoë;;;").encode(encoding)
        assert only(parse_vcards(data, file="book.vcf")).data.family_name == "Ødegård"

    @pytest.mark.parametrize("encoding", ["utf-32-le", "utf-32-be"])
    def test_utf32_with_a_byte_order_mark_is_read(self, encoding: str) -> None:
        """UTF-32 with its mark, in either byte order."""
        data = ("\ufeff" + card("3.0", "UID:a1", "N:Ødegård;Zoë;;;")).encode(encoding)
        assert only(parse_vcards(data, file="book.vcf")).data.family_name == "Ødegård"

    def test_cp1252_not_allowed_says_it_reads_as_cp1252(self) -> None:
        """The tabular readers' advice, at the line of the first byte that is not UTF-8."""
        data = card("3.0", "UID:a1", "N:Ødegård;Zoë;;;").encode("cp1252")
        problems = rejected(data)
        assert [(p.line, p.field) for p in problems] == [(4, "N")]
        assert "it reads as cp1252 (allow cp1252" in str(problems[0])

    @pytest.mark.parametrize(
        ("names", "encoding", "likely"),
        [
            (("Иван;Петров", "Ольга;Смирнова"), "cp1251", "Cyrillic"),
            (("カタカナ;テスト", "ヤマダ;タロウ"), "shift_jis", "Shift_JIS"),
        ],
    )
    @pytest.mark.parametrize("allow", [False, True])
    def test_other_encodings_are_refused_by_name(
        self, names: tuple[str, ...], encoding: str, likely: str, allow: bool
    ) -> None:
        """Text cp1252 would turn to mojibake is refused, naming the likely encoding."""
        data = "".join(card("3.0", f"UID:a{i}", f"N:{n};;;") for i, n in enumerate(names))
        problems = rejected(data.encode(encoding), allow_cp1252=allow)
        message = str(problems[0])
        assert likely in message
        assert "allow cp1252" not in message
        assert "save the file as UTF-8" in message
        assert problems[0].line in (4, 9)  # the N of a card

    def test_a_value_in_its_own_charset_is_not_judged_as_the_file(self) -> None:
        """A cp1252 file may hold a value in its own CHARSET: it is no mojibake of the file's."""
        data = card("2.1", "UID:a1", "N:Mor\xe9au;Zo\xeb").encode("cp1252") + card(
            "2.1", "UID:a2", "N;CHARSET=SHIFT_JIS:"
        ).encode().replace(b"SHIFT_JIS:", "SHIFT_JIS:カタカナ;テスト".encode("shift_jis"))
        reading = parse_vcards(data, file="book.vcf", allow_cp1252=True)
        assert [r.data.family_name for r in reading.entries] == ["Moréau", "カタカナ"]


class TestCorpusAsClientsWriteThem:
    """Real exports: their extension properties are now noticed, one notice per kind."""

    def test_mac_address_book_extensions_are_one_notice(self) -> None:
        """The Mac Address Book export's X- properties: one property-skipped notice, no key."""
        reading = read_corpus("ez-vcard", "io", "text", "John_Doe_MAC_ADDRESS_BOOK.vcf")
        skipped = [n for n in reading.notices if n.code == "property-skipped"]
        assert len(skipped) == 1
        assert skipped[0].key is None
        assert "extension (X-)" in skipped[0].message
