"""The conformance kit fails each bug integrators really plant, in a reference adapter.

``kit_reference_adapter.py`` is a small, correct adapter for a format of three
XML files (people, contact points, links). Each entry of ``PLANTED`` is a copy
of it with one bug that an integrator's adapter had and the kit used to pass;
the whole kit runs over each copy in one pytest session, and each must fail
the check named for it.
"""

from __future__ import annotations

from pathlib import Path

# Imported here, before the sessions run inside this one: pytester drops
# the modules a session imports first, and Hypothesis (whose plugin those
# sessions load) cannot be imported a second time into one process.
import hypothesis  # noqa: F401
import pytest

from sourcetruth.testing.conformance import SourceAdapterContract

HERE = Path(__file__).resolve().parent

PREAMBLE = """
from datetime import UTC

import pytest
from kit_reference_adapter import GreenfieldAdapter, expat, parse, write_export
from sourcetruth.exceptions import SourceDataError
from sourcetruth.testing.conformance import SourceAdapterContract


class Fitted(SourceAdapterContract):
    adapter_class = GreenfieldAdapter

    @pytest.fixture
    def make_adapter(self):
        def make(snapshot, folder):
            write_export(snapshot, folder)
            return self.adapter_class(folder, source=snapshot.source)
        return make

    @pytest.fixture
    def make_lenient_adapter(self):
        def make(snapshot, folder):
            write_export(snapshot, folder)
            return self.adapter_class(folder, source=snapshot.source, max_reject_fraction=0.5)
        return make
"""

#: Each planted bug: the adapter's code, and the check of the kit that must fail it.
PLANTED = {
    "reference": ("class Adapter(GreenfieldAdapter):\n    pass\n", None),
    "an_error_quotes_the_bad_line": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def not_xml(self, name, data, error):\n"
        "        line = data.splitlines()[error.lineno - 1].decode('utf-8', 'replace')\n"
        "        return SourceDataError(f'bad line: {line}', file=name, line=error.lineno)\n",
        "test_a_spoilt_value_is_refused_naming_its_file",
    ),
    "falls_back_to_latin_1": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def parse(self, data):\n"
        "        try:\n"
        "            return parse(data)\n"
        "        except expat.ExpatError:\n"
        "            return parse(data, encoding='ISO-8859-1')\n",
        "test_a_spoilt_value_is_refused_naming_its_file",
    ),
    "the_source_name_is_hard_coded": (
        "class Adapter(GreenfieldAdapter):\n"
        "    @property\n"
        "    def source(self):\n"
        "        return 'mis'\n",
        "test_reads_a_full_snapshot",
    ),
    "skips_a_record_without_a_name": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def person(self, person, role):\n"
        "        data = super().person(person, role)\n"
        "        return data if data.given_name or data.family_name else None\n",
        "test_a_record_without_a_name_is_read_or_reported",
    ),
    "forces_the_time_to_utc": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def extracted_at(self, given):\n"
        "        return given.replace(tzinfo=UTC)\n",
        "test_reads_a_full_snapshot",
    ),
    "keeps_links_in_file_order": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def in_order(self, links):\n"
        "        return tuple(links)\n",
        "test_the_order_of_links_does_not_matter",
    ),
    "skips_a_bad_link_silently": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def unknown_pupil(self, found, pupil):\n"
        "        pass\n",
        "test_a_link_to_nobody_is_read_or_reported",
    ),
    "a_raw_value_error_from_a_number": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def priority(self, pupil, key, found):\n"
        "        return int(pupil.attrs.get('priority', '1'))\n",
        "test_a_number_that_is_not_one_is_refused_or_reported",
    ),
    "passes_a_duplicated_id_through": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def refuse_duplicates(self, lines, found):\n"
        "        pass\n",
        "test_a_duplicated_record_is_refused_or_reported",
    ),
    "drops_the_problems_of_a_partial_read": (
        "class Adapter(GreenfieldAdapter):\n"
        "    def rejection_notices(self, found):\n"
        "        return []\n",
        "test_a_partly_broken_input_is_read_in_part",
    ),
}

#: The checks that do not apply to the reference adapter, and so are skipped.
SKIPPED = {"test_a_rejected_row_is_never_a_departure", "test_delta_on_full_equals_next_full"}


def _class_name(name: str) -> str:
    return "Test" + "".join(part.title() for part in name.split("_"))


def _outcomes(result: pytest.RunResult, word: str) -> dict[str, set[str]]:
    """The checks of each class that ended as *word* (FAILED, SKIPPED...), from ``-rA``."""
    found: dict[str, set[str]] = {}
    for line in result.outlines:
        if line.startswith(word + " ") and "::" in line:
            _file, cls, test = line.split(" ")[1].split("::")[:3]
            found.setdefault(cls, set()).add(test.split(" ")[0])
    return found


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, module: str
) -> pytest.RunResult:
    monkeypatch.syspath_prepend(str(HERE))
    pytester.makepyfile(test_planted=module)
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-rA")


def test_the_kit_fails_each_planted_bug(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference passes every check that applies; each planted copy fails its check."""
    module = [PREAMBLE]
    for name, (adapter, _) in sorted(PLANTED.items()):
        suffix = _class_name(name)
        module.append(adapter.replace("class Adapter(", f"class Adapter{suffix}("))
        module.append(f"class {suffix}(Fitted):\n    adapter_class = Adapter{suffix}\n")
    result = _run(pytester, monkeypatch, "\n\n".join(module))
    failed = _outcomes(result, "FAILED")
    passed = _outcomes(result, "PASSED")
    reference = _class_name("reference")
    assert reference not in failed, "\n".join(result.outlines[-60:])
    checks = {name for name in dir(SourceAdapterContract) if name.startswith("test_")}
    assert passed[reference] == checks - SKIPPED
    missed = {
        name: sorted(failed.get(_class_name(name), ()))
        for name, (_, check) in PLANTED.items()
        if check is not None and check not in failed.get(_class_name(name), ())
    }
    assert not missed, f"the kit missed planted bugs (name: what failed instead): {missed}"


LOUD = """
class TestSortingWriter(Fitted):
    @pytest.fixture
    def make_adapter(self):
        def make(snapshot, folder):
            ordered = sorted(snapshot.records, key=lambda r: r.key)
            write_export(attrs.evolve(snapshot, records=ordered), folder)
            return GreenfieldAdapter(folder, source=snapshot.source)
        return make


class TestNoLenientAdapter(Fitted):
    @pytest.fixture
    def make_lenient_adapter(self):
        return None


class TestSaysWhy(TestNoLenientAdapter):
    @pytest.fixture
    def not_applicable(self):
        return {"test_a_partly_broken_input_is_read_in_part": "Greenfield refuses any bad person"}


class TestMisspeltCheck(Fitted):
    @pytest.fixture
    def not_applicable(self):
        return {"test_nothing_of_the_kind": "a typo"}
"""


def test_the_kit_says_what_it_cannot_check(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that sorts, or no lenient adapter, fails saying why; a reason given skips."""
    result = _run(pytester, monkeypatch, PREAMBLE + "\nimport attrs\n" + LOUD)
    failed = _outcomes(result, "FAILED")
    text = "\n".join(result.outlines)
    assert "test_the_order_of_written_records_does_not_matter" in failed["TestSortingWriter"]
    assert "it sorts them, so the kit cannot check" in text
    assert failed["TestNoLenientAdapter"] == {"test_a_partly_broken_input_is_read_in_part"}
    assert "override make_lenient_adapter" in text
    assert "TestSaysWhy" not in failed
    assert "not applicable, says the adapter's test: Greenfield refuses any bad person" in text
    assert len(_outcomes(result, "ERROR")["TestMisspeltCheck"]) == len(
        [n for n in dir(SourceAdapterContract) if n.startswith("test_")]
    )
    assert "not_applicable names what is no check of the kit: ['test_nothing_of_the_kind']" in text
