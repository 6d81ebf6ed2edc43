"""Settings every test under tests/ and docs/ shares."""

from hypothesis import settings

# A deadline is a timed assertion, and the machines tests run on are shared:
# a slow example is not a failure here (performance is measured in benchmarks/).
settings.register_profile("default", deadline=None)
settings.load_profile("default")
