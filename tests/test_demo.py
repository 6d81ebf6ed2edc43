"""The README and the demo: what a new user runs first must work."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.app.demo import EXPLORE, run
from sourcetruth.audit import why
from sourcetruth.cli import main
from sourcetruth.effective import contact_at
from sourcetruth.exceptions import UsageError
from sourcetruth.model import Channel, ContactData, Role

ROOT = Path(__file__).resolve().parent.parent
LONDON = ZoneInfo("Europe/London")
SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=LONDON)
MESSAGES = (
    "fri-both-records-sms",
    "fri-governors-sms",
    "fri-minutes-email",
    "thu-governors-email",
    "tue-year9-sms",
    "wed-year8-sms",
)


@pytest.fixture(scope="class")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One run of the demo into a new folder: what it printed, and the folder."""
    out = io.StringIO()
    # An empty environment: a suppression key file named by the caller's must not be used.
    folder = run(out, tmp_path_factory.mktemp("demo") / "book", environ={})
    return out.getvalue(), folder


class TestDemo:
    def test_demo_tells_the_week(self, week: tuple[str, Path]) -> None:
        """The eight scenarios say what happened, in the lines a reader looks for."""
        out, _ = week
        assert "-> +447700900101  (mis:G9; source mis:G9, applied Tue 02:00)" in out
        assert "-> +447700900902  (mis:G8; source mis:G8, applied Wed 02:00)" in out
        assert "says it came from the MIS sync applied Tue 02:00" in out
        assert "(read Tue 01:55); the new one arrived Wed 02:00." in out
        assert "override of emails on mis:GOV ended: lost" in out
        assert "-> paula.old@parent.test  (mis:GOV; source mis:GOV, applied Fri 02:00)" in out
        assert "override of emails on mis:GOV would end: confirmed" in out
        assert "Possible duplicate: import:row-17 and mis:G9" in out
        assert "-> +447700900901  (import:row-17, mis:G9; source import:row-17" in out
        assert "Sync held: 8 of 20 present records of mis would depart" in out

    def test_demo_ends_with_commands_on_its_folder(self, week: tuple[str, Path]) -> None:
        """The confirmation of the held sync and the ways in name the book's folder."""
        out, folder = week
        book = os.fspath(folder)
        bundle = os.fspath(folder / "exports" / "mis-2026-11-28")
        assert re.search(
            rf"^   sourcetruth --book {re.escape(book)} sync mis {re.escape(bundle)}"
            r" --extracted-at 2026-11-28T01:55 --at 2026-11-28T09:00 --confirm [0-9a-f]{64}$",
            out,
            flags=re.M,
        )
        assert out.endswith(
            f"The book is in {book}. Explore it:\n"
            + "".join(f"  sourcetruth --book {book} {command}\n" for command in EXPLORE)
        )

    def test_printed_commands_run_as_printed(self, week: tuple[str, Path], tmp_path: Path) -> None:
        """Each command the demo prints works through the command line, whatever the clock,
        and the confirmation applies the held export on a copy of the folder."""
        out, folder = week
        copy = tmp_path / "copy"
        shutil.copytree(folder, copy)  # copying changes the files' times: the command says them
        printed = [
            shlex.split(line.strip().replace(os.fspath(folder), os.fspath(copy)))
            for line in out.splitlines()
            if line.strip().startswith("sourcetruth --book ")
        ]
        assert len(printed) == 1 + len(EXPLORE)
        confirm, *explore = printed
        for argv in explore:
            said, err = io.StringIO(), io.StringIO()
            assert main(argv[1:], out=said, err=err, environ={}) == 0, err.getvalue()
            assert said.getvalue()
        said, err = io.StringIO(), io.StringIO()
        assert main(confirm[1:], out=said, err=err, environ={}) == 0, err.getvalue()
        assert "mis sync" in said.getvalue()
        assert said.getvalue().count("  departed mis:X") == 8

    def test_folder_holds_the_book_and_what_was_sent(self, week: tuple[str, Path]) -> None:
        """Settings, store, exports, audit records and the outbox are all on disk."""
        _, folder = week
        for name in ("policy.toml", "book.sqlite", "import-mapping.toml", "deliveries.jsonl"):
            assert (folder / name).is_file(), name
        audits = sorted(p.stem for p in (folder / "audit").glob("*.json"))
        assert audits == list(MESSAGES)
        assert len(list((folder / "outbox" / "sms").glob("*.json"))) == 7
        assert len(list((folder / "outbox" / "email").glob("*.json"))) == 6
        assert (folder / "exports" / "import-2026-11-27.csv").is_file()
        for day in range(23, 29):
            assert (folder / "exports" / f"mis-2026-11-{day}" / "users.csv").is_file()

    def test_reopened_book_holds_the_week(self, week: tuple[str, Path]) -> None:
        """The store keeps the MIS's email for the parent governor, and every run."""
        _, folder = week
        with BookFolder.open(folder, environ={}) as book:
            state = book.load()
            journal = book.journal()
            policy = book.policy

        governor = contact_at(state, "mis:GOV", policy=policy, at=SATURDAY)
        assert [e.address for e in governor.data.emails] == ["paula.old@parent.test"]
        assert [(run.by, run.status) for run in journal] == [
            ("nightly sync", "applied"),
            ("nightly sync", "applied"),
            ("office", "applied"),
            ("nightly sync", "applied"),
            ("nightly sync", "applied"),
            ("office", "applied"),
            ("office", "applied"),
            ("office", "applied"),
            ("nightly sync", "applied"),
            ("upload", "applied"),
            ("data manager", "applied"),
            ("nightly sync", "held"),
        ]
        # The held sync departed nobody: the whole school is still there.
        assert governor.departed_at is None
        assert len(state.records["mis"]) == 20

    def test_oneroster_round_trip_keeps_what_the_story_needs(self, week: tuple[str, Path]) -> None:
        """Phones, emails, links, year groups and roles survive the bundles the demo writes."""
        _, folder = week
        with BookFolder.open(folder, environ={}) as book:
            state, policy = book.load(), book.policy

        def data(contact_id: str) -> ContactData:
            return contact_at(state, contact_id, policy=policy, at=SATURDAY).data

        gita = data("mis:G9")
        assert [p.number for p in gita.phones] == ["07700 900901"]
        assert [e.address for e in gita.emails] == ["gita@parent.test"]
        assert [r.pupil for r in gita.relationships] == ["P9"]
        assert gita.role is Role.GUARDIAN
        assert data("mis:P9").year_group == "9"
        assert data("mis:P9").role is Role.PUPIL
        assert data("mis:S1").role is Role.STAFF

    def test_audit_record_answers_why(self, week: tuple[str, Path]) -> None:
        """Tuesday's saved audit says the old number came from Tuesday's sync."""
        _, folder = week
        with BookFolder.open(folder, environ={}) as book:
            audit = book.audit("tue-year9-sms")
            told = why(audit, "mis:G9", Channel.SMS, book=book.load(), policy=book.policy)
        assert told.address == "+447700900101"
        assert told.provenance is not None
        assert told.provenance.source == "mis"
        assert told.later is not None
        assert told.later.applied_at == datetime(2026, 11, 25, 2, 0, tzinfo=LONDON)

    def test_output_is_the_same_every_run(self, week: tuple[str, Path], tmp_path: Path) -> None:
        """Apart from the folder's path, a second run prints and records the same bytes."""
        first, folder = week
        out = io.StringIO()
        again = run(out, tmp_path / "again", environ={})
        assert out.getvalue().replace(os.fspath(again), "BOOK") == first.replace(
            os.fspath(folder), "BOOK"
        )
        for message in MESSAGES:
            name = f"audit/{message}.json"
            assert (again / name).read_bytes() == (folder / name).read_bytes()

    def test_refuses_a_folder_that_is_not_empty(self, tmp_path: Path) -> None:
        """The demo makes a new book: it never writes into a folder that holds something."""
        (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
        with pytest.raises(UsageError, match="empty folder"):
            run(io.StringIO(), tmp_path, environ={})
        assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]

    def test_python_m_sourcetruth_demo(self, tmp_path: Path) -> None:
        """`python -m sourcetruth.app.demo` tells the week into a new folder it keeps."""
        env = {**os.environ, "TMPDIR": os.fspath(tmp_path)}
        env.pop("SOURCETRUTH_SUPPRESSION_KEY_FILE", None)
        done = subprocess.run(
            [sys.executable, "-m", "sourcetruth.app.demo"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        assert done.stderr == ""
        assert "override of emails on mis:GOV ended: lost" in done.stdout
        found = re.search(r"^The book is in (.+)\. Explore it:$", done.stdout, flags=re.M)
        assert found
        folder = Path(found.group(1))
        assert folder.parent == tmp_path
        assert folder.name.startswith("sourcetruth-demo-")
        assert (folder / "policy.toml").is_file()


class TestReadme:
    def test_python_example_runs(self) -> None:
        """Every python block of README.md runs, in order, as one reader would type them."""
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
        assert blocks
        namespace: dict[str, object] = {}
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)

    def test_quick_start_matches_ci(self) -> None:
        """The README's test command is exactly the one `.ci/run` runs."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        commands = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
        assert len(commands) == 2
        ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
        assert ci == commands[1]


def _first_console_block(page: Path) -> list[tuple[str, list[str]]]:
    """Each command of *page*'s first console block, with the lines the page shows it print."""
    block = re.search(r"```console\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert block
    found: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            found[-1][1].append(line)
    return found


class TestQuickStartAsPrinted:
    def test_readme_then_the_tutorial_in_a_fresh_environment(self, tmp_path: Path) -> None:
        """The README's first command (the home page's too), then the tutorial's first commands.

        In a new virtual environment made by that command, from a copy of the
        project, in a shell whose PATH has no other ``sourcetruth``: the
        tutorial's commands find the one the quick start installed.
        """
        project = tmp_path / "project"
        for part in ("src", "docs/tutorial"):
            shutil.copytree(
                ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy(ROOT / name, project / name)
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        first = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)[0]
        home_page = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
        assert re.findall(r"```sh\n(.*?)\n```", home_page, flags=re.S) == [first]
        tutorial = ROOT / "docs" / "tutorial.md"
        setup = re.findall(r"```sh\n(.*?)\n```", tutorial.read_text(encoding="utf-8"), flags=re.S)
        commands = _first_console_block(tutorial)
        script = ["set -e", first + " > demo.out", setup[0]]
        for number, (command, _) in enumerate(commands):
            script += [f"echo '@@ {number}'", command + " 2>&1"]
        home = tmp_path / "home"
        home.mkdir()
        venv_bin = str(Path(sys.executable).parent)
        path = os.pathsep.join(
            p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin
        )
        env = {"PATH": path, "HOME": str(home), "TMPDIR": str(tmp_path), "LANG": "C.UTF-8"}
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "The book is in" in (project / "demo.out").read_text(encoding="utf-8")
        printed = re.split(r"^@@ \d+\n", done.stdout, flags=re.M)[1:]
        assert len(printed) == len(commands)
        for (command, shown), got in zip(commands, printed, strict=True):
            assert got.splitlines() == shown, command
