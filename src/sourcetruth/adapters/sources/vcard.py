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

- Decoding follows the rules of the other readers
  (:mod:`sourcetruth.adapters.sources._encoding`). Bytes with a UTF-16 or
  UTF-32 byte-order mark, and UTF-16 without one (known by its NUL bytes),
  are decoded as a whole first. Any other bytes are split into lines and
  unfolded as bytes, then each unfolded line is decoded, so that a fold may
  split a UTF-8 sequence as RFC 6350 3.2 allows. A UTF-8 byte-order mark is
  dropped; then each line must be strict UTF-8. When one is not (and there
  is no byte-order mark), the file's lines, less the values read in their
  own ``CHARSET``, are judged as :func:`~sourcetruth.adapters.sources._encoding.not_utf8`
  judges a file: read as cp1252 only when allowed, when they do not also
  hold UTF-8 (two exports joined) and when cp1252 gives text a person would
  type; otherwise refused with the same message as the other readers, naming
  the encoding they most likely are.
  Undecodable bytes are an :class:`~sourcetruth.EncodingError` naming the
  line where their property starts, the property (see **Errors**) and the
  byte offset.
- ``CHARSET`` on a raw 8-bit value (not quoted-printable nor base64; vCard
  2.1, and some 3.0 exporters) is honoured: that value's bytes, and only
  they, are read in the charset it names, in any version. Only the text
  charsets vCard producers write are honoured (:data:`_CHARSETS`: UTF-8,
  US-ASCII, ISO-8859-x, Windows-125x, Shift_JIS, EUC-JP, ISO-2022-JP,
  GB2312, GBK, GB18030, Big5, EUC-KR, KOI8-R and KOI8-U), by any alias
  Python knows for them: the name is looked up with :func:`codecs.lookup`
  and the codec's own name decides. Any other name (unknown, or a Python
  codec that is no text charset: UTF-16, utf-7, punycode, unicode_escape,
  base64, a name holding a NUL), or bytes not valid in the charset, is an
  error in the card, but only for a property we use, as with
  quoted-printable. A value of ASCII only (no ESC, which ISO-2022-JP
  shifts with) reads alike in every charset allowed, so its ``CHARSET`` is
  not looked at. Text given as ``str``, and a UTF-16 file, are already
  decoded, so there ``CHARSET`` is ignored.
- Physical lines end with CRLF, LF or CR (RFC 6350 3.2 says CRLF; many
  exporters write LF; old Macs wrote CR). A file that holds any LF ends its
  lines at LF, with any CRs just before it (``CR CR LF``, a CRLF file whose
  line ends were converted once more, is one line end). A CR that is not
  before an LF (a lone CR) is either an old Mac line end or text that a
  program put in a value (Thunderbird writes a CR typed into a field). It
  is read as a line end when what follows it starts a content line (a name,
  maybe parameters, then a colon, before the next line break) or ends the
  file, so ``UID:gov-1<CR>FN:Aoife Moreau`` is two properties; before any
  other text it is text of the value. A value we read that keeps a CR is
  reported (``carriage-return``), and a ``UID`` that keeps one is an error:
  the text after it could be anything, and a key is shown wherever its
  record is; so is a ``VERSION`` that keeps one, named as a CR. A file with
  no LF at all ends its lines at every CR, and so does one with more lone
  CRs than LFs (an old Mac file an LF was added to). A name here is any run
  of visible characters but ``:;"=``, as for the properties skipped below.
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
  their ``CHARSET`` (UTF-8 when none is given); a charset not allowed (as
  above), or bytes that are not valid in it, is an error in that card. Only the properties we
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
- Properties we do not read are skipped, and so is an embedded 2.1
  ``AGENT`` card. Those the standards define (``NOTE``, ``ADR``, ``PHOTO``...)
  are skipped silently. Extension (``X-``) and non-standard properties,
  whatever their name (KDE writes ``X-messaging/xmpp-All``: any run of
  visible characters but ``:;"=`` before the parameters is a name), are
  skipped with one ``property-skipped`` notice per kind for the file, with a
  count and the first line, never the name.
- A line that is not ``name[;params]:value`` (no colon, or no name before
  it) after a property we do not read is most likely that property's value
  broken by a line end not folded: it is skipped, with one ``malformed-line``
  notice for the file per kind of property it followed (the name when it is
  a standard's, else its kind). After a property we read it may be part of
  a value we use, so it is an error.
- ``VERSION`` reads 2.1, 3.0 and 4.0; ``3`` and ``4`` read as 3.0 and 4.0
  with a ``short-version`` notice; a card without ``VERSION`` reads as 2.1
  (as Android reads it) with a ``no-version`` notice.
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
- An empty or blank ``TEL`` or ``EMAIL``, and an empty role, year group or
  registration group, is dropped with an ``empty-value`` notice: clients
  write a line for a field left blank.
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

**Size**: a property we read whose value, as written (before it is
decoded or unescaped), is longer than ``max_field`` characters
(:data:`~sourcetruth.adapters.sources.text.DEFAULT_MAX_FIELD` unless told,
as for the other readers) is an error; so are parameters longer than that,
on any property (none has such parameters, photos included), checked
before they are split. Values we do not read (a photo, a note) are never
decoded, so they may be long. A card holding more than ``max_per_card``
properties of one name that we read (:data:`DEFAULT_MAX_PER_CARD`, 100,
unless told: a hundred phone numbers, email addresses, relationships...)
is an error naming the first one over, and the rest of that name are not
kept. Reading costs memory linear in the file, with a small factor,
whatever its lines look like: millions of quoted-printable soft line
breaks are joined many at a time, not one by one; cards are read one at a
time, each as its ``END`` arrives; a property we do not read is dropped as
soon as its line is parsed, so millions of notes or ``X-`` properties cost
nothing held.

**Errors**: a card without ``END``, an ``END`` without ``BEGIN``, a line that
is not ``name[;params]:value`` (but after a property we do not read), an
unsupported ``VERSION`` or one holding a CR,
undecodable bytes, an unknown or disallowed charset, a value that cannot be
read in its ``CHARSET``, a value or parameters over the size limit, more
properties of one name in a card than the limit, a ``UID``
holding a CR, a ``UID`` repeated in the file and a malformed relationship
of ours are each a :class:`~sourcetruth.SourceDataError` naming file, line
(the physical line where the card or property starts, folds counted) and
field (the property name, when it is one of the standards' or ours: any
other name is text of the file too), never a value, a version or a charset
read from the file. Undecodable bytes stop the read at once; every other
problem of the file is collected and raised together as one
:class:`~sourcetruth.RejectedFileError`: a file with any error gives no
entries at all.

**Writing** is deterministic: records sorted by key, properties in a fixed
order, CRLF line ends, lines folded at 75 octets without splitting a UTF-8
sequence, and ``\\``, ``,``, ``;`` and line breaks escaped. A CR or CRLF in a
value is written as a line break (vCard has no escape for CR), so it reads
back as ``\\n``.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import os
import re
import stat
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final, Protocol, TypeVar

import attrs
from attrs import define, frozen

from sourcetruth.adapters._files import write_atomic
from sourcetruth.adapters._util import one_phone_per_number
from sourcetruth.adapters.sources._encoding import BOMS, first_error, not_utf8, wide
from sourcetruth.adapters.sources._vcard_format import (
    CHILD as _CHILD,
)
from sourcetruth.adapters.sources._vcard_format import (
    MESSAGES as _MESSAGES,
)
from sourcetruth.adapters.sources._vcard_format import (
    PREFIX as _PREFIX,
)
from sourcetruth.adapters.sources._vcard_format import (
    PRIORITY as _PRIORITY,
)
from sourcetruth.adapters.sources._vcard_format import (
    REGISTRATION_GROUP as _REGISTRATION_GROUP,
)
from sourcetruth.adapters.sources._vcard_format import (
    RESPONSIBILITY as _RESPONSIBILITY,
)
from sourcetruth.adapters.sources._vcard_format import (
    ROLE as _ROLE,
)
from sourcetruth.adapters.sources._vcard_format import (
    YEAR_GROUP as _YEAR_GROUP,
)
from sourcetruth.adapters.sources._vcard_writer import check_version, format_vcards
from sourcetruth.adapters.sources.base import AddressBookReading, Notice
from sourcetruth.adapters.sources.text import DEFAULT_MAX_FIELD, decode
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

__all__ = ["DEFAULT_MAX_PER_CARD", "VCardAdapter", "format_vcards", "parse_vcards"]

#: The versions read (those written are the writer's).
_READ_VERSIONS: Final = frozenset({"2.1", "3.0", "4.0"})
#: Versions written without their minor number, read as the version they mean.
_SHORT_VERSIONS: Final = {"3": "3.0", "4": "4.0"}


# A property name, optionally after a group. RFC 6350 allows letters, digits
# and '-'; '_' is tolerated because some exporters write it.
_NAME: Final = re.compile(r"(?:([A-Za-z0-9_-]+)\.)?([A-Za-z0-9_-]+)")
#: What clients write as a property name beyond that (KDE's ``X-messaging/xmpp-All``):
#: any run of visible characters but the separators. Such a property is not one we read.
_ODD_NAME: Final = re.compile(r'[^\x00-\x20\x7f:;"=]+')
_INTEGER: Final = re.compile(r"-?[0-9]+")

#: The property names of RFC 6350, RFC 2426 and vCard 2.1: shown as the field of
#: an error or notice. Any other name (X- or unknown, ours aside) is not shown.
_KNOWN_PROPERTIES: Final = frozenset(
    {
        *("BEGIN", "END", "VERSION", "SOURCE", "KIND", "XML", "FN", "N", "NICKNAME", "PHOTO"),
        *("BDAY", "ANNIVERSARY", "GENDER", "ADR", "LABEL", "TEL", "EMAIL", "IMPP", "LANG"),
        *("TZ", "GEO", "TITLE", "ROLE", "LOGO", "ORG", "MEMBER", "RELATED", "CATEGORIES"),
        *("NOTE", "PRODID", "REV", "SOUND", "UID", "CLIENTPIDMAP", "URL", "KEY", "FBURL"),
        *("CALADRURI", "CALURI", "NAME", "PROFILE", "MAILER", "AGENT", "SORT-STRING", "CLASS"),
        # RFC 6474, RFC 6715, RFC 8605 and RFC 9554.
        *("BIRTHPLACE", "DEATHPLACE", "DEATHDATE", "EXPERTISE", "HOBBY", "INTEREST"),
        *("ORG-DIRECTORY", "CONTACT-URI", "CREATED", "GRAMGENDER", "LANGUAGE", "PRONOUNS"),
        *("SOCIALPROFILE", "JSPROP"),
    }
)

#: The charsets a CHARSET parameter may name: those vCard producers write, by the
#: normalised name of Python's codec for them (``codecs.lookup(name).name``), so
#: that every alias of one is accepted and no other codec is (punycode, utf-7 or
#: unicode_escape decode bytes too, but they are not charsets text is written in).
_CHARSETS: Final = frozenset(
    {
        "utf-8",
        "ascii",
        *(f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{n}" for n in range(1250, 1259)),  # Windows-1250 to 1258
        "shift_jis",
        "euc_jp",
        "iso2022_jp",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "euc_kr",
        "koi8-r",
        "koi8-u",
    }
)
#: What a charset's name may be made of; any other is not even looked up.
_CHARSET_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}")

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


# -- reading -----------------------------------------------------------------


E = TypeVar("E", PhoneType, EmailType)


def _type_in(types: frozenset[str], table: Sequence[tuple[frozenset[str], E]], other: E) -> E:
    """The type of the first row of *table* that *types* name; *other* when none does."""
    return next((kind for words, kind in table if types & words), other)


@frozen
class _Property:
    """One content line: ``[group.]name[;params]:value``, with its first line number.

    The value stays inside the line until it is used: most values never are,
    and a photo may be most of the file.
    """

    line: int
    name: str
    params: dict[str, tuple[str, ...]]
    #: The whole content line, and the index where its value starts.
    text: str = attrs.field(repr=False)
    start: int
    #: Why the value's bytes could not be read in its CHARSET; reported only
    #: when the property is used, like a broken quoted-printable value.
    problem: str | None = None

    @property
    def value(self) -> str:
        return self.text[self.start :]

    @property
    def value_size(self) -> int:
        return len(self.text) - self.start

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
    """A card while its lines arrive: the properties the reader uses, and a digest of
    every line (for a key when it has no UID), never the lines themselves."""

    line: int
    digest: hashlib._Hash = attrs.field(factory=hashlib.sha256, repr=False)
    hashed: bool = False
    properties: list[_Property] = attrs.Factory(list)
    #: How many properties of each name the reader uses the card held so far.
    counts: dict[str, int] = attrs.Factory(dict)
    nested: int = 0
    #: Whether the last property was a 2.1 AGENT without a value: its card follows.
    after_agent: bool = False
    #: The name of the card's last property (None until one is read).
    last: str | None = None

    def hash(self, text: str) -> None:
        """Add a line to the digest: the lines joined by LF, each less trailing blanks."""
        if self.hashed:
            self.digest.update(b"\n")
        self.hashed = True
        self.digest.update(text.rstrip(" \t").encode("utf-8", "surrogatepass"))


@frozen
class _Read:
    """A card read into data, before keys are settled across the file."""

    line: int
    uid: str | None
    uid_line: int
    #: ``derived-`` and the card's digest, when it has no UID.
    derived: str | None
    data: ContactData
    notices: tuple[Notice, ...]


class _ValueProblem(Exception):
    """A property's value cannot be read; becomes a SourceDataError for its card."""


def _field(name: str) -> str | None:
    """*name* when it is a property name of the standards (or ours), to show as the field.

    Any other name is text of the file like a value, so it is not shown.
    """
    return name if name in _KNOWN_PROPERTIES or name.startswith(_PREFIX) else None


# The name at the start of a content line, to say which property bad bytes are in.
_HEAD: Final = re.compile(rb"(?:[A-Za-z0-9_-]+\.)?([A-Za-z0-9_-]+)[;:]")


def _undecodable(file: str, line: int, head: bytes, reason: str, offset: int) -> RejectedFileError:
    """The error for bytes that are not text: where they are, and which property, never them."""
    located = EncodingError(f"line {line}: {reason}", offset=offset, file=file)
    located.line = line
    name = _HEAD.match(head)
    if name:
        located.field = _field(name.group(1).decode("ascii").upper())
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
        raise _undecodable(file, line, data[start : start + 200], reason, error.offset) from None


# -- physical and content lines ----------------------------------------------
#
# Bytes become physical lines, physical lines become content lines (unfolded,
# still bytes, so that a fold may split a UTF-8 sequence), content lines become
# text. Each step walks the input once and copies it a bounded number of times,
# so that memory stays linear in the file whatever its lines look like:
# millions of soft line breaks, or one line of the whole file.

_LF_END: Final = re.compile(rb"\r*\n|\r+")
#: What starts a content line: a name (maybe grouped), maybe parameters, then a
#: colon, before the next line break. A lone CR ends a line only before this.
_LINE_START: Final = re.compile(rb'[^\x00-\x20\x7f:;"=]+(?:;[^\r\n:]*)?:')
_BLANK: Final = re.compile(rb"[ \t]*")
_BASE64_LINE: Final = re.compile(rb"[A-Za-z0-9+/]+=*")
#: The first line end from some point that is not a quoted-printable soft line
#: break (``=LF``, ``=CRLF``, ``=CR CR LF``), or a CR that is not in one: where
#: a run of lines that each end in "=" stops (in a file with LFs, and in one of
#: CRs only). Fixed-width look-arounds only, so that a run of CRs costs linear time.
_HARD_END_LF: Final = re.compile(rb"\r(?!\r?\n)|(?<!=)(?<!=\r)\r|(?<!=)(?<!=\r)(?<!=\r\r)\n")
_HARD_END_CR: Final = re.compile(rb"(?<!=)\r")
#: A run of soft-broken lines is joined this many bytes at a time.
_CHUNK: Final = 1 << 20


def _line_end(data: bytes, pos: int, lf: bool) -> tuple[int, int]:
    """Where the physical line at *pos* ends, and where the next one starts.

    In a file with LFs a line ends at ``CR* LF``, or at CRs without an LF
    when a content line starts after them (or the file ends); any other CR
    is text. In a file without LF each CR ends a line.
    """
    size = len(data)
    if not lf:
        end = data.find(b"\r", pos)
        return (end, end + 1) if end >= 0 else (size, size + 1)
    while (found := _LF_END.search(data, pos)) is not None:
        after = found.end()
        if data[after - 1] == 0x0A or after == size or _LINE_START.match(data, after):
            return found.start(), after
        pos = after  # CRs inside a line: text
    return size, size + 1


def _soft_run_end(data: bytes, pos: int, lf: bool) -> int:
    """Where the physical lines from *pos* that each end in a soft line break
    (``=LF``, ``=CRLF``, ``=CR CR LF``, or ``=CR`` in a file of CRs) stop; *pos*
    when none does."""
    hard = (_HARD_END_LF if lf else _HARD_END_CR).search(data, pos)
    stop = len(data) if hard is None else hard.start()
    last = data.rfind(b"\n" if lf else b"\r", pos, stop)
    return last + 1 if last >= 0 else pos


class _Pieces(Protocol):
    """What :func:`_unfold` says of each content line: where it starts, and its pieces."""

    def begin(self, line: int, offset: int) -> None: ...

    def piece(self, start: int, end: int) -> None: ...

    def unsoft(self) -> None:
        """Drop the ``=`` the content so far ends with: a soft line break."""

    def soft_broken(self, start: int, end: int, newline: bytes) -> None:
        """Add lines that each end in ``=`` and *newline*, as :meth:`unsoft` then
        :meth:`piece` one by one would (only when :func:`_unfold` joins runs)."""

    def end(self) -> None: ...


def _declares(data: bytes, start: int, end: int, max_head: int) -> tuple[bool, bool]:
    """Whether the content line ``data[start:end]`` says its value is quoted-printable,
    base64 (nothing when its parameters are over *max_head*: it is refused anyway)."""
    head = _head_of(data, start, end, max_head)
    encodings = _encodings(head) if len(head) <= max_head else set()
    return bool(encodings & _QP), bool(encodings & _BASE64)


def _unfold(data: bytes, start: int, sink: _Pieces, max_head: int, *, runs: bool = True) -> None:
    """Split ``data[start:]`` into physical lines and join them into content lines
    (the module docstring says how), telling *sink* each one and its pieces.

    With *runs*, lines that each end a quoted-printable soft line break are
    joined many at a time (:meth:`_Pieces.soft_broken`), not one by one. The
    parameters of a line longer than *max_head* are not read.
    """
    lf = data.find(b"\n", start) >= 0
    newline = b"\n" if lf else b"\r"
    pos, number, size = start, 0, len(data)
    is_open = quoted_printable = base64 = soft = False
    while pos <= size:
        stop, after = _line_end(data, pos, lf)
        number += 1
        if soft:
            sink.unsoft()
            sink.piece(pos, stop)
        elif is_open and data[pos : pos + 1] in (b" ", b"\t"):
            sink.piece(pos + 1, stop)
        elif _BLANK.fullmatch(data, pos, stop):
            if is_open:
                sink.end()
            is_open = False
            pos = after
            continue
        elif is_open and base64 and _BASE64_LINE.fullmatch(data, pos, stop):
            sink.piece(pos, stop)
        else:
            if is_open:
                sink.end()
            sink.begin(number, pos)
            sink.piece(pos, stop)
            is_open = True
            quoted_printable, base64 = _declares(data, pos, stop, max_head)
        soft = quoted_printable and stop > pos and data[stop - 1] == ord("=")
        if soft and runs:
            run = _soft_run_end(data, after, lf)
            if run > after:
                sink.soft_broken(after, run, newline)
                number += data.count(newline, after, run)
                after = run
        pos = after
    if is_open:
        sink.end()


#: What a content line is handed on as: its bytes, joined from its pieces.
_Take = Callable[[int, int, bytes | bytearray], None]


class _Assembler:
    """Joins each content line's pieces into bytes and hands them to *take*
    with the line and input offset it starts at."""

    def __init__(self, data: bytes, take: _Take) -> None:
        self.data = data
        self.view = memoryview(data)
        self.take = take
        self.line = self.offset = 0
        self.span: tuple[int, int] | None = None  # while the line is one piece
        self.joined: bytearray | None = None  # once it is more

    def begin(self, line: int, offset: int) -> None:
        self.line, self.offset = line, offset
        self.span = self.joined = None

    def _joined(self) -> bytearray:
        if self.joined is None:
            start, end = self.span or (0, 0)
            self.joined = bytearray(self.view[start:end])
            self.span = None
        return self.joined

    def piece(self, start: int, end: int) -> None:
        if self.joined is None and self.span is None:
            self.span = (start, end)
        else:
            self._joined().extend(self.view[start:end])

    def unsoft(self) -> None:
        if self.joined is not None:
            del self.joined[-1:]
        elif self.span is not None:
            self.span = (self.span[0], max(self.span[0], self.span[1] - 1))

    def soft_broken(self, start: int, end: int, newline: bytes) -> None:
        self.unsoft()
        joined = self._joined()
        while start < end:
            stop = min(end, start + _CHUNK)
            if stop < end:  # a whole number of lines
                cut = self.data.rfind(newline, start, stop)
                stop = cut + 1 if cut >= 0 else self.data.find(newline, stop, end) + 1
            chunk = self.data[start:stop]
            if newline == b"\n":
                chunk = chunk.replace(b"\r", b"")  # every CR of a run is in its line ends
            joined += chunk.replace(b"=" + newline, b"")
            start = stop
        joined += b"="  # the last line's, for the next unsoft()

    def end(self) -> None:
        if self.joined is not None:
            content: bytes | bytearray = self.joined
        else:
            start, end = self.span or (0, 0)
            content = self.data[start:end]
        self.span = self.joined = None
        self.take(self.line, self.offset, content)


class _Located(Exception):
    """:class:`_Locator` found the input offset it looks for."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _Locator:
    """Finds the input offset of byte *index* of the content line starting on *line*."""

    def __init__(self, line: int, index: int) -> None:
        self.target, self.index = line, index
        self.active = False
        self.size = 0
        self.last: tuple[int, int] | None = None  # the last piece: where in the line, in input

    def begin(self, line: int, offset: int) -> None:
        self.active, self.size, self.last = line == self.target, 0, None

    def _settle(self) -> None:
        """Raise _Located when the index is in the last piece, now that its size is final."""
        if self.last is not None and self.last[0] <= self.index < self.size:
            raise _Located(self.last[1] + self.index - self.last[0])

    def piece(self, start: int, end: int) -> None:
        if self.active:
            self._settle()
            self.last = (self.size, start)
            self.size += end - start

    def unsoft(self) -> None:
        if self.active:
            self.size -= 1

    def soft_broken(self, start: int, end: int, newline: bytes) -> None:
        msg = "the locator reads line by line: unfold it with runs=False"
        raise NotImplementedError(msg)

    def end(self) -> None:
        if self.active:
            self._settle()


def _locate(data: bytes, start: int, max_head: int, line: int, index: int) -> int:
    """The input offset of byte *index* of the content line that starts on *line*."""
    try:
        _unfold(data, start, _Locator(line, index), max_head, runs=False)
    except _Located as found:
        return found.offset
    return start


_QP: Final = frozenset({"QUOTED-PRINTABLE"})
_BASE64: Final = frozenset({"B", "BASE64"})

# A content line ready to parse: its first line, its text, and a CHARSET problem.
_Content = tuple[int, str, str | None]

#: Bytes that make a value read otherwise in its CHARSET than as ASCII: 8-bit
#: bytes, and ESC, which switches ISO-2022-JP to other letters.
_NOT_ASCII: Final = re.compile(rb"[\x80-\xff\x1b]")


class _Undecodable(Exception):
    """A content line holds bytes that are not text: its first line, where, its start."""

    def __init__(self, line: int, index: int, head: bytes) -> None:
        super().__init__(line, index)
        self.line, self.index, self.head = line, index, head


def _head_of(data: bytes | bytearray, start: int, end: int, limit: int) -> str:
    """The name and parameters of the content line ``data[start:end]`` (all of it
    without a colon), read as Latin-1, one character a byte; when longer than
    *limit*, maybe another text longer than it (see :func:`_find_colon`)."""
    colon = data.find(b":", start, end)
    if colon >= 0 and data.find(b'"', start, colon) < 0:
        return data[start:colon].decode("latin-1")
    line = str(memoryview(data)[start:end], "latin-1")
    colon = _find_colon(line, limit)
    return line if colon < 0 else line[:colon]


def _encodings(head: str) -> set[str]:
    """The encodings a content line's name and parameters name, bare (2.1) or not."""
    found: set[str] = set()
    if ";" not in head:
        return found
    for segment in _split_outside_quotes(head, ";")[1:]:
        name, eq, value = segment.partition("=")
        if eq and name.strip().upper() != "ENCODING":
            continue
        found.update(v.strip().strip('"').upper() for v in (value if eq else name).split(","))
    return found


def _charset_param(head: str) -> str | None:
    """The CHARSET parameter in a content line's name and parameters, if any."""
    for segment in _split_outside_quotes(head, ";")[1:]:
        name, eq, value = segment.partition("=")
        if eq and name.strip().upper() == "CHARSET":
            return _unquote(value.split(",")[0]) or None
    return None


def _codec(charset: str) -> str:
    """Python's codec for a CHARSET parameter; _ValueProblem unless it is a charset
    of :data:`_CHARSETS`. The charset's name is never shown."""
    name = None
    if _CHARSET_NAME.fullmatch(charset):
        try:
            name = codecs.lookup(charset).name
        except (LookupError, ValueError):
            name = None
    if name is None:
        msg = "a CHARSET parameter that names an unknown charset"
        raise _ValueProblem(msg)
    if name not in _CHARSETS:
        msg = "a CHARSET parameter that names no text charset vCards are written in"
        raise _ValueProblem(msg)
    return name


def _own_charset(raw: bytes | bytearray, max_head: int) -> tuple[int, str] | None:
    """Where a raw 8-bit value that names its CHARSET starts, and that charset;
    None for any other content line (ASCII reads alike in every charset allowed),
    and for one whose parameters are over *max_head* (it is refused anyway)."""
    if _NOT_ASCII.search(raw) is None:
        return None
    head = _head_of(raw, 0, len(raw), max_head)
    start = len(head) + 1
    if start > len(raw) or len(head) > max_head or _NOT_ASCII.search(raw, start) is None:
        return None
    charset = _charset_param(head)
    if charset is None or _encodings(head) & (_QP | _BASE64):
        return None
    return start, charset


def _in_charset(raw: bytes | bytearray, charset: str) -> tuple[str, str | None]:
    """A raw value read in *charset*, and why it could not be (then it is never shown)."""
    try:
        return raw.decode(_codec(charset)), None
    except _ValueProblem as problem:
        reason = str(problem)
    except UnicodeDecodeError:
        reason = "bytes that are not valid text in the charset its CHARSET parameter names"
    # The card is rejected if it uses this property.
    return raw.decode("utf-8", "replace"), reason


def _decoded(
    line: int, raw: bytes | bytearray, encoding: str, errors: str, max_head: int | None
) -> _Content:
    """A content line's bytes as text in *encoding*; with *max_head* (bytes not yet
    text), a raw value that names its CHARSET is read in that."""
    split = None if max_head is None else _own_charset(raw, max_head)
    end = len(raw) if split is None else split[0]
    try:
        head = (raw if split is None else raw[:end]).decode(encoding, errors)
    except UnicodeDecodeError as error:
        raise _Undecodable(line, error.start, bytes(raw[:200])) from None
    if split is None:
        return line, head, None
    value, problem = _in_charset(raw[end:], split[1])
    return line, head + value, problem


class _Lines(Protocol):
    """What takes each content line as text, as it is read (none is held)."""

    def content(self, line: int, text: str, problem: str | None) -> None: ...


L = TypeVar("L", bound=_Lines)


def _decode_lines(
    data: bytes,
    start: int,
    encoding: str,
    errors: str,
    max_head: int,
    sink: L,
    *,
    charsets: bool,
) -> L:
    """Hand *sink* every content line of ``data[start:]`` as text (see :func:`_decoded`);
    :class:`_Undecodable` for the first that cannot be."""
    own = max_head if charsets else None

    def take(line: int, offset: int, raw: bytes | bytearray) -> None:
        sink.content(*_decoded(line, raw, encoding, errors, own))

    _unfold(data, start, _Assembler(data, take), max_head)
    return sink


def _judged(data: bytes, start: int, max_head: int) -> tuple[bytes, array[int]]:
    """The content lines of ``data[start:]``, each ending in LF, less the values that
    name their own CHARSET: the bytes whose encoding is the file's, to judge it by
    (a value read in its own charset neither mixes encodings nor looks mistyped);
    and the first line of each."""
    kept = bytearray()
    lines = array("q")

    def take(line: int, offset: int, raw: bytes | bytearray) -> None:
        split = _own_charset(raw, max_head)
        kept.extend(raw if split is None else raw[: split[0]])
        kept.extend(b"\n")
        lines.append(line)

    _unfold(data, start, _Assembler(data, take), max_head)
    return bytes(kept), lines


def _judge_cp1252(data: bytes, start: int, max_head: int, file: str, allow_cp1252: bool) -> None:
    """Return when the content lines of ``data[start:]``, not all UTF-8, are cp1252 to
    read by the rules of :func:`~sourcetruth.adapters.sources._encoding.not_utf8`; else
    raise its error, at the line and byte it names."""
    judged, lines = _judged(data, start, max_head)
    try:
        offset = first_error(judged, 0, "utf-8") or 0
        not_utf8(judged, offset, file=file, allow_cp1252=allow_cp1252)
    except EncodingError as error:
        reason = str(error).split(" at byte ", 1)[0]
        index = judged.count(b"\n", 0, error.offset)
        begin = judged.rfind(b"\n", 0, error.offset) + 1
        line = lines[index]
        at = _locate(data, start, max_head, line, error.offset - begin)
        raise _undecodable(file, line, judged[begin : begin + 200], reason, at) from None


def _content_lines(
    data: bytes | str, file: str, allow_cp1252: bool, max_head: int, new_sink: Callable[[], L]
) -> L:
    """Hand the unfolded content lines of *data*, as text, one by one to a sink
    from *new_sink* (a new one when the file is read again in another encoding).

    Bytes with a UTF-16 or UTF-32 byte-order mark, or UTF-16 without one,
    are decoded as a whole (:func:`~sourcetruth.adapters.sources._encoding.settle`).
    Any other bytes are unfolded before they are decoded, so a fold may split
    a UTF-8 sequence (RFC 6350 3.2); each unfolded line must then be UTF-8,
    except a raw value that names its own CHARSET (module docstring). When
    one is not, the file's other lines are judged by the rules of
    :func:`~sourcetruth.adapters.sources._encoding.not_utf8`: read as cp1252
    when allowed and plausible, else refused with the likely encoding.
    """
    if isinstance(data, str) or _whole(data):
        # Already text, so CHARSET says nothing more; unfolded as UTF-8, which
        # keeps the lone surrogates text given as str may hold.
        text = _text(data, file, allow_cp1252).encode("utf-8", "surrogatepass")
        return _decode_lines(
            _lone_cr_ends(text), 0, "utf-8", "surrogatepass", max_head, new_sink(), charsets=False
        )
    data = _lone_cr_ends(data)
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return _decode_lines(data, skip, "utf-8", "strict", max_head, new_sink(), charsets=True)
    except _Undecodable as undecodable:
        failed = undecodable
    reason = "not valid utf-8 after its byte-order mark"
    if not skip:
        _judge_cp1252(data, skip, max_head, file, allow_cp1252)
        try:
            return _decode_lines(
                data, skip, "cp1252", "strict", max_head, new_sink(), charsets=True
            )
        except _Undecodable as undecodable:  # not expected: its lines were judged cp1252
            failed = undecodable
        reason = "neither UTF-8 nor cp1252"
    offset = _locate(data, skip, max_head, failed.line, failed.index)
    raise _undecodable(file, failed.line, failed.head, reason, offset)


def _whole(data: bytes) -> bool:
    """Whether *data* is decoded as a whole: a byte-order mark other than UTF-8's, or
    UTF-16 (or UTF-32, to be refused) without one."""
    if any(data.startswith(bom) for bom, _ in BOMS):
        return not data.startswith(codecs.BOM_UTF8)
    return wide(data) is not None


#: A run of CRs with no LF after it: a lone CR line end, in a file that has some LFs.
#: Matched from the run's start only, so that a long run costs linear time.
_LONE_CRS: Final = re.compile(rb"(?<!\r)\r++(?!\n)")


def _lone_cr_ends(data: bytes) -> bytes:
    """*data*, with each lone CR an LF when the file ends more lines with a lone CR than
    with an LF (an old Mac file an LF or two was added to); else as it is.

    The same length, so byte offsets stay those of the file.
    """
    lfs = data.count(b"\n")
    # CR CR LF is one line end (a CRLF file converted once more), not a lone CR.
    lone = data.count(b"\r") - data.count(b"\r\n") - data.count(b"\r\r\n")
    if not lfs or lone <= lfs:
        return data
    return _LONE_CRS.sub(lambda run: b"\n" * len(run.group()), data)


def _find_colon(text: str, limit: int) -> int:
    """The colon that ends a content line's name and parameters, outside quotes;
    the first colon when there is none outside them or a quote is left open.

    Past *limit* characters it stops looking and gives a colon past them: a
    line with parameters that long is refused whichever colon ends them.
    """
    colon = text.find(":")
    quote = text.find('"')
    while colon >= 0 and 0 <= quote < colon:
        if quote > limit:
            return colon
        close = text.find('"', quote + 1)
        if close < 0:
            return text.find(":")
        if colon < close:
            colon = text.find(":", close + 1)
        quote = text.find('"', close + 1)
    return colon if colon >= 0 else text.find(":")


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """*text* split at each *separator* outside double quotes (kept in the pieces); an
    unclosed quote runs to the end."""
    if '"' not in text:
        return text.split(separator)
    pieces: list[str] = []
    start = 0
    cut = text.find(separator)
    quote = text.find('"')
    while cut >= 0:
        if 0 <= quote < cut:
            close = text.find('"', quote + 1)
            if close < 0:
                break
            if cut < close:
                cut = text.find(separator, close + 1)
            quote = text.find('"', close + 1)
            continue
        pieces.append(text[start:cut])
        start = cut + 1
        cut = text.find(separator, start)
    pieces.append(text[start:])
    return pieces


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


#: Stands for a property name no standard allows (:data:`_ODD_NAME`), never shown; an
#: extension's keeps its ``X-`` after it.
_ODD: Final = "\x00"


def _kind(name: str) -> str:
    """What a property is called in a notice: its name when a standard's, else its kind."""
    if name in _KNOWN_PROPERTIES:
        return name
    return "extension" if name.removeprefix(_ODD).startswith("X-") else "unknown"


def _parse_head(
    line: int, text: str, file: str, max_head: int
) -> tuple[str, int] | SourceDataError | str:
    """The name of the content line *text*, upper case, and where its colon is; why
    it is not ``name[;params]:value`` (a string: a notice or an error, by where it is);
    or the error of parameters too long."""
    colon = _find_colon(text, max_head)
    if colon < 0:
        return "a line that is not name[;parameters]:value (no colon)"
    if colon > max_head:
        # Before they are split: no property has parameters this long, photos included.
        named = _NAME.match(text)
        return SourceDataError(
            f"parameters longer than {max_head} characters",
            file=file,
            line=line,
            field=_field(named.group(2).upper()) if named else None,
        )
    # A name holds no quote, so the first ";" ends it whatever quotes follow.
    semicolon = text.find(";", 0, colon)
    end = semicolon if semicolon >= 0 else colon
    match = _NAME.fullmatch(text, 0, end)
    if match is not None:
        return match.group(2).upper(), colon
    if _ODD_NAME.fullmatch(text, 0, end):
        return _ODD + text[:end].rpartition(".")[2][:2].upper(), colon
    return "a line that is not name[;parameters]:value (no property name before the colon)"


def _parse_property(line: int, name: str, text: str, colon: int, problem: str | None) -> _Property:
    """The property of the content line *text*, whose name and colon :func:`_parse_head` found."""
    params: dict[str, list[str]] = {}
    for segment in _split_outside_quotes(text[:colon], ";")[1:]:
        if not segment.strip():
            continue
        param, eq, raw = segment.partition("=")
        param = param.strip().upper()
        if eq:
            values = [_unquote(v) for v in _split_outside_quotes(raw, ",")]
        else:
            # vCard 2.1 (and careless 3.0): a bare value names its parameter.
            values = [param]
            param = _BARE_PARAMETERS.get(param, "TYPE")
        if param == "TYPE":
            # TYPE="cell,voice" arrives as one quoted value.
            values = [t for v in values for t in v.split(",")]
        params.setdefault(param, []).extend(values)
    return _Property(line, name, {k: tuple(v) for k, v in params.items()}, text, colon + 1, problem)


def _value_is(text: str, start: int, word: str) -> bool:
    """Whether ``text[start:]`` is *word*, case-blind, blanks around it aside (never a
    long one)."""
    return len(text) - start <= len(word) + 32 and text[start:].strip().upper() == word


#: The properties the reader uses. Any other is dropped once its line is parsed:
#: a card may hold millions of notes, and holding them would cost many times the file.
_USED: Final = frozenset(
    {"VERSION", "UID", "N", "FN", "TEL", "EMAIL", "RELATED", _CHILD}
    | {_ROLE, _YEAR_GROUP, _REGISTRATION_GROUP}
)
#: The most properties of one name the reader uses (TEL, EMAIL, RELATED...) a card may
#: hold: far more than any person has, few enough that a card is never large in memory.
DEFAULT_MAX_PER_CARD: Final = 100


class _Book:
    """The cards of a file, built as its content lines arrive (:class:`_Lines`): each
    card is read into data at its ``END``, and only that data is kept."""

    def __init__(self, file: str, max_field: int, max_per_card: int) -> None:
        self.file = file
        self.max_field = max_field
        self.max_per_card = max_per_card
        #: Problems in the order they are reported: those of lines and cards in
        #: line order, then those found reading cards, then repeated UIDs.
        self.line_problems: list[SourceDataError] = []
        self.card_problems: list[SourceDataError] = []
        self.uid_problems: list[SourceDataError] = []
        self.reads: list[_Read] = []
        #: Every UID read so far and the line of its card.
        self.taken: dict[str, int] = {}
        self.card: _Card | None = None
        #: By kind (:func:`_kind`): how many properties were skipped, and the first line.
        self.skipped: dict[str, list[int]] = {}
        #: By the kind of property they follow: how many lines that are not
        #: ``name:value`` were skipped, and the first line.
        self.malformed: dict[str, list[int]] = {}

    @property
    def problems(self) -> list[SourceDataError]:
        return [*self.line_problems, *self.card_problems, *self.uid_problems]

    def content(self, line: int, text: str, problem: str | None) -> None:
        head = _parse_head(line, text, self.file, self.max_field)
        if isinstance(head, SourceDataError):
            self.line_problems.append(head)
            return
        if isinstance(head, str):
            self.not_a_property(line, text, head)
            return
        name, colon = head
        if name in ("BEGIN", "END") and _value_is(text, colon + 1, "VCARD"):
            (self.begin if name == "BEGIN" else self.end)(line, text)
            return
        card = self.card
        if card is None:
            self.line_problems.append(
                SourceDataError(
                    "a property outside BEGIN:VCARD ... END:VCARD",
                    file=self.file,
                    line=line,
                    field=_field(name),
                )
            )
            return
        card.hash(text)
        if card.nested:
            return
        card.after_agent = name == "AGENT" and _value_is(text, colon + 1, "")
        card.last = name
        if name not in _USED:
            if name not in _KNOWN_PROPERTIES:
                _count(self.skipped, _kind(name), line)
            return
        count = card.counts[name] = card.counts.get(name, 0) + 1
        if count <= self.max_per_card:
            card.properties.append(_parse_property(line, name, text, colon, problem))
        elif count == self.max_per_card + 1:
            self.line_problems.append(
                SourceDataError(
                    f"the card that starts at line {card.line} holds more than "
                    f"{self.max_per_card} {name} properties",
                    file=self.file,
                    line=line,
                    field=name,
                )
            )

    def not_a_property(self, line: int, text: str, reason: str) -> None:
        """A line that is not ``name:value``: skipped, with a notice, when it follows a
        property we do not read (its value, most likely, broken by a line end that
        should have been folded); else an error, as it may be part of a value we use."""
        card = self.card
        if card is not None and (card.nested or card.last not in (None, *_USED)):
            card.hash(text)
            _count(self.malformed, "AGENT" if card.nested else _kind(card.last or ""), line)
            return
        self.line_problems.append(SourceDataError(reason, file=self.file, line=line))

    def notices(self) -> list[Notice]:
        """One notice for each kind of property skipped, and of property that lines not
        ``name:value`` followed: a kind, a count and the first line, never a name read."""
        found = []
        for kind, (count, line) in self.skipped.items():
            what = "extension (X-)" if kind == "extension" else "non-standard"
            message = f"{count} {what} propert{'y' if count == 1 else 'ies'} skipped"
            found.append((line, "property-skipped", message))
        for kind, (count, line) in self.malformed.items():
            shown = f"{kind}, a property" if kind in _KNOWN_PROPERTIES else _KIND_NAMES[kind]
            message = (
                f"{count} line{'' if count == 1 else 's'} that are not name[;parameters]:value "
                f"skipped, after {shown} sourcetruth does not read"
            )
            found.append((line, "malformed-line", message))
        return [
            Notice(code, message, file=self.file, line=line)
            for line, code, message in sorted(found)
        ]

    def begin(self, line: int, text: str) -> None:
        card = self.card
        if card is not None:
            if card.nested or card.after_agent:
                # A 2.1 AGENT's own card: skipped with the AGENT.
                card.nested += 1
                card.hash(text)
                return
            self.line_problems.append(_no_end(card, self.file))
        self.card = _Card(line)
        self.card.hash(text)

    def end(self, line: int, text: str) -> None:
        card = self.card
        if card is None:
            self.line_problems.append(
                SourceDataError(
                    "END:VCARD without a BEGIN:VCARD before it",
                    file=self.file,
                    line=line,
                    field="END",
                )
            )
            return
        card.hash(text)
        if card.nested:
            card.nested -= 1
            return
        self.card = None
        read = _CardReader(card, self.file, self.card_problems, self.max_field).read()
        if read is None:
            return
        self.reads.append(read)
        if read.uid is None:
            return
        if read.uid in self.taken:
            self.uid_problems.append(
                SourceDataError(
                    f"a UID already used by the card at line {self.taken[read.uid]}",
                    file=self.file,
                    line=read.uid_line,
                    field="UID",
                )
            )
        else:
            self.taken[read.uid] = read.line

    def close(self) -> None:
        """The file ended: a card still open has no END."""
        if self.card is not None:
            self.line_problems.append(_no_end(self.card, self.file))
            self.card = None


_KIND_NAMES: Final = {
    "extension": "an extension (X-) property",
    "unknown": "a non-standard property",
}


def _count(counts: dict[str, list[int]], kind: str, line: int) -> None:
    """Count one more of *kind*, keeping the line of the first."""
    seen = counts.setdefault(kind, [0, line])
    seen[0] += 1


def _no_end(card: _Card, file: str) -> SourceDataError:
    return SourceDataError(
        "a card that starts here has no END:VCARD", file=file, line=card.line, field="BEGIN"
    )


_QP_ESCAPE: Final = re.compile(r"=([0-9A-Fa-f]{2})?")
_QP_MALFORMED: Final = re.compile(r"=(?![0-9A-Fa-f]{2})")


def _quoted_printable(value: str, charset: str) -> tuple[str, bool]:
    """Decode a quoted-printable value whose bytes are text in *charset*.

    Also says whether an ``=`` was not an escape (not followed by two hex
    digits): it is kept as written.
    """
    codec = _codec(charset)
    if value.isascii() and _QP_MALFORMED.search(value) is None:
        # Every "=" is an escape and every other character ASCII, which every
        # charset allowed writes as itself: binascii decodes exactly that.
        try:
            return binascii.a2b_qp(value).decode(codec), False
        except UnicodeError:
            msg = "quoted-printable bytes that are not valid text in its charset"
            raise _ValueProblem(msg) from None
    raw = bytearray()
    malformed = False
    done = 0
    try:
        for escape in _QP_ESCAPE.finditer(value):
            raw += value[done : escape.start()].encode(codec)
            digits = escape.group(1)
            if digits is None:
                malformed = True
                raw += b"="
            else:
                raw.append(int(digits, 16))
            done = escape.end()
        raw += value[done:].encode(codec)
        return raw.decode(codec), malformed
    except UnicodeError:
        msg = "quoted-printable bytes that are not valid text in its charset"
        raise _ValueProblem(msg) from None


_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_ESCAPE_21: Final = re.compile(r"\\([;,\\])")


def _unescaped(escape: re.Match[str]) -> str:
    char = escape.group(1)
    return "\n" if char in "nN" else char


def _unescape(text: str, version: str) -> str:
    if "\\" not in text:
        return text
    if version == "2.1":
        return _ESCAPE_21.sub(r"\1", text)
    return _ESCAPE.sub(_unescaped, text)


_ESCAPE_OR: Final = {sep: re.compile(r"\\.|" + sep, re.DOTALL) for sep in ";,"}


def _split_escaped(text: str, separator: str) -> list[str]:
    """Split on *separator* (``;`` or ``,``) where no backslash escapes it; escapes stay
    in the pieces."""
    if "\\" not in text:
        return text.split(separator)
    pieces: list[str] = []
    start = 0
    for found in _ESCAPE_OR[separator].finditer(text):
        if found.group() == separator:
            pieces.append(text[start : found.start()])
            start = found.end()
    pieces.append(text[start:])
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

    def __init__(
        self, card: _Card, file: str, problems: list[SourceDataError], max_field: int
    ) -> None:
        self.card = card
        self.file = file
        self.problems = problems
        self.max_field = max_field
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
        if not self.fits(prop):
            return None
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

    def fits(self, prop: _Property) -> bool:
        """Whether *prop*'s value, as written, is within max_field (a problem when not):
        checked before it is decoded. (Parameters are checked as lines are parsed.)"""
        if prop.value_size > self.max_field:
            self.problem(f"a value longer than {self.max_field} characters", prop)
            return False
        return True

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
        derived = None if found.uid is not None else "derived-" + self.card.digest.hexdigest()[:16]
        return _Read(
            self.card.line,
            found.uid,
            found.uid_line,
            derived,
            self.data(found),
            tuple(self.notices),
        )

    def read_version(self) -> bool:
        """Whether the card says a version this reader knows (a problem when not)."""
        versions = [p for p in self.card.properties if p.name == "VERSION"]
        if not versions:
            # Android, among others, reads such a card as 2.1.
            self.notice(
                "no-version",
                "a card without VERSION was read as vCard 2.1",
                self.card.line,
                "VERSION",
            )
            self.version = "2.1"
            return True
        version = versions[0].value.strip() if versions[0].value_size <= 32 else ""
        if version in _SHORT_VERSIONS:
            version = _SHORT_VERSIONS[version]
            self.notice(
                "short-version",
                "a VERSION without its minor number was read as that version's .0",
                versions[0].line,
                "VERSION",
            )
        if "\r" in versions[0].value:
            self.problem(
                "a VERSION with a carriage return in it (a line end of another convention?)",
                versions[0],
            )
            return False
        if version not in _READ_VERSIONS:
            # Never the version itself: it is text of the file like any value.
            self.problem(
                "the card's vCard version is not supported (2.1, 3.0 and 4.0 are)", versions[0]
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
            # Only an empty one: a blank group is a value a record may hold.
            if value is not None and not self.empty(value, prop, blank=False):
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
            phones=one_phone_per_number(found.phones),
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
        if "\r" in value:
            # A CR before text that is not a property: the text after it may be
            # anything (a name), and a key is shown wherever its record is.
            self.problem("a UID with a carriage return in it", prop)
            return None
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
        if self.empty(number, prop):
            return None
        return Phone(number, _type_in(types, _PHONE_TYPE_IN, PhoneType.OTHER))

    def email(self, prop: _Property) -> Email | None:
        address = self.text(prop)
        if address is None or self.empty(address, prop):
            return None
        return Email(address, _type_in(prop.types, _EMAIL_TYPE_IN, EmailType.OTHER))

    def empty(self, value: str, prop: _Property, *, blank: bool = True) -> bool:
        """Whether *value* is empty (or, with *blank*, blank): then it is dropped, with a
        notice (clients write empty ``TEL:`` lines for fields left blank)."""
        if value.strip() if blank else value:
            return False
        self.notice("empty-value", "an empty value was dropped", prop.line, prop.name)
        return True

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


def parse_vcards(
    data: bytes | str,
    *,
    file: str,
    allow_cp1252: bool = False,
    max_field: int = DEFAULT_MAX_FIELD,
    max_per_card: int = DEFAULT_MAX_PER_CARD,
) -> AddressBookReading:
    """Every card of a vCard 2.1, 3.0 or 4.0 file, each as a ``Record(key, ContactData)``.

    *file* names the file in errors and notices. Bytes are unfolded before
    they are decoded (see the module docstring). A property the reader uses
    whose value or parameters, as written, are longer than *max_field*
    characters is an error, and so is a card holding more than
    *max_per_card* properties of one name that the reader uses (TEL,
    EMAIL, RELATED...). Raises :class:`~sourcetruth.RejectedFileError`
    with every problem of the file when there is any: no entry of a rejected
    file is returned. A file with no cards gives no entries and a
    ``no-cards`` notice.
    """
    _check_max_field(max_field)
    _check_max_per_card(max_per_card)
    book = _content_lines(
        data, file, allow_cp1252, max_field, lambda: _Book(file, max_field, max_per_card)
    )
    book.close()
    problems = book.problems
    if problems:
        msg = f"{file}: {len(problems)} problem(s) in the vCard file; nothing from it was applied"
        raise RejectedFileError(
            msg,
            problems,
            file=file,
        )
    reads, taken = book.reads, book.taken
    suffixes: dict[str, int] = {}
    skipped = book.notices()
    del book
    entries: list[Record] = []
    notices: list[Notice] = []
    if not reads:
        notices.append(
            Notice("no-cards", "the file holds no cards: the address book is empty", file=file)
        )
    # Each card's read is let go once its record is made: the notices are copied.
    reads.reverse()
    while reads:
        read = reads.pop()
        key = read.uid
        extra: tuple[Notice, ...] = ()
        if key is None:
            key, derived = _derive_key(read, taken, suffixes, file)
            extra = (derived,)
        entries.append(Record(key, read.data))
        notices.extend(attrs.evolve(n, key=key) for n in (*extra, *read.notices))
    notices += skipped
    # The keys taken are let go before the lists become the reading's tuples:
    # for a file of tiny cards they cost more than a list's copy.
    del taken, suffixes
    return AddressBookReading(tuple(entries), tuple(notices))


def _derive_key(
    read: _Read, taken: dict[str, int], suffixes: dict[str, int], file: str
) -> tuple[str, Notice]:
    """A key for a card without UID, from its content, unique in file order; and the notice.

    *suffixes* holds the last suffix tried for each derived key, so that many
    identical cards cost linear time: every key before it is taken.
    """
    base = key = read.derived or ""
    count = suffixes.get(base, 1)
    if count > 1:
        key = f"{base}-{count}"
    while key in taken:
        count += 1
        key = f"{base}-{count}"
    taken[key] = read.line
    suffixes[base] = count
    notice = Notice(
        "derived-key",
        "a card without UID: its key was derived from its content, "
        "so it changes when the card does",
        file=file,
        line=read.line,
        field="UID",
    )
    return key, notice


def _check_max_field(max_field: int) -> None:
    if isinstance(max_field, bool) or not isinstance(max_field, int) or max_field < 1:
        msg = "max_field must be a whole number of characters, at least 1"
        raise UsageError(msg)


def _check_max_per_card(max_per_card: int) -> None:
    if isinstance(max_per_card, bool) or not isinstance(max_per_card, int) or max_per_card < 1:
        msg = "max_per_card must be a whole number of properties, at least 1"
        raise UsageError(msg)


# -- the adapter -------------------------------------------------------------


class VCardAdapter:
    """The address book as one vCard file: read every card, write them all back.

    Implements :class:`~sourcetruth.adapters.AddressBookAdapter`. Reading
    accepts 2.1, 3.0 and 4.0, refusing a value we read longer than
    *max_field* characters (as the other readers) and a card holding more
    than *max_per_card* properties of one name we read; writing uses
    *version* (3.0 or 4.0) and replaces the file atomically, so a reader
    sees the old file or the new one, never half of either.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        version: str = "4.0",
        allow_cp1252: bool = False,
        max_field: int = DEFAULT_MAX_FIELD,
        max_per_card: int = DEFAULT_MAX_PER_CARD,
    ) -> None:
        check_version(version)
        _check_max_field(max_field)
        _check_max_per_card(max_per_card)
        self._path = Path(path)
        self._version = version
        self._allow_cp1252 = allow_cp1252
        self._max_field = max_field
        self._max_per_card = max_per_card

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
        return parse_vcards(
            data,
            file=str(self._path),
            allow_cp1252=self._allow_cp1252,
            max_field=self._max_field,
            max_per_card=self._max_per_card,
        )

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
