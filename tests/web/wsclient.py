"""A small websocket client on wsproto and a trio TCP stream, for tests and the dashboard benchmark.

Written here rather than using trio-websocket's client, which leaves its socket open when the
server rejects the handshake or closes first (a ResourceWarning, an error under our pytest config).
"""

from __future__ import annotations

from types import TracebackType
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)


class Rejected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"handshake rejected with HTTP {status}")
        self.status = status


class Closed(Exception):
    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed: {code} {reason}")
        self.code = code
        self.reason = reason


class WSClient:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream, self.ws = stream, ws
        self.inbox: list[str] = []
        self.parts: list[str] = []
        self.closed: Closed | None = None

    @classmethod
    async def connect(cls, url: str, headers: list[tuple[str, str]] | None = None) -> WSClient:
        u = urlsplit(url)
        stream = await trio.open_tcp_stream(u.hostname or "127.0.0.1", u.port or 80)
        ws = WSConnection(ConnectionType.CLIENT)
        try:
            await stream.send_all(ws.send(Request(host=u.netloc, target=u.path or "/", extra_headers=[
                (k.lower().encode(), v.encode()) for k, v in (headers or [])])))
            while True:
                data = await stream.receive_some(65536)
                ws.receive_data(data or None)
                for ev in ws.events():
                    if isinstance(ev, AcceptConnection):
                        return cls(stream, ws)
                    if isinstance(ev, RejectConnection):
                        raise Rejected(ev.status_code)
                if not data:
                    raise Closed(None, "connection lost during handshake")
        except BaseException:
            await stream.aclose()
            raise

    async def send(self, text: str) -> None:
        if self.closed is not None:
            raise self.closed
        try:
            await self.stream.send_all(self.ws.send(TextMessage(data=text)))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise await self._lost() from None

    async def recv(self) -> str:
        while not self.inbox:
            if self.closed is not None:
                raise self.closed
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                raise await self._lost()
            self.ws.receive_data(data)
            for ev in self.ws.events():
                if isinstance(ev, TextMessage):
                    self.parts.append(ev.data)
                    if ev.message_finished:
                        self.inbox.append("".join(self.parts))
                        self.parts.clear()
                elif isinstance(ev, BytesMessage):
                    continue
                elif isinstance(ev, Ping):
                    await self.stream.send_all(self.ws.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    self.closed = Closed(ev.code, ev.reason or "")
                    try:
                        await self.stream.send_all(self.ws.send(ev.response()))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    await self.stream.aclose()
        return self.inbox.pop(0)

    async def _lost(self) -> Closed:
        if self.closed is None:
            # the server may have sent its close frame before dropping us: read what is left
            try:
                with trio.move_on_after(1):
                    while data := await self.stream.receive_some(65536):
                        self.ws.receive_data(data)
                        for ev in self.ws.events():
                            if isinstance(ev, CloseConnection):
                                self.closed = Closed(ev.code, ev.reason or "")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            self.closed = self.closed or Closed(None, "connection lost")
        await self.stream.aclose()
        return self.closed

    async def aclose(self) -> None:
        if self.closed is None:
            self.closed = Closed(1000, "client closed")
            try:
                await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
            except Exception:
                pass
        await self.stream.aclose()

    async def __aenter__(self) -> WSClient:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
