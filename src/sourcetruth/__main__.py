"""``python -m sourcetruth``: run the demo week of the design's scenarios."""

from __future__ import annotations

import sys

from sourcetruth.demo import run

__all__ = ["main"]


def main() -> int:
    run(sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
