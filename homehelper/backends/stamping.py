"""Timestamped log files: a stamper (`stamp.py`) between an app's output and its log file, so
each line carries the time it was written even when the app writes none.

The process backend has one stamper process per state root (`Stamper`, `stamp.py --serve`) for
all its apps: each start hands it the read end of a new pipe and the app's log file, and the app
writes to the pipe. Where no stamper can run, the app writes to its log file (lines unstamped,
nothing lost). A systemd unit without journald runs its own (`stamped`: `stamp.py --exec`).
"""

from __future__ import annotations

import array
import hashlib
import logging
import os
import secrets
import socket
import sys
import weakref
from pathlib import Path

import attrs
import trio

from ..errors import BackendError
from .base import AppSpec
from .inotify import IN_MODIFY, Inotify
from .proctree import TOKEN_VAR

log = logging.getLogger(__name__)

STAMPER = Path(__file__).with_name("stamp.py")
DRAIN_WAIT = 2.0  # seconds a crash report waits for the last lines of a dead app to reach its file
_SUN_PATH_MAX = 107  # sizeof(sun_path) - 1

# Stampers started here, until reaped (a zombie waits for the next start): each may outlive the
# backend that started it, as the apps do.
_spawned: set[int] = set()
_live: weakref.WeakSet[Stamper] = weakref.WeakSet()  # for `drained(path)` from callers without a backend


def _reap() -> None:
    for pid in list(_spawned):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        except ChildProcessError:  # reaped by someone else
            pass
        _spawned.discard(pid)


def _open_log(app_id: str, path: Path) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BackendError(f"{app_id}: cannot open its log {path}: {exc.strerror}; "
                           f"fix it with: chmod u+rw {path}", app=app_id) from None


def _address(path: Path) -> str:
    """`path` when it fits in a sockaddr_un, else an abstract name derived from it (the stamper
    then takes connections from HomeHelper's user only, as the 0700 folder does for `path`)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return str(path)
    return "\0homehelper-stamper-" + hashlib.sha256(os.fsencode(path)).hexdigest()[:24]


class Stamper:
    """The process backend's side of its stamper: one control connection (AF_UNIX SOCK_SEQPACKET)
    to the stamper serving `state_dir`, which it starts when none answers. A start sends the app's
    pipe and log file and waits for no answer; the stamper says `done <id>` when it has written a
    stream's last line, which `drained` waits for."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "stamper"
        self.address = _address(self.folder / "stamper.sock")
        self.pid: int | None = None  # the stamper this object started, if it did
        self._sock: socket.socket | None = None
        self._reading = trio.Lock()  # one task waits for replies at a time
        self._waiting: trio.CancelScope | None = None  # its wait, ended when a start reads the replies
        self._prefix = secrets.token_hex(4)  # stream ids unique among every HomeHelper it serves
        self._count = 0
        self._latest: dict[Path, str] = {}  # log file -> its newest stream the stamper has not finished
        self._paths: dict[str, Path] = {}  # stream id -> its log file, until done
        _live.add(self)

    def __repr__(self) -> str:
        return f"<Stamper {self.address!r}>"

    async def ensure(self) -> bool:
        """Connected to a stamper, started if none answers (cheap to call early: a start then
        pays nothing). False, with a warning, where none can run."""
        self._take_replies()
        if self._sock is None:  # (no await from here on: no other start can come between)
            try:
                self._attach(self._connect() or self._spawn())
            except OSError as exc:
                log.warning("cannot start the log stamper at %s (%s); app output goes to the "
                            "log files without timestamps", self.folder, exc)
                return False
        return True

    async def log_fd(self, app_id: str, path: Path) -> int:
        """A descriptor for the app's output (the caller closes it once the app is spawned)."""
        fd = _open_log(app_id, path)  # checked here: an unwritable log is the app's error, named
        for _ in range(2):  # a stamper found dead on the first try: a new one
            if not await self.ensure():
                return fd
            assert self._sock is not None
            r, w = os.pipe2(os.O_CLOEXEC)
            self._count += 1
            sid = f"{self._prefix}.{self._count}"
            try:
                self._sock.sendmsg([f"stream {sid}\n".encode()],
                                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r, fd]))])
            except BlockingIOError:  # a stamper that does not keep up must not hold up a start
                os.close(w)
                log.warning("%s: the log stamper is not keeping up; its lines go to %s without "
                            "timestamps", app_id, path)
                return fd
            except OSError:  # it died since the last start (an end of file not read yet)
                os.close(w)
                self._drop()
                continue
            finally:
                os.close(r)
            os.close(fd)
            self._latest[path] = sid
            self._paths[sid] = path
            return w
        log.warning("%s: the log stamper ended twice in a row; its lines go to %s without timestamps", app_id, path)
        return fd

    async def drained(self, path: Path, timeout: float = DRAIN_WAIT) -> None:
        """Until the stamper has written everything the app writing `path` wrote (the stream's end
        of file), `timeout` at most; at once when no stream of ours writes there."""
        sid = self._latest.get(path)
        with trio.move_on_after(timeout):
            while sid is not None and self._latest.get(path) == sid and self._sock is not None:
                async with self._reading:
                    if self._latest.get(path) == sid and self._sock is not None:
                        try:
                            with trio.CancelScope() as self._waiting:
                                await trio.lowlevel.wait_readable(self._sock)
                        except trio.ClosedResourceError:  # dropped meanwhile: nothing more comes
                            return
                        finally:
                            self._waiting = None
                        self._take_replies()

    def close(self) -> None:
        """Let go of the stamper (HomeHelper's end): it exits once its last stream ends."""
        self._drop()

    def _connect(self) -> socket.socket | None:
        """The control connection to a running stamper; None when none listens (any left over
        socket file is removed)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            sock.connect(self.address)
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            if not self.address.startswith("\0"):
                Path(self.address).unlink(missing_ok=True)  # left by a stamper that is gone
            return None
        except BaseException:
            sock.close()
            raise
        return sock

    def _spawn(self) -> socket.socket:
        """Bind and listen, connect, then start the stamper on the listening socket: it finds our
        connection waiting, and so no start races it."""
        if not self.address.startswith("\0"):
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            listener.bind(self.address)
            listener.listen(128)
            sock = self._connect()
            assert sock is not None
            env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}  # in no app's process tree
            try:
                # -I -S: no site packages, no user paths, nothing from an app's folder on sys.path.
                # posix_spawn, not a Popen: it outlives this HomeHelper, which must not wait for it.
                pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", str(STAMPER), "--serve"], env,
                                     file_actions=[(os.POSIX_SPAWN_DUP2, listener.fileno(), 0),
                                                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                                   (os.POSIX_SPAWN_DUP2, 1, 2)], setsid=True)
            except BaseException:
                sock.close()
                raise
        finally:
            listener.close()  # the stamper's alone: once it is gone, connect() is refused
        _reap()
        _spawned.add(pid)
        self.pid = pid
        return sock

    def _attach(self, sock: socket.socket) -> None:
        self._sock = sock
        weakref.finalize(self, sock.close)  # a backend dropped unclosed: closed, no ResourceWarning

    def _take_replies(self) -> None:
        """Read what the stamper said (without waiting): streams done, or its end (it is gone)."""
        while self._sock is not None:
            try:
                msg = self._sock.recv(256)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if not msg:
                self._drop()
                return
            if self._waiting is not None:  # what drained() waits for may be in this reply
                self._waiting.cancel()
            if msg.startswith(b"done ") and msg.endswith(b"\n"):
                sid = msg[5:-1].decode("ascii", "replace")
                path = self._paths.pop(sid, None)
                if path is not None and self._latest.get(path) == sid:
                    del self._latest[path]

    def _drop(self) -> None:
        """Forget the connection: nothing more will be done, so nothing is waited for."""
        sock, self._sock = self._sock, None
        self._latest.clear()
        self._paths.clear()
        if self._waiting is not None:
            self._waiting.cancel()
        if sock is not None:
            try:
                trio.lowlevel.notify_closing(sock)  # a drained() waiting on it wakes up
            except RuntimeError:  # outside trio: nobody waits
                pass
            sock.close()


async def drained(path: Path, timeout: float = DRAIN_WAIT) -> None:
    """`Stamper.drained` for a caller that has no backend at hand (a Streamlit launch)."""
    with trio.move_on_after(timeout):
        for stamper in list(_live):
            await stamper.drained(path, timeout)


async def cgroup_drained(cgroup: Path, timeout: float = DRAIN_WAIT) -> None:
    """Until no process is left in `cgroup` (its `cgroup.events` says `populated 0`: a unit's stamper
    has written the app's last lines), `timeout` at most. Woken by inotify on that file."""
    events = cgroup / "cgroup.events"

    def populated() -> bool:
        try:
            return "populated 1" in events.read_text()
        except OSError:  # gone: the unit's cgroup is removed once empty
            return False

    try:
        watch: Inotify | None = Inotify()
        watch.add(events, IN_MODIFY)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        watch = None
    try:
        with trio.move_on_after(timeout):
            while await trio.to_thread.run_sync(populated):
                if watch is None:
                    await trio.sleep(0.05)
                else:
                    await watch.wait()
    finally:
        if watch is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(watch.close)


def stamped(spec: AppSpec) -> AppSpec:
    """`spec` run through the stamper (`stamp.py --exec`): a unit whose output goes to its file gets
    each line timestamped, and its MainPID is still the app."""
    python = spec.argv[0] if Path(spec.argv[0]).name.startswith("python") else sys.executable
    return attrs.evolve(spec, argv=(python, "-I", "-S", str(STAMPER), "--exec", str(spec.log_file), "--", *spec.argv))
