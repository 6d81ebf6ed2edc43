"""Normalise phone numbers and email addresses before comparing them (rule 10).

Phone numbers become E.164 with ``phonenumbers`` (the port of Google's
libphonenumber), read in a default region (GB unless the policy says
otherwise). A number is accepted when its length is possible for its country;
we do not demand a number the metadata calls "valid", because reserved ranges
such as Ofcom's drama numbers and newly allocated ranges would then be lost.

Email addresses are checked for syntax with ``email-validator`` (no DNS
lookup), trimmed, and their domain is case-folded; the local part is kept as
written, since only the receiving server may decide it is case-blind.

A value that does not normalise is not dropped: callers keep it raw and report
it. The functions here are pure and cache their answers.
"""

from __future__ import annotations

from functools import lru_cache

import email_validator
import phonenumbers
from attrs import field, frozen

__all__ = ["Normalised", "normalise_email", "normalise_phone"]


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
    return Normalised(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


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
