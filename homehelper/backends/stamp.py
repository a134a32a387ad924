"""Capture-time timestamps for log files: `python stamp.py LOGFILE` copies stdin to LOGFILE,
putting the time each line began to arrive in front of it, unless the line starts with a
timestamp of the app's own.

    python -I -S stamp.py --serve                  (the process backend: one for all its apps)
    python -I -S stamp.py --exec LOGFILE -- APP... (a systemd unit without journald: ExecStart=)
    python -I -S stamp.py LOGFILE                  (one stream, stdin to LOGFILE)

The process backend runs one `--serve` stamper per state root (`stamping.Stamper`) between every
app's stdout/stderr and its logs/<id>/app.log: HomeHelper hands it each app's pipe and log file
over a unix socket (see `Server`). It is in no app's process tree (no token), so a stop ends the
app and the stamper drains what is left in its pipe; it lives in its own session, so a HomeHelper
restart leaves it, as it leaves the apps, and the next HomeHelper connects to it again. In a unit,
`--exec` forks the stamper off (twice: the manager, not the app, reaps it) and then execs the app
in its own PID, so the unit's MainPID is the app (exit status, sd_notify); the stamper ignores the
SIGTERM of a stop and ends when the app's output does. Under systemd with journald, journald
stamps each line instead.

Run by path, never imported as part of the package: a bare interpreter (a few MB), not
HomeHelper's imports. Log files are opened O_APPEND, so copy-truncate rotation works as before.
"""
from __future__ import annotations

import errno
import os
import re
import select
import selectors
import signal
import socket
import struct
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


class Lines:
    """One stream's line logic: what to write for each piece read, stamping each line that has no
    stamp of its own with the time it began to arrive. The caller reads and writes; a line's start
    that comes alone is held back (`pending`) until HEAD bytes, a newline, or `deadline` passes."""

    def __init__(self, stamp: Callable[[], bytes] = stamp_now) -> None:
        self.stamp = stamp
        self.at_start = True
        self.pending = b""  # the start of a line, held back until it shows whether it has a stamp
        self.began = b""  # the stamp of the time that start arrived, not of when it is decided
        self.deadline: float | None = None  # time.monotonic() at which to decide on `pending` as it is

    def feed(self, chunk: bytes) -> bytes:
        """What to write for `chunk` (not empty): every line it completes or starts, stamped."""
        return self._run(chunk, decide=False)

    def expire(self) -> bytes:
        """Nothing more came by `deadline`: decide on the line's start as it is."""
        return self._run(b"", decide=True)

    def eof(self) -> bytes:
        """What is left at the end of the stream (an unfinished last line, stamped)."""
        pending, began = self.pending, self.began
        self.pending, self.began, self.deadline = b"", b"", None
        if not pending:
            return b""
        return (b"" if STAMP.match(pending) else began) + pending

    def _run(self, chunk: bytes, decide: bool) -> bytes:
        out = bytearray()
        data = self.pending + chunk
        self.pending, self.deadline = b"", None
        while data:
            if self.at_start:
                if not decide and b"\n" not in data[:HEAD] and len(data) < HEAD:
                    if not self.began:
                        self.began = self.stamp()
                    self.pending, self.deadline = data, time.monotonic() + HEAD_WAIT
                    break
                head = self.began or self.stamp()
                self.began = b""
                if not STAMP.match(data):
                    out += head
                self.at_start = False
            nl = data.find(b"\n")
            if nl < 0:
                out += data
                data = b""
            else:
                out += data[:nl + 1]
                data = data[nl + 1:]
                self.at_start = True
        return bytes(out)


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
    lines = Lines(stamp)
    while True:
        wait = None if lines.deadline is None else max(0.0, lines.deadline - time.monotonic())
        chunk = _read(src, wait)
        if chunk == b"":
            _write(dst, lines.eof())
            return
        _write(dst, lines.expire() if chunk is None else lines.feed(chunk))


def _write(fd: int, data: bytes, pause: float = 0.1) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:  # a full or vanished disk: drop this piece, keep draining (the app must not block)
            if pause:
                time.sleep(pause)
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


STREAM = re.compile(rb"stream ([A-Za-z0-9._-]{1,64})\n")  # a control message: the stream's id


class Server:
    """`--serve`: one stamper for every app of a HomeHelper. fd 0 is a listening AF_UNIX
    SOCK_SEQPACKET socket; on a control connection, `stream <id>\\n` comes with two descriptors
    (SCM_RIGHTS): the read end of an app's output pipe and its log file, opened by HomeHelper. Lines
    go from the one to the other, stamped; at the pipe's end, `done <id>\\n` goes to every control
    connection. Nothing is opened by path here: whoever reaches the socket can only have descriptors
    of its own copied. Exits once no stream and no control connection is left."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener: socket.socket | None = listener
        self.listening = True  # False while out of descriptors
        self.sel = selectors.DefaultSelector()
        self.controls: dict[int, socket.socket] = {}
        self.streams: dict[int, tuple[int, bytes, Lines]] = {}  # pipe fd -> (log fd, id, its lines)
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ)

    def run(self) -> None:
        self._accept()  # the HomeHelper that started this one connected before it did
        while self.streams or self.controls or self._last_call():
            deadlines = [lines.deadline for _, _, lines in self.streams.values() if lines.deadline is not None]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.sel.select(wait):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fd in self.controls:
                    self._command(self.controls[key.fd])
                elif key.fd in self.streams:
                    self._copy(key.fd)
            now = time.monotonic()
            for dst, _, lines in list(self.streams.values()):
                if lines.deadline is not None and lines.deadline <= now:
                    _write(dst, lines.expire(), 0)

    def _last_call(self) -> bool:
        """Nobody left: refuse new connections (a HomeHelper then starts a new stamper), then serve on
        only if one connected before the refusal."""
        if self.listener is None:
            return False
        try:
            self.listener.shutdown(socket.SHUT_RD)  # connect() now fails: ECONNREFUSED
        except OSError:
            pass
        self._accept()
        if self.listening:
            self.sel.unregister(self.listener)
        self.listener.close()
        self.listener = None
        return bool(self.controls)

    def _accept(self) -> None:
        while self.listener is not None:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of descriptors: listen again once a stream has ended
                if exc.errno in (errno.EMFILE, errno.ENFILE) and self.listening:
                    self.sel.unregister(self.listener)
                    self.listening = False
                return
            cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", cred)[1] != os.getuid():  # an abstract name is open to all users
                conn.close()
                continue
            conn.setblocking(False)
            self.controls[conn.fileno()] = conn
            self.sel.register(conn, selectors.EVENT_READ)

    def _command(self, conn: socket.socket) -> None:
        try:
            msg, fds, flags, _ = socket.recv_fds(conn, 256, 2)
        except BlockingIOError:
            return
        except OSError:
            msg, fds, flags = b"", [], 0
        if not msg and not fds:  # end of file: that HomeHelper is gone (its streams stay)
            self.sel.unregister(conn)
            del self.controls[conn.fileno()]
            conn.close()
            self._freed()
            return
        match = STREAM.fullmatch(msg)
        if match is None or len(fds) != 2 or flags & socket.MSG_CTRUNC:
            for fd in fds:  # not a stream: what came with it is closed, nothing else happens
                os.close(fd)
            return
        src, dst = fds
        try:
            os.set_blocking(src, False)
            os.set_blocking(dst, False)  # a log that is no file (a FIFO) drops what it cannot take now
            self.sel.register(src, selectors.EVENT_READ)
        except (OSError, ValueError):  # not something to wait on (a regular file): refused
            os.close(src)
            os.close(dst)
            return
        self.streams[src] = (dst, match.group(1), Lines())

    def _copy(self, src: int) -> None:
        dst, sid, lines = self.streams[src]
        try:
            chunk = os.read(src, MAX_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            _write(dst, lines.feed(chunk), 0)  # a write error drops that piece: no stream waits for another
            return
        _write(dst, lines.eof(), 0)
        self.sel.unregister(src)
        del self.streams[src]
        os.close(src)
        os.close(dst)
        for conn in list(self.controls.values()):
            try:
                conn.send(b"done " + sid + b"\n")
            except OSError:  # not reading (a full queue) or gone: its own end of file tells
                pass
        self._freed()

    def _freed(self) -> None:
        if not self.listening and self.listener is not None:
            self.sel.register(self.listener, selectors.EVENT_READ)
            self.listening = True


def serve() -> int:
    try:  # every app's pipe and log: room for more than the default 1024 descriptors
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, OSError, ValueError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir("/")  # keeps no folder of HomeHelper's busy
    _close_all_but(0, 1, 2)  # what HomeHelper left inheritable (its listening port) is not held here
    Server(socket.socket(fileno=0)).run()  # stdin is the listening socket
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--serve"]:
        return serve()
    if len(argv) >= 5 and argv[1] == "--exec" and argv[3] == "--":
        run_then_exec(argv[2], argv[4:])
    if len(argv) != 2:
        print("usage: stamp.py LOGFILE | stamp.py --exec LOGFILE -- APP... | stamp.py --serve  (timestamps each line)",
              file=sys.stderr)
        return 2
    dst = _open(argv[1])
    try:
        copy(0, dst)
    finally:
        os.close(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
