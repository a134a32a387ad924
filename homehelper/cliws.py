"""A small blocking websocket client for the CLI (`/ws`: actions with progress, log follow).

Blocking on purpose: a command does one thing at a time and needs no event loop. Built on wsproto
(already there under Hypercorn) and a plain socket.
"""

from __future__ import annotations

import json
import socket
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

MAX_MESSAGE = 16 * 1024 * 1024  # a log batch is at most 500 lines of 4000 characters


class WSClosed(Exception):
    """The server refused the handshake (`status`: its HTTP status) or closed the socket."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BlockingWS:
    def __init__(self, url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        u = urlsplit(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.parts: list[str] = []
        self.inbox: list[str] = []
        try:
            self.sock.sendall(self.ws.send(Request(host=u.netloc, target=u.path or "/", extra_headers=[
                (k.lower().encode(), v.encode()) for k, v in headers.items()])))
            while True:
                data = self.sock.recv(65536)
                self.ws.receive_data(data or None)
                for ev in self.ws.events():
                    if isinstance(ev, AcceptConnection):
                        return
                    if isinstance(ev, RejectConnection):
                        raise WSClosed(f"the server refused the websocket (HTTP {ev.status_code})", ev.status_code)
                if not data:
                    raise WSClosed("the server closed the connection during the handshake")
        except RemoteProtocolError as exc:
            self.sock.close()
            raise WSClosed(f"the server does not speak HTTP websockets as HomeHelper does ({exc})") from None
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> BlockingWS:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        except (OSError, LocalProtocolError):  # the socket is already gone
            pass
        self.sock.close()

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=json.dumps(message))))

    def recv(self, timeout: float | None) -> dict[str, Any]:
        """The next JSON message from the server (its keep-alive pings are answered here, not returned)."""
        self.sock.settimeout(timeout)
        while True:
            while self.inbox:
                try:
                    msg = json.loads(self.inbox.pop(0))
                except ValueError:
                    raise WSClosed("the server sent a message that is not JSON") from None
                if isinstance(msg, dict) and msg.get("type") == "ping":
                    self.send({"type": "pong"})  # a socket that says nothing for 60 s is closed
                    continue
                if isinstance(msg, dict):
                    return msg
            data = self.sock.recv(65536)
            if not data:
                raise WSClosed("the server closed the connection")
            self.ws.receive_data(data)
            try:
                events = list(self.ws.events())
            except RemoteProtocolError as exc:
                raise WSClosed(f"the server broke the websocket protocol ({exc})") from None
            for ev in events:
                if isinstance(ev, TextMessage):
                    self.parts.append(ev.data)
                    if sum(map(len, self.parts)) > MAX_MESSAGE:
                        raise WSClosed("a message from the server is too large")
                    if ev.message_finished:
                        self.inbox.append("".join(self.parts))
                        self.parts.clear()
                elif isinstance(ev, Ping):
                    self.sock.sendall(self.ws.send(ev.response()))
                elif isinstance(ev, CloseConnection):
                    raise WSClosed(f"the server closed the connection ({ev.code} {ev.reason or ''})".strip())
