"""Searching an app's logs by text and time: one `Query`, one `LineFilter`, the same for the
dashboard, the API and `homehelper logs --grep/--since`, on files and on the journal.

Time comes from each line's own stamp (the app's, or the one `stamp.py` / journald gave it when it
was written). A line without one (a traceback's continuation) goes with the dated line above it;
before any dated line its age is unknown, and it is kept.

Files are searched oldest first (app.log.2, app.log.1, app.log), one line at a time, keeping the
last N matches: memory stays bounded whatever the files hold. A rotated file last written before
`since` is not opened at all.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from . import logs

STAMP = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
MAX_GREP = 200  # characters of search text


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """`10m`, `2h`, `1d`, `30s` (that long ago) or an ISO time (local time when it names no zone).
    ValueError names what is accepted."""
    text = text.strip()
    m = re.fullmatch(r"(\d{1,9}(?:\.\d+)?)([smhd])", text)
    if m:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m[1]) * _UNITS[m[2]])
    try:
        return aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{text[:40]!r}: give 10m, 2h, 1d, 30s or an ISO time") from None


def aware(when: datetime) -> datetime:
    """A time with a zone: a naive one is taken as local time."""
    return when if when.tzinfo is not None else when.astimezone()


def stamp_of(line: str) -> datetime | None:
    """The time a line starts with, or None."""
    m = STAMP.match(line)
    if not m:
        return None
    try:
        return aware(datetime.fromisoformat(m[1].replace(",", ".")))
    except ValueError:
        return None


@attrs.frozen
class Query:
    """What to look for: a plain text (case-sensitive, no pattern syntax) and a time range."""

    grep: str | None = None
    since: datetime | None = attrs.field(default=None, converter=attrs.converters.optional(aware))
    until: datetime | None = attrs.field(default=None, converter=attrs.converters.optional(aware))

    @property
    def empty(self) -> bool:
        return not self.grep and self.since is None and self.until is None

    @property
    def timed(self) -> bool:
        return self.since is not None or self.until is not None


class LineFilter:
    """A Query applied line by line, in order: it remembers the last dated line's time."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self.in_range = True

    def __call__(self, line: str) -> bool:
        q = self.query
        if q.timed:
            when = stamp_of(line)
            if when is not None:
                self.in_range = (q.since is None or when >= q.since) and (q.until is None or when <= q.until)
            if not self.in_range:
                return False
        return not q.grep or q.grep in line


def files(log_dir: Path) -> list[Path]:
    """An app's log files, oldest first: app.log.2, app.log.1, app.log."""
    base = log_dir / "app.log"
    rotated = [base.with_name(f"app.log.{i}") for i in range(logs.KEEP, 0, -1)]
    return [p for p in (*rotated, base) if p.is_file()]


def _lines(path: Path, max_line: int) -> Iterator[str]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:  # rotated away meanwhile, or unreadable: nothing from it
        return
    with f:
        while raw := f.readline(max_line):
            if not raw.endswith(b"\n"):  # cut: skip the rest of this long line
                while (more := f.readline(64 * 1024)) and not more.endswith(b"\n"):
                    pass
            yield raw.rstrip(b"\r\n").decode(errors="replace")


def search_files(log_dir: Path, query: Query, lines: int, max_line: int = logs.MAX_LINE_BYTES) -> list[str]:
    """The last `lines` lines matching `query`, across the rotated files (blocking: a worker thread)."""
    lines = max(0, min(lines, logs.MAX_LINES))
    if query.empty:
        return logs.tail(log_dir / "app.log", lines)
    found: deque[str] = deque(maxlen=lines)
    keep = LineFilter(query)
    for path in files(log_dir):
        if query.since is not None and path.name != "app.log":
            try:
                if path.stat().st_mtime < query.since.timestamp():
                    continue  # its last line was written before the range begins
            except OSError:
                continue
        for line in _lines(path, max_line):
            if keep(line):
                found.append(line)
    return list(found)
