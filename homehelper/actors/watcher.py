"""Watching apps/ so a folder copied in appears, and a changed manifest is picked up, without a
Rescan and without polling the SD card: inotify (backends/inotify.py) on apps/ and every folder
under it, and nothing at all while nothing changes.

A folder being copied is not read half-way: a change marks its top folder busy, and it settles
only once it has been quiet for `quiet` seconds with no file written to and still open (a slow
copy of a large file keeps it busy however slow). Then one scan runs, told which folders are still
busy so it leaves them as they were. However many events a copy makes, they coalesce into one
scan per settling; a folder busy for `max_wait` seconds (a file held open for good) is scanned
anyway. A manifest that did not parse mid-copy is read again on its next change.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio

from ..backends.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Event,
    Inotify,
)

log = logging.getLogger(__name__)

QUIET = 1.0  # seconds without a change before a folder counts as copied
MAX_WAIT = 60.0  # a folder busy this long is scanned all the same
MAX_WATCHES = 4096  # folders watched at most (the kernel's default limit per user is 8192 or more)
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)
ALL = "*"  # every folder: after an overflow of the kernel's queue, or apps/ itself replaced


def open_for_writing(path: Path) -> bool:
    """Whether some process has `path` open for writing now: a read lease is refused (EAGAIN) on
    such a file. False when it cannot be told (not our file, no leases on this filesystem)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


@attrs.define
class _Busy:
    first: float
    last: float
    open_files: set[tuple[int, str]] = attrs.field(factory=set)  # written to, not closed yet


class AppsWatcher:
    """Calls `settled(busy)` (busy: the top folders still changing) whenever folders have settled."""

    def __init__(self, apps_dir: Path, settled: Callable[[frozenset[str]], Awaitable[object]],
                 quiet: float = QUIET, max_wait: float = MAX_WAIT) -> None:
        self.apps_dir = apps_dir
        self.settled = settled
        self.quiet = quiet
        self.max_wait = max_wait
        self.busy: dict[str, _Busy] = {}
        self._where: dict[int, Path] = {}  # wd -> folder, relative to apps_dir ("." for apps/ itself)
        self._ino: Inotify | None = None
        self.scans = 0  # how many settlings led to a scan, for the record

    def still_busy(self) -> frozenset[str]:
        return frozenset(self.busy)

    async def catch_up(self) -> frozenset[str]:
        """Take the events queued now, then the folders still busy: a scan calls it after reading
        apps/, so a folder written to while it read is held back, not taken half-copied."""
        if self._ino is not None:
            await self._take(self._ino.queued())
        return self.still_busy()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            self._ino = Inotify()
        except (OSError, AttributeError) as exc:
            log.warning("apps/ is not watched (%s): press Rescan after copying an app in", exc)
            task_status.started()
            return
        try:
            try:  # apps/ itself at once (one system call): the first scan need not wait for the walk
                self._where[self._ino.add(self.apps_dir, MASK)] = Path(".")
            except OSError as exc:
                log.warning("apps/ is not watched (%s): press Rescan after copying an app in", exc)
                task_status.started()
                return
            task_status.started()
            await trio.to_thread.run_sync(self._watch_tree, Path("."))  # then every folder under it
            while True:
                events: list[Event] = []
                with trio.move_on_at(self._next_deadline()):
                    events = await self._ino.events()
                await self._take(events)
                if trio.current_time() >= self._next_deadline():  # a flood elsewhere does not hold it up
                    await self._settle()
        finally:
            ino, self._ino = self._ino, None  # nothing reads it once closed (its number is reused)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(ino.close)

    # --- watches ------------------------------------------------------------------------------
    def _watch_tree(self, rel: Path, new: bool = False) -> list[tuple[int, str]]:
        """Watch `rel` and every folder under it (blocking: walks the disk, in a worker thread).
        `new`: a folder made since watching began; the files in it that are open for writing now
        (written before its watch was in place) are returned as (wd, name)."""
        assert self._ino is not None
        writing: list[tuple[int, str]] = []
        for top, dirs, files in os.walk(self.apps_dir / rel):
            if len(self._where) >= MAX_WATCHES:
                log.warning("apps/: more than %d folders; the deeper ones are not watched", MAX_WATCHES)
                break
            here = Path(top)
            try:
                wd = self._ino.add(here, MASK)
            except OSError:  # gone meanwhile, or not a folder we may read: its parent saw it
                dirs.clear()
                continue
            self._where[wd] = here.relative_to(self.apps_dir)
            dirs[:] = [d for d in dirs if not os.path.islink(here / d)]
            if new:
                writing += [(wd, name) for name in files if open_for_writing(here / name)]
        return writing

    def _top(self, wd: int, name: str) -> str | None:
        """The top folder (under apps/) an event is about; None for a stale watch."""
        where = self._where.get(wd)
        if where is None:
            return None
        parts = where.parts
        if parts:
            return parts[0]
        return name or ALL  # apps/ itself: its entry `name`, or apps/ as a whole

    # --- events -------------------------------------------------------------------------------
    async def _take(self, events: list[Event]) -> None:
        now = trio.current_time()
        new_dirs: list[Path] = []
        for ev in events:
            if ev.mask & IN_Q_OVERFLOW:  # events were lost: look at everything once it is quiet
                self._mark(ALL, now)
                continue
            top = self._top(ev.wd, ev.name)
            if ev.mask & IN_IGNORED:
                self._where.pop(ev.wd, None)
            if top is None:
                continue
            if top.startswith((".", "_")):  # not an app folder (the scanner skips these too)
                continue
            busy = self._mark(top, now)
            key = (ev.wd, ev.name)
            if ev.mask & IN_MODIFY and not ev.mask & IN_ISDIR:
                busy.open_files.add(key)
            elif ev.mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM):
                busy.open_files.discard(key)
            if ev.mask & IN_ISDIR and ev.mask & (IN_CREATE | IN_MOVED_TO):
                new_dirs.append(self._where[ev.wd] / ev.name)
            if ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF) and self._where.get(ev.wd) == Path("."):
                self._mark(ALL, now)  # apps/ itself went: the scan will say so
        if new_dirs:
            # New folders are watched from here on; what was copied into them before this is seen by
            # the scan after they settle, which waits for quiet on the whole top folder.
            for rel in new_dirs:
                writing = await trio.to_thread.run_sync(self._watch_tree, rel, True)
                if writing and rel.parts:
                    self._mark(rel.parts[0], now).open_files.update(writing)

    def _mark(self, top: str, now: float) -> _Busy:
        busy = self.busy.get(top)
        if busy is None:
            busy = self.busy[top] = _Busy(now, now)
        busy.last = now
        return busy

    def _next_deadline(self) -> float:
        if not self.busy:
            return float("inf")
        return min(b.first + self.max_wait if b.open_files else b.last + self.quiet for b in self.busy.values())

    async def _settle(self) -> None:
        now = trio.current_time()
        done = [top for top, b in self.busy.items()
                if (not b.open_files and now >= b.last + self.quiet) or now >= b.first + self.max_wait]
        if not done:
            return
        for top in done:
            del self.busy[top]
        if ALL in self.busy:
            return  # everything waits for the whole of apps/ to be quiet
        self.scans += 1
        await self.settled(self.still_busy())
