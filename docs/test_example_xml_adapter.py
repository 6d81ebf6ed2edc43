"""The XML example adapter of docs/adapters.md passes the conformance kit."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from example_xml_adapter import WrenfieldAdapter, write_export

from sourcetruth import RejectedFileError, Snapshot, SnapshotKind
from sourcetruth.exceptions import format_errors
from sourcetruth.testing.conformance import (
    SourceAdapterContract,
    personal_values,
    sample_school,
)

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def break_email_type(folder: Path, key: str) -> None:
    """Make the email type of pupil *key* one the format has not: that element is rejected."""
    path = folder / "pupils.xml"
    text = path.read_text(encoding="utf-8")
    start = text.index(f'<pupil id="{key}"')
    end = text.index("</pupil>", start)
    spoilt = re.sub(r'<email type="\w+"', '<email type="pigeon"', text[start:end])
    path.write_text(text[:start] + spoilt + text[end:], encoding="utf-8")


class TestWrenfieldAdapter(SourceAdapterContract):
    """The kit, with an input where one pupil is unreadable, at both reject limits."""

    @pytest.fixture
    def make_adapter(self):
        def make(snapshot: Snapshot, folder: Path) -> WrenfieldAdapter:
            write_export(snapshot, folder)
            return WrenfieldAdapter(folder, source=snapshot.source)

        return make

    @pytest.fixture
    def make_lenient_adapter(self):
        def make(snapshot: Snapshot, folder: Path) -> WrenfieldAdapter:
            write_export(snapshot, folder)
            return WrenfieldAdapter(folder, source=snapshot.source, max_reject_fraction=0.5)

        return make

    @pytest.fixture(params=[0.0, 0.5], ids=["refused", "delta"])
    def partly_broken(self, request, sample: Snapshot, workdir: Callable[[], Path]):
        folder = workdir()
        write_export(sample, folder)
        break_email_type(folder, "P1002")
        adapter = WrenfieldAdapter(folder, source=sample.source, max_reject_fraction=request.param)
        return adapter, "P1002"


@pytest.fixture
def school(tmp_path: Path) -> Path:
    """The kit's sample school, written as a Wrenfield export."""
    write_export(sample_school("wrenfield"), tmp_path)
    return tmp_path


def test_a_rejected_pupil_is_reported_and_its_guardians_kept(school: Path) -> None:
    """Under the limit: a delta without the pupil, every problem a notice, links kept."""
    break_email_type(school, "P1002")
    reading = WrenfieldAdapter(school, source="wrenfield", max_reject_fraction=0.5).read(
        extracted_at=AT
    )
    assert reading.snapshot.kind is SnapshotKind.DELTA
    assert reading.rejected == 1
    keys = [r.key for r in reading.snapshot.records]
    assert keys == ["G2001", "G2002", "P1001", "P1003", "S3001"]
    rejected = [n for n in reading.notices if n.code == "element-rejected"]
    assert [(n.file, n.field) for n in rejected] == [("pupils.xml", "email")]
    guardian = {r.key: r for r in reading.snapshot.records}["G2001"]
    assert [r.pupil for r in guardian.data.relationships] == ["P1002"]


def test_a_bad_link_holds_its_contact_back_and_is_never_skipped(school: Path) -> None:
    """A link to nobody is a problem, and its contact is not read with half its links."""
    path = school / "links.xml"
    path.write_text(path.read_text(encoding="utf-8").replace('pupil="P1003"', 'pupil="P9"'))
    adapter = WrenfieldAdapter(school, source="wrenfield", max_reject_fraction=0.5)
    reading = adapter.read(extracted_at=AT)
    assert "G2002" not in {r.key for r in reading.snapshot.records}
    codes = [n.code for n in reading.notices]
    assert codes == ["held-back", "elements-rejected", "element-rejected"]
    with pytest.raises(RejectedFileError) as caught:
        WrenfieldAdapter(school, source="wrenfield").read(extracted_at=AT)
    assert "names no pupil of pupils.xml (file links.xml, line 5, field pupil)" in format_errors(
        caught.value
    )


def test_problems_of_several_files_are_all_reported(school: Path) -> None:
    """Over the limit, every rejected element of every file is in the one error."""
    break_email_type(school, "P1001")
    contacts = school / "contacts.xml"
    contacts.write_text(contacts.read_text(encoding="utf-8").replace('role="staff"', 'role="x"'))
    with pytest.raises(RejectedFileError) as caught:
        WrenfieldAdapter(school, source="wrenfield").read(extracted_at=AT)
    assert [(p.file, p.field) for p in caught.value.problems] == [
        ("contacts.xml", "role"),
        ("pupils.xml", "email"),
    ]
    assert not [v for v in personal_values(sample_school()) if v in format_errors(caught.value)]


def test_the_same_id_twice_is_refused(school: Path) -> None:
    """An id on a pupil and on a contact is neither's: both are problems, and links to it."""
    contacts = school / "contacts.xml"
    contacts.write_text(contacts.read_text(encoding="utf-8").replace('id="S3001"', 'id="P1001"'))
    with pytest.raises(RejectedFileError) as caught:
        WrenfieldAdapter(school, source="wrenfield").read(extracted_at=AT)
    assert [(p.file, p.field) for p in caught.value.problems] == [
        ("contacts.xml", "id"),
        ("links.xml", "pupil"),
        ("pupils.xml", "id"),
    ]


def test_the_page_shows_the_adapter_as_it_is() -> None:
    """docs/adapters.md holds example_xml_adapter.py word for word, and it is under 200 lines."""
    here = Path(__file__).parent
    code = (here / "example_xml_adapter.py").read_text()
    assert code in (here / "adapters.md").read_text()
    assert len(code.splitlines()) < 200
