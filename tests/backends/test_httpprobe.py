"""The health check's own HTTP: real sockets on 127.0.0.1, an app answering each way an app can."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from homehelper.backends.httpprobe import MAX_REPLY, probe, request
from tests.fixtures.redis import free_port

Serve = Callable[[trio.SocketStream], Awaitable[None]]


async def _with_server(answer: Serve, check: Callable[[int], Awaitable[None]]) -> None:
    async with trio.open_nursery() as n:
        listeners = await n.start(partial(trio.serve_tcp, answer, 0, host="127.0.0.1"))
        await check(listeners[0].socket.getsockname()[1])
        n.cancel_scope.cancel()


def _reply(raw: bytes, close: bool = True) -> Serve:
    async def answer(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)
        await stream.send_all(raw)
        if not close:
            await trio.sleep_forever()  # a keep-alive server that ignores "Connection: close"
        await stream.aclose()
    return answer


@pytest.mark.parametrize(("raw", "expected"), [
    (b"HTTP/1.0 200 OK\r\n\r\nok", (True, "")),
    (b"HTTP/1.1 204 No Content\r\n\r\n", (True, "")),
    (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nsensor bus lost",
     (False, "HTTP 503: sensor bus lost")),
    (b"HTTP/1.0 302 Found\r\nLocation: /elsewhere\r\n\r\n", (False, "HTTP 302: ")),  # not followed: not healthy
    (b"SSH-2.0-OpenSSH_9.2\r\n", (False, "not an HTTP reply: 'SSH-2.0-OpenSSH_9.2\\r\\n'")),
    (b"", (False, "closed without an answer")),
])
async def test_what_the_app_answers(raw: bytes, expected: tuple[bool, str]) -> None:
    async def check(port: int) -> None:
        assert await probe(port, "/health", 5.0) == expected
    await _with_server(_reply(raw), check)


async def test_a_healthy_app_that_keeps_the_connection_open_is_not_waited_for() -> None:
    async def check(port: int) -> None:
        with trio.fail_after(30):  # a hang guard: the check ends at the status line, not at the timeout
            assert await probe(port, "/health", 3600.0) == (True, "")
    await _with_server(_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close=False), check)


async def test_a_flood_is_read_only_so_far() -> None:
    async def flood(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)
        await stream.send_all(b"HTTP/1.0 500 Oops\r\n\r\n" + b"x" * 200_000)
        await stream.aclose()

    async def check(port: int) -> None:
        ok, why = await probe(port, "/health", 5.0)
        assert not ok and why == "HTTP 500: " + "x" * 120
    await _with_server(flood, check)
    assert MAX_REPLY <= 4096


async def test_a_silent_app_fails_at_the_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async def check(port: int) -> None:
        assert await probe(port, "/health", 5.0) == (False, "no answer within 5 s")
    await _with_server(silent, check)


async def test_nothing_listening_is_named() -> None:
    port = free_port()
    assert await probe(port, "/health", 5.0) == (False, f"nothing listens on port {port} yet")


def test_no_byte_of_the_path_can_end_the_request_line() -> None:
    line, _, rest = request(8080, "/health\r\nX-Evil: 1 ü").partition(b"\r\n")
    assert line == b"GET /health%0D%0AX-Evil:%201%20%C3%BC HTTP/1.0"
    assert b"X-Evil" not in rest and rest.startswith(b"Host: 127.0.0.1:8080\r\n")
