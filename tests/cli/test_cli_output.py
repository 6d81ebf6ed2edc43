"""How the command prints: the progress line on a terminal, and a report's limited lines."""

from __future__ import annotations

import io
import time
from typing import Any

from cli_helpers import LONDON, moment

from sourcetruth import ContactData
from sourcetruth.cli._progress import Progress
from sourcetruth.cli._render import Renderer
from sourcetruth.model import Override
from sourcetruth.report import Report, Status, Unnormalised


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def wait_for(condition: Any) -> None:
    """Wait until the progress thread has drawn (a generous bound; no timing is asserted)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the progress line was never drawn"
        time.sleep(0.005)


class TestProgress:
    def test_draws_nothing_when_not_a_terminal(self) -> None:
        """On a stream that is not a terminal, the progress line draws nothing."""
        stream = io.StringIO()
        with Progress(stream, "reading", delay=0, interval=0.001) as progress:
            assert not progress.enabled
            progress.phase("merging")
            progress.advance(3)
        assert stream.getvalue() == ""

    def test_draws_the_label_and_clears_it(self) -> None:
        """On a terminal the line draws its label and bar, and clears itself at the end."""
        stream = Tty()
        with Progress(stream, "reading export", delay=0, interval=0.01) as progress:
            assert progress.enabled
            wait_for(lambda: "reading export" in stream.getvalue())
            progress.phase("merging", total=4)
            progress.advance(2)
            wait_for(lambda: "2/4" in stream.getvalue())
        text = stream.getvalue()
        assert text.startswith("\r\x1b[Kreading export ... ")
        assert "merging [############............] 2/4 " in text
        assert text.endswith("\r\x1b[K")

    def test_the_line(self) -> None:
        """The line is the label, a bar of done over total, and the seconds taken."""
        ticks = iter([10.0, 11.5, 12.25])
        progress = Progress(io.StringIO(), "sending", total=8, clock=lambda: next(ticks))
        assert progress.line() == "sending [........................] 0/8 1.5s"
        progress.advance(8)
        assert progress.line() == "sending [########################] 8/8 2.2s"

    def test_a_quick_job_draws_nothing(self) -> None:
        """A job done before the delay draws nothing."""
        stream = Tty()
        with Progress(stream, "reading", delay=60):
            pass
        assert stream.getvalue() == ""


class TestReportLines:
    def test_every_kind_of_line_is_limited(self) -> None:
        """Each kind of report line stops at 40, then says how many more (--json has all)."""
        many = tuple(Unnormalised(f"mis:{n}", "phones", 0, "contains letters") for n in range(45))
        kept = tuple(
            Override(
                "mis:G1", "emails", ContactData(), ContactData(), "mis:G1", "me", moment(24, 9)
            )
            for _ in range(41)
        )
        report = Report(
            Status.APPLIED, "x", moment(24, 9), "me", unnormalised=many, overrides_kept=kept
        )
        lines = Renderer(LONDON).report(report)
        assert len(lines) == 1 + 41 + 41
        assert "  ... and 5 more (--json shows all)" in lines
        assert "  ... and 1 more (--json shows all)" in lines
