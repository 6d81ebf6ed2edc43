"""Settings every test under tests/ and docs/ shares (see tests/budget.py for the full run)."""

import os

from hypothesis import settings

# The PostgreSQL server fixture, for tests/ and docs/ alike.
pytest_plugins = ["tests.postgres_server"]

# A deadline is a timed assertion, and the machines tests run on are shared:
# a slow example is not a failure here (performance is measured in benchmarks/).
# A contributor's run tries 20 examples a property (where a test does not set its
# own count); the full run (SOURCETRUTH_TESTS=full) tries 250.
settings.register_profile("default", deadline=None, max_examples=20)
settings.register_profile("full", deadline=None, max_examples=250)
settings.load_profile("full" if os.environ.get("SOURCETRUTH_TESTS") == "full" else "default")
