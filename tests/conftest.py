"""Shared fixtures; the helpers themselves live in `school.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import budget
from school import mis_policy
from sourcetruth import Policy
from stores import Place, StoredMerge, kinds, place_for, routed

# pytester runs small test sessions inside a test: how the conformance kit's
# own tests check that it fails broken adapters.
pytest_plugins = ("pytester",)


@pytest.fixture
def policy() -> Policy:
    """The MIS-and-import policy of the test school."""
    return mis_policy()


@pytest.fixture(scope="module", params=kinds("memory", "sqlite", "postgres"))
def store_kind(request: pytest.FixtureRequest) -> str:
    """Where the module's books are kept: in memory, in SQLite or in PostgreSQL (tests/stores.py).

    A module names other kinds with
    ``pytest.mark.parametrize("store_kind", kinds(...), indirect=True, scope="module")``.
    """
    return str(request.param)


@pytest.fixture(scope="module")
def module_place(
    request: pytest.FixtureRequest, store_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Place | None:
    """Where the module's stores live (one database for all its books); None in memory."""
    if store_kind == "memory":
        return None
    folder = tmp_path_factory.mktemp(store_kind)
    place = place_for(request, store_kind, folder, request.module.__name__)
    # The books of the module's other tests stay loaded a while, each a reader the rewrite
    # after an erasure would wait for: it gives up at once and is retried at the next commit.
    place.forget_lock_timeout = 0.05
    return place


@pytest.fixture
def test_place(request: pytest.FixtureRequest, store_kind: str, tmp_path: Path) -> Place:
    """Where the test's own stores of its kind live: a folder, or a database of its own."""
    return place_for(request, store_kind, tmp_path, request.node.name)


@pytest.fixture(scope="module")
def merges_through_store(module_place: Place | None) -> Iterator[StoredMerge | None]:
    """The module's ``stores.merge`` commits to its kind's store and loads the book back."""
    with routed(module_place) as route:
        yield route


#: A property test run against PostgreSQL tries this share of its examples (a commit there is
#: some ninety statements, each a round trip): a tenth in a contributor's run, half in the full one.
POSTGRES_SHARE = 2 if budget.FULL else 10


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Run a property test whose ``store_kind`` is PostgreSQL on fewer examples.

    Hypothesis reads a test's settings from the function when it runs: they are
    lowered for this call only (the memory run of the same test keeps its count).
    """
    callspec = getattr(item, "callspec", None)
    function = getattr(item, "function", None)
    found = getattr(function, "_hypothesis_internal_use_settings", None)
    if callspec is None or callspec.params.get("store_kind") != "postgres" or found is None:
        return (yield)
    from hypothesis import settings

    fewer = settings(found, max_examples=max(2, found.max_examples // POSTGRES_SHARE))
    function._hypothesis_internal_use_settings = fewer  # type: ignore[union-attr]
    try:
        return (yield)
    finally:
        function._hypothesis_internal_use_settings = found  # type: ignore[union-attr]
