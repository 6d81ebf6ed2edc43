"""Test helpers for sourcetruth and for the authors of adapters built on it.

:mod:`sourcetruth.testing.strategies` holds Hypothesis strategies for the
model (phones, emails, contact data, records, snapshots, overrides, groups,
policies). :mod:`sourcetruth.testing.stores` holds :class:`StoreContract`,
:mod:`sourcetruth.testing.transports` :class:`TransportContract` and
:mod:`sourcetruth.testing.delivery_logs` :class:`DeliveryLogContract`: the
checks a store, a transport or a delivery log of your own must pass
(subclass one in a test module); :mod:`sourcetruth.testing.conformance`
those of a source adapter.
Importing this package imports neither Hypothesis nor pytest, which only the
``testing`` extra brings: the contracts are imported when first named.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sourcetruth.testing.delivery_logs import DeliveryLogContract
    from sourcetruth.testing.stores import StoreContract
    from sourcetruth.testing.transports import TransportContract

__all__ = ["DeliveryLogContract", "StoreContract", "TransportContract"]

# Each name and the module it lives in, imported on first use (it needs pytest).
_LAZY = {
    "DeliveryLogContract": "sourcetruth.testing.delivery_logs",
    "StoreContract": "sourcetruth.testing.stores",
    "TransportContract": "sourcetruth.testing.transports",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
