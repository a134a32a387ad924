"""Opening the state root for `serve`: one HomeHelper per root, leftovers cleaned, a damaged config set aside.

Order matters: the lock comes first, so a second `homehelper serve` on the same root stops before
it touches anything the first one owns (its Streamlit processes, its registry, its config).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import attrs

from .config import Config, load_config
from .errors import ConfigError, Conflict
from .messages import StateFileDamaged
from .storage import remove_leftover_temp_files, set_aside

log = logging.getLogger("homehelper")

LOCK_NAME = "lock"  # under run/
LAYOUT = ("config", "registry", "run", "data", "logs")
ATOMIC_DIRS = ("config", "registry", "run")  # where atomic writes may have left temp files


@attrs.define
class RootLock:
    """An exclusive flock on `<root>/run/lock`, held while the file descriptor is open."""

    root: Path
    fd: int | None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock


def lock_root(root: Path) -> RootLock:
    """Take the state root, or raise Conflict naming who holds it. Blocking (a few syscalls)."""
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    # Not inherited by the apps HomeHelper starts (os.open is O_CLOEXEC): a Streamlit process left
    # running must not keep the root locked after HomeHelper is gone.
    fd = os.open(run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise Conflict(f"state root {root} is in use by {holder}; stop it first, or choose another root "
                       f"with --root", root=str(root), holder=holder) from None
    except BaseException:
        os.close(fd)
        raise
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"homehelper pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
    return RootLock(root, fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text if text.startswith("homehelper pid ") and text.isprintable() else "another homehelper"


def prepare_root(root: Path) -> list[Path]:
    """Make the layout and remove the temp files interrupted writes left (the lock must be held)."""
    for sub in LAYOUT:
        (root / sub).mkdir(parents=True, exist_ok=True)
    removed: list[Path] = []
    for sub in ATOMIC_DIRS:
        removed += remove_leftover_temp_files(root / sub)
    if removed:
        log.info("removed %d temp file(s) left by interrupted writes: %s", len(removed),
                 ", ".join(str(p.relative_to(root)) for p in removed[:5]))
    return removed


def load_or_repair(root: Path, overrides: dict[str, Any] | None = None,
                   environ: dict[str, str] | None = None) -> tuple[Config, list[StateFileDamaged]]:
    """The config; a config.json that is not a JSON object is set aside and HomeHelper starts on the
    defaults (with the environment and flags), saying so. A bad value in a good file stays an error:
    that file says what its author wants, and starting without it would quietly do something else."""
    try:
        return load_config(root, overrides, environ), []
    except ConfigError as exc:
        what = exc.detail.get("damaged")
        if not what:
            raise
        path = root / "config" / "config.json"
        aside = set_aside(path)
        log.warning("config: %s is %s; kept as %s, starting on the defaults", path, what, aside.name)
        return load_config(root, overrides, environ), [StateFileDamaged(str(path), str(aside), str(what))]
