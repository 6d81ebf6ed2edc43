"""Shared fixtures; the helpers themselves live in `school.py`."""

from __future__ import annotations

import pytest

from school import mis_policy
from sourcetruth import Policy

# pytester runs small test sessions inside a test: how the conformance kit's
# own tests check that it fails broken adapters.
pytest_plugins = ("pytester",)


@pytest.fixture
def policy() -> Policy:
    """The MIS-and-import policy of the test school."""
    return mis_policy()
