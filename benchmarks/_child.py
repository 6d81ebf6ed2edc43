"""Run one command in a fresh process and keep its wall time and peak memory.

Shared by the end-to-end benchmarks. The peak is the child's own ``ru_maxrss``,
read with :func:`os.wait4` when it exits, so each run is measured apart from
every other child of the benchmark (``RUSAGE_CHILDREN`` would give the
largest child so far).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

#: ``ru_maxrss`` is in KiB on Linux and in bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024


class Ran:
    """One finished child: its exit status, wall seconds, peak RSS (MiB) and output."""

    def __init__(self, code: int, wall_s: float, peak_mib: float, out: str, err: str) -> None:
        self.code = code
        self.wall_s = wall_s
        self.peak_mib = peak_mib
        self.out = out
        self.err = err

    def first_error_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {self.code}"


def run(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    keep_output: bool = True,
) -> Ran:
    """Start *argv*, wait for it, and measure it from the start to the exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdout: IO[bytes] | int = out if keep_output else subprocess.DEVNULL
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=stdout, stderr=err, env=dict(environ or os.environ))
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Ran(
            child.returncode,
            wall,
            usage.ru_maxrss * _RSS_UNIT / 2**20,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def summary(runs: Sequence[Ran]) -> dict[str, Any]:
    """The medians of *runs*, and every run, for the JSON."""
    failed = [r for r in runs if r.code != 0]
    found: dict[str, Any] = {
        "wall_s": statistics.median(r.wall_s for r in runs),
        "peak_mib": statistics.median(r.peak_mib for r in runs),
        "runs_wall_s": [r.wall_s for r in runs],
        "runs_peak_mib": [r.peak_mib for r in runs],
    }
    lines = [line for line in runs[0].out.splitlines() if line.strip()]
    if lines:
        # What the command said it did, to check that it did what was meant (a sync applied).
        found["said"] = lines[-1][:200]
    if failed:
        found["error"] = f"exit {failed[0].code}: {failed[0].first_error_line()}"
    return found
