"""The ``hypothesis`` entry point: make ``st.from_type`` build the model with our strategies.

Hypothesis calls :func:`register` while it is itself being imported, which
may happen in the middle of importing :mod:`sourcetruth.testing.strategies`
(that module imports Hypothesis first thing). So nothing here imports that
module at once: each type gets a deferred strategy that imports it the first
time a value is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from sourcetruth.model import (
    Contact,
    ContactData,
    Email,
    GroupDefinition,
    Override,
    Phone,
    Record,
    Snapshot,
)
from sourcetruth.policy import Policy

__all__: list[str] = []

_BY_TYPE: dict[type, str] = {
    Phone: "phones",
    Email: "emails",
    ContactData: "contact_data",
    Record: "records",
    Snapshot: "snapshots",
    Contact: "contacts",
    Override: "overrides",
    GroupDefinition: "groups",
    Policy: "policies",
}


def _later(name: str) -> Callable[[], st.SearchStrategy[Any]]:
    def build() -> st.SearchStrategy[Any]:
        from sourcetruth.testing import strategies

        made: st.SearchStrategy[Any] = getattr(strategies, name)()
        return made

    return build


def register() -> None:
    """Register a strategy for each model type Hypothesis may be asked for."""
    for cls, name in _BY_TYPE.items():
        st.register_type_strategy(cls, st.deferred(_later(name)))
