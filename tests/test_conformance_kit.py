"""The conformance kit fails adapters that break its rules, each at the right check."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

# The docs' example adapter, fitted as its own test does, and broken one way
# per class. Each class is run through the kit in a pytest session of its own.
PREAMBLE = """
import itertools
import attrs
import pytest
from example_adapter import HartleyAdapter, write_people
from sourcetruth import Email, Phone
from sourcetruth.adapters import Notice
from sourcetruth.exceptions import SourceDataError
from sourcetruth.testing.conformance import SourceAdapterContract, sample_school


class Fitted(SourceAdapterContract):
    adapter_class = HartleyAdapter

    @pytest.fixture
    def make_adapter(self):
        def make(snapshot, folder):
            write_people(snapshot, folder)
            return self.adapter_class(folder, source=snapshot.source)
        return make

    @pytest.fixture
    def make_lenient_adapter(self):
        def make(snapshot, folder):
            write_people(snapshot, folder)
            return self.adapter_class(folder, source=snapshot.source, max_reject_fraction=0.5)
        return make

    @pytest.fixture
    def sample(self, source_name):
        school = sample_school(source_name)
        fitted = [
            attrs.evolve(r, data=attrs.evolve(
                r.data, phones=r.data.phones[:1],
                emails=[Email(e.address) for e in r.data.emails[:1]]))
            for r in school.records
        ]
        return attrs.evolve(school, records=fitted)


def rewrite(reading, **changes):
    records = [
        attrs.evolve(r, data=attrs.evolve(r.data, **changes)) for r in reading.snapshot.records
    ]
    return attrs.evolve(reading, snapshot=attrs.evolve(reading.snapshot, records=records))
"""

BROKEN = {
    "reference": (
        "class Adapter(HartleyAdapter):\n    pass\n",
        set(),
    ),
    "reference_with_a_notice": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        reading = super().read(extracted_at=extracted_at)\n"
        "        said = [Notice('header-unknown', 'a column nobody reads', 'people.txt', 1)]\n"
        "        return attrs.evolve(reading, notices=said)\n",
        set(),
    ),
    "drops_a_covered_field": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        return rewrite(super().read(extracted_at=extracted_at), emails=())\n",
        {"test_every_covered_field_round_trips"},
    ),
    "fills_a_field_it_does_not_cover": (
        "class Adapter(HartleyAdapter):\n"
        "    covers = frozenset({'given_name', 'family_name', 'role', 'phones'})\n",
        {"test_every_covered_field_round_trips"},
    ),
    "changes_a_value": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        reading = super().read(extracted_at=extracted_at)\n"
        "        return rewrite(reading, phones=())\n",
        {"test_every_covered_field_round_trips"},
    ),
    "order_is_not_canonical": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        reading = super().read(extracted_at=extracted_at)\n"
        "        records = sorted(reading.snapshot.records, key=lambda r: r.data.given_name)\n"
        "        return attrs.evolve(reading, snapshot=attrs.evolve(reading.snapshot,"
        " records=records))\n",
        {"test_snapshots_are_deterministic"},
    ),
    "keys_change_between_reads": (
        "COUNT = itertools.count()\n"
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        reading = super().read(extracted_at=extracted_at)\n"
        "        n = next(COUNT)\n"
        "        records = [attrs.evolve(r, key=f'{r.key}-{n}')\n"
        "                   for r in reading.snapshot.records]\n"
        "        return attrs.evolve(reading, snapshot=attrs.evolve(reading.snapshot,"
        " records=records))\n",
        {
            "test_reading_twice_gives_equal_snapshots",
            "test_snapshots_are_deterministic",
            "test_the_order_of_written_records_does_not_matter",
            "test_keys_are_stable_across_reads",
            "test_every_covered_field_round_trips",
            "test_a_partly_broken_input_is_read_in_part",
            "test_a_record_without_a_name_is_read_or_reported",
            "test_merges_into_a_book",
        },
    ),
    "a_notice_names_a_person": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        reading = super().read(extracted_at=extracted_at)\n"
        "        said = [Notice('hello', f'read {r.data.given_name}')"
        " for r in reading.snapshot.records]\n"
        "        return attrs.evolve(reading, notices=said)\n",
        {
            "test_notices_and_repr_name_no_personal_value",
            # the notices of a partial read and of a nameless record name people too
            "test_a_partly_broken_input_is_read_in_part",
            "test_a_record_without_a_name_is_read_or_reported",
        },
    ),
    "an_error_chains_to_a_value": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        data = self.path.read_bytes()\n"
        "        if b'\\xc3\\x28' in data:\n"
        "            raise SourceDataError('bad bytes') from ValueError(data.decode('latin-1'))\n"
        "        return super().read(extracted_at=extracted_at)\n",
        {"test_bad_input_gives_typed_errors", "test_a_spoilt_value_is_refused_naming_its_file"},
    ),
    "repr_shows_the_file": (
        "class Adapter(HartleyAdapter):\n"
        "    def __repr__(self):\n"
        "        return self.path.read_text()\n",
        {"test_notices_and_repr_name_no_personal_value"},
    ),
    "bad_input_is_not_a_data_error": (
        "class Adapter(HartleyAdapter):\n"
        "    def read(self, *, extracted_at):\n"
        "        self.path.read_bytes().decode('utf-8')\n"
        "        return super().read(extracted_at=extracted_at)\n",
        {"test_bad_input_gives_typed_errors", "test_a_spoilt_value_is_refused_naming_its_file"},
    ),
}


def _class_name(name: str) -> str:
    return "Test" + "".join(part.title() for part in name.split("_"))


def test_the_kit_fails_exactly_the_broken_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each deliberately broken adapter fails the checks its fault breaks, and only those."""
    monkeypatch.syspath_prepend(str(DOCS))
    module = [PREAMBLE]
    for name, (adapter, _) in sorted(BROKEN.items()):
        suffix = _class_name(name)
        module.append(adapter.replace("class Adapter(", f"class Adapter{suffix}("))
        module.append(f"class {suffix}(Fitted):\n    adapter_class = Adapter{suffix}\n")
    pytester.makepyfile(test_broken="\n\n".join(module))
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-rf")
    failed: dict[str, set[str]] = {_class_name(name): set() for name in BROKEN}
    for line in result.outlines:
        if line.startswith("FAILED"):
            _file, cls, test = line.split(" ")[1].split("::")
            failed[cls].add(test)
    expected = {_class_name(name): tests for name, (_, tests) in BROKEN.items()}
    assert failed == expected, "\n".join(result.outlines[-40:])
    outcomes = result.parseoutcomes()
    ran = outcomes.get("passed", 0) + outcomes.get("failed", 0)
    assert ran >= 9 * len(BROKEN), "the kit did not run"
