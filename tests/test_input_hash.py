"""A journal's input hash: a snapshot is hashed record by record, and still tells inputs apart."""

from __future__ import annotations

from datetime import timedelta

import attrs
from hypothesis import given
from hypothesis import strategies as st

from sourcetruth import ContactData, Record, Snapshot, loads
from sourcetruth.journal import input_hash
from sourcetruth.serialise import dumps
from sourcetruth.testing.strategies import contact_data, snapshots


@given(snapshots())
def test_a_snapshot_read_again_hashes_the_same(snapshot: Snapshot) -> None:
    """The same records as fresh objects (the same file read again) give the same hash."""
    again = loads(dumps(snapshot), Snapshot)
    assert again is not snapshot
    assert input_hash(again) == input_hash(snapshot)
    assert len(input_hash(snapshot)) == 64


@given(snapshots(), st.data())
def test_any_change_to_a_snapshot_changes_its_hash(snapshot: Snapshot, data: st.DataObject) -> None:
    """A record's data, a key, the time or a record more: each is another input."""
    others = [
        attrs.evolve(snapshot, extracted_at=snapshot.extracted_at + timedelta(seconds=1)),
        attrs.evolve(snapshot, records=(*snapshot.records, Record("Z-extra", ContactData()))),
    ]
    if snapshot.records:
        first = snapshot.records[0]
        new_data = data.draw(contact_data().filter(lambda d: d != first.data))
        others.append(
            attrs.evolve(
                snapshot, records=(attrs.evolve(first, data=new_data), *snapshot.records[1:])
            )
        )
        others.append(
            attrs.evolve(
                snapshot, records=(attrs.evolve(first, key=first.key + "x"), *snapshot.records[1:])
            )
        )
    hashes = {input_hash(other) for other in others}
    assert input_hash(snapshot) not in hashes
    assert len(hashes) == len(others)
