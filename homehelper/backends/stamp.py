"""Capture-time timestamps for log files: `python stamp.py LOGFILE` copies stdin to LOGFILE,
putting the time each line began to arrive in front of it, unless the line starts with a
timestamp of the app's own.

The process backend runs one per app between the app's stdout/stderr and logs/<id>/app.log (under
systemd with journald, journald stamps each line instead). It is run by path, never imported as
part of the package, so it costs a bare interpreter (a few MB), not HomeHelper's imports; it is not
in the app's process tree (no token), so a stop ends the app and the stamper drains what is left in
the pipe and exits at end of file. It lives in its own session: a HomeHelper restart leaves it, as
it leaves the app. The file is opened O_APPEND, so copy-truncate rotation works as before.
"""

from __future__ import annotations

import os
import re
import select
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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: stamp.py LOGFILE  (copies stdin to LOGFILE, timestamping each line)", file=sys.stderr)
        return 2
    dst = os.open(argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        copy(0, dst)
    finally:
        os.close(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
