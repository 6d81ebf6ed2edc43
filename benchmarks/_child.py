"""Run one command in a fresh process and keep its wall time and peak memory.

Shared by the end-to-end benchmarks. The peak is the child's own maximum
resident set size. A child's ``ru_maxrss`` starts at the size of the process
that forked it (Linux records the forked image's peak when it execs), so a
benchmark holding hundreds of MiB would raise every small command's peak to
its own. The child is therefore started by GNU ``time`` where it is
installed, whose own few MiB are the floor; elsewhere the peak is read with
:func:`os.wait4` and is floored by this process's size.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

#: ``ru_maxrss`` is in KiB on Linux and in bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024
_KEPT_OUTPUT = 64 * 1024


class Ran:
    """One finished child: its exit status, wall seconds, peak RSS (MiB) and output's end."""

    def __init__(self, code: int, wall_s: float, peak_mib: float, out: str, err: str) -> None:
        self.code = code
        self.wall_s = wall_s
        self.peak_mib = peak_mib
        self.out = out
        self.err = err

    def first_error_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {self.code}"


def _gnu_time() -> str | None:
    found = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if found is None:
        return None
    probe = subprocess.run(
        [found, "-f", "%M", "-o", os.devnull, "true"], capture_output=True, check=False
    )
    return found if probe.returncode == 0 else None


GNU_TIME = _gnu_time()


def run(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    keep_output: bool = True,
) -> Ran:
    """Start *argv*, wait for it, and measure it from the start to the exit."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r", encoding="utf-8") as peak,
    ):
        stdout: IO[bytes] | int = out if keep_output else subprocess.DEVNULL
        timed = [GNU_TIME, "-f", "%M", "-o", peak.name, *argv] if GNU_TIME else list(argv)
        started = time.perf_counter()
        child = subprocess.Popen(timed, stdout=stdout, stderr=err, env=dict(environ or os.environ))
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        peak_mib = usage.ru_maxrss * _RSS_UNIT / 2**20
        if GNU_TIME:
            lines = peak.read().split()
            peak_mib = int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else float("nan")
        # Only the end of the output is kept: what a command says it did is on its last line,
        # and a dry run to every guardian prints a line per delivery.
        out.seek(max(0, out.seek(0, os.SEEK_END) - _KEPT_OUTPUT))
        err.seek(0)
        return Ran(
            child.returncode,
            wall,
            peak_mib,
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
