"""The bridge's inbound side: apps' publications read on the trio thread, one wake-up per arrival.

redis-py connects and authenticates (in a worker thread: it blocks); from then on the subscribed
socket is trio's: it waits until the socket is readable, reads whatever arrived without blocking and
parses it with `_resp.Reader`. A message arriving alone costs one wake-up of one thread, not a read
on a subscriber thread and a hop into trio; a burst arrives as one read and goes up as one batch.
Nothing polls: an idle subscription costs nothing.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..messages import Event
from ._codec import MAX_INBOUND, Rejects, decode_inbound
from ._resp import TOO_BIG, ProtocolError, Reader
from ._threads import _keepalive
from .channels import Channels

SUBSCRIBE_TIMEOUT = 5.0
READ_SIZE = 256 * 1024
# A message is refused over MAX_INBOUND characters; UTF-8 takes at most 4 bytes for one.
BYTE_LIMIT = 4 * MAX_INBOUND
_WAIT = (BlockingIOError, InterruptedError, ssl.SSLWantReadError)


def _command(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def open_subscription(url: str, ch: Channels, control: str) -> tuple[Any, Any]:
    """In a worker thread: connect, authenticate, send the subscriptions; the connection and its socket."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=2.0, socket_timeout=SUBSCRIBE_TIMEOUT, retry=Retry(NoBackoff(), 0),
        health_check_interval=0, client_name="homehelper-bridge-sub", protocol=2, **_keepalive(url))
    conn = client.connection_pool.make_connection()
    try:
        conn.connect()
        sock = conn._sock  # type: ignore[attr-defined]  # redis-py names no public way to the socket
        sock.sendall(_command("PSUBSCRIBE", *ch.inbound_patterns) + _command("SUBSCRIBE", control))
        sock.setblocking(False)
    except BaseException:
        conn.disconnect()
        raise
    return conn, sock


class Subscriber:
    """Reads one subscription session; `deliver` gets each read's events (on the trio thread)."""

    def __init__(self, ch: Channels, control: str, deliver: Callable[[list[Event]], None], rejects: Rejects) -> None:
        self.ch = ch
        self.control = control.encode()
        self.deliver = deliver
        self.rejects = rejects
        self.reads = 0  # wake-ups that found data: for the tests and the benchmark
        self._confirmations = len(ch.inbound_patterns) + 1

    async def run(self, url: str, on_ready: Callable[[], None], limiter: trio.CapacityLimiter) -> None:
        """Until Redis goes away (raises a connection or protocol error) or `control` says stop (returns)."""
        conn, sock = await trio.to_thread.run_sync(open_subscription, url, self.ch, self.control.decode(),
                                                   limiter=limiter)
        try:
            reader = Reader(BYTE_LIMIT)
            deadline = trio.current_time() + SUBSCRIBE_TIMEOUT  # "ready" then really means subscribed
            while self._confirmations:
                if self._take(reader.feed(await self._recv(sock, deadline))):
                    return
            on_ready()
            while not self._take(reader.feed(await self._recv(sock, math.inf))):
                pass
        finally:
            conn.disconnect()

    async def _recv(self, sock: Any, deadline: float) -> bytes:
        while True:
            # TLS may hold decrypted bytes the socket no longer shows as readable
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                pass
            elif deadline == math.inf:  # the steady state: no cancel scope per message
                await trio.lowlevel.wait_readable(sock)
            else:
                with trio.move_on_at(deadline):
                    await trio.lowlevel.wait_readable(sock)
                if trio.current_time() >= deadline:
                    raise redis.TimeoutError("Redis did not confirm the subscriptions")
            try:
                data: bytes = sock.recv(READ_SIZE)
            except _WAIT:
                continue
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(sock)
                continue
            if not data:
                raise redis.ConnectionError("Redis closed the subscription")
            if isinstance(sock, ssl.SSLSocket):  # one record per recv: take every one already here
                data = self._drain(sock, data)
            self.reads += 1
            return data

    @staticmethod
    def _drain(sock: ssl.SSLSocket, first: bytes) -> bytes:
        chunks = [first]
        size = len(first)
        while size < READ_SIZE:
            try:
                more = sock.recv(READ_SIZE)
            except (*_WAIT, ssl.SSLWantWriteError):
                break
            if not more:
                break  # the next read reports the close
            chunks.append(more)
            size += len(more)
        return b"".join(chunks)

    def _take(self, frames: list[list[object]]) -> bool:
        """Deliver what `frames` carry; True once the control channel says stop."""
        batch: list[Event] = []
        stop = False
        for frame in frames:
            kind = frame[0]
            if kind == b"pmessage" and len(frame) == 4:
                event = self._decode(frame[1], frame[2], frame[3])
                if event is not None:
                    batch.append(event)
            elif kind == b"message" and len(frame) == 3 and frame[1] == self.control:
                stop = True
                break
            elif kind in (b"psubscribe", b"subscribe"):
                self._confirmations -= 1
        if batch:
            self.deliver(batch)
        return stop

    def _decode(self, pattern: object, channel: object, data: object) -> Event | None:
        if not isinstance(pattern, bytes) or not isinstance(channel, bytes):
            return None
        name = channel.decode(errors="replace")
        if data is TOO_BIG:
            self.rejects(name, f"over the {MAX_INBOUND} byte limit")
            return None
        if not isinstance(data, bytes):
            return None
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.rejects(name, "not UTF-8 text")
            return None
        return decode_inbound(self.ch, pattern.decode(errors="replace"), name, text, self.rejects)


__all__ = ["ProtocolError", "Subscriber", "open_subscription"]
