"""HomeHelper's own sd_notify socket, for watchdog apps on the process backend.

Under systemd an app's `READY=1` and `WATCHDOG=1` go to the manager; without it they
come here, so both backends judge a watchdog app alike. One AF_UNIX datagram socket
serves every app. A sender is known by the PID the kernel attaches to each datagram
(SO_PASSCRED), never by what the datagram says: only the main process of an app
that asked for the watchdog counts (systemd's NotifyAccess=main), the rest is dropped.
"""

from __future__ import annotations

import array
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import trio

log = logging.getLogger(__name__)

MAX_DATAGRAM = 4096  # systemd's own limit (PIPE_BUF); anything longer is dropped whole
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(4 * 16)  # credentials, and room to spot fds
_SUN_PATH_MAX = 107  # sizeof(sun_path) - 1


def socket_address(path: Path) -> str:
    """`path` when it fits in a sockaddr_un, else an abstract name derived from it (stable across
    restarts, so an adopted app's NOTIFY_SOCKET still reaches the next HomeHelper).
    In NOTIFY_SOCKET form: an abstract name starts with '@'."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return str(path)
    return "@homehelper-notify-" + hashlib.sha256(os.fsencode(path)).hexdigest()[:24]


def _sockaddr(address: str) -> str:
    return "\0" + address[1:] if address.startswith("@") else address


class _Watch:
    """What one run of one app said: READY=1 yet, and when it last beat."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ready = False
        self.last = trio.current_time()
        self.changed = trio.Event()

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class NotifyListener:
    """Receives sd_notify datagrams. `resolve(pid)` names the watchdog app whose main process
    `pid` is (None: not one), so a datagram that raced ahead of its sender's bookkeeping is
    still judged by who sent it."""

    def __init__(self, path: Path, resolve: Callable[[int], str | None]) -> None:
        self.path = path
        self.address = socket_address(path)
        self.resolve = resolve
        self.dropped = 0  # datagrams ignored: unknown sender, too long, no credentials
        self._watches: dict[str, _Watch] = {}
        self._sock: trio.socket.SocketType | None = None

    def bind(self) -> None:
        """Create the socket (sync, quick); `serve` then reads it."""
        if self._sock is not None:
            return
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            if not self.address.startswith("@"):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.unlink(missing_ok=True)  # left by a HomeHelper that is gone
            raw.bind(_sockaddr(self.address))
            if not self.address.startswith("@"):
                os.chmod(self.path, 0o600)  # the apps run as our user; nobody else may write to it
        except BaseException:
            raw.close()
            raise
        self._sock = trio.socket.from_stdlib_socket(raw)

    async def serve(self) -> None:
        self.bind()
        assert self._sock is not None
        try:
            while True:
                data, ancdata, flags, _ = await self._sock.recvmsg(MAX_DATAGRAM, _ANCILLARY)
                self._take(data, ancdata, flags)
        finally:
            self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            if not self.address.startswith("@"):
                self.path.unlink(missing_ok=True)

    def _take(self, data: bytes, ancdata: list[tuple[int, int, bytes]], flags: int) -> None:
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                for fd in fds:  # an app may pass descriptors; we keep none
                    os.close(fd)
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                pid = _UCRED.unpack(payload[:_UCRED.size])[0]
        app = None if pid is None or flags & socket.MSG_TRUNC else self.resolve(pid)
        if app is None or pid is None:
            self.dropped += 1
            return
        fields = set(data.decode("utf-8", "replace").split("\n"))
        watch = self._watch(app, pid)
        if "READY=1" in fields:
            watch.ready = True
        if "READY=1" in fields or "WATCHDOG=1" in fields:
            watch.last = trio.current_time()
            watch.wake()

    def _watch(self, app_id: str, pid: int) -> _Watch:
        watch = self._watches.get(app_id)
        if watch is None or watch.pid != pid:  # a new run starts from scratch
            watch = self._watches[app_id] = _Watch(pid)
        return watch

    def forget(self, app_id: str) -> None:
        self._watches.pop(app_id, None)

    async def wait_ready(self, app_id: str, pid: int) -> None:
        """Return once run `pid` of the app has sent READY=1."""
        watch = self._watch(app_id, pid)
        while not watch.ready:
            await watch.changed.wait()

    def adopt(self, app_id: str, pid: int) -> None:
        """A run a previous HomeHelper saw become ready: it counts as ready, its clock starts now."""
        self._watch(app_id, pid).ready = True

    async def missed_heartbeat(self, app_id: str, pid: int, interval: float) -> str:
        """Return (with why) once run `pid` has gone `interval` seconds without READY=1 or WATCHDOG=1."""
        watch = self._watch(app_id, pid)
        while True:
            with trio.move_on_at(watch.last + interval):
                await watch.changed.wait()
                continue
            if trio.current_time() >= watch.last + interval:
                return f"watchdog: no heartbeat within {interval:g} s"
