"""The copy-on-write overlay behaves as a copy of its base in a dict, and says what changed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth._overlay import (
    GONE,
    MAX_DEPTH,
    Overlay,
    changed_keys,
    folded,
    root_of,
    settled,
)

KEYS = st.sampled_from([f"k{i}" for i in range(12)])
#: An operation on a mapping: set a key to a value, or delete a key (if present).
OPERATIONS = st.lists(
    st.one_of(st.tuples(st.just("set"), KEYS, st.integers(0, 3)), st.tuples(st.just("del"), KEYS)),
    max_size=40,
)


def applied(mapping: dict[str, int] | Overlay[str, int], operations: list[tuple]) -> None:
    """Apply *operations* to *mapping* (a delete of an absent key is skipped)."""
    for operation in operations:
        if operation[0] == "set":
            mapping[operation[1]] = operation[2]
        elif operation[1] in mapping:
            del mapping[operation[1]]


class TestOverlay:
    @given(st.dictionaries(KEYS, st.integers(0, 3)), st.lists(OPERATIONS, max_size=20))
    def test_a_chain_of_overlays_reads_as_a_dict(
        self, base: dict[str, int], steps: list[list[tuple]]
    ) -> None:
        """Any operations over any chain (folded when deep) read, iterate and count as a dict."""
        expected = dict(base)
        current: object = base
        for operations in steps:
            overlay: Overlay[str, int] = Overlay(current)  # type: ignore[arg-type]
            applied(overlay, operations)
            applied(expected, operations)
            current = settled(overlay)
            assert dict(current.items()) == expected  # type: ignore[attr-defined]
            assert sorted(current) == sorted(expected)  # type: ignore[call-overload]
            assert len(current) == len(expected)  # type: ignore[arg-type]
            for key in ("k0", "k5", "k11"):
                assert (key in current) == (key in expected)  # type: ignore[operator]
                assert current.get(key, -1) == expected.get(key, -1)  # type: ignore[attr-defined]
                assert current.get(key) == expected.get(key)  # type: ignore[attr-defined]
        assert base == dict(base)  # the base itself never changed

    @given(st.dictionaries(KEYS, st.integers(0, 3)), st.lists(OPERATIONS, max_size=20))
    def test_folded_gives_every_item_once(
        self, base: dict[str, int], steps: list[list[tuple]]
    ) -> None:
        """The bulk less what changed over it, plus what changed and is not gone: the items."""
        current: Any = base
        for operations in steps:
            overlay: Overlay[str, int] = Overlay(current)
            applied(overlay, operations)
            current = settled(overlay)
            bulk, changes = folded(current)
            items = [(k, v) for k, v in bulk.items() if k not in changes]
            items += [(k, v) for k, v in changes.items() if v is not GONE]
            assert sorted(items) == sorted(current.items())

    def test_folded_takes_a_first_merge_into_nothing_as_its_bulk(self) -> None:
        """Over an empty root, the first overlay's writes are read as they are, not copied."""
        first: Overlay[str, int] = Overlay({})
        first["a"], first["b"] = 1, 2
        second: Overlay[str, int] = Overlay(settled(first))
        second["b"] = 3
        del second["a"]
        bulk, changes = folded(settled(second))
        assert bulk == {"a": 1, "b": 2}
        assert changes == {"a": GONE, "b": 3}

    @given(st.dictionaries(KEYS, st.integers(0, 3)), OPERATIONS)
    def test_order_is_a_dicts(self, base: dict[str, int], operations: list[tuple]) -> None:
        """Base keys in base order, then new keys as first written; a value set keeps its place."""
        overlay: Overlay[str, int] = Overlay(base)
        copy = dict(base)
        applied(overlay, [op for op in operations if op[0] == "set"])
        applied(copy, [op for op in operations if op[0] == "set"])
        assert list(overlay) == list(copy)

    @given(st.dictionaries(KEYS, st.integers(0, 3)), st.lists(OPERATIONS, max_size=5), OPERATIONS)
    def test_changed_keys_are_those_that_differ(
        self, base: dict[str, int], steps: list[list[tuple]], dry: list[tuple]
    ) -> None:
        """changed_keys finds exactly the keys whose value object differs or that left."""
        values = {i: object() for i in range(4)}
        root = {k: values[v] for k, v in base.items()}
        old: object = root
        for operations in steps:
            overlay = Overlay(old)  # type: ignore[arg-type]
            applied(
                overlay, [(o[0], o[1], values[o[2]]) if o[0] == "set" else o for o in operations]
            )
            old = settled(overlay)
        sibling = Overlay(old)  # type: ignore[arg-type]
        applied(sibling, [(o[0], o[1], values[o[2]]) if o[0] == "set" else o for o in dry])
        new = settled(sibling)
        for a, b in ((old, new), (root, new), (new, old)):
            write, gone = changed_keys(a, b)  # type: ignore[arg-type]
            expected_write = sorted(k for k in b if a.get(k) is not b[k])  # type: ignore[attr-defined, index]
            expected_gone = sorted(k for k in a if k not in b)  # type: ignore[attr-defined, operator]
            assert (write, gone) == (expected_write, expected_gone)

    def test_a_sealed_overlay_refuses_writes(self) -> None:
        """A book's maps are read-only: a write raises TypeError and changes nothing."""
        overlay: Overlay[str, int] = Overlay({"a": 1})
        overlay["b"] = 2
        sealed = settled(overlay)
        with pytest.raises(TypeError):
            sealed["c"] = 3  # type: ignore[index]
        assert dict(sealed) == {"a": 1, "b": 2}

    def test_untouched_overlay_settles_to_its_base(self) -> None:
        """An overlay that changed nothing gives back its base: the same object."""
        base = {"a": 1}
        assert settled(Overlay(base)) is base

    def test_deep_chains_are_folded(self) -> None:
        """However many merges, a read walks no more than MAX_DEPTH overlays."""
        current: object = {"a": 0}
        for i in range(5 * MAX_DEPTH):
            overlay: Overlay[str, int] = Overlay(current)  # type: ignore[arg-type]
            overlay[f"k{i}"] = i
            current = settled(overlay)
            assert current._depth <= MAX_DEPTH  # type: ignore[attr-defined]
        assert len(current) == 1 + 5 * MAX_DEPTH  # type: ignore[arg-type]

    def test_a_long_run_of_small_merges_over_a_dict_folds_into_a_new_root(self) -> None:
        """Changes over a dict root become a new dict once they pass sqrt(n); the old stays."""
        base = {f"k{i}": i for i in range(10_000)}
        current: Any = base
        books = []
        for i in range(600):
            overlay: Overlay[str, int] = Overlay(current)
            overlay[f"k{i}"] = -i
            current = settled(overlay)
            books.append(current)
        assert root_of(current) is not base  # folded into a new dict along the way
        assert len(current._writes) + len(current._deleted) <= 600  # type: ignore[attr-defined]
        assert dict(current.items()) == {**base, **{f"k{i}": -i for i in range(600)}}
        assert books[10]["k11"] == 11  # earlier books unchanged
        assert books[10]["k10"] == -10
        assert base["k1"] == 1
