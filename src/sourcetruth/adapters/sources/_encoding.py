"""Which encoding a file's bytes are in: settled from the bytes, or refused with the likely one.

The readers decode nothing by guessing. In order:

1. A byte-order mark decides: UTF-8, UTF-16 or UTF-32, little- or big-endian.
2. Strict UTF-8.
3. UTF-16 without a byte-order mark, recognised by its NUL bytes: a CSV or
   vCard is mostly ASCII, which UTF-16 writes as one NUL and one letter, so
   half of one parity of bytes is NUL and almost none of the other.
4. cp1252, only when the caller allows it, and only when the text it gives
   is text a person would type: no C1 controls, no word made only of
   accented letters (Cyrillic, Greek and Chinese read as cp1252 look like
   that), no symbols such as ``ƒ`` or ``¹`` run into letters and no
   punctuation marks paired with ASCII twice running (Shift_JIS read as
   cp1252).

Anything else is an :class:`~sourcetruth.EncodingError` naming the encoding
the bytes most likely are, by charset-normalizer's guess: never the bytes.
The detector names the encoding of a file already refused and decides
nothing: on a few short names it is often wrong (it takes "Ñúñez" in cp1252
for Big5), where the rules above are not.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Final

from sourcetruth.exceptions import EncodingError

__all__ = ["BOMS", "first_error", "likely", "looks_like_utf8", "not_utf8", "settle", "wide"]

#: Byte-order marks and the codec each names. UTF-32's little-endian mark
#: begins with UTF-16's, so it is looked for first.
BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# What accented Latin text looks like in UTF-8: a lead byte C3 or C5 (the
# Latin-1 and Latin Extended-A letters) followed by a continuation byte, or E2
# 80 xx (curly quotes, dashes). In genuine cp1252 text these pairs are rare:
# "Ã" or "Å" followed by a symbol, or "â€" followed by punctuation.
_UTF8_ACCENTED = re.compile(rb"[\xc3\xc5][\x80-\xbf]|\xe2\x80[\x80-\xbf]")

# Validity is checked a piece at a time, each ending at a newline byte (never
# part of a longer character in UTF-8 or cp1252), so no whole copy is made.
_PIECE = 1 << 20

# How much of a file the NUL count and the detector look at.
_SAMPLE = 1 << 16

# -- text no person would type, as cp1252 gives it from another encoding ---------------
_C1 = re.compile("[\x80-\x9f]")
# A word of three or more letters with no ASCII letter in it: Western names
# always have some ("Ødegård", "Ñúñez"); Cyrillic, Greek or Chinese bytes read
# as cp1252 give words of accented letters only ("Èâàí", "ÐÕÃû").
_ALL_ACCENTED_WORD = re.compile(r"(?<!\w)[^\W\d_A-Za-z]{3,}(?!\w)")
# Symbols nobody types against a letter; Shift_JIS's lead bytes read as cp1252
# put them before every kana ("ƒJƒ^ƒJƒi"). Symbols a name or an organisation
# may hold there (guillemets, trade marks, ordinals, inverted marks, quotes)
# are not among them. By code point: the symbols are easy to mistake for others.
_ODD_SYMBOL = "\u0192\u2020\u2021\u02c6\u2030\u02dc\xa4\xa6\xac\xaf\xb1\xb2\xb3\xb6\xb8\xb9\xbc\xbe"
_ODD_BY_LETTER = re.compile(f"[{_ODD_SYMBOL}](?=[^\\W\\d_])|(?<=[^\\W\\d_])[{_ODD_SYMBOL}]")
# More than this many odd symbols by letters, and the reading is refused.
_ODD_ALLOWED = 1
# Two-byte characters (Shift_JIS kanji, for one) read as cp1252: a punctuation
# mark of cp1252's 0x80-0x9F row, then an ASCII character, twice running
# ("ŽR“c"); typed text has a letter or a space after its second mark.
_PAIRED_MARKS = re.compile(
    "(?:[\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030"
    "\u2039\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u203a][!-~]){2}"
)

# What people call the encodings a detector names by Python's codec names.
_KNOWN_AS: Final = {
    "cp932": "Shift_JIS",
    "shift_jis": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "gb18030": "GB18030",
    "gb2312": "GB2312",
    "gbk": "GBK",
    "big5": "Big5",
    "cp949": "EUC-KR",
    "euc_kr": "EUC-KR",
    "cp1250": "Windows-1250 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1255": "Windows-1255 (Hebrew)",
    "cp1256": "Windows-1256 (Arabic)",
    "koi8_r": "KOI8-R",
    "mac_roman": "Mac Roman",
    "utf_16": "UTF-16",
    "utf_32": "UTF-32",
}


def looks_like_utf8(data: bytes) -> bool:
    """Whether *data* holds accented letters or punctuation encoded as UTF-8.

    For a file that is not valid UTF-8 as a whole: if it also looks like
    UTF-8 in places, it mixes two encodings and no single reading is safe.
    """
    return _UTF8_ACCENTED.search(data) is not None


def settle(data: bytes, *, file: str | None, allow_cp1252: bool) -> tuple[str, int]:
    """The codec *data* is read with and the offset its text starts at, checked whole.

    Raises :class:`~sourcetruth.EncodingError` (with the first byte that
    fails, and the likely encoding when the file is refused as a whole).
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            msg = f"not valid {encoding} after its byte-order mark"
            _check(data, len(bom), encoding, file, msg)
            return encoding, len(bom)
    # Before UTF-8: UTF-16's ASCII is valid UTF-8, NULs and all.
    wide_encoding = wide(data)
    if wide_encoding is not None:
        return _wide_checked(data, wide_encoding, file), 0
    offset = first_error(data, 0, "utf-8")
    if offset is None:
        return "utf-8", 0
    return not_utf8(data, offset, file=file, allow_cp1252=allow_cp1252), 0


def first_error(data: bytes, start: int, encoding: str) -> int | None:
    """The offset of the first byte of *data* (from *start*) that *encoding* cannot decode.

    For UTF-8 and cp1252, a piece at a time; other codecs decode whole.
    """
    if encoding in ("utf-8", "cp1252"):
        if encoding == "utf-8" and data.isascii():
            return None
        view = memoryview(data)
        for begin, end in _pieces(data, start):
            try:
                str(view[begin:end], encoding)
            except UnicodeDecodeError as error:
                return begin + error.start
        return None
    try:
        data[start:].decode(encoding)
    except UnicodeDecodeError as error:
        return start + error.start
    return None


def _pieces(data: bytes, start: int) -> Iterator[tuple[int, int]]:
    size = len(data)
    while start < size:
        end = data.find(b"\n", start + _PIECE)
        end = size if end < 0 else end + 1
        yield start, end
        start = end


def _check(data: bytes, start: int, encoding: str, file: str | None, message: str) -> None:
    offset = first_error(data, start, encoding)
    if offset is not None:
        raise EncodingError(message, offset=offset, file=file)


def wide(data: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark, by where the NUL bytes of its ASCII fall."""
    sample = data[:_SAMPLE]
    if b"\x00" not in sample:
        return None
    quads = [sample[i::4].count(0) for i in range(4)]
    per = max(1, len(sample) // 4)
    if quads[1] + quads[2] + quads[3] > 2.4 * per and quads[0] < per // 5:
        return "utf-32-le"
    if quads[0] + quads[1] + quads[2] > 2.4 * per and quads[3] < per // 5:
        return "utf-32-be"
    even, odd = quads[0] + quads[2], quads[1] + quads[3]
    half = max(1, len(sample) // 2)
    if odd > half // 4 and even <= half // 50:
        return "utf-16-le"
    if even > half // 4 and odd <= half // 50:
        return "utf-16-be"
    return None


def _wide_checked(data: bytes, encoding: str, file: str | None) -> str:
    if encoding.startswith("utf-32"):
        # Not read without its mark: nothing writes it that way but by mistake.
        msg = "UTF-32 without a byte-order mark (save the file as UTF-8)"
        raise EncodingError(msg, offset=0, file=file)
    _check(data, 0, encoding, file, f"not valid {encoding} (read as such by its NUL bytes)")
    return encoding


def not_utf8(data: bytes, offset: int, *, file: str | None, allow_cp1252: bool) -> str:
    """cp1252 when allowed and it reads as typed text; else the error, naming the likely one."""
    if allow_cp1252 and looks_like_utf8(data):
        # Part UTF-8, part something else (two files joined, a row pasted
        # in): reading it all as cp1252 would turn every UTF-8 name into
        # mojibake, so neither reading is safe.
        msg = "the file mixes UTF-8 with another encoding"
        raise EncodingError(msg, offset=offset, file=file)
    bad = first_error(data, 0, "cp1252")
    if bad is not None:
        msg = f"neither UTF-8 nor cp1252; most likely {likely(data)} (save the file as UTF-8)"
        raise EncodingError(msg, offset=bad if allow_cp1252 else offset, file=file)
    odd = _unlike_typed_text(data)
    if odd is not None:
        msg = (
            f"not valid UTF-8, and as cp1252 it gives text no person would type; "
            f"most likely {likely(data)} (save the file as UTF-8)"
        )
        raise EncodingError(msg, offset=odd, file=file)
    if not allow_cp1252:
        msg = (
            "not valid UTF-8; it reads as cp1252 "
            "(allow cp1252 if the file is from an older Windows program)"
        )
        raise EncodingError(msg, offset=offset, file=file)
    return "cp1252"


def _unlike_typed_text(data: bytes) -> int | None:
    """Where *data*, read as cp1252, first stops looking typed by a person; None if it never does.

    The offset is of the piece it is in (the characters of cp1252 are one
    byte each, so a piece's character offset is its byte offset).
    """
    view = memoryview(data)
    odd = 0
    for begin, end in _pieces(data, 0):
        if view[begin:end].tobytes().isascii():
            continue
        text = str(view[begin:end], "cp1252")
        found = _C1.search(text) or _ALL_ACCENTED_WORD.search(text) or _PAIRED_MARKS.search(text)
        if found:
            return begin + found.start()
        for match in _ODD_BY_LETTER.finditer(text):
            odd += 1
            if odd > _ODD_ALLOWED:
                return begin + match.start()
    return None


def _detected(data: bytes) -> list[tuple[str, str]]:
    """The detector's readings of *data*'s opening, best first: (codec, language)."""
    from charset_normalizer import from_bytes  # only for a file not UTF-8: an import saved

    sample = data[:_SAMPLE]
    if len(data) > _SAMPLE:
        cut = sample.rfind(b"\n")
        sample = sample[: cut + 1] if cut > 0 else sample
    return [(match.encoding, match.language) for match in from_bytes(sample)]


def likely(data: bytes) -> str:
    """The encoding *data* most likely is, as people name it; never a byte of it."""
    found = _detected(data)
    if not found:
        return "an encoding that could not be recognised"
    codec, language = found[0]
    name = _KNOWN_AS.get(codec, codec)
    if language and language != "Unknown" and "(" not in name:
        return f"{name} ({language})"
    return name
