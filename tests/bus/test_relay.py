"""The bus relay for walled apps: a Unix socket in the app's folder carried to a real Redis."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from homehelper.bus.relay import MAX_CONNECTIONS, BusRelay

pytestmark = pytest.mark.redis


def _ping(sock: Path) -> bool:
    client = redis_py.Redis(unix_socket_path=str(sock), socket_timeout=5, socket_connect_timeout=2,
                            retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except (redis_py.ConnectionError, redis_py.TimeoutError):
        return False
    finally:
        client.close()


async def ping(sock: Path) -> bool:
    # in a thread: the relay runs on this trio thread
    return await trio.to_thread.run_sync(_ping, sock)


async def test_the_relay_carries_an_apps_socket_to_redis_and_comes_back_after_a_restart(
        redis: Any, state_root: Path) -> None:
    folder = state_root / "run" / "bus"
    target = ("127.0.0.1", redis.port)
    async with trio.open_nursery() as nursery:
        relay = BusRelay(folder)
        await nursery.start(relay.run)
        sock = await relay.open("ant", target)
        assert sock == folder / "ant" / "redis.sock" and await ping(sock)
        assert stat.S_ISSOCK(sock.stat().st_mode)
        # Where it forwards to is kept outside the folder the app sees (and could write, were it bound rw).
        assert (folder / "ant.target").exists() and sorted(p.name for p in (folder / "ant").iterdir()) == ["redis.sock"]
        nursery.cancel_scope.cancel()
    assert not await ping(sock)  # HomeHelper gone: no relay
    async with trio.open_nursery() as nursery:
        await nursery.start(BusRelay(folder).run)  # a new HomeHelper listens again for running apps
        assert await ping(sock)
        nursery.cancel_scope.cancel()


async def test_a_new_target_a_removed_app_and_a_damaged_record(redis: Any, state_root: Path) -> None:
    folder = state_root / "run" / "bus"
    folder.mkdir(parents=True)
    (folder / "junk").mkdir()
    (folder / "junk.target").write_text('["evil.example", "6379"]')  # damaged: ignored, nothing else lost
    async with trio.open_nursery() as nursery:
        relay = BusRelay(folder)
        await nursery.start(relay.run)
        assert not (folder / "junk" / "redis.sock").exists()
        from tests.fixtures.redis import free_port

        sock = await relay.open("ant", ("127.0.0.1", free_port()))  # nothing listens there
        assert not await ping(sock)
        assert await relay.open("ant", ("127.0.0.1", redis.port)) == sock  # Redis moved: same socket
        assert await ping(sock)
        await relay.close("ant")
        assert not sock.exists() and not (folder / "ant.target").exists() and not (folder / "ant").exists()
        nursery.cancel_scope.cancel()


async def test_connections_beyond_the_limit_are_closed(redis: Any, state_root: Path) -> None:
    async with trio.open_nursery() as nursery:
        relay = BusRelay(state_root / "run" / "bus")
        await nursery.start(relay.run)
        sock = await relay.open("ant", ("127.0.0.1", redis.port))
        held = [await trio.open_unix_socket(str(sock)) for _ in range(MAX_CONNECTIONS)]
        for s in held:  # each is carried to Redis
            await s.send_all(b"PING\r\n")
            assert await s.receive_some(64) == b"+PONG\r\n"
        extra = await trio.open_unix_socket(str(sock))
        with trio.fail_after(5):
            assert await extra.receive_some(64) == b""  # closed at once, not queued
        for s in (*held, extra):
            await s.aclose()
        nursery.cancel_scope.cancel()
