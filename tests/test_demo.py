"""The README and the demo: what a new user runs first must work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class TestDemo:
    def test_demo_tells_the_week(self) -> None:
        """`python -m sourcetruth` runs the eight scenarios and says what happened."""
        done = subprocess.run(
            [sys.executable, "-m", "sourcetruth"], capture_output=True, text=True, check=True
        )
        out = done.stdout
        assert done.stderr == ""
        assert "-> +447700900101  (mis:G9; source mis:G9, applied Tue 02:00)" in out
        assert "-> +447700900902  (mis:G8; source mis:G8, applied Wed 02:00)" in out
        assert "override of emails on mis:GOV ended: lost" in out
        assert "override of emails on mis:GOV ended: confirmed" in out
        assert "Possible duplicate: import:row-17 and mis:G9" in out
        assert "Sync held: 8 of 20 present records of mis would depart" in out


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
