"""Atomic writes: a temp file beside the target, fsync, rename, fsync the folder.

A `kill -9` or a power cut at any moment leaves either the old file or the new
one, never half of one (SD cards on a Pi lose power often).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import trio

# `.<name>.<pid>.<random>.tmp`, and `.<name>.<pid>.tmp` of older versions: what a crash mid-write leaves.
TMP_NAME = re.compile(r"^\..+\.\d+(\.[0-9a-f]{8,})?\.tmp$")


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per write: two writers of one file (two tasks, two threads) never share a
    # temp file, so the loser of the race is simply replaced, never interleaved.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode)


def json_bytes(data: Any) -> bytes:
    """How HomeHelper's JSON files are written: indented, keys sorted, a final newline."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def atomic_write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    atomic_write_bytes(path, json_bytes(data), mode)


def read_json(path: Path, default: Any = None) -> Any:
    """The file's JSON, or `default` when it does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return default


def set_aside(path: Path) -> Path:
    """Rename a damaged file to `<name>.corrupt-<UTC time>` beside it (kept for a person); the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while os.path.lexists(target):
        target, n = path.with_name(f"{path.name}.corrupt-{stamp}-{n}"), n + 1
    os.replace(path, target)
    return target


def remove_leftover_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files interrupted atomic writes left under `folder` (call only while no write runs)."""
    removed: list[Path] = []
    for p in sorted(folder.rglob(".*.tmp")) if folder.is_dir() else ():
        if TMP_NAME.match(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


_NOTHING: Any = object()


class LatestWriter:
    """The one writer of one file: the latest value wins, written on a worker thread.

    An fsync on an SD card takes milliseconds, and the trio thread must never wait for one. Changes
    that come while a write runs are folded into the next write: a burst of N changes costs two
    writes, not N. Outside a running writer (a script, the kill -9 test) `submit` writes at once.
    """

    def __init__(self, path: Path, write: Any = atomic_write_json) -> None:
        self.path = path
        self._write = write
        self._pending: Any = _NOTHING
        self._lock = trio.Lock()  # one write at a time, in the order the values came
        self._wake = trio.Event()
        self._started = False
        self.writes = 0

    def submit(self, data: Any) -> None:
        """Ask for `data` to be written soon (without waiting for it)."""
        if not self._started:
            self._write(self.path, data)
            self.writes += 1
            return
        self._pending = data
        self._wake.set()

    async def flush(self) -> None:
        """Return once every submitted value is on disk (written by a worker thread)."""
        async with self._lock:
            while self._pending is not _NOTHING:
                data, self._pending = self._pending, _NOTHING
                await trio.to_thread.run_sync(self._write, self.path, data)
                self.writes += 1

    async def write(self, data: Any) -> None:
        """Write `data` now (off the trio thread), after anything submitted before it."""
        self._pending = data
        await self.flush()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: writes whatever was submitted, until cancelled (then `flush` the rest)."""
        self._started = True  # from now on values wait for a flush: never written on the trio thread
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()
