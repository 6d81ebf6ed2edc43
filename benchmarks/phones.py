"""What checking a phone number's validity costs, against the bare parse and format.

Run from the repository::

    .venv/bin/python benchmarks/phones.py --count 20000 --runs 7

Two sets of distinct numbers, made in memory and never written anywhere:
``drama`` (all 2,000 of Ofcom's 07700 900xxx and 01632 960xxx, what test
data and the synthetic schools use) and ``mobiles`` (``--count`` numbers of
the shape of UK mobiles, which libphonenumber calls valid). For each,
taking turns run by run, with the cache cleared before every run:

- ``bare``: ``phonenumbers.parse``, ``is_possible_number_with_reason`` and
  ``format_number`` to E.164: what :func:`~sourcetruth.normalise_phone` did
  when it checked length only;
- ``normalise``: :func:`~sourcetruth.normalise_phone`, which also checks
  validity (or the drama table).

It prints the median microseconds per number and the ratio of ``normalise``
to ``bare``. No time is asserted; machines are shared, ratios are what to read.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence

import phonenumbers

from sourcetruth import normalise_phone


def bare(numbers: Sequence[str]) -> None:
    for raw in numbers:
        number = phonenumbers.parse(raw.strip(), "GB")
        phonenumbers.is_possible_number_with_reason(number)
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def library(numbers: Sequence[str]) -> None:
    normalise_phone.cache_clear()
    for raw in numbers:
        normalise_phone(raw, "GB")


def sets(count: int) -> dict[str, list[str]]:
    rng = random.Random(14)
    drama = [f"07700 900{i:03d}" for i in range(1000)] + [f"01632 960{i:03d}" for i in range(1000)]
    mobiles = {f"07{rng.choice('4589')}{rng.randrange(10**8):08d}" for _ in range(count)}
    # Every number once: a repeat would be a cache hit for one side only.
    return {"drama": drama, "mobiles": sorted(mobiles)}


def medians(runs: int, numbers: Sequence[str]) -> tuple[float, float]:
    timings: dict[Callable[[Sequence[str]], None], list[float]] = {bare: [], library: []}
    for _ in range(runs):
        for work, found in timings.items():
            start = time.perf_counter()
            work(numbers)
            found.append(time.perf_counter() - start)
    per = 1e6 / len(numbers)
    return statistics.median(timings[bare]) * per, statistics.median(timings[library]) * per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="numbers per set")
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement; medians")
    args = parser.parse_args()
    for name, numbers in sets(args.count).items():
        plain, checked = medians(args.runs, numbers)
        print(
            f"{name:8} bare {plain:6.1f} us/number  normalise {checked:6.1f} us/number  "
            f"ratio {checked / plain:.2f}"
        )


if __name__ == "__main__":
    main()
