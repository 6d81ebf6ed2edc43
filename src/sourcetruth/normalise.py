"""Normalise phone numbers and email addresses before comparing them (rule 10).

Phone numbers become E.164 with ``phonenumbers`` (the port of Google's
libphonenumber), read in a region (GB unless the policy, or the source, says
otherwise). A number is accepted when libphonenumber calls it valid for its
country: a possible length alone let through numbers short of a digit
(``0306 999012``) and national numbers of another country re-homed in the
region (a US ``603 555 0123`` as ``+44 603...``). The one exception is the
ranges Ofcom keeps for drama (:data:`DRAMA_RANGES`), which no operator will
be given and which test data uses: they are accepted by that explicit rule,
whatever the metadata says of them.

Email addresses are checked for syntax with ``email-validator`` (no DNS
lookup), trimmed, and their domain is case-folded; the local part is kept as
written, since only the receiving server may decide it is case-blind.

A value that does not normalise is not dropped: callers keep it raw and report
it. The functions here are pure and cache their answers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import email_validator
import phonenumbers
from attrs import field, frozen

__all__ = [
    "DRAMA_RANGES",
    "PHONE_RULES",
    "Normalised",
    "is_drama_number",
    "normalise_email",
    "normalise_phone",
]

#: The version of the rules :func:`normalise_phone` applies beyond the
#: metadata of ``phonenumbers``; a view cached under other rules is rebuilt.
PHONE_RULES: Final = "phone 2: valid for its country, or an Ofcom drama number"

#: Ofcom's numbers for drama: each range is 1,000 numbers, the E.164 prefix
#: here followed by three digits. From Ofcom's "Telephone numbers for drama
#: purposes" list (ofcom.org.uk, phones-and-broadband/phone-numbers/
#: numbers-for-drama); the Northern Ireland range is 028 9018 0xxx.
DRAMA_RANGES: Final = frozenset(
    {
        "+441134960",  # 0113 496 0000-0999, Leeds
        "+441144960",  # 0114 496 0000-0999, Sheffield
        "+441154960",  # 0115 496 0000-0999, Nottingham
        "+441164960",  # 0116 496 0000-0999, Leicester
        "+441174960",  # 0117 496 0000-0999, Bristol
        "+441184960",  # 0118 496 0000-0999, Reading
        "+441214960",  # 0121 496 0000-0999, Birmingham
        "+441314960",  # 0131 496 0000-0999, Edinburgh
        "+441414960",  # 0141 496 0000-0999, Glasgow
        "+441514960",  # 0151 496 0000-0999, Liverpool
        "+441614960",  # 0161 496 0000-0999, Manchester
        "+442079460",  # 020 7946 0000-0999, London
        "+441914980",  # 0191 498 0000-0999, Tyneside, Durham, Sunderland
        "+442890180",  # 028 9018 0000-0999, Northern Ireland
        "+442920180",  # 029 2018 0000-0999, Cardiff
        "+441632960",  # 01632 960000-960999, no area
        "+447700900",  # 07700 900000-900999, mobile
        "+448081570",  # 08081 570000-570999, freephone
        "+449098790",  # 0909 879 0000-0999, premium rate
        "+443069990",  # 03069 990000-990999, UK-wide
    }
)


def is_drama_number(e164: str) -> bool:
    """Whether *e164* lies in one of Ofcom's :data:`DRAMA_RANGES`."""
    return e164[:-3] in DRAMA_RANGES and e164[-3:].isdigit()


@frozen
class Normalised:
    """The outcome of normalising one value: ``value`` or, failing that, ``problem``."""

    value: str | None = field(repr=lambda v: "<redacted>" if v else repr(v))
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None

    def comparable(self, raw: str) -> str:
        """What to compare: the normalised value, or the trimmed raw one."""
        return self.value if self.value is not None else raw.strip()


_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def _national_prefix(country_code: int | None) -> str | None:
    if country_code is None:
        return None
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else metadata.national_prefix


def _valid(number: phonenumbers.PhoneNumber, region: str) -> bool:
    # Most numbers are the region's own: checking that region first spares
    # ``is_valid_number`` its search for the region (a second metadata match).
    own = number.country_code == phonenumbers.country_code_for_region(region)
    if own and phonenumbers.is_valid_number_for_region(number, region):
        return True
    return bool(phonenumbers.is_valid_number(number))


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, region: str = "GB") -> Normalised:
    """Return the E.164 form of *raw*, read in *region* when it has no country code."""
    text = raw.strip()
    if not text:
        return Normalised(None, "empty phone number")
    if any(ch.isalpha() for ch in text):
        # libphonenumber reads letters as keypad digits or drops them; a
        # contact's number with letters in it is a typo, not a vanity number.
        return Normalised(None, "contains letters")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        reasons = {
            phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
            phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
            phonenumbers.NumberParseException.TOO_LONG: "too long",
        }
        return Normalised(None, reasons.get(exc.error_type, "not a phone number"))
    # IS_POSSIBLE_LOCAL_ONLY (a number dialable only within its area) is not enough
    # to reach anyone from a gateway.
    if phonenumbers.is_possible_number_with_reason(number) != _POSSIBLE:
        return Normalised(None, "impossible length for its country")
    if number.italian_leading_zero and _national_prefix(number.country_code) == "0":
        # The trunk 0 was kept because the rest is too short to be a number.
        return Normalised(None, "too short")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # The drama test comes first: a string look-up, where validity walks the
    # metadata's patterns, and the numbers of test data are nearly all drama.
    if is_drama_number(e164) or _valid(number, region):
        return Normalised(e164)
    if text.startswith(("+", "00")):
        return Normalised(None, "not a valid number in its country's numbering plan")
    # A national number is read in the region; one that fits no range there is
    # most likely another country's, and is refused rather than re-homed.
    return Normalised(None, f"not a valid number in region {region}")


@lru_cache(maxsize=65536)
def normalise_email(raw: str) -> Normalised:
    """Return *raw* trimmed, with its domain case-folded, if its syntax is valid."""
    text = raw.strip()
    if not text:
        return Normalised(None, "empty email address")
    try:
        checked = email_validator.validate_email(
            text, check_deliverability=False, test_environment=True
        )
    except email_validator.EmailNotValidError:
        # The library's message can quote the address; say only what is wrong.
        return Normalised(None, "not a valid email address")
    local, _, domain = checked.normalized.rpartition("@")
    return Normalised(f"{local}@{domain.casefold()}")
