"""Text decoded a piece at a time is the text decoded whole, with the same errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import EncodingError, RejectedFileError
from sourcetruth.adapters.sources import text
from sourcetruth.adapters.sources.text import decode, read_table, text_pieces

#: Bytes that make up lines: ASCII, accented letters in UTF-8 and in cp1252, bytes
#: neither reads, byte-order marks and every kind of line end.
PARTS = st.sampled_from(
    [b"a", b",", b'"', b"\n", b"\r", b"\r\n", "é".encode(), b"\xe9", b"\x81", b"\xc3", b"\x00"]
) | st.binary(max_size=3)
BOMS = st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])


def outcome(read: object) -> tuple[str, object]:
    """What *read* gives: its text, or the error's message and offset."""
    try:
        return "text", read()  # type: ignore[operator]
    except EncodingError as error:
        return "error", (str(error), error.offset)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of a few bytes, so that short inputs are cut into many."""
    monkeypatch.setattr(text, "_PIECE", 3)


@pytest.mark.usefixtures("small_pieces")
@given(BOMS, st.lists(PARTS, max_size=30), st.booleans())
def test_pieces_join_to_the_whole_decoding(bom: bytes, parts: list[bytes], cp1252: bool) -> None:
    """Joined, the pieces are decode()'s text; where decode() refuses, so do they, alike."""
    data = bom + b"".join(parts)
    whole = outcome(lambda: decode(data, file="f.csv", allow_cp1252=cp1252))
    pieces = outcome(lambda: "".join(text_pieces(data, file="f.csv", allow_cp1252=cp1252)))
    assert pieces == whole


def split(data: bytes, piece: int) -> object:
    """The table read from *data* in pieces of *piece* bytes: header, rows and problems."""
    saved = text._PIECE
    text._PIECE = piece
    try:
        table = read_table(data, file="f.csv")
    except RejectedFileError as error:
        return [str(p) for p in error.problems]
    finally:
        text._PIECE = saved
    return table.header, table.rows, [str(p) for p in table.problems]


@given(st.lists(st.sampled_from(["a", "b,c", '"x\ny"', "\r\n", "\n", "\r", "é"]), max_size=30))
def test_rows_do_not_depend_on_where_pieces_end(parts: list[str]) -> None:
    """The rows split from many small pieces are the rows split from one."""
    data = ("Id,Name\r\n" + "".join(parts)).encode()
    assert split(data, 3) == split(data, 1 << 20)
