"""``python -m sourcetruth``: the ``sourcetruth`` command (``python -m sourcetruth demo``)."""

from __future__ import annotations

from sourcetruth.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
