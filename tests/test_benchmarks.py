"""The end-to-end benchmarks run, at a tiny size, and measure what they say they measure.

No time is asserted: only that every command ran, did its job (the sync
applied, the three resync sides found the same changes) and was recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def results(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))["results"]


@pytest.fixture(scope="class")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One run of benchmarks/cli.py on a tiny book kept in a folder: (the folder, JSON, output)."""
    root = tmp_path_factory.mktemp("cli-benchmark")
    keep, out = root / "books", root / "cli.json"
    done = script(
        "cli.py", "--sizes", "tiny", "--runs", "1", "--keep", str(keep), "--json", str(out)
    )
    return keep, out, done.stdout


class TestCliBenchmark:
    """benchmarks/cli.py builds a book folder as a user would and times each command."""

    def test_every_command_runs_on_a_tiny_book(self, tiny_run: tuple[Path, Path, str]) -> None:
        """Each command of the table ran without failing, did its job, and is in the table."""
        _keep, out, stdout = tiny_run
        (tiny,) = results(out)
        commands = tiny["commands"]
        assert set(commands) == {
            "show", "explain", "override-set", "send-guardians", "sync-1%", "policy",
            "raw-sqlite3", "raw-in-process",
        }  # fmt: skip
        assert [name for name, row in commands.items() if "error" in row] == []
        assert "mis sync 2: applied" in commands["sync-1%"]["said"]
        assert "Dry run:" in commands["send-guardians"]["said"]
        assert all(row["peak_mib"] > 0 for row in commands.values() if "peak_mib" in row)
        assert "| `show` one contact | " in stdout

    def test_a_kept_folder_is_reused_until_the_schema_changes(
        self, tiny_run: tuple[Path, Path, str]
    ) -> None:
        """--keep reuses a folder built the same way; one built for another schema is rebuilt."""
        keep, _out, _stdout = tiny_run
        again = script("cli.py", "--sizes", "tiny", "--keep", str(keep), "--prepare")
        assert "tiny: reusing the folder" in again.stdout
        marker = keep / "tiny" / "built.json"
        built = json.loads(marker.read_text(encoding="utf-8"))
        marker.write_text(json.dumps({**built, "schema": "an older one"}), encoding="utf-8")
        rebuilt = script("cli.py", "--sizes", "tiny", "--keep", str(keep), "--prepare")
        assert "rebuilding" in rebuilt.stdout
        assert json.loads(marker.read_text(encoding="utf-8"))["schema"] == built["schema"]


class TestResyncPeer:
    """benchmarks/resync_peer.py times the library's resync against its peers on the same files."""

    def test_the_sides_find_the_same_changes(self, tmp_path: Path) -> None:
        """Each side ran; those that ran agree on new, changed and gone; polars is optional."""
        out = tmp_path / "peer.json"
        done = script(
            "resync_peer.py", "--sizes", "tiny", "--runs", "1", "--keep", str(tmp_path), "--json",
            str(out),
        )  # fmt: skip
        (found,) = results(out)
        sides = found["sides"]
        assert [name for name, row in sides.items() if "error" in row] == []
        counts = {name: (row["new"], row["changed"], row["gone"]) for name, row in sides.items()}
        assert len(set(counts.values())) == 1, counts
        assert counts["library"][1] > 0
        assert "library/bare" in found["ratios"]
        if "polars" in sides:
            assert "library/polars" in found["ratios"]
        else:
            assert "polars is not installed" in done.stdout


class TestPhonesBenchmark:
    """benchmarks/phones.py times normalise_phone against the bare parse and format."""

    def test_both_sets_are_measured(self) -> None:
        """Each set prints a line with both medians and their ratio."""
        done = script("phones.py", "--count", "50", "--runs", "1")
        lines = done.stdout.splitlines()
        assert [line.split()[0] for line in lines] == ["drama", "mobiles"]
        assert all("ratio" in line for line in lines)


class TestProviderNight:
    """benchmarks/provider_night.py runs a night of schools three ways with equal results."""

    def test_a_tiny_night_runs_every_way(self, postgres_server: Any, tmp_path: Path) -> None:
        """Both nights ran every way (their results compared by the script) and were profiled."""
        out = tmp_path / "night.json"
        url = postgres_server.new_database("bench_night")
        done = script(
            "provider_night.py", "--url", url, "--schools", "2", "--contacts", "60",
            "--workers", "1", "--json", str(out),
        )  # fmt: skip
        found = json.loads(out.read_text(encoding="utf-8"))
        assert set(found["nights"]) == {"1", "2"}
        for rows in found["nights"].values():
            assert set(rows) == {"postgres-cluster", "sqlite-cluster", "sqlite-local"}
            assert {tuple(row["statuses"]) for row in rows.values()} == {("applied",)}
            assert all(row["median_school_s"] > 0 for row in rows.values())
        postgres, sqlite = found["profile"]["postgres"], found["profile"]["sqlite"]
        # One row logic: the same statements and reads on either store.
        assert [(r["statements"], r["reads"]) for r in postgres] == [
            (r["statements"], r["reads"]) for r in sqlite
        ]
        assert postgres[0]["statements"] > 60
        assert "| 1 | postgres-cluster |" in done.stdout
