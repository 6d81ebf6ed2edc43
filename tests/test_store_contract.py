"""The store contract, passed by the built-in stores and failed by broken ones."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.testing.delivery_logs import DeliveryLogContract
from sourcetruth.testing.stores import InterruptedStore, OpenStore, StoreContract
from sourcetruth.testing.transports import TransportContract


class TestSqliteStore(StoreContract):
    """The SQLite store keeps the store contract, interrupted before each SQL statement."""

    @pytest.fixture
    def open_store(self, store_folder: Path) -> OpenStore:
        """Each name a file of its own in the test's folder."""
        return lambda name: SqliteStore(store_folder / f"{name}.sqlite")

    @pytest.fixture
    def interrupted_store(self, store_folder: Path) -> InterruptedStore:
        """The store's statement hook raises before the commit's step-th statement."""

        def open_(name: str, step: int) -> SqliteStore:
            def hook(n: int) -> None:
                if n == step:
                    msg = f"interrupted before statement {n}"
                    raise RuntimeError(msg)

            return SqliteStore(store_folder / f"{name}.sqlite", statement_hook=hook)

        return open_


class TestJsonStore(StoreContract):
    """The JSON store keeps the store contract."""

    @pytest.fixture
    def open_store(self, store_folder: Path) -> Callable[[str], JsonStore]:
        """Each name a file of its own in the test's folder."""
        return lambda name: JsonStore(store_folder / f"{name}.json")


# Each broken store is run through the contract in a pytest session of its own
# making; every check its fault breaks must fail, and no other.
BROKEN_PREAMBLE = """
import json
import shutil

import attrs
import pytest

from sourcetruth.adapters._files import write_atomic
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.exceptions import ConflictError
from sourcetruth.serialise import FORMAT_VERSION, converter, dumps
from sourcetruth.testing.delivery_logs import DeliveryLogContract
from sourcetruth.testing.stores import StoreContract


class Fitted(StoreContract):
    store_class = JsonStore
    suffix = ".json"

    @pytest.fixture
    def open_store(self, store_folder):
        return lambda name: self.store_class(store_folder / f"{name}{self.suffix}")
"""

BROKEN_STORES: dict[str, tuple[str, set[str], set[str]]] = {
    "reference": ("class Store(JsonStore):\n    pass\n", set(), set()),
    "never_conflicts": (
        "class Store(JsonStore):\n"
        "    def commit(self, before, result, run):\n"
        "        super().commit(self.load(), result, run)  # whatever is there now\n",
        {
            "test_a_second_writer_from_the_same_base_conflicts",
            "test_a_stale_book_conflicts_on_the_same_handle",
            "test_the_loser_merges_again_and_nothing_is_lost",
        },
        # Threads may happen to take turns and lose nothing.
        {"test_writers_in_threads_lose_no_commit"},
    ),
    "keeps_a_copy_of_the_last_book": (
        "class Store(JsonStore):\n"
        "    def commit(self, before, result, run):\n"
        "        if self.path.exists():\n"
        "            shutil.copyfile(self.path, self.path.with_name(self.path.name + '.bak'))\n"
        "        super().commit(before, result, run)\n",
        {"test_erasure_leaves_no_bytes"},
        set(),
    ),
    "writes_the_book_then_the_journal": (
        "class Store(JsonStore):\n"
        "    def _commit(self, before, result, run):\n"
        "        stored, journal = self._read()\n"
        "        if stored.seq != before.seq:\n"
        "            raise ConflictError('changed')\n"
        "        document = {'book': dumps(result.book), 'journal': journal,\n"
        "                    'version': FORMAT_VERSION}\n"
        "        write_atomic(self.path, json.dumps(document).encode())\n"
        "        journal.append(converter.unstructure(run))\n"
        "        write_atomic(self.path, json.dumps(document).encode())\n",
        # It does not redact the journal on erasure either.
        {"test_a_commit_that_fails_part_way_changes_nothing", "test_erasure_leaves_no_bytes"},
        set(),
    ),
    "journal_newest_first": (
        "class Store(JsonStore):\n"
        "    def journal(self):\n"
        "        return tuple(reversed(super().journal()))\n",
        {
            "test_the_journal_keeps_every_run_in_order",
            "test_the_loser_merges_again_and_nothing_is_lost",
            "test_a_held_merge_is_journalled_and_the_book_kept",
            "test_a_commit_that_fails_part_way_changes_nothing",
        },
        set(),
    ),
    "forgets_the_groups": (
        "class Store(JsonStore):\n"
        "    def load(self):\n"
        "        return attrs.evolve(super().load(), groups={})\n",
        {
            "test_round_trip",
            "test_the_loser_merges_again_and_nothing_is_lost",
            "test_writers_in_threads_lose_no_commit",
        },
        set(),
    ),
    "repr_shows_the_book": (
        "class Store(JsonStore):\n    def __repr__(self):\n        return dumps(self.load())\n",
        {"test_repr_names_no_personal_value"},
        set(),
    ),
    "sqlite_leaves_its_log_full": (
        "class Store(SqliteStore):\n"
        "    def _forget(self):\n"
        "        pass  # no checkpoint, no rebuild: the WAL keeps the old pages\n",
        {"test_erasure_leaves_no_bytes"},
        set(),
    ),
}


def _class_name(name: str) -> str:
    return "Test" + "".join(part.title() for part in name.split("_"))


def test_the_contract_fails_exactly_the_broken_checks(pytester: pytest.Pytester) -> None:
    """Each deliberately broken store fails the checks its fault breaks, and only those."""
    module = [BROKEN_PREAMBLE]
    for name, (store, _, _) in sorted(BROKEN_STORES.items()):
        suffix = _class_name(name)
        module.append(store.replace("class Store(", f"class Store{suffix}("))
        extension = ".sqlite" if "SqliteStore" in store else ".json"
        module.append(
            f"class {suffix}(Fitted):\n"
            f"    store_class = Store{suffix}\n"
            f"    suffix = {extension!r}\n"
        )
    pytester.makepyfile(test_broken="\n\n".join(module))
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-rf")
    failed: dict[str, set[str]] = {_class_name(name): set() for name in BROKEN_STORES}
    for line in result.outlines:
        if line.startswith("FAILED"):
            _file, cls, test = line.split(" ")[1].split("::")
            failed[cls].add(test)
    for name, (_, must, may) in BROKEN_STORES.items():
        found = failed[_class_name(name)]
        assert must <= found <= must | may, (name, found, "\n".join(result.outlines[-40:]))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= 12 * len(BROKEN_STORES)


def test_the_contracts_are_named_by_the_testing_package_without_importing_pytest() -> None:
    """``sourcetruth.testing`` exports both contracts, yet importing it imports no test tool."""
    code = "import json, sys\nimport sourcetruth.testing\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    heavy = [m for m in json.loads(done.stdout) if m.split(".")[0] in {"hypothesis", "pytest"}]
    assert heavy == []
    import sourcetruth.testing as testing

    assert testing.StoreContract is StoreContract
    assert testing.TransportContract is TransportContract
    assert testing.DeliveryLogContract is DeliveryLogContract
    assert testing.__all__ == ["DeliveryLogContract", "StoreContract", "TransportContract"]
