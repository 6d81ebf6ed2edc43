"""Test helpers for sourcetruth and for the authors of adapters built on it.

:mod:`sourcetruth.testing.strategies` holds Hypothesis strategies for the
model (phones, emails, contact data, records, snapshots, overrides, groups,
policies). Import that module explicitly: importing this package does not
import Hypothesis, which is only needed with the ``testing`` extra.
"""

from __future__ import annotations

__all__: list[str] = []
