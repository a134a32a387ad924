"""Helpers for the bus tests: a bridge under a real supervisor, and waiting on events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import redis as redis_py
import trio

from homehelper.actors import Broadcast, ChildSpec, Subscription, Supervisor
from homehelper.actors.bridge import RedisBridge
from homehelper.actors.eventlog import EventLog

FAST = (0.05, 0.2)  # reconnect backoff for tests: real time, kept short


@attrs.define
class Tree:
    bus: Broadcast
    root: Supervisor
    bridge: Any  # ActorRef
    events: Subscription  # everything published on the bus since the tree started


@asynccontextmanager
async def bridge_tree(url: str | None, **kw: Any) -> AsyncIterator[Tree]:
    bus = Broadcast()
    events = bus.subscribe(10_000)
    kw.setdefault("backoff", FAST)
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=bus.publish)
        await nursery.start(root.run)
        ref = root.start_child(ChildSpec("bridge", lambda: RedisBridge(bus, url, **kw)))
        root.start_child(ChildSpec("eventlog", lambda: EventLog(bus, 100)))
        yield Tree(bus, root, ref, events)
        nursery.cancel_scope.cancel()


async def next_event(sub: Subscription, match: Callable[[Any], bool], timeout: float = 10) -> Any:
    with trio.fail_after(timeout):
        while True:
            ev = await sub.receive()
            if match(ev):
                return ev


async def wait_until(pred: Callable[[], Any], timeout: float = 10, step: float = 0.01) -> Any:
    # polling is right here: the condition lives in Redis, which cannot wake a trio Event
    with trio.fail_after(timeout):
        while not (value := pred()):  # noqa: ASYNC110
            await trio.sleep(step)
        return value


def client(url: str) -> redis_py.Redis:
    return redis_py.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def rc(redis: Any) -> Iterator[redis_py.Redis]:
    """A plain redis-py client on the test's server, as an app or a person would use."""
    r = client(redis.url)
    yield r
    r.close()
