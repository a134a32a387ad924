"""A progress bar on stderr: one redrawn line on a terminal, plain lines in a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts steps of a known total; `step(label)` moves on, `note(text)` says what happens now."""

    def __init__(self, total: int, title: str = "bench", stream: TextIO | None = None, width: int = 28) -> None:
        self.total = max(1, total)
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.label = ""
        self.t0 = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        frac = min(1.0, self.done / self.total)
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.t0
        eta = ""
        if 0 < self.done < self.total:
            eta = f" eta {elapsed / self.done * (self.total - self.done):.0f}s"
        return f"{self.title} [{bar}] {self.done}/{self.total} {elapsed:.0f}s{eta} {self.label}"

    def _draw(self) -> None:
        text = self.line()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text[:200])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, label: str) -> None:
        """What runs now, without counting a step."""
        self.label = label
        self._draw()

    def step(self, label: str = "") -> None:
        self.done = min(self.total, self.done + 1)
        self.label = label
        self._draw()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
