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


def atomic_write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode)


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
