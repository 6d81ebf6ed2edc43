"""The same changes give the same bytes from SQLite and PostgreSQL: book, exports and journal.

A random history (nightly syncs, deltas, imports, address-book saves and
removals, overrides, groups, sometimes an erasure) is committed change by
change to an SQLite store and to a book of a PostgreSQL database; what each
store then loads must serialise, export and journal byte for byte the same.
"""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budget
from school import full, guardian, london, mis_policy, school
from sourcetruth import ADDRESS_BOOK, Book, Erase, Policy, Record, contacts_at, dumps
from sourcetruth._overlay import root_of
from sourcetruth.adapters.sources.export import export_csv
from sourcetruth.adapters.sources.vcard import format_vcards
from sourcetruth.adapters.stores._rows import Table
from sourcetruth.adapters.stores.base import apply
from sourcetruth.protocols import Store
from stores import Place, StoredMerge, place_for
from test_properties import History, histories, later

BOOKS = count()


@pytest.fixture(scope="module")
def places(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Place, Place]:
    """A folder of SQLite files and one PostgreSQL database, each example a book in both."""
    folder = tmp_path_factory.mktemp("exports")
    return Place("sqlite", folder), place_for(request, "postgres", folder, "exports")


def everything(store: Store, policy: Policy, history: History) -> dict[str, str]:
    """Every form the library gives of the store's book, as text."""
    book = store.load()
    at = history.now
    cards = [
        Record(key, state.current.data)
        for key, state in sorted(book.records.get(ADDRESS_BOOK, {}).items())
        if state.current.data is not None
    ]
    return {
        "book": dumps(book),
        "csv": export_csv(book, policy=policy, at=at),
        "csv with departed": export_csv(book, policy=policy, at=at, include_departed=True),
        "vcard 3.0": format_vcards(cards, version="3.0"),
        "vcard 4.0": format_vcards(cards, version="4.0"),
        "contacts": "\n".join(dumps(c) for c in contacts_at(book, policy=policy, at=at)),
        "journal": "\n".join(dumps(run) for run in store.journal()),
    }


@settings(
    max_examples=budget.examples(6),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories(), erase=st.booleans(), data=st.data())
def test_sqlite_and_postgresql_give_the_same_bytes(
    places: tuple[Place, Place], history: History, erase: bool, data: st.DataObject
) -> None:
    """Each change committed to both stores: book, CSV, vCards, contacts and journal agree."""
    steps = [(step.change, step.at) for step in history.steps]
    if erase and history.book.contacts:
        cid = data.draw(st.sampled_from(sorted(history.book.contacts)))
        steps.append((Erase(cid), later(history.now, 1)))
    name = f"book-{next(BOOKS)}"
    stores = [place.open(name) for place in places]
    try:
        for store in stores:
            for i, (change, at) in enumerate(steps):
                apply(store, change, policy=history.policy, at=at, by="test", run_id=f"run-{i}")
        sqlite, postgres = (everything(store, history.policy, history) for store in stores)
    finally:
        for store in stores:
            store.close()
    assert sqlite["book"] != dumps(Book())  # the comparison has a book to compare
    for form, text in sqlite.items():
        assert postgres[form] == text, form


def test_a_stored_merge_commits_each_merge_and_replays_a_branch(tmp_path: Path) -> None:
    """The router behind ``store_kind`` gives back books loaded from a store, branches too."""
    policy = mis_policy()
    route = StoredMerge(Place("sqlite", tmp_path))
    monday = route(
        Book(), full(london(23, 1, 55), school()), policy=policy, at=london(23, 2), by="n"
    )
    assert isinstance(root_of(monday.book.contacts), Table)
    tuesday = full(london(24, 1, 55), school(guardian("G9", "P9", mobile="07700 900999")))
    first = route(monday.book, tuesday, policy=policy, at=london(24, 2), by="n")
    again = route(monday.book, tuesday, policy=policy, at=london(24, 2), by="n")  # a branch
    assert (route.committed, route.replayed) == (3, 1)
    assert dumps(again.book) == dumps(first.book)
    assert isinstance(root_of(again.book.contacts), Table)
    route.close()
