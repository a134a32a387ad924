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

import trio

from ..errors import BackendError

log = logging.getLogger(__name__)

STAMPER = Path(__file__).with_name("stamp.py")

# Stampers until reaped: each outlives the app it serves by the time it takes to drain the pipe.
_stampers: set[trio.Process] = set()


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
    return w
