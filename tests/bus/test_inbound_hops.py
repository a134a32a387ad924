"""Inbound messages wake trio as few times as the traffic allows: trio reads the subscribed socket
itself (bus/_inbound.py), so a burst that arrived while trio was busy is one read and one batch, in
order, none lost; a lone message wakes it at once, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from homehelper.actors import Broadcast, ChildSpec, Supervisor
from homehelper.actors.bridge import RedisBridge
from homehelper.messages import BusConnected, BusMessage

from .conftest import FAST, next_event

pytestmark = pytest.mark.redis
N = 200
CHANNEL = "homehelper:main:apps:sensor-1:pub:n"


@asynccontextmanager
async def bridge(url: str) -> AsyncIterator[tuple[RedisBridge, Any]]:
    broadcast = Broadcast()
    events = broadcast.subscribe(10_000)
    made: list[RedisBridge] = []
    async with trio.open_nursery() as nursery:
        root = Supervisor("root", emit=broadcast.publish)
        await nursery.start(root.run)
        root.start_child(ChildSpec("bridge", lambda: made.append(RedisBridge(broadcast, url, backoff=FAST)) or made[-1]))
        await next_event(events, lambda e: isinstance(e, BusConnected))
        yield made[-1], events
        nursery.cancel_scope.cancel()


async def test_a_burst_while_trio_is_busy_is_one_read_in_order(redis: Any, rc: Any) -> None:
    async with bridge(redis.url) as (actor, events):
        inbound = actor.inbound
        assert inbound is not None
        before = inbound.reads
        # trio is busy (these blocking calls hold its thread): every message waits in the socket;
        # the PING's answer comes after Redis has written all of them out
        for i in range(N):
            rc.publish(CHANNEL, str(i))
        rc.ping()
        got = [(await next_event(events, lambda e: isinstance(e, BusMessage))).data for _ in range(N)]
        assert got == list(range(N))  # in order, none lost
        # a wake-up takes all the socket holds: a few for the whole burst, not N (the kernel queues
        # only so many small segments before Redis must wait for the first read)
        assert inbound.reads - before <= 5


async def test_one_message_at_a_time_each_goes_at_once(redis: Any, rc: Any) -> None:
    async with bridge(redis.url) as (actor, events):
        inbound = actor.inbound
        assert inbound is not None
        before = inbound.reads
        for i in range(5):
            rc.publish(CHANNEL, str(i))
            assert (await next_event(events, lambda e: isinstance(e, BusMessage))).data == i
        assert inbound.reads - before == 5
