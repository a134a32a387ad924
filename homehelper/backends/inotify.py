"""Linux inotify through libc (ctypes, no package), read on the trio loop: a watched folder costs
nothing until something in it changes. Used by the log follower (logs.py) and the apps-folder
watcher (actors/watcher.py).
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import attrs
import trio

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
READ_BYTES = 64 * 1024
MAX_READS = 16  # per wake: a flood is taken in pieces, the loop stays responsive


@attrs.frozen
class Event:
    wd: int
    mask: int
    cookie: int
    name: str  # "" for an event on the watched folder itself


def parse(buf: bytes) -> list[Event]:
    events: list[Event] = []
    pos = 0
    while pos + _HEADER.size <= len(buf):
        wd, mask, cookie, length = _HEADER.unpack_from(buf, pos)
        pos += _HEADER.size
        name = buf[pos:pos + length].split(b"\0", 1)[0]
        pos += length
        events.append(Event(wd, mask, cookie, os.fsdecode(name)))
    return events


class Inotify:
    """One inotify descriptor. OSError (or AttributeError without libc's inotify) when unavailable."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")

    def add(self, path: Path, mask: int) -> int:
        """Watch `path` (blocking: a path lookup); its watch descriptor."""
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        return int(wd)

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # gone already (IN_IGNORED) is no error worth a word

    async def wait(self) -> None:
        """Until something changed; the events queued meanwhile count as one."""
        await trio.lowlevel.wait_readable(self.fd)
        while True:
            try:
                os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                return

    async def events(self) -> list[Event]:
        """The next events (waiting for at least one); at most MAX_READS reads' worth at once."""
        await trio.lowlevel.wait_readable(self.fd)
        return self.queued()

    def queued(self) -> list[Event]:
        """The events queued now, without waiting (at most MAX_READS reads' worth)."""
        out: list[Event] = []
        for _ in range(MAX_READS):
            try:
                out += parse(os.read(self.fd, READ_BYTES))
            except BlockingIOError:
                break
        return out

    def close(self) -> None:
        """Blocking for milliseconds (the kernel waits for an RCU grace period): a worker thread."""
        os.close(self.fd)
