"""Timestamped log files for the process backend: a stamper (`stamp.py`) between an app's output
and its log file, so each line carries the time it was written even when the app writes none.

`stamped_log` returns the descriptor the app's stdout and stderr go to: the write end of a pipe
whose reader is the stamper, or, when no stamper can run, the log file itself (lines unstamped,
nothing lost).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import attrs
import trio

from ..errors import BackendError
from .base import AppSpec
from .inotify import IN_MODIFY, Inotify

log = logging.getLogger(__name__)

STAMPER = Path(__file__).with_name("stamp.py")

# Stampers until reaped: each outlives the app it serves by the time it takes to drain the pipe.
_stampers: set[trio.Process] = set()
_by_log: dict[Path, trio.Process] = {}  # the latest stamper writing each log file
DRAIN_WAIT = 2.0  # seconds a crash report waits for the last lines of a dead app to reach its file


def _reap() -> None:
    for proc in [p for p in _stampers if p.poll() is not None]:
        _stampers.discard(proc)


def _open_log(app_id: str, path: Path) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BackendError(f"{app_id}: cannot open its log {path}: {exc.strerror}; "
                           f"fix it with: chmod u+rw {path}", app=app_id) from None


async def stamped_log(app_id: str, path: Path) -> int:
    """A descriptor for the app's output (the caller closes it once the app is spawned)."""
    fd = _open_log(app_id, path)  # checked here: an unwritable log is the app's error, named
    os.close(fd)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        # -I -S: no site packages, no user paths, nothing from the app's folder on sys.path.
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-I", "-S", str(STAMPER), str(path)], stdin=r, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
    except OSError as exc:
        os.close(w)
        log.warning("%s: cannot start the log stamper (%s); its lines go to %s without timestamps",
                    app_id, exc, path)
        return _open_log(app_id, path)
    finally:
        os.close(r)
    _reap()
    _stampers.add(proc)
    _by_log[path] = proc
    return w


async def drained(path: Path, timeout: float = DRAIN_WAIT) -> None:
    """Until the stamper writing `path` has written everything its app wrote and exited (it does at
    the end of the app's output), `timeout` at most; at once when there is none."""
    proc = _by_log.get(path)
    if proc is None:
        return
    with trio.move_on_after(timeout):
        await proc.wait()
    if proc.poll() is not None and _by_log.get(path) is proc:
        del _by_log[path]


async def cgroup_drained(cgroup: Path, timeout: float = DRAIN_WAIT) -> None:
    """Until no process is left in `cgroup` (its `cgroup.events` says `populated 0`: a unit's stamper
    has written the app's last lines), `timeout` at most. Woken by inotify on that file."""
    events = cgroup / "cgroup.events"

    def populated() -> bool:
        try:
            return "populated 1" in events.read_text()
        except OSError:  # gone: the unit's cgroup is removed once empty
            return False

    try:
        watch: Inotify | None = Inotify()
        watch.add(events, IN_MODIFY)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        watch = None
    try:
        with trio.move_on_after(timeout):
            while await trio.to_thread.run_sync(populated):
                if watch is None:
                    await trio.sleep(0.05)
                else:
                    await watch.wait()
    finally:
        if watch is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(watch.close)


def stamped(spec: AppSpec) -> AppSpec:
    """`spec` run through the stamper (`stamp.py --exec`): a unit whose output goes to its file gets
    each line timestamped, and its MainPID is still the app."""
    python = spec.argv[0] if Path(spec.argv[0]).name.startswith("python") else sys.executable
    return attrs.evolve(spec, argv=(python, "-I", "-S", str(STAMPER), "--exec", str(spec.log_file), "--", *spec.argv))
