"""App logs in the systemd journal: where journald runs (every Pi), service units write their
output there (`StandardOutput=journal`, `SyslogIdentifier=` the unit's name) and journald stamps
each line, caps the disk it takes (its own SystemMaxUse=/RuntimeMaxUse=) and rotates.

Tail, follow, time ranges, search and download go through `journalctl -o json`. An app's entries
are matched on the fields journald sets itself from the writer's cgroup (`_SYSTEMD_USER_UNIT` under
a user manager, `_SYSTEMD_UNIT` under the system one or a user manager outside user@.service) and
on `_UID`: an app that writes to the journal socket under another app's identifier cannot put
lines into that app's log.

`Journal.answers()` tells whether journald listens (a connect to its stdout socket), so the choice
between journal and files is made at run time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections import deque
from collections.abc import AsyncGenerator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from . import logs
from .logsearch import STAMP, Query

SOCKET = Path("/run/systemd/journal/stdout")
FIELDS = "MESSAGE,__REALTIME_TIMESTAMP"


def entry_line(entry: dict[str, Any], max_line: int = logs.MAX_LINE_BYTES) -> str | None:
    """One journal entry as a log line: its message, with journald's time in front unless the app
    wrote its own. None for an entry that is no log line (no MESSAGE)."""
    msg = entry.get("MESSAGE")
    if isinstance(msg, list):  # not UTF-8: journalctl gives the bytes
        text = bytes(b for b in msg if isinstance(b, int) and 0 <= b < 256)[:max_line].decode(errors="replace")
    elif isinstance(msg, str):
        text = msg[:max_line]
    else:
        return None
    text = text.rstrip("\r\n")
    if STAMP.match(text):
        return text
    try:
        when = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, UTC).astimezone()
    except (KeyError, TypeError, ValueError, OverflowError):
        return text
    return f"{when.isoformat(timespec='milliseconds')} {text}"


class Journal:
    """journalctl for one scope's units. `directory`: read journal files there (journalctl -D)
    instead of the machine's; `sock`: journald's stdout socket. Tests point both at their journald."""

    def __init__(self, scope: str = "user", sock: Path = SOCKET, directory: Path | None = None,
                 uid: int | None = None) -> None:
        self.scope = scope
        self.sock = sock
        self.directory = directory
        self.uid = os.getuid() if uid is None else uid

    def __repr__(self) -> str:
        return f"<Journal {self.scope} {self.directory or self.sock}>"

    def answers(self) -> bool:
        """True when journald accepts a stream on its socket (blocking; milliseconds)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            try:
                s.connect(str(self.sock))
            except OSError:
                return False
        return True

    def command(self, unit: str, *args: str) -> list[str]:
        # A user manager's units run as its user; system units as their User=, named by the unit alone.
        uid = [f"_UID={self.uid}"] if self.scope == "user" else []
        return ["journalctl", "--no-pager", "-q", "-o", "json", f"--output-fields={FIELDS}",
                *(["-D", str(self.directory)] if self.directory is not None else []), *args,
                *uid, f"_SYSTEMD_USER_UNIT={unit}", "+", *uid, f"_SYSTEMD_UNIT={unit}"]

    @staticmethod
    def _range(query: Query) -> list[str]:
        args = []
        if query.since is not None:
            args.append(f"--since=@{query.since.timestamp():.6f}")
        if query.until is not None:
            args.append(f"--until=@{query.until.timestamp():.6f}")
        return args

    def _entries(self, cmd: list[str]) -> Iterator[str]:
        """Run journalctl, yielding each entry's line; it is ended when the caller stops early."""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = _line(raw)
                if line is not None:
                    yield line
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()

    def search(self, unit: str, query: Query, lines: int) -> list[str]:
        """The last `lines` entries matching `query` (blocking). Read newest first and stopped once
        enough matched, so a search over a month of journal costs what its answer costs."""
        lines = max(0, min(lines, logs.MAX_LINES))
        if lines == 0:
            return []
        if not query.grep:
            return list(self._entries(self.command(unit, "-n", str(lines), *self._range(query))))
        found: deque[str] = deque()
        for line in self._entries(self.command(unit, "-r", *self._range(query))):
            if query.grep in line:
                found.appendleft(line)
                if len(found) >= lines:
                    break
        return list(found)

    def output_since(self, unit: str, since: float, max_bytes: int = 16 * 1024) -> str:
        """What the unit wrote since `since` (epoch seconds), the last `max_bytes` of it (blocking):
        a crash report's tail."""
        out: deque[str] = deque()
        size = 0
        for line in self._entries(self.command(unit, f"--since=@{since:.6f}", "-n", "200")):
            out.append(line)
            size += len(line) + 1
            while size > max_bytes and out:
                size -= len(out.popleft()) + 1
        return "".join(f"{line}\n" for line in out)

    async def follow(self, unit: str, since: float | None = None) -> AsyncGenerator[str, None]:
        """Each new entry's line as it is written (from `since`, epoch seconds), until the caller stops."""
        cmd = self.command(unit, "-f", *([f"--since=@{since:.6f}"] if since is not None else ["-n", "0"]))
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                _run_process, cmd)  # killed when the nursery is cancelled
            assert proc.stdout is not None
            try:
                buf = b""
                async for chunk in proc.stdout:
                    buf += chunk
                    *done, buf = buf.split(b"\n")
                    if len(buf) > 1024 * 1024:  # an entry that never ends: not journalctl's json
                        buf = b""
                    for raw in done:
                        line = _line(raw)
                        if line is not None:
                            yield line
            finally:
                nursery.cancel_scope.cancel()

    async def download(self, unit: str) -> AsyncGenerator[bytes, None]:
        """Every kept entry, oldest first, as text, streamed."""
        cmd = self.command(unit)
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(_run_process, cmd)
            assert proc.stdout is not None
            try:
                buf = b""
                async for chunk in proc.stdout:
                    *done, buf = (buf + chunk).split(b"\n")
                    out = [line for line in map(_line, done) if line is not None]
                    if out:
                        yield "".join(f"{line}\n" for line in out).encode()
            finally:
                nursery.cancel_scope.cancel()


async def _run_process(cmd: list[str], *, task_status: trio.TaskStatus[trio.Process]) -> None:
    await trio.run_process(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           check=False, task_status=task_status)


def _line(raw: bytes) -> str | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry_line(entry) if isinstance(entry, dict) else None


async def run_output(backend: object, app_id: str, path: Path, offset: int, since: float) -> str:
    """What an app wrote in its current run (a crash report's tail): from the journal when its
    unit logs there, else its log file after `offset`, once its stamper has written all of it."""
    drain = getattr(backend, "drained", None)
    if drain is not None:
        await drain(app_id)
    via = getattr(backend, "output_since", None)
    if via is not None:
        text = await via(app_id, since)
        if isinstance(text, str):
            return text
    return await trio.to_thread.run_sync(logs.read_since, path, offset)
