"""The example adapter of docs/adapters.md passes the conformance kit."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from example_adapter import HartleyAdapter, write_people

from sourcetruth import Email, Snapshot
from sourcetruth.testing.conformance import SourceAdapterContract, sample_school


class TestHartleyAdapter(SourceAdapterContract):
    """What an integrator writes: the adapter at reject limits 0 and 50%, and the sample fitted."""

    @pytest.fixture
    def make_adapter(self):
        def make(snapshot: Snapshot, folder: Path) -> HartleyAdapter:
            write_people(snapshot, folder)
            return HartleyAdapter(folder, source=snapshot.source)

        return make

    @pytest.fixture
    def make_lenient_adapter(self):
        def make(snapshot: Snapshot, folder: Path) -> HartleyAdapter:
            write_people(snapshot, folder)
            return HartleyAdapter(folder, source=snapshot.source, max_reject_fraction=0.5)

        return make

    @pytest.fixture
    def sample(self, source_name: str) -> Snapshot:
        # The format has one mobile and one untyped email per person.
        school = sample_school(source_name)
        fitted = [
            attrs.evolve(
                r,
                data=attrs.evolve(
                    r.data,
                    phones=r.data.phones[:1],
                    emails=[Email(e.address) for e in r.data.emails[:1]],
                ),
            )
            for r in school.records
        ]
        return attrs.evolve(school, records=fitted)


def test_the_page_shows_the_adapter_as_it_is() -> None:
    """docs/adapters.md holds example_adapter.py word for word, so the two cannot drift."""
    here = Path(__file__).parent
    assert (here / "example_adapter.py").read_text() in (here / "adapters.md").read_text()
