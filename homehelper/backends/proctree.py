"""The whole process tree of an app (or of an install step), found and ended without systemd.

Every process the process backend or the installer starts gets a token of its own in its
environment (`HH_RUN_TOKEN`), which every process it forks inherits: a double-forked daemon that
left the session, or a child re-parented to init after HomeHelper died, still carries it. So the
tree is its session plus every process of ours whose environment holds the token, and a
HomeHelper restarted after a `kill -9` finds what the previous one started from the token it
recorded before starting it. Reading /proc costs a few milliseconds, and only at a stop.
"""

from __future__ import annotations

import os
import secrets
import signal

import psutil
import trio

from .base import wait_pid_exit

TOKEN_VAR = "HH_RUN_TOKEN"
KILL_WAIT = 5.0  # after SIGKILL: a process in uninterruptible sleep (a slow SD card) still ends


def new_token() -> str:
    return secrets.token_hex(12)


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:  # gone, or not ours to read
        return False
    return data.startswith(needle) or b"\0" + needle in data


def lower_priority(session: int, nice: int) -> None:
    """Put a new session (an app just started, its leader's PID) at `nice`: its processes, and the
    session's CPU group where the kernel has one (autogroup: HomeHelper run from a terminal, not in a
    cgroup of its own). Without the group's, each app's session weighs as much as all of HomeHelper,
    and twenty booting apps leave the dashboard a twenty-first of the CPU. Raising a nice value
    needs no privilege; a process already gone or a kernel without autogroup is no fault."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PGRP, session, nice)
        with open(f"/proc/{session}/autogroup", "w") as f:  # procfs, not a disk
            f.write(str(nice))
    except OSError:
        pass


def members(token: str | None, session: int | None = None) -> set[int]:
    """Live (non-zombie) PIDs of the tree: in `session` (a process group id), or carrying `token`."""
    needle = f"{TOKEN_VAR}={token}\0".encode() if token else None
    me, uid = os.getpid(), os.getuid()
    found: set[int] = set()
    for p in psutil.process_iter(["uids", "status"]):
        info = p.info
        if p.pid == me or info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        uids = info.get("uids")
        if uids is None or uids.real != uid:
            continue
        try:
            in_session = session is not None and os.getpgid(p.pid) == session
        except OSError:
            continue
        if in_session or (needle is not None and _environ_has(p.pid, needle)):
            found.add(p.pid)
    return found


def find_leader(token: str) -> tuple[int, float] | None:
    """(pid, create time) of the session leader carrying `token`: the app's main process."""
    for pid in members(token):
        try:
            if os.getsid(pid) == pid:
                return pid, psutil.Process(pid).create_time()
        except (OSError, psutil.Error):
            continue
    return None


def signal_all(pids: set[int], sig: int, session: int | None = None) -> None:
    if session is not None:
        try:
            os.killpg(session, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


async def _wait_all(pids: set[int]) -> None:
    async with trio.open_nursery() as nursery:
        for pid in pids:
            nursery.start_soon(wait_pid_exit, pid, lambda pid=pid: _live(pid))


def _live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def end_tree(token: str | None, session: int | None = None, timeout: float = 10.0) -> int:
    """SIGTERM the whole tree, SIGKILL what is left after `timeout`; returns once every process of
    it has ended (or KILL_WAIT after the SIGKILL). Returns how many processes there were."""
    pids = await trio.to_thread.run_sync(members, token, session)
    if not pids:
        return 0
    signal_all(pids, signal.SIGTERM, session)
    with trio.move_on_after(timeout):
        await _wait_all(pids)
    # Forked meanwhile, or still there: the same search again, then no more asking.
    rest = await trio.to_thread.run_sync(members, token, session)
    if rest:
        signal_all(rest, signal.SIGKILL, session)
        with trio.move_on_after(KILL_WAIT):
            await _wait_all(rest)
    return len(pids)
