"""A progress line on stderr, for syncs and sends that take more than a moment.

It draws only when the stream is a terminal, and only once the work has taken
longer than ``delay`` seconds, so quick commands and redirected output stay
clean. A background thread redraws it; the work itself never waits on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 24


class Progress:
    """``with Progress(stream, "reading") as p: ...; p.phase("merging"); p.advance(10)``."""

    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        total: int | None = None,
        delay: float = 0.5,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._done = 0
        self._delay = delay
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._drawn = False
        self._thread: threading.Thread | None = None
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._drawn:
                self._stream.write("\r\x1b[K")
                self._stream.flush()

    def phase(self, label: str, *, total: int | None = None) -> None:
        with self._lock:
            self._label, self._total, self._done = label, total, 0

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self._done += count

    def line(self) -> str:
        """The line as it would be drawn now."""
        elapsed = self._clock() - self._started
        if self._total:
            filled = min(_WIDTH, _WIDTH * self._done // self._total)
            bar = "#" * filled + "." * (_WIDTH - filled)
            return f"{self._label} [{bar}] {self._done}/{self._total} {elapsed:.1f}s"
        return f"{self._label} ... {elapsed:.1f}s"

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        while not self._stop.is_set():
            with self._lock:
                self._stream.write("\r\x1b[K" + self.line())
                self._stream.flush()
                self._drawn = True
            self._stop.wait(self._interval)
