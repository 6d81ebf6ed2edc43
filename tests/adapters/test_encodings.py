"""Encodings detected, or refused with the likely cause: the rules every text reader shares."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import EncodingError, RejectedFileError
from sourcetruth.adapters.sources._encoding import settle
from sourcetruth.adapters.sources.text import decode, read_table

#: Names as people in Western Europe type them, with cp1252's punctuation
#: (each one's cp1252 bytes are not valid UTF-8, which would win).
WESTERN = [
    "Zoë Ødegård",
    "Renée O\u2019Brien",
    "François Lefèvre",
    "Jürgen Groß",
    "Seán Ó Súilleabháin",
    "Ñúñez",
    "Sørensen £5",
    "\u00abJean\u00bb Nº 5",
    "¿Qué? Acme\u2122",
    "€100 \u2014 \u201cquoted\u201d",
    "Åsa Æbelø",
    "Œuvre Šimon Žofia",
]


def settled(text: str, encoding: str, *, allow_cp1252: bool = False) -> str:
    data = ("name\n" + text + "\n").encode(encoding)
    return settle(data, file="people.csv", allow_cp1252=allow_cp1252)[0]


class TestByteOrderMarks:
    """A byte-order mark decides, UTF-32 included."""

    @pytest.mark.parametrize(
        ("bom", "encoding"),
        [
            (codecs.BOM_UTF8, "utf-8"),
            (codecs.BOM_UTF16_LE, "utf-16-le"),
            (codecs.BOM_UTF16_BE, "utf-16-be"),
            (codecs.BOM_UTF32_LE, "utf-32-le"),
            (codecs.BOM_UTF32_BE, "utf-32-be"),
        ],
    )
    def test_each_mark_reads_its_encoding(self, bom: bytes, encoding: str) -> None:
        """UTF-32's little-endian mark starts like UTF-16's, and still reads as UTF-32."""
        data = bom + "name\nZoë Ødegård\n".encode(encoding)
        assert decode(data, file="people.csv") == "name\nZoë Ødegård\n"


class TestWithoutAMark:
    """UTF-16 without a mark is read; UTF-32 without one is refused by name."""

    @pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
    @pytest.mark.parametrize("name", WESTERN)
    def test_utf16_is_known_by_its_nul_bytes(self, encoding: str, name: str) -> None:
        """Not diagnosed as "not valid UTF-8": read, as the same text."""
        data = f"name\n{name}\n".encode(encoding)
        assert decode(data, file="people.csv") == f"name\n{name}\n"

    @pytest.mark.parametrize("encoding", ["utf-32-le", "utf-32-be"])
    def test_utf32_is_named(self, encoding: str) -> None:
        """Refused with its name, never read as UTF-16 with NULs in every cell."""
        with pytest.raises(EncodingError, match="UTF-32 without a byte-order mark"):
            settled("Zoë", encoding)

    def test_a_utf8_file_with_one_nul_is_still_utf8(self) -> None:
        """One stray NUL is the row's problem (rejected there), not a wide encoding."""
        data = b"name,phone\nA\x00B,07700 900001\nZo\xc3\xab,07700 900002\n"
        assert settle(data, file="people.csv", allow_cp1252=False)[0] == "utf-8"


class TestCp1252:
    """cp1252 is read only when allowed, and only when it gives text a person would type."""

    @pytest.mark.parametrize("name", WESTERN)
    def test_western_names_read_when_allowed(self, name: str) -> None:
        """Accents, ligatures, guillemets, ordinals, currency and curly quotes are typed text."""
        assert settled(name, "cp1252", allow_cp1252=True) == "cp1252"

    @pytest.mark.parametrize("name", WESTERN[:4])
    def test_refused_unless_allowed_with_the_right_advice(self, name: str) -> None:
        """Not allowed: the error says the file reads as cp1252 and how to allow it."""
        with pytest.raises(EncodingError, match="it reads as cp1252 \\(allow cp1252"):
            settled(name, "cp1252")

    @pytest.mark.parametrize(
        ("text", "encoding", "likely"),
        [
            ("カタカナ テスト\nヤマダ", "shift_jis", "Shift_JIS"),
            ("ｱｲｳｴｵ\nﾔﾏﾀﾞ ﾀﾛｳ", "shift_jis", "Shift_JIS"),
            ("Иван Петров\nОльга Смирнова", "cp1251", "Russian"),  # noqa: RUF001
            ("Łukasz Żółć\nGrzegorz Brzęczyszczykiewicz", "cp1250", "Central European"),
        ],
    )
    @pytest.mark.parametrize("allow", [False, True])
    def test_other_encodings_are_refused_by_name(
        self, text: str, encoding: str, likely: str, allow: bool
    ) -> None:
        """Bytes that cp1252 decodes into mojibake are refused, naming the likely encoding.

        Allowing cp1252 does not change that, and the advice is never to allow it.
        """
        data = f"name\n{text}\n".encode(encoding)
        data.decode("cp1252")  # each one does decode: mojibake, not an undefined byte
        with pytest.raises(EncodingError) as caught:
            settle(data, file="people.csv", allow_cp1252=allow)
        message = str(caught.value)
        assert likely in message
        assert "allow cp1252" not in message
        assert "save the file as UTF-8" in message

    def test_bytes_cp1252_does_not_define_name_the_likely_encoding(self) -> None:
        """0x81 is no cp1252 byte: "neither UTF-8 nor cp1252", with the likely encoding."""
        data = "name\n山田 太郎\n佐藤 花子\n".encode("shift_jis")
        with pytest.raises(EncodingError, match="neither UTF-8 nor cp1252; most likely"):
            settle(data, file="people.csv", allow_cp1252=True)

    def test_a_mixed_file_is_still_refused(self) -> None:
        """UTF-8 accents beside cp1252 ones: neither reading is safe."""
        data = "name\nZoë\n".encode() + "Renée\n".encode("cp1252")
        with pytest.raises(EncodingError, match="mixes UTF-8"):
            settle(data, file="people.csv", allow_cp1252=True)

    @given(
        st.lists(
            st.text(
                alphabet=st.sampled_from(
                    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                    + list("éèêëàâäçïîôöùûüÿñáíóúÉÈÀÇÑÖÜßøØåÅæÆ")
                ),
                min_size=2,
                max_size=12,
            ).filter(lambda w: any(c.isascii() for c in w)),
            min_size=1,
            max_size=6,
        )
    )
    def test_any_western_name_with_accents_reads(self, words: list[str]) -> None:
        """Words of Latin letters with some ASCII in each read as cp1252 when allowed.

        (Š, Œ and Ž are left out: after Å their bytes are the UTF-8 pairs
        that make a file "mixed", a rule of its own.)
        """
        name = " ".join(words)
        data = f"given,family\n{name},Smith\n".encode("cp1252")
        encoding, _ = settle(data, file="people.csv", allow_cp1252=True)
        assert encoding == "cp1252" or data.isascii() or _is_utf8(data)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class TestThroughTheReaders:
    """The tabular readers pass the rule on as a rejected file naming the file."""

    def test_a_shift_jis_csv_is_a_rejected_file(self) -> None:
        """The issue's case: allowed cp1252 once gave mojibake with no notice."""
        data = "name,phone\nカタカナ テスト,07700 900001\n".encode("shift_jis")
        with pytest.raises(RejectedFileError) as caught:
            read_table(data, file="people.csv", allow_cp1252=True)
        (problem,) = caught.value.exceptions
        assert isinstance(problem, EncodingError)
        assert problem.file == "people.csv"
        assert "Shift_JIS" in str(problem)
        assert "カタカナ" not in str(caught.value)
