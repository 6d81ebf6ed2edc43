"""The XML helper: element lines, refused DTDs, declared encodings, and rejections counted."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import (
    ContactData,
    EncodingError,
    Record,
    RejectedFileError,
    SnapshotKind,
    SourceDataError,
    UsageError,
)
from sourcetruth.adapters.sources._encoding import first_error, looks_like_utf8
from sourcetruth.adapters.sources.markup import Element, Rejections, read_elements, xml_encoding

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

PEOPLE = """<?xml version="1.0" encoding="{encoding}"?>
<people>
  <person id="1">
    <name given="Zoë" family="Ødegård"/>
    <phone type="mobile">07700 900101</phone>
  </person>
  <person id="2"><name given="Seán" family="Ó Súilleabháin"/></person>
</people>
"""


def elements(data: bytes, *names: str) -> list[Element]:
    return list(read_elements(data, file="people.xml", records=names or {"person"}))


def refused(data: bytes, *names: str) -> SourceDataError:
    """The one problem of the file that *data* is, which refuses it whole."""
    with pytest.raises(RejectedFileError) as caught:
        elements(data, *names)
    (problem,) = caught.value.problems
    assert problem.file == "people.xml"
    return problem


class TestElements:
    """Each record element comes whole, with its file, line and column, and its children's."""

    def test_lines_and_columns(self) -> None:
        """The line and column of each start tag's "<", for records and their children."""
        first, second = elements(PEOPLE.format(encoding="UTF-8").encode())
        assert (first.name, first.file, first.line, first.column) == ("person", "people.xml", 3, 3)
        assert [(c.name, c.line, c.column) for c in first.children] == [
            ("name", 4, 5),
            ("phone", 5, 5),
        ]
        assert (second.line, second.children[0].line, second.children[0].column) == (7, 7, 18)
        assert first.first("name") is not None
        assert first.first("name").get("given") == "Zoë"  # type: ignore[union-attr]
        assert first.all("phone")[0].text == "07700 900101"
        assert first.get("missing", "-") == "-"
        assert first.first("email") is None

    def test_what_is_not_a_record_is_skipped(self) -> None:
        """Wrappers, text and other elements outside a record element are not kept."""
        data = b"<a>text<b><c id='x'/></b><meta/><c id='y'><c id='z'/></c></a>"
        found = elements(data, "c")
        assert [(e.get("id"), len(e.children)) for e in found] == [("x", 0), ("y", 1)]
        one_name = read_elements(data, file="people.xml", records="c")  # not its letters
        assert [e.get("id") for e in one_name] == ["x", "y"]

    def test_elements_come_as_they_are_parsed(self) -> None:
        """A file broken near its end gives every element before the fault, then the error."""
        body = "".join(f'<person id="{i}"/>\n' for i in range(20_000))
        data = f"<people>\n{body}<broken></people>".encode()
        stream = read_elements(data, file="people.xml", records={"person"})
        assert next(stream).get("id") == "0"
        read = [element.get("id") for _, element in zip(range(19_999), stream, strict=False)]
        assert read[-1] == "19999"
        with pytest.raises(RejectedFileError) as caught:
            next(stream)
        assert caught.value.problems[0].line == 20_002

    def test_lines_hold_across_the_pieces_the_text_is_fed_in(self) -> None:
        """Characters split between two pieces of bytes read whole, each on its line."""
        # Lines of 22 bytes after 8: the first 64 KiB piece ends inside an "é" (two bytes).
        body = "".join(f'<person n="é{i:05}"/>\n' for i in range(16_000))
        data = f"<people>{body}</people>".encode()
        assert data[(1 << 16) - 1 : (1 << 16) + 1] == "é".encode()
        found = elements(data, "person")
        assert [e.get("n") for e in found] == [f"é{i:05}" for i in range(16_000)]
        assert [e.line for e in found] == list(range(1, 16_001))

    def test_values_never_show_in_the_repr(self) -> None:
        """An element's repr says what and where, never its attributes or text."""
        (first, _) = elements(PEOPLE.format(encoding="UTF-8").encode())
        assert "Zoë" not in repr(first)
        assert "900101" not in repr(first)

    def test_a_path_names_the_file_and_a_missing_one_is_a_problem(self, tmp_path: Path) -> None:
        """Read from a path, the file is its name; a missing file refuses the export."""
        (tmp_path / "people.xml").write_text(PEOPLE.format(encoding="UTF-8"), encoding="utf-8")
        found = list(read_elements(tmp_path / "people.xml", records={"person"}))
        assert found[0].file == "people.xml"
        with pytest.raises(RejectedFileError) as caught:
            list(read_elements(tmp_path / "links.xml", records={"link"}))
        assert caught.value.problems[0].file == "links.xml"

    def test_bytes_need_a_file_name(self) -> None:
        """Without a path there is nothing to name the file by: the caller's mistake."""
        with pytest.raises(UsageError):
            list(read_elements(b"<a/>", records={"a"}))

    def test_malformed_xml_names_the_line_not_the_text(self) -> None:
        """expat's own fault, at its line; the text there is not quoted."""
        problem = refused(b'<people>\n<person id="Gita Shah">\n</people>')
        assert problem.line == 3
        assert "mismatched tag" in str(problem)
        assert "Gita" not in str(problem)

    def test_long_values_and_many_children_refuse_the_file(self) -> None:
        """One hostile element cannot make the reader hold unbounded text."""
        long_text = b"<people><person>" + b"x" * 5000 + b"</person></people>"
        assert "text longer than 4096" in str(refused(long_text))
        long_attribute = b"<people><person id='" + b"x" * 5000 + b"'/></people>"
        assert "attribute longer than 4096" in str(refused(long_attribute))
        many = b"<people><person>" + b"<phone/>" * 1000 + b"</person></people>"
        assert "more than 1000 elements" in str(refused(many))
        few = b"<people><person>" + b"<phone/>" * 999 + b"</person><person/></people>"
        assert len(elements(few)) == 2  # the count starts again at each record element


class TestNoDtd:
    """A DOCTYPE is refused where it starts: nothing in it is declared, expanded or fetched."""

    @pytest.mark.parametrize(
        "doctype",
        [
            '<!DOCTYPE people [<!ENTITY name "Gita Shah">]>',
            # The billion laughs: ten levels of ten references each.
            "<!DOCTYPE people [<!ENTITY l0 'ha'>"
            + "".join(f"<!ENTITY l{i} '{f'&l{i - 1};' * 10}'>" for i in range(1, 10))
            + "]>",
            '<!DOCTYPE people [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
            '<!DOCTYPE people SYSTEM "http://example.org/people.dtd">',
            '<!DOCTYPE people [<!ENTITY % remote SYSTEM "http://example.org/x.dtd"> %remote;]>',
            "<!DOCTYPE people>",
        ],
        ids=["entity", "billion-laughs", "external-entity", "external-dtd", "parameter", "bare"],
    )
    def test_any_doctype_is_refused(self, doctype: str) -> None:
        """Refused with the file and the line of the DOCTYPE, quoting nothing of it."""
        data = f'<?xml version="1.0"?>\n{doctype}\n<people><person>&l9;</person></people>'
        problem = refused(data.encode())
        assert problem.line == 2
        assert "DOCTYPE" in problem.reason
        assert "Gita" not in str(problem)
        assert "passwd" not in str(problem)

    def test_an_entity_without_a_dtd_is_undefined(self) -> None:
        """XML's own five entities read; any other reference is a problem at its line."""
        (person,) = elements(b"<people><person>&lt;&amp;&gt;&quot;&apos;</person></people>")
        assert person.text == "<&>\"'"
        problem = refused(b"<people>\n<person>&name;</person></people>")
        assert (problem.line, "undefined entity" in problem.reason) == (2, True)


class TestEncodings:
    """The encoding a byte-order mark or the XML declaration gives; else UTF-8, strictly."""

    @pytest.mark.parametrize(
        ("encoding", "declared", "bom"),
        [
            ("utf-8", "UTF-8", b""),
            ("utf-8", "UTF-8", codecs.BOM_UTF8),
            ("utf-16-le", "UTF-16", codecs.BOM_UTF16_LE),
            ("utf-16-be", "UTF-16", codecs.BOM_UTF16_BE),
            ("utf-16-le", "UTF-16", b""),
            ("latin-1", "ISO-8859-1", b""),
            ("cp1252", "windows-1252", b""),
            ("iso8859-15", "ISO-8859-15", b""),
        ],
    )
    def test_the_declared_encoding_is_honoured(
        self, encoding: str, declared: str, bom: bytes
    ) -> None:
        """Each reads to the same names and lines."""
        data = bom + PEOPLE.format(encoding=declared).encode(encoding)
        first, second = elements(data)
        assert first.first("name").get("family") == "Ødegård"  # type: ignore[union-attr]
        assert second.first("name").get("family") == "Ó Súilleabháin"  # type: ignore[union-attr]
        assert (first.line, second.line) == (3, 7)

    def test_a_mark_wins_over_the_declaration(self) -> None:
        """UTF-8 with its mark, declared ISO-8859-1: read as UTF-8, as the mark says."""
        data = codecs.BOM_UTF8 + PEOPLE.format(encoding="ISO-8859-1").encode()
        assert elements(data)[0].first("name").get("given") == "Zoë"  # type: ignore[union-attr]

    def test_any_encoding_python_knows_is_honoured(self) -> None:
        """Shift_JIS declared: a Japanese name reads back, where UTF-8 would refuse it."""
        text = '<?xml version="1.0" encoding="Shift_JIS"?>\n<people><p n="山田太郎"/></people>'
        (element,) = elements(text.encode("shift_jis"), "p")
        assert (element.get("n"), element.line) == ("山田太郎", 2)

    def test_no_declaration_is_utf8(self) -> None:
        """XML without a declaration is UTF-8, and reads as such."""
        assert xml_encoding("<a b='Zoë'/>".encode(), file="people.xml") == ("utf-8", 0)

    def test_undeclared_cp1252_is_refused_with_advice_that_fits_xml(self) -> None:
        """Not valid UTF-8 and nothing declared: name the encoding, never "allow cp1252"."""
        data = PEOPLE.replace(' encoding="{encoding}"', "").encode("cp1252")
        problem = refused(data)
        assert isinstance(problem, EncodingError)
        assert "declares no encoding" in problem.reason
        assert "XML declaration" in problem.reason
        assert "allow cp1252" not in problem.reason
        assert problem.offset == data.index("ë".encode("cp1252"))

    def test_bytes_not_in_the_declared_encoding_are_refused(self) -> None:
        """Declared UTF-8, written in cp1252: the offset, and no value."""
        data = PEOPLE.format(encoding="UTF-8").encode("cp1252")
        problem = refused(data)
        assert isinstance(problem, EncodingError)
        assert "encoding its XML declaration names" in problem.reason
        assert "Zo" not in str(problem)

    def test_utf8_declared_as_latin1_is_refused(self) -> None:
        """Read as declared, every accented name would turn to mojibake."""
        problem = refused(PEOPLE.format(encoding="ISO-8859-1").encode())
        assert "the text is UTF-8" in problem.reason

    def test_an_unknown_or_wide_declared_encoding_is_refused_unquoted(self) -> None:
        """Never quoted: a declaration is text read from the file."""
        unknown = refused(PEOPLE.format(encoding="x-wrenfield-9").encode())
        assert "not known" in unknown.reason
        assert "wrenfield" not in str(unknown)
        wide = refused(PEOPLE.format(encoding="UTF-16").encode())
        assert "byte-order mark" in wide.reason

    def test_utf32_without_a_mark_is_named(self) -> None:
        """As for every reader: refused by name."""
        problem = refused(PEOPLE.format(encoding="UTF-32").encode("utf-32-le"))
        assert "UTF-32 without a byte-order mark" in problem.reason

    @given(st.text(st.characters(codec="latin-1", exclude_categories=("Cs", "Cc")), max_size=40))
    def test_any_latin1_text_reads_back_as_declared(self, text: str) -> None:
        """Whatever ISO-8859-1 text a declared file holds, it reads back the same."""
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace("\r", "")
        data = f'<?xml version="1.0" encoding="ISO-8859-1"?><p>{escaped}</p>'.encode("latin-1")
        if looks_like_utf8(data) and first_error(data, 0, "utf-8") is None:
            assert "the text is UTF-8" in refused(data, "p").reason
            return
        (element,) = elements(data, "p")
        assert element.text == escaped.replace("&amp;", "&").replace("&lt;", "<")


def _element(file: str, name: str, line: int) -> Element:
    return Element(name, file, line, 1)


class TestRejections:
    """One limit, across files and element names; every rejected element a problem."""

    def counted(self, counter: Rejections) -> list[Element]:
        """Three pupils of pupils.xml, two links of links.xml, counted as read."""
        pupils = [_element("pupils.xml", "pupil", line) for line in (2, 3, 4)]
        links = [_element("links.xml", "link", line) for line in (2, 3)]
        return [*counter.count(pupils), *counter.count(links)]

    def test_at_zero_one_rejection_refuses_with_every_problem(self) -> None:
        """Both files' problems are in the one error, by file and line, naming no value."""
        counter = Rejections()
        pupil, _, _, link, _ = self.counted(counter)
        counter.reject(pupil, "email", "an email type the format has not")
        counter.reject(link, "pupil", "names no pupil")
        with pytest.raises(RejectedFileError) as caught:
            counter.reading("mis", AT, [Record("P2", ContactData())])
        assert [(p.file, p.line, p.field) for p in caught.value.problems] == [
            ("links.xml", 2, "pupil"),
            ("pupils.xml", 2, "email"),
        ]
        assert "1 of 2 link elements of links.xml; 1 of 3 pupil elements" in str(caught.value)

    def test_above_zero_a_delta_whose_notices_name_every_problem(self) -> None:
        """Under the limit nothing is dropped: each problem is a notice, the reading a delta."""
        counter = Rejections(max_fraction=0.5)
        pupil, _, _, link, _ = self.counted(counter)
        counter.reject(pupil, "email", "an email type the format has not")
        counter.reject(pupil, "role", "a role the format has not")  # one element, one rejection
        counter.reject(link, "pupil", "names no pupil", at=_element("links.xml", "x", 9))
        reading = counter.reading("mis", AT, [Record("P3", ContactData())])
        assert reading.snapshot.kind is SnapshotKind.DELTA
        assert (reading.rejected, counter.total) == (2, 2)
        assert [(n.code, n.file, n.line, n.field) for n in reading.notices] == [
            ("elements-rejected", None, None, None),
            ("element-rejected", "links.xml", 9, "pupil"),
            ("element-rejected", "pupils.xml", 2, "email"),
            ("element-rejected", "pupils.xml", 2, "role"),
        ]
        assert counter.rejected(pupil)
        assert not counter.rejected(_element("pupils.xml", "pupil", 3))

    def test_the_limit_holds_per_file_and_name(self) -> None:
        """Two of three pupils is over a half; one of two links is not."""
        counter = Rejections(max_fraction=0.5)
        first, second, _, link, _ = self.counted(counter)
        for element in (first, second, link):
            counter.reject(element, "id", "no id")
        with pytest.raises(RejectedFileError) as caught:
            counter.check()
        assert str(caught.value).startswith("2 of 3 pupil elements of pupils.xml rejected")
        assert len(caught.value.problems) == 3  # the links' problem too

    def test_a_group_all_rejected_is_refused_at_any_limit(self) -> None:
        """At 1.0 too: an export of nothing readable is never a delta of nothing."""
        counter = Rejections(max_fraction=1.0)
        (only,) = counter.count([_element("links.xml", "link", 2)])
        counter.reject(only, "pupil", "names no pupil")
        with pytest.raises(RejectedFileError):
            counter.check()

    @given(st.integers(1, 30), st.data(), st.sampled_from([0.0, 0.02, 0.1, 0.5, 1.0]))
    def test_refused_exactly_when_over_the_limit(
        self, read: int, data: st.DataObject, fraction: float
    ) -> None:
        """Refused if every element or more than the fraction of them was rejected."""
        bad = data.draw(st.integers(0, read))
        counter = Rejections(max_fraction=fraction)
        found = list(counter.count(_element("a.xml", "a", line) for line in range(read)))
        for element in found[:bad]:
            counter.reject(element, None, "bad")
        over = bad > 0 and (bad == read or bad > fraction * read)
        if over:
            with pytest.raises(RejectedFileError):
                counter.check()
        else:
            counter.check()

    def test_a_key_on_several_elements_is_neither(self) -> None:
        """Across files: both rejected, each naming where the other is; an empty key too."""
        counter = Rejections(max_fraction=1.0)
        pupil, contact, nameless, kept = counter.count(
            [
                _element("pupils.xml", "pupil", 3),
                _element("contacts.xml", "contact", 7),
                _element("contacts.xml", "contact", 9),
                _element("pupils.xml", "pupil", 4),
            ]
        )
        found = counter.one_each([("P1", pupil), ("P1", contact), ("", nameless), ("P2", kept)])
        assert found == {"P2": kept}
        assert [(p.file, p.line) for p in counter.problems] == [
            ("contacts.xml", 7),
            ("contacts.xml", 9),
            ("pupils.xml", 3),
        ]
        assert "pupils.xml line 3, contacts.xml line 7" in counter.problems[0].reason

    def test_a_full_reading_in_key_order_keeping_the_time(self) -> None:
        """No rejection: full, records sorted by key, the time as given (any zone)."""
        counter = Rejections()
        london = AT.astimezone(timezone(timedelta(hours=1)))
        reading = counter.reading(
            "wrenfield", london, [Record("b", ContactData()), Record("a", ContactData())]
        )
        assert reading.snapshot.kind is SnapshotKind.FULL
        assert [r.key for r in reading.snapshot.records] == ["a", "b"]
        assert reading.snapshot.extracted_at == london
        assert reading.snapshot.source == "wrenfield"

    def test_an_empty_export_is_refused(self) -> None:
        """Nobody read and nothing rejected is never everyone leaving."""
        with pytest.raises(RejectedFileError, match="empty export"):
            Rejections().reading("mis", AT, [])

    @pytest.mark.parametrize("fraction", [-0.1, 1.5])
    def test_the_limit_is_a_fraction(self, fraction: float) -> None:
        """Outside 0 to 1 it is the caller's mistake."""
        with pytest.raises(UsageError):
            Rejections(max_fraction=fraction)
