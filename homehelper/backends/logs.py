"""App log files: the last N lines, following new lines, and size-capped rotation.

Apps write `logs/<id>/app.log` through an O_APPEND descriptor held by systemd
(or the process backend), so rotation copies the file aside and truncates it in
place: the app's next write lands at the new end. A chatty app costs at most
`max_bytes * (keep + 1)` of SD card.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import trio

MAX_BYTES = 5 * 1024 * 1024
KEEP = 2  # app.log.1, app.log.2
FOLLOW_POLL = 0.5
MAX_LINES = 5000  # a tail never holds more than this in memory
_BLOCK = 16 * 1024


def tail(path: Path, lines: int = 100) -> list[str]:
    """The last `lines` lines of `path` (reading from the end; [] when there is no file)."""
    lines = max(0, min(lines, MAX_LINES))
    if lines == 0:
        return []
    data = b""
    try:
        with open(path, "rb") as f:
            pos = f.seek(0, os.SEEK_END)
            while pos > 0 and data.count(b"\n") <= lines:
                step = min(_BLOCK, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    text = data.decode(errors="replace").splitlines()
    return text[-lines:]


def tail_text(path: Path, lines: int = 30) -> str:
    return "\n".join(tail(path, lines))


async def follow(path: Path, lines: int = 0, poll: float = FOLLOW_POLL) -> AsyncIterator[str]:
    """Yield the last `lines` lines, then each new line as it is written (forever).

    A truncation (rotation) is noticed by the size going down and reading
    restarts at the top. Polling a size costs a stat; journald is not assumed.
    Use it inside `contextlib.aclosing` so leaving early closes it at once.
    """
    for line in tail(path, lines):
        yield line
    pos = size(path)
    partial = b""
    while True:
        end = size(path)
        if end < pos:
            pos, partial = 0, b""
        if end > pos:
            chunk = _read_at(path, pos, min(end - pos, 1024 * 1024))
            pos += len(chunk)
            *complete, partial = (partial + chunk).split(b"\n")
            if len(partial) > 64 * 1024:  # a line without end: hand it over in pieces
                complete.append(partial)
                partial = b""
            for raw in complete:
                yield raw.decode(errors="replace")
            continue
        await trio.sleep(poll)


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_since(path: Path, offset: int, max_bytes: int = 16 * 1024) -> str:
    """What was written after `offset` (from the top if the file was rotated since), at most `max_bytes`."""
    end = size(path)
    start = offset if offset <= end else 0
    start = max(start, end - max_bytes)
    return _read_at(path, start, end - start).decode(errors="replace")


def _read_at(path: Path, pos: int, count: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            return f.read(count)
    except FileNotFoundError:
        return b""


def rotate_if_needed(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> bool:
    """Copy-truncate `path` when it is larger than `max_bytes`; True when it rotated."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    if keep > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as f:
        f.truncate(0)
    return True


def log_bytes(log_dir: Path) -> int:
    """What an app's logs cost on disk now."""
    try:
        return sum(p.stat().st_size for p in log_dir.glob("*.log*") if p.is_file())
    except OSError:
        return 0
