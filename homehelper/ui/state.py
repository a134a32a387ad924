"""What Streamlit processes this HomeHelper started, on disk, so the next run can end them.

One small file per running app under run/streamlit/, written when a process
starts and removed when it ends (never while idle). A pid is only killed when
its command line and start time still match what was recorded: pids are
reused, and killing a stranger is worse than leaving an orphan.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import trio

from ..storage import atomic_write_json

log = logging.getLogger(__name__)

STATE_DIR = "streamlit"


def state_dir(run_dir: Path) -> Path:
    return run_dir / STATE_DIR


def record(run_dir: Path, app_id: str, pid: int, port: int, prefix: str) -> None:
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = time.time()
    atomic_write_json(state_dir(run_dir) / f"{app_id}.json",
                      {"app_id": app_id, "pid": pid, "port": port, "prefix": prefix, "create_time": created})


def forget(run_dir: Path, app_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir(run_dir) / f"{app_id}.json").unlink()


def read_all(run_dir: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every state file with its content (None when unreadable: it is removed all the same)."""
    out: list[tuple[Path, dict[str, Any] | None]] = []
    folder = state_dir(run_dir)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            data = None
        out.append((path, data if isinstance(data, dict) else None))
    return out


def matches(entry: dict[str, Any]) -> psutil.Process | None:
    """The live process `entry` describes, if it is still that streamlit process."""
    try:
        pid = int(entry["pid"])
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
        created = proc.create_time()
    except (KeyError, TypeError, ValueError, psutil.Error):
        return None
    prefix = str(entry.get("prefix", ""))
    if "streamlit" not in " ".join(cmdline) or prefix not in cmdline:
        return None
    if abs(created - float(entry.get("create_time", 0))) > 1.0:
        return None
    return proc


async def reap_leftovers(run_dir: Path, grace: float, ours: list[str] | None = None) -> list[dict[str, Any]]:
    """End the Streamlit processes a previous run left behind; returns what was ended.

    Live apps of this very run (the UI manager restarted) are left alone and named in `ours`.
    """
    ended: list[dict[str, Any]] = []
    victims: list[tuple[dict[str, Any], psutil.Process]] = []
    for path, entry in read_all(run_dir):
        proc = matches(entry) if entry is not None else None
        if proc is not None and entry is not None and _ours(proc):
            if ours is not None:
                ours.append(str(entry.get("app_id")))
            continue
        if proc is not None and entry is not None:
            victims.append((entry, proc))
            _killpg(proc.pid, signal.SIGTERM)
        elif entry is not None:
            log.info("state file %s names no live streamlit process; removing it", path.name)
        path.unlink(missing_ok=True)
    if not victims:
        return ended
    deadline = trio.current_time() + grace
    # not our children (their parent died): nothing to wait on but their pids
    while trio.current_time() < deadline and any(_alive(p) for _, p in victims):  # noqa: ASYNC110
        await trio.sleep(0.05)
    for entry, proc in victims:
        _killpg(proc.pid, signal.SIGKILL)  # the stubborn, and children that outlived the leader
        log.warning("ended leftover Streamlit process %s of %s (from a previous run)", proc.pid, entry.get("app_id"))
        ended.append(entry)
    return ended


def _ours(proc: psutil.Process) -> bool:
    try:
        return proc.ppid() == os.getpid()
    except psutil.Error:
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
