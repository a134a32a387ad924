"""An incremental reader of what a Redis subscriber connection receives (RESP2 arrays, RESP3 pushes).

Fed whatever bytes arrived, it returns the complete frames among them and keeps the rest. Only what a
subscribed connection gets is understood: a frame is an array (`*n`) or push (`>n`) of bulk strings,
integers and simple strings; anything else is a `ProtocolError` (the bridge reconnects). A bulk
string over `limit` bytes is never held: its bytes are skipped as they come and it reads as `TOO_BIG`,
so the buffer stays bounded whatever an app publishes.
"""

from __future__ import annotations

CRLF = b"\r\n"
MAX_LINE = 64 * 1024  # a header line (type, length) longer than this is not Redis talking


class ProtocolError(Exception):
    """The connection sent something a subscriber connection never gets."""


class _TooBig:
    def __repr__(self) -> str:
        return "TOO_BIG"


TOO_BIG = _TooBig()  # a bulk string over the limit, skipped unread


class Reader:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._items: list[object] | None = None  # the elements of the frame being read
        self._count = 0  # its elements still to come
        self._skip = 0  # bytes of an oversized bulk string (and its CRLF) still to discard

    def feed(self, data: bytes) -> list[list[object]]:
        """The frames completed by `data`, in order; each a list of bytes, None or TOO_BIG."""
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
            if self._skip:
                return []
        buf = self._buf
        buf += data
        frames: list[list[object]] = []
        pos = 0
        try:
            while True:
                if self._items is None:
                    if pos >= len(buf):
                        break
                    end = self._line(buf, pos)
                    if end < 0:
                        break
                    kind = buf[pos]
                    if kind == 0x2A or kind == 0x3E:  # '*' array, '>' push
                        self._count = int(buf[pos + 1:end])
                        self._items = []
                    elif kind == 0x2D:  # '-' an error
                        raise ProtocolError(f"Redis said: {bytes(buf[pos + 1:end]).decode(errors='replace')}")
                    elif kind == 0x2B or kind == 0x3A:  # '+' or ':' on its own (a PONG): not a frame of ours
                        frames.append([bytes(buf[pos + 1:end])])
                        pos = end + 2
                        continue
                    else:
                        raise ProtocolError(f"unexpected reply type {chr(kind)!r}")
                    pos = end + 2
                pos = self._elements(buf, pos)
                if self._skip or self._count > 0:
                    break
                assert self._items is not None
                frames.append(self._items)
                self._items = None
        except ValueError:
            raise ProtocolError("a malformed length") from None
        del buf[:pos]
        return frames

    @staticmethod
    def _line(buf: bytearray, pos: int) -> int:
        end = buf.find(CRLF, pos)
        if end < 0 and len(buf) - pos > MAX_LINE:
            raise ProtocolError("a header line without an end")
        return end

    def _elements(self, buf: bytearray, pos: int) -> int:
        """Read the current frame's elements from `pos`; the position after the last one read."""
        items = self._items
        assert items is not None
        while self._count > 0:
            end = self._line(buf, pos)
            if end < 0:
                return pos
            kind = buf[pos]
            if kind == 0x24:  # '$' bulk string
                n = int(buf[pos + 1:end])
                if n < 0:
                    items.append(None)
                    pos = end + 2
                elif n > self.limit:
                    items.append(TOO_BIG)
                    have = len(buf) - (end + 2)
                    if have >= n + 2:
                        pos = end + 2 + n + 2
                    else:
                        self._skip = n + 2 - have
                        self._count -= 1
                        return len(buf)
                elif len(buf) < end + 2 + n + 2:
                    return pos  # not all here yet
                else:
                    items.append(bytes(buf[end + 2:end + 2 + n]))
                    pos = end + 2 + n + 2
            elif kind == 0x3A or kind == 0x2B:  # ':' integer, '+' simple string
                items.append(bytes(buf[pos + 1:end]))
                pos = end + 2
            else:
                raise ProtocolError(f"unexpected element type {chr(kind)!r}")
            self._count -= 1
        return pos
