"""What kind of input a source reads, checked before reading: the wrong kind said plainly.

A CSV file given to the OneRoster source, a folder given where a file is
read: the adapter would fail deep inside ("not a readable zip file", "Is a
directory"). Looking at the path (a folder, or a file's first bytes) says
what it is, and the message says what the source reads instead.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sourcetruth.adapters.sources._encoding import BOMS, wide
from sourcetruth.exceptions import UsageError

__all__ = ["check_kind", "kind_of"]


@dataclass(frozen=True)
class _Reads:
    """What an adapter reads, in words, and the kinds of path (see :func:`kind_of`) it takes."""

    what: str
    kinds: frozenset[str]


_TEXT: Final = frozenset({"text", "empty"})

#: The built-in adapters' inputs; another adapter's input is not checked here.
_READS: Final = {
    "oneroster": _Reads(
        "a OneRoster bundle: a .zip file or a folder of its CSV files",
        frozenset({"folder", "zip"}),
    ),
    "sds": _Reads("a School Data Sync export: a folder of its CSV files", frozenset({"folder"})),
    "csv": _Reads("a CSV file", _TEXT | {"csv"}),
    "vcard": _Reads("a vCard (.vcf) file", _TEXT | {"vcard"}),
}

#: Each kind of path, as a message names it.
_NAMED: Final = {
    "folder": "a folder",
    "zip": "a zip file",
    "xlsx": "an Excel workbook (save it as CSV)",
    "vcard": "a vCard file",
    "csv": "a CSV file",
    "text": "a text file",
    "empty": "an empty file",
    "binary": "a file that is neither text nor a zip",
}

#: How much of a file is looked at to tell its kind.
_PEEK: Final = 4096


def kind_of(path: Path) -> str | None:
    """The kind of *path*: a key of :data:`_NAMED`; None when it cannot be looked at."""
    try:
        if path.is_dir():
            return "folder"
        with path.open("rb") as file:
            head = file.read(_PEEK)
        # A zip's own mark is enough: a broken zip is the reader's to report (exit 3).
        if head.startswith(_ZIP_MARKS) or zipfile.is_zipfile(path):
            return "xlsx" if path.suffix.lower() in {".xlsx", ".xlsm"} else "zip"
    except OSError:
        return None  # the reader says why, as it always has
    if not head.strip():
        return "empty"
    text = _text(head)
    if text is None:
        return "binary"
    first = text.lstrip("\ufeff \t\r\n").split("\n", 1)[0].strip().upper()
    if first.startswith("BEGIN:VCARD"):
        return "vcard"
    if any(mark in first for mark in (",", ";", "\t")):
        return "csv"
    return "text"


#: How a zip file begins (a local file header; an empty archive's end record).
_ZIP_MARKS: Final = (b"PK\x03\x04", b"PK\x05\x06")


def _text(head: bytes) -> str | None:
    """*head* as text, by the readers' own rules (a byte order mark, else the NUL bytes).

    Without NULs, any 8-bit text (the readers detect UTF-8 and cp1252);
    with them, UTF-16 or UTF-32 as their NULs fall; else None.
    """
    for mark, encoding in BOMS:
        if head.startswith(mark):
            return head[len(mark) :].decode(encoding, "replace")
    if b"\x00" not in head:
        return head.decode("latin-1")
    guessed = wide(head)
    return None if guessed is None else head.decode(guessed, "replace")


def check_kind(reader: str, adapter: str, path: Path, named: str) -> None:
    """Refuse *path* when it is not of a kind *adapter* reads.

    *reader* says who reads it ("the source 'mis'"), *named* how the user
    wrote the path.
    """
    reads = _READS.get(adapter)
    kind = kind_of(path)
    if reads is None or kind is None or kind in reads.kinds:
        return
    msg = f"{reader} reads {reads.what}; {named} is {_NAMED[kind]}"
    raise UsageError(msg)
