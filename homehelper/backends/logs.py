"""App log files: the last N lines, following new lines, and size-capped rotation.

Apps write `logs/<id>/app.log` through an O_APPEND descriptor held by systemd
(or the process backend), so rotation copies the file aside and truncates it in
place: the app's next write lands at the new end. A chatty app costs at most
`max_bytes * (keep + 1)` of SD card, within a few percent: `keep_capped` wakes on
inotify as the file grows and looks again sooner the faster it grows, and sleeps
on nothing while the app is quiet.

A tail reads backwards from the end in blocks, keeping each line's first
`MAX_LINE_BYTES` and `MAX_TAIL_BYTES` in all: linear in what it must read, with
bounded memory, however long the lines.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import BinaryIO

import trio

from ..errors import BackendError
from .inotify import IN_CREATE, IN_MODIFY, Inotify

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024
KEEP = 2  # app.log.1, app.log.2
FOLLOW_POLL = 0.5
MAX_LINES = 5000  # a tail never holds more than this in memory
MAX_LINE_BYTES = 8 * 1024  # a longer line is cut, its start kept (the dashboard shows 4000 characters)
MAX_TAIL_BYTES = 8 * 1024 * 1024  # and a tail keeps this much at most (older lines are left out)
_BLOCK = 64 * 1024
# keep_capped: after a wake, the next look comes when half the headroom left may be used up at
# the rate seen, within these bounds (a fixed minute let a 1 MB/s app reach ten times the cap).
CHECK_MIN = 0.02
CHECK_MAX = 5.0


def tail(path: Path, lines: int = 100, end: int | None = None) -> list[str]:
    """The last `lines` lines of `path` before byte `end` (reading from the end; [] when there is no file)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; FileNotFoundError is the common case
    except FileNotFoundError:
        return []
    except OSError as exc:  # unreadable: an error that names it, not a crashed reader
        raise BackendError(f"cannot read the log {path}: {exc.strerror}") from None
    with f:
        return tail_of(f, lines, end=end)


def tail_of(f: BinaryIO, lines: int, max_line: int = MAX_LINE_BYTES, budget: int = MAX_TAIL_BYTES,
            end: int | None = None) -> list[str]:
    """The last `lines` lines of the seekable binary file `f`. Reads each byte once at most, from
    the end back to the start of the oldest line returned; holds at most `budget` bytes of lines."""
    lines = max(0, min(lines, MAX_LINES))
    if lines == 0:
        return []
    pos = f.seek(0, os.SEEK_END)
    if end is not None:
        pos = max(0, min(pos, end))
    newest_first: list[bytes] = []
    kept = 0
    partial = b""  # the start, so far, of the line being read backwards (its first max_line bytes)
    at_end = True  # the text after the file's last newline is a line only if it is not empty
    while pos > 0 and len(newest_first) < lines and kept < budget:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            partial = (chunk + partial)[:max_line]
            continue
        done = [(parts[-1] + partial)[:max_line], *(p[:max_line] for p in reversed(parts[1:-1]))]
        if at_end and done[0] == b"":
            done.pop(0)
        at_end = False
        for line in done:
            newest_first.append(line)
            kept += len(line) + 1
        partial = parts[0][:max_line]
    if pos == 0 and len(newest_first) < lines and kept < budget and (partial or not at_end):
        newest_first.append(partial)
    return [line.rstrip(b"\r").decode(errors="replace") for line in reversed(newest_first[:lines])]


def tail_text(path: Path, lines: int = 30) -> str:
    return "\n".join(tail(path, lines))


async def follow(path: Path, lines: int = 0, poll: float = FOLLOW_POLL,
                 start: int | None = None) -> AsyncGenerator[str, None]:
    """Yield the last `lines` lines, then each new line as it is written (forever).

    A truncation (rotation) is noticed by the size going down and reading
    restarts at the top. New writes wake it through inotify (a stat every `poll`
    seconds where there is none); reads run in a worker thread.
    Use it inside `contextlib.aclosing` so leaving early closes it at once. `start`: follow from
    this offset (taken by the caller before it answered), not from the end at the first read.
    """
    try:
        watch: _Inotify | None = _Inotify(path.parent)  # before the first read: no write slips by
    except (OSError, AttributeError):
        watch = None
    try:
        pos = size(path) if start is None else start  # the tail ends here, where following begins
        if lines > 0:
            for line in await trio.to_thread.run_sync(tail, path, lines, pos):
                yield line
        partial = b""
        while True:
            end = size(path)
            if end < pos:
                pos, partial = 0, b""
            if end > pos:
                chunk = await trio.to_thread.run_sync(_read_at, path, pos, min(end - pos, 1024 * 1024))
                pos += len(chunk)
                *complete, partial = (partial + chunk).split(b"\n")
                if len(partial) > 64 * 1024:  # a line without end: hand it over in pieces
                    complete.append(partial)
                    partial = b""
                for raw in complete:
                    yield raw.decode(errors="replace")
                continue
            if watch is not None:
                await watch.wait()
            else:
                await trio.sleep(poll)
    finally:
        if watch is not None:
            await watch.aclose()


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # missing, or in a folder we may not search: nothing to read
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
    except OSError:  # missing or unreadable: a crash report without its log tail, not a crash
        return b""


def rotate_if_needed(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> bool:
    """Copy-truncate `path` when it is larger than `max_bytes`; True when it rotated."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    if keep > 0:
        # Copied beside, then renamed over app.log.1: app.log.N never holds half a file.
        tmp = path.with_name(f".{path.name}.rotating")
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        for i in range(keep - 1, 0, -1):
            older = path.with_name(f"{path.name}.{i}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
        os.replace(tmp, path.with_name(f"{path.name}.1"))
    # What the app wrote since the copy's last read is lost: logrotate's copytruncate has the same
    # window, a few microseconds; the app's descriptor is not ours to swap.
    with open(path, "r+b") as f:
        f.truncate(0)
    return True


class _Inotify(Inotify):
    """IN_MODIFY and IN_CREATE of one folder (inotify.py); OSError or AttributeError when unavailable."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        try:
            self.add(folder, IN_MODIFY | IN_CREATE)
        except OSError:
            os.close(self.fd)
            raise

    async def aclose(self) -> None:
        """Closing an inotify descriptor waits for the kernel (synchronize_srcu): milliseconds each,
        on a worker thread rather than the trio thread; done even when the caller is cancelled."""
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.close)


async def keep_capped(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP,
                      on_rotate: Callable[[], None] | None = None) -> None:
    """Rotate `path` whenever it passes `max_bytes`, until cancelled. Woken by inotify as the log
    grows; a quiet log costs nothing. A rotation that fails (a read-only folder) is logged once,
    and retried as the log keeps growing."""
    try:
        watch: _Inotify | None = _Inotify(path.parent)
    except (OSError, AttributeError) as exc:  # no inotify (or no such folder): look every CHECK_MAX
        log.info("%s: no inotify (%s); checking its size every %g s", path, exc, CHECK_MAX)
        watch = None
    warned = False
    try:
        last_size = size(path)
        last_time = wake = trio.current_time()
        while True:
            current, rotated = size(path), False
            if current > max_bytes:
                try:
                    rotated = await trio.to_thread.run_sync(rotate_if_needed, path, max_bytes, keep)
                except OSError as exc:
                    if not warned:
                        log.warning("%s: cannot rotate (%s); it grows past its cap of %d bytes until fixed",
                                    path, exc, max_bytes)
                        warned = True
                if rotated:
                    warned = False
                    current = size(path)
                    if on_rotate is not None:
                        on_rotate()
            now = trio.current_time()
            growth = current - last_size
            if growth > 0:  # the rate since the writes began (since the wake, after a quiet spell)
                rate = growth / max(now - max(last_time, wake), 1e-3)
                delay = max(CHECK_MIN, min(CHECK_MAX, (max_bytes - current) / rate / 2))
            else:  # nothing grew: the next write is looked at as it comes
                delay = CHECK_MIN if rotated else 0.0
            last_size, last_time = current, now
            if watch is None:
                await trio.sleep(CHECK_MAX)
                continue
            await watch.wait()
            wake = trio.current_time()
            await trio.sleep_until(last_time + delay)  # writes meanwhile are looked at together
    finally:
        if watch is not None:
            await watch.aclose()


def log_bytes(log_dir: Path) -> int:
    """What an app's logs cost on disk now."""
    try:
        return sum(p.stat().st_size for p in log_dir.glob("*.log*") if p.is_file())
    except OSError:
        return 0
