"""Capture-time timestamps for log files: `python stamp.py LOGFILE` copies stdin to LOGFILE,
putting the time each line began to arrive in front of it, unless the line starts with a
timestamp of the app's own.

    python -I -S stamp.py LOGFILE                  (the process backend: a process of its own)
    python -I -S stamp.py --exec LOGFILE -- APP... (a systemd unit without journald: ExecStart=)

The process backend runs one per app between the app's stdout/stderr and logs/<id>/app.log; it is
not in the app's process tree (no token), so a stop ends the app and the stamper drains what is
left in the pipe and exits at end of file; it lives in its own session, so a HomeHelper restart
leaves it, as it leaves the app. In a unit, `--exec` forks the stamper off (twice: the manager, not
the app, reaps it) and then execs the app in its own PID, so the unit's MainPID is the app (exit
status, sd_notify); the stamper ignores the SIGTERM of a stop and ends when the app's output does.
Under systemd with journald, journald stamps each line instead.

Run by path, never imported as part of the package: a bare interpreter (a few MB), not
HomeHelper's imports. The file is opened O_APPEND, so copy-truncate rotation works as before.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime

# A line that starts with a date and time (ISO 8601, `2026-11-28 12:00:01,123`, optionally in [ ]):
# the app's own stamp, kept as it is. homehelper.backends.logsearch reads the same pattern.
STAMP = re.compile(rb"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
HEAD = 40  # bytes of a line enough to see whether it has a stamp
HEAD_WAIT = 0.05  # seconds to wait for them when a line's start comes alone
MAX_READ = 64 * 1024


def stamp_now() -> bytes:
    """Local time with its offset, to the millisecond: `2026-11-28T12:00:01.123+01:00 `."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds").encode() + b" "


def _read(fd: int, wait: float | None) -> bytes | None:
    """Up to MAX_READ bytes; b"" at end of file; None when nothing came within `wait` seconds."""
    if wait is not None and not select.select([fd], [], [], wait)[0]:
        return None
    while True:
        try:
            return os.read(fd, MAX_READ)
        except InterruptedError:
            continue


def copy(src: int, dst: int, stamp: Callable[[], bytes] = stamp_now) -> None:
    """Copy `src` to `dst` until end of file, stamping each line that has no stamp of its own."""
    at_start = True
    pending = b""  # the start of a line, held back until HEAD bytes or a newline or HEAD_WAIT
    began = b""
    while True:
        waiting = at_start and pending != b""
        chunk = _read(src, HEAD_WAIT if waiting else None)
        if chunk == b"":
            if pending:
                _write(dst, (b"" if STAMP.match(pending) else began) + pending)
            return
        if chunk is None:  # a lone line start, and nothing more for a while: decide on what is there
            chunk = b""
        out = bytearray()
        data = pending + chunk
        pending = b""
        while data:
            if at_start:
                if b"\n" not in data[:HEAD] and len(data) < HEAD and chunk:
                    if not began:
                        began = stamp()  # the time the line began to arrive, not when it was decided
                    pending = data
                    break
                head = began or stamp()
                began = b""
                if not STAMP.match(data):
                    out += head
                at_start = False
            nl = data.find(b"\n")
            if nl < 0:
                out += data
                data = b""
            else:
                out += data[:nl + 1]
                data = data[nl + 1:]
                at_start = True
        if out:
            _write(dst, bytes(out))


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:  # a full or vanished disk: drop this piece, keep draining (the app must not block)
            time.sleep(0.1)
            return


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def _close_all_but(*keep: int) -> None:
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def run_then_exec(logfile: str, argv: list[str]) -> None:
    """Start a stamper from a pipe into `logfile`, point stdout and stderr at the pipe, become `argv`.
    Where the log cannot be opened, the app runs with the output it was given (the unit's file)."""
    try:
        dst = _open(logfile)
    except OSError as exc:
        print(f"stamp.py: cannot open {logfile}: {exc.strerror}; lines are not timestamped", file=sys.stderr)
        os.execv(argv[0], argv)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:
                os.close(w)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stop ends the app; its output's end ends this
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _close_all_but(r, dst)  # nothing of the app's (its sockets) is held open by the stamper
                copy(r, dst)
        finally:
            os._exit(0)
    os.close(r)
    os.close(dst)
    os.waitpid(child, 0)
    os.dup2(w, 1)
    os.dup2(w, 2)
    os.close(w)
    os.execv(argv[0], argv)


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[1] == "--exec" and argv[3] == "--":
        run_then_exec(argv[2], argv[4:])
    if len(argv) != 2:
        print("usage: stamp.py LOGFILE | stamp.py --exec LOGFILE -- APP...  (timestamps each line)", file=sys.stderr)
        return 2
    dst = _open(argv[1])
    try:
        copy(0, dst)
    finally:
        os.close(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
