"""vCard address books: read 2.1, 3.0 and 4.0, write 3.0 or 4.0.

The local address book can live in a ``.vcf`` file that phones and mail
programs import and export. This module reads every card of such a file into
a :class:`~sourcetruth.Record` and writes records back, so that
:func:`format_vcards` then :func:`parse_vcards` gives back every field of
:class:`~sourcetruth.ContactData` exactly, in either written version.

It is a parser of its own rather than a wrapper of a vCard library because
real exports need the older rules too (vCard 2.1's quoted-printable values and
bare parameter types) and we want every tolerated oddity reported, never
guessed silently.

**Reading** (RFC 2425/2426, RFC 6350 and the vCard 2.1 specification):

- Decoding: bytes with a UTF-16 byte-order mark are decoded as a whole
  first. Any other bytes are split into lines and unfolded as bytes, then
  each unfolded line is decoded, so that a fold may split a UTF-8 sequence
  as RFC 6350 3.2 allows. A UTF-8 byte-order mark is dropped; then each line
  must be strict UTF-8, or, only when allowed and without a byte-order mark,
  the whole file is read as cp1252 when it is not UTF-8 (the rules of
  :func:`sourcetruth.adapters.sources.text.decode`, applied after unfolding). As
  there, a file that is not UTF-8 but holds UTF-8 sequences of accented text
  (:func:`~sourcetruth.adapters.sources.text.looks_like_utf8`; a value read in its
  own ``CHARSET`` does not count) mixes two encodings, say two exports
  joined, and is refused rather than read as mojibake.
  Undecodable bytes are an :class:`~sourcetruth.EncodingError` naming the
  line where their property starts, the property and the byte offset.
- ``CHARSET`` on a raw 8-bit value (not quoted-printable nor base64; vCard
  2.1, and some 3.0 exporters) is honoured: that value's bytes, and only
  they, are read in the charset it names, in any version. A charset Python
  does not know, one that does not write ASCII as ASCII (UTF-16), or bytes
  not valid in it, is an error in the card, but only for a property we use,
  as with quoted-printable. A value of ASCII only reads alike in every such
  charset, so its ``CHARSET`` is not looked at. Text given as ``str``, and
  a UTF-16 file, are already decoded, so there ``CHARSET`` is ignored.
- Physical lines end with CRLF, LF or CR. A file that holds any LF ends its
  lines at LF only (with any CRs just before it): a stray CR inside a value,
  which Thunderbird writes, then stays part of the value, and ``CR CR LF``
  (a CRLF file whose line ends were converted once more) is one line end.
  A file with no LF at all ends its lines at CR.
- Unfolding: a line that starts with a space or a tab continues the one
  before, less that one character (all three versions; vCard 2.1's RFC 822
  folding would keep it, but no exporter we know relies on that). A
  quoted-printable value that ends with ``=`` continues on the next line
  whatever that line starts with (a soft line break). A line of base64
  characters only continues a base64 value, as some 2.1 exporters write them.
- Parameters in every style: ``TEL;WORK;VOICE`` (2.1 bare types; bare
  ``QUOTED-PRINTABLE``/``BASE64`` are encodings), ``TYPE=home,pref``,
  ``TYPE="cell,voice"``, repeated ``TYPE``, ``PREF=1``, ``VALUE=uri``.
  Property and parameter names are case-blind; groups (``item1.TEL``) are
  ignored. RFC 6868 caret escapes are not decoded: no parameter we read can
  hold one.
- ``ENCODING=QUOTED-PRINTABLE`` values are decoded to bytes and then read in
  their ``CHARSET`` (UTF-8 when none is given); an unknown charset, or bytes
  that are not valid in it, is an error in that card. Only the properties we
  use are decoded, so a broken ``ORG`` or ``NOTE`` does not reject a file.
  An ``=`` not followed by two hex digits is kept as written, with a
  ``quoted-printable`` notice naming the line and property: the value is
  still readable, and a card error would reject a whole file for one
  exporter's slip.
- Base64 values (``ENCODING=b``/``BASE64``, photos and keys) are never decoded.
- A quoted-printable ``=0D=0A`` is read as ``\\n``. Any other CR left in a
  value we read is kept, with a ``carriage-return`` notice.
- Text escapes: in 3.0 and 4.0 ``\\n`` or ``\\N`` is a line break and a
  backslash before any other character stands for that character (so Apple's
  ``\\:`` reads as ``:``). vCard 2.1 only escapes ``\\;`` (and, in practice,
  ``\\,`` and ``\\\\``); any other backslash is kept.
- Unknown and ``X-`` properties are ignored, and so is an embedded 2.1
  ``AGENT`` card.
- A file with no cards (empty, or blank lines only) reads as no entries with
  a ``no-cards`` notice naming the file: an empty book is valid, but worth
  saying when it may be an export that went wrong.

**Mapping** (values are kept as written: the merge normalises them later):

- Names: ``N`` gives family and given name. When ``N`` is missing, or both of
  those parts are empty, the whole ``FN`` becomes the given name and the
  family name stays empty, with a ``name-from-fn`` notice: we never guess
  where a display name splits. A part with several comma-separated values
  (3.0 and 4.0) is read as those values joined by a space.
- ``TEL``: ``cell``/``mobile``/``iphone`` give a mobile, else ``home``, else
  ``work``, else other (so ``work,cell`` is a mobile). A number typed ``fax``
  or ``pager`` and none of voice, cell, text, msg, video or textphone is
  skipped with a ``phone-skipped`` notice. In 4.0 a ``tel:`` URI loses its
  scheme and is otherwise kept as written.
- ``EMAIL``: ``home``, else ``work``, else other; ``internet`` and ``pref``
  say nothing about whose address it is, and an untyped address is other.
- ``UID`` is the key, less a leading ``urn:uuid:``. A card without one gets
  ``derived-`` and 16 hex digits of the SHA-256 of its unfolded lines, the
  same on every read of the same card, with a ``derived-key`` notice.
- ``X-SOURCETRUTH-ROLE``, ``X-SOURCETRUTH-YEAR-GROUP`` and
  ``X-SOURCETRUTH-REGISTRATION-GROUP`` carry the role (other when absent),
  year group and registration group.
- Relationships are ours when they carry our parameters:
  ``RELATED;TYPE=child;VALUE=text;X-SOURCETRUTH-PRIORITY=1;
  X-SOURCETRUTH-PARENTAL-RESPONSIBILITY=true;X-SOURCETRUTH-RECEIVES-MESSAGES=true:<pupil key>``
  (4.0) or ``X-SOURCETRUTH-CHILD`` with the same three parameters (3.0).
  Either is read in any version. Any other ``RELATED`` (a client's
  ``TYPE=parent``, a spouse) is ignored with a ``foreign-related`` notice.

**Errors**: a card without ``END``, an ``END`` without ``BEGIN``, a line that
is not ``name[;params]:value``, a missing or unsupported ``VERSION``,
undecodable bytes, an unknown charset, a value that cannot be read in its
``CHARSET``, a ``UID`` repeated in the file and a malformed relationship of
ours are each a :class:`~sourcetruth.SourceDataError` naming file, line
(the physical line where the card or property starts, folds counted) and
field (the property name), never the value. Undecodable bytes stop the
read at once; every other problem of the file is collected and raised
together as one
:class:`~sourcetruth.RejectedFileError`: a file with any error gives no
entries at all.

**Writing** is deterministic: records sorted by key, properties in a fixed
order, CRLF line ends, lines folded at 75 octets without splitting a UTF-8
sequence, and ``\\``, ``,``, ``;`` and line breaks escaped. A CR or CRLF in a
value is written as a line break (vCard has no escape for CR), so it reads
back as ``\\n``.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, TypeVar

import attrs
from attrs import define, frozen

from sourcetruth.adapters._files import write_atomic
from sourcetruth.adapters.sources.base import AddressBookReading, Notice
from sourcetruth.adapters.sources.text import decode, looks_like_utf8
from sourcetruth.exceptions import (
    AdapterError,
    EncodingError,
    RejectedFileError,
    SourceDataError,
    UsageError,
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
)

__all__ = ["VCardAdapter", "format_vcards", "parse_vcards"]

#: The versions read, and those written.
_READ_VERSIONS: Final = frozenset({"2.1", "3.0", "4.0"})
_WRITE_VERSIONS: Final = ("3.0", "4.0")

#: RFC 6350 3.2: lines SHOULD NOT be longer than 75 octets, line break excluded.
_FOLD_AT: Final = 75

_ROLE: Final = "X-SOURCETRUTH-ROLE"
_YEAR_GROUP: Final = "X-SOURCETRUTH-YEAR-GROUP"
_REGISTRATION_GROUP: Final = "X-SOURCETRUTH-REGISTRATION-GROUP"
_CHILD: Final = "X-SOURCETRUTH-CHILD"
_PREFIX: Final = "X-SOURCETRUTH-"
_PRIORITY: Final = "X-SOURCETRUTH-PRIORITY"
_RESPONSIBILITY: Final = "X-SOURCETRUTH-PARENTAL-RESPONSIBILITY"
_MESSAGES: Final = "X-SOURCETRUTH-RECEIVES-MESSAGES"

# A property name, optionally after a group. RFC 6350 allows letters, digits
# and '-'; '_' is tolerated because some exporters write it.
_NAME: Final = re.compile(r"(?:([A-Za-z0-9_-]+)\.)?([A-Za-z0-9_-]+)")
_HEX2: Final = re.compile(r"[0-9A-Fa-f]{2}")
_BASE64_LINE: Final = re.compile(r"[A-Za-z0-9+/]+=*")
_INTEGER: Final = re.compile(r"-?[0-9]+")
# Text safe to show in a message: a version number or a charset name.
_SAFE_TOKEN: Final = re.compile(r"[A-Za-z0-9._-]{1,40}")

# vCard 2.1 bare parameters that are not types.
_BARE_PARAMETERS: Final = {
    "QUOTED-PRINTABLE": "ENCODING",
    "BASE64": "ENCODING",
    "8BIT": "ENCODING",
    "7BIT": "ENCODING",
    "INLINE": "VALUE",
    "URL": "VALUE",
    "CONTENT-ID": "VALUE",
    "CID": "VALUE",
}

_MOBILE_TYPES: Final = frozenset({"cell", "mobile", "iphone"})
_SPOKEN_TYPES: Final = frozenset({"voice", "text", "msg", "video", "textphone"}) | _MOBILE_TYPES
_NOT_A_PHONE_TYPES: Final = frozenset({"fax", "pager"})
#: The TYPE values a TEL or an EMAIL is read by: the first row that any of them is in.
_PHONE_TYPE_IN: Final = (
    (_MOBILE_TYPES, PhoneType.MOBILE),
    (frozenset({"home"}), PhoneType.HOME),
    (frozenset({"work"}), PhoneType.WORK),
)
_EMAIL_TYPE_IN: Final = (
    (frozenset({"home"}), EmailType.HOME),
    (frozenset({"work"}), EmailType.WORK),
)

_PHONE_TYPE_OUT: Final = {
    PhoneType.MOBILE: "cell",
    PhoneType.HOME: "home",
    PhoneType.WORK: "work",
    # An untyped TEL would read as "other" too; "voice" tells other programs
    # that it is a number to call.
    PhoneType.OTHER: "voice",
}
_EMAIL_TYPE_OUT: Final = {EmailType.HOME: "home", EmailType.WORK: "work", EmailType.OTHER: ""}


# -- reading -----------------------------------------------------------------


E = TypeVar("E", PhoneType, EmailType)


def _type_in(types: frozenset[str], table: Sequence[tuple[frozenset[str], E]], other: E) -> E:
    """The type of the first row of *table* that *types* name; *other* when none does."""
    return next((kind for words, kind in table if types & words), other)


@frozen
class _Property:
    """One content line: ``[group.]name[;params]:value``, with its first line number."""

    line: int
    name: str
    params: dict[str, tuple[str, ...]]
    value: str
    #: Why the value's bytes could not be read in its CHARSET; reported only
    #: when the property is used, like a broken quoted-printable value.
    problem: str | None = None

    def param(self, name: str) -> tuple[str, ...]:
        return self.params.get(name, ())

    def first(self, name: str) -> str:
        values = self.params.get(name, ())
        return values[0].strip().lower() if values else ""

    @property
    def types(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.param("TYPE") if t.strip())

    @property
    def encodings(self) -> frozenset[str]:
        return frozenset(e.strip().upper() for e in self.param("ENCODING"))


@define
class _Card:
    line: int
    properties: list[_Property] = attrs.Factory(list)
    lines: list[str] = attrs.Factory(list)
    nested: int = 0


@frozen
class _Read:
    """A card read into data, before keys are settled across the file."""

    card: _Card
    uid: str | None
    uid_line: int
    data: ContactData
    notices: tuple[Notice, ...]


class _ValueProblem(Exception):
    """A property's value cannot be read; becomes a SourceDataError for its card."""


# The name at the start of a content line, to say which property bad bytes are in.
_HEAD: Final = re.compile(r"(?:[A-Za-z0-9_-]+\.)?([A-Za-z0-9_-]+)[;:]")


def _undecodable(file: str, line: int, head: str, reason: str, offset: int) -> RejectedFileError:
    """The error for bytes that are not text: where they are, and which property, never them."""
    located = EncodingError(f"line {line}: {reason}", offset=offset, file=file)
    located.line = line
    name = _HEAD.match(head)
    if name:
        located.field = name.group(1).upper()
    return RejectedFileError(
        f"{file}: not text in an allowed encoding; nothing from it was applied",
        [located],
        file=file,
    )


def _text(data: bytes | str, file: str, allow_cp1252: bool) -> str:
    """*data* decoded as a whole: text as given, or bytes with a UTF-16 byte-order mark."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return decode(data, file=file, allow_cp1252=allow_cp1252)
    except EncodingError as error:
        # decode() knows the byte offset; a person wants the line too, and
        # which property it is on (its name is ASCII, never the value).
        end = b"\n" if b"\n" in data else b"\r"
        line = data.count(end, 0, error.offset) + 1
        start = data.rfind(end, 0, error.offset) + 1
        reason = str(error).split(" at byte ", 1)[0]
        head = data[start : start + 200].decode("latin-1")
        raise _undecodable(file, line, head, reason, error.offset) from None


_LF_END: Final = re.compile(r"\r*\n")
_CR_END: Final = re.compile(r"\r")


def _physical_lines(text: str) -> list[tuple[int, str]]:
    """The physical lines of *text*, each with the offset it starts at."""
    end = _LF_END if "\n" in text else _CR_END
    found: list[tuple[int, str]] = []
    start = 0
    for match in end.finditer(text):
        found.append((start, text[start : match.start()]))
        start = match.end()
    found.append((start, text[start:]))
    return found


def _declares(head_and_value: str, encoding: frozenset[str]) -> bool:
    """Whether a content line's parameters name one of *encoding* (cheap, before parsing)."""
    colon = _find_colon(head_and_value)
    head = head_and_value if colon < 0 else head_and_value[:colon]
    if ";" not in head:
        return False
    for segment in _split_outside_quotes(head, ";")[1:]:
        name, eq, value = segment.partition("=")
        values = value if eq else name
        if eq and name.strip().upper() != "ENCODING":
            continue
        if any(v.strip().strip('"').upper() in encoding for v in values.split(",")):
            return True
    return False


_QP: Final = frozenset({"QUOTED-PRINTABLE"})
_BASE64: Final = frozenset({"B", "BASE64"})


@frozen
class _Logical:
    """One unfolded content line: the physical line it starts on, its text, and
    where each of its physical pieces starts (index in *text*, offset in the input)."""

    line: int
    text: str
    pieces: tuple[tuple[int, int], ...]

    def offset(self, index: int) -> int:
        """The input offset of ``text[index]``."""
        start, offset = self.pieces[0]
        for piece_start, piece_offset in self.pieces:
            if piece_start > index:
                break
            start, offset = piece_start, piece_offset
        return offset + index - start


def _logical_lines(text: str) -> list[_Logical]:
    """Unfold physical lines into content lines, each with the line it starts on.

    *text* is either decoded text or bytes read as Latin-1 (one character
    per byte), so that unfolding can join the halves of a UTF-8 sequence.
    """
    found: list[_Logical] = []
    parts: list[str] = []
    pieces: list[tuple[int, int]] = []
    size = 0
    start = 0
    quoted_printable = base64 = False

    def add(piece: str, offset: int) -> None:
        nonlocal size
        pieces.append((size, offset))
        parts.append(piece)
        size += len(piece)

    def finish() -> None:
        nonlocal size
        if parts:
            found.append(_Logical(start, "".join(parts), tuple(pieces)))
            parts.clear()
            pieces.clear()
            size = 0

    for number, (offset, line) in enumerate(_physical_lines(text), 1):
        if parts and quoted_printable and parts[-1].endswith("="):
            parts[-1] = parts[-1][:-1]
            size -= 1
            add(line, offset)
            continue
        if parts and line[:1] in (" ", "\t"):
            add(line[1:], offset + 1)
            continue
        if not line.strip(" \t"):
            finish()
            continue
        if parts and base64 and _BASE64_LINE.fullmatch(line):
            add(line, offset)
            continue
        finish()
        start = number
        add(line, offset)
        quoted_printable = _declares(line, _QP)
        base64 = _declares(line, _BASE64)
    finish()
    return found


# A content line ready to parse: its first line, its text, and a CHARSET problem.
_Content = tuple[int, str, str | None]

# Text that every charset a vCard line can be in writes as ASCII does.
_ASCII_PROBE: Final = "BEGIN:VCARD;=,\\ \tAz09"


def _charset_param(head: str) -> str | None:
    """The CHARSET parameter in a content line's name and parameters, if any."""
    for segment in _split_outside_quotes(head, ";")[1:]:
        name, eq, value = segment.partition("=")
        if eq and name.strip().upper() == "CHARSET":
            return _unquote(value.split(",")[0]) or None
    return None


def _charset_problem(charset: str) -> str | None:
    """Why raw bytes of a value cannot be read in *charset*, or None when they can."""
    try:
        codecs.lookup(charset)
        compatible = _ASCII_PROBE.encode(charset) == _ASCII_PROBE.encode("ascii")
    except LookupError:
        # lookup() fails for unknown names; encode() for bytes-to-bytes codecs.
        return f"text in an unknown charset {_safe(charset)}"
    except UnicodeError:
        compatible = False
    if not compatible:
        return f"{_safe(charset)} is not a charset a vCard line can be written in"
    return None


def _in_own_charset(logical: _Logical) -> tuple[int, str, str | None] | None:
    """A raw 8-bit value that names its CHARSET, read in it: (where the value
    starts, its text, why it could not be read). None for any other line.

    *logical* is bytes read as Latin-1.
    """
    text = logical.text
    colon = _find_colon(text)
    if colon < 0 or text[colon + 1 :].isascii():
        return None  # ASCII reads alike in every charset we accept
    charset = _charset_param(text[:colon])
    if charset is None or _declares(text, _QP | _BASE64):
        return None
    raw = text[colon + 1 :].encode("latin-1")
    problem = _charset_problem(charset)
    if problem is None:
        try:
            return colon + 1, raw.decode(charset), None
        except UnicodeDecodeError:
            problem = f"bytes that are not valid {_safe(charset)} text"
    # The card is rejected if it uses this property; the text is never shown.
    return colon + 1, raw.decode("utf-8", "replace"), problem


def _decode_lines(
    lines: Sequence[_Logical],
    own: Sequence[tuple[int, str, str | None] | None],
    encoding: str,
) -> list[_Content] | tuple[_Logical, int]:
    """*lines* decoded in *encoding*, each value with a CHARSET of its own in that;
    else the line that failed and where in it."""
    found: list[_Content] = []
    for logical, value in zip(lines, own, strict=True):
        end = len(logical.text) if value is None else value[0]
        try:
            head = logical.text[:end].encode("latin-1").decode(encoding)
        except UnicodeDecodeError as error:
            return logical, error.start
        if value is None:
            found.append((logical.line, head, None))
        else:
            found.append((logical.line, head + value[1], value[2]))
    return found


def _mixes_utf8(
    lines: Sequence[_Logical], own: Sequence[tuple[int, str, str | None] | None]
) -> bool:
    """Whether the unfolded *lines* hold UTF-8 sequences of accented text, as
    :func:`~sourcetruth.adapters.sources.text.looks_like_utf8` sees them, outside the
    values that name their own CHARSET (those are read in it, not "mixed")."""
    for logical, value in zip(lines, own, strict=True):
        end = len(logical.text) if value is None else value[0]
        if looks_like_utf8(logical.text[:end].encode("latin-1")):
            return True
    return False


def _content_lines(data: bytes | str, file: str, allow_cp1252: bool) -> list[_Content]:
    """The unfolded content lines of *data*, as text.

    Bytes without a UTF-16 byte-order mark are unfolded before they are
    decoded, so a fold may split a UTF-8 sequence (RFC 6350 3.2); each
    unfolded line must then be UTF-8 (or, when allowed and there is no
    byte-order mark, the whole file cp1252 unless it also holds UTF-8),
    except a raw value that names its own CHARSET (module docstring).
    """
    if isinstance(data, str) or data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return [(lg.line, lg.text, None) for lg in _logical_lines(_text(data, file, allow_cp1252))]
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    lines = _logical_lines(data[skip:].decode("latin-1"))
    own = [_in_own_charset(logical) for logical in lines]
    found = _decode_lines(lines, own, "utf-8")
    if isinstance(found, list):
        return found
    if skip:
        reason = "not valid utf-8 after its byte-order mark"
    elif not allow_cp1252:
        reason = "not valid UTF-8 (allow cp1252 if the file is from an older Windows program)"
    elif _mixes_utf8(lines, own):
        # As decode(): part UTF-8, part not (two exports joined): reading it
        # all as cp1252 would turn every UTF-8 name into mojibake.
        reason = "the file mixes UTF-8 with another encoding"
    else:
        # As decode(): a file that is not UTF-8 is cp1252 as a whole.
        found = _decode_lines(lines, own, "cp1252")
        if isinstance(found, list):
            return found
        reason = "neither UTF-8 nor cp1252"
    logical, index = found
    offset = skip + logical.offset(index)
    raise _undecodable(file, logical.line, logical.text[:200], reason, offset)


def _find_colon(text: str) -> int:
    """The colon that ends a content line's name and parameters (quotes respected)."""
    colon = text.find(":")
    quote = text.find('"')
    if colon < 0 or quote < 0 or colon < quote:
        return colon  # no quoted parameter before the first colon: the usual line
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return index
    # An unbalanced quote in a parameter: fall back to the first colon.
    return text.find(":")


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    if '"' not in text:
        return text.split(separator)
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse_property(
    line: int, text: str, file: str, problem: str | None = None
) -> _Property | SourceDataError:
    colon = _find_colon(text)
    if colon < 0:
        return SourceDataError(
            "a line that is not name[;parameters]:value (no colon)", file=file, line=line
        )
    head, value = text[:colon], text[colon + 1 :]
    segments = _split_outside_quotes(head, ";")
    match = _NAME.fullmatch(segments[0])
    if match is None:
        return SourceDataError(
            "a line that is not name[;parameters]:value (no property name before the colon)",
            file=file,
            line=line,
        )
    params: dict[str, list[str]] = {}
    for segment in segments[1:]:
        if not segment.strip():
            continue
        name, eq, raw = segment.partition("=")
        name = name.strip().upper()
        if eq:
            values = [_unquote(v) for v in _split_outside_quotes(raw, ",")]
        else:
            # vCard 2.1 (and careless 3.0): a bare value names its parameter.
            values = [name]
            name = _BARE_PARAMETERS.get(name, "TYPE")
        if name == "TYPE":
            # TYPE="cell,voice" arrives as one quoted value.
            values = [t for v in values for t in v.split(",")]
        params.setdefault(name, []).extend(values)
    return _Property(
        line, match.group(2).upper(), {k: tuple(v) for k, v in params.items()}, value, problem
    )


def _split_cards(
    lines: Sequence[_Content], file: str, problems: list[SourceDataError]
) -> list[_Card]:
    cards: list[_Card] = []
    card: _Card | None = None
    for number, text, charset_problem in lines:
        prop = _parse_property(number, text, file, charset_problem)
        if isinstance(prop, SourceDataError):
            problems.append(prop)
            continue
        is_vcard = prop.value.strip().upper() == "VCARD"
        if prop.name == "BEGIN" and is_vcard:
            if card is not None:
                last = card.properties[-1] if card.properties else None
                if card.nested or (last and last.name == "AGENT" and not last.value.strip()):
                    # A 2.1 AGENT's own card: skipped with the AGENT.
                    card.nested += 1
                    card.lines.append(text)
                    continue
                problems.append(_no_end(card, file))
            card = _Card(number, lines=[text])
            continue
        if prop.name == "END" and is_vcard:
            if card is None:
                problems.append(
                    SourceDataError(
                        "END:VCARD without a BEGIN:VCARD before it",
                        file=file,
                        line=number,
                        field="END",
                    )
                )
            elif card.nested:
                card.nested -= 1
                card.lines.append(text)
            else:
                card.lines.append(text)
                cards.append(card)
                card = None
            continue
        if card is None:
            problems.append(
                SourceDataError(
                    "a property outside BEGIN:VCARD ... END:VCARD",
                    file=file,
                    line=number,
                    field=prop.name,
                )
            )
            continue
        card.lines.append(text)
        if not card.nested:
            card.properties.append(prop)
    if card is not None:
        problems.append(_no_end(card, file))
    return cards


def _no_end(card: _Card, file: str) -> SourceDataError:
    return SourceDataError(
        "a card that starts here has no END:VCARD", file=file, line=card.line, field="BEGIN"
    )


def _safe(text: str) -> str:
    """*text* when it is a short token (a version, a charset), else a placeholder."""
    return repr(text) if _SAFE_TOKEN.fullmatch(text) else "(not shown)"


def _quoted_printable(value: str, charset: str) -> tuple[str, bool]:
    """Decode a quoted-printable value whose bytes are text in *charset*.

    Also says whether an ``=`` was not an escape (not followed by two hex
    digits): it is kept as written.
    """
    try:
        codecs.lookup(charset)
    except LookupError:
        msg = f"quoted-printable text in an unknown charset {_safe(charset)}"
        raise _ValueProblem(msg) from None
    raw = bytearray()
    index = 0
    malformed = False
    try:
        while index < len(value):
            char = value[index]
            if char == "=":
                if _HEX2.fullmatch(value, index + 1, index + 3):
                    raw.append(int(value[index + 1 : index + 3], 16))
                    index += 3
                    continue
                malformed = True
            raw += char.encode(charset)
            index += 1
        return bytes(raw).decode(charset), malformed
    except LookupError:
        # codecs.lookup() also finds bytes-to-bytes codecs such as "base64".
        msg_0 = f"{_safe(charset)} is not a text charset"
        raise _ValueProblem(msg_0) from None
    except UnicodeError:
        msg_0 = f"quoted-printable bytes that are not valid {_safe(charset)} text"
        raise _ValueProblem(msg_0) from None


def _unescape(text: str, version: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if version != "2.1":
                out.append("\n" if following in "nN" else following)
                index += 2
                continue
            if following in ";,\\":
                out.append(following)
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _split_escaped(text: str, separator: str) -> list[str]:
    """Split on *separator* where no backslash escapes it; escapes stay in the pieces."""
    pieces: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    pieces.append("".join(current))
    return pieces


def _component(text: str, version: str) -> str:
    if version == "2.1":
        return _unescape(text, version)
    values = _split_escaped(text, ",")
    if len(values) == 1:
        return _unescape(text, version)
    return " ".join(v for v in (_unescape(v, version) for v in values) if v)


#: The properties a card holds once: a repeat is ignored, with a notice.
_ONCE: Final = frozenset({"UID", "N", _ROLE, _YEAR_GROUP, _REGISTRATION_GROUP})

T = TypeVar("T")


def _append(found: list[T], value: T | None) -> None:
    if value is not None:
        found.append(value)


@define
class _Found:
    """What a card's properties gave so far, and the lines they were on."""

    #: Where the UID and the FN were (the card's first line until they are found).
    uid_line: int
    display_line: int
    uid: str | None = None
    name: tuple[str, str] | None = None
    display: str | None = None
    phones: list[Phone] = attrs.Factory(list)
    emails: list[Email] = attrs.Factory(list)
    relationships: list[Relationship] = attrs.Factory(list)
    singles: dict[str, str] = attrs.Factory(dict)


class _CardReader:
    """Reads one card's properties into ContactData, collecting problems and notices."""

    def __init__(self, card: _Card, file: str, problems: list[SourceDataError]) -> None:
        self.card = card
        self.file = file
        self.problems = problems
        self.notices: list[Notice] = []
        self.version = ""

    def problem(self, message: str, prop: _Property) -> None:
        self.problems.append(
            SourceDataError(message, file=self.file, line=prop.line, field=prop.name)
        )

    def notice(self, code: str, message: str, line: int, field: str) -> None:
        self.notices.append(Notice(code, message, file=self.file, line=line, field=field))

    def raw(self, prop: _Property) -> str | None:
        """The property's text after its transfer encoding; None when skipped or broken."""
        if prop.problem is not None:
            self.problem(prop.problem, prop)
            return None
        encodings = prop.encodings
        if encodings & _BASE64:
            self.notice(
                "binary-value-skipped",
                "a base64 value where text was expected was skipped",
                prop.line,
                prop.name,
            )
            return None
        value = prop.value
        if encodings & _QP:
            charset = prop.param("CHARSET")
            try:
                value, malformed = _quoted_printable(
                    value, charset[0].strip() if charset else "utf-8"
                )
            except _ValueProblem as problem:
                self.problem(str(problem), prop)
                return None
            if malformed:
                self.notice(
                    "quoted-printable",
                    "an '=' not followed by two hex digits in a quoted-printable value "
                    "was kept as written",
                    prop.line,
                    prop.name,
                )
            # =0D=0A is 2.1's line break; the model's is "\n", as 3.0's escape gives.
            value = value.replace("\r\n", "\n")
        if "\r" in value:
            # Kept as written, but said: in a file of LF line ends a CR may be
            # a line end of another convention, and the value may hold more
            # than one property.
            self.notice(
                "carriage-return",
                "a carriage return inside a value was kept as written",
                prop.line,
                prop.name,
            )
        return value

    def text(self, prop: _Property) -> str | None:
        raw = self.raw(prop)
        return None if raw is None else _unescape(raw, self.version)

    def read(self) -> _Read | None:
        if not self.read_version():
            return None
        found = _Found(uid_line=self.card.line, display_line=self.card.line)
        seen: set[str] = set()
        for prop in self.card.properties:
            if prop.name in _ONCE:
                if prop.name in seen:
                    self.notice(
                        "repeated-property",
                        "a property that a card holds once is repeated; the first was kept",
                        prop.line,
                        prop.name,
                    )
                    continue
                seen.add(prop.name)
            self.take(prop, found)
        return _Read(self.card, found.uid, found.uid_line, self.data(found), tuple(self.notices))

    def read_version(self) -> bool:
        """Whether the card says a version this reader knows (a problem when not)."""
        versions = [p for p in self.card.properties if p.name == "VERSION"]
        if not versions:
            self.problems.append(
                SourceDataError(
                    "a card without VERSION", file=self.file, line=self.card.line, field="VERSION"
                )
            )
            return False
        version = versions[0].value.strip()
        if version not in _READ_VERSIONS:
            self.problem(
                f"vCard version {_safe(version)} is not supported (2.1, 3.0 and 4.0 are)",
                versions[0],
            )
            return False
        self.version = version
        return True

    def take(self, prop: _Property, found: _Found) -> None:
        """Read *prop* into *found*, if it is a property the model holds."""
        if prop.name == "UID":
            found.uid = self.uid(prop)
            found.uid_line = prop.line
        elif prop.name == "N":
            found.name = self.name(prop)
        elif prop.name == "FN" and found.display is None:
            found.display = self.text(prop)
            found.display_line = prop.line
        elif prop.name == "TEL":
            _append(found.phones, self.phone(prop))
        elif prop.name == "EMAIL":
            _append(found.emails, self.email(prop))
        elif prop.name in {"RELATED", _CHILD}:
            _append(found.relationships, self.relationship(prop))
        elif prop.name in {_ROLE, _YEAR_GROUP, _REGISTRATION_GROUP}:
            value = self.text(prop)
            if value is not None:
                found.singles[prop.name] = value

    def data(self, found: _Found) -> ContactData:
        family, given = found.name if found.name is not None else ("", "")
        if not family and not given and found.display:
            given = found.display
            self.notice(
                "name-from-fn",
                "no name in N: the whole display name (FN) was kept as the given name",
                found.display_line,
                "FN",
            )
        return ContactData(
            given_name=given,
            family_name=family,
            role=self.role(found.singles.get(_ROLE), self.card.properties),
            phones=found.phones,
            emails=found.emails,
            relationships=found.relationships,
            year_group=found.singles.get(_YEAR_GROUP, ""),
            registration_group=found.singles.get(_REGISTRATION_GROUP, ""),
        )

    def uid(self, prop: _Property) -> str | None:
        raw = self.raw(prop)
        if raw is None:
            return None
        value_type = prop.first("VALUE")
        if self.version == "4.0" and value_type != "text":
            value = raw  # a URI: no text escapes
        else:
            value = _unescape(raw, self.version)
        if value_type != "text" and value[:9].lower() == "urn:uuid:":
            value = value[9:]
        return value or None

    def name(self, prop: _Property) -> tuple[str, str] | None:
        raw = self.raw(prop)
        if raw is None:
            return None
        parts = [*_split_escaped(raw, ";"), "", ""]
        return _component(parts[0], self.version), _component(parts[1], self.version)

    def phone(self, prop: _Property) -> Phone | None:
        raw = self.raw(prop)
        if raw is None:
            return None
        types = prop.types
        if types & _NOT_A_PHONE_TYPES and not types & _SPOKEN_TYPES:
            self.notice(
                "phone-skipped",
                "a fax or pager number was skipped: messages cannot reach it",
                prop.line,
                prop.name,
            )
            return None
        value_type = prop.first("VALUE")
        is_uri = value_type == "uri" or (
            self.version == "4.0" and not value_type and raw[:4].lower() == "tel:"
        )
        if is_uri and self.version != "2.1":
            number = raw[4:] if raw[:4].lower() == "tel:" else raw
        else:
            number = _unescape(raw, self.version)
        return Phone(number, _type_in(types, _PHONE_TYPE_IN, PhoneType.OTHER))

    def email(self, prop: _Property) -> Email | None:
        address = self.text(prop)
        if address is None:
            return None
        return Email(address, _type_in(prop.types, _EMAIL_TYPE_IN, EmailType.OTHER))

    def relationship(self, prop: _Property) -> Relationship | None:
        ours = prop.name == _CHILD or any(p.startswith(_PREFIX) for p in prop.params)
        if not ours:
            self.notice(
                "foreign-related",
                "a RELATED property not written by sourcetruth was ignored",
                prop.line,
                prop.name,
            )
            return None
        if prop.name == "RELATED" and "child" not in prop.types:
            self.problem("a relationship of ours without TYPE=child", prop)
            return None
        if prop.first("VALUE") not in ("", "text"):
            self.problem("a relationship of ours whose value is not text", prop)
            return None
        priority = self.parameter(prop, _PRIORITY)
        responsibility = self.parameter(prop, _RESPONSIBILITY)
        messages = self.parameter(prop, _MESSAGES)
        pupil = self.text(prop)
        if priority is None or responsibility is None or messages is None or pupil is None:
            return None
        bad = [
            name
            for name, value, ok in (
                (_PRIORITY, priority, _INTEGER.fullmatch(priority)),
                (_RESPONSIBILITY, responsibility, responsibility in ("true", "false")),
                (_MESSAGES, messages, messages in ("true", "false")),
            )
            if not ok
        ]
        if bad:
            self.problem(f"a relationship with an invalid {', '.join(bad)} parameter", prop)
            return None
        if not pupil:
            self.problem("a relationship without the pupil's key", prop)
            return None
        return Relationship(
            pupil,
            priority=int(priority),
            parental_responsibility=responsibility == "true",
            receives_messages=messages == "true",
        )

    def parameter(self, prop: _Property, name: str) -> str | None:
        values = prop.param(name)
        if len(values) != 1:
            self.problem(f"a relationship needs exactly one {name} parameter", prop)
            return None
        return values[0].strip().lower()

    def role(self, value: str | None, props: Sequence[_Property]) -> Role:
        if value is None:
            return Role.OTHER
        try:
            return Role(value.strip().lower())
        except ValueError:
            line = next(p.line for p in props if p.name == _ROLE)
            self.notice(
                "unknown-role", "a role sourcetruth does not know; read as other", line, _ROLE
            )
            return Role.OTHER


def _derived_key(card: _Card) -> str:
    text = "\n".join(line.rstrip(" \t") for line in card.lines)
    return "derived-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def parse_vcards(data: bytes | str, *, file: str, allow_cp1252: bool = False) -> AddressBookReading:
    """Every card of a vCard 2.1, 3.0 or 4.0 file, each as a ``Record(key, ContactData)``.

    *file* names the file in errors and notices. Bytes are unfolded before
    they are decoded (see the module docstring). Raises
    :class:`~sourcetruth.RejectedFileError` with every problem of the file
    when there is any: no entry of a rejected file is returned. A file with
    no cards gives no entries and a ``no-cards`` notice.
    """
    problems: list[SourceDataError] = []
    cards = _split_cards(_content_lines(data, file, allow_cp1252), file, problems)
    reads = [r for r in (_CardReader(c, file, problems).read() for c in cards) if r is not None]
    taken = _uids(reads, file, problems)
    if problems:
        msg = f"{file}: {len(problems)} problem(s) in the vCard file; nothing from it was applied"
        raise RejectedFileError(
            msg,
            problems,
            file=file,
        )
    entries: list[Record] = []
    notices: list[Notice] = []
    if not reads:
        notices.append(
            Notice("no-cards", "the file holds no cards: the address book is empty", file=file)
        )
    for read in reads:
        key = read.uid
        extra: tuple[Notice, ...] = ()
        if key is None:
            key, derived = _derive_key(read, taken, file)
            extra = (derived,)
        entries.append(Record(key, read.data))
        notices.extend(attrs.evolve(n, key=key) for n in (*extra, *read.notices))
    return AddressBookReading(entries, notices)


def _uids(reads: Sequence[_Read], file: str, problems: list[SourceDataError]) -> dict[str, int]:
    """Every UID of the file and the line of its card; a problem for a UID used again."""
    taken: dict[str, int] = {}
    for read in reads:
        if read.uid is None:
            continue
        if read.uid in taken:
            problems.append(
                SourceDataError(
                    f"a UID already used by the card at line {taken[read.uid]}",
                    file=file,
                    line=read.uid_line,
                    field="UID",
                )
            )
        else:
            taken[read.uid] = read.card.line
    return taken


def _derive_key(read: _Read, taken: dict[str, int], file: str) -> tuple[str, Notice]:
    """A key for a card without UID, from its content, unique in file order; and the notice."""
    base = key = _derived_key(read.card)
    count = 1
    while key in taken:
        count += 1
        key = f"{base}-{count}"
    taken[key] = read.card.line
    notice = Notice(
        "derived-key",
        "a card without UID: its key was derived from its content, "
        "so it changes when the card does",
        file=file,
        line=read.card.line,
        field="UID",
    )
    return key, notice


# -- writing -----------------------------------------------------------------


def _escape(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def _fold(line: str) -> str:
    """*line* folded so that no physical line is over 75 octets; characters stay whole."""
    if len(line.encode("utf-8")) <= _FOLD_AT:
        return line
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    limit = _FOLD_AT
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append("".join(current))
            current, size, limit = [], 0, _FOLD_AT - 1  # the leading space counts
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces)


def _is_uuid(key: str) -> bool:
    try:
        return str(uuid.UUID(key)) == key
    except ValueError:
        return False


def _uid_line(key: str, version: str) -> str:
    if version == "4.0":
        # UID is a URI in 4.0: a UUID goes as urn:uuid:, any other key as text.
        return f"UID:urn:uuid:{key}" if _is_uuid(key) else f"UID;VALUE=text:{_escape(key)}"
    if key[:9].lower() == "urn:uuid:":
        return f"UID;VALUE=text:{_escape(key)}"  # so that reading keeps the prefix
    return f"UID:{_escape(key)}"


def _card_lines(record: Record, version: str) -> list[str]:
    data = record.data
    lines = ["BEGIN:VCARD", f"VERSION:{version}", _uid_line(record.key, version)]
    display = " ".join(part for part in (data.given_name, data.family_name) if part)
    lines.append(f"FN:{_escape(display)}")
    lines.append(f"N:{_escape(data.family_name)};{_escape(data.given_name)};;;")
    for phone in data.phones:
        value_text = (
            ";VALUE=text" if version == "4.0" and phone.number[:4].lower() == "tel:" else ""
        )
        lines.append(f"TEL;TYPE={_PHONE_TYPE_OUT[phone.type]}{value_text}:{_escape(phone.number)}")
    for email in data.emails:
        kind = _EMAIL_TYPE_OUT[email.type]
        lines.append(f"EMAIL{';TYPE=' + kind if kind else ''}:{_escape(email.address)}")
    for relationship in data.relationships:
        params = (
            f"{_PRIORITY}={relationship.priority};"
            f"{_RESPONSIBILITY}={str(relationship.parental_responsibility).lower()};"
            f"{_MESSAGES}={str(relationship.receives_messages).lower()}"
        )
        head = (
            f"RELATED;TYPE=child;VALUE=text;{params}" if version == "4.0" else f"{_CHILD};{params}"
        )
        lines.append(f"{head}:{_escape(relationship.pupil)}")
    lines.append(f"{_ROLE}:{data.role.value}")
    if data.year_group:
        lines.append(f"{_YEAR_GROUP}:{_escape(data.year_group)}")
    if data.registration_group:
        lines.append(f"{_REGISTRATION_GROUP}:{_escape(data.registration_group)}")
    lines.append("END:VCARD")
    return lines


def _check_version(version: str) -> None:
    if version not in _WRITE_VERSIONS:
        msg = f"vCard {version!r} cannot be written; versions are {', '.join(_WRITE_VERSIONS)}"
        raise UsageError(msg)


def format_vcards(entries: Iterable[Record], *, version: str = "4.0") -> str:
    """*entries* as vCard *version* (``"3.0"`` or ``"4.0"``) text, one card each.

    The output depends only on the records: cards are sorted by key, lines
    end with CRLF and are folded at 75 octets. Keys must be non-empty and
    unique (each becomes a ``UID``), else :class:`~sourcetruth.UsageError`.
    """
    _check_version(version)
    records = sorted(entries, key=lambda record: record.key)
    seen: set[str] = set()
    out: list[str] = []
    for record in records:
        if not isinstance(record, Record):
            msg = f"expected Record entries, got {type(record).__name__}"
            raise UsageError(msg)
        if not record.key:
            msg_0 = "a record with an empty key cannot be written: its key is its UID"
            raise UsageError(msg_0)
        if record.key in seen:
            msg = f"two records with the key {record.key!r}: a vCard file holds each UID once"
            raise UsageError(msg)
        seen.add(record.key)
        if any(not r.pupil for r in record.data.relationships):
            msg = f"record {record.key!r} has a relationship without the pupil's key"
            raise UsageError(msg)
        for line in _card_lines(record, version):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                msg = f"record {record.key!r} holds a lone surrogate, which UTF-8 cannot encode"
                raise UsageError(msg) from None
            out.append(_fold(line) + "\r\n")
    return "".join(out)


# -- the adapter -------------------------------------------------------------


class VCardAdapter:
    """The address book as one vCard file: read every card, write them all back.

    Implements :class:`~sourcetruth.adapters.AddressBookAdapter`. Reading
    accepts 2.1, 3.0 and 4.0; writing uses *version* (3.0 or 4.0) and
    replaces the file atomically, so a reader sees the old file or the new
    one, never half of either.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, version: str = "4.0", allow_cp1252: bool = False
    ) -> None:
        _check_version(version)
        self._path = Path(path)
        self._version = version
        self._allow_cp1252 = allow_cp1252

    def __repr__(self) -> str:
        return f"VCardAdapter({str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

    def read_entries(self) -> AddressBookReading:
        """Every card of the file; see :func:`parse_vcards`."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            msg = f"{self._path}: no such vCard file"
            raise AdapterError(msg) from None
        except OSError as error:
            msg = f"{self._path}: cannot read ({error.strerror})"
            raise AdapterError(msg) from None
        return parse_vcards(data, file=str(self._path), allow_cp1252=self._allow_cp1252)

    def write_entries(self, entries: Iterable[Record]) -> None:
        """Write *entries* as the whole book: a temporary file in the same folder, then a rename.

        A new file is readable by its owner only (it holds personal data); a
        replaced file keeps its permissions.
        """
        payload = format_vcards(entries, version=self._version).encode("utf-8")
        try:
            mode = stat.S_IMODE(self._path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600  # a new file stays private
        except OSError as error:
            msg = f"{self._path}: cannot write ({error.strerror})"
            raise AdapterError(msg) from None
        try:
            write_atomic(self._path, payload, mode=mode)
        except OSError as error:
            msg = f"{self._path}: cannot write ({error.strerror})"
            raise AdapterError(msg) from None
